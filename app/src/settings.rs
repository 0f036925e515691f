//! Settings that persist between runs (eframe storage, RON). Runtime state (models, images,
//! textures, jobs) lives in [`crate::app::Workbench`] and is never saved.

use dcae::autoencoder::{TileSpec, Tiling};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Compute backend for the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BackendChoice {
    /// wgpu when the window runs on a hardware GPU, else the CPU backend (software Vulkan is
    /// slower than burn's CPU kernels).
    #[default]
    Auto,
    Cpu,
    Wgpu,
}

impl BackendChoice {
    pub const ALL: [BackendChoice; 3] =
        [BackendChoice::Auto, BackendChoice::Cpu, BackendChoice::Wgpu];

    pub fn label(self) -> &'static str {
        match self {
            BackendChoice::Auto => "Auto",
            BackendChoice::Cpu => "CPU",
            BackendChoice::Wgpu => "GPU (wgpu)",
        }
    }
}

/// When large images are split into tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TilingMode {
    /// Above about 1 Mpx (the engine's rule).
    #[default]
    Auto,
    Always,
    Never,
}

impl TilingMode {
    pub const ALL: [TilingMode; 3] = [TilingMode::Auto, TilingMode::Always, TilingMode::Never];

    pub fn label(self) -> &'static str {
        match self {
            TilingMode::Auto => "Auto (> 1 Mpx)",
            TilingMode::Always => "Always",
            TilingMode::Never => "Never",
        }
    }
}

/// The central view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ViewMode {
    /// Original and every reconstruction in a grid, zoom and pan in sync.
    #[default]
    Grid,
    /// Swipe between two images.
    Split,
    /// Signed difference heatmap of one reconstruction.
    Difference,
    /// The latent of one model.
    Latent,
}

impl ViewMode {
    pub const ALL: [ViewMode; 4] = [
        ViewMode::Grid,
        ViewMode::Split,
        ViewMode::Difference,
        ViewMode::Latent,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ViewMode::Grid => "Side by side",
            ViewMode::Split => "Split",
            ViewMode::Difference => "Difference",
            ViewMode::Latent => "Latent",
        }
    }
}

/// The window's tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Tab {
    #[default]
    Reconstruct,
    Generate,
}

impl Tab {
    pub const ALL: [Tab; 2] = [Tab::Reconstruct, Tab::Generate];

    pub fn label(self) -> &'static str {
        match self {
            Tab::Reconstruct => "Reconstruct",
            Tab::Generate => "Generate",
        }
    }
}

/// A prompt template of the Generate tab: `{prompt}` stands for what the user typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StylePreset {
    pub name: String,
    pub template: String,
}

impl StylePreset {
    /// The template applied to `prompt` (a template without `{prompt}` is appended to it).
    pub fn apply(&self, prompt: &str) -> String {
        if self.template.contains("{prompt}") {
            self.template.replace("{prompt}", prompt)
        } else if self.template.trim().is_empty() {
            prompt.to_string()
        } else {
            format!("{prompt}, {}", self.template)
        }
    }
}

/// The styles a fresh install starts with (editable in the Generate tab).
pub fn default_styles() -> Vec<StylePreset> {
    [
        (
            "Photo",
            "a photo of {prompt}, 35mm, natural light, sharp focus, high detail",
        ),
        (
            "Cinematic",
            "cinematic still of {prompt}, dramatic lighting, shallow depth of field, film grain",
        ),
        (
            "Watercolor",
            "a watercolor painting of {prompt}, soft washes, paper texture",
        ),
        (
            "Line art",
            "clean line art of {prompt}, black ink on white, minimal",
        ),
        (
            "Isometric",
            "isometric 3D render of {prompt}, soft shadows, pastel colours",
        ),
    ]
    .into_iter()
    .map(|(n, t)| StylePreset {
        name: n.into(),
        template: t.into(),
    })
    .collect()
}

/// Persisted settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub backend: BackendChoice,
    pub tiling: TilingMode,
    pub tile_px: usize,
    pub show_tiles: bool,
    pub view: ViewMode,
    /// Model folders opened in earlier runs (reloaded at start).
    pub model_dirs: Vec<PathBuf>,
    /// LPIPS VGG16 weights (.pth / .safetensors), when the user has them.
    pub lpips_weights: Option<PathBuf>,
    /// Difference heatmap: 8-bit levels that map to full colour.
    pub diff_scale: f32,
    pub last_dir: Option<PathBuf>,
    pub presenter_zoom: f32,
    pub dark: bool,
    pub tab: Tab,
    /// Generation model folders opened in earlier runs (reloaded at start).
    pub gen_model_dirs: Vec<PathBuf>,
    /// Prompt templates of the Generate tab.
    pub styles: Vec<StylePreset>,
    /// The presenter's seed deck: saved results (PNG paths, settings inside) to step through.
    pub deck: Vec<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backend: BackendChoice::Auto,
            tiling: TilingMode::Auto,
            tile_px: 512,
            show_tiles: false,
            view: ViewMode::Grid,
            model_dirs: Vec::new(),
            lpips_weights: None,
            diff_scale: 32.0,
            last_dir: None,
            presenter_zoom: 1.6,
            dark: true,
            tab: Tab::Reconstruct,
            gen_model_dirs: Vec::new(),
            styles: default_styles(),
            deck: Vec::new(),
        }
    }
}

impl Settings {
    /// The engine's tiling rule for these settings.
    pub fn tiling(&self) -> Tiling {
        match self.tiling {
            TilingMode::Auto => Tiling::Auto,
            TilingMode::Always => Tiling::With(TileSpec::with_tile(self.tile_px)),
            TilingMode::Never => Tiling::Never,
        }
    }
}

/// Storage key.
pub const KEY: &str = "dcae-workbench-settings";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_wrap_or_extend_the_prompt() {
        let s = |t: &str| StylePreset {
            name: "s".into(),
            template: t.into(),
        };
        assert_eq!(
            s("a photo of {prompt}, 35mm").apply("a fox"),
            "a photo of a fox, 35mm"
        );
        assert_eq!(s("oil painting").apply("a fox"), "a fox, oil painting");
        assert_eq!(s("  ").apply("a fox"), "a fox");
    }

    #[test]
    fn missing_fields_take_defaults() {
        let s: Settings = serde_json::from_str(r#"{"tile_px": 256}"#).unwrap();
        assert_eq!(s.tile_px, 256);
        assert_eq!(s.diff_scale, Settings::default().diff_scale);
    }
}

//! Every user action as one [`Command`]: label, tooltip and keyboard shortcut live here, so the
//! menus, the toolbar, presenter hotkeys and tests all go through the same handler
//! ([`crate::app::Workbench::run`]).

use egui::{Key, KeyboardShortcut, Modifiers};

use crate::settings::{Tab, ViewMode};
use crate::tasks::JobId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    OpenImages,
    PasteImage,
    AddModelFolder,
    ReconstructAll,
    CancelAll,
    View(ViewMode),
    ZoomIn,
    ZoomOut,
    ZoomFit,
    ZoomActual,
    ToggleTiles,
    NextImage,
    PrevImage,
    NextModel,
    SaveReconstruction,
    SaveDifference,
    SaveLatent,
    SaveSheet,
    TogglePresenter,
    ToggleFullscreen,
    Tab(Tab),
    AddGenModelFolder,
    Generate,
}

impl Command {
    /// Every command, in the order the help overlay lists them.
    pub const ALL: [Command; 27] = [
        Command::OpenImages,
        Command::PasteImage,
        Command::AddModelFolder,
        Command::ReconstructAll,
        Command::CancelAll,
        Command::View(ViewMode::Grid),
        Command::View(ViewMode::Split),
        Command::View(ViewMode::Difference),
        Command::View(ViewMode::Latent),
        Command::ZoomIn,
        Command::ZoomOut,
        Command::ZoomFit,
        Command::ZoomActual,
        Command::ToggleTiles,
        Command::NextImage,
        Command::PrevImage,
        Command::NextModel,
        Command::SaveReconstruction,
        Command::SaveDifference,
        Command::SaveLatent,
        Command::SaveSheet,
        Command::TogglePresenter,
        Command::ToggleFullscreen,
        Command::Tab(Tab::Reconstruct),
        Command::Tab(Tab::Generate),
        Command::AddGenModelFolder,
        Command::Generate,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Command::OpenImages => "Open images…",
            Command::PasteImage => "Paste image",
            Command::AddModelFolder => "Add model folder…",
            Command::ReconstructAll => "Reconstruct all",
            Command::CancelAll => "Cancel",
            Command::View(v) => v.label(),
            Command::ZoomIn => "Zoom in",
            Command::ZoomOut => "Zoom out",
            Command::ZoomFit => "Fit",
            Command::ZoomActual => "1:1 pixels",
            Command::ToggleTiles => "Show tile grid",
            Command::NextImage => "Next image",
            Command::PrevImage => "Previous image",
            Command::NextModel => "Next model",
            Command::SaveReconstruction => "Save reconstruction…",
            Command::SaveDifference => "Save difference map…",
            Command::SaveLatent => "Save latent (safetensors)…",
            Command::SaveSheet => "Save comparison sheet…",
            Command::TogglePresenter => "Presenter mode",
            Command::ToggleFullscreen => "Fullscreen",
            Command::Tab(t) => t.label(),
            Command::AddGenModelFolder => "Add generation model folder…",
            Command::Generate => "Generate",
        }
    }

    pub fn tooltip(self) -> &'static str {
        match self {
            Command::OpenImages => "Open PNG/JPEG/WebP/… files (or drop them on the window)",
            Command::PasteImage => "Paste an image from the clipboard",
            Command::AddModelFolder => {
                "Add a Hugging Face-style model folder (config.json + safetensors)"
            }
            Command::ReconstructAll => "Run every model on the current image",
            Command::CancelAll => "Cancel running and queued reconstructions",
            Command::View(_) => "Switch the central view",
            Command::ZoomActual => "One image pixel per screen pixel",
            Command::ToggleTiles => "Overlay the tiles large images are split into",
            Command::NextModel => "Which model the difference and latent views show",
            Command::NextImage | Command::PrevImage => {
                "Reconstruct tab: the next image; Generate tab: the next seed-deck entry"
            }
            Command::SaveSheet => "PNG grid of the original and every reconstruction with metrics",
            Command::TogglePresenter => "Fullscreen, large fonts, models pre-warmed",
            Command::Tab(Tab::Reconstruct) => "Compare autoencoders on your images",
            Command::Tab(Tab::Generate) => "Class-conditional and text-to-image sampling",
            Command::AddGenModelFolder => {
                "A class-conditional model folder (config.json + model.safetensors) or a Sana \
                 pipeline folder (model_index.json)"
            }
            Command::Generate => "Queue a generation with these settings",
            _ => "",
        }
    }

    pub fn shortcut(self) -> Option<KeyboardShortcut> {
        let k = |m: Modifiers, key: Key| Some(KeyboardShortcut::new(m, key));
        let none = Modifiers::NONE;
        match self {
            Command::OpenImages => k(Modifiers::COMMAND, Key::O),
            Command::PasteImage => None, // arrives as a paste event, see app.rs
            Command::AddModelFolder => k(Modifiers::COMMAND, Key::M),
            Command::ReconstructAll => k(none, Key::R),
            Command::CancelAll => k(none, Key::Escape),
            Command::View(ViewMode::Grid) => k(none, Key::Num1),
            Command::View(ViewMode::Split) => k(none, Key::Num2),
            Command::View(ViewMode::Difference) => k(none, Key::Num3),
            Command::View(ViewMode::Latent) => k(none, Key::Num4),
            Command::ZoomIn => k(none, Key::Plus),
            Command::ZoomOut => k(none, Key::Minus),
            Command::ZoomFit => k(none, Key::Num0),
            Command::ZoomActual => k(none, Key::Z),
            Command::ToggleTiles => k(none, Key::T),
            Command::NextImage => k(none, Key::ArrowRight),
            Command::PrevImage => k(none, Key::ArrowLeft),
            Command::NextModel => k(none, Key::M),
            Command::SaveReconstruction => k(Modifiers::COMMAND, Key::S),
            Command::SaveDifference => k(Modifiers::COMMAND, Key::D),
            Command::SaveLatent => k(Modifiers::COMMAND, Key::L),
            Command::SaveSheet => k(Modifiers::COMMAND | Modifiers::SHIFT, Key::S),
            Command::TogglePresenter => k(none, Key::F5),
            Command::ToggleFullscreen => k(none, Key::F11),
            Command::Tab(Tab::Reconstruct) => k(Modifiers::COMMAND, Key::Num1),
            Command::Tab(Tab::Generate) => k(Modifiers::COMMAND, Key::Num2),
            Command::AddGenModelFolder => k(Modifiers::COMMAND | Modifiers::SHIFT, Key::M),
            // Also while typing a prompt (see `shortcuts`).
            Command::Generate => k(Modifiers::COMMAND, Key::Enter),
        }
    }

    /// "Ctrl+O" etc., for menus and the help overlay.
    pub fn shortcut_text(self, ctx: &egui::Context) -> String {
        self.shortcut()
            .map(|s| ctx.format_shortcut(&s))
            .unwrap_or_default()
    }

    /// The key that triggers it: its shortcut, or for paste the platform's paste keys (a paste
    /// event rather than a shortcut egui consumes).
    pub fn key_hint(self, ctx: &egui::Context) -> String {
        match self {
            Command::PasteImage => {
                ctx.format_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::V))
            }
            c => c.shortcut_text(ctx),
        }
    }
}

/// A parameterised UI action, beside the parameterless [`Command`]s: panels and tests emit
/// them, [`crate::app::Workbench::apply`] runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Command(Command),
    /// Show the image at this index of the image list.
    SelectImage(usize),
    /// Open the bundled sample photo with this index.
    LoadSample(usize),
    /// The model the difference and latent views show.
    FocusModel(u64),
    RemoveModel(u64),
    /// Download this Hugging Face repo into the cache and add it.
    StartDownload(String),
    CancelDownload,
    /// Decode the running job's current estimate (beside its cheap preview).
    DecodeNow(JobId),
    /// Find out what downloading a generation repo would fetch.
    CheckGenHub(String),
    /// Download a generation repo (pipeline or model) and add it to the Generate tab.
    StartGenDownload(String),
    /// The Generate tab's model.
    SelectGenModel(u64),
    RemoveGenModel(u64),
    /// Add or remove a class of the class-conditional form.
    ToggleClass(i64),
    /// Draw a fresh seed.
    RandomSeed,
    /// Cancel one generation job (queued or running).
    CancelJob(JobId),
    /// Move a queued job earlier (`true`) or later in the queue.
    MoveJob(JobId, bool),
    /// Show a gallery item large and restore its settings into the form.
    RestoreGallery(usize),
    /// Run the form with every ready model of the selected model's kind, side by side.
    CompareModels,
    /// Add the shown result to the seed deck / remove deck entry `i`.
    AddToDeck,
    RemoveFromDeck(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` lists every command once: the match below stops compiling when a variant is
    /// added, and the positions must agree.
    #[test]
    fn all_lists_every_command() {
        for (i, c) in Command::ALL.iter().enumerate() {
            let pos = match c {
                Command::OpenImages => 0,
                Command::PasteImage => 1,
                Command::AddModelFolder => 2,
                Command::ReconstructAll => 3,
                Command::CancelAll => 4,
                Command::View(ViewMode::Grid) => 5,
                Command::View(ViewMode::Split) => 6,
                Command::View(ViewMode::Difference) => 7,
                Command::View(ViewMode::Latent) => 8,
                Command::ZoomIn => 9,
                Command::ZoomOut => 10,
                Command::ZoomFit => 11,
                Command::ZoomActual => 12,
                Command::ToggleTiles => 13,
                Command::NextImage => 14,
                Command::PrevImage => 15,
                Command::NextModel => 16,
                Command::SaveReconstruction => 17,
                Command::SaveDifference => 18,
                Command::SaveLatent => 19,
                Command::SaveSheet => 20,
                Command::TogglePresenter => 21,
                Command::ToggleFullscreen => 22,
                Command::Tab(Tab::Reconstruct) => 23,
                Command::Tab(Tab::Generate) => 24,
                Command::AddGenModelFolder => 25,
                Command::Generate => 26,
            };
            assert_eq!(pos, i, "{c:?}");
        }
    }

    #[test]
    fn shortcuts_are_unique() {
        let mut seen = Vec::new();
        for c in Command::ALL {
            if let Some(s) = c.shortcut() {
                assert!(!seen.contains(&s), "{c:?} reuses a shortcut");
                seen.push(s);
            }
        }
    }
}

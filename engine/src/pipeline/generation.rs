//! The settings of any generation run, class-conditional or text-to-image, as one value: what
//! the app's history and drag-and-drop restore from a PNG (`dcae sample` and `dcae generate`
//! PNGs alike).

use std::path::Path;

use super::class_to_image::ClassToImage;
use super::settings::SAMPLE_KEY;
use super::text_to_image::{GENERATE_KEY, TextToImage};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum GenerationSettings {
    Class(ClassToImage),
    Text(TextToImage),
}

impl GenerationSettings {
    /// The settings a PNG written by `dcae sample`, `dcae generate` or the app carries.
    pub fn from_png(path: &Path) -> Result<Self> {
        crate::io::check_regular_file(path)?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_png_bytes(bytes, path)
    }

    /// [`GenerationSettings::from_png`] on bytes in memory; `path` names them in errors.
    pub fn from_png_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self> {
        let parse = |key: &str, text: String| -> Result<serde_json::Value> {
            serde_json::from_str(&text).map_err(|e| {
                Error::Input(format!(
                    "{}: the `{key}` settings are not valid JSON: {e}",
                    path.display()
                ))
            })
        };
        let named = |e: String| Error::Input(format!("{}: {e}", path.display()));
        if let Ok(text) = super::settings::png_text(bytes.clone(), path, SAMPLE_KEY) {
            let s = ClassToImage::from_json(parse(SAMPLE_KEY, text)?).map_err(named)?;
            s.validate()?;
            return Ok(Self::Class(s));
        }
        let text = super::settings::png_text(bytes, path, GENERATE_KEY).map_err(|_| {
            Error::Input(format!(
                "{} carries no generation settings (no `{SAMPLE_KEY}` or `{GENERATE_KEY}` \
                 text chunk: not written by dcae)",
                path.display()
            ))
        })?;
        let s = TextToImage::from_json(parse(GENERATE_KEY, text)?).map_err(named)?;
        s.validate()?;
        Ok(Self::Text(s))
    }

    /// A one-line description for galleries and history: the prompt, or the class ids.
    pub fn title(&self) -> String {
        match self {
            Self::Class(c) => format!(
                "class {}",
                c.classes
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::Text(t) => t.prompt.clone(),
        }
    }

    pub fn seed(&self) -> u64 {
        match self {
            Self::Class(c) => c.seed,
            Self::Text(t) => t.seed,
        }
    }

    /// The settings as PNG text: `(keyword, JSON)`.
    pub fn png_text(&self) -> Result<(&'static str, String)> {
        Ok(match self {
            Self::Class(c) => (SAMPLE_KEY, super::settings::ascii_json(&c.to_json()?)),
            Self::Text(t) => (GENERATE_KEY, super::settings::ascii_json(&t.to_json()?)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::class_cond::SamplerKind;
    use crate::{Backend, Precision};

    #[test]
    fn class_settings_round_trip_and_plain_pngs_are_refused() {
        let s = ClassToImage {
            model: "/m".into(),
            autoencoder: None,
            classes: vec![207, 281],
            seed: 3,
            steps: 4,
            cfg: 1.5,
            sampler: SamplerKind::DpmSolver,
            cols: 2,
            backend: Backend::Cpu,
            precision: Precision::F32,
        };
        let g = GenerationSettings::Class(s);
        let (key, text) = g.png_text().unwrap();
        let png = super::super::settings::png_with_text(&[0u8; 12], 2, 2, key, &text).unwrap();
        let back = GenerationSettings::from_png_bytes(png, Path::new("a.png")).unwrap();
        assert_eq!(back, g);
        assert_eq!((back.title(), back.seed()), ("class 207, 281".into(), 3));
        let plain =
            super::super::settings::png_with_text(&[0u8; 12], 2, 2, "Software", "x").unwrap();
        let e = GenerationSettings::from_png_bytes(plain, Path::new("b.png")).unwrap_err();
        assert!(e.to_string().contains("no generation settings"), "{e}");
    }
}

//! The one resolver of DC-AE model folders, used by every loader (CLI, app, training, the
//! autoencoder of a diffusion model, the hub's cache check).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Weight file names looked for in a model folder, in order (diffusers, then the original
/// efficientvit / DC-Gen repos).
pub const WEIGHT_FILES: [&str; 2] = ["diffusion_pytorch_model.safetensors", "model.safetensors"];

/// A Hugging Face-style DC-AE folder: `config.json` (diffusers `AutoencoderDC` fields or
/// `{"model_name": ...}`) and one weights file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AeFolder {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub weights: PathBuf,
}

impl AeFolder {
    /// The folder's config and weights, or an error saying which is missing.
    pub fn find(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::MissingFile(format!(
                "model folder {} does not exist or is not a folder",
                dir.display()
            )));
        }
        let config = dir.join("config.json");
        if !config.is_file() {
            return Err(Error::MissingFile(format!(
                "{} not found: a model folder needs config.json (diffusers fields or {{\"model_name\": ...}})",
                config.display()
            )));
        }
        let weights = Self::weights_in(dir).ok_or_else(|| {
            Error::MissingFile(format!(
                "no weights in {}: expected {} or {}",
                dir.display(),
                WEIGHT_FILES[0],
                WEIGHT_FILES[1]
            ))
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            weights,
        })
    }

    /// The first weights file of [`WEIGHT_FILES`] present in `dir`.
    pub fn weights_in(dir: &Path) -> Option<PathBuf> {
        WEIGHT_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
    }

    /// True when `dir` holds a config and a weights file (nothing is parsed).
    pub fn is_complete(dir: &Path) -> bool {
        dir.join("config.json").is_file() && Self::weights_in(dir).is_some()
    }
}

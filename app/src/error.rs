//! Typed errors across the worker boundary: every failed job carries a [`JobError`] whose kind
//! decides, in one place ([`JobError::fix`]), what the status area suggests.

use std::fmt;

/// What went wrong, as far as the user can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobErrorKind {
    /// The user cancelled; not shown as an error.
    Cancelled,
    /// The device ran out of memory.
    OutOfMemory,
    /// The model produced NaN or infinite values.
    NonFinite,
    /// The image (or another input) is unusable.
    BadInput,
    /// The model folder or its weights are unusable.
    Model,
    /// The backend or device failed (no adapter, a readback, a panic in a kernel).
    Device,
    /// A download failed (network, HTTP, checksum).
    Network,
}

/// A failed job: its kind and the engine's one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub kind: JobErrorKind,
    pub message: String,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl JobError {
    pub fn new(kind: JobErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn cancelled() -> Self {
        Self::new(JobErrorKind::Cancelled, "cancelled")
    }

    pub fn is_cancelled(&self) -> bool {
        self.kind == JobErrorKind::Cancelled
    }

    /// The kind of an engine error (its variant, never its text).
    pub fn from_engine(e: &dcae::Error) -> Self {
        use dcae::Error as E;
        let kind = match e {
            E::Cancelled => JobErrorKind::Cancelled,
            E::NonFinite(_) => JobErrorKind::NonFinite,
            E::Input(_) | E::Io { .. } => JobErrorKind::BadInput,
            E::Config { .. }
            | E::Unsupported(_)
            | E::UnknownModel { .. }
            | E::MissingFile(_)
            | E::CorruptWeights { .. }
            | E::MissingKey { .. }
            | E::UnexpectedKeys { .. }
            | E::ShapeMismatch { .. }
            | E::BadDtype { .. } => JobErrorKind::Model,
            E::TooLarge { .. } => JobErrorKind::OutOfMemory,
            E::Backend { .. } | E::Device(_) => JobErrorKind::Device,
            E::Download { .. } | E::Checksum { .. } => JobErrorKind::Network,
        };
        Self::new(kind, e.to_string())
    }

    /// A panic that escaped a model call. Burn's backends panic when an allocation fails, so
    /// the panic text is the only place out-of-memory shows; it is read here, once.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a model call panicked".into());
        let lower = text.to_lowercase();
        let oom = ["out of memory", "outofmemory", "allocation", "alloc"]
            .iter()
            .any(|k| lower.contains(k));
        let kind = if oom {
            JobErrorKind::OutOfMemory
        } else {
            JobErrorKind::Device
        };
        Self::new(kind, text)
    }

    /// What the user can do about it (None for a cancel).
    pub fn fix(&self) -> Option<&'static str> {
        Some(match self.kind {
            JobErrorKind::Cancelled => return None,
            JobErrorKind::OutOfMemory => {
                "set Tiling to Always with smaller tiles, or use the CPU backend"
            }
            JobErrorKind::NonFinite => "try the CPU backend or another model",
            JobErrorKind::BadInput => "open a PNG, JPEG, WebP, BMP or TIFF file, then press R",
            JobErrorKind::Model => "pick a folder with config.json and a .safetensors file",
            JobErrorKind::Device => "try the CPU backend (Settings), then press R to retry",
            JobErrorKind::Network => "check the network (or HF_ENDPOINT / HF_TOKEN), then retry",
        })
    }
}

impl JobError {
    /// What the user can do when a generation job (or a generation model load) fails.
    pub fn generation_fix(&self) -> Option<&'static str> {
        Some(match self.kind {
            JobErrorKind::Cancelled => return None,
            JobErrorKind::OutOfMemory => {
                "use a smaller size or batch, or the CPU backend (Settings): large images are \
                 decoded in tiles, but the sampler needs the whole latent"
            }
            JobErrorKind::NonFinite => "lower the guidance scale, or use the CPU backend",
            JobErrorKind::BadInput => "change the setting the message names, then Generate",
            JobErrorKind::Model => {
                "the folder is missing a part: `dcae download <repo>` fetches every component \
                 (model_index.json, scheduler, text_encoder, tokenizer, transformer, vae)"
            }
            JobErrorKind::Device => "try the CPU backend (Settings), then Generate again",
            JobErrorKind::Network => "check the network (or HF_ENDPOINT / HF_TOKEN), then retry",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_errors_suggest_generation_fixes() {
        let oom = JobError::new(JobErrorKind::OutOfMemory, "x");
        assert!(oom.generation_fix().unwrap().contains("smaller size"));
        let m = JobError::new(JobErrorKind::Model, "x");
        assert!(m.generation_fix().unwrap().contains("dcae download"));
        assert_eq!(JobError::cancelled().generation_fix(), None);
    }

    #[test]
    fn engine_variants_map_to_kinds_with_fixes() {
        let cases = [
            (dcae::Error::Cancelled, JobErrorKind::Cancelled),
            (
                dcae::Error::NonFinite("nan".into()),
                JobErrorKind::NonFinite,
            ),
            (dcae::Error::Input("bad".into()), JobErrorKind::BadInput),
            (dcae::Error::MissingFile("x".into()), JobErrorKind::Model),
            (dcae::Error::Device("readback".into()), JobErrorKind::Device),
        ];
        for (e, kind) in cases {
            let j = JobError::from_engine(&e);
            assert_eq!(j.kind, kind, "{e}");
            assert_eq!(j.message, e.to_string());
            assert_eq!(j.fix().is_none(), kind == JobErrorKind::Cancelled);
        }
    }

    #[test]
    fn panics_become_typed_errors() {
        let oom = std::panic::catch_unwind(|| panic!("wgpu: Out of memory allocating 49 GB"))
            .unwrap_err();
        assert_eq!(
            JobError::from_panic(oom.as_ref()).kind,
            JobErrorKind::OutOfMemory
        );
        let other = std::panic::catch_unwind(|| panic!("index out of bounds")).unwrap_err();
        let e = JobError::from_panic(other.as_ref());
        assert_eq!(e.kind, JobErrorKind::Device);
        assert!(e.message.contains("index out of bounds"));
    }
}

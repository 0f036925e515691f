//! Engine errors. Every variant names what the user can act on (a key, a path, a field).

use std::path::PathBuf;

/// Errors returned by the DC-AE engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written. The OS error is part of the message rather than a
    /// `#[source]`, so `anyhow`'s `{:#}` does not print it twice.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    /// `config.json` is not valid JSON or has a field of the wrong type.
    #[error("invalid config {path}: {message}")]
    Config { path: PathBuf, message: String },
    /// The config names an architecture variant this engine does not implement.
    #[error("unsupported config value: {0}")]
    Unsupported(String),
    /// `{"model_name": ...}` names no known official checkpoint.
    #[error("unknown model name `{name}`; known names: {known}")]
    UnknownModel { name: String, known: String },
    /// The model folder lacks a weights file or config.
    #[error("{0}")]
    MissingFile(String),
    /// The safetensors file is truncated, corrupt or not a safetensors file.
    #[error("corrupt weights file {path}: {message}")]
    CorruptWeights { path: PathBuf, message: String },
    /// A tensor the architecture needs is not in the checkpoint.
    #[error(
        "missing weight `{key}` (expected shape {expected:?}); the config does not match the weights"
    )]
    MissingKey { key: String, expected: Vec<usize> },
    /// The checkpoint holds tensors the architecture does not use.
    #[error(
        "{count} unexpected weight(s) in the checkpoint, e.g. `{first}`; the config does not match the weights"
    )]
    UnexpectedKeys { count: usize, first: String },
    /// A tensor has the wrong shape for the configured architecture.
    #[error(
        "weight `{key}` has shape {found:?}, the config needs {expected:?}; the config does not match the weights"
    )]
    ShapeMismatch {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor has a dtype that cannot hold weights.
    #[error("weight `{key}` has unsupported dtype {dtype}")]
    BadDtype { key: String, dtype: String },
    /// An input (image, tensor, setting, run file value) is unusable; the message says why
    /// and what would be accepted.
    #[error("{0}")]
    Input(String),
    /// A computation produced NaN or infinite values (a gradient, a model output).
    #[error("{0}")]
    NonFinite(String),
    /// The device failed outside the model's arithmetic: reading a result back, a worker
    /// thread that died.
    #[error("device: {0}")]
    Device(String),
    /// The requested backend could not be initialised.
    #[error("backend {backend}: {message}")]
    Backend { backend: String, message: String },
    /// A Hugging Face hub request failed (network, HTTP status, missing headers).
    #[error("download {url}: {message}")]
    Download { url: String, message: String },
    /// A downloaded file does not match the checksum the hub sent; it was discarded.
    #[error(
        "checksum mismatch for {file}: the hub says {expected}, the received bytes hash to {found}; the download was discarded"
    )]
    Checksum {
        file: String,
        expected: String,
        found: String,
    },
    /// A job needs more memory than the machine has (estimated from its shapes before
    /// anything is allocated; see [`crate::limits`]).
    #[error(
        "{what} needs about {need}, more than the {limit} available; use tiling or a smaller size, or pass --no-limits (or set DCAE_MEMORY_LIMIT) to run it anyway"
    )]
    TooLarge {
        what: String,
        need: String,
        limit: String,
    },
    /// The call's [`Cancel`](crate::task::Cancel) token was set (a download: no partial file is
    /// left behind; a tiled encode/decode: stopped after the current tile; a sampler: after the
    /// current step).
    #[error("cancelled")]
    Cancelled,
}

/// Engine result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A device readback failure (Burn's `DataError` and the like).
    pub(crate) fn readback(what: &str, e: impl std::fmt::Debug) -> Self {
        Error::Device(format!("reading {what} back: {e:?}"))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }
}

//! DC-AE (Deep Compression Autoencoder, arXiv 2410.10733) in Burn.
//!
//! Every official checkpoint family as a [`DcAeConfig`] preset, a strict loader for the
//! diffusers and original efficientvit safetensors layouts ([`weights`]), encode/decode with
//! optional activation tracing, tiled encode/decode for large images ([`tiling`]), image I/O and
//! metrics. Backends: wgpu (default), CPU (`burn-flex`), CUDA (`cuda` feature).

pub mod attention;
pub mod autoencoder;
pub mod backend;
pub mod config;
pub mod decoder;
pub mod diffusion;
pub mod encoder;
pub mod error;
pub mod evit;
pub mod glumbconv;
pub mod hub;
pub mod image_io;
pub mod layers;
pub mod metrics;
pub mod resample;
pub mod resblock;
pub mod tensor_io;
mod tiled;
pub mod tiling;
pub mod trace;
pub mod train;
pub mod weights;

pub use autoencoder::DcAe;
pub use backend::Backend;
pub use config::DcAeConfig;
pub use error::{Error, Result};
pub use layers::Precision;
pub use trace::Trace;

pub use burn;

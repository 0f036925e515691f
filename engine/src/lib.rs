//! DC-AE (Deep Compression Autoencoder, arXiv 2410.10733) in Burn, and the latent diffusion
//! models that run on its latents.
//!
//! - shared infrastructure: [`error`], [`backend`] (a runtime Burn device), [`task`] (progress
//!   sink + cancel token of every long call), [`io`] (images, tensor files, atomic writes),
//!   [`limits`] (memory estimates checked before a job allocates), [`kernels`] (our SIMD CPU
//!   kernels for burn-flex tensors);
//! - shared model layers: [`weights`] (strict safetensors loader, key layouts, parameter
//!   builder) and [`nn`] (conv, norms, linear, attention, linear attention, embeddings, trace);
//! - model families: [`autoencoder`] (DC-AE: every official checkpoint as a preset, tiling),
//!   [`diffusion`] (schedules, samplers, class-conditional UViT/DiT/USiT), [`text`] (the text
//!   encoders of text-to-image models);
//! - what users run: [`pipeline`] (reconstruct, evaluate, class-to-image), [`metrics`] (PSNR,
//!   SSIM, LPIPS), [`train`] (three-phase training), [`hub`] (Hugging Face downloads).
//!
//! Backends: wgpu (default), CPU (`burn-flex`), CUDA (`cuda` feature).

/// Serde for an enum through its names: serialised as `Display`, parsed with `FromStr`
/// (settings files and PNG metadata store `"cpu"`, `"bf16"`, `"dpm-solver"`).
macro_rules! serde_by_name {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let name = <String as serde::Deserialize>::deserialize(d)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod alloc;
pub mod autoencoder;
pub mod backend;
pub mod diffusion;
pub mod error;
pub mod hub;
pub mod io;
pub mod kernels;
pub mod limits;
pub mod metrics;
pub mod nn;
pub mod pipeline;
pub mod task;
pub mod text;
pub mod train;
pub mod weights;

pub use autoencoder::{DcAe, DcAeConfig};
pub use backend::Backend;
pub use error::{Error, Result};
pub use nn::Trace;
pub use task::{Cancel, DecodedEstimate, Progress};
pub use weights::Precision;

pub use burn;

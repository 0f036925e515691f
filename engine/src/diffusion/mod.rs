//! Latent diffusion on DC-AE latents: noise schedules and time grids ([`schedule`], tensor-free),
//! the portable noise generator ([`rng`]), the samplers on host vectors ([`sampler`], one file
//! per family), the class-conditional networks and their checkpoints ([`class_cond`]), and the
//! text-to-image Sana transformers ([`sana`]).

pub mod class_cond;
pub mod rng;
pub mod sampler;
pub mod sana;
pub mod schedule;

pub use class_cond::{
    Arch, DiffusionConfig, DiffusionModel, Family, Net, REGISTERED, SampleSettings, SamplerKind,
    Taps, autoencoder_preset, bundled_autoencoder, generate,
};
pub use sampler::{Conditioning, Denoiser, DitLoop, Hooks, OdeMethod, Record, TextGuidance};

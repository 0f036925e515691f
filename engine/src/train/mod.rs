//! Training: the paper's three-phase decoupled high-resolution adaptation (§3.2).
//!
//! - [`config`]: the run file (`dcae train --config run.toml`) with per-phase defaults;
//! - [`data`]: image folders, seeded crops, threaded decoding, a fixed validation subset;
//! - the perceptual loss is [`crate::metrics::lpips`] (LPIPS-VGG16 from user-supplied weights);
//! - [`disc`]: the PatchGAN discriminator of phase 3;
//! - [`optim`]: AdamW, clipping, warm-up and EMA over named parameters;
//! - [`trainer`]: the loop, checkpoints (atomic, exactly resumable) and diffusers export.

pub mod config;
pub mod data;
pub mod disc;
pub mod grow;
pub mod optim;
pub mod trainer;

pub use config::TrainConfig;
pub use trainer::{Event, Outcome, StepGradients, export_checkpoint, first_step_gradients, train};

//! The registered class-conditional checkpoints (efficientvit `diffusion_model_zoo.py`) and the
//! presets their names stand for.

use super::dit::DiTConfig;
use super::uvit::UViTConfig;
use super::{Arch, DiffusionConfig, Family, SamplerKind};
use crate::autoencoder::DcAeConfig;
use crate::error::{Error, Result};

/// `REGISTERED_DCAE_DIFFUSION_MODEL` of efficientvit `diffusion_model_zoo.py` (de7d7733cc03),
/// with the AE, scaling factor, sampler and FID CFG scale of `applications/dc_ae/README.md`.
pub const REGISTERED: [&str; 11] = [
    "dc-ae-f32c32-in-1.0-dit-xl-in-512px",
    "dc-ae-f32c32-in-1.0-dit-xl-in-512px-trainbs1024",
    "dc-ae-f32c32-in-1.0-uvit-s-in-512px",
    "dc-ae-f32c32-in-1.0-uvit-h-in-512px",
    "dc-ae-f32c32-in-1.0-uvit-2b-in-512px",
    "dc-ae-f32c32-in-1.0-usit-h-in-512px",
    "dc-ae-f32c32-in-1.0-usit-2b-in-512px",
    "dc-ae-f64c128-in-1.0-uvit-h-in-512px",
    "dc-ae-f64c128-in-1.0-uvit-h-in-512px-train2000k",
    "dc-ae-f64c128-in-1.0-uvit-2b-in-512px",
    "dc-ae-f64c128-in-1.0-uvit-2b-in-512px-train2000k",
];

impl DiffusionConfig {
    /// The preset of a registered model name.
    pub fn from_model_name(name: &str) -> Result<Self> {
        if !REGISTERED.contains(&name) {
            return Err(Error::UnknownModel {
                name: name.to_string(),
                known: REGISTERED.join(", "),
            });
        }
        let (ae, c, side, sf) = if name.starts_with("dc-ae-f64c128-in-1.0-") {
            ("dc-ae-f64c128-in-1.0", 128, 8, 0.2889)
        } else {
            ("dc-ae-f32c32-in-1.0", 32, 16, 0.3189)
        };
        let size = name
            .split('-')
            .skip_while(|p| !matches!(*p, "uvit" | "usit" | "dit"))
            .nth(1)
            .unwrap_or("");
        let (family, arch, sampler, steps, cfg) = if name.contains("-dit-") {
            (
                Family::DiT,
                Arch::DiT(DiTConfig::xl(c, side)),
                SamplerKind::Ddpm,
                250,
                1.3,
            )
        } else {
            let u = UViTConfig::preset(size, c, side)
                .ok_or_else(|| Error::Unsupported(format!("UViT size `{size}` in `{name}`")))?;
            if name.contains("-usit-") {
                let cfg = if size == "2b" { 1.15 } else { 1.2 };
                (Family::USiT, Arch::UViT(u), SamplerKind::Dopri5, 250, cfg)
            } else {
                (Family::UViT, Arch::UViT(u), SamplerKind::DpmSolver, 30, 1.5)
            }
        };
        Ok(Self {
            family,
            arch,
            model_name: Some(name.to_string()),
            autoencoder: Some(ae.to_string()),
            scaling_factor: Some(sf),
            default_sampler: sampler,
            default_steps: steps,
            default_cfg: cfg,
        })
    }
}

/// The DC-AE config of an official diffusion model's autoencoder.
pub fn autoencoder_preset(config: &DiffusionConfig) -> Option<Result<DcAeConfig>> {
    config
        .autoencoder
        .as_deref()
        .filter(|a| a.starts_with("dc-ae-"))
        .map(DcAeConfig::from_model_name)
}

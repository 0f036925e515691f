//! Sana (NVIDIA / MIT Han Lab): the linear-attention text-to-image DiT on DC-AE f32c32 latents,
//! as diffusers' `SanaTransformer2DModel` runs it — Sana 1.0 (600M / 1600M, 512 px to 4K),
//! Sana 1.5 (q/k RMSNorm) and Sana-Sprint (embedded guidance, SCM sampling).
//!
//! One file per component: [`config`] (+ a preset per official repo), [`embeddings`] (time /
//! guidance / caption / sin-cos position), [`attention`] (linear self-, softmax cross-),
//! [`block`], [`transformer`]; [`bins`] holds the aspect-ratio tables of the pipelines.

pub mod attention;
pub mod bins;
pub mod block;
pub mod config;
pub mod denoiser;
pub mod embeddings;
pub mod transformer;

pub use config::{SanaConfig, SanaPreset, preset, presets};
pub use denoiser::{NEGATIVE, SanaDenoiser, TextEmbeddings};
pub use transformer::{SanaInput, SanaTransformer};

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::class_cond::Taps;
use crate::error::{Error, Result};
use crate::weights::remap::KeyLayout;
use crate::weights::{Builder, Precision, WeightStore, check_precision};

/// The transformer of a Sana pipeline, with its config, on one device and precision.
pub struct SanaModel {
    pub config: SanaConfig,
    pub net: SanaTransformer,
    pub device: Device,
    pub precision: Precision,
    /// The weights it was loaded from (None: random).
    pub source: Option<PathBuf>,
}

impl SanaModel {
    /// Builds `config` from `weights` (one safetensors file or an index json with its shards);
    /// strict: every key the architecture needs, with its shape, and no other.
    pub fn load_weights(
        config: SanaConfig,
        weights: &Path,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        check_precision(device, precision)?;
        config.validate()?;
        let mut store = WeightStore::from_weights(weights, Some(KeyLayout::Diffusers))?;
        let mut b = Builder::from_store(&mut store, device, precision);
        let net = SanaTransformer::build(&mut b, &config)?;
        store.finish()?;
        Ok(Self {
            config,
            net,
            device: device.clone(),
            precision,
            source: Some(weights.to_path_buf()),
        })
    }

    /// A diffusers `transformer/` folder: `config.json` and
    /// `diffusion_pytorch_model[.<variant>].safetensors` or its index.
    pub fn load_component(
        dir: &Path,
        variant: Option<&str>,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let config = SanaConfig::from_file(&dir.join("config.json"))?;
        let weights =
            crate::weights::component_weights_variant(dir, "diffusion_pytorch_model", variant)?;
        Self::load_weights(config, &weights, device, precision)
    }

    /// Random weights (benchmarks, tests).
    pub fn random(
        config: SanaConfig,
        seed: u64,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        check_precision(device, precision)?;
        let mut b = Builder::random(seed, device, precision);
        let net = SanaTransformer::build(&mut b, &config)?;
        Ok(Self {
            config,
            net,
            device: device.clone(),
            precision,
            source: None,
        })
    }

    pub fn num_params(&self) -> usize {
        self.net.num_params()
    }

    /// Writes a random-weight `transformer/` component (config.json + weights) to `dir`
    /// (tests and benchmarks of whole pipelines).
    pub fn write_random_component(config: &SanaConfig, seed: u64, dir: &Path) -> Result<()> {
        config.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let device = Device::flex();
        let mut b = Builder::random(seed, &device, Precision::F32);
        let net = SanaTransformer::build(&mut b, config)?;
        let names = b.into_names();
        crate::weights::write_module(
            &net,
            &names,
            &dir.join("diffusion_pytorch_model.safetensors"),
            safetensors::Dtype::F32,
        )?;
        let json = config.to_diffusers_json();
        crate::io::tensors::write_atomic(&dir.join("config.json"), json.to_string().as_bytes())
    }

    /// One evaluation; f32 out.
    ///
    /// # Shapes
    /// `x: [B, C, H, W] -> [B, C_out, H, W]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        input: SanaInput,
        pos: Option<&Tensor<3>>,
        taps: &mut Taps,
    ) -> Result<Tensor<4>> {
        self.net.forward(x, input, pos, taps)
    }
}

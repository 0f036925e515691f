//! The DC-AE autoencoder: config and presets ([`config`]), encoder and decoder ([`encoder`],
//! [`decoder`]) built from the residual, EfficientViT and resampling blocks ([`blocks`]), the
//! model-folder resolver ([`folder`]), and tiled encode/decode for large images ([`tiling`]:
//! the tensor-free plan; `tiled`: applying it).

pub mod blocks;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod folder;
mod tiled;
pub mod tiling;

use std::path::{Path, PathBuf};

use burn::module::{Module, ParamId};
use burn::tensor::{DType, Device, Tensor};

pub use config::DcAeConfig;
use decoder::Decoder;
use encoder::Encoder;
pub use folder::{AeFolder, WEIGHT_FILES};
pub use tiling::{TilePlan, TileSpec, Tiling};

use crate::error::{Error, Result};
use crate::nn::Trace;
use crate::weights::{Builder, KeyLayout, Precision, WeightStore, check_precision};

/// Encoder + decoder modules (diffusers `AutoencoderDC` key paths).
#[derive(Module, Debug)]
pub struct AutoencoderDc {
    pub encoder: Encoder,
    pub decoder: Decoder,
}

/// A ready-to-run DC-AE: modules, config, device and precision.
#[derive(Debug)]
pub struct DcAe {
    pub config: DcAeConfig,
    pub model: AutoencoderDc,
    pub device: Device,
    pub precision: Precision,
    /// Where the weights came from (None for random weights).
    pub source: Option<PathBuf>,
    /// Key layout of the checkpoint (None for random weights).
    pub layout: Option<KeyLayout>,
    /// Canonical checkpoint key of every parameter (fused `attn.qkv`), by parameter id.
    pub names: Vec<(ParamId, String)>,
}

impl DcAe {
    /// Builds the modules for `config` with parameters from `b` (a checkpoint or a seeded
    /// random init); every public constructor ends here.
    fn assemble(
        config: DcAeConfig,
        mut b: Builder,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let encoder = Encoder::build(&mut b, &config)?;
        let decoder = Decoder::build(&mut b, &config)?;
        Ok(Self {
            config,
            model: AutoencoderDc { encoder, decoder },
            device: device.clone(),
            precision,
            source: None,
            layout: None,
            names: b.into_names(),
        })
    }

    /// Builds the model from `config` with weights from `store` (strict: every key used,
    /// every shape checked). `source` names where the weights came from (None for bytes
    /// compiled into the binary).
    pub fn from_store(
        config: DcAeConfig,
        mut store: WeightStore,
        source: Option<&Path>,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        config.validate()?;
        check_precision(device, precision)?;
        let layout = store.layout();
        let b = Builder::from_store(&mut store, device, precision);
        let m = Self::assemble(config, b, device, precision)?;
        store.finish()?;
        Ok(Self {
            layout: Some(layout),
            source: source.map(Path::to_path_buf),
            ..m
        })
    }

    /// Loads a model folder (see [`AeFolder::find`]).
    pub fn load(dir: &Path, device: &Device, precision: Precision) -> Result<Self> {
        let folder = AeFolder::find(dir)?;
        let config = DcAeConfig::from_file(&folder.config)?;
        Self::load_files(config, &folder.weights, device, precision)
    }

    /// Loads weights from one safetensors file for an explicit config.
    pub fn load_files(
        config: DcAeConfig,
        weights: &Path,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let store = WeightStore::from_file(weights)?;
        Self::from_store(config, store, Some(weights), device, precision)
    }

    /// A model from a config and safetensors bytes held in memory (the embedded default).
    pub fn from_bytes(
        config: DcAeConfig,
        name: &str,
        bytes: Vec<u8>,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let store = WeightStore::from_bytes(name, bytes)?;
        Self::from_store(config, store, None, device, precision)
    }

    /// A model over modules built elsewhere (training: the current or averaged weights).
    pub fn from_modules(
        config: DcAeConfig,
        model: AutoencoderDc,
        device: &Device,
        precision: Precision,
    ) -> Self {
        Self {
            config,
            model,
            device: device.clone(),
            precision,
            source: None,
            layout: None,
            names: Vec::new(),
        }
    }

    /// A model with random (PyTorch-default-style) weights, for benchmarks and training.
    pub fn random(
        config: DcAeConfig,
        seed: u64,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        config.validate()?;
        check_precision(device, precision)?;
        let b = Builder::random(seed, device, precision);
        Self::assemble(config, b, device, precision)
    }

    /// Spatial compression factor f (32, 64, 128).
    pub fn factor(&self) -> usize {
        self.config.spatial_compression()
    }

    /// Number of parameters (BatchNorm running statistics included).
    pub fn num_params(&self) -> usize {
        self.model.num_params()
    }

    pub(crate) fn check_image(&self, x: &Tensor<4>) -> Result<()> {
        let [b, c, h, w] = x.dims();
        let f = self.factor();
        if b == 0 {
            return Err(Error::Input(
                "the image batch is empty (0 images); give at least one".into(),
            ));
        }
        if c != self.config.in_channels {
            return Err(Error::Input(format!(
                "image has {c} channels, the model takes {}",
                self.config.in_channels
            )));
        }
        if h == 0 || w == 0 || !h.is_multiple_of(f) || !w.is_multiple_of(f) {
            return Err(Error::Input(format!(
                "image is {w}x{h}; both sides must be non-zero multiples of the compression factor {f}"
            )));
        }
        Ok(())
    }

    /// Refuses a pass over `b` images of `h x w` pixels that cannot fit in memory.
    pub(crate) fn check_memory(
        &self,
        what: &str,
        b: usize,
        h: usize,
        w: usize,
        tiles: Option<TileSpec>,
    ) -> Result<()> {
        let need =
            crate::limits::autoencoder_pass(&self.config, b as u64, h as u64, w as u64, tiles);
        let tiled = tiles.map_or(String::new(), |t| format!(" in {} px tiles", t.tile_px));
        crate::limits::check(&format!("{what} {b} image(s) of {w}x{h}{tiled}"), need)
    }

    pub(crate) fn check_latent(&self, z: &Tensor<4>) -> Result<()> {
        let [b, c, h, w] = z.dims();
        if b == 0 {
            return Err(Error::Input(
                "the latent batch is empty (0 latents); give at least one".into(),
            ));
        }
        if c != self.config.latent_channels || h == 0 || w == 0 {
            return Err(Error::Input(format!(
                "latent has shape [{c}, {h}, {w}] per item; the model needs {} channels and a non-empty grid",
                self.config.latent_channels
            )));
        }
        Ok(())
    }

    /// Encodes images in [-1, 1] to unscaled latents (f32 out).
    ///
    /// # Shapes
    /// `[B, 3, H, W] -> [B, latent_channels, H/f, W/f]`
    pub fn encode(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        self.encode_traced(x, &mut Trace::off())
    }

    /// [`DcAe::encode`] recording intermediate activations into `trace`.
    pub fn encode_traced(&self, x: Tensor<4>, trace: &mut Trace) -> Result<Tensor<4>> {
        self.check_image(&x)?;
        let [b, _, h, w] = x.dims();
        self.check_memory("encoding", b, h, w, None)?;
        let x = x.to_device(&self.device).cast(self.precision.dtype());
        Ok(self.model.encoder.forward(x, trace).cast(DType::F32))
    }

    /// Decodes unscaled latents to images in about [-1, 1] (unclamped, f32 out).
    ///
    /// # Shapes
    /// `[B, latent_channels, h, w] -> [B, 3, h*f, w*f]`
    pub fn decode(&self, z: Tensor<4>) -> Result<Tensor<4>> {
        self.decode_traced(z, &mut Trace::off())
    }

    /// [`DcAe::decode`] recording intermediate activations into `trace`.
    pub fn decode_traced(&self, z: Tensor<4>, trace: &mut Trace) -> Result<Tensor<4>> {
        self.check_latent(&z)?;
        let [b, _, h, w] = z.dims();
        let f = self.factor();
        self.check_memory("decoding", b, h * f, w * f, None)?;
        let z = z.to_device(&self.device).cast(self.precision.dtype());
        Ok(self.model.decoder.forward(z, trace).cast(DType::F32))
    }
}

#[cfg(test)]
mod tests {
    use super::encoder::Block;
    use super::*;

    fn tiny(shortcut: bool) -> DcAeConfig {
        let json = format!(
            r#"{{"encoder_block_out_channels": [8, 16, 32], "decoder_block_out_channels": [8, 16, 32],
            "encoder_layers_per_block": [1, 1, 1], "decoder_layers_per_block": [1, 1, 1],
            "encoder_block_types": ["ResBlock", "ResBlock", "EfficientViTBlock"],
            "decoder_block_types": ["ResBlock", "ResBlock", "EfficientViTBlock"],
            "encoder_qkv_multiscales": [[], [], [5]], "decoder_qkv_multiscales": [[], [], [5]],
            "decoder_norm_types": "rms_norm", "decoder_act_fns": "silu", "latent_channels": 4,
            "attention_head_dim": 8, "dcae_resample_shortcut": {shortcut}}}"#
        );
        DcAeConfig::from_json_str(&json).unwrap()
    }

    #[test]
    fn resample_shortcut_switch_removes_the_shortcuts() {
        let dev = Device::flex();
        let x = Tensor::<4>::random(
            [1, 3, 16, 16],
            burn::tensor::Distribution::Uniform(-1.0, 1.0),
            &dev,
        );
        let mut outs = Vec::new();
        for shortcut in [true, false] {
            let m = DcAe::random(tiny(shortcut), 7, &dev, Precision::F32).unwrap();
            let down = m.model.encoder.down_blocks[0].iter().find_map(|b| match b {
                Block::Down(d) => Some(d.shortcut_group),
                _ => None,
            });
            assert_eq!(down, Some(if shortcut { 2 } else { 0 }));
            let z = m.encode(x.clone()).unwrap();
            assert_eq!(z.dims(), [1, 4, 4, 4]);
            let y = m.decode(z).unwrap();
            assert_eq!(y.dims(), [1, 3, 16, 16]);
            outs.push(y);
        }
        // Same seed, same weights: only the shortcuts differ, so the outputs must.
        let diff = (outs[0].clone() - outs[1].clone())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff > 1e-3, "{diff}");
    }

    #[test]
    fn bad_tensor_shapes_are_errors() {
        let dev = Device::flex();
        let m = DcAe::random(tiny(true), 1, &dev, Precision::F32).unwrap();
        let odd = Tensor::<4>::zeros([1, 3, 18, 16], &dev);
        assert!(
            m.encode(odd)
                .unwrap_err()
                .to_string()
                .contains("multiples of the compression factor 4")
        );
        let grey = Tensor::<4>::zeros([1, 1, 16, 16], &dev);
        assert!(m.encode(grey).is_err());
        let z = Tensor::<4>::zeros([1, 5, 2, 2], &dev);
        assert!(m.decode(z).unwrap_err().to_string().contains("4 channels"));
    }
}

//! The full autoencoder and its loader from a Hugging Face-style folder.

use std::path::{Path, PathBuf};

use burn::module::{Module, ParamId};
use burn::tensor::{DType, Device, Tensor};

use crate::config::DcAeConfig;
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::layers::{Builder, Precision};
use crate::trace::Trace;
use crate::weights::{KeyLayout, WeightStore};

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

/// Weight file names looked for in a model folder, in order.
pub const WEIGHT_FILES: [&str; 2] = ["diffusion_pytorch_model.safetensors", "model.safetensors"];

impl DcAe {
    /// Builds the model from `config` with weights from `store` (strict: every key used, every
    /// shape checked).
    pub fn from_store(
        config: DcAeConfig,
        store: &mut WeightStore,
        device: &Device,
        precision: Precision,
    ) -> Result<(AutoencoderDc, Vec<(ParamId, String)>)> {
        config.validate()?;
        check_precision(device, precision)?;
        let mut b = Builder::from_store(store, device, precision);
        let encoder = Encoder::build(&mut b, &config)?;
        let decoder = Decoder::build(&mut b, &config)?;
        Ok((AutoencoderDc { encoder, decoder }, b.names))
    }

    /// Loads `dir/config.json` and `dir/{diffusion_pytorch_model,model}.safetensors`.
    pub fn load(dir: &Path, device: &Device, precision: Precision) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::MissingFile(format!(
                "model folder {} does not exist or is not a folder",
                dir.display()
            )));
        }
        let cfg_path = dir.join("config.json");
        if !cfg_path.is_file() {
            return Err(Error::MissingFile(format!(
                "{} not found: a model folder needs config.json (diffusers fields or {{\"model_name\": ...}})",
                cfg_path.display()
            )));
        }
        let config = DcAeConfig::from_file(&cfg_path)?;
        let weights = WEIGHT_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::MissingFile(format!(
                    "no weights in {}: expected {} or {}",
                    dir.display(),
                    WEIGHT_FILES[0],
                    WEIGHT_FILES[1]
                ))
            })?;
        Self::load_files(config, &weights, device, precision)
    }

    /// Loads weights from one safetensors file for an explicit config.
    pub fn load_files(
        config: DcAeConfig,
        weights: &Path,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let mut store = WeightStore::from_file(weights)?;
        let layout = store.layout();
        let (model, names) = Self::from_store(config.clone(), &mut store, device, precision)?;
        store.finish()?;
        Ok(Self {
            config,
            model,
            device: device.clone(),
            precision,
            source: Some(weights.to_path_buf()),
            layout: Some(layout),
            names,
        })
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
        let mut b = Builder::random(seed, device, precision);
        let encoder = Encoder::build(&mut b, &config)?;
        let decoder = Decoder::build(&mut b, &config)?;
        Ok(Self {
            config,
            model: AutoencoderDc { encoder, decoder },
            device: device.clone(),
            precision,
            source: None,
            layout: None,
            names: b.names,
        })
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
        let [_, c, h, w] = x.dims();
        let f = self.factor();
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

    pub(crate) fn check_latent(&self, z: &Tensor<4>) -> Result<()> {
        let [_, c, h, w] = z.dims();
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
        let z = z.to_device(&self.device).cast(self.precision.dtype());
        Ok(self.model.decoder.forward(z, trace).cast(DType::F32))
    }
}

pub(crate) fn check_precision(device: &Device, precision: Precision) -> Result<()> {
    if device.supports_dtype(precision.dtype()) {
        Ok(())
    } else {
        Err(Error::Backend {
            backend: format!("{device:?}"),
            message: format!(
                "this device has no {:?} support; use --precision f32 (or another backend)",
                precision
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Block;

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

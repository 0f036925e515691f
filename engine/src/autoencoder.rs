//! The full autoencoder and its loader from a Hugging Face-style folder.

use std::path::{Path, PathBuf};

use burn::module::Module;
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
    ) -> Result<AutoencoderDc> {
        config.validate()?;
        check_precision(device, precision)?;
        let mut b = Builder::from_store(store, device, precision);
        let encoder = Encoder::build(&mut b, &config)?;
        let decoder = Decoder::build(&mut b, &config)?;
        Ok(AutoencoderDc { encoder, decoder })
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
        let model = Self::from_store(config.clone(), &mut store, device, precision)?;
        store.finish()?;
        Ok(Self {
            config,
            model,
            device: device.clone(),
            precision,
            source: Some(weights.to_path_buf()),
            layout: Some(layout),
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
        if h == 0 || w == 0 || h % f != 0 || w % f != 0 {
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

fn check_precision(device: &Device, precision: Precision) -> Result<()> {
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

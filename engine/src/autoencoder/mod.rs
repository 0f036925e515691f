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

    /// A model for training from scratch or from a smaller relative: random weights, except
    /// that with `zero_residual` the last layer of every residual branch starts at zero (each
    /// block starts as its non-parametric shortcut, [`residual_branch_end`]), and every tensor
    /// `shared` holds under the same key and shape is copied from it (an f64 model from an f32
    /// one: the stages they share, paper §3.1); `shared_key` maps a key to the one `shared`
    /// has it under ([`crate::train::grow::source_key`]). Returns the model and how many
    /// tensors came from `shared`.
    pub fn random_init(
        config: DcAeConfig,
        seed: u64,
        device: &Device,
        precision: Precision,
        zero_residual: bool,
        shared: Option<&mut WeightStore>,
        shared_key: Option<crate::weights::builder::SeedKey>,
    ) -> Result<(Self, usize)> {
        config.validate()?;
        check_precision(device, precision)?;
        let mut b = Builder::random(seed, device, precision);
        if zero_residual {
            let c = config.clone();
            b = b.zero_where(move |k| residual_branch_end(&c, k));
        }
        if let Some(store) = shared {
            b = b.seeded_from(store);
            if let Some(k) = shared_key {
                b = b.seed_keys(k);
            }
        }
        let encoder = Encoder::build(&mut b, &config)?;
        let decoder = Decoder::build(&mut b, &config)?;
        let seeded = b.seeded();
        Ok((
            Self {
                config,
                model: AutoencoderDc { encoder, decoder },
                device: device.clone(),
                precision,
                source: None,
                layout: None,
                names: b.into_names(),
            },
            seeded,
        ))
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

/// Whether canonical key `key` is the last layer of a residual branch of `config`: the output
/// norm's weight of a ResBlock, of LiteMLA and of GLUMBConv, the conv of a down / up block with
/// a space-to-channel shortcut, and `encoder.conv_out` / `decoder.conv_in` when their
/// channel shortcuts are on. Zeroing these makes every block its shortcut at step 0.
pub fn residual_branch_end(config: &DcAeConfig, key: &str) -> bool {
    let in_block = |k: &str| {
        let mut parts = k.split('.');
        matches!(
            (parts.next(), parts.next(), parts.next(), parts.next()),
            (Some("encoder"), Some("down_blocks"), Some(i), Some(j)) | (Some("decoder"), Some("up_blocks"), Some(i), Some(j))
                if i.parse::<usize>().is_ok() && j.parse::<usize>().is_ok()
        )
    };
    let tail = key.splitn(5, '.').nth(4).unwrap_or("");
    match key {
        "encoder.conv_out.weight" | "encoder.conv_out.bias" => config.encoder_out_shortcut,
        "decoder.conv_in.weight" | "decoder.conv_in.bias" => config.decoder_in_shortcut,
        _ if in_block(key) => match tail {
            "norm.weight" | "attn.norm_out.weight" | "conv_out.norm.weight" => true,
            "conv.weight" | "conv.bias" => config.resample_shortcut,
            _ => false,
        },
        _ => false,
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

    /// Zero-init: exactly the branch ends are zero, and the model starts as its shortcuts (a
    /// ResBlock's output equals its input).
    #[test]
    fn zero_init_starts_every_residual_branch_at_zero() {
        let cfg = DcAeConfig::default_small();
        let dev = Device::flex();
        let (m, seeded) = DcAe::random_init(cfg.clone(), 3, &dev, Precision::F32, true, None, None)
            .expect("random init");
        assert_eq!(seeded, 0);
        let keys: Vec<&String> = m.names.iter().map(|(_, k)| k).collect();
        let ends: Vec<&&String> = keys
            .iter()
            .filter(|k| residual_branch_end(&cfg, k))
            .collect();
        // default-small: 5 ResBlock / EViT stages per side; per ResBlock 1 norm, per EViT 2
        // norms, per resample block weight + bias, plus conv_out / conv_in with their bias.
        let blocks = 2 * (2 + 3 * 2);
        let resample = 2 * 2 * 4;
        assert_eq!(ends.len(), blocks + resample + 4, "{ends:?}");
        for k in &ends {
            assert!(
                !k.contains("conv_in.conv")
                    && !k.contains("conv_out.conv.")
                    && **k != "decoder.norm_out.weight",
                "{k}"
            );
        }
        let names: crate::train::optim::Names = m.names.iter().cloned().collect();
        let vals = crate::train::optim::values(&m.model, &names);
        let max_abs = |k: &str| -> f32 {
            let v = vals[k]
                .clone()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            v.iter().fold(0.0f32, |a, x| a.max(x.abs()))
        };
        for k in &ends {
            assert_eq!(max_abs(k), 0.0, "{k} is not zero");
        }
        // Everything else keeps its init (the convs inside the branches are random).
        assert!(max_abs("encoder.down_blocks.1.0.conv1.weight") > 0.0);
        assert!(max_abs("decoder.up_blocks.3.1.conv_out.conv_inverted.weight") > 0.0);
        // Without the flag the branch ends are random / ones.
        let (plain, _) = DcAe::random_init(cfg.clone(), 3, &dev, Precision::F32, false, None, None)
            .expect("init");
        let pv = crate::train::optim::values(&plain.model, &names);
        let v = pv["encoder.conv_out.weight"]
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        assert!(v.iter().any(|x| *x != 0.0));
    }

    /// Shared init: a model with one more stage takes every tensor of the smaller one at the
    /// place it has in the larger one (the deepest decoder stage's blocks one index up, after
    /// the added upsample), and only those.
    #[test]
    fn shared_init_copies_the_stages_a_larger_model_shares() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/dcae/f32c32-sana-96x128-b2");
        let folder = folder::AeFolder::find(&dir).expect("fixture");
        let small = DcAeConfig::from_file(&folder.config).expect("config");
        let mut big = small.clone();
        for v in [
            &mut big.encoder_block_out_channels,
            &mut big.decoder_block_out_channels,
        ] {
            let last = *v.last().expect("stages");
            v.push(last);
        }
        for v in [
            &mut big.encoder_layers_per_block,
            &mut big.decoder_layers_per_block,
        ] {
            v.push(1);
        }
        for v in [&mut big.encoder_block_types, &mut big.decoder_block_types] {
            let last = v.last().cloned().expect("stages");
            v.push(last);
        }
        for v in [
            &mut big.encoder_qkv_multiscales,
            &mut big.decoder_qkv_multiscales,
        ] {
            v.push(Vec::new());
        }
        if let Some(a) = big.decoder_act_fns.last().cloned() {
            big.decoder_act_fns.push(a);
        }
        if let Some(n) = big.decoder_norm_types.last().cloned() {
            big.decoder_norm_types.push(n);
        }
        let dev = Device::flex();
        let mut store = WeightStore::from_file(&folder.weights).expect("weights");
        let total_small = store.len();
        let l = crate::train::grow::new_stage(&small, &big).expect("one more stage");
        let (m, seeded) = DcAe::random_init(
            big.clone(),
            0,
            &dev,
            Precision::F32,
            true,
            Some(&mut store),
            Some(Box::new(move |k| crate::train::grow::source_key(l, k))),
        )
        .expect("larger model");
        assert_eq!(m.factor(), 2 * small.spatial_compression());
        assert!(
            seeded > 0 && seeded < m.names.len(),
            "{seeded} of {}",
            m.names.len()
        );
        let small_model = DcAe::load(&dir, &dev, Precision::F32).expect("fixture loads");
        let (sn, bn): (crate::train::optim::Names, crate::train::optim::Names) = (
            small_model.names.iter().cloned().collect(),
            m.names.iter().cloned().collect(),
        );
        let (sv, bv) = (
            crate::train::optim::values(&small_model.model, &sn),
            crate::train::optim::values(&m.model, &bn),
        );
        let mut same = 0;
        for (k, b) in &bv {
            let Some(a) = crate::train::grow::source_key(l, k).and_then(|s| sv.get(&s)) else {
                continue;
            };
            let (a, b) = (
                a.clone()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default(),
                b.clone()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default(),
            );
            if a.len() == b.len() {
                assert_eq!(a, b, "{k}: a shared tensor was not copied");
                same += 1;
            }
        }
        assert_eq!(
            same, seeded,
            "copied tensors ({seeded}) vs shared ones ({same}); {total_small} in the small model"
        );
        // Every tensor of the smaller model has its place (the latent keeps its channels here,
        // so even the layers next to it are copied).
        assert_eq!(seeded, sv.len());
    }
}

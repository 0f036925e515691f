//! Class-conditional latent diffusion on DC-AE latents (efficientvit `applications/dc_ae`):
//! UViT / USiT ([`uvit`]) and DiT ([`dit`]) networks, the registered checkpoints
//! ([`registry`]), loading from a model folder, and sampling ([`generate`]).
//!
//! ```text
//! config.json ─► DiffusionConfig (model name preset or explicit kind + model_config)
//! model.safetensors ─► WeightStore (prefix `diffusion_model.` / `uvit.` / `dit.` / none)
//!                    ─► UViT | DiT  (strict: every key once, shapes checked)
//! seed ─► rng (Philox, host) ─► x_T ─► sampler (host f32 math) ⇄ network (device) ─► latent
//! ```

pub mod dit;
pub mod generate;
pub mod registry;
pub mod uvit;

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::autoencoder::{DcAe, DcAeConfig};
use crate::diffusion::sampler::Denoiser;
use crate::error::{Error, Result};
use crate::nn::{Trace, labels_tensor, timestep_embedding};
use crate::weights::{Builder, KeyLayout, Precision, WeightStore, check_precision};
pub use dit::{DiT, DiTConfig};
pub use generate::{SampleSettings, generate};
pub use registry::{REGISTERED, autoencoder_preset};
pub use uvit::{UViT, UViTConfig};

/// Captured intermediate token sequences (`inter.<module>` like the fixtures).
pub type Taps = Trace<3>;

/// Network family; decides the time convention and the default sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// UViT, epsilon prediction, time input `1000 t`, DPM-Solver.
    UViT,
    /// UViT network trained as SiT: velocity, time input `t` in [0, 1], ODE.
    USiT,
    /// DiT, learned sigma, integer DDPM timestep.
    DiT,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::UViT => "uvit",
            Family::USiT => "usit",
            Family::DiT => "dit",
        }
    }
}

/// Architecture of a diffusion checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Arch {
    UViT(UViTConfig),
    DiT(DiTConfig),
}

/// Sampler choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerKind {
    /// U-ViT DPM-Solver "fast" order 3 (UViT checkpoints).
    DpmSolver,
    /// DiT ancestral DDPM with learned variance.
    Ddpm,
    /// DiT DDIM, eta 0.
    Ddim,
    /// SiT ODE, adaptive Dormand-Prince (USiT).
    Dopri5,
    /// SiT ODE, fixed-grid Heun.
    Heun2,
}

impl SamplerKind {
    pub const NAMES: &'static str = "dpm-solver, ddpm, ddim, dopri5, heun2";
    pub const ALL: [SamplerKind; 5] = [
        SamplerKind::DpmSolver,
        SamplerKind::Ddpm,
        SamplerKind::Ddim,
        SamplerKind::Dopri5,
        SamplerKind::Heun2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::DpmSolver => "dpm-solver",
            SamplerKind::Ddpm => "ddpm",
            SamplerKind::Ddim => "ddim",
            SamplerKind::Dopri5 => "dopri5",
            SamplerKind::Heun2 => "heun2",
        }
    }

    /// Which family a sampler belongs to (the time convention must match the training).
    pub fn family_ok(self, f: Family) -> bool {
        matches!(
            (self, f),
            (SamplerKind::DpmSolver, Family::UViT)
                | (SamplerKind::Ddpm | SamplerKind::Ddim, Family::DiT)
                | (SamplerKind::Dopri5 | SamplerKind::Heun2, Family::USiT)
        )
    }
}

impl std::fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

serde_by_name!(SamplerKind);

impl std::str::FromStr for SamplerKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "dpm-solver" | "dpm" | "dpmsolver" => SamplerKind::DpmSolver,
            "ddpm" => SamplerKind::Ddpm,
            "ddim" => SamplerKind::Ddim,
            "dopri5" | "ode" => SamplerKind::Dopri5,
            "heun2" | "heun" => SamplerKind::Heun2,
            o => return Err(format!("unknown sampler `{o}` ({})", SamplerKind::NAMES)),
        })
    }
}

/// Everything about a diffusion checkpoint besides its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffusionConfig {
    pub family: Family,
    pub arch: Arch,
    /// Registered name, when the config named one.
    pub model_name: Option<String>,
    /// The autoencoder the latents belong to (official models: a DC-AE preset name).
    pub autoencoder: Option<String>,
    /// Latents are `AE.encode(x) * scaling_factor` (None: take the autoencoder's).
    pub scaling_factor: Option<f64>,
    pub default_sampler: SamplerKind,
    pub default_steps: usize,
    /// The CFG scale the README uses for FID.
    pub default_cfg: f32,
}

impl DiffusionConfig {
    /// An explicit architecture (`kind` = uvit | usit | dit).
    pub fn explicit(kind: &str, model_config: serde_json::Value) -> Result<Self> {
        let bad = |e: serde_json::Error| Error::Unsupported(format!("{kind} model_config: {e}"));
        let (family, arch, sampler, steps, cfg) = match kind {
            "uvit" | "usit" => {
                let u: UViTConfig = serde_json::from_value(model_config).map_err(bad)?;
                if kind == "uvit" {
                    (Family::UViT, Arch::UViT(u), SamplerKind::DpmSolver, 30, 1.5)
                } else {
                    (Family::USiT, Arch::UViT(u), SamplerKind::Dopri5, 250, 1.2)
                }
            }
            "dit" => {
                let d: DiTConfig = serde_json::from_value(model_config).map_err(bad)?;
                (Family::DiT, Arch::DiT(d), SamplerKind::Ddpm, 250, 1.3)
            }
            o => {
                return Err(Error::Unsupported(format!(
                    "diffusion model kind `{o}` (uvit, usit, dit)"
                )));
            }
        };
        let c = Self {
            family,
            arch,
            model_name: None,
            autoencoder: None,
            scaling_factor: None,
            default_sampler: sampler,
            default_steps: steps,
            default_cfg: cfg,
        };
        c.validate()?;
        Ok(c)
    }

    /// `config.json`: `{"model_name": <registered>}` (Hugging Face repos), or
    /// `{"kind": "uvit"|"usit"|"dit", "model_config_full"|"model_config": {...}}` with optional
    /// `scaling_factor` and `autoencoder` (a DC-AE preset name or a folder relative to the file).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::io::read_text(path)?;
        Self::from_json_str(&text, path)
    }

    /// [`Self::from_file`] on text; `path` names it in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let cfg_err = |m: String| Error::Config {
            path: path.to_path_buf(),
            message: m,
        };
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| cfg_err(e.to_string()))?;
        if let Some(name) = v.get("model_name").and_then(|n| n.as_str()) {
            return Self::from_model_name(name);
        }
        let kind = v
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or_else(|| cfg_err("needs `model_name` or `kind` (uvit, usit, dit)".into()))?;
        let mc = v
            .get("model_config_full")
            .or_else(|| v.get("model_config"))
            .cloned()
            .ok_or_else(|| cfg_err(format!("kind `{kind}` needs `model_config`")))?;
        let mut c = Self::explicit(kind, mc)?;
        if let Some(s) = v.get("scaling_factor") {
            match s.as_f64() {
                // 0 or a huge value silently decodes to a flat (black) image.
                Some(s) if s.is_finite() && s > 1e-6 && s < 1e6 => c.scaling_factor = Some(s),
                _ => {
                    return Err(cfg_err(format!(
                        "scaling_factor {s}: give a positive number (latents are AE.encode(x) * scaling_factor)"
                    )));
                }
            }
        }
        if let Some(a) = v.get("autoencoder").and_then(|s| s.as_str()) {
            c.autoencoder = Some(a.to_string());
        }
        Ok(c)
    }

    /// Sizes that fit together: every size positive, the patch dividing the latent side, the
    /// heads dividing the width, the MLP ratio a positive number. (Parameter memory is the
    /// builder's check.)
    pub fn validate(&self) -> Result<()> {
        let (input, patch, chans, hidden, depth, heads, ratio, classes, eps) = match &self.arch {
            Arch::UViT(u) => (
                u.input_size,
                u.patch_size,
                u.in_channels,
                u.hidden_size,
                u.depth,
                u.num_heads,
                u.mlp_ratio,
                u.num_classes,
                u.layernorm_eps,
            ),
            Arch::DiT(d) => (
                d.input_size,
                d.patch_size,
                d.in_channels,
                d.hidden_size,
                d.depth,
                d.num_heads,
                d.mlp_ratio,
                d.num_classes,
                d.layernorm_eps,
            ),
        };
        let bad = |m: String| Err(Error::Unsupported(format!("model_config: {m}")));
        for (name, v, hi) in [
            ("input_size", input, 4096),
            ("patch_size", patch, 64),
            ("in_channels", chans, 65536),
            ("hidden_size", hidden, 65536),
            ("depth", depth, 1024),
            ("num_heads", heads, 1024),
            ("num_classes", classes, 1 << 20),
        ] {
            if !(1..=hi).contains(&v) {
                return bad(format!("{name} = {v}: give 1..={hi}"));
            }
        }
        if !input.is_multiple_of(patch) {
            return bad(format!(
                "patch_size {patch} does not divide input_size {input}"
            ));
        }
        if !hidden.is_multiple_of(heads) {
            return bad(format!(
                "num_heads {heads} does not divide hidden_size {hidden}"
            ));
        }
        if !(ratio.is_finite() && ratio > 0.0 && ratio <= 64.0) {
            return bad(format!("mlp_ratio = {ratio}: give a number in (0, 64]"));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return bad(format!("layernorm_eps = {eps}: give a positive number"));
        }
        Ok(())
    }

    /// `[C, H, W]` of one latent.
    pub fn latent_chw(&self) -> [usize; 3] {
        match &self.arch {
            Arch::UViT(u) => [u.in_channels, u.input_size, u.input_size],
            Arch::DiT(d) => [d.in_channels, d.input_size, d.input_size],
        }
    }

    pub fn num_classes(&self) -> usize {
        match &self.arch {
            Arch::UViT(u) => u.num_classes,
            Arch::DiT(d) => d.num_classes,
        }
    }
}

/// The network modules.
#[derive(Debug)]
pub enum Net {
    UViT(Box<UViT>),
    DiT(Box<DiT>),
}

/// A ready-to-run class-conditional diffusion network.
#[derive(Debug)]
pub struct DiffusionModel {
    pub config: DiffusionConfig,
    pub net: Net,
    pub device: Device,
    pub precision: Precision,
    /// The weights file, None for random weights.
    pub source: Option<PathBuf>,
}

/// Weight-key prefixes of the three checkpoint kinds, tried in order: HF `DCAE_Diffusion_HF`
/// files, EMA weights exported from training checkpoints, plain `state_dict`s.
const PREFIXES: [&str; 4] = ["diffusion_model.", "uvit.", "dit.", ""];

impl DiffusionModel {
    fn build(config: DiffusionConfig, b: &mut Builder) -> Result<Net> {
        Ok(match &config.arch {
            Arch::UViT(u) => Net::UViT(Box::new(UViT::build(b, u)?)),
            Arch::DiT(d) => Net::DiT(Box::new(DiT::build(b, d)?)),
        })
    }

    /// Random weights (benchmarks, tests).
    pub fn random(
        config: DiffusionConfig,
        seed: u64,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        check_precision(device, precision)?;
        let mut b = Builder::random(seed, device, precision);
        let net = Self::build(config.clone(), &mut b)?;
        Ok(Self {
            config,
            net,
            device: device.clone(),
            precision,
            source: None,
        })
    }

    /// Writes a random-weight model folder to `dir`: `config.json` (the text given, so a
    /// relative `autoencoder` path resolves from `dir`) and `model.safetensors` under the
    /// keys [`DiffusionModel::load`] reads (tests and demos of whole pipelines).
    pub fn write_random_folder(config_json: &str, seed: u64, dir: &Path) -> Result<()> {
        let cfg_path = dir.join("config.json");
        let config = DiffusionConfig::from_json_str(config_json, &cfg_path)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let device = Device::flex();
        let mut b = Builder::random(seed, &device, Precision::F32);
        let net = Self::build(config, &mut b)?;
        let names = b.into_names();
        let weights = dir.join("model.safetensors");
        let f32 = safetensors::Dtype::F32;
        match &net {
            Net::UViT(m) => crate::weights::write_module(m.as_ref(), &names, &weights, f32)?,
            Net::DiT(m) => crate::weights::write_module(m.as_ref(), &names, &weights, f32)?,
        }
        crate::io::tensors::write_atomic(&cfg_path, config_json.as_bytes())
    }

    /// Loads the network from `weights`. Keys may sit under `diffusion_model.` (official single
    /// file; the `autoencoder.` keys beside them are left to the AE loader), `uvit.` / `dit.`
    /// (EMA export of a training checkpoint) or no prefix. Strict: a missing, misshaped or
    /// unused key under the prefix is an error, and so is a key under no known prefix.
    pub fn load_file(
        config: DiffusionConfig,
        weights: &Path,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        check_precision(device, precision)?;
        let keys = WeightStore::file_keys(weights)?;
        let prefix = PREFIXES
            .iter()
            .find(|p| !p.is_empty() && keys.iter().any(|k| k.starts_with(*p)))
            .copied()
            .unwrap_or("");
        let strays: Vec<&String> = keys
            .iter()
            .filter(|k| !k.starts_with(prefix) && !k.starts_with("autoencoder."))
            .collect();
        if let (false, Some(first)) = (prefix.is_empty(), strays.first()) {
            return Err(Error::UnexpectedKeys {
                count: strays.len(),
                first: (*first).clone(),
            });
        }
        let mut store =
            WeightStore::from_file_prefixed(weights, prefix, Some(KeyLayout::Diffusers))?;
        let mut b = Builder::from_store(&mut store, device, precision);
        let net = Self::build(config.clone(), &mut b)?;
        store.finish()?;
        Ok(Self {
            config,
            net,
            device: device.clone(),
            precision,
            source: Some(weights.to_path_buf()),
        })
    }

    /// Loads `dir/config.json` and `dir/model.safetensors`.
    pub fn load(dir: &Path, device: &Device, precision: Precision) -> Result<Self> {
        let cfg = dir.join("config.json");
        if !cfg.is_file() {
            return Err(Error::MissingFile(format!(
                "{} not found: a diffusion model folder needs config.json",
                cfg.display()
            )));
        }
        let config = DiffusionConfig::from_file(&cfg)?;
        let w = dir.join("model.safetensors");
        if !w.is_file() {
            return Err(Error::MissingFile(format!("{} not found", w.display())));
        }
        Self::load_file(config, &w, device, precision)
    }

    /// True when `model.safetensors` also holds the autoencoder (`autoencoder.` keys).
    pub fn file_has_autoencoder(weights: &Path) -> Result<bool> {
        Ok(WeightStore::file_keys(weights)?
            .iter()
            .any(|k| k.starts_with("autoencoder.")))
    }

    pub fn num_params(&self) -> usize {
        use burn::module::Module;
        match &self.net {
            Net::UViT(m) => m.num_params(),
            Net::DiT(m) => m.num_params(),
        }
    }

    /// One network evaluation with the raw time input `tau` per row (what the reference network
    /// receives: 1000 t for UViT, t for USiT, the integer timestep for DiT).
    ///
    /// # Shapes
    /// `[B, C, H, W] -> [B, C_out, H, W]` (f32 out)
    pub fn forward(
        &self,
        x: Tensor<4>,
        tau: &[f32],
        labels: &[i64],
        taps: &mut Taps,
    ) -> Result<Tensor<4>> {
        let [b, c, h, w] = x.dims();
        let [cc, hh, ww] = self.config.latent_chw();
        if c != cc || h != hh || w != ww {
            return Err(Error::Input(format!(
                "latent is [{c}, {h}, {w}] per item; this model takes [{cc}, {hh}, {ww}]"
            )));
        }
        if tau.len() != b || labels.len() != b {
            return Err(Error::Input(format!(
                "{b} latents but {} times and {} labels",
                tau.len(),
                labels.len()
            )));
        }
        let x = x.to_device(&self.device).cast(self.precision.dtype());
        let out = match &self.net {
            Net::UViT(m) => {
                let y = labels_tensor(labels, m.label_emb.rows(), &self.device)?;
                let te = timestep_embedding(tau, m.hidden_size, &self.device);
                m.forward(x, te, y, taps)
            }
            Net::DiT(m) => {
                let y = labels_tensor(labels, m.y_embedder.rows(), &self.device)?;
                let te = timestep_embedding(tau, m.freq_size, &self.device);
                m.forward(x, te, y, taps)
            }
        };
        Ok(out.cast(DType::F32))
    }
}

impl Denoiser for DiffusionModel {
    fn eval(&mut self, x: &[f32], n: usize, tau: &[f32], labels: &[i64]) -> Result<Vec<f32>> {
        let [c, h, w] = self.config.latent_chw();
        let t = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [n, c, h, w]), &self.device);
        let out = self.forward(t, tau, labels, &mut Taps::off())?;
        out.into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::readback("the network output", e))
    }
}

/// The DC-AE stored beside the network in one file under `autoencoder.` (official
/// `DCAE_Diffusion_HF` checkpoints), built for `ae_config`; strict like every loader (keys under
/// the prefix must all be used).
pub fn bundled_autoencoder(
    ae_config: DcAeConfig,
    weights: &Path,
    device: &Device,
    precision: Precision,
) -> Result<DcAe> {
    let store = WeightStore::from_file_prefixed(weights, "autoencoder.", None)?;
    DcAe::from_store(ae_config, store, Some(weights), device, precision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_presets() {
        for name in REGISTERED {
            let c = DiffusionConfig::from_model_name(name).unwrap();
            assert!(autoencoder_preset(&c).unwrap().is_ok(), "{name}");
            assert!(c.default_sampler.family_ok(c.family));
        }
        let h = DiffusionConfig::from_model_name("dc-ae-f64c128-in-1.0-uvit-h-in-512px").unwrap();
        assert_eq!(h.latent_chw(), [128, 8, 8]);
        assert_eq!(h.family, Family::UViT);
        let s = DiffusionConfig::from_model_name("dc-ae-f32c32-in-1.0-usit-2b-in-512px").unwrap();
        assert_eq!((s.family, s.default_cfg), (Family::USiT, 1.15));
        assert!(DiffusionConfig::from_model_name("dc-ae-f32c32-in-1.0-uvit-x").is_err());
    }

    /// Parameter count of a UViT from its config, key by key.
    fn uvit_count(u: &UViTConfig) -> usize {
        let d = u.hidden_size;
        let (c, p) = (u.in_channels, u.patch_size);
        let l = (u.input_size / p).pow(2);
        let mlp = (d as f64 * u.mlp_ratio) as usize;
        let blk = 4 * d + 3 * d * d + d * d + d + mlp * d + mlp + mlp * d + d;
        let half = u.depth / 2;
        c * p * p * d
            + d
            + (2 + l) * d
            + (u.num_classes + 1) * d
            + (2 * half + 1) * blk
            + half * (2 * d * d + d)
            + 2 * d
            + d * p * p * c
            + p * p * c
    }

    /// UViT-H on f64c128 has 500,868,992 parameters when built by the reference code (diffusion
    /// notes §1); the module tree has exactly the counted keys (checked on a small config).
    #[test]
    fn uvit_parameter_count() {
        let c = DiffusionConfig::from_model_name("dc-ae-f64c128-in-1.0-uvit-h-in-512px").unwrap();
        let Arch::UViT(u) = &c.arch else { panic!() };
        assert_eq!(uvit_count(u), 500_868_992);
        let small = UViTConfig {
            input_size: 4,
            patch_size: 2,
            in_channels: 8,
            hidden_size: 16,
            depth: 4,
            num_heads: 2,
            num_classes: 10,
            ..UViTConfig::default()
        };
        let m = DiffusionModel::random(
            DiffusionConfig::explicit("uvit", serde_json::to_value(ser(&small)).unwrap()).unwrap(),
            1,
            &Device::flex(),
            Precision::F32,
        )
        .unwrap();
        assert_eq!(m.num_params(), uvit_count(&small));
    }

    fn ser(u: &UViTConfig) -> serde_json::Value {
        serde_json::json!({
            "input_size": u.input_size, "patch_size": u.patch_size, "in_channels": u.in_channels,
            "hidden_size": u.hidden_size, "depth": u.depth, "num_heads": u.num_heads,
            "num_classes": u.num_classes
        })
    }
}

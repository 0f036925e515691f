//! The training run file (`dcae train --config run.toml`): every hyper-parameter, with defaults
//! per phase following the paper (§3.2) and the community reproduction's phase configs
//! (`../shared/docs/dcae-architecture.md` §5), scaled down where noted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::autoencoder::DcAeConfig;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Checkpoint, logs, samples and the exported model go here.
    pub out_dir: PathBuf,
    #[serde(default)]
    pub seed: u64,
    /// cpu | wgpu | cuda
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Compute precision: `f32`, or `bf16` mixed precision (bf16 weights and activations,
    /// f32 master weights, optimizer moments, norms, losses and LPIPS).
    #[serde(default = "default_precision")]
    pub precision: String,
    /// Devices of `backend` to train on, data parallel (the batch is split between them and
    /// the gradients summed on the first). CUDA: GPUs 0..n; wgpu: discrete adapters 0..n.
    #[serde(default = "default_devices")]
    pub devices: usize,
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub perceptual: PerceptualSection,
    #[serde(default)]
    pub schedule: ScheduleSection,
    #[serde(default = "PhaseConfig::phase1")]
    pub phase1: PhaseConfig,
    #[serde(default = "PhaseConfig::phase2")]
    pub phase2: PhaseConfig,
    #[serde(default = "PhaseConfig::phase3")]
    pub phase3: PhaseConfig,
    /// The bridge fit of `init_match = "grow"` ([`crate::train::grow`]).
    #[serde(default)]
    pub grow: GrowSection,
}

fn default_backend() -> String {
    "cpu".into()
}

fn default_devices() -> usize {
    1
}

fn default_precision() -> String {
    "f32".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// An official preset name or `default-small`.
    pub preset: Option<String>,
    /// A diffusers `config.json` (instead of `preset`).
    pub config: Option<PathBuf>,
    /// A model folder whose weights start the run (else random init, seeded).
    pub init: Option<PathBuf>,
    /// How `init` applies: `"all"` (default: the same architecture, every tensor) or
    /// `"shared"` (any DC-AE: every tensor with the same key and shape is copied, the rest is
    /// initialised as for a new model; an f64 model from a trained f32 one, whose stages it
    /// contains, paper §3.1), or `"grow"` (`init` has one stage fewer: shared, with the
    /// stages mapped, then the new stage and its neighbours fitted to the smaller model,
    /// [`crate::train::grow`] and `[grow]`).
    #[serde(default)]
    pub init_match: InitMatch,
    /// Random init starts every residual branch at zero (the last norm weight of each block,
    /// the conv of each down / up block, `encoder.conv_out` / `decoder.conv_in` next to their
    /// shortcuts), so the model starts as its non-parametric shortcuts.
    #[serde(default)]
    pub zero_init_residual: bool,
    /// Exported weight dtype: f32 | f16 | bf16.
    #[serde(default = "default_export_dtype")]
    pub export_dtype: String,
}

/// See [`ModelSection::init_match`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitMatch {
    #[default]
    All,
    Shared,
    Grow,
}

/// `[grow]`: fitting the stage a grown model adds (`init_match = "grow"`) to the smaller model
/// it starts from, on features of `crops` training crops of `resolution` px.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrowSection {
    #[serde(default = "GrowSection::default_steps")]
    pub steps: u64,
    #[serde(default = "GrowSection::default_lr")]
    pub lr: f64,
    /// The learning rate falls linearly to this by the last step.
    #[serde(default = "GrowSection::default_lr_end")]
    pub lr_end: f64,
    #[serde(default = "GrowSection::default_batch")]
    pub batch_size: usize,
    #[serde(default = "GrowSection::default_crops")]
    pub crops: usize,
    #[serde(default = "GrowSection::default_resolution")]
    pub resolution: usize,
}

impl GrowSection {
    fn default_steps() -> u64 {
        8000
    }
    fn default_lr() -> f64 {
        2e-3
    }
    fn default_lr_end() -> f64 {
        2e-5
    }
    fn default_batch() -> usize {
        16
    }
    fn default_crops() -> usize {
        1200
    }
    fn default_resolution() -> usize {
        320
    }
}

impl Default for GrowSection {
    fn default() -> Self {
        Self {
            steps: Self::default_steps(),
            lr: Self::default_lr(),
            lr_end: Self::default_lr_end(),
            batch_size: Self::default_batch(),
            crops: Self::default_crops(),
            resolution: Self::default_resolution(),
        }
    }
}

fn default_export_dtype() -> String {
    "f32".into()
}

impl ModelSection {
    pub fn architecture(&self, base: &Path) -> Result<DcAeConfig> {
        match (&self.preset, &self.config) {
            (Some(p), None) if p == "default-small" => Ok(DcAeConfig::default_small()),
            (Some(p), None) => DcAeConfig::from_model_name(p),
            (None, Some(c)) => DcAeConfig::from_file(&base.join(c)),
            _ => Err(Error::Input(
                "[model] needs exactly one of `preset` or `config`".into(),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Folder of training images (recursive).
    pub train: PathBuf,
    /// Folder of validation images; the first `val_count` (sorted) form the fixed subset.
    pub val: Option<PathBuf>,
    #[serde(default = "default_val_count")]
    pub val_count: usize,
    /// Validation images are centre-cropped to at most this square size.
    #[serde(default = "default_val_size")]
    pub val_size: usize,
    /// Decoding threads.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Put each training crop's RGB channels in a random one of the six orders, so every hue
    /// occurs in training: a small photo set (few magentas or saturated blues) otherwise leaves
    /// those colours outside what the model learns to reproduce.
    #[serde(default)]
    pub channel_shuffle: bool,
    /// Stop the run at a training image that cannot be decoded (default: skip it, take the
    /// next image in its place and report it; one bad file must not end a long run).
    #[serde(default)]
    pub fail_on_bad_image: bool,
}

fn default_val_count() -> usize {
    4
}
fn default_val_size() -> usize {
    256
}
fn default_workers() -> usize {
    2
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerceptualSection {
    /// LPIPS VGG16 weight files (.pth or .safetensors); empty = no perceptual term (the run
    /// records that). See README "Perceptual weights".
    #[serde(default)]
    pub weights: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// Which phases run, in order (any of 1, 2, 3).
    #[serde(default = "default_phases")]
    pub phases: Vec<u8>,
    #[serde(default = "default_every")]
    pub checkpoint_every: u64,
    #[serde(default = "default_every")]
    pub val_every: u64,
    #[serde(default = "default_log_every")]
    pub log_every: u64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            phases: default_phases(),
            checkpoint_every: default_every(),
            val_every: default_every(),
            log_every: default_log_every(),
        }
    }
}

fn default_phases() -> Vec<u8> {
    vec![1, 2, 3]
}
fn default_every() -> u64 {
    500
}
fn default_log_every() -> u64 {
    10
}

/// One phase's hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseConfig {
    pub steps: u64,
    /// Square crop size (multiple of the compression factor).
    pub resolution: usize,
    pub batch_size: usize,
    pub lr: f64,
    #[serde(default)]
    pub warmup: u64,
    /// Decay the learning rate linearly after the warm-up to this value at the phase's last
    /// step (none = constant).
    #[serde(default)]
    pub lr_end: Option<f64>,
    pub weight_decay: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Max global gradient norm (none = no clipping).
    pub grad_clip: Option<f64>,
    /// EMA decay of the trained weights (none = no EMA); the phase ends with the EMA weights.
    pub ema_decay: Option<f64>,
    #[serde(default = "one")]
    pub l1_weight: f64,
    pub perceptual_weight: f64,
    /// Compute the perceptual term on every n-th step only (LPIPS-VGG costs more than a small
    /// autoencoder's own step on a CPU); 1 = every step.
    #[serde(default = "one_u64")]
    pub perceptual_every: u64,
    /// Parameter key prefixes that train (canonical diffusers names; efficientvit
    /// `project_in/out` aliases accepted). `["all"]` trains everything.
    pub trainable: Vec<String>,
    /// GAN (phase 3): weight of the generator hinge loss; 0 = no GAN.
    #[serde(default)]
    pub gan_weight: f64,
    /// Scale the GAN weight by |grad rec| / |grad gan| at the decoder output (taming-style).
    #[serde(default)]
    pub adaptive_gan_weight: bool,
    #[serde(default = "default_disc_lr")]
    pub disc_lr: f64,
    #[serde(default = "default_disc_channels")]
    pub disc_channels: usize,
    #[serde(default = "default_disc_layers")]
    pub disc_layers: usize,
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn one() -> f64 {
    1.0
}
fn one_u64() -> u64 {
    1
}
fn default_disc_lr() -> f64 {
    1e-4
}
fn default_disc_channels() -> usize {
    32
}
fn default_disc_layers() -> usize {
    3
}

impl PhaseConfig {
    /// Phase 1, low-resolution full training: L1 + LPIPS, all parameters (reproduction:
    /// 256 px, lr 6.4e-5, wd 0.1; here 128 px so it runs on a CPU).
    pub fn phase1() -> Self {
        Self {
            steps: 1000,
            resolution: 128,
            batch_size: 8,
            lr: 6.4e-5,
            warmup: 100,
            lr_end: None,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            grad_clip: Some(1.0),
            ema_decay: Some(0.999),
            l1_weight: 1.0,
            perceptual_weight: 0.25,
            perceptual_every: 1,
            trainable: vec!["all".into()],
            gan_weight: 0.0,
            adaptive_gan_weight: false,
            disc_lr: default_disc_lr(),
            disc_channels: default_disc_channels(),
            disc_layers: default_disc_layers(),
        }
    }

    /// Phase 2, high-resolution latent adaptation: only the layers next to the latent
    /// (reproduction: 512 px, lr 1.6e-5, wd 1e-3; here 256 px).
    pub fn phase2() -> Self {
        Self {
            steps: 200,
            resolution: 256,
            batch_size: 2,
            lr: 1.6e-5,
            warmup: 20,
            lr_end: None,
            weight_decay: 1e-3,
            trainable: vec!["encoder.conv_out".into(), "decoder.conv_in".into()],
            ..Self::phase1()
        }
    }

    /// Phase 3, low-resolution local refinement: only the decoder head, with a PatchGAN
    /// hinge loss (reproduction: lr 5.4e-5, betas (0.5, 0.9), disc weight 0.5).
    pub fn phase3() -> Self {
        Self {
            steps: 200,
            lr: 5.4e-5,
            warmup: 20,
            lr_end: None,
            weight_decay: 0.0,
            beta1: 0.5,
            beta2: 0.9,
            trainable: vec!["decoder.norm_out".into(), "decoder.conv_out".into()],
            gan_weight: 0.5,
            adaptive_gan_weight: true,
            ..Self::phase1()
        }
    }
}

impl TrainConfig {
    /// Parses a run file; paths inside it are relative to the file's folder.
    pub fn from_file(path: &Path) -> Result<(Self, String)> {
        let text = crate::io::read_text(path)?;
        Ok((Self::from_toml(&text, path)?, text))
    }

    /// [`Self::from_file`] on text; `path` is where it came from (relative paths are taken
    /// from its folder, errors name it).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let mut cfg: TrainConfig = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut cfg.out_dir);
        fix(&mut cfg.data.train);
        if let Some(v) = cfg.data.val.as_mut() {
            fix(v);
        }
        if let Some(c) = cfg.model.config.as_mut() {
            fix(c);
        }
        if let Some(c) = cfg.model.init.as_mut() {
            fix(c);
        }
        for w in cfg.perceptual.weights.iter_mut() {
            fix(w);
        }
        cfg.validate().map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    pub fn phase(&self, n: u8) -> &PhaseConfig {
        match n {
            1 => &self.phase1,
            2 => &self.phase2,
            _ => &self.phase3,
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.schedule.phases.is_empty() {
            return Err("schedule.phases is empty".into());
        }
        if let Some(p) = self.schedule.phases.iter().find(|p| !(1..=3).contains(*p)) {
            return Err(format!("schedule.phases: {p} is not a phase (1, 2, 3)"));
        }
        // Every phase section, scheduled or not: a bad value is an error before any step.
        for p in 1..=3u8 {
            let c = self.phase(p);
            if c.batch_size == 0 || c.resolution == 0 {
                return Err(format!("phase{p}: batch_size and resolution must be > 0"));
            }
            if !(c.lr.is_finite() && c.lr > 0.0) {
                return Err(format!("phase{p}: lr must be > 0"));
            }
            let ranges: [(&str, usize, usize, usize); 4] = [
                ("batch_size", c.batch_size, 1, 4096),
                ("resolution", c.resolution, 1, 8192),
                ("disc_channels", c.disc_channels, 1, 1024),
                ("disc_layers", c.disc_layers, 1, 6),
            ];
            for (name, v, lo, hi) in ranges {
                if !(lo..=hi).contains(&v) {
                    return Err(format!("phase{p}.{name} = {v}: give {lo}..={hi}"));
                }
            }
            if c.steps > 1_000_000_000 {
                return Err(format!("phase{p}.steps = {}: give 0..=1e9", c.steps));
            }
            let unit = |name: &str, v: f64| -> std::result::Result<(), String> {
                if (0.0..1.0).contains(&v) {
                    Ok(())
                } else {
                    Err(format!("phase{p}.{name} = {v}: give a number in [0, 1)"))
                }
            };
            unit("beta1", c.beta1)?;
            unit("beta2", c.beta2)?;
            let nonneg = [
                ("weight_decay", Some(c.weight_decay)),
                ("l1_weight", Some(c.l1_weight)),
                ("perceptual_weight", Some(c.perceptual_weight)),
                ("gan_weight", Some(c.gan_weight)),
                ("lr_end", c.lr_end),
            ];
            for (name, v) in nonneg {
                if let Some(v) = v
                    && !(v.is_finite() && v >= 0.0)
                {
                    return Err(format!("phase{p}.{name} = {v}: give a finite number >= 0"));
                }
            }
            for (name, v) in [("grad_clip", c.grad_clip), ("disc_lr", Some(c.disc_lr))] {
                if let Some(v) = v
                    && !(v.is_finite() && v > 0.0)
                {
                    return Err(format!("phase{p}.{name} = {v}: give a finite number > 0"));
                }
            }
            if let Some(d) = c.ema_decay
                && !(0.0..1.0).contains(&d)
            {
                return Err(format!("phase{p}: ema_decay must be in [0, 1)"));
            }
            if c.perceptual_every == 0 {
                return Err(format!("phase{p}: perceptual_every must be >= 1"));
            }
            if c.trainable.is_empty() {
                return Err(format!("phase{p}: `trainable` is empty"));
            }
        }
        let counts: [(&str, usize, usize, usize); 4] = [
            ("devices", self.devices, 1, 64),
            ("data.workers", self.data.workers, 1, 64),
            ("data.val_count", self.data.val_count, 0, 1024),
            ("data.val_size", self.data.val_size, 1, 8192),
        ];
        for (name, v, lo, hi) in counts {
            if !(lo..=hi).contains(&v) {
                return Err(format!("{name} = {v}: give {lo}..={hi}"));
            }
        }
        let g = &self.grow;
        let grow: [(&str, usize, usize, usize); 3] = [
            ("grow.batch_size", g.batch_size, 1, 4096),
            ("grow.crops", g.crops, 1, 1_000_000),
            ("grow.resolution", g.resolution, 1, 8192),
        ];
        for (name, v, lo, hi) in grow {
            if !(lo..=hi).contains(&v) {
                return Err(format!("{name} = {v}: give {lo}..={hi}"));
            }
        }
        if g.steps > 1_000_000_000 {
            return Err(format!("grow.steps = {}: give 0..=1e9", g.steps));
        }
        for (name, v) in [("grow.lr", g.lr), ("grow.lr_end", g.lr_end)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} = {v}: give a finite number > 0"));
            }
        }
        if self.model.init_match == InitMatch::Grow && self.model.init.is_none() {
            return Err("model.init_match = \"grow\" needs model.init (the smaller model)".into());
        }
        if self.schedule.checkpoint_every == 0 || self.schedule.log_every == 0 {
            return Err("schedule: checkpoint_every and log_every must be > 0".into());
        }
        if !["f32", "bf16"].contains(&self.precision.as_str()) {
            return Err(format!("precision `{}`: f32 or bf16", self.precision));
        }
        if !["f32", "f16", "bf16"].contains(&self.model.export_dtype.as_str()) {
            return Err(format!(
                "model.export_dtype `{}`: f32, f16 or bf16",
                self.model.export_dtype
            ));
        }
        Ok(())
    }

    /// Total steps of the scheduled phases.
    pub fn total_steps(&self) -> u64 {
        self.schedule
            .phases
            .iter()
            .map(|&p| self.phase(p).steps)
            .sum()
    }

    /// The phase (and its first global step) that global step `step` belongs to.
    pub fn phase_at(&self, step: u64) -> Option<(u8, u64)> {
        let mut start = 0;
        for &p in &self.schedule.phases {
            let n = self.phase(p).steps;
            if step < start + n {
                return Some((p, start));
            }
            start += n;
        }
        None
    }
}

/// Expands efficientvit aliases to canonical prefixes.
pub fn canonical_prefixes(patterns: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in patterns {
        match p.as_str() {
            "encoder.project_out" => out.push("encoder.conv_out".to_string()),
            "encoder.project_in" => out.push("encoder.conv_in".to_string()),
            "decoder.project_in" => out.push("decoder.conv_in".to_string()),
            "decoder.project_out" => {
                out.push("decoder.norm_out".to_string());
                out.push("decoder.conv_out".to_string());
            }
            _ => out.push(p.clone()),
        }
    }
    out
}

/// Whether `key` matches a prefix pattern on a `.` boundary (`all` matches everything).
pub fn matches(patterns: &[String], key: &str) -> bool {
    patterns.iter().any(|p| {
        p == "all"
            || key == p
            || (key.starts_with(p.as_str()) && key.as_bytes().get(p.len()) == Some(&b'.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_boundaries() {
        let p = canonical_prefixes(&["encoder.project_out".into(), "decoder.up_blocks.1".into()]);
        assert!(matches(&p, "encoder.conv_out.weight"));
        assert!(matches(&p, "decoder.up_blocks.1.0.conv1.weight"));
        assert!(!matches(&p, "decoder.up_blocks.10.0.conv1.weight"));
        assert!(!matches(&p, "encoder.conv_in.weight"));
        assert!(matches(&["all".to_string()], "x.y"));
    }

    #[test]
    fn phases_partition_the_steps() {
        let text = r#"
            out_dir = "o"
            [model]
            preset = "default-small"
            [data]
            train = "t"
            [schedule]
            phases = [1, 3]
            [phase1]
            steps = 5
            resolution = 64
            batch_size = 1
            lr = 1e-3
            weight_decay = 0.0
            perceptual_weight = 0.0
            trainable = ["all"]
        "#;
        let c: TrainConfig = toml::from_str(text).unwrap();
        assert_eq!(c.total_steps(), 5 + PhaseConfig::phase3().steps);
        assert_eq!(c.phase_at(0), Some((1, 0)));
        assert_eq!(c.phase_at(4), Some((1, 0)));
        assert_eq!(c.phase_at(5), Some((3, 5)));
        assert_eq!(c.phase_at(5 + PhaseConfig::phase3().steps), None);
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<TrainConfig>(&text.replace("seed", "sed")).is_ok());
        assert!(toml::from_str::<TrainConfig>(&format!("bogus = 1\n{text}")).is_err());
    }
}

//! `SanaTransformer2DModel`'s config (`transformer/config.json` of the diffusers repos), every
//! field with diffusers' default, so older configs that lack the newer fields (`qk_norm`,
//! `guidance_embeds`, `timestep_scale`, `interpolation_scale`) read as diffusers reads them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The transformer's architecture (diffusers `SanaTransformer2DModel.__init__` arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SanaConfig {
    pub in_channels: usize,
    /// `None`: same as `in_channels`.
    pub out_channels: Option<usize>,
    /// Linear self-attention heads (of `attention_head_dim`, 32 in every release).
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    pub num_layers: usize,
    pub num_cross_attention_heads: Option<usize>,
    pub cross_attention_head_dim: Option<usize>,
    pub cross_attention_dim: Option<usize>,
    /// Text embedding width (2304 = Gemma-2-2B's hidden size).
    pub caption_channels: usize,
    /// GLUMBConv hidden = `int(mlp_ratio * D)`.
    pub mlp_ratio: f64,
    /// Bias on the self-attention q/k/v projections.
    pub attention_bias: bool,
    /// Latent side the model was trained at (the positional embedding's base size).
    pub sample_size: usize,
    pub patch_size: usize,
    pub norm_elementwise_affine: bool,
    pub norm_eps: f64,
    /// Some: a 2-D sin-cos positional embedding at this interpolation scale (2K: 1.0, 4K: 2.0);
    /// None: no positional embedding (512 / 1024 px models).
    pub interpolation_scale: Option<f64>,
    /// Sana-Sprint: an embedded guidance scale beside the timestep.
    pub guidance_embeds: bool,
    /// The pipeline's factor on the guidance scale before embedding it (Sprint: 0.1).
    pub guidance_embeds_scale: f64,
    /// `rms_norm_across_heads`: RMSNorm on the whole q and k projections (Sana 1.5, Sprint).
    pub qk_norm: Option<String>,
    /// The pipeline multiplies the scheduler's timestep by this (`SanaPipeline`).
    pub timestep_scale: f64,
    /// NVlabs' `cross_attn_type` as some exported configs spell it; diffusers has no such
    /// argument (its cross-attention is always softmax SDPA), so only the softmax kinds are
    /// accepted and anything else (e.g. `linear`) is refused rather than silently changed.
    pub cross_attention_type: Option<String>,
}

impl Default for SanaConfig {
    fn default() -> Self {
        Self {
            in_channels: 32,
            out_channels: Some(32),
            num_attention_heads: 70,
            attention_head_dim: 32,
            num_layers: 20,
            num_cross_attention_heads: Some(20),
            cross_attention_head_dim: Some(112),
            cross_attention_dim: Some(2240),
            caption_channels: 2304,
            mlp_ratio: 2.5,
            attention_bias: false,
            sample_size: 32,
            patch_size: 1,
            norm_elementwise_affine: false,
            norm_eps: 1e-6,
            interpolation_scale: None,
            guidance_embeds: false,
            guidance_embeds_scale: 0.1,
            qk_norm: None,
            timestep_scale: 1.0,
            cross_attention_type: None,
        }
    }
}

impl SanaConfig {
    /// Inner width `heads * head_dim`.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// GLUMBConv hidden channels (`int(mlp_ratio * D)`, truncated as Python's `int`).
    pub fn ff_hidden(&self) -> usize {
        (self.mlp_ratio * self.inner_dim() as f64) as usize
    }

    /// Whether q/k get an RMSNorm.
    pub fn qk_norm(&self) -> Result<bool> {
        match self.qk_norm.as_deref() {
            None => Ok(false),
            Some("rms_norm_across_heads") => Ok(true),
            Some(o) => Err(Error::Unsupported(format!(
                "Sana qk_norm `{o}` (rms_norm_across_heads or none)"
            ))),
        }
    }

    /// The config as diffusers writes it (`_class_name` first, every field).
    pub fn to_diffusers_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("_class_name".into(), "SanaTransformer2DModel".into());
            if self.cross_attention_type.is_none() {
                o.remove("cross_attention_type");
            }
        }
        v
    }

    /// Reads `transformer/config.json`.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        crate::io::read_config(path, Self::from_json_str)
    }

    /// Parses `transformer/config.json` text.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let c: Self = serde_json::from_str(text)
            .map_err(|e| Error::Unsupported(format!("Sana transformer config: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// Sizes that fit together, each in a sane range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Unsupported(format!("Sana transformer config: {m}")));
        let cross = self.num_cross_attention_heads.unwrap_or(0)
            * self.cross_attention_head_dim.unwrap_or(0);
        for (name, v, hi) in [
            ("in_channels", self.in_channels, 4096),
            ("out_channels", self.out_channels(), 4096),
            ("num_attention_heads", self.num_attention_heads, 1024),
            ("attention_head_dim", self.attention_head_dim, 1024),
            ("num_layers", self.num_layers, 512),
            ("caption_channels", self.caption_channels, 65536),
            ("sample_size", self.sample_size, 4096),
            ("patch_size", self.patch_size, 64),
            ("cross attention width", cross, 65536),
        ] {
            if !(1..=hi).contains(&v) {
                return bad(format!("{name} = {v}: give 1..={hi}"));
            }
        }
        if self.cross_attention_dim != Some(self.inner_dim()) {
            return bad(format!(
                "cross_attention_dim {:?} must equal the inner width {} (heads x head_dim)",
                self.cross_attention_dim,
                self.inner_dim()
            ));
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_ratio > 0.0 && self.mlp_ratio <= 64.0) {
            return bad(format!("mlp_ratio = {}: give (0, 64]", self.mlp_ratio));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad(format!("norm_eps = {}", self.norm_eps));
        }
        if let Some(s) = self.interpolation_scale
            && !(s.is_finite() && s > 0.0)
        {
            return bad(format!("interpolation_scale = {s}: give a positive number"));
        }
        if !(self.timestep_scale.is_finite() && self.timestep_scale > 0.0) {
            return bad(format!("timestep_scale = {}", self.timestep_scale));
        }
        self.qk_norm()?;
        if let Some(t) = self.cross_attention_type.as_deref()
            && !matches!(t, "flash" | "vanilla" | "sdpa" | "softmax")
        {
            return Err(Error::Unsupported(format!(
                "Sana cross_attention_type `{t}`: only softmax cross-attention (flash / vanilla) \
                 is what diffusers runs"
            )));
        }
        Ok(())
    }
}

/// What a user needs to know about one official text-to-image repo besides its own config
/// files (which always win when present): the transformer config the repo ships, and the
/// pipeline defaults of its kind.
#[derive(Debug, Clone)]
pub struct SanaPreset {
    /// `Efficient-Large-Model/<name>`.
    pub repo: &'static str,
    pub config: SanaConfig,
    /// `scheduler_config.json`'s `flow_shift` (None for Sprint's SCM scheduler).
    pub flow_shift: Option<f64>,
    /// Sana-Sprint: SCM sampler, embedded guidance, no negative prompt.
    pub sprint: bool,
    /// The output side the aspect-ratio bins are for (512 / 1024 / 2048 / 4096).
    pub bin_side: usize,
}

/// One official repo: (repo id, 1600M widths (else 600M), layers, px, qk_norm, Sprint).
type Row = (&'static str, bool, usize, usize, bool, bool);

/// Every official Sana / Sana 1.5 / Sana-Sprint diffusers repo.
const ROWS: [Row; 12] = [
    (
        "Efficient-Large-Model/Sana_600M_512px_diffusers",
        false,
        28,
        512,
        false,
        false,
    ),
    (
        "Efficient-Large-Model/Sana_600M_1024px_diffusers",
        false,
        28,
        1024,
        false,
        false,
    ),
    (
        "Efficient-Large-Model/Sana_1600M_512px_diffusers",
        true,
        20,
        512,
        false,
        false,
    ),
    (
        "Efficient-Large-Model/Sana_1600M_1024px_diffusers",
        true,
        20,
        1024,
        false,
        false,
    ),
    (
        "Efficient-Large-Model/Sana_1600M_1024px_MultiLing_diffusers",
        true,
        20,
        1024,
        false,
        false,
    ),
    (
        "Efficient-Large-Model/Sana_1600M_1024px_BF16_diffusers",
        true,
        20,
        1024,
        false,
        false,
    ),
    (
        "Efficient-Large-Model/Sana_1600M_2Kpx_BF16_diffusers",
        true,
        20,
        2048,
        false,
        false,
    ),
    (
        "Efficient-Large-Model/Sana_1600M_4Kpx_BF16_diffusers",
        true,
        20,
        4096,
        false,
        false,
    ),
    (
        "Efficient-Large-Model/SANA1.5_1.6B_1024px_diffusers",
        true,
        20,
        1024,
        true,
        false,
    ),
    (
        "Efficient-Large-Model/SANA1.5_4.8B_1024px_diffusers",
        true,
        60,
        1024,
        true,
        false,
    ),
    (
        "Efficient-Large-Model/Sana_Sprint_0.6B_1024px_diffusers",
        false,
        28,
        1024,
        true,
        true,
    ),
    (
        "Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers",
        true,
        20,
        1024,
        true,
        true,
    ),
];

/// The transformer config of one [`ROWS`] entry. (Built field by field: rustc 1.95.0 in
/// release miscompiled the closure-and-struct-update form of this table into a double free,
/// reproduced standalone; 1.97 nightly is fine.)
fn row_config(big: bool, layers: usize, px: usize, qk: bool, sprint: bool) -> SanaConfig {
    let (heads, cross_heads, cross_dim) = if big { (70, 20, 112) } else { (36, 16, 72) };
    let mut c = SanaConfig::default();
    c.num_attention_heads = heads;
    c.num_layers = layers;
    c.num_cross_attention_heads = Some(cross_heads);
    c.cross_attention_head_dim = Some(cross_dim);
    c.cross_attention_dim = Some(heads * c.attention_head_dim);
    c.sample_size = px / 32;
    c.interpolation_scale = match px {
        2048 => Some(1.0),
        4096 => Some(2.0),
        _ => None,
    };
    if qk {
        c.qk_norm = Some("rms_norm_across_heads".to_string());
    }
    c.guidance_embeds = sprint;
    c
}

/// Every official repo's preset. The transformer configs mirror what diffusers'
/// `scripts/convert_sana_to_diffusers.py` writes for each `model_type`
/// (`SanaMS_600M_P1_D28`: 36 heads x 32, 28 layers, cross 16 x 72; `SanaMS_1600M_P1_D20`: 70 x
/// 32, 20 layers, cross 20 x 112; `SanaMS1.5_*`: qk_norm; `SanaSprint_*`: qk_norm +
/// guidance_embeds), `sample_size = px / 32`, `interpolation_scale` None at 512 / 1024, 1.0 at
/// 2K, 2.0 at 4K; `flow_shift` 6.0 at 4K, else 3.0 (the 600M 1024 px yaml says 4.0, the
/// converted repo 3.0 — the repo's `scheduler_config.json` decides when present).
pub fn presets() -> Vec<SanaPreset> {
    ROWS.iter()
        .map(|&(name, big, layers, px, qk, sprint)| SanaPreset {
            repo: name,
            config: row_config(big, layers, px, qk, sprint),
            flow_shift: (!sprint).then_some(if px == 4096 { 6.0 } else { 3.0 }),
            sprint,
            bin_side: px,
        })
        .collect()
}

/// The preset of a repo id (case-insensitive, with or without `_diffusers`).
pub fn preset(repo: &str) -> Option<SanaPreset> {
    let norm = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.trim_end_matches("_diffusers").to_string()
    };
    let want = norm(repo);
    presets()
        .into_iter()
        .find(|p| norm(p.repo) == want || norm(p.repo.rsplit('/').next().unwrap_or("")) == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_configs_get_diffusers_defaults() {
        // Sana_1600M_1024px_diffusers-style config without the newer fields.
        let c = SanaConfig::from_json_str(
            r#"{"_class_name": "SanaTransformer2DModel", "num_layers": 20, "sample_size": 32,
                "num_attention_heads": 70, "caption_channels": 2304}"#,
        )
        .unwrap();
        assert_eq!(c.inner_dim(), 2240);
        assert_eq!(c.ff_hidden(), 5600);
        assert!(!c.guidance_embeds && c.interpolation_scale.is_none() && !c.qk_norm().unwrap());
        assert_eq!(c.timestep_scale, 1.0);
        for bad in [
            r#"{"qk_norm": "layer_norm"}"#,
            r#"{"num_layers": 0}"#,
            r#"{"cross_attention_dim": 100}"#,
            r#"{"mlp_ratio": -1}"#,
        ] {
            assert!(SanaConfig::from_json_str(bad).is_err(), "{bad}");
        }
    }

    /// Parameter counts of the presets against the published sizes (Sana 600M: 591.7 M counted
    /// by the reference script in `shared/docs`, 1600M ~1.6 B, 4.8B ~4.7 B).
    #[test]
    fn presets_have_the_published_widths() {
        let ps = presets();
        assert_eq!(ps.len(), 12);
        for p in &ps {
            if let Err(e) = p.config.validate() {
                panic!("{}: {e}", p.repo);
            }
            assert_eq!(p.config.sample_size * 32, p.bin_side, "{}", p.repo);
        }
        let c = &preset("Sana_600M_1024px").unwrap().config;
        assert_eq!(
            (c.inner_dim(), c.num_layers, c.ff_hidden()),
            (1152, 28, 2880)
        );
        let c = &preset("efficient-large-model/sana_1600m_4kpx_bf16_diffusers")
            .unwrap()
            .config;
        assert_eq!((c.sample_size, c.interpolation_scale), (128, Some(2.0)));
        let s = preset("Sana_Sprint_1.6B_1024px").unwrap();
        assert!(s.sprint && s.config.guidance_embeds && s.config.qk_norm().unwrap());
        assert!(preset("Sana_9000M").is_none());
    }
}

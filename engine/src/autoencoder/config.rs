//! DC-AE architecture config: the diffusers `AutoencoderDC` fields, parsed from a
//! `config.json`, and named presets for every official checkpoint.
//!
//! Presets mirror `get_ae_config()` in diffusers `scripts/convert_dcae_to_diffusers.py`
//! (huggingface/diffusers @ 58eb52c, = pip 0.42.1) and, for checkpoints that script lacks
//! (sana-1.1, lite, 1.5), the cfg strings of dc-ai-projects/DC-Gen @ cae2205
//! `dc_gen/ae_model_zoo.py`.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
pub use crate::nn::act::Act;
pub use crate::nn::norm::NormType;

/// Block type of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockType {
    /// conv3x3 -> act -> conv3x3 -> norm, + x.
    ResBlock,
    /// LiteMLA (ReLU linear attention) then GLUMBConv, each residual.
    EfficientViTBlock,
}

/// Encoder downsampling main branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downsample {
    /// 3x3 conv to Cout/4 then pixel_unshuffle(2).
    PixelUnshuffle,
    /// 3x3 conv with stride 2.
    StridedConv,
}

/// Decoder upsampling main branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsample {
    /// 3x3 conv to 4*Cout then pixel_shuffle(2).
    PixelShuffle,
    /// Nearest x2 then 3x3 conv.
    Interpolate,
}

/// Full architecture description of one DC-AE model (encoder + decoder).
#[derive(Debug, Clone, PartialEq)]
pub struct DcAeConfig {
    pub in_channels: usize,
    pub latent_channels: usize,
    pub attention_head_dim: usize,
    pub encoder_block_types: Vec<BlockType>,
    pub decoder_block_types: Vec<BlockType>,
    pub encoder_block_out_channels: Vec<usize>,
    pub decoder_block_out_channels: Vec<usize>,
    pub encoder_layers_per_block: Vec<usize>,
    pub decoder_layers_per_block: Vec<usize>,
    pub encoder_qkv_multiscales: Vec<Vec<usize>>,
    pub decoder_qkv_multiscales: Vec<Vec<usize>>,
    pub upsample_block_type: Upsample,
    pub downsample_block_type: Downsample,
    pub decoder_norm_types: Vec<NormType>,
    pub decoder_act_fns: Vec<Act>,
    /// Channel-averaging shortcut around `encoder.conv_out`.
    pub encoder_out_shortcut: bool,
    /// Channel-duplicating shortcut around `decoder.conv_in`.
    pub decoder_in_shortcut: bool,
    pub decoder_conv_act_fn: Act,
    /// 1 / RMS of the latents; `None` where upstream gives none.
    pub scaling_factor: Option<f64>,
    /// Space-to-channel / channel-to-space shortcuts around every down/up block (the paper's
    /// residual autoencoding). `false` is the paper's ablation; not a diffusers field
    /// (`dcae_resample_shortcut` in config.json), default `true`.
    pub resample_shortcut: bool,
}

const W6: [usize; 6] = [128, 256, 512, 512, 1024, 1024];

fn rep<T: Clone>(v: T, n: usize) -> Vec<T> {
    vec![v; n]
}

impl DcAeConfig {
    /// Spatial compression factor: 2^(number of stages - 1).
    pub fn spatial_compression(&self) -> usize {
        1 << (self.encoder_block_out_channels.len() - 1)
    }

    /// `[C, H, W]` of the image an `h x w` latent decodes to.
    pub fn image_size_of(&self, h: usize, w: usize) -> [usize; 3] {
        let f = self.spatial_compression();
        [self.in_channels, h * f, w * f]
    }

    fn in_mix(widths: Vec<usize>, latent: usize, scaling: f64) -> Self {
        let n = widths.len();
        let blocks: Vec<BlockType> = (0..n)
            .map(|i| {
                if i < 3 {
                    BlockType::ResBlock
                } else {
                    BlockType::EfficientViTBlock
                }
            })
            .collect();
        let mut enc_depth = vec![0, 4, 8];
        let mut dec_depth = vec![0, 5, 10];
        enc_depth.extend(rep(2, n - 3));
        dec_depth.extend(rep(2, n - 3));
        let norms = (0..n)
            .map(|i| {
                if i < 3 {
                    NormType::BatchNorm
                } else {
                    NormType::RmsNorm
                }
            })
            .collect();
        let acts = (0..n)
            .map(|i| if i < 3 { Act::Relu } else { Act::Silu })
            .collect();
        Self {
            in_channels: 3,
            latent_channels: latent,
            attention_head_dim: 32,
            encoder_block_types: blocks.clone(),
            decoder_block_types: blocks,
            encoder_block_out_channels: widths.clone(),
            decoder_block_out_channels: widths,
            encoder_layers_per_block: enc_depth,
            decoder_layers_per_block: dec_depth,
            encoder_qkv_multiscales: rep(vec![], n),
            decoder_qkv_multiscales: rep(vec![], n),
            upsample_block_type: Upsample::PixelShuffle,
            downsample_block_type: Downsample::PixelUnshuffle,
            decoder_norm_types: norms,
            decoder_act_fns: acts,
            encoder_out_shortcut: true,
            decoder_in_shortcut: true,
            decoder_conv_act_fn: Act::Relu,
            scaling_factor: Some(scaling),
            resample_shortcut: true,
        }
    }

    fn widths(extra: &[usize]) -> Vec<usize> {
        let mut w = W6.to_vec();
        w.extend_from_slice(extra);
        w
    }

    // diffusers convert_dcae_to_diffusers.py @58eb52c, get_ae_config("dc-ae-f32c32-in-1.0").
    pub fn f32c32_in_1_0() -> Self {
        Self::in_mix(Self::widths(&[]), 32, 0.3189)
    }
    // get_ae_config("dc-ae-f32c32-mix-1.0").
    pub fn f32c32_mix_1_0() -> Self {
        Self::in_mix(Self::widths(&[]), 32, 0.4552)
    }
    // get_ae_config("dc-ae-f64c128-in-1.0").
    pub fn f64c128_in_1_0() -> Self {
        Self::in_mix(Self::widths(&[2048]), 128, 0.2889)
    }
    // get_ae_config("dc-ae-f64c128-mix-1.0").
    pub fn f64c128_mix_1_0() -> Self {
        Self::in_mix(Self::widths(&[2048]), 128, 0.4538)
    }
    // get_ae_config("dc-ae-f128c512-in-1.0").
    pub fn f128c512_in_1_0() -> Self {
        Self::in_mix(Self::widths(&[2048, 2048]), 512, 0.4883)
    }
    // get_ae_config("dc-ae-f128c512-mix-1.0").
    pub fn f128c512_mix_1_0() -> Self {
        Self::in_mix(Self::widths(&[2048, 2048]), 512, 0.3620)
    }

    // get_ae_config("dc-ae-f32c32-sana-1.0"): stride-2 conv down, interpolate up,
    // multi-scale (5) attention, RMSNorm/SiLU everywhere.
    pub fn f32c32_sana_1_0() -> Self {
        let blocks = vec![
            BlockType::ResBlock,
            BlockType::ResBlock,
            BlockType::ResBlock,
            BlockType::EfficientViTBlock,
            BlockType::EfficientViTBlock,
            BlockType::EfficientViTBlock,
        ];
        let ms = vec![vec![], vec![], vec![], vec![5], vec![5], vec![5]];
        Self {
            in_channels: 3,
            latent_channels: 32,
            attention_head_dim: 32,
            encoder_block_types: blocks.clone(),
            decoder_block_types: blocks,
            encoder_block_out_channels: W6.to_vec(),
            decoder_block_out_channels: W6.to_vec(),
            encoder_layers_per_block: vec![2, 2, 2, 3, 3, 3],
            decoder_layers_per_block: vec![3, 3, 3, 3, 3, 3],
            encoder_qkv_multiscales: ms.clone(),
            decoder_qkv_multiscales: ms,
            upsample_block_type: Upsample::Interpolate,
            downsample_block_type: Downsample::StridedConv,
            decoder_norm_types: rep(NormType::RmsNorm, 6),
            decoder_act_fns: rep(Act::Silu, 6),
            encoder_out_shortcut: true,
            decoder_in_shortcut: true,
            decoder_conv_act_fn: Act::Relu,
            scaling_factor: Some(0.41407),
            resample_shortcut: true,
        }
    }

    // DC-Gen ae_model_zoo.py: same cfg string as sana-1.0 (only the decoder weights differ).
    pub fn f32c32_sana_1_1() -> Self {
        Self::f32c32_sana_1_0()
    }

    // DC-Gen ae_model_zoo.py "dc-ae-lite-f32c32-sana-1.1": sana encoder, all-ResBlock decoder
    // [0,3,5,4,4,4], pixel-shuffle upsampling, SiLU before the head conv.
    pub fn lite_f32c32_sana_1_1() -> Self {
        Self {
            decoder_block_types: rep(BlockType::ResBlock, 6),
            decoder_layers_per_block: vec![0, 3, 5, 4, 4, 4],
            decoder_qkv_multiscales: rep(vec![], 6),
            upsample_block_type: Upsample::PixelShuffle,
            decoder_conv_act_fn: Act::Silu,
            ..Self::f32c32_sana_1_0()
        }
    }

    fn v1_5(widths: Vec<usize>, scaling: Option<f64>) -> Self {
        let n = widths.len();
        let mut depth = vec![0, 5, 10];
        depth.extend(rep(4, n - 3));
        Self {
            in_channels: 3,
            latent_channels: 128,
            attention_head_dim: 32,
            encoder_block_types: rep(BlockType::ResBlock, n),
            decoder_block_types: rep(BlockType::ResBlock, n),
            encoder_block_out_channels: widths.clone(),
            decoder_block_out_channels: widths,
            encoder_layers_per_block: depth.clone(),
            decoder_layers_per_block: depth,
            encoder_qkv_multiscales: rep(vec![], n),
            decoder_qkv_multiscales: rep(vec![], n),
            upsample_block_type: Upsample::PixelShuffle,
            downsample_block_type: Downsample::PixelUnshuffle,
            decoder_norm_types: rep(NormType::RmsNorm, n),
            decoder_act_fns: rep(Act::Silu, n),
            encoder_out_shortcut: false,
            decoder_in_shortcut: false,
            decoder_conv_act_fn: Act::Silu,
            scaling_factor: scaling,
            resample_shortcut: true,
        }
    }

    // DC-Gen ae_model_zoo.py "dc-ae-f32c128-1.5" (full channel count; no scaling factor upstream).
    pub fn f32c128_1_5() -> Self {
        Self::v1_5(Self::widths(&[]), None)
    }
    // DC-Gen ae_model_zoo.py "dc-ae-f64c128-1.5"; scaling 0.5935 from c2i_model_zoo.py.
    pub fn f64c128_1_5() -> Self {
        Self::v1_5(Self::widths(&[1024]), Some(0.5935))
    }

    /// Every official checkpoint name with its preset.
    pub fn official() -> Vec<(&'static str, DcAeConfig)> {
        vec![
            ("dc-ae-f32c32-in-1.0", Self::f32c32_in_1_0()),
            ("dc-ae-f32c32-in-1.0-256px", Self::f32c32_in_1_0()),
            ("dc-ae-f32c32-mix-1.0", Self::f32c32_mix_1_0()),
            ("dc-ae-f64c128-in-1.0", Self::f64c128_in_1_0()),
            ("dc-ae-f64c128-mix-1.0", Self::f64c128_mix_1_0()),
            ("dc-ae-f128c512-in-1.0", Self::f128c512_in_1_0()),
            ("dc-ae-f128c512-mix-1.0", Self::f128c512_mix_1_0()),
            ("dc-ae-f32c32-sana-1.0", Self::f32c32_sana_1_0()),
            ("dc-ae-f32c32-sana-1.1", Self::f32c32_sana_1_1()),
            ("dc-ae-lite-f32c32-sana-1.1", Self::lite_f32c32_sana_1_1()),
            ("dc-ae-lite-f32c32", Self::lite_f32c32_sana_1_1()),
            ("dc-ae-f32c128-1.5", Self::f32c128_1_5()),
            ("dc-ae-f64c128-1.5", Self::f64c128_1_5()),
            // Names as fixtures/dcae/official-configs.json spells them.
            ("dc-ae-1.5-f32c128", Self::f32c128_1_5()),
            ("dc-ae-1.5-f64c128", Self::f64c128_1_5()),
        ]
    }

    /// Preset for an official name. Accepts `org/` prefixes and a `-diffusers` suffix.
    pub fn from_model_name(name: &str) -> Result<Self> {
        let base = name.rsplit('/').next().unwrap_or(name);
        let base = base.strip_suffix("-diffusers").unwrap_or(base);
        Self::official()
            .into_iter()
            .find(|(n, _)| *n == base)
            .map(|(_, c)| c)
            .ok_or_else(|| Error::UnknownModel {
                name: name.to_string(),
                known: Self::official()
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Reads a `config.json`: either diffusers `AutoencoderDC` fields or
    /// `{"model_name": "<official name>"}` as the original efficientvit repos ship.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::io::read_text(path)?;
        Self::from_json_str(&text).map_err(|e| match e {
            Error::Config { message, .. } => Error::Config {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses config JSON text (see [`DcAeConfig::from_file`]).
    pub fn from_json_str(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| cfg_err(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| cfg_err("top level is not a JSON object".into()))?;
        if let Some(name) = obj.get("model_name") {
            let name = name
                .as_str()
                .ok_or_else(|| cfg_err("`model_name` is not a string".into()))?;
            return Self::from_model_name(name);
        }
        if let Some(class) = obj.get("_class_name").and_then(Value::as_str)
            && class != "AutoencoderDC"
        {
            return Err(cfg_err(format!(
                "`_class_name` is `{class}`, expected `AutoencoderDC`"
            )));
        }
        let enc_w = usize_list(obj, "encoder_block_out_channels", None)?;
        let n = enc_w.len();
        if n < 2 {
            return Err(cfg_err(
                "`encoder_block_out_channels` needs at least 2 stages".into(),
            ));
        }
        let cfg = Self {
            in_channels: usize_field(obj, "in_channels", Some(3))?,
            latent_channels: usize_field(obj, "latent_channels", Some(32))?,
            attention_head_dim: usize_field(obj, "attention_head_dim", Some(32))?,
            encoder_block_types: per_stage(obj, "encoder_block_types", n, parse_block)?,
            decoder_block_types: per_stage(obj, "decoder_block_types", n, parse_block)?,
            decoder_block_out_channels: usize_list(obj, "decoder_block_out_channels", Some(n))?,
            encoder_block_out_channels: enc_w,
            encoder_layers_per_block: usize_list(obj, "encoder_layers_per_block", Some(n))?,
            decoder_layers_per_block: usize_list(obj, "decoder_layers_per_block", Some(n))?,
            encoder_qkv_multiscales: multiscales(obj, "encoder_qkv_multiscales", n)?,
            decoder_qkv_multiscales: multiscales(obj, "decoder_qkv_multiscales", n)?,
            // diffusers: pixel_unshuffle only for exactly "pixel_unshuffle", anything else is a
            // stride-2 conv; interpolation only for exactly "interpolate".
            downsample_block_type: match str_field(obj, "downsample_block_type", "pixel_unshuffle")?
                .as_str()
            {
                "pixel_unshuffle" => Downsample::PixelUnshuffle,
                _ => Downsample::StridedConv,
            },
            upsample_block_type: match str_field(obj, "upsample_block_type", "pixel_shuffle")?
                .as_str()
            {
                "interpolate" => Upsample::Interpolate,
                _ => Upsample::PixelShuffle,
            },
            decoder_norm_types: per_stage(obj, "decoder_norm_types", n, parse_norm)?,
            decoder_act_fns: per_stage(obj, "decoder_act_fns", n, parse_act)?,
            encoder_out_shortcut: bool_field(obj, "encoder_out_shortcut", true)?,
            decoder_in_shortcut: bool_field(obj, "decoder_in_shortcut", true)?,
            decoder_conv_act_fn: parse_act(&str_field(obj, "decoder_conv_act_fn", "relu")?)?,
            scaling_factor: match obj.get("scaling_factor") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_f64()
                        .ok_or_else(|| cfg_err("`scaling_factor` is not a number".into()))?,
                ),
            },
            resample_shortcut: bool_field(obj, "dcae_resample_shortcut", true)?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The diffusers `AutoencoderDC` `config.json` for this architecture, so an exported folder
    /// loads in `diffusers.AutoencoderDC.from_pretrained` and in our loader.
    pub fn to_diffusers_json(&self) -> Value {
        let blocks = |v: &[BlockType]| -> Vec<&str> {
            v.iter()
                .map(|b| match b {
                    BlockType::ResBlock => "ResBlock",
                    BlockType::EfficientViTBlock => "EfficientViTBlock",
                })
                .collect()
        };
        let act = |a: Act| match a {
            Act::Relu => "relu",
            Act::Silu => "silu",
            Act::Gelu => "gelu",
        };
        let norms: Vec<&str> = self
            .decoder_norm_types
            .iter()
            .map(|n| match n {
                NormType::RmsNorm => "rms_norm",
                NormType::BatchNorm => "batch_norm",
            })
            .collect();
        let acts: Vec<&str> = self.decoder_act_fns.iter().map(|a| act(*a)).collect();
        let mut v = serde_json::json!({
            "_class_name": "AutoencoderDC",
            "in_channels": self.in_channels,
            "latent_channels": self.latent_channels,
            "attention_head_dim": self.attention_head_dim,
            "encoder_block_types": blocks(&self.encoder_block_types),
            "decoder_block_types": blocks(&self.decoder_block_types),
            "encoder_block_out_channels": self.encoder_block_out_channels,
            "decoder_block_out_channels": self.decoder_block_out_channels,
            "encoder_layers_per_block": self.encoder_layers_per_block,
            "decoder_layers_per_block": self.decoder_layers_per_block,
            "encoder_qkv_multiscales": self.encoder_qkv_multiscales,
            "decoder_qkv_multiscales": self.decoder_qkv_multiscales,
            "upsample_block_type": match self.upsample_block_type {
                Upsample::PixelShuffle => "pixel_shuffle",
                Upsample::Interpolate => "interpolate",
            },
            "downsample_block_type": match self.downsample_block_type {
                Downsample::PixelUnshuffle => "pixel_unshuffle",
                Downsample::StridedConv => "conv",
            },
            "decoder_norm_types": norms,
            "decoder_act_fns": acts,
            "encoder_out_shortcut": self.encoder_out_shortcut,
            "decoder_in_shortcut": self.decoder_in_shortcut,
            "decoder_conv_act_fn": act(self.decoder_conv_act_fn),
            "scaling_factor": self.scaling_factor,
        });
        // Ours only (diffusers warns on unknown fields): written when it is not the default.
        if !self.resample_shortcut
            && let Some(o) = v.as_object_mut()
        {
            o.insert("dcae_resample_shortcut".into(), Value::Bool(false));
        }
        v
    }

    /// The small f32c32 architecture of the embedded f32c32 default (`assets/models/f32c32`):
    /// the sana-1.0 layout (ResBlock stages, then linear-attention stages; RMSNorm/SiLU) with
    /// narrow widths and depth 1 per stage, so it trains on a CPU.
    pub fn default_small() -> Self {
        let mut c = Self::f32c32_sana_1_0();
        c.encoder_block_out_channels = vec![32, 64, 64, 128, 128, 128];
        c.decoder_block_out_channels = c.encoder_block_out_channels.clone();
        c.encoder_layers_per_block = vec![0, 1, 1, 1, 1, 1];
        c.decoder_layers_per_block = vec![0, 1, 1, 1, 1, 1];
        c.encoder_qkv_multiscales = vec![vec![]; 6];
        c.decoder_qkv_multiscales = vec![vec![]; 6];
        c.scaling_factor = None;
        c
    }

    /// Checks the invariants the architecture relies on (divisibility of the shortcut groups,
    /// head sizes), so a bad config fails here with a message rather than deep in a forward pass.
    pub fn validate(&self) -> Result<()> {
        let n = self.encoder_block_out_channels.len();
        let w = &self.encoder_block_out_channels;
        let dw = &self.decoder_block_out_channels;
        let check = |ok: bool, msg: String| if ok { Ok(()) } else { Err(cfg_err(msg)) };
        check(
            self.latent_channels > 0,
            "latent_channels must be > 0".into(),
        )?;
        check(
            self.attention_head_dim > 0,
            "attention_head_dim must be > 0".into(),
        )?;
        check(
            n <= 12,
            format!("{n} stages is more than this engine supports (12)"),
        )?;
        let d0 = self.encoder_layers_per_block[0];
        let (lo, hi) = if d0 > 0 { (0, n) } else { (1, n) };
        for (name, widths, types, ms) in [
            (
                "encoder",
                w,
                &self.encoder_block_types,
                &self.encoder_qkv_multiscales,
            ),
            (
                "decoder",
                dw,
                &self.decoder_block_types,
                &self.decoder_qkv_multiscales,
            ),
        ] {
            for i in 0..n {
                check(widths[i] > 0, format!("{name} width {i} is 0"))?;
                if types[i] == BlockType::EfficientViTBlock {
                    check(
                        widths[i].is_multiple_of(self.attention_head_dim),
                        format!(
                            "{name} stage {i}: width {} is not a multiple of attention_head_dim {}",
                            widths[i], self.attention_head_dim
                        ),
                    )?;
                }
                if ms[i].len() > 1 || ms[i].iter().any(|k| k.is_multiple_of(2)) {
                    return Err(Error::Unsupported(format!(
                        "{name} stage {i}: qkv_multiscales {:?} (one odd kernel size at most)",
                        ms[i]
                    )));
                }
            }
        }
        for i in lo..hi.saturating_sub(1) {
            let (a, b) = (w[i], w[i + 1]);
            check(
                (4 * a).is_multiple_of(b) && 4 * a >= b,
                format!("encoder stage {i}: 4*{a} channels cannot be averaged into {b}"),
            )?;
            let (a, b) = (dw[i + 1], dw[i]);
            check(
                (4 * b).is_multiple_of(a) && 4 * b >= a,
                format!("decoder stage {i}: {a} channels cannot be duplicated into 4*{b}"),
            )?;
        }
        if d0 == 0 {
            check(
                w[1].is_multiple_of(4),
                "encoder width 1 must be a multiple of 4".into(),
            )?;
        }
        if self.encoder_out_shortcut {
            check(
                w[n - 1].is_multiple_of(self.latent_channels),
                format!(
                    "encoder_out_shortcut: top width {} is not a multiple of latent_channels {}",
                    w[n - 1],
                    self.latent_channels
                ),
            )?;
        }
        if self.decoder_in_shortcut {
            check(
                dw[n - 1].is_multiple_of(self.latent_channels),
                format!(
                    "decoder_in_shortcut: top width {} is not a multiple of latent_channels {}",
                    dw[n - 1],
                    self.latent_channels
                ),
            )?;
        }
        Ok(())
    }
}

fn cfg_err(message: String) -> Error {
    Error::Config {
        path: "config.json".into(),
        message,
    }
}

type Obj = serde_json::Map<String, Value>;

fn usize_of(v: &Value, key: &str) -> Result<usize> {
    v.as_u64()
        .map(|x| x as usize)
        .ok_or_else(|| cfg_err(format!("`{key}` must hold non-negative integers, got {v}")))
}

fn usize_field(obj: &Obj, key: &str, default: Option<usize>) -> Result<usize> {
    match (obj.get(key), default) {
        (Some(v), _) => usize_of(v, key),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(cfg_err(format!("missing field `{key}`"))),
    }
}

fn usize_list(obj: &Obj, key: &str, len: Option<usize>) -> Result<Vec<usize>> {
    let v = obj
        .get(key)
        .ok_or_else(|| cfg_err(format!("missing field `{key}`")))?;
    let list = match (v, len) {
        (Value::Array(a), _) => a
            .iter()
            .map(|x| usize_of(x, key))
            .collect::<Result<Vec<_>>>()?,
        (Value::Number(_), Some(n)) => vec![usize_of(v, key)?; n],
        _ => return Err(cfg_err(format!("`{key}` must be a list of integers"))),
    };
    if let Some(n) = len
        && list.len() != n
    {
        return Err(cfg_err(format!(
            "`{key}` has {} entries, the config has {n} stages",
            list.len()
        )));
    }
    Ok(list)
}

fn str_field(obj: &Obj, key: &str, default: &str) -> Result<String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(cfg_err(format!("`{key}` must be a string, got {v}"))),
    }
}

fn bool_field(obj: &Obj, key: &str, default: bool) -> Result<bool> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(cfg_err(format!("`{key}` must be true or false, got {v}"))),
    }
}

/// diffusers accepts a single string for a per-stage field and repeats it.
fn per_stage<T>(obj: &Obj, key: &str, n: usize, parse: fn(&str) -> Result<T>) -> Result<Vec<T>> {
    let v = obj
        .get(key)
        .ok_or_else(|| cfg_err(format!("missing field `{key}`")))?;
    let items: Vec<T> = match v {
        Value::String(s) => (0..n).map(|_| parse(s)).collect::<Result<Vec<_>>>()?,
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .ok_or_else(|| cfg_err(format!("`{key}` must hold strings, got {x}")))
                    .and_then(parse)
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(cfg_err(format!("`{key}` must be a string or a list"))),
    };
    if items.len() != n {
        return Err(cfg_err(format!(
            "`{key}` has {} entries, the config has {n} stages",
            items.len()
        )));
    }
    Ok(items)
}

fn multiscales(obj: &Obj, key: &str, n: usize) -> Result<Vec<Vec<usize>>> {
    let Some(v) = obj.get(key) else {
        return Ok(vec![vec![]; n]);
    };
    let a = v
        .as_array()
        .ok_or_else(|| cfg_err(format!("`{key}` must be a list of lists")))?;
    if a.len() != n {
        return Err(cfg_err(format!(
            "`{key}` has {} entries, the config has {n} stages",
            a.len()
        )));
    }
    a.iter()
        .map(|s| {
            s.as_array()
                .ok_or_else(|| cfg_err(format!("`{key}` must be a list of lists")))?
                .iter()
                .map(|x| usize_of(x, key))
                .collect()
        })
        .collect()
}

fn parse_block(s: &str) -> Result<BlockType> {
    match s {
        "ResBlock" => Ok(BlockType::ResBlock),
        "EfficientViTBlock" => Ok(BlockType::EfficientViTBlock),
        other => Err(Error::Unsupported(format!("block type `{other}`"))),
    }
}

fn parse_norm(s: &str) -> Result<NormType> {
    match s {
        "rms_norm" => Ok(NormType::RmsNorm),
        "batch_norm" => Ok(NormType::BatchNorm),
        other => Err(Error::Unsupported(format!("norm type `{other}`"))),
    }
}

fn parse_act(s: &str) -> Result<Act> {
    match s {
        "relu" => Ok(Act::Relu),
        "silu" | "swish" => Ok(Act::Silu),
        "gelu" => Ok(Act::Gelu),
        other => Err(Error::Unsupported(format!("activation `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffusers_json_round_trips_every_preset() {
        let mut all = DcAeConfig::official();
        all.push(("default-small", DcAeConfig::default_small()));
        let mut ablation = DcAeConfig::default_small();
        ablation.resample_shortcut = false;
        all.push(("no-shortcut", ablation));
        for (name, cfg) in all {
            let text = cfg.to_diffusers_json().to_string();
            let back = DcAeConfig::from_json_str(&text).unwrap();
            assert_eq!(back, cfg, "{name}");
        }
    }

    #[test]
    fn model_name_config_resolves_preset() {
        let c = DcAeConfig::from_json_str(r#"{"model_name": "dc-ae-f64c128-in-1.0"}"#).unwrap();
        assert_eq!(c, DcAeConfig::f64c128_in_1_0());
        assert_eq!(c.spatial_compression(), 64);
        let c =
            DcAeConfig::from_model_name("mit-han-lab/dc-ae-f128c512-mix-1.0-diffusers").unwrap();
        assert_eq!(c.spatial_compression(), 128);
        assert_eq!(c.latent_channels, 512);
    }

    #[test]
    fn unknown_model_name_is_an_error() {
        let e = DcAeConfig::from_json_str(r#"{"model_name": "dc-ae-f16c4"}"#).unwrap_err();
        assert!(
            e.to_string().contains("unknown model name `dc-ae-f16c4`"),
            "{e}"
        );
    }

    #[test]
    fn downsample_parsing_mirrors_diffusers_quirk() {
        let json = r#"{"encoder_block_out_channels": [8, 16], "decoder_block_out_channels": [8, 16],
            "encoder_layers_per_block": [1, 1], "decoder_layers_per_block": [1, 1],
            "encoder_block_types": "ResBlock", "decoder_block_types": "ResBlock",
            "decoder_norm_types": "rms_norm", "decoder_act_fns": "silu", "latent_channels": 4,
            "downsample_block_type": "Conv", "upsample_block_type": "InterpolateConv"}"#;
        let c = DcAeConfig::from_json_str(json).unwrap();
        assert_eq!(c.downsample_block_type, Downsample::StridedConv);
        assert_eq!(c.upsample_block_type, Upsample::PixelShuffle);
    }

    #[test]
    fn bad_configs_are_errors() {
        for bad in [
            "[]",
            "{",
            r#"{"encoder_block_out_channels": [8]}"#,
            r#"{"model_name": 3}"#,
            r#"{"_class_name": "AutoencoderKL"}"#,
        ] {
            assert!(DcAeConfig::from_json_str(bad).is_err(), "{bad}");
        }
    }
}

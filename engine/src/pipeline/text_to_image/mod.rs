//! Text-to-image with Sana (`dcae generate`, the app's generation tab): a diffusers Sana
//! pipeline folder ([`folder`]), the prompt through the tokenizer and Gemma-2 (cached by
//! tokens), the transformer sampled with flow DPM-Solver / flow Euler (CFG, PAG) or Sprint's
//! SCM, the repo's own DC-AE decoding (tiled when large), resolution binning, and every
//! setting in the PNG so `--from` replays it. Stages free their model before the next loads
//! ([`plan`]).

pub mod folder;
pub mod plan;

pub use folder::{PipelineKind, SanaFolder, SchedulerConfig};
pub use plan::{MemoryPlan, PlanInput};

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::class_to_image::{Images, grid};
use super::settings::{ascii_json, png_with_text, read_png_json};
use crate::autoencoder::tiling::Tiling;
use crate::backend::Backend;
use crate::diffusion::rng;
use crate::diffusion::sampler::{
    Conditioning, Hooks, TextGuidance, flow_dpm_solver, flow_euler, scm_sample,
};
use crate::diffusion::sana::bins::{classify, resize_and_crop, table_for_sample_size};
use crate::diffusion::sana::{NEGATIVE, SanaConfig, SanaDenoiser, TextEmbeddings};
use crate::error::{Error, Result};
use crate::pipeline::preview::{DecodeOnDemand, decode_estimate};
use crate::task::{Cancel, Progress};
use crate::text::prompt::{PromptOptions, PromptTokens, negative_tokens, prompt_tokens};
use crate::text::{Gemma2Config, TextTokenizer};
use crate::weights::Precision;

/// tEXt keyword of the text-to-image settings chunk.
pub const GENERATE_KEY: &str = "dcae-generate";
/// Images per run.
pub const MAX_BATCH: usize = 16;
/// Largest side generated (the 4K bins reach 8192).
pub const MAX_SIDE: usize = 8192;
pub const MAX_STEPS: usize = 1000;
pub const MAX_SCALE: f32 = 100.0;
/// Recent prompt embeddings kept in memory.
const CACHE_ENTRIES: usize = 8;

/// The sampler of a text-to-image run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSampler {
    /// diffusers' `DPMSolverMultistepScheduler` with flow sigmas (the repos' default).
    FlowDpm,
    /// `FlowMatchEulerDiscreteScheduler`.
    FlowEuler,
    /// Sana-Sprint's `SCMScheduler`.
    Scm,
}

impl TextSampler {
    pub fn name(self) -> &'static str {
        match self {
            TextSampler::FlowDpm => "flow-dpm",
            TextSampler::FlowEuler => "flow-euler",
            TextSampler::Scm => "scm",
        }
    }
}

impl std::fmt::Display for TextSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TextSampler {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "flow-dpm" => Ok(TextSampler::FlowDpm),
            "flow-euler" => Ok(TextSampler::FlowEuler),
            "scm" => Ok(TextSampler::Scm),
            o => Err(format!("unknown sampler `{o}` (flow-dpm, flow-euler, scm)")),
        }
    }
}

serde_by_name!(TextSampler);

/// Every setting of one run; its JSON is what the PNG stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextToImage {
    /// A pipeline folder, or an `org/name` repo id (resolved in the Hugging Face cache).
    pub model: String,
    /// The repo's commit, when `model` is a repo id.
    #[serde(default)]
    pub revision: Option<String>,
    /// Weight file variant (`bf16`, `fp16`), `None` for the plain files.
    #[serde(default)]
    pub variant: Option<String>,
    pub prompt: String,
    #[serde(default)]
    pub negative: String,
    pub steps: usize,
    pub cfg: f32,
    /// Perturbed-attention guidance scale (0 = off) and its blocks.
    pub pag: f32,
    pub pag_blocks: Vec<usize>,
    pub sampler: TextSampler,
    /// Flow shift of the sigma schedule (from the repo's scheduler config by default).
    pub flow_shift: f64,
    /// The size asked for; with `binning` the model generates at the nearest aspect-ratio bin
    /// and the image is resized and centre-cropped back to it.
    pub width: usize,
    pub height: usize,
    pub binning: bool,
    pub seed: u64,
    pub batch: usize,
    pub prompt_options: PromptOptions,
    pub backend: Backend,
    pub precision: Precision,
}

/// The user's choices; `None` takes the pipeline's default.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    pub negative: Option<String>,
    pub steps: Option<usize>,
    pub cfg: Option<f32>,
    pub pag: Option<f32>,
    pub pag_blocks: Option<Vec<usize>>,
    pub sampler: Option<TextSampler>,
    pub flow_shift: Option<f64>,
    /// `(width, height)`.
    pub size: Option<(usize, usize)>,
    pub binning: Option<bool>,
    pub seed: u64,
    pub batch: Option<usize>,
    pub chi: Option<bool>,
    pub keep_case: Option<bool>,
    pub backend: Option<Backend>,
    pub precision: Option<Precision>,
}

/// PAG defaults: diffusers' `SanaPAGPipeline` (cfg 4.5, pag 3.0, block 0), and the Sana model
/// zoo's (cfg 5.0, pag 2.0, block 8).
pub const PAG_DIFFUSERS: (f32, f32, usize) = (4.5, 3.0, 0);
pub const PAG_MODEL_ZOO: (f32, f32, usize) = (5.0, 2.0, 8);

impl TextToImage {
    /// Settings with the pipeline's defaults where a choice is `None`: diffusers'
    /// `SanaPipeline` (20 steps, CFG 4.5, 1024 x 1024, binning, CHI, lower case) or
    /// `SanaSprintPipeline` (2 SCM steps, embedded guidance 4.5).
    pub fn with_defaults(
        model: String,
        revision: Option<String>,
        folder: &SanaFolder,
        prompt: String,
        c: Choices,
    ) -> Self {
        let sprint = folder.kind == PipelineKind::Sprint;
        let sched_default = match (sprint, folder.scheduler.class.as_str()) {
            (true, _) => TextSampler::Scm,
            (false, "FlowMatchEulerDiscreteScheduler") => TextSampler::FlowEuler,
            _ => TextSampler::FlowDpm,
        };
        let (w, h) = c.size.unwrap_or((1024, 1024));
        let pag = c.pag.unwrap_or(0.0);
        Self {
            model,
            revision,
            variant: folder.variant.clone(),
            prompt,
            negative: c.negative.unwrap_or_default(),
            steps: c.steps.unwrap_or(if sprint { 2 } else { 20 }),
            cfg: c.cfg.unwrap_or(4.5),
            pag,
            pag_blocks: c.pag_blocks.unwrap_or_else(|| vec![PAG_DIFFUSERS.2]),
            sampler: c.sampler.unwrap_or(sched_default),
            flow_shift: c.flow_shift.or(folder.scheduler.flow_shift).unwrap_or(3.0),
            width: w,
            height: h,
            binning: c.binning.unwrap_or(true),
            seed: c.seed,
            batch: c.batch.unwrap_or(1),
            prompt_options: PromptOptions {
                chi: c.chi.unwrap_or(true),
                keep_case: c.keep_case.unwrap_or(false),
                ..PromptOptions::default()
            },
            backend: c.backend.unwrap_or_default(),
            precision: c.precision.unwrap_or_default(),
        }
    }

    /// Every number in its range (command line, app and PNG metadata alike).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Input(m));
        if crate::text::prompt::preprocess(&self.prompt, true).is_empty() {
            return bad("the prompt is empty: say what to draw".into());
        }
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if !(32..=MAX_SIDE).contains(&v) || v % 32 != 0 {
                return bad(format!(
                    "{name} {v}: give a multiple of 32 in 32..={MAX_SIDE} (DC-AE f32 latents)"
                ));
            }
        }
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return bad(format!("steps {}: give 1..={MAX_STEPS}", self.steps));
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return bad(format!("batch {}: give 1..={MAX_BATCH}", self.batch));
        }
        for (name, v) in [("cfg", self.cfg), ("pag", self.pag)] {
            if !(v.is_finite() && (0.0..=MAX_SCALE).contains(&v)) {
                return bad(format!("{name} {v}: give a number in 0..={MAX_SCALE}"));
            }
        }
        if self.pag > 0.0 && self.pag_blocks.is_empty() {
            return bad("PAG needs at least one block (--pag-blocks)".into());
        }
        if !(self.flow_shift.is_finite() && self.flow_shift > 0.0 && self.flow_shift <= 100.0) {
            return bad(format!("flow shift {}: give (0, 100]", self.flow_shift));
        }
        if self.prompt.len() > crate::text::prompt::MAX_PROMPT_BYTES
            || self.negative.len() > crate::text::prompt::MAX_PROMPT_BYTES
        {
            return bad(format!(
                "prompts are limited to {} bytes",
                crate::text::prompt::MAX_PROMPT_BYTES
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Result<Value> {
        let mut v = serde_json::to_value(self)
            .map_err(|e| Error::Input(format!("the settings cannot be stored: {e}")))?;
        v["dcae_version"] = env!("CARGO_PKG_VERSION").into();
        Ok(v)
    }

    pub fn from_json(mut v: Value) -> std::result::Result<Self, String> {
        if let Some(o) = v.as_object_mut() {
            o.remove("dcae_version");
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// The settings of a PNG written by `dcae generate`, validated.
    pub fn from_png(path: &Path) -> Result<Self> {
        let named = |e: String| Error::Input(format!("{}: settings: {e}", path.display()));
        let s = Self::from_json(read_png_json(path, GENERATE_KEY)?).map_err(named)?;
        s.validate().map_err(|e| named(e.to_string()))?;
        Ok(s)
    }
}

/// One run's output.
#[derive(Debug, Clone)]
pub struct Generated {
    /// At the requested size, in about [-1, 1].
    pub images: Images,
    /// The size the model generated at (the bin).
    pub generated: (usize, usize),
    /// The final latents `[B, C, h, w]` (scaled, before the division by the scaling factor).
    pub latents: Vec<f32>,
    pub latent_shape: [usize; 4],
}

/// Embedding cache key: the tokens the encoder reads.
type CacheKey = (Vec<i64>, Vec<i64>);

/// A pipeline folder ready to run, with its recent prompt embeddings.
pub struct TextToImagePipeline {
    pub folder: SanaFolder,
    pub device: Device,
    tokenizer: Option<TextTokenizer>,
    /// `(tokens, selected embeddings [T, C], selected mask)`, most recent last.
    cache: Vec<(CacheKey, Vec<f32>, Vec<i64>)>,
}

/// Rows of `[T, C]` embeddings.
struct Embedded {
    rows: Vec<f32>,
    mask: Vec<i64>,
}

impl TextToImagePipeline {
    pub fn open(root: &Path, variant: Option<&str>, device: &Device) -> Result<Self> {
        Ok(Self {
            folder: SanaFolder::open(root, variant)?,
            device: device.clone(),
            tokenizer: None,
            cache: Vec::new(),
        })
    }

    fn tokenizer(&mut self) -> Result<&TextTokenizer> {
        if self.tokenizer.is_none() {
            self.tokenizer = Some(self.folder.tokenizer()?);
        }
        Ok(self.tokenizer.as_ref().expect("set above"))
    }

    /// The configs of the transformer and text encoder, checked against each other.
    pub fn configs(&self) -> Result<(SanaConfig, Gemma2Config)> {
        let path = |c: &str| self.folder.component(c).join("config.json");
        let sana = SanaConfig::from_file(&path("transformer"))?;
        let gemma = Gemma2Config::from_file(&path("text_encoder"))?;
        if sana.caption_channels != gemma.hidden_size {
            return Err(Error::Config {
                path: path("transformer"),
                message: format!(
                    "caption_channels {} does not match the text encoder's hidden size {}: \
                     the components are from different models",
                    sana.caption_channels, gemma.hidden_size
                ),
            });
        }
        Ok((sana, gemma))
    }

    /// The size generated at (the aspect-ratio bin, or the size asked for).
    pub fn generation_size(&self, s: &TextToImage, sana: &SanaConfig) -> Result<(usize, usize)> {
        if !s.binning {
            return Ok((s.height, s.width));
        }
        let table = if self.folder.kind == PipelineKind::Sprint {
            crate::diffusion::sana::bins::BIN_1024
        } else {
            table_for_sample_size(sana.sample_size)?
        };
        Ok(classify(s.height, s.width, table))
    }

    fn tokens(&mut self, s: &TextToImage) -> Result<(PromptTokens, Option<PromptTokens>)> {
        let opts = s.prompt_options.clone();
        let cfg_on = self.folder.kind == PipelineKind::Sana && s.cfg > 1.0;
        let neg = s.negative.clone();
        let prompt = s.prompt.clone();
        let tok = self.tokenizer()?;
        let p = prompt_tokens(tok, &prompt, &opts)?;
        let n = if cfg_on {
            Some(negative_tokens(tok, &neg, &opts)?)
        } else {
            None
        };
        Ok((p, n))
    }

    fn cached(&self, t: &PromptTokens) -> bool {
        self.cache
            .iter()
            .any(|(k, _, _)| k.0 == t.ids && k.1 == t.mask)
    }

    /// What each stage needs; refuse with [`MemoryPlan::check`] before running.
    pub fn memory_plan(&mut self, s: &TextToImage) -> Result<MemoryPlan> {
        s.validate()?;
        let (sana, gemma) = self.configs()?;
        let (gh, gw) = self.generation_size(s, &sana)?;
        let (p, n) = self.tokens(s)?;
        let text_cached = self.cached(&p) && n.as_ref().is_none_or(|n| self.cached(n));
        let vae = self.folder.vae_config()?;
        let f = vae.spatial_compression();
        let branches = 1
            + usize::from(self.folder.kind == PipelineKind::Sana && s.cfg > 1.0)
            + usize::from(s.pag > 0.0);
        let elem = if s.precision == Precision::F32 { 4 } else { 2 };
        let spec = Tiling::Auto.spec(gh, gw);
        Ok(plan::plan(&PlanInput {
            elem,
            text_params: self.folder.param_count("text_encoder")?,
            text_rows: 1,
            text_tokens: p.len().max(n.as_ref().map_or(0, PromptTokens::len)) as u64,
            text_hidden: gemma.hidden_size as u64,
            text_intermediate: gemma.intermediate_size as u64,
            text_heads: gemma.num_attention_heads as u64,
            text_cached,
            transformer_params: self.folder.param_count("transformer")?,
            rows: (s.batch * branches) as u64,
            tokens: ((gh / f) * (gw / f)) as u64,
            dim: sana.inner_dim() as u64,
            ff_hidden: sana.ff_hidden() as u64,
            caption_tokens: s.prompt_options.max_sequence_length as u64,
            cross_heads: sana.num_cross_attention_heads.unwrap_or(1) as u64,
            vae_params: self.folder.param_count("vae")?,
            decode_work: crate::limits::autoencoder_pass(
                &vae,
                s.batch as u64,
                gh as u64,
                gw as u64,
                spec,
            ),
        }))
    }

    /// Embeddings of `tokens` (BOS + the selected positions), from the cache or by loading the
    /// text encoder once for all that are missing (freed before returning).
    fn embed(
        &mut self,
        all: &[&PromptTokens],
        precision: Precision,
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<Vec<Embedded>> {
        let missing: Vec<usize> = (0..all.len()).filter(|&i| !self.cached(all[i])).collect();
        if !missing.is_empty() {
            let enc = self.folder.text_encoder(&self.device, precision)?;
            for (k, &i) in missing.iter().enumerate() {
                cancel.check()?;
                progress.update("encode", k as u64, missing.len() as u64);
                let t = all[i];
                let hidden = enc.forward(&t.ids, &t.mask, 1, t.len(), &mut Default::default())?;
                let c = hidden.dims()[2];
                let v = hidden
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| Error::readback("the text embeddings", e))?;
                let rows: Vec<f32> = t
                    .select
                    .iter()
                    .flat_map(|&p| v[p * c..(p + 1) * c].iter().copied())
                    .collect();
                let (_, mask) = t.selected();
                if rows.iter().any(|x| !x.is_finite()) {
                    return Err(Error::NonFinite(
                        "the text encoder produced NaN/inf (f16 weights? use bf16 or f32)".into(),
                    ));
                }
                self.cache
                    .push(((t.ids.clone(), t.mask.clone()), rows, mask));
                if self.cache.len() > CACHE_ENTRIES {
                    self.cache.remove(0);
                }
            }
            progress.update("encode", missing.len() as u64, missing.len() as u64);
        }
        all.iter()
            .map(|t| {
                let pos = self
                    .cache
                    .iter()
                    .position(|(k, _, _)| k.0 == t.ids && k.1 == t.mask)
                    .ok_or_else(|| Error::Input("prompt embedding cache lost an entry".into()))?;
                // Most recently used last.
                let e = self.cache.remove(pos);
                let out = Embedded {
                    rows: e.1.clone(),
                    mask: e.2.clone(),
                };
                self.cache.push(e);
                Ok(out)
            })
            .collect()
    }

    /// Runs `s`: encode, sample, decode, resize back. `progress` hears `encode`, `sampling`
    /// and `decode`; `cancel` stops between steps and tiles.
    pub fn run(
        &mut self,
        s: &TextToImage,
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<Generated> {
        s.validate()?;
        let (sana_cfg, _) = self.configs()?;
        let sprint = self.folder.kind == PipelineKind::Sprint;
        match (sprint, s.sampler) {
            (true, TextSampler::Scm) | (false, TextSampler::FlowDpm | TextSampler::FlowEuler) => {}
            (true, o) => {
                return Err(Error::Input(format!(
                    "sampler {o}: Sana-Sprint samples with scm"
                )));
            }
            (false, o) => {
                return Err(Error::Input(format!(
                    "sampler {o}: a Sana model samples with flow-dpm or flow-euler"
                )));
            }
        }
        if let Some(&b) = s.pag_blocks.iter().find(|&&b| b >= sana_cfg.num_layers)
            && s.pag > 0.0
        {
            return Err(Error::Input(format!(
                "PAG block {b}: the transformer has blocks 0..{}",
                sana_cfg.num_layers - 1
            )));
        }
        if sprint && s.pag > 0.0 {
            return Err(Error::Input("Sana-Sprint has no PAG".into()));
        }
        let plan = self.memory_plan(s)?;
        plan.check(crate::limits::budget())?;
        let (gh, gw) = self.generation_size(s, &sana_cfg)?;
        let (p, n) = self.tokens(s)?;
        let mut list = vec![&p];
        if let Some(n) = &n {
            list.push(n);
        }
        let emb = self.embed(&list, s.precision, progress, cancel)?;
        cancel.check()?;

        let model = self.folder.transformer(&self.device, s.precision)?;
        let vae_cfg = self.folder.vae_config()?;
        let f = vae_cfg.spatial_compression();
        let chw = [model.config.in_channels, gh / f, gw / f];
        let b = s.batch;
        let t = s.prompt_options.max_sequence_length;
        let c = model.config.caption_channels;
        let mut rows = Vec::with_capacity((b + 1) * t * c);
        let mut mask = Vec::with_capacity((b + 1) * t);
        for _ in 0..b {
            rows.extend_from_slice(&emb[0].rows);
            mask.extend(emb[0].mask.iter().map(|&m| m as f32));
        }
        match emb.get(1) {
            Some(e) => {
                rows.extend_from_slice(&e.rows);
                mask.extend(e.mask.iter().map(|&m| m as f32));
            }
            None => {
                rows.extend(std::iter::repeat_n(0.0, t * c));
                mask.extend(std::iter::repeat_n(0.0, t));
            }
        }
        let text = TextEmbeddings {
            rows: Tensor::from_data(TensorData::new(rows, [b + 1, t, c]), &self.device),
            mask: Tensor::from_data(TensorData::new(mask, [b + 1, t]), &self.device),
            prompts: b,
        };
        let guidance = sprint.then(|| {
            let scale = model.config.guidance_embeds_scale as f32;
            if s.precision == Precision::Bf16 {
                // diffusers casts the guidance to the text dtype before scaling it.
                let g = half::bf16::from_f32(s.cfg).to_f32();
                half::bf16::from_f32(g * scale).to_f32()
            } else {
                s.cfg * scale
            }
        });
        // SanaPipeline scales the time; its PAG and Sprint pipelines do not.
        let time_scale = if sprint || s.pag > 0.0 {
            1.0
        } else {
            model.config.timestep_scale as f32
        };
        let mut den = SanaDenoiser::new(
            &model,
            &text,
            chw,
            guidance,
            time_scale,
            s.pag_blocks.clone(),
        );
        let per: usize = chw.iter().product();
        let items: Vec<u32> = (0..b as u32).collect();
        let x_t = rng::batch_normals(s.seed, rng::Stream::Initial, &items, per);
        let cond = Conditioning {
            labels: (0..b as i64).collect(),
            null_class: NEGATIVE,
            cfg: s.cfg,
            chw,
            text: Some(TextGuidance { pag: s.pag }),
        };
        // A decode on demand loads the autoencoder during sampling; it then serves the final
        // decode too.
        let mut vae: Option<crate::autoencoder::DcAe> = None;
        let sf = vae_cfg.scaling_factor.unwrap_or(1.0) as f32;
        let latents = {
            let (folder, device) = (&self.folder, &self.device);
            let vae = &mut vae;
            let mut sink = DecodeOnDemand {
                inner: &mut *progress,
                chw,
                scaling: sf,
                decode: |z: Vec<f32>, chw: [usize; 3]| {
                    let ae = match vae {
                        Some(a) => a,
                        None => vae.insert(folder.vae(device, s.precision)?),
                    };
                    decode_estimate(ae, z, chw)
                },
            };
            let hooks = Hooks::new(&mut sink, cancel);
            match s.sampler {
                TextSampler::FlowDpm => {
                    flow_dpm_solver(&mut den, &cond, x_t, s.steps, s.flow_shift, hooks)?
                }
                TextSampler::FlowEuler => {
                    flow_euler(&mut den, &cond, x_t, s.steps, s.flow_shift, hooks)?
                }
                TextSampler::Scm => {
                    let seed = s.seed;
                    let mut noise = move |j: usize| -> Result<Vec<f32>> {
                        Ok(rng::batch_normals(
                            seed,
                            rng::Stream::Step(j as u32),
                            &items,
                            per,
                        ))
                    };
                    scm_sample(&mut den, &cond, x_t, s.steps, &mut noise, hooks)?
                }
            }
        };
        drop(den);
        drop(model);
        if latents.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(
                "sampling produced NaN/inf values; try --precision f32 or a smaller guidance"
                    .into(),
            ));
        }

        let ae = match vae {
            Some(a) => a,
            None => self.folder.vae(&self.device, s.precision)?,
        };
        let z: Vec<f32> = latents.iter().map(|v| v / sf).collect();
        let zt = Tensor::<4>::from_data(
            TensorData::new(z, [b, chw[0], chw[1], chw[2]]),
            &self.device,
        );
        let img = ae.decode_tiled(zt, Tiling::Auto.spec(gh, gw), progress, cancel)?;
        let [_, _, ih, iw] = img.dims();
        let px = img
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::readback("the image", e))?;
        let (oh, ow) = if s.binning {
            (s.height, s.width)
        } else {
            (ih, iw)
        };
        let pixels = if (oh, ow) == (ih, iw) {
            px
        } else {
            (0..b)
                .flat_map(|i| {
                    resize_and_crop(
                        &px[i * 3 * ih * iw..(i + 1) * 3 * ih * iw],
                        3,
                        ih,
                        iw,
                        oh,
                        ow,
                    )
                })
                .collect()
        };
        Ok(Generated {
            images: Images {
                pixels,
                n: b,
                height: oh,
                width: ow,
            },
            generated: (gh, gw),
            latents,
            latent_shape: [b, chw[0], chw[1], chw[2]],
        })
    }
}

/// The images as one PNG (a grid for a batch) with the settings in its text chunk.
pub fn png(g: &Generated, s: &TextToImage) -> Result<Vec<u8>> {
    let cols = ((g.images.n as f64).sqrt().ceil() as usize).max(1);
    let (rgb, w, h) = grid(&g.images, cols);
    png_with_text(&rgb, w, h, GENERATE_KEY, &ascii_json(&s.to_json()?))
}

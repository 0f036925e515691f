//! `dcae generate`: text-to-image with a Sana pipeline (a diffusers folder or a Hugging Face
//! repo id, downloaded into the cache on first use), written as a PNG whose text chunk holds
//! every setting (`--from` replays it byte for byte). The pipeline is the engine's
//! (`dcae::pipeline::text_to_image`); this file parses arguments and shows progress.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use dcae::hub::{self, HubOptions};
use dcae::io::tensors::write_atomic;
use dcae::io::{folder_files, refuse_overwrite};
use dcae::pipeline::text_to_image::{
    self, Choices, GENERATE_KEY, PAG_DIFFUSERS, PAG_MODEL_ZOO, TextSampler, TextToImage,
    TextToImagePipeline,
};
use dcae::{Backend, Precision};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone, Copy, ValueEnum)]
enum PagPreset {
    /// diffusers' SanaPAGPipeline: cfg 4.5, pag 3.0, block 0.
    Diffusers,
    /// The Sana model zoo: cfg 5.0, pag 2.0, block 8.
    Zoo,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// A diffusers Sana pipeline folder (model_index.json, scheduler/, text_encoder/,
    /// tokenizer/, transformer/, vae/) or a repo id such as
    /// Efficient-Large-Model/Sana_1600M_1024px_diffusers.
    #[arg(long, required_unless_present = "from")]
    model: Option<String>,
    /// Weight variant to load or download (bf16, fp16); default: the plain files.
    #[arg(long)]
    variant: Option<String>,
    /// Branch, tag or commit of a repo id.
    #[arg(long, default_value = "main")]
    revision: String,
    #[arg(long, required_unless_present = "from")]
    prompt: Option<String>,
    /// Negative prompt (CFG's unconditional branch; Sana-Sprint has none).
    #[arg(long)]
    negative: Option<String>,
    /// Sampler steps (default 20; Sana-Sprint 2).
    #[arg(long, value_parser = crate::in_range::<1, 1000>)]
    steps: Option<usize>,
    /// Guidance scale (default 4.5; no unconditional pass at <= 1; Sprint embeds it).
    #[arg(long)]
    cfg: Option<f32>,
    /// Perturbed-attention guidance scale (default off).
    #[arg(long)]
    pag: Option<f32>,
    /// Transformer blocks PAG perturbs, comma separated (default 0). Exact indices: `1` is block
    /// 1 only (diffusers' layer regex `transformer_blocks.1` would also take blocks 10-19).
    #[arg(long = "pag-blocks", value_delimiter = ',')]
    pag_blocks: Option<Vec<usize>>,
    /// PAG defaults of diffusers or of the Sana model zoo (cfg, pag scale, block).
    #[arg(long, value_enum)]
    pag_preset: Option<PagPreset>,
    /// flow-dpm | flow-euler (Sana), scm (Sana-Sprint); default: the repo's scheduler.
    #[arg(long)]
    sampler: Option<TextSampler>,
    /// Flow shift (default: the repo's scheduler_config.json).
    #[arg(long)]
    shift: Option<f64>,
    /// WIDTHxHEIGHT, multiples of 32 (default 1024x1024).
    #[arg(long, value_parser = parse_size)]
    size: Option<(usize, usize)>,
    /// Generate at exactly --size instead of the nearest aspect-ratio bin.
    #[arg(long)]
    no_binning: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images (as one grid).
    #[arg(long, value_parser = crate::in_range::<1, 16>)]
    batch: Option<usize>,
    /// Do not prepend the complex human instruction.
    #[arg(long)]
    no_chi: bool,
    /// Keep the prompt's case (diffusers lower-cases it).
    #[arg(long)]
    keep_case: bool,
    #[arg(long)]
    backend: Option<Backend>,
    #[arg(long)]
    precision: Option<Precision>,
    /// Reproduce the image whose metadata a PNG written by `dcae generate` holds.
    #[arg(long, conflicts_with_all = ["model", "prompt", "negative", "steps", "cfg", "pag", "pag_blocks", "pag_preset", "sampler", "shift", "size", "no_binning", "seed", "batch", "no_chi", "keep_case", "variant"])]
    from: Option<PathBuf>,
    /// Output PNG.
    #[arg(short, long)]
    output: PathBuf,
}

fn parse_size(s: &str) -> std::result::Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}`: give WIDTHxHEIGHT, e.g. 1024x768"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{s}`: give WIDTHxHEIGHT, e.g. 1024x768"))
    };
    Ok((n(w)?, n(h)?))
}

/// A folder as it is, or a repo id in the hub cache (downloaded when missing): the folder and
/// the commit.
fn resolve(
    model: &str,
    revision: &str,
    variant: Option<&str>,
    cancel: &dcae::Cancel,
) -> Result<(PathBuf, Option<String>)> {
    let p = Path::new(model);
    if p.is_dir() {
        return Ok((p.to_path_buf(), None));
    }
    if !model.contains('/') || p.exists() {
        bail!("--model {model}: not a pipeline folder, nor an org/name repo id");
    }
    let mut opts = HubOptions::from_env()?;
    opts.revision = revision.to_string();
    let dir = match hub::cached_pipeline(model, &opts, variant)? {
        Some(d) => d,
        None => {
            eprintln!(
                "{model} @ {revision}: not in {}; downloading",
                opts.cache_dir.display()
            );
            let pb = ProgressBar::new(0);
            pb.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} (eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let mut progress = |file: &str, done: u64, total: u64| {
                pb.set_message(file.to_string());
                pb.set_length(total);
                pb.set_position(done);
            };
            let d = hub::download_pipeline(model, &opts, variant, &mut progress, cancel)?;
            pb.finish_and_clear();
            d
        }
    };
    let commit = dir.file_name().map(|c| c.to_string_lossy().into_owned());
    Ok((dir, commit))
}

pub fn run(a: &GenerateArgs) -> Result<()> {
    if !a
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        bail!("output {} must end in .png", a.output.display());
    }
    let cancel = crate::cancel_on_signals()?;
    let (settings, dir) = match &a.from {
        Some(png) => {
            let mut s = TextToImage::from_png(png)?;
            if let Some(b) = a.backend {
                s.backend = b;
            }
            if let Some(p) = a.precision {
                s.precision = p;
            }
            let rev = s.revision.clone().unwrap_or_else(|| "main".into());
            let (dir, _) = resolve(&s.model, &rev, s.variant.as_deref(), &cancel)?;
            eprintln!("settings from {}: {}", png.display(), s.to_json()?);
            (s, dir)
        }
        None => {
            let model = a.model.clone().context("--model is required")?;
            let prompt = a.prompt.clone().context("--prompt is required")?;
            let (dir, revision) = resolve(&model, &a.revision, a.variant.as_deref(), &cancel)?;
            let folder =
                dcae::pipeline::text_to_image::SanaFolder::open(&dir, a.variant.as_deref())?;
            let (mut cfg, mut pag, mut blocks) = (a.cfg, a.pag, a.pag_blocks.clone());
            if let Some(p) = a.pag_preset {
                let (c, s, b) = match p {
                    PagPreset::Diffusers => PAG_DIFFUSERS,
                    PagPreset::Zoo => PAG_MODEL_ZOO,
                };
                cfg = cfg.or(Some(c));
                pag = pag.or(Some(s));
                blocks = blocks.or(Some(vec![b]));
            }
            let model_field = if revision.is_some() {
                model.clone()
            } else {
                dcae::pipeline::settings::absolute(Path::new(&model))
                    .to_string_lossy()
                    .into_owned()
            };
            let choices = Choices {
                negative: a.negative.clone(),
                steps: a.steps,
                cfg,
                pag,
                pag_blocks: blocks,
                sampler: a.sampler,
                flow_shift: a.shift,
                size: a.size,
                binning: Some(!a.no_binning),
                seed: a.seed,
                batch: a.batch,
                chi: Some(!a.no_chi),
                keep_case: Some(a.keep_case),
                backend: a.backend,
                precision: a.precision,
            };
            (
                TextToImage::with_defaults(model_field, revision, &folder, prompt, choices),
                dir,
            )
        }
    };
    settings.validate()?;
    let mut protect: Vec<PathBuf> = a.from.iter().cloned().collect();
    for c in text_to_image::folder::COMPONENTS {
        protect.extend(folder_files(&dir.join(c)));
    }
    refuse_overwrite(&a.output, &protect)?;
    generate(&settings, &dir, a, &cancel)
}

fn generate(s: &TextToImage, dir: &Path, a: &GenerateArgs, cancel: &dcae::Cancel) -> Result<()> {
    let device = s.backend.device()?;
    let mut pipe = TextToImagePipeline::open(dir, s.variant.as_deref(), &device)
        .with_context(|| format!("opening {}", dir.display()))?;
    let plan = pipe.memory_plan(s)?;
    let (sana, _) = pipe.configs()?;
    let (gh, gw) = pipe.generation_size(s, &sana)?;
    eprintln!(
        "{} ({:?}), {}x{} (generated at {gw}x{gh}), {} x{} steps, cfg {}{}, seed {}, {} on {}",
        s.model,
        pipe.folder.kind,
        s.width,
        s.height,
        s.sampler,
        s.steps,
        s.cfg,
        if s.pag > 0.0 {
            format!(", pag {} at blocks {:?}", s.pag, s.pag_blocks)
        } else {
            String::new()
        },
        s.seed,
        s.precision.name(),
        s.backend
    );
    eprintln!("memory plan (each stage frees its model before the next):");
    for l in plan.lines() {
        eprintln!("  {l}");
    }
    plan.check(dcae::limits::budget())?;
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{msg:>9} [{bar:30}] {percent}% {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut stage = String::new();
    let mut progress = |st: &str, done: u64, total: u64| {
        if st != stage {
            stage = st.to_string();
            bar.reset();
            bar.set_message(stage.clone());
        }
        bar.set_position((dcae::task::fraction(done, total) * 1000.0) as u64)
    };
    let g = match pipe.run(s, &mut progress, cancel) {
        Ok(g) => g,
        Err(dcae::Error::Cancelled) => {
            bar.finish_and_clear();
            eprintln!("cancelled; nothing was written");
            std::process::exit(130);
        }
        Err(e) => return Err(e.into()),
    };
    bar.finish_and_clear();
    write_atomic(&a.output, &text_to_image::png(&g, s)?)?;
    println!(
        "{} image(s) {}x{} -> {} (settings in its `{GENERATE_KEY}` text chunk)",
        g.images.n,
        g.images.width,
        g.images.height,
        a.output.display()
    );
    Ok(())
}

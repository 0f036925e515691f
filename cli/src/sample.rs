//! `dcae sample`: class-conditional generation with a UViT / DiT / USiT checkpoint, decoded by
//! its DC-AE, written as one PNG grid whose text chunk holds every setting (`--from` replays
//! it). The pipeline is the engine's (`dcae::pipeline::class_to_image`); this file parses
//! arguments and shows progress.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use dcae::diffusion::{DiffusionConfig, SamplerKind};
use dcae::io::tensors::write_atomic;
use dcae::io::{folder_files, refuse_overwrite};
use dcae::pipeline::class_to_image::{self, Choices, ClassToImage};
use dcae::pipeline::classes::{class_table, resolve_class};
use dcae::pipeline::settings::SAMPLE_KEY;
use dcae::{Backend, Cancel, Precision};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct SampleArgs {
    /// Diffusion model folder: config.json ({"model_name": ...} or {"kind": ...}) and
    /// model.safetensors (the official single file also holds the autoencoder).
    #[arg(long, required_unless_present = "from")]
    model: Option<PathBuf>,
    /// DC-AE folder, when model.safetensors has no `autoencoder.` weights.
    #[arg(long)]
    autoencoder: Option<PathBuf>,
    /// Class ids (0-999) or names ("golden retriever"); one image per class.
    #[arg(long = "class", num_args = 1.., required_unless_present = "from")]
    classes: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sampler steps, 1-1000 (default: the model's: 30 DPM-Solver, 250 DDPM / ODE points).
    #[arg(long, value_parser = crate::in_range::<1, 1000>)]
    steps: Option<usize>,
    /// Classifier-free guidance scale (default: the model's FID setting).
    #[arg(long)]
    cfg: Option<f32>,
    /// dpm-solver (UViT), ddpm | ddim (DiT), dopri5 | heun2 (USiT).
    #[arg(long)]
    sampler: Option<SamplerKind>,
    /// Images per grid row, 1 to the number of images (default: about square).
    #[arg(long, value_parser = crate::in_range::<1, 256>)]
    cols: Option<usize>,
    #[arg(long)]
    backend: Option<Backend>,
    #[arg(long)]
    precision: Option<Precision>,
    /// Reproduce the image whose metadata a PNG written by `dcae sample` holds.
    #[arg(long, conflicts_with_all = ["model", "classes", "steps", "cfg", "sampler", "seed", "cols", "autoencoder"])]
    from: Option<PathBuf>,
    /// Output PNG.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(a: &SampleArgs) -> Result<()> {
    if !a
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        bail!("output {} must end in .png", a.output.display());
    }
    let settings = match &a.from {
        Some(png) => {
            let mut s = ClassToImage::from_png(png)?;
            if let Some(b) = a.backend {
                s.backend = b;
            }
            if let Some(p) = a.precision {
                s.precision = p;
            }
            eprintln!("settings from {}: {}", png.display(), s.to_json()?);
            s
        }
        None => {
            let model = a.model.clone().context("--model is required")?;
            let cfg = DiffusionConfig::from_file(&model.join("config.json"))
                .with_context(|| format!("reading {}", model.join("config.json").display()))?;
            let table = class_table();
            let classes = a
                .classes
                .iter()
                .map(|c| resolve_class(c, &table))
                .collect::<dcae::Result<Vec<_>>>()?;
            let choices = Choices {
                autoencoder: a.autoencoder.clone(),
                seed: a.seed,
                steps: a.steps,
                cfg: a.cfg,
                sampler: a.sampler,
                cols: a.cols,
                backend: a.backend,
                precision: a.precision,
            };
            ClassToImage::with_defaults(&model, &cfg, classes, choices)
        }
    };
    settings.validate()?;
    // Neither the PNG replayed nor a model file may be overwritten.
    let mut protect: Vec<PathBuf> = a.from.iter().cloned().collect();
    protect.extend(folder_files(&settings.model));
    if let Some(ae) = &settings.autoencoder {
        protect.extend(folder_files(ae));
    }
    refuse_overwrite(&a.output, &protect)?;
    sample(&settings, a)
}

fn sample(s: &ClassToImage, a: &SampleArgs) -> Result<()> {
    let device = s.backend.device()?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("loading {} on {}", s.model.display(), s.backend));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut loaded = class_to_image::load(s, &device)
        .with_context(|| format!("loading diffusion model {}", s.model.display()))?;
    spinner.finish_and_clear();
    if let Some(note) = &loaded.scaling_note {
        eprintln!("note: {note}");
    }
    let net = &loaded.net;
    let chw = net.config.latent_chw();
    eprintln!(
        "model: {} ({}, {:.1}M params), latent {}x{}x{}, {} x{} steps, cfg {}, seed {}, {} on {}",
        net.config
            .model_name
            .clone()
            .unwrap_or_else(|| s.model.display().to_string()),
        net.config.family.name(),
        net.num_params() as f64 / 1e6,
        chw[0],
        chw[1],
        chw[2],
        s.sampler.name(),
        s.steps,
        s.cfg,
        s.seed,
        s.precision.name(),
        s.backend
    );
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("sampling [{bar:30}] {percent}% {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = |_: &str, done: u64, total: u64| {
        bar.set_position((dcae::task::fraction(done, total) * 1000.0) as u64)
    };
    let images = class_to_image::run(&mut loaded, s, &mut progress, &Cancel::new())?;
    bar.finish_and_clear();
    write_atomic(&a.output, &class_to_image::grid_png(&images, s)?)?;
    println!(
        "{} image(s) {}x{} -> {} (settings in its `{SAMPLE_KEY}` text chunk)",
        images.n,
        images.width,
        images.height,
        a.output.display()
    );
    Ok(())
}

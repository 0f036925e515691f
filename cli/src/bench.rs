//! `dcae bench`: encode / decode time per image size and peak memory, as a table
//! (or JSON lines for `bench/compare_reference.py`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use dcae::burn::tensor::{Device, Distribution, Tensor};
use dcae::metrics::{peak_rss_mb, reset_peak_rss};
use dcae::{Backend, DcAe, DcAeConfig, Precision};

#[derive(Args)]
pub struct BenchArgs {
    /// Model folder (config.json + weights).
    #[arg(long, conflicts_with = "preset")]
    model: Option<PathBuf>,
    /// Official architecture with random weights instead of a folder (e.g. dc-ae-f32c32-in-1.0).
    #[arg(long)]
    preset: Option<String>,
    /// Square image sizes in pixels, comma separated (up to 65536).
    #[arg(long, value_delimiter = ',', default_value = "512,1024", value_parser = crate::in_range::<1, 65536>)]
    size: Vec<usize>,
    #[arg(long, default_value = "wgpu")]
    backend: Backend,
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Timed runs per size (the median is reported), after one warm-up run (1-1000).
    #[arg(long, default_value_t = 3, value_parser = crate::in_range::<1, 1000>)]
    runs: usize,
    /// Images per batch (1-4096).
    #[arg(long, default_value_t = 1, value_parser = crate::in_range::<1, 4096>)]
    batch: usize,
    /// Print one JSON object per size instead of a table.
    #[arg(long)]
    json: bool,
    /// What to time: both halves, or only one (`decode` starts from a random latent), so a
    /// profiler sees one half alone.
    #[arg(long, default_value = "both")]
    stage: Stage,
    /// Diffusion mode: one UViT-H denoising step on a DC-AE-f64 latent (8x8x128, patch 1) vs an
    /// SD-VAE-f8 latent (64x64x4, patch 2), random weights; prints the ratio.
    #[arg(long, conflicts_with_all = ["model", "preset"])]
    diffusion: bool,
    /// Text-to-image mode: one Sana 600M and 1.6B transformer step at 1024² (batch 2, CFG) and
    /// a Gemma-2-2B encode of 300 tokens, random weights.
    #[arg(long, conflicts_with_all = ["model", "preset", "diffusion"])]
    text_to_image: bool,
}

/// Which halves of the autoencoder `dcae bench` runs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    Both,
    Encode,
    Decode,
}

struct Row {
    size: usize,
    encode_ms: Option<f64>,
    decode_ms: Option<f64>,
    peak_mb: Option<f64>,
}

/// A time for the table or JSON: `n/a` / `null` for a half that did not run.
fn ms(v: Option<f64>, json: bool) -> String {
    match v {
        Some(v) if json => format!("{v:.3}"),
        Some(v) => format!("{v:.1}"),
        None if json => "null".into(),
        None => "n/a".into(),
    }
}

pub fn run(a: &BenchArgs) -> Result<()> {
    if a.text_to_image {
        return crate::bench_text::run(a.backend, a.precision, a.runs, a.json);
    }
    if a.diffusion {
        return crate::bench_diffusion::run(a.backend, a.precision, a.runs, a.batch, a.json);
    }
    let device = a.backend.device()?;
    let (model, name) = match (&a.model, &a.preset) {
        (Some(dir), _) => (
            DcAe::load(dir, &device, a.precision)
                .with_context(|| format!("loading model {}", dir.display()))?,
            dir.display().to_string(),
        ),
        (None, Some(p)) => (
            DcAe::random(DcAeConfig::from_model_name(p)?, 0, &device, a.precision)?,
            format!("{p} (random weights)"),
        ),
        (None, None) => bail!("give --model <DIR> or --preset <NAME>"),
    };
    let f = model.factor();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !a.json {
        println!(
            "model {name}: f{f} c{}, {:.1}M params; backend {}, {:?}, batch {}, median of {} runs, {threads} threads",
            model.config.latent_channels,
            model.num_params() as f64 / 1e6,
            a.backend,
            a.precision,
            a.batch,
            a.runs
        );
        println!("| size | encode ms/img | decode ms/img | peak memory MB |");
        println!("|---:|---:|---:|---:|");
    }
    for &size in &a.size {
        if size == 0 || !size.is_multiple_of(f) {
            bail!("--size {size} is not a positive multiple of the compression factor {f}");
        }
        // Checked before the random input is allocated.
        dcae::limits::check(
            &format!("benchmarking {} image(s) of {size}x{size}", a.batch),
            dcae::limits::autoencoder_pass(
                &model.config,
                a.batch as u64,
                size as u64,
                size as u64,
                None,
            ),
        )?;
        let row = bench_size(&model, &device, a, size)?;
        let peak = row.peak_mb.map_or("n/a".to_string(), |m| format!("{m:.0}"));
        if a.json {
            println!(
                "{{\"size\": {}, \"encode_ms\": {}, \"decode_ms\": {}, \"peak_mb\": {}, \"backend\": \"{}\", \"threads\": {threads}}}",
                row.size,
                ms(row.encode_ms, true),
                ms(row.decode_ms, true),
                row.peak_mb.map_or("null".into(), |m| format!("{m:.1}")),
                a.backend
            );
        } else {
            println!(
                "| {0}x{0} | {1} | {2} | {3} |",
                row.size,
                ms(row.encode_ms, false),
                ms(row.decode_ms, false),
                peak
            );
        }
    }
    Ok(())
}

fn sync(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))
}

/// The median of `v`; `None` when nothing was timed.
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

fn bench_size(model: &DcAe, device: &Device, a: &BenchArgs, size: usize) -> Result<Row> {
    let is_cpu = matches!(a.backend, Backend::Cpu | Backend::Ndarray);
    if is_cpu {
        reset_peak_rss();
    } else {
        device.memory_cleanup();
    }
    let x = Tensor::<4>::random(
        [a.batch, 3, size, size],
        Distribution::Uniform(-1.0, 1.0),
        device,
    );
    // Decode-only starts from a standard-normal latent of the encoder's output shape (the
    // cost does not depend on the values).
    let f = model.factor();
    let latent = (a.stage == Stage::Decode).then(|| {
        Tensor::<4>::random(
            [a.batch, model.config.latent_channels, size / f, size / f],
            Distribution::Normal(0.0, 1.0),
            device,
        )
    });
    let per_img = |d: std::time::Duration| d.as_secs_f64() * 1e3 / a.batch as f64;
    let mut enc = Vec::new();
    let mut dec = Vec::new();
    for i in 0..=a.runs {
        sync(device)?;
        let t0 = Instant::now();
        let z = match &latent {
            Some(z) => z.clone(),
            None => model.encode(x.clone())?,
        };
        sync(device)?;
        let t1 = Instant::now();
        if latent.is_none() && i > 0 {
            enc.push(per_img(t1 - t0));
        }
        if a.stage == Stage::Encode {
            continue;
        }
        let y = model.decode(z)?;
        sync(device)?;
        let t2 = Instant::now();
        drop(y);
        if i > 0 {
            dec.push(per_img(t2 - t1));
        }
    }
    let peak_mb = if is_cpu {
        peak_rss_mb()
    } else {
        device
            .memory_pool_usage()
            .map(|u| u.bytes_reserved as f64 / (1024.0 * 1024.0))
    };
    Ok(Row {
        size,
        encode_ms: median(enc),
        decode_ms: median(dec),
        peak_mb,
    })
}

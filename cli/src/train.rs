//! `dcae train` and `dcae eval`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use dcae::image_io::{Fit, RgbF32, fit_to_multiple, load_image};
use dcae::train::data::list_images;
use dcae::train::lpips::Lpips;
use dcae::train::{Event, TrainConfig, export_checkpoint, train};
use dcae::{Backend, DcAe, Precision, metrics};
use indicatif::{ProgressBar, ProgressStyle};

/// `dcae train --config run.toml [--resume]`.
pub fn run_train(config: &Path, resume: bool, export_only: bool) -> Result<()> {
    let (cfg, text) = TrainConfig::from_file(config)?;
    if export_only {
        let dir = export_checkpoint(&cfg, &text)?;
        println!("exported {}", dir.display());
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    // First Ctrl-C (or SIGTERM): finish the step, write a checkpoint, exit 130. A second one
    // exits at once (the conditional shutdown fires only when the flag is already set).
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing the signal handler")?;
    }
    let pb = ProgressBar::new(cfg.total_steps());
    pb.set_style(
        ProgressStyle::with_template(
            "phase {prefix} [{bar:30}] {pos}/{len} steps, {per_sec}, {elapsed} (eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let outcome = train(&cfg, &text, resume, &stop, &mut |e| match e {
        Event::Start { perceptual, .. } => {
            say(
                &pb,
                format!(
                    "perceptual loss: {}",
                    perceptual.unwrap_or_else(|| "none (perceptual_weight 0)".into())
                ),
            );
        }
        Event::Phase {
            phase,
            start,
            end,
            trainable_params,
            total_params,
        } => {
            pb.set_prefix(phase.to_string());
            pb.set_position(start);
            pb.reset_eta();
            say(
                &pb,
                format!(
                    "phase {phase}: steps {start}..{end}, training {trainable_params} of {total_params} parameters"
                ),
            );
        }
        Event::Step {
            step, loss, lpips, ..
        } => {
            pb.set_position(step);
            pb.set_message(format!("loss {loss:.4} lpips {lpips:.4}"));
        }
        Event::Validation { step, psnr, ssim } => {
            say(
                &pb,
                format!("step {step}: val psnr={psnr:.2} dB ssim={ssim:.4}"),
            );
        }
        Event::Checkpoint { step, path } => {
            say(&pb, format!("step {step}: checkpoint {}", path.display()));
        }
    })?;
    pb.finish_and_clear();
    for p in &outcome.phases {
        println!(
            "phase {}: {} steps in {:.1}s ({:.3} steps/s), {} trainable params, peak RSS {}",
            p.phase,
            p.steps,
            p.seconds,
            if p.seconds > 0.0 {
                p.steps as f64 / p.seconds
            } else {
                0.0
            },
            p.trainable_params,
            p.peak_rss_mb.map_or("n/a".into(), |m| format!("{m:.0} MB"))
        );
    }
    if outcome.interrupted {
        println!(
            "stopped at step {}; continue with: dcae train --config {} --resume",
            outcome.step,
            config.display()
        );
        std::process::exit(130);
    }
    if let Some(dir) = outcome.exported {
        println!("exported {}", dir.display());
    }
    Ok(())
}

/// A bicubic baseline holding as many values as the latent: downscale so that
/// `h' * w' * 3 = latent values`, upscale back.
pub fn bicubic_baseline(img: &image::RgbImage, latent_values: usize) -> image::RgbImage {
    use image::imageops::{FilterType, resize};
    let (w, h) = (img.width() as f64, img.height() as f64);
    let s = (latent_values as f64 / (3.0 * w * h)).sqrt();
    let (dw, dh) = (
        ((w * s).round() as u32).max(1),
        ((h * s).round() as u32).max(1),
    );
    let small = resize(img, dw, dh, FilterType::CatmullRom);
    resize(&small, img.width(), img.height(), FilterType::CatmullRom)
}

/// `dcae eval --model DIR FOLDER`: per-image PSNR / SSIM (/ LPIPS) and the bicubic baseline
/// at the same number of values; the last line is `mean psnr=<dB> ssim=<value>`.
pub fn run_eval(
    model_dir: &Path,
    folder: &Path,
    backend: Backend,
    lpips_weights: &[PathBuf],
    max_side: usize,
) -> Result<()> {
    let device = backend.device()?;
    let model = DcAe::load(model_dir, &device, Precision::F32)
        .with_context(|| format!("loading model {}", model_dir.display()))?;
    let lpips = if lpips_weights.is_empty() {
        None
    } else {
        Some(Lpips::load(lpips_weights, &device)?.0)
    };
    let f = model.factor();
    let files = if folder.is_file() {
        vec![folder.to_path_buf()]
    } else {
        list_images(folder)?
    };
    println!(
        "{:<44} {:>11} {:>8} {:>7} {:>8} {:>9}",
        "image", "size", "psnr", "ssim", "lpips", "bicubic"
    );
    let (mut sp, mut ss, mut sl, mut sb) = (0.0, 0.0, 0.0, 0.0);
    for p in &files {
        let (img, _) = load_image(p)?;
        let img = shrink(&img, max_side);
        let (img, _) = fit_to_multiple(&img, f, Fit::Crop)?;
        let (w, h) = (img.width, img.height);
        let x = dcae::burn::tensor::Tensor::<4>::from_data(
            dcae::burn::tensor::TensorData::new(img.data.clone(), [1, 3, h, w]),
            &device,
        );
        let spec = dcae::tiling::TileSpec::auto(h, w);
        let z = model.encode_tiled(x.clone(), spec, &mut |_, _| {})?;
        let latent_values = z.dims()[1..].iter().product::<usize>();
        let y = model.decode_tiled(z, spec, &mut |_, _| {})?;
        let data = y
            .clone()
            .clamp(-1.0, 1.0)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let rec = RgbF32 {
            width: w,
            height: h,
            data,
        };
        let (a, b) = (img.to_rgb8(), rec.to_rgb8());
        let psnr = metrics::psnr_u8(a.as_raw(), b.as_raw());
        let ssim = metrics::ssim_rgb8(a.as_raw(), b.as_raw(), w, h).unwrap_or(f64::NAN);
        let base = bicubic_baseline(&a, latent_values);
        let bpsnr = metrics::psnr_u8(a.as_raw(), base.as_raw());
        let lp = match &lpips {
            Some(l) => {
                let v = l
                    .forward(x, y.clamp(-1.0, 1.0))
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                f64::from(v[0])
            }
            None => f64::NAN,
        };
        let name = p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        println!(
            "{:<44} {:>11} {:>8.2} {:>7.4} {:>8} {:>9.2}",
            name,
            format!("{w}x{h}"),
            psnr,
            ssim,
            if lp.is_nan() {
                "-".to_string()
            } else {
                format!("{lp:.4}")
            },
            bpsnr
        );
        sp += psnr;
        ss += ssim;
        sl += lp;
        sb += bpsnr;
    }
    let n = files.len() as f64;
    if n == 0.0 {
        bail!("no images in {}", folder.display());
    }
    println!(
        "bicubic baseline (same number of values as the latent): mean psnr={:.2} dB; model - bicubic = {:+.2} dB",
        sb / n,
        (sp - sb) / n
    );
    if lpips.is_some() {
        println!("mean lpips={:.4}", sl / n);
    }
    println!("mean psnr={:.2} ssim={:.4}", sp / n, ss / n);
    Ok(())
}

/// Downscales (bicubic) so the longer side is at most `max_side` (0 = keep).
fn shrink(img: &RgbF32, max_side: usize) -> RgbF32 {
    let long = img.width.max(img.height);
    if max_side == 0 || long <= max_side {
        return img.clone();
    }
    let k = max_side as f64 / long as f64;
    let (w, h) = (
        ((img.width as f64 * k).round() as u32).max(1),
        ((img.height as f64 * k).round() as u32).max(1),
    );
    let small = image::imageops::resize(
        &img.to_rgb8(),
        w,
        h,
        image::imageops::FilterType::CatmullRom,
    );
    RgbF32::from_rgb8(&small)
}

/// A line above the progress bar, or on stderr when the bar is hidden (output not a terminal,
/// e.g. a log file), where indicatif would drop it.
fn say(pb: &ProgressBar, msg: String) {
    if pb.is_hidden() {
        eprintln!("{msg}");
    } else {
        pb.println(msg);
    }
}

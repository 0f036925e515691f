//! `dcae train` and `dcae eval`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dcae::metrics::Lpips;
use dcae::pipeline::eval::evaluate_image;
use dcae::train::data::list_images;
use dcae::train::grow::GrowProgress;
use dcae::train::{Event, TrainConfig, export_checkpoint, train};
use dcae::{Backend, Cancel, DcAe, Precision};
use indicatif::{ProgressBar, ProgressStyle};

/// `dcae train --config run.toml [--resume]`.
pub fn run_train(config: &Path, resume: bool, export_only: bool) -> Result<()> {
    let (cfg, text) = TrainConfig::from_file(config)?;
    if export_only {
        let dir = export_checkpoint(&cfg, &text)?;
        println!("exported {}", dir.display());
        return Ok(());
    }
    // First Ctrl-C (or SIGTERM): finish the step, write a checkpoint, exit 130. A second one
    // exits at once (the conditional shutdown fires only when the flag is already set).
    let stop = crate::cancel_on_signals()?;
    let pb = ProgressBar::new(cfg.total_steps());
    pb.set_style(
        ProgressStyle::with_template(
            "phase {prefix} [{bar:30}] {pos}/{len} steps, {per_sec}, {elapsed} (eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let outcome = train(&cfg, &text, resume, &stop, &mut |e| match e {
        Event::Start {
            perceptual, init, ..
        } => {
            if let Some(init) = init {
                say(&pb, init);
            }
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
        Event::Grow(GrowProgress::Features { done, total }) => {
            pb.set_message(format!("grow: features of {done}/{total} crops"));
        }
        Event::Grow(GrowProgress::Step { step, total, loss }) => {
            let line = format!("grow: fit step {step}/{total}, relative error {loss:.4}");
            if step % 1000 == 0 || step == total {
                say(&pb, line);
            } else {
                pb.set_message(line);
            }
        }
        Event::Grown(r) => {
            say(
                &pb,
                format!(
                    "grow: bridge fitted in {} steps, {:.0}s: relative error {:.4} -> {:.4}",
                    r.steps, r.seconds, r.first_loss, r.last_loss
                ),
            );
        }
        Event::BadImage { path, error } => {
            say(
                &pb,
                format!(
                    "warning: skipping training image {} ({error}); set [data] fail_on_bad_image = true to stop instead",
                    path.display()
                ),
            );
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
    let files = if folder.is_file() {
        vec![folder.to_path_buf()]
    } else {
        list_images(folder)?
    };
    println!(
        "{:<44} {:>11} {:>8} {:>7} {:>8} {:>9} {:>8}",
        "image", "size", "psnr", "ssim", "lpips", "bicubic", "bic ssim"
    );
    let (mut sp, mut ss, mut sl, mut sb, mut sbs) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let cancel = Cancel::new();
    for p in &files {
        let r = evaluate_image(&model, p, max_side, lpips.as_ref(), &cancel)?;
        println!(
            "{:<44} {:>11} {:>8.2} {:>7.4} {:>8} {:>9.2} {:>8.4}",
            r.name(),
            format!("{}x{}", r.width, r.height),
            r.psnr,
            r.ssim,
            if r.lpips.is_nan() {
                "-".to_string()
            } else {
                format!("{:.4}", r.lpips)
            },
            r.bicubic_psnr,
            r.bicubic_ssim
        );
        sp += r.psnr;
        ss += r.ssim;
        sl += r.lpips;
        sb += r.bicubic_psnr;
        sbs += r.bicubic_ssim;
    }
    let n = files.len() as f64;
    if n == 0.0 {
        bail!("no images in {}", folder.display());
    }
    println!(
        "bicubic baseline (same number of values as the latent): mean psnr={:.2} dB ssim={:.4}; model - bicubic = {:+.2} dB",
        sb / n,
        sbs / n,
        (sp - sb) / n
    );
    if lpips.is_some() {
        println!("mean lpips={:.4}", sl / n);
    }
    println!("mean psnr={:.2} ssim={:.4}", sp / n, ss / n);
    Ok(())
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

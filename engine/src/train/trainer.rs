//! The training loop: phases, losses, optimizer steps, EMA, validation, checkpoints, export.
//!
//! Gradients reach the autoencoder through its output: the reconstruction loss (and, in phase
//! 3, the generator's GAN loss) are differentiated with respect to a detached copy of the
//! decoder output, combined there (which is where the adaptive GAN weight is measured), and
//! pushed back through the decoder in one backward pass. Frozen parameters are detached, so
//! the encoder costs no activation memory in phases 2 and 3.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::config::{InitMatch, PhaseConfig, TrainConfig, canonical_prefixes, matches};
use super::data::{Batch, CropPlan, Loader, list_images, validation_set};
use super::disc::Discriminator;
use super::grow;
use super::optim::{
    AdamState, AdamW, Names, clip_grad_norm, ema_update, gradients, phase_lr, replace,
    set_trainable, values, warmup_lr,
};
use crate::autoencoder::{AutoencoderDc, DcAe, DcAeConfig, Tiling};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::io::image::{Fit, RgbF32};
use crate::io::tensors::{HostTensor, TensorFile, write_atomic, write_tensors, write_tensors_as};
use crate::metrics::lpips::{Lpips, LpipsSource};
use crate::metrics::{peak_rss_mb, reset_peak_rss};
use crate::nn::Trace;
use crate::pipeline::{ReconstructOptions, reconstruct};
use crate::task::{Cancel, Silent};
use crate::weights::WeightStore;
use crate::weights::{Builder, Precision};

/// File name of the run's checkpoint inside `out_dir`.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
const FORMAT: &str = "dcae-train-checkpoint-1";

/// What the loop reports to its caller (progress bar, logs).
#[derive(Debug, Clone)]
pub enum Event {
    Start {
        total: u64,
        first: u64,
        perceptual: Option<String>,
        /// How the model's weights were initialised, when not plainly (shared stages copied,
        /// residual branches at zero).
        init: Option<String>,
    },
    Phase {
        phase: u8,
        start: u64,
        end: u64,
        trainable_params: usize,
        total_params: usize,
    },
    Step {
        step: u64,
        phase: u8,
        loss: f64,
        l1: f64,
        lpips: f64,
        seconds: f64,
    },
    Validation {
        step: u64,
        psnr: f64,
        ssim: f64,
    },
    Checkpoint {
        step: u64,
        path: PathBuf,
    },
    /// `init_match = "grow"`: the bridge fit before the first step ([`grow::fit_bridge`]).
    Grow(grow::GrowProgress),
    /// The bridge fit's result.
    Grown(grow::GrowReport),
    /// A training image could not be decoded; the next image took its place. Reported once
    /// per file.
    BadImage {
        path: PathBuf,
        error: String,
    },
}

/// Per-phase measurements of a run (this process only).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PhaseStats {
    pub phase: u8,
    pub steps: u64,
    pub seconds: f64,
    pub peak_rss_mb: Option<f64>,
    pub trainable_params: usize,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Global steps completed.
    pub step: u64,
    /// Stopped by the caller's flag before the end (a checkpoint was written).
    pub interrupted: bool,
    /// The exported model folder (when the last phase finished).
    pub exported: Option<PathBuf>,
    pub phases: Vec<PhaseStats>,
}

struct Gan {
    disc: Discriminator,
    names: Names,
    adam: AdamState,
}

/// The devices and model settings of a run.
struct Base {
    /// Data-parallel replicas (one device: the plain loop); the first holds the run state.
    replicas: Vec<Device>,
    device: Device,
    ad: Device,
    arch: DcAeConfig,
    precision: Precision,
}

impl Base {
    fn new(cfg: &TrainConfig) -> Result<Self> {
        let backend: Backend = cfg.backend.parse().map_err(Error::Input)?;
        let replicas = backend.devices(cfg.devices)?;
        let device = replicas[0].clone();
        let ad = device.clone().autodiff();
        let arch = cfg.model.architecture(Path::new("."))?;
        let precision: Precision = cfg.precision.parse().map_err(Error::Input)?;
        let f = arch.spatial_compression();
        for &p in &cfg.schedule.phases {
            let c = cfg.phase(p);
            let r = c.resolution;
            if !r.is_multiple_of(f) {
                return Err(Error::Input(format!(
                    "phase{p}.resolution {r} is not a multiple of the compression factor {f}"
                )));
            }
            // Before any device memory or decoding thread is touched.
            crate::limits::check(
                &format!(
                    "phase{p}: a training step of {} crops of {r}x{r}",
                    c.batch_size
                ),
                crate::limits::training_step(
                    &arch,
                    c.batch_size as u64,
                    r as u64,
                    c.perceptual_weight > 0.0,
                ),
            )?;
        }
        Ok(Self {
            replicas,
            device,
            ad,
            arch,
            precision,
        })
    }
}

/// The networks of a run before any checkpoint is applied: the autoencoder (random or
/// `model.init`), LPIPS when a phase uses it, the discriminator when a phase has a GAN loss.
struct Models {
    names: Names,
    model: AutoencoderDc,
    lpips: Option<Lpips>,
    lpips_source: Option<LpipsSource>,
    gan: Option<Gan>,
    /// How the weights were initialised, when that is worth a line ([`Event::Start`]).
    init_note: Option<String>,
}

impl Models {
    fn new(cfg: &TrainConfig, base: &Base) -> Result<Self> {
        let (ad, arch, precision) = (&base.ad, &base.arch, base.precision);
        let zero = cfg.model.zero_init_residual;
        let (ae, init_note) = match (&cfg.model.init, cfg.model.init_match) {
            (Some(dir), InitMatch::All) => {
                let m = DcAe::load(dir, ad, precision)?;
                if m.config != *arch {
                    return Err(Error::Input(format!(
                        "model.init {} has a different architecture than the run's model; \
                         init_match = \"shared\" copies the tensors they share",
                        dir.display()
                    )));
                }
                (m, None)
            }
            (Some(dir), InitMatch::Shared | InitMatch::Grow) => {
                let folder = crate::autoencoder::folder::AeFolder::find(dir)?;
                let mut store = WeightStore::from_file(&folder.weights)?;
                let small = DcAeConfig::from_file(&folder.config)?;
                // A model with one more stage takes each tensor at its place there ("grow"
                // requires that relation, "shared" uses it when it holds).
                let key: Option<crate::weights::builder::SeedKey> =
                    match grow::new_stage(&small, arch) {
                        Ok(l) => Some(Box::new(move |k| grow::source_key(l, k))),
                        Err(e) if cfg.model.init_match == InitMatch::Grow => return Err(e),
                        Err(_) => None,
                    };
                let (m, copied) = DcAe::random_init(
                    arch.clone(),
                    cfg.seed,
                    ad,
                    precision,
                    zero,
                    Some(&mut store),
                    key,
                )?;
                let total = m.names.len();
                let note = format!(
                    "model.init {}: {copied} of {total} tensors copied (same place and shape), {} new{}",
                    dir.display(),
                    total - copied,
                    if zero {
                        " (residual branches at zero)"
                    } else {
                        ""
                    }
                );
                (m, Some(note))
            }
            (None, _) => {
                let (m, _) =
                    DcAe::random_init(arch.clone(), cfg.seed, ad, precision, zero, None, None)?;
                (
                    m,
                    zero.then(|| "random init, residual branches at zero".to_string()),
                )
            }
        };
        let names: Names = ae.names.iter().cloned().collect();
        let needs_lpips = cfg
            .schedule
            .phases
            .iter()
            .any(|&p| cfg.phase(p).perceptual_weight > 0.0);
        let (lpips, lpips_source) = if cfg.perceptual.weights.is_empty() {
            if needs_lpips {
                return Err(Error::Input(
                    "a phase has perceptual_weight > 0 but [perceptual] weights is empty; give \
                     LPIPS VGG16 weights (README: Perceptual weights) or set perceptual_weight = 0"
                        .into(),
                ));
            }
            (None, None)
        } else {
            let (l, s) = Lpips::load(&cfg.perceptual.weights, ad)?;
            (Some(l), Some(s))
        };
        let gan_phase = cfg
            .schedule
            .phases
            .iter()
            .map(|&p| cfg.phase(p))
            .find(|c| c.gan_weight > 0.0);
        let gan = match gan_phase {
            Some(p) => {
                let mut b = Builder::random(cfg.seed ^ 0xD15C, ad, Precision::F32);
                let (disc, dn) = Discriminator::build(&mut b, p.disc_channels, p.disc_layers)?;
                Some(Gan {
                    disc,
                    names: dn.into_iter().collect(),
                    adam: AdamState::default(),
                })
            }
            None => None,
        };
        Ok(Self {
            names,
            model: ae.model,
            lpips,
            lpips_source,
            gan,
            init_note,
        })
    }
}

/// Gradients of one step of a run's first phase, by checkpoint key.
#[derive(Debug, Clone)]
pub struct StepGradients {
    /// The reconstruction loss of the batch.
    pub loss: f64,
    pub grads: BTreeMap<String, Vec<f32>>,
}

/// The gradients of the first step of `cfg`'s first phase, computed the way the run computes
/// them: on one device, or on `cfg.devices` replicas with the share-weighted sum. Tests compare
/// the two (equal up to float rounding; the optimizer afterwards is shared code).
pub fn first_step_gradients(cfg: &TrainConfig) -> Result<StepGradients> {
    let base = Base::new(cfg)?;
    let m = Models::new(cfg, &base)?;
    let phase = *cfg
        .schedule
        .phases
        .first()
        .ok_or_else(|| Error::Input("schedule.phases is empty".into()))?;
    let pc = cfg.phase(phase).clone();
    let prefixes = canonical_prefixes(&pc.trainable);
    let is_trainable = |k: &str| matches(&prefixes, k);
    let model = set_trainable(m.model, &m.names, &base.ad, &is_trainable);
    let files = list_images(&cfg.data.train)?;
    let plan = CropPlan {
        seed: cfg.seed ^ u64::from(phase),
        batch: pc.batch_size,
        size: pc.resolution,
        channel_shuffle: cfg.data.channel_shuffle,
        fail_on_bad_image: cfg.data.fail_on_bad_image,
    };
    let batch = Loader::new(files, plan, (0, 1), cfg.data.workers)
        .next_batch()?
        .ok_or_else(|| Error::Input("data loader ended early".into()))?;
    let ctx = StepCtx {
        pc: &pc,
        names: &m.names,
        lpips: if pc.perceptual_weight > 0.0 {
            m.lpips.as_ref()
        } else {
            None
        },
        disc: if pc.gan_weight > 0.0 {
            m.gan.as_ref().map(|g| (&g.disc, &g.names))
        } else {
            None
        },
        trainable: &is_trainable,
    };
    let out = batch_gradients(&ctx, &model, &batch, &base.replicas, &base.ad)?;
    let grads = out
        .grads
        .iter()
        .map(|(k, g)| Ok((k.clone(), host(g)?.data)))
        .collect::<Result<_>>()?;
    Ok(StepGradients {
        loss: out.rec,
        grads,
    })
}

/// One step's gradients: on one device, or split over the replicas.
fn batch_gradients(
    ctx: &StepCtx,
    model: &AutoencoderDc,
    batch: &Batch,
    replicas: &[Device],
    ad: &Device,
) -> Result<ReplicaOut> {
    if replicas.len() == 1 {
        replica_step(ctx, model, batch.to_tensor(ad), 1.0)
    } else {
        data_parallel_step(ctx, model, batch, replicas, &replicas[0])
    }
}

/// Runs (or resumes) the training described by `cfg`. `cfg_text` is stored in checkpoints so a
/// resumed run can check it continues the same run. `cancel` is polled after every step: a
/// cancelled run finishes the step, writes a checkpoint and returns with `interrupted` set
/// (resumable, so not an error). `on` hears every step, phase, validation and checkpoint.
pub fn train(
    cfg: &TrainConfig,
    cfg_text: &str,
    resume: bool,
    cancel: &Cancel,
    on: &mut dyn FnMut(Event),
) -> Result<Outcome> {
    let base = Base::new(cfg)?;
    if let Some(init) = &cfg.model.init {
        // The export must not overwrite the weights the run starts from.
        let export = cfg.out_dir.join("model");
        for f in ["config.json", "diffusion_pytorch_model.safetensors"] {
            crate::io::refuse_overwrite(&export.join(f), &crate::io::folder_files(init))?;
        }
    }
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| Error::io(&cfg.out_dir, e))?;
    let ckpt_path = cfg.out_dir.join(CHECKPOINT);
    if !resume && ckpt_path.exists() {
        return Err(Error::Input(format!(
            "{} exists: pass --resume to continue that run, or choose another out_dir",
            ckpt_path.display()
        )));
    }
    if resume && !ckpt_path.exists() {
        return Err(Error::MissingFile(format!(
            "--resume: no checkpoint at {}",
            ckpt_path.display()
        )));
    }
    let Models {
        names,
        mut model,
        lpips,
        lpips_source,
        mut gan,
        init_note,
    } = Models::new(cfg, &base)?;
    let Base {
        replicas,
        device,
        ad,
        arch,
        precision,
    } = base;
    on(Event::Start {
        total: cfg.total_steps(),
        first: 0,
        perceptual: lpips_source.as_ref().map(|s| s.to_string()),
        init: if resume { None } else { init_note },
    });

    // Run state.
    let mut step: u64 = 0;
    let mut adam = AdamState::default();
    let mut adam_phase: u8 = 0;
    let mut ema: BTreeMap<String, Tensor<1>> = BTreeMap::new();
    if resume {
        let r = load_checkpoint(&ckpt_path, cfg_text, &device)?;
        step = r.step;
        if precision != Precision::F32 {
            // Checkpoints hold the f32 master weights: keep them as the master copies.
            adam.master = r.model.clone();
        }
        model = replace(model, &names, r.model, &ad, &|_| true);
        ema = r.ema;
        adam.t = r.adam.t;
        adam.m = r.adam.m;
        adam.v = r.adam.v;
        adam_phase = r.adam_phase;
        if let (Some(g), Some(d)) = (gan.as_mut(), r.disc) {
            g.disc = replace(g.disc.clone(), &g.names, d, &ad, &|_| true);
            g.adam = r.disc_adam;
        }
    }

    let train_files = list_images(&cfg.data.train)?;
    if !resume
        && cfg.model.init_match == InitMatch::Grow
        && let Some(dir) = &cfg.model.init
    {
        let small = DcAe::load(dir, &device, Precision::F32)?;
        let l = grow::new_stage(&small.config, &arch)?;
        let (m, report) = grow::fit_bridge(
            &small,
            model,
            &names,
            l,
            &cfg.grow,
            grow::CropSource {
                files: train_files.clone(),
                seed: cfg.seed,
                workers: cfg.data.workers,
                fail_on_bad_image: cfg.data.fail_on_bad_image,
            },
            &ad,
            cancel,
            &mut |p| on(Event::Grow(p)),
        )?;
        model = m;
        on(Event::Grown(report));
        // A step-0 checkpoint: `--resume` after this point does not fit the bridge again.
        let snap = Snapshot {
            step: 0,
            model: &model,
            ema: &ema,
            adam: &adam,
            adam_phase,
        };
        save_checkpoint(&ckpt_path, cfg_text, &snap, &names, gan.as_ref())?;
        on(Event::Checkpoint {
            step: 0,
            path: ckpt_path.clone(),
        });
    }

    let val = match &cfg.data.val {
        Some(dir) => validation_set(
            dir,
            cfg.data.val_count,
            cfg.data.val_size,
            arch.spatial_compression(),
        )?,
        None => Vec::new(),
    };
    let mut log = CsvLog::open(
        &cfg.out_dir.join("log.csv"),
        "step,phase,loss,l1,lpips,gan,disc,gan_lambda,grad_norm,lr,seconds",
    )?;
    let mut vlog = CsvLog::open(&cfg.out_dir.join("val.csv"), "step,phase,psnr,ssim")?;
    let mut stats = Vec::new();
    let total = cfg.total_steps();
    // Training images that failed to decode (skipped), for the events and the run record.
    let mut bad_images: std::collections::BTreeSet<PathBuf> = Default::default();

    if step == 0 && !val.is_empty() && cfg.schedule.val_every > 0 {
        // The starting point of the curve (what the init alone gives).
        let phase = cfg.schedule.phases.first().copied().unwrap_or(1);
        let m = eval_model(&model, &names, &ema, &device);
        let view = DcAe::from_modules(arch.clone(), m, &device, precision);
        let (psnr, ssim) = validate(&view, &val, &cfg.out_dir.join("samples"), 0)?;
        vlog.row(&format!("0,{phase},{psnr:.4},{ssim:.5}"))?;
        on(Event::Validation {
            step: 0,
            psnr,
            ssim,
        });
    }
    while let Some((phase, phase_start)) = cfg.phase_at(step) {
        let pc = cfg.phase(phase).clone();
        let phase_end = phase_start + pc.steps;
        let prefixes = canonical_prefixes(&pc.trainable);
        let keys: Vec<&String> = names.values().collect();
        for p in &prefixes {
            if !keys.iter().any(|k| matches(std::slice::from_ref(p), k)) {
                return Err(Error::Input(format!(
                    "phase{phase}.trainable: `{p}` matches no parameter of this model"
                )));
            }
        }
        let is_trainable = |k: &str| matches(&prefixes, k);
        model = set_trainable(model, &names, &ad, &is_trainable);
        if adam_phase != phase {
            adam = AdamState::default();
            adam_phase = phase;
        }
        let all_vals = values(&model, &names);
        let count = |pred: &dyn Fn(&str) -> bool| -> usize {
            all_vals
                .iter()
                .filter(|(k, _)| pred(k))
                .map(|(_, t)| t.shape().num_elements())
                .sum()
        };
        let trainable_params = count(&is_trainable);
        on(Event::Phase {
            phase,
            start: phase_start,
            end: phase_end,
            trainable_params,
            total_params: count(&|_| true),
        });
        drop(all_vals);
        reset_peak_rss();
        let phase_t0 = Instant::now();
        let phase_first = step;
        let mut loader = Loader::new(
            train_files.clone(),
            CropPlan {
                seed: cfg.seed ^ u64::from(phase),
                batch: pc.batch_size,
                size: pc.resolution,
                channel_shuffle: cfg.data.channel_shuffle,
                fail_on_bad_image: cfg.data.fail_on_bad_image,
            },
            (step, phase_end),
            cfg.data.workers,
        );
        let opt = AdamW {
            beta1: pc.beta1,
            beta2: pc.beta2,
            eps: 1e-8,
            weight_decay: pc.weight_decay,
        };
        let mut interrupted = false;
        while step < phase_end {
            let t0 = Instant::now();
            let batch = loader
                .next_batch()?
                .ok_or_else(|| Error::Input("data loader ended early".into()))?;
            for b in loader.take_bad() {
                if bad_images.insert(b.path.clone()) {
                    on(Event::BadImage {
                        path: b.path,
                        error: b.error,
                    });
                }
            }
            let lr = phase_lr(pc.lr, pc.warmup, pc.lr_end, pc.steps, step - phase_start);
            let with_lpips = pc.perceptual_weight > 0.0
                && (step - phase_start).is_multiple_of(pc.perceptual_every);
            let ctx = StepCtx {
                pc: &pc,
                names: &names,
                lpips: if with_lpips { lpips.as_ref() } else { None },
                disc: if pc.gan_weight > 0.0 {
                    gan.as_ref().map(|g| (&g.disc, &g.names))
                } else {
                    None
                },
                trainable: &is_trainable,
            };
            let out = batch_gradients(&ctx, &model, &batch, &replicas, &ad)?;
            let ReplicaOut {
                grads: mut pg,
                disc_grads,
                rec: rec_val,
                l1: l1_val,
                lpips: lp_val,
                gan: gan_val,
                disc: disc_val,
                lambda,
            } = out;
            if let (Some(dgrads), Some(gs)) = (disc_grads, gan.as_mut()) {
                // Discriminator step (hinge loss), on gradients taken before this step's
                // generator update like the generator's own.
                let dvals = values(&gs.disc, &gs.names);
                let dopt = AdamW {
                    weight_decay: 0.0,
                    ..opt
                };
                let new = dopt.step(
                    warmup_lr(pc.disc_lr, pc.warmup, step - phase_start),
                    &dvals,
                    dgrads,
                    &mut gs.adam,
                );
                gs.disc = replace(gs.disc.clone(), &gs.names, new, &ad, &|_| true);
            }
            let grad_norm = clip_grad_norm(&mut pg, pc.grad_clip);
            if !grad_norm.is_finite() {
                return Err(Error::NonFinite(format!(
                    "step {step}: gradient norm is {grad_norm} (loss {rec_val}); lower the lr"
                )));
            }
            let cur = values(&model, &names);
            let new = opt.step(lr, &cur, pg, &mut adam);
            if let Some(d) = pc.ema_decay {
                ema_update(&mut ema, &new, d);
            }
            model = replace(model, &names, new, &ad, &is_trainable);
            step += 1;

            let secs = t0.elapsed().as_secs_f64();
            if step.is_multiple_of(cfg.schedule.log_every) || step == phase_end {
                log.row(&format!(
                    "{step},{phase},{rec_val:.6},{l1_val:.6},{lp_val:.6},{gan_val:.6},{disc_val:.6},{lambda:.6},{grad_norm:.6},{lr:.3e},{secs:.3}",
                ))?;
            }
            on(Event::Step {
                step,
                phase,
                loss: rec_val,
                l1: l1_val,
                lpips: lp_val,
                seconds: secs,
            });

            let at_end = step == phase_end;
            if at_end && pc.ema_decay.is_some() {
                // The next phase (and the export) start from the averaged weights.
                let e: BTreeMap<String, Tensor<1>> = ema
                    .iter()
                    .filter(|(k, _)| is_trainable(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                model = replace(model, &names, e, &ad, &is_trainable);
            }
            if !val.is_empty()
                && (at_end
                    || (cfg.schedule.val_every > 0 && step.is_multiple_of(cfg.schedule.val_every)))
            {
                let m = eval_model(&model, &names, &ema, &device);
                let view = DcAe::from_modules(arch.clone(), m, &device, precision);
                let (psnr, ssim) = validate(&view, &val, &cfg.out_dir.join("samples"), step)?;
                vlog.row(&format!("{step},{phase},{psnr:.4},{ssim:.5}"))?;
                on(Event::Validation { step, psnr, ssim });
            }
            interrupted = cancel.is_cancelled() && step < total;
            if at_end || interrupted || step.is_multiple_of(cfg.schedule.checkpoint_every) {
                let snap = Snapshot {
                    step,
                    model: &model,
                    ema: &ema,
                    adam: &adam,
                    adam_phase,
                };
                save_checkpoint(&ckpt_path, cfg_text, &snap, &names, gan.as_ref())?;
                on(Event::Checkpoint {
                    step,
                    path: ckpt_path.clone(),
                });
            }
            if interrupted {
                break;
            }
        }
        stats.push(PhaseStats {
            phase,
            steps: step - phase_first,
            seconds: phase_t0.elapsed().as_secs_f64(),
            peak_rss_mb: peak_rss_mb(),
            trainable_params,
        });
        if interrupted {
            write_run_record(cfg, cfg_text, &lpips_source, &stats, step, &bad_images)?;
            return Ok(Outcome {
                step,
                interrupted: true,
                exported: None,
                phases: stats,
            });
        }
    }

    let export_dir = cfg.out_dir.join("model");
    export(
        &model,
        &names,
        &arch,
        &export_dir,
        &cfg.model.export_dtype,
        &lpips_source
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "none".into()),
        step,
    )?;
    write_run_record(cfg, cfg_text, &lpips_source, &stats, step, &bad_images)?;
    Ok(Outcome {
        step,
        interrupted: false,
        exported: Some(export_dir),
        phases: stats,
    })
}

/// Exports the run's latest checkpoint (EMA weights where kept) to `out_dir/model` without
/// training: a mid-run snapshot, or a re-export in another dtype.
pub fn export_checkpoint(cfg: &TrainConfig, cfg_text: &str) -> Result<PathBuf> {
    let backend: Backend = cfg.backend.parse().map_err(Error::Input)?;
    let device = backend.device()?;
    let arch = cfg.model.architecture(Path::new("."))?;
    let ckpt = cfg.out_dir.join(CHECKPOINT);
    if !ckpt.exists() {
        return Err(Error::MissingFile(format!(
            "no checkpoint at {}",
            ckpt.display()
        )));
    }
    let r = load_checkpoint(&ckpt, cfg_text, &device)?;
    let ae = DcAe::random(arch.clone(), cfg.seed, &device, Precision::F32)?;
    let names: Names = ae.names.iter().cloned().collect();
    let model = replace(ae.model, &names, r.model, &device, &|_| false);
    let model = replace(model, &names, r.ema, &device, &|_| false);
    let dir = cfg.out_dir.join("model");
    // The perceptual weights the run used, as its record states.
    let perceptual = std::fs::read_to_string(cfg.out_dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("perceptual")
                .and_then(|p| p.as_str().map(String::from))
        })
        .unwrap_or_else(|| "unknown".into());
    export(
        &model,
        &names,
        &arch,
        &dir,
        &cfg.model.export_dtype,
        &perceptual,
        r.step,
    )?;
    Ok(dir)
}

pub(super) fn scalar<const D: usize>(t: &Tensor<D>) -> f64 {
    t.clone()
        .inner()
        .cast(DType::F32)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .map(f64::from)
        .unwrap_or(f64::NAN)
}

fn norm(t: &Tensor<4>) -> f64 {
    scalar(&t.clone().powf_scalar(2.0).sum()).sqrt()
}

/// What one training step needs besides the model and the batch.
struct StepCtx<'a> {
    pc: &'a PhaseConfig,
    names: &'a Names,
    /// LPIPS, when this step uses the perceptual term.
    lpips: Option<&'a Lpips>,
    /// The discriminator and its names, when this phase has a GAN loss.
    disc: Option<(&'a Discriminator, &'a Names)>,
    trainable: &'a (dyn Fn(&str) -> bool + Sync),
}

/// One replica's gradients and loss values for its share of the batch.
struct ReplicaOut {
    grads: BTreeMap<String, Tensor<1>>,
    disc_grads: Option<BTreeMap<String, Tensor<1>>>,
    rec: f64,
    l1: f64,
    lpips: f64,
    gan: f64,
    disc: f64,
    lambda: f64,
}

/// Forward and backward pass of `model` on `x`. `share` is this batch slice's fraction of the
/// whole batch: the losses are means, so the batch mean is the share-weighted sum of the
/// slices' (1.0 on one device, where nothing is scaled).
fn replica_step(
    ctx: &StepCtx,
    model: &AutoencoderDc,
    x: Tensor<4>,
    share: f64,
) -> Result<ReplicaOut> {
    let pc = ctx.pc;
    let z = model.encoder.forward(x.clone(), &mut Trace::off());
    let y = model.decoder.forward(z, &mut Trace::off());

    // Reconstruction loss, differentiated at the decoder output.
    // Losses in f32 whatever the compute precision.
    let yl = y.clone().detach().cast(DType::F32).require_grad();
    let l1 = (yl.clone() - x.clone()).abs().mean();
    let mut rec = l1.clone() * pc.l1_weight;
    let mut lp_val = 0.0;
    if let Some(l) = ctx.lpips {
        let lp = l.forward(yl.clone(), x.clone()).mean();
        lp_val = scalar(&lp);
        rec = rec + lp * pc.perceptual_weight;
    }
    let rec_val = scalar(&rec);
    let g = rec.backward();
    let mut g_out = yl
        .grad(&g)
        .ok_or_else(|| Error::Device("no gradient at the decoder output".into()))?;
    let (mut gan_val, mut disc_val, mut lambda) = (0.0, 0.0, 0.0);
    let mut disc_grads = None;
    if let Some((disc, dnames)) = ctx.disc {
        let yg = y.clone().detach().cast(DType::F32).require_grad();
        let gl = -disc.forward(yg.clone()).mean();
        gan_val = scalar(&gl);
        let gg = gl.backward();
        if let Some(g_gan) = yg.grad(&gg) {
            lambda = if pc.adaptive_gan_weight {
                let nr = norm(&g_out);
                let ng = norm(&g_gan);
                (nr / (ng + 1e-4)).clamp(0.0, 1e4) * pc.gan_weight
            } else {
                pc.gan_weight
            };
            g_out = g_out + g_gan * lambda;
        }
        // Discriminator gradients (hinge loss) on real crops and the detached output.
        let real = disc.forward(x.clone());
        let fake = disc.forward(y.clone().detach().cast(DType::F32));
        let dl = (relu(real.neg() + 1.0).mean() + relu(fake + 1.0).mean()) * 0.5;
        disc_val = scalar(&dl);
        let dg = dl.backward();
        disc_grads = Some(scaled(gradients(disc, dnames, &dg), share));
    }

    // One backward pass through the autoencoder with the combined output gradient.
    let dtype = y.dtype();
    let surrogate = (y * g_out.cast(dtype).autodiff()).sum();
    let grads = surrogate.backward();
    Ok(ReplicaOut {
        grads: scaled(gradients(model, ctx.names, &grads), share),
        disc_grads,
        rec: rec_val * share,
        l1: scalar(&l1) * share,
        lpips: lp_val * share,
        gan: gan_val * share,
        disc: disc_val * share,
        lambda: lambda * share,
    })
}

fn scaled(mut g: BTreeMap<String, Tensor<1>>, share: f64) -> BTreeMap<String, Tensor<1>> {
    if share != 1.0 {
        for v in g.values_mut() {
            *v = v.clone() * share;
        }
    }
    g
}

/// Data parallelism over several devices: the batch is split in contiguous slices, one per
/// device; each device runs a replica of the current weights on its slice in its own thread;
/// the share-weighted gradients are summed on the first device, where the single optimizer
/// step happens (the caller's). The result equals the one-device step on the whole batch up to
/// float rounding, except the adaptive GAN weight, which each replica measures on its slice.
fn data_parallel_step(
    ctx: &StepCtx,
    model: &AutoencoderDc,
    batch: &Batch,
    replicas: &[Device],
    device: &Device,
) -> Result<ReplicaOut> {
    let slices = split_batch(batch.len, replicas.len());
    let per = 3 * batch.size * batch.size;
    let vals = values(model, ctx.names);
    let dvals = ctx.disc.map(|(d, n)| values(d, n));
    let outs: Vec<Result<ReplicaOut>> = std::thread::scope(|s| {
        let handles: Vec<_> = slices
            .iter()
            .zip(replicas)
            .filter(|((_, len), _)| *len > 0)
            .map(|(&(first, len), dev)| {
                let ad = dev.clone().autodiff();
                // Fresh leaves on the replica's device, so no autodiff graph is shared.
                let m = replace(
                    model.clone().fork(&ad),
                    ctx.names,
                    vals.clone(),
                    &ad,
                    ctx.trainable,
                );
                let lp = ctx.lpips.map(|l| l.clone().fork(&ad));
                let dm = ctx
                    .disc
                    .zip(dvals.clone())
                    .map(|((d, n), v)| (replace(d.clone().fork(&ad), n, v, &ad, &|_| true), n));
                let data = batch.data[first * per..(first + len) * per].to_vec();
                let share = len as f64 / batch.len as f64;
                let size = batch.size;
                s.spawn(move || {
                    let x =
                        Tensor::<4>::from_data(TensorData::new(data, [len, 3, size, size]), &ad);
                    let c = StepCtx {
                        lpips: lp.as_ref(),
                        disc: dm.as_ref().map(|(d, n)| (d, *n)),
                        ..*ctx
                    };
                    replica_step(&c, &m, x, share)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Device("a data-parallel replica panicked".into()))
                })
            })
            .collect()
    });
    let mut total: Option<ReplicaOut> = None;
    for out in outs {
        let o = out?;
        let to_first = |g: BTreeMap<String, Tensor<1>>| -> BTreeMap<String, Tensor<1>> {
            g.into_iter()
                .map(|(k, v)| (k, v.to_device(device)))
                .collect()
        };
        total = Some(match total {
            None => ReplicaOut {
                grads: to_first(o.grads),
                disc_grads: o.disc_grads.map(to_first),
                ..o
            },
            Some(t) => ReplicaOut {
                grads: sum_maps(t.grads, to_first(o.grads)),
                disc_grads: match (t.disc_grads, o.disc_grads) {
                    (Some(a), Some(b)) => Some(sum_maps(a, to_first(b))),
                    (a, _) => a,
                },
                rec: t.rec + o.rec,
                l1: t.l1 + o.l1,
                lpips: t.lpips + o.lpips,
                gan: t.gan + o.gan,
                disc: t.disc + o.disc,
                lambda: t.lambda + o.lambda,
            },
        });
    }
    total.ok_or_else(|| Error::Input("empty batch".into()))
}

fn sum_maps(
    mut a: BTreeMap<String, Tensor<1>>,
    b: BTreeMap<String, Tensor<1>>,
) -> BTreeMap<String, Tensor<1>> {
    for (k, v) in b {
        match a.remove(&k) {
            Some(x) => a.insert(k, x + v),
            None => a.insert(k, v),
        };
    }
    a
}

/// Contiguous (first, len) slices of a batch of `n` over `parts` devices, as even as possible
/// (the first `n % parts` get one more).
pub fn split_batch(n: usize, parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.max(1);
    let (base, extra) = (n / parts, n % parts);
    let mut first = 0;
    (0..parts)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let s = (first, len);
            first += len;
            s
        })
        .collect()
}

fn host(t: &Tensor<1>) -> Result<HostTensor> {
    let data = t
        .clone()
        .inner()
        .cast(DType::F32)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::readback("a tensor", e))?;
    Ok(HostTensor {
        shape: vec![data.len()],
        data,
    })
}

fn device_tensor(t: &HostTensor, device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(t.data.clone(), [t.data.len()]), device)
}

/// Values for evaluation and export: EMA where the EMA has the key, else the current value.
fn eval_model(
    model: &AutoencoderDc,
    names: &Names,
    ema: &BTreeMap<String, Tensor<1>>,
    device: &Device,
) -> AutoencoderDc {
    replace(model.valid(), names, ema.clone(), device, &|_| false)
}

/// Mean PSNR / SSIM over the validation set, and a sheet of the first two reconstructions.
fn validate(ae: &DcAe, val: &[(PathBuf, RgbF32)], samples: &Path, step: u64) -> Result<(f64, f64)> {
    let opts = ReconstructOptions {
        fit: Fit::Crop,
        tiling: Tiling::Never,
    };
    let (mut psnr, mut ssim) = (0.0, 0.0);
    let mut sheet: Vec<(RgbF32, RgbF32)> = Vec::new();
    for (i, (_, img)) in val.iter().enumerate() {
        let r = reconstruct(ae, img, &opts, &mut Silent, &Cancel::new())?;
        psnr += r.psnr;
        ssim += r.ssim.unwrap_or(f64::NAN);
        if i < 2 {
            sheet.push((img.clone(), r.output));
        }
    }
    let n = val.len() as f64;
    std::fs::create_dir_all(samples).map_err(|e| Error::io(samples, e))?;
    save_sheet(&sheet, &samples.join(format!("step-{step:07}.png")))?;
    Ok((psnr / n, ssim / n))
}

/// Original | reconstruction rows, one per image.
fn save_sheet(rows: &[(RgbF32, RgbF32)], path: &Path) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let w: usize = rows.iter().map(|(a, _)| a.width * 2).max().unwrap_or(0);
    let h: usize = rows.iter().map(|(a, _)| a.height).sum();
    let mut out = image::RgbImage::new(w as u32, h as u32);
    let mut y0 = 0u32;
    for (a, b) in rows {
        image::imageops::replace(&mut out, &a.to_rgb8(), 0, i64::from(y0));
        image::imageops::replace(&mut out, &b.to_rgb8(), a.width as i64, i64::from(y0));
        y0 += a.height as u32;
    }
    let mut bytes = Vec::new();
    out.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::Input(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// The run state a checkpoint holds.
struct Snapshot<'a> {
    step: u64,
    model: &'a AutoencoderDc,
    ema: &'a BTreeMap<String, Tensor<1>>,
    adam: &'a AdamState,
    adam_phase: u8,
}

fn save_checkpoint(
    path: &Path,
    cfg_text: &str,
    snap: &Snapshot,
    names: &Names,
    gan: Option<&Gan>,
) -> Result<()> {
    let Snapshot {
        step,
        model,
        ema,
        adam,
        adam_phase,
    } = *snap;
    let mut tensors: Vec<(String, HostTensor)> = Vec::new();
    for (k, v) in values(model, names) {
        // Mixed precision: the f32 master copy is the parameter's true value.
        let v = adam.master.get(&k).unwrap_or(&v);
        tensors.push((format!("model.{k}"), host(v)?));
    }
    for (k, v) in ema {
        tensors.push((format!("ema.{k}"), host(v)?));
    }
    for (k, v) in &adam.m {
        tensors.push((format!("adam_m.{k}"), host(v)?));
    }
    for (k, v) in &adam.v {
        tensors.push((format!("adam_v.{k}"), host(v)?));
    }
    let mut disc_t = 0;
    if let Some(g) = gan {
        disc_t = g.adam.t;
        for (k, v) in values(&g.disc, &g.names) {
            tensors.push((format!("disc.{k}"), host(&v)?));
        }
        for (k, v) in &g.adam.m {
            tensors.push((format!("disc_adam_m.{k}"), host(v)?));
        }
        for (k, v) in &g.adam.v {
            tensors.push((format!("disc_adam_v.{k}"), host(v)?));
        }
    }
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("step".to_string(), step.to_string()),
        ("adam_t".to_string(), adam.t.to_string()),
        ("adam_phase".to_string(), adam_phase.to_string()),
        ("disc_adam_t".to_string(), disc_t.to_string()),
        ("config".to_string(), cfg_text.to_string()),
    ]);
    let refs: Vec<(&str, &HostTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    write_tensors(path, &refs, Some(meta))
}

struct Restored {
    step: u64,
    model: BTreeMap<String, Tensor<1>>,
    ema: BTreeMap<String, Tensor<1>>,
    adam: AdamState,
    adam_phase: u8,
    disc: Option<BTreeMap<String, Tensor<1>>>,
    disc_adam: AdamState,
}

fn load_checkpoint(path: &Path, cfg_text: &str, device: &Device) -> Result<Restored> {
    let f = TensorFile::open(path)?;
    let meta = f.metadata();
    let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
    if get("format") != FORMAT {
        return Err(Error::CorruptWeights {
            path: path.to_path_buf(),
            message: "not a dcae training checkpoint".into(),
        });
    }
    if get("config") != cfg_text {
        return Err(Error::Input(format!(
            "{} was written by a different run file; resume with the same config (or start a new out_dir)",
            path.display()
        )));
    }
    let num = |k: &str| -> Result<u64> {
        get(k).parse().map_err(|_| Error::CorruptWeights {
            path: path.to_path_buf(),
            message: format!("metadata `{k}` missing or not a number"),
        })
    };
    let mut r = Restored {
        step: num("step")?,
        model: BTreeMap::new(),
        ema: BTreeMap::new(),
        adam: AdamState {
            t: num("adam_t")?,
            ..Default::default()
        },
        adam_phase: num("adam_phase")? as u8,
        disc: None,
        disc_adam: AdamState {
            t: num("disc_adam_t")?,
            ..Default::default()
        },
    };
    for key in f.keys() {
        let t = device_tensor(&f.tensor(&key)?, device);
        let (kind, name) = key.split_once('.').unwrap_or(("", key.as_str()));
        let name = name.to_string();
        match kind {
            "model" => {
                r.model.insert(name, t);
            }
            "ema" => {
                r.ema.insert(name, t);
            }
            "adam_m" => {
                r.adam.m.insert(name, t);
            }
            "adam_v" => {
                r.adam.v.insert(name, t);
            }
            "disc" => {
                r.disc.get_or_insert_with(BTreeMap::new).insert(name, t);
            }
            "disc_adam_m" => {
                r.disc_adam.m.insert(name, t);
            }
            "disc_adam_v" => {
                r.disc_adam.v.insert(name, t);
            }
            _ => {
                return Err(Error::CorruptWeights {
                    path: path.to_path_buf(),
                    message: format!("unexpected tensor `{key}`"),
                });
            }
        }
    }
    Ok(r)
}

/// Writes `dir/config.json` + `dir/diffusion_pytorch_model.safetensors` in the diffusers
/// layout (fused qkv split back into to_q / to_k / to_v).
pub fn export(
    model: &AutoencoderDc,
    names: &Names,
    arch: &DcAeConfig,
    dir: &Path,
    dtype: &str,
    perceptual: &str,
    step: u64,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let shapes: HashMap<String, Vec<usize>> = shapes_of(model, names);
    let mut out: Vec<(String, HostTensor)> = Vec::new();
    for (k, v) in values(model, names) {
        let mut t = host(&v)?;
        t.shape = shapes.get(&k).cloned().unwrap_or(t.shape);
        // diffusers keeps the attention projections as nn.Linear: [out, in], not [out, in, 1, 1].
        let linear = |shape: &[usize]| shape[..2].to_vec();
        if let Some(prefix) = k.strip_suffix(".attn.qkv.weight") {
            let rows = t.shape[0] / 3;
            let per = t.data.len() / 3;
            for (i, part) in ["to_q", "to_k", "to_v"].iter().enumerate() {
                let mut shape = linear(&t.shape);
                shape[0] = rows;
                out.push((
                    format!("{prefix}.attn.{part}.weight"),
                    HostTensor {
                        shape,
                        data: t.data[i * per..(i + 1) * per].to_vec(),
                    },
                ));
            }
        } else if k.ends_with(".attn.to_out.weight") && t.shape.len() == 4 {
            t.shape = linear(&t.shape);
            out.push((k, t));
        } else {
            out.push((k, t));
        }
    }
    let st_dtype = match dtype {
        "f16" => safetensors::Dtype::F16,
        "bf16" => safetensors::Dtype::BF16,
        _ => safetensors::Dtype::F32,
    };
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("dcae_train_step".to_string(), step.to_string()),
        ("dcae_perceptual".to_string(), perceptual.to_string()),
    ]);
    let refs: Vec<(&str, &HostTensor)> = out.iter().map(|(k, t)| (k.as_str(), t)).collect();
    write_tensors_as(
        &dir.join("diffusion_pytorch_model.safetensors"),
        &refs,
        Some(meta),
        st_dtype,
    )?;
    let json = serde_json::to_string_pretty(&arch.to_diffusers_json())
        .map_err(|e| Error::Input(e.to_string()))?;
    write_atomic(&dir.join("config.json"), json.as_bytes())
}

struct Shapes<'a> {
    names: &'a Names,
    out: HashMap<String, Vec<usize>>,
}

impl burn::module::ModuleVisitor for Shapes<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if let Some(n) = self.names.get(&param.id) {
            self.out.insert(n.clone(), param.val().dims().to_vec());
        }
    }
}

fn shapes_of(model: &AutoencoderDc, names: &Names) -> HashMap<String, Vec<usize>> {
    let mut s = Shapes {
        names,
        out: HashMap::new(),
    };
    model.visit(&mut s);
    s.out
}

fn write_run_record(
    cfg: &TrainConfig,
    cfg_text: &str,
    lpips: &Option<LpipsSource>,
    stats: &[PhaseStats],
    step: u64,
    bad_images: &std::collections::BTreeSet<PathBuf>,
) -> Result<()> {
    let path = cfg.out_dir.join("run.json");
    // Earlier sessions of a resumed run keep their entries.
    let mut sessions: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("sessions").and_then(|s| s.as_array().cloned()))
        .unwrap_or_default();
    sessions.push(serde_json::json!({
        "ended_at_step": step,
        "phases": stats,
        "skipped_images": bad_images,
    }));
    let v = serde_json::json!({
        "config": cfg_text,
        "perceptual": lpips.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "none".into()),
        "backend": cfg.backend,
        "step": step,
        "total_steps": cfg.total_steps(),
        "sessions": sessions,
    });
    let text = serde_json::to_string_pretty(&v).map_err(|e| Error::Input(e.to_string()))?;
    write_atomic(&path, text.as_bytes())
}

struct CsvLog {
    file: std::fs::File,
}

impl CsvLog {
    fn open(path: &Path, header: &str) -> Result<Self> {
        use std::io::Write;
        let exists = path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        if !exists {
            writeln!(file, "{header}").map_err(|e| Error::io(path, e))?;
        }
        Ok(Self { file })
    }

    fn row(&mut self, line: &str) -> Result<()> {
        use std::io::Write;
        writeln!(self.file, "{line}").map_err(|e| Error::io("log", e))
    }
}

#[cfg(test)]
mod tests {
    use super::split_batch;

    #[test]
    fn batch_slices_cover_the_batch_evenly() {
        assert_eq!(split_batch(6, 2), vec![(0, 3), (3, 3)]);
        assert_eq!(split_batch(7, 3), vec![(0, 3), (3, 2), (5, 2)]);
        assert_eq!(split_batch(1, 2), vec![(0, 1), (1, 0)]);
        assert_eq!(split_batch(4, 1), vec![(0, 4)]);
        for n in 0..20 {
            for p in 1..6 {
                let s = split_batch(n, p);
                assert_eq!(s.len(), p);
                assert_eq!(s.iter().map(|x| x.1).sum::<usize>(), n);
                let lens: Vec<usize> = s.iter().map(|x| x.1).collect();
                assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1);
                for w in s.windows(2) {
                    assert_eq!(w[0].0 + w[0].1, w[1].0);
                }
            }
        }
    }
}

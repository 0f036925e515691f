//! The model worker: one thread that owns every loaded autoencoder and runs all model work in
//! order (one GPU queue). The UI sends [`Job`]s and polls [`Reply`]s; the worker calls
//! `request_repaint` after each reply so the UI wakes up without polling on a timer.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use dcae::autoencoder::Tiling;
use dcae::burn::tensor::Device;
use dcae::io::image::{Fit, RgbF32};
use dcae::metrics::Lpips;
use dcae::pipeline::reconstruct::host;
use dcae::pipeline::{ReconstructOptions, reconstruct as reconstruct_image};
use dcae::task::Silent;
use dcae::{Backend, Cancel, DcAe, DcAeConfig, Precision};

use crate::analysis::Latent;
use crate::error::{JobError, JobErrorKind};
use crate::generate::{
    GenModel, GenModelInfo, GenReports, Generation, load_gen_model, run_generation,
};
use crate::tasks::JobId;
use dcae::pipeline::generation::GenerationSettings;

/// The small models compiled into the binary (`assets/models/<name>`, trained by
/// `configs/trio-<name>*.toml`), each holding 96x fewer values than the 8-bit image, as the
/// bicubic baseline beside them does, and each ahead of that baseline on the validation photos
/// (`cli/tests/default_model.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Embedded {
    F32c32,
    F64c128,
    F128c512,
}

impl Embedded {
    pub const ALL: [Embedded; 3] = [Embedded::F32c32, Embedded::F64c128, Embedded::F128c512];

    /// The folder name under `assets/models/`.
    pub fn name(self) -> &'static str {
        match self {
            Embedded::F32c32 => "f32c32",
            Embedded::F64c128 => "f64c128",
            Embedded::F128c512 => "f128c512",
        }
    }

    pub fn config_json(self) -> &'static str {
        match self {
            Embedded::F32c32 => include_str!("../../assets/models/f32c32/config.json"),
            Embedded::F64c128 => include_str!("../../assets/models/f64c128/config.json"),
            Embedded::F128c512 => include_str!("../../assets/models/f128c512/config.json"),
        }
    }

    pub fn weights(self) -> &'static [u8] {
        match self {
            Embedded::F32c32 => include_bytes!("../../assets/models/f32c32/model.safetensors"),
            Embedded::F64c128 => include_bytes!("../../assets/models/f64c128/model.safetensors"),
            Embedded::F128c512 => include_bytes!("../../assets/models/f128c512/model.safetensors"),
        }
    }
}

/// What a reconstruction's LPIPS reads until its [`Reply::Lpips`] arrives.
pub const LPIPS_PENDING: &str = "computing";

/// Largest image LPIPS is computed on (VGG16 on CPU takes seconds per megapixel).
pub const LPIPS_MAX_PIXELS: usize = 1024 * 1024;

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModelSource {
    /// One of the small models embedded in the binary.
    Embedded(Embedded),
    /// A Hugging Face-style folder (`config.json` + safetensors).
    Folder(PathBuf),
}

impl ModelSource {
    pub fn label(&self) -> String {
        match self {
            ModelSource::Embedded(e) => format!("{} (embedded)", e.name()),
            ModelSource::Folder(p) => hf_cache_repo(p).unwrap_or_else(|| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.display().to_string())
            }),
        }
    }
}

/// `org/name` for a snapshot folder of the Hugging Face cache
/// (`.../models--org--name/snapshots/<commit>`).
pub fn hf_cache_repo(p: &std::path::Path) -> Option<String> {
    let snapshots = p.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let repo = snapshots
        .parent()?
        .file_name()?
        .to_str()?
        .strip_prefix("models--")?;
    Some(repo.replacen("--", "/", 1))
}

/// What the UI shows about a loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub name: String,
    pub factor: usize,
    pub latent_channels: usize,
    pub params: usize,
    pub backend: String,
}

/// How tiles were laid out for one reconstruction (pixel rectangles `[x, y, w, h]`).
pub type TileRects = Vec<[usize; 4]>;

/// A finished reconstruction.
#[derive(Debug, Clone)]
pub struct Reconstruction {
    pub image: Arc<image::RgbImage>,
    pub latent: Latent,
    pub psnr: f64,
    pub ssim: Option<f64>,
    /// LPIPS distance, or why it is missing.
    pub lpips: std::result::Result<f64, String>,
    pub seconds: f64,
    pub tiles: Option<TileRects>,
}

/// Work for the worker. Model ids and job ids are chosen by the UI.
pub enum Job {
    Load {
        model: u64,
        source: ModelSource,
    },
    Unload {
        model: u64,
    },
    Reconstruct {
        job: JobId,
        model: u64,
        rgb: Arc<image::RgbImage>,
        tiling: Tiling,
        cancel: Cancel,
    },
    /// Runs a small reconstruction so the first real one does not pay for kernel compilation.
    Warm {
        model: u64,
    },
    /// Loads a generation model folder (class-conditional or a Sana pipeline).
    LoadGen {
        model: u64,
        dir: PathBuf,
        /// Where fitted preview maps are kept between runs.
        preview_cache: Option<PathBuf>,
    },
    UnloadGen {
        model: u64,
    },
    /// Samples with a loaded generation model and saves the PNG into `gallery`.
    Generate {
        job: JobId,
        model: u64,
        settings: Box<GenerationSettings>,
        gallery: PathBuf,
        cancel: Cancel,
        /// Set by the UI's "Decode now": the estimate goes through the decoder after the
        /// step in progress.
        decode: Arc<std::sync::atomic::AtomicBool>,
    },
    /// Backend and LPIPS weights for everything that follows (models reload on a change).
    Configure {
        backend: Backend,
        lpips: Option<PathBuf>,
    },
}

/// What the worker reports.
#[derive(Debug)]
pub enum Reply {
    Loaded {
        model: u64,
        result: std::result::Result<ModelInfo, JobError>,
    },
    Progress {
        job: JobId,
        stage: &'static str,
        done: u64,
        total: u64,
    },
    Finished {
        job: JobId,
        result: std::result::Result<Reconstruction, JobError>,
    },
    Warmed {
        model: u64,
        seconds: f64,
    },
    /// LPIPS of a finished reconstruction (or why there is none).
    Lpips {
        job: JobId,
        value: std::result::Result<f64, String>,
    },
    GenLoaded {
        model: u64,
        result: std::result::Result<Box<GenModelInfo>, JobError>,
    },
    /// The current estimate of a generation job's first image, after a step.
    GenPreview {
        job: JobId,
        image: Arc<image::RgbImage>,
    },
    /// The estimate of a generation job's first image through the decoder, at `step`.
    GenDecoded {
        job: JobId,
        step: u64,
        image: std::result::Result<Arc<image::RgbImage>, String>,
    },
    Generated {
        job: JobId,
        result: std::result::Result<Box<Generation>, JobError>,
    },
    /// A note for the status line (backend chosen, LPIPS unavailable, ...).
    Note(String),
}

/// The UI's end of the worker.
pub struct WorkerHandle {
    tx: Sender<Job>,
    rx: Receiver<Reply>,
}

impl WorkerHandle {
    /// Starts the worker thread. `repaint` is called after every reply.
    pub fn spawn(repaint: impl Fn() + Send + 'static) -> Result<WorkerHandle> {
        let (tx, jobs) = channel::<Job>();
        let (out, rx) = channel::<Reply>();
        std::thread::Builder::new()
            .name("dcae-worker".into())
            .spawn(move || Worker::new().run(jobs, out, repaint))
            .context("starting the model worker thread")?;
        Ok(WorkerHandle { tx, rx })
    }

    pub fn send(&self, job: Job) -> Result<()> {
        self.tx
            .send(job)
            .map_err(|_| anyhow!("the model worker has stopped"))
    }

    /// The next reply, if any (never blocks).
    pub fn try_recv(&self) -> Option<Reply> {
        self.rx.try_recv().ok()
    }
}

struct Worker {
    backend: Backend,
    device: Option<Device>,
    models: HashMap<u64, (ModelSource, DcAe)>,
    gen_models: HashMap<u64, (PathBuf, GenModel)>,
    /// Where fitted preview maps are kept (the UI names it with each generation model).
    preview_cache: Option<PathBuf>,
    lpips_path: Option<PathBuf>,
    lpips: Option<std::result::Result<Lpips, String>>,
}

impl Worker {
    fn new() -> Self {
        Worker {
            backend: Backend::Cpu,
            device: None,
            models: HashMap::new(),
            gen_models: HashMap::new(),
            preview_cache: None,
            lpips_path: None,
            lpips: None,
        }
    }

    fn run(mut self, jobs: Receiver<Job>, out: Sender<Reply>, repaint: impl Fn()) {
        let send = |r: Reply| {
            let ok = out.send(r).is_ok();
            repaint();
            ok
        };
        while let Ok(job) = jobs.recv() {
            let alive = match job {
                Job::Configure { backend, lpips } => {
                    if backend != self.backend {
                        self.backend = backend;
                        self.device = None;
                        // Reload every model on the new device.
                        let sources: Vec<(u64, ModelSource)> =
                            self.models.drain().map(|(id, (s, _))| (id, s)).collect();
                        for (id, s) in sources {
                            let result = self.load(id, &s);
                            send(Reply::Loaded { model: id, result });
                        }
                        let dirs: Vec<(u64, PathBuf)> = self
                            .gen_models
                            .drain()
                            .map(|(id, (d, _))| (id, d))
                            .collect();
                        for (id, d) in dirs {
                            let result = self.load_gen(id, &d);
                            send(Reply::GenLoaded { model: id, result });
                        }
                    }
                    if lpips != self.lpips_path {
                        self.lpips_path = lpips;
                        self.lpips = None;
                    }
                    true
                }
                Job::Load { model, source } => {
                    let result = self.load(model, &source);
                    send(Reply::Loaded { model, result })
                }
                Job::Unload { model } => {
                    self.models.remove(&model);
                    true
                }
                Job::LoadGen {
                    model,
                    dir,
                    preview_cache,
                } => {
                    self.preview_cache = preview_cache;
                    let result = self.load_gen(model, &dir);
                    send(Reply::GenLoaded { model, result })
                }
                Job::UnloadGen { model } => {
                    self.gen_models.remove(&model);
                    true
                }
                Job::Generate {
                    job,
                    model,
                    settings,
                    gallery,
                    cancel,
                    decode,
                } => {
                    let result = match self.gen_models.get_mut(&model) {
                        None => Err(JobError::new(
                            JobErrorKind::Model,
                            "the generation model is not loaded (it failed or was removed)",
                        )),
                        Some(_) if cancel.is_cancelled() => Err(JobError::cancelled()),
                        Some((_, m)) => {
                            let mut progress = |stage: &str, done: u64, total: u64| {
                                let stage = match stage {
                                    "encode" => "encode",
                                    "sampling" => "sampling",
                                    _ => "decode",
                                };
                                send(Reply::Progress {
                                    job,
                                    stage,
                                    done,
                                    total,
                                });
                            };
                            let mut preview = |img: image::RgbImage| {
                                send(Reply::GenPreview {
                                    job,
                                    image: Arc::new(img),
                                });
                            };
                            let mut decoded =
                                |step: u64, r: std::result::Result<image::RgbImage, String>| {
                                    send(Reply::GenDecoded {
                                        job,
                                        step,
                                        image: r.map(Arc::new),
                                    });
                                };
                            let reports = GenReports {
                                progress: &mut progress,
                                preview: &mut preview,
                                decoded: &mut decoded,
                                decode_wanted: &decode,
                            };
                            run_generation(m, &settings, &gallery, reports, &cancel).map(Box::new)
                        }
                    };
                    send(Reply::Generated { job, result })
                }
                Job::Warm { model } => {
                    let t0 = Instant::now();
                    if let Some((_, m)) = self.models.get(&model) {
                        let f = m.factor();
                        let rgb = image::RgbImage::from_pixel(
                            (2 * f) as u32,
                            (2 * f) as u32,
                            image::Rgb([128, 128, 128]),
                        );
                        let _ = guarded(|| {
                            reconstruct(m, &rgb, Tiling::Never, &mut Silent, &Cancel::new())
                        });
                    }
                    send(Reply::Warmed {
                        model,
                        seconds: t0.elapsed().as_secs_f64(),
                    })
                }
                Job::Reconstruct {
                    job,
                    model,
                    rgb,
                    tiling,
                    cancel,
                } => {
                    let result = match self.models.get(&model) {
                        None => Err(JobError::new(
                            JobErrorKind::Model,
                            "the model is not loaded (it failed or was removed)",
                        )),
                        Some((_, m)) => {
                            let mut progress = |stage: &str, done: u64, total: u64| {
                                let stage = if stage == "encode" {
                                    "encode"
                                } else {
                                    "decode"
                                };
                                send(Reply::Progress {
                                    job,
                                    stage,
                                    done,
                                    total,
                                });
                            };
                            guarded(|| reconstruct(m, &rgb, tiling, &mut progress, &cancel))
                        }
                    };
                    // The image is shown at once; LPIPS (seconds per megapixel on a CPU)
                    // follows in its own reply.
                    let out = result.as_ref().ok().map(|r| r.image.clone());
                    let alive = send(Reply::Finished { job, result });
                    if let Some(out) = out {
                        let value = self.lpips(&rgb, &out);
                        send(Reply::Lpips { job, value });
                    }
                    alive
                }
            };
            if !alive {
                break;
            }
        }
    }

    fn device(&mut self) -> Result<Device> {
        if let Some(d) = &self.device {
            return Ok(d.clone());
        }
        let backend = self.backend;
        let d = backend
            .device()
            .with_context(|| format!("starting the {backend} backend"))?;
        self.device = Some(d.clone());
        Ok(d)
    }

    fn load(&mut self, id: u64, source: &ModelSource) -> std::result::Result<ModelInfo, JobError> {
        let device = self
            .device()
            .map_err(|e| JobError::new(JobErrorKind::Device, format!("{e:#}")))?;
        let m = guarded(|| load_model(source, &device))?;
        let info = ModelInfo {
            name: source.label(),
            factor: m.factor(),
            latent_channels: m.config.latent_channels,
            params: m.num_params(),
            backend: self.backend.to_string(),
        };
        self.models.insert(id, (source.clone(), m));
        Ok(info)
    }

    fn load_gen(
        &mut self,
        id: u64,
        dir: &std::path::Path,
    ) -> std::result::Result<Box<GenModelInfo>, JobError> {
        let device = self
            .device()
            .map_err(|e| JobError::new(JobErrorKind::Device, format!("{e:#}")))?;
        let photos: Vec<&[u8]> = crate::app::SAMPLES.iter().map(|(_, b)| *b).collect();
        let backend = self.backend;
        let cache = self.preview_cache.clone();
        let (m, info) = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            load_gen_model(dir, &device, backend, &photos, cache.as_deref())
        })) {
            Ok(r) => r?,
            // Loading runs engine code that may panic (a failed allocation): typed like the rest.
            Err(p) => return Err(JobError::from_panic(p.as_ref())),
        };
        self.gen_models.insert(id, (dir.to_path_buf(), m));
        Ok(Box::new(info))
    }

    fn lpips(
        &mut self,
        a: &image::RgbImage,
        b: &image::RgbImage,
    ) -> std::result::Result<f64, String> {
        let Some(path) = self.lpips_path.clone() else {
            return Err("no LPIPS weights (Settings)".into());
        };
        let (w, h) = (a.width() as usize, a.height() as usize);
        if w * h > LPIPS_MAX_PIXELS {
            return Err(format!("image over {} Mpx", LPIPS_MAX_PIXELS >> 20));
        }
        if w < 16 || h < 16 {
            return Err("image under 16 px".into());
        }
        let device = self.device().map_err(|e| format!("{e:#}"))?;
        let l = self
            .lpips
            .get_or_insert_with(|| {
                Lpips::load(&[path], &device)
                    .map(|(l, _)| l)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| e.clone())?;
        let t = |img: &image::RgbImage| {
            let f = RgbF32::from_rgb8(img);
            dcae::burn::tensor::Tensor::<4>::from_data(
                dcae::burn::tensor::TensorData::new(f.data, [1, 3, f.height, f.width]),
                &device,
            )
        };
        let d = host(l.forward(t(a), t(b)), "the LPIPS distance").map_err(|e| e.to_string())?;
        d.data
            .first()
            .map(|&x| f64::from(x))
            .ok_or_else(|| "no value".into())
    }
}

/// Runs model work, turning an engine error or a panic (Burn's backends panic on failed
/// allocations) into a typed [`JobError`].
pub(crate) fn guarded<T>(f: impl FnOnce() -> dcae::Result<T>) -> std::result::Result<T, JobError> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(JobError::from_engine(&e)),
        Err(payload) => Err(JobError::from_panic(payload.as_ref())),
    }
}

/// Loads a model from its source onto `device` (f32: the comparison is about the models).
pub fn load_model(source: &ModelSource, device: &Device) -> dcae::Result<DcAe> {
    match source {
        ModelSource::Folder(dir) => DcAe::load(dir, device, Precision::F32),
        ModelSource::Embedded(e) => DcAe::from_bytes(
            DcAeConfig::from_json_str(e.config_json())?,
            &format!("embedded {} model", e.name()),
            e.weights().to_vec(),
            device,
            Precision::F32,
        ),
    }
}

/// Encodes and decodes one image with the engine's pipeline (reflect-padded to a multiple of
/// f, cropped back), tiled per `tiling`; `progress` hears the tiles, `cancel` is checked
/// between tiles.
pub fn reconstruct(
    m: &DcAe,
    rgb: &image::RgbImage,
    tiling: Tiling,
    progress: &mut dyn dcae::Progress,
    cancel: &Cancel,
) -> dcae::Result<Reconstruction> {
    let opts = ReconstructOptions {
        fit: Fit::Pad,
        tiling,
    };
    let r = reconstruct_image(m, &RgbF32::from_rgb8(rgb), &opts, progress, cancel)?;
    let [c, lh, lw] = [r.latent.shape[0], r.latent.shape[1], r.latent.shape[2]];
    Ok(Reconstruction {
        image: Arc::new(r.output.to_rgb8()),
        latent: Latent {
            channels: c,
            height: lh,
            width: lw,
            data: r.latent.data,
        },
        psnr: r.psnr,
        ssim: r.ssim,
        lpips: Err(LPIPS_PENDING.into()),
        seconds: r.seconds,
        tiles: r.tiles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_folders_are_named_by_repo() {
        let p = std::path::Path::new(
            "/c/hub/models--mit-han-lab--dc-ae-f32c32-in-1.0-diffusers/snapshots/abc",
        );
        assert_eq!(
            hf_cache_repo(p).as_deref(),
            Some("mit-han-lab/dc-ae-f32c32-in-1.0-diffusers")
        );
        assert_eq!(hf_cache_repo(std::path::Path::new("/models/mine")), None);
        assert_eq!(ModelSource::Folder("/models/mine".into()).label(), "mine");
    }
}

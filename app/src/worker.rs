//! The model worker: one thread that owns every loaded autoencoder and runs all model work in
//! order (one GPU queue). The UI sends [`Job`]s and polls [`Reply`]s; the worker calls
//! `request_repaint` after each reply so the UI wakes up without polling on a timer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use dcae::burn::tensor::{Device, Tensor, TensorData};
use dcae::image_io::{Fit, RgbF32, fit_to_multiple};
use dcae::tiling::{TilePlan, TileSpec};
use dcae::train::lpips::Lpips;
use dcae::weights::WeightStore;
use dcae::{Backend, DcAe, DcAeConfig, Precision, metrics};

use crate::analysis::Latent;
use crate::settings::TilingMode;

/// The model compiled into the binary (trained by `configs/default-f32*.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../assets/models/default/config.json");
pub const DEFAULT_WEIGHTS: &[u8] = include_bytes!("../../assets/models/default/model.safetensors");

/// What a reconstruction's LPIPS reads until its [`Reply::Lpips`] arrives.
pub const LPIPS_PENDING: &str = "computing";

/// Largest image LPIPS is computed on (VGG16 on CPU takes seconds per megapixel).
pub const LPIPS_MAX_PIXELS: usize = 1024 * 1024;

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModelSource {
    /// The small model embedded in the binary.
    Embedded,
    /// A Hugging Face-style folder (`config.json` + safetensors).
    Folder(PathBuf),
}

impl ModelSource {
    pub fn label(&self) -> String {
        match self {
            ModelSource::Embedded => "default (embedded)".into(),
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

/// Work for the worker. Ids are chosen by the UI.
pub enum Job {
    Load {
        model: u64,
        source: ModelSource,
    },
    Unload {
        model: u64,
    },
    Reconstruct {
        image: u64,
        model: u64,
        rgb: Arc<image::RgbImage>,
        tiling: TilingMode,
        tile_px: usize,
        cancel: Arc<AtomicBool>,
    },
    /// Runs a small reconstruction so the first real one does not pay for kernel compilation.
    Warm {
        model: u64,
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
        result: std::result::Result<ModelInfo, String>,
    },
    Progress {
        image: u64,
        model: u64,
        stage: &'static str,
        done: usize,
        total: usize,
    },
    Finished {
        image: u64,
        model: u64,
        result: std::result::Result<Reconstruction, String>,
    },
    Warmed {
        model: u64,
        seconds: f64,
    },
    /// LPIPS of a finished reconstruction (or why there is none).
    Lpips {
        image: u64,
        model: u64,
        value: std::result::Result<f64, String>,
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
    lpips_path: Option<PathBuf>,
    lpips: Option<std::result::Result<Lpips, String>>,
}

impl Worker {
    fn new() -> Self {
        Worker {
            backend: Backend::Cpu,
            device: None,
            models: HashMap::new(),
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
                            let result = self.load(id, &s).map_err(|e| format!("{e:#}"));
                            send(Reply::Loaded { model: id, result });
                        }
                    }
                    if lpips != self.lpips_path {
                        self.lpips_path = lpips;
                        self.lpips = None;
                    }
                    true
                }
                Job::Load { model, source } => {
                    let result = self.load(model, &source).map_err(|e| format!("{e:#}"));
                    send(Reply::Loaded { model, result })
                }
                Job::Unload { model } => {
                    self.models.remove(&model);
                    true
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
                        let never = AtomicBool::new(false);
                        let _ = reconstruct(m, &rgb, None, &never, &mut |_, _, _| {});
                    }
                    send(Reply::Warmed {
                        model,
                        seconds: t0.elapsed().as_secs_f64(),
                    })
                }
                Job::Reconstruct {
                    image,
                    model,
                    rgb,
                    tiling,
                    tile_px,
                    cancel,
                } => {
                    let result =
                        self.reconstruct_job(image, model, &rgb, tiling, tile_px, &cancel, &send);
                    // The image is shown at once; LPIPS (seconds per megapixel on a CPU)
                    // follows in its own reply.
                    let out = result.as_ref().ok().map(|r| r.image.clone());
                    let alive = send(Reply::Finished {
                        image,
                        model,
                        result: result.map_err(|e| format!("{e:#}")),
                    });
                    if let Some(out) = out {
                        let value = self.lpips(&rgb, &out);
                        send(Reply::Lpips {
                            image,
                            model,
                            value,
                        });
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

    fn load(&mut self, id: u64, source: &ModelSource) -> Result<ModelInfo> {
        let device = self.device()?;
        let m = load_model(source, &device)?;
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

    #[allow(clippy::too_many_arguments)]
    fn reconstruct_job(
        &mut self,
        image: u64,
        model: u64,
        rgb: &image::RgbImage,
        tiling: TilingMode,
        tile_px: usize,
        cancel: &AtomicBool,
        send: &dyn Fn(Reply) -> bool,
    ) -> Result<Reconstruction> {
        if cancel.load(Ordering::Relaxed) {
            bail!("cancelled");
        }
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let spec = match tiling {
            TilingMode::Auto => TileSpec::auto(h, w),
            TilingMode::Always => Some(TileSpec {
                tile_px,
                overlap_px: (tile_px / 8).max(1),
            }),
            TilingMode::Never => None,
        };
        let rec = {
            let (_, m) = self
                .models
                .get(&model)
                .ok_or_else(|| anyhow!("the model is not loaded (it failed or was removed)"))?;
            reconstruct(m, rgb, spec, cancel, &mut |stage, done, total| {
                send(Reply::Progress {
                    image,
                    model,
                    stage,
                    done,
                    total,
                });
            })?
        };
        Ok(rec)
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
        let ta = image_tensor(&RgbF32::from_rgb8(a), &device);
        let tb = image_tensor(&RgbF32::from_rgb8(b), &device);
        let d = l.forward(ta, tb);
        d.into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("{e:?}"))
            .and_then(|v| v.first().map(|&x| f64::from(x)).ok_or("no value".into()))
    }
}

/// Loads a model from its source onto `device` (f32: the comparison is about the models).
pub fn load_model(source: &ModelSource, device: &Device) -> Result<DcAe> {
    match source {
        ModelSource::Folder(dir) => DcAe::load(dir, device, Precision::F32)
            .with_context(|| format!("loading {}", dir.display())),
        ModelSource::Embedded => {
            let config = DcAeConfig::from_json_str(DEFAULT_CONFIG)
                .context("the embedded default model's config")?;
            let mut store =
                WeightStore::from_bytes("embedded default model", DEFAULT_WEIGHTS.to_vec())
                    .context("the embedded default model's weights")?;
            let (model, names) =
                DcAe::from_store(config.clone(), &mut store, device, Precision::F32)?;
            store.finish()?;
            Ok(DcAe {
                config,
                model,
                device: device.clone(),
                precision: Precision::F32,
                source: None,
                layout: None,
                names,
            })
        }
    }
}

fn image_tensor(img: &RgbF32, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(img.data.clone(), [1, 3, img.height, img.width]),
        device,
    )
}

/// Encodes and decodes one image (reflect-padded to a multiple of f, cropped back), tiled per
/// `spec`, and measures it. `progress(stage, done, total)`; `cancel` is checked between stages.
pub fn reconstruct(
    m: &DcAe,
    rgb: &image::RgbImage,
    spec: Option<TileSpec>,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&'static str, usize, usize),
) -> Result<Reconstruction> {
    let t0 = Instant::now();
    let (ow, oh) = (rgb.width() as usize, rgb.height() as usize);
    let f = m.factor();
    let src = RgbF32::from_rgb8(rgb);
    let (padded, _) = fit_to_multiple(&src, f, Fit::Pad)?;
    let (w, h) = (padded.width, padded.height);
    let spec = spec.filter(|s| w > s.tile_px || h > s.tile_px);
    let x = image_tensor(&padded, &m.device);
    progress("encode", 0, 1);
    let z = m.encode_tiled_cancellable(x, spec, &mut |d, n| progress("encode", d, n), cancel)?;
    if cancel.load(Ordering::Relaxed) {
        bail!("cancelled");
    }
    progress("decode", 0, 1);
    let y = m.decode_tiled_cancellable(
        z.clone(),
        spec,
        &mut |d, n| progress("decode", d, n),
        cancel,
    )?;
    let [_, c, lh, lw] = z.dims();
    let zdata = z
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("reading the latent back: {e:?}"))?;
    let ydata = y
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("reading the reconstruction back: {e:?}"))?;
    if ydata.iter().chain(&zdata).any(|v| !v.is_finite()) {
        bail!(
            "the model produced NaN/inf values: the weights may be corrupt or not trained for \
             this input; try the CPU backend or another model"
        );
    }
    let out = RgbF32 {
        width: w,
        height: h,
        data: ydata,
    }
    .crop(0, 0, ow, oh)
    .to_rgb8();
    let psnr = metrics::psnr_u8(rgb.as_raw(), out.as_raw());
    let ssim = metrics::ssim_rgb8(rgb.as_raw(), out.as_raw(), ow, oh);
    let tiles = spec.map(|s| {
        let plan = TilePlan::new(h / f, w / f, f, s);
        let mut rects = Vec::new();
        for r in &plan.rows {
            for c in &plan.cols {
                rects.push([c.start * f, r.start * f, c.len * f, r.len * f]);
            }
        }
        rects
    });
    Ok(Reconstruction {
        image: Arc::new(out),
        latent: Latent {
            channels: c,
            height: lh,
            width: lw,
            data: zdata,
        },
        psnr,
        ssim,
        lpips: Err(LPIPS_PENDING.into()),
        seconds: t0.elapsed().as_secs_f64(),
        tiles,
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

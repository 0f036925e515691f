//! The workbench: images on the left, models and settings beside them, the comparison views in
//! the middle and the metrics table below. The UI only emits [`Command`]s and [`Action`]s;
//! models run on the worker thread, file decoding and saving on short-lived threads. Every
//! model job is a row of the [`Tasks`] table, keyed by [`JobId`].
//!
//! - this file: the state (shared model list, task table, the two tabs, chrome);
//! - [`commands`]: what each command and action does, keyboard shortcuts, dialogs;
//! - [`logic`]: replies from the worker and helper threads, queueing, saving;
//! - [`panels`] and [`views`]: drawing (menu, side panel, status, metrics; the four views);
//! - [`gen_tab`], [`gen_logic`], [`gen_views`]: the Generate tab's state, work and drawing.

mod commands;
mod gen_logic;
pub mod gen_tab;
mod gen_views;
mod logic;
mod panels;
mod recon;
mod views;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use dcae::{Backend, Cancel};
use egui::{
    Align2, Color32, ColorImage, FontId, Key, Pos2, Rect, Sense, Stroke, TextureHandle,
    TextureOptions, Vec2, pos2, vec2,
};

use crate::analysis::{self, Latent};
use crate::command::{Action, Command};
use crate::error::JobError;
use crate::generate::Generation;
use crate::settings::{self, BackendChoice, Settings, Tab, TilingMode, ViewMode};
use crate::sheet;
use crate::tasks::{JobKind, Task, TaskState, Tasks};
use crate::view::{ZoomPan, grid_shape};
use crate::worker::{
    Embedded, Job, LPIPS_PENDING, ModelInfo, ModelSource, Reconstruction, Reply, WorkerHandle,
};
use dcae::pipeline::generation::GenerationSettings;
pub use gen_tab::GenTab;
pub use recon::{BASELINE_RATIO, Baseline, ImageEntry, ReconTab, Slot};

/// Sample photos compiled into the binary (licences in assets/images/SOURCE.md).
pub const SAMPLES: [(&str, &[u8]); 2] = [
    (
        "astronaut.png",
        include_bytes!("../../../assets/images/astronaut.png"),
    ),
    (
        "forget-me-nots.jpg",
        include_bytes!("../../../assets/images/forget-me-nots.jpg"),
    ),
];

/// How the app was started (command line, tests).
#[derive(Debug, Clone, Default)]
pub struct Startup {
    pub images: Vec<PathBuf>,
    pub models: Vec<PathBuf>,
    /// Skip the embedded default models.
    pub no_default_model: bool,
    /// Skip the embedded sample photo when no image is given.
    pub no_samples: bool,
    pub backend: Option<BackendChoice>,
    pub presenter: bool,
    /// Save a screenshot here once every reconstruction of the first image is done, then quit.
    pub screenshot: Option<PathBuf>,
    /// Ignore persisted settings (tests).
    pub fresh_settings: bool,
    /// Show no timings (frame time, seconds per reconstruction): snapshot tests compare pixels.
    pub hide_timings: bool,
    /// Generation model folders (class-conditional or Sana pipelines), besides those of
    /// earlier runs.
    pub gen_models: Vec<PathBuf>,
    /// Where generated images are kept (default: `gallery/` in the app's data folder).
    pub gallery: Option<PathBuf>,
    /// The tab to open on.
    pub tab: Option<Tab>,
    /// Generate once with the selected generation model as soon as it has loaded.
    pub generate_on_load: bool,
}

enum ModelState {
    Loading,
    Ready(ModelInfo),
    Failed(String),
}

/// A model of the shared model list (every tab uses it).
struct ModelEntry {
    id: u64,
    source: ModelSource,
    state: ModelState,
    warm_s: Option<f64>,
}

/// A finished reconstruction and its cached textures.
pub struct Done {
    rec: Reconstruction,
    texture: Option<TextureHandle>,
    /// Heatmap texture at a scale, and the mean |difference| in 8-bit levels.
    diff: Option<(f32, TextureHandle, f32)>,
    latent_tex: Option<(TextureHandle, TextureHandle, usize)>,
}

/// What a finished job holds.
pub enum Output {
    Recon(Box<Done>),
    Gen(Box<Generation>),
}

impl Output {
    fn recon(&self) -> Option<&Done> {
        match self {
            Output::Recon(d) => Some(d),
            Output::Gen(_) => None,
        }
    }
}

/// A message in the UI: an error with a suggested fix, or a note.
pub struct Message {
    pub text: String,
    pub fix: Option<String>,
    pub error: bool,
}

/// Events from helper threads (file decoding, dialogs, saving, downloads).
enum UiEvent {
    Image(Result<(String, image::RgbImage), String>),
    /// The bicubic baseline of an image (by id).
    Baseline(u64, Box<Baseline>),
    Picked(Pick, Vec<PathBuf>),
    Saved(Result<PathBuf, String>),
    Download {
        file: String,
        done: u64,
        total: u64,
    },
    Downloaded(Result<PathBuf, JobError>),
    /// A saved result found in the gallery folder (at start).
    Gallery(Box<gen_tab::GalleryItem>),
    /// The gallery scan is over.
    GalleryDone,
    /// The full image of a gallery item, decoded for the large view.
    GalleryImage(PathBuf, Arc<image::RgbImage>),
    /// A dropped PNG that carries generation settings.
    Restored(PathBuf, Box<GenerationSettings>),
    /// What a download of a generation repo would fetch.
    Plan(String, gen_tab::HubPlan),
}

/// A running Hugging Face download.
struct Download {
    repo: String,
    /// The generation model list gets it (else the reconstruction list).
    generation: bool,
    /// (file, bytes done, bytes total) of the latest report.
    progress: Option<(String, u64, u64)>,
    cancel: Cancel,
    started: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Pick {
    Images,
    ModelFolder,
    Lpips,
    Save(SaveKind),
    GenModelFolder,
}

/// What File > Save writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveKind {
    Reconstruction,
    Difference,
    Latent,
    Sheet,
}

/// One grid cell: title, texture (None while running) and the tile layout.
type Cell<'a> = (String, Option<egui::TextureId>, Option<&'a Vec<[usize; 4]>>);

/// Window-level state: presenter mode, overlays, the hub picker.
#[derive(Default)]
struct Chrome {
    presenter: bool,
    fullscreen: bool,
    show_help: bool,
    hub_choice: usize,
    /// Show no timings (frame time, seconds per reconstruction): snapshot tests compare pixels.
    hide_timings: bool,
    /// `Startup::generate_on_load`, until it has fired.
    generate_on_load: bool,
}

/// Frame and first-result timings (the screenshot log reports them).
struct Perf {
    started: Instant,
    frame_ms: Vec<f32>,
    /// Frame times while a reconstruction was running (the UI must keep drawing).
    busy_frame_ms: Vec<f32>,
    /// Seconds from start to the first reconstruction on screen.
    first_result_s: Option<f64>,
    last_frame: Option<Instant>,
}

/// `--screenshot`: where to save, and the frame once it is captured.
#[derive(Default)]
struct Shot {
    path: Option<PathBuf>,
    requested: bool,
    image: Arc<std::sync::Mutex<Option<Arc<ColorImage>>>>,
}

/// Work on helper threads the UI waits for.
#[derive(Default)]
struct Pending {
    images: usize,
    saves: usize,
    /// Gallery files being read at start.
    gallery: usize,
}

pub struct Workbench {
    /// Persisted between runs.
    pub settings: Settings,
    worker: WorkerHandle,
    events_tx: Sender<UiEvent>,
    events_rx: Receiver<UiEvent>,
    /// The model list every tab shares.
    models: Vec<ModelEntry>,
    /// Every model job by id.
    tasks: Tasks<Output>,
    recon: ReconTab,
    /// The Generate tab.
    pub gen_tab: GenTab,
    pub messages: Vec<Message>,
    chrome: Chrome,
    perf: Perf,
    shot: Shot,
    pending: Pending,
    download: Option<Download>,
    render_gpu: Option<String>,
    backend: Backend,
    ctx: egui::Context,
    next_id: u64,
}

impl Workbench {
    pub fn new(cc: &eframe::CreationContext<'_>, startup: Startup) -> anyhow::Result<Self> {
        let mut settings: Settings = if startup.fresh_settings {
            Settings::default()
        } else {
            cc.storage
                .and_then(|s| eframe::get_value(s, settings::KEY))
                .unwrap_or_default()
        };
        if let Some(b) = startup.backend {
            settings.backend = b;
        }
        // The GPU the window renders on decides "Auto": software rasterisers lose to the CPU
        // backend.
        let render_gpu = cc.wgpu_render_state.as_ref().and_then(|rs| {
            let info = rs.adapter.get_info();
            (info.device_type != eframe::wgpu::DeviceType::Cpu).then_some(info.name)
        });
        if let Some(rs) = cc.wgpu_render_state.as_ref() {
            crate::gpu::lend_window_device(rs);
        }
        let ctx = cc.egui_ctx.clone();
        let worker = WorkerHandle::spawn(move || ctx.request_repaint())?;
        let (events_tx, events_rx) = channel();
        let gallery = startup.gallery.clone().unwrap_or_else(default_gallery_dir);
        if let Some(t) = startup.tab {
            settings.tab = t;
        }
        let mut app = Workbench {
            settings,
            worker,
            events_tx,
            events_rx,
            models: Vec::new(),
            tasks: Tasks::default(),
            recon: ReconTab::default(),
            gen_tab: GenTab::new(gallery),
            messages: Vec::new(),
            chrome: Chrome {
                hide_timings: startup.hide_timings,
                generate_on_load: startup.generate_on_load,
                ..Chrome::default()
            },
            perf: Perf {
                started: Instant::now(),
                frame_ms: Vec::new(),
                busy_frame_ms: Vec::new(),
                first_result_s: None,
                last_frame: None,
            },
            shot: Shot {
                path: startup.screenshot.clone(),
                ..Shot::default()
            },
            pending: Pending::default(),
            download: None,
            render_gpu,
            backend: Backend::Cpu,
            ctx: cc.egui_ctx.clone(),
            next_id: 1,
        };
        app.apply_theme(&cc.egui_ctx);
        app.configure_worker();
        if !startup.no_default_model {
            for e in Embedded::ALL {
                app.add_model(ModelSource::Embedded(e));
            }
        }
        let mut dirs = startup.models.clone();
        if startup.models.is_empty() {
            dirs.extend(app.settings.model_dirs.clone());
        }
        for d in dirs {
            app.add_model(ModelSource::Folder(d));
        }
        let mut gen_dirs = startup.gen_models.clone();
        if startup.gen_models.is_empty() {
            gen_dirs.extend(app.settings.gen_model_dirs.clone());
        }
        for d in gen_dirs {
            app.add_gen_model(d);
        }
        app.scan_gallery();
        if startup.images.is_empty() {
            if !startup.no_samples {
                let (name, bytes) = SAMPLES[0];
                app.add_image_bytes(name, bytes);
            }
        } else {
            app.open_paths(startup.images.clone());
        }
        if startup.presenter {
            app.run(&cc.egui_ctx, Command::TogglePresenter);
        }
        Ok(app)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn send(&mut self, job: Job) {
        if let Err(e) = self.worker.send(job) {
            self.error(format!("{e:#}"), Some("restart the app"));
        }
    }

    pub fn error(&mut self, text: impl Into<String>, fix: Option<&str>) {
        self.messages.push(Message {
            text: text.into(),
            fix: fix.map(str::to_string),
            error: true,
        });
    }

    fn note(&mut self, text: impl Into<String>) {
        self.messages.push(Message {
            text: text.into(),
            fix: None,
            error: false,
        });
    }

    /// The newest reconstruction job of `image` by `model`.
    fn recon_task(&self, image: u64, model: u64) -> Option<&Task<Output>> {
        self.tasks
            .latest(JobKind::Reconstruct { image, model })
            .map(|(_, t)| t)
    }

    fn recon_task_mut(&mut self, image: u64, model: u64) -> Option<&mut Task<Output>> {
        self.tasks.latest_mut(JobKind::Reconstruct { image, model })
    }

    /// True while any job is queued or running (or a finished one awaits its LPIPS), a model
    /// loads, or an image or file is being decoded or saved.
    pub fn busy(&self) -> bool {
        self.tasks.iter().any(|(_, t)| match &t.state {
            TaskState::Queued | TaskState::Running { .. } => true,
            TaskState::Done(d) => d
                .recon()
                .is_some_and(|d| d.rec.lpips.as_ref().is_err_and(|e| e == LPIPS_PENDING)),
            TaskState::Failed(_) => false,
        }) || self
            .models
            .iter()
            .any(|m| matches!(m.state, ModelState::Loading))
            || self
                .gen_tab
                .models
                .iter()
                .any(|m| matches!(m.state, gen_tab::GenState::Loading))
            || !self.gen_tab.queue.is_empty()
            || self.pending.images > 0
            || self.pending.saves > 0
            || self.pending.gallery > 0
            || self.recon.images.iter().any(|i| i.baseline.is_none())
    }

    /// Metrics line of a finished reconstruction of the current image (tests read this too).
    pub fn metrics_text(&self, model: u64) -> Option<String> {
        let img = self.recon.images.get(self.recon.current)?;
        match &self.recon_task(img.id, model)?.state {
            TaskState::Done(d) => Some(metrics_line(&d.recon()?.rec, img.rgb.dimensions())),
            _ => None,
        }
    }

    fn first_metrics(&self) -> String {
        self.models
            .iter()
            .filter_map(|m| {
                let img = self.recon.images.get(self.recon.current)?;
                let r = self.recon_task(img.id, m.id)?;
                match &r.state {
                    TaskState::Done(Output::Recon(d)) => Some(format!(
                        "{} on {}x{}: {:.2} s, {}",
                        m.source.label(),
                        img.rgb.width(),
                        img.rgb.height(),
                        d.rec.seconds,
                        metrics_line(&d.rec, img.rgb.dimensions())
                    )),
                    _ => None,
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The state of job `job` (tests, scripts).
    pub fn task_state(&self, job: crate::tasks::JobId) -> Option<&TaskState<Output>> {
        self.tasks.get(job).map(|t| &t.state)
    }

    /// Ids of the models, in the order shown.
    pub fn model_ids(&self) -> Vec<u64> {
        self.models.iter().map(|m| m.id).collect()
    }

    fn ready_models(&self) -> Vec<(u64, String)> {
        self.models
            .iter()
            .filter_map(|m| match &m.state {
                ModelState::Ready(i) => Some((m.id, i.name.clone())),
                _ => None,
            })
            .collect()
    }

    fn focus_model(&self) -> Option<u64> {
        let ready = self.ready_models();
        self.recon
            .focus
            .filter(|f| ready.iter().any(|(id, _)| id == f))
            .or_else(|| ready.first().map(|(id, _)| *id))
    }

    fn done(&self, model: u64) -> Option<&Done> {
        let img = self.recon.images.get(self.recon.current)?;
        match &self.recon_task(img.id, model)?.state {
            TaskState::Done(d) => d.recon(),
            _ => None,
        }
    }
}

/// `gallery/` in the app's data folder (where eframe keeps its settings), else in the
/// temporary folder.
fn default_gallery_dir() -> PathBuf {
    eframe::storage_dir("dcae-workbench")
        .unwrap_or_else(|| std::env::temp_dir().join("dcae-workbench"))
        .join("gallery")
}

fn default_lpips_weights() -> Option<PathBuf> {
    // Where tools/fetch-lpips-weights.sh puts the shift-tolerant LPIPS VGG16 weights.
    let p = PathBuf::from("target/lpips/stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth");
    p.is_file().then_some(p)
}

/// "PSNR 24.10 dB | SSIM 0.7012 | LPIPS 0.2100 | latent 32x16x16 = 8192 values (96.0x)".
pub fn metrics_line(r: &Reconstruction, (w, h): (u32, u32)) -> String {
    let l = &r.latent;
    format!(
        "PSNR {:.2} dB | SSIM {} | LPIPS {} | latent {}x{}x{} = {} values ({:.1}x fewer)",
        r.psnr,
        r.ssim.map_or("n/a".into(), |s| format!("{s:.4}")),
        r.lpips.as_ref().map_or("n/a".into(), |v| format!("{v:.4}")),
        l.channels,
        l.height,
        l.width,
        l.len(),
        analysis::compression_ratio(w as usize, h as usize, l.len())
    )
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn median(v: &[f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    s[s.len() / 2]
}

/// The latent as `latent` `[1, C, H, W]` f32 in a safetensors file.
fn save_latent(l: &Latent, path: &Path) -> Result<(), String> {
    let bytes: Vec<u8> = l.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![1, l.channels, l.height, l.width],
        &bytes,
    )
    .map_err(|e| e.to_string())?;
    safetensors::serialize_to_file([("latent", view)], None, path).map_err(|e| e.to_string())
}

impl eframe::App for Workbench {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let now = Instant::now();
        if let Some(t) = self.perf.last_frame {
            let ms = (now - t).as_secs_f32() * 1000.0;
            self.perf.frame_ms.push(ms);
            if self.perf.frame_ms.len() > 600 {
                self.perf.frame_ms.drain(..300);
            }
            if self
                .tasks
                .iter()
                .any(|(_, t)| matches!(t.state, TaskState::Running { .. }))
            {
                self.perf.busy_frame_ms.push(ms);
            }
        }
        self.perf.last_frame = Some(now);
        self.poll(ctx);
        self.shortcuts(ctx);
        self.screenshot_step(ctx);
        if self.busy() {
            // Progress text and elapsed time keep moving while the worker runs.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.ensure_textures(&ctx);
        let mut acts: Vec<Action> = Vec::new();
        egui::Panel::top("menu").show(ui, |ui| {
            acts.extend(self.menu_bar(ui).into_iter().map(Action::Command));
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            self.status_bar(ui);
            self.messages_ui(ui);
        });
        match self.settings.tab {
            Tab::Reconstruct => {
                egui::Panel::bottom("metrics")
                    .resizable(true)
                    .show(ui, |ui| self.metrics_table(ui));
                egui::Panel::left("side")
                    .resizable(true)
                    .default_size(270.0)
                    .show(ui, |ui| {
                        egui::ScrollArea::vertical().show(ui, |ui| {
                            acts.extend(self.side_panel(ui));
                        });
                    });
                egui::CentralPanel::default().show(ui, |ui| self.central(ui));
            }
            Tab::Generate => {
                egui::Panel::bottom("gallery")
                    .resizable(true)
                    .default_size(150.0)
                    .show(ui, |ui| acts.extend(self.gallery_strip(ui)));
                egui::Panel::left("gen-side")
                    .resizable(true)
                    .default_size(300.0)
                    .show(ui, |ui| {
                        egui::ScrollArea::vertical().show(ui, |ui| {
                            acts.extend(self.gen_side_panel(ui));
                        });
                    });
                egui::CentralPanel::default().show(ui, |ui| acts.extend(self.gen_central(ui)));
            }
        }
        self.help_window(&ctx);
        for a in acts {
            self.apply(&ctx, a);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, settings::KEY, &self.settings);
    }
}

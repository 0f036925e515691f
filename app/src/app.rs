//! The workbench: images on the left, models and settings beside them, the comparison views in
//! the middle and the metrics table below. The UI only emits [`Command`]s and [`Job`]s; models
//! run on the worker thread, file decoding and saving on short-lived threads.

mod panels;
mod views;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use dcae::Backend;
use egui::{
    Align2, Color32, ColorImage, FontId, Key, Pos2, Rect, Sense, Stroke, TextureHandle,
    TextureOptions, Vec2, pos2, vec2,
};

use crate::analysis::{self, Latent};
use crate::command::Command;
use crate::settings::{self, BackendChoice, Settings, TilingMode, ViewMode};
use crate::sheet;
use crate::view::{ZoomPan, grid_shape};
use crate::worker::{
    Job, LPIPS_PENDING, ModelInfo, ModelSource, Reconstruction, Reply, WorkerHandle,
};

/// Sample photos compiled into the binary (licences in assets/images/SOURCE.md).
pub const SAMPLES: [(&str, &[u8]); 2] = [
    (
        "astronaut.png",
        include_bytes!("../../assets/images/astronaut.png"),
    ),
    (
        "forget-me-nots.jpg",
        include_bytes!("../../assets/images/forget-me-nots.jpg"),
    ),
];

/// How the app was started (command line, tests).
#[derive(Debug, Clone, Default)]
pub struct Startup {
    pub images: Vec<PathBuf>,
    pub models: Vec<PathBuf>,
    /// Skip the embedded default model.
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
}

struct ImageEntry {
    id: u64,
    name: String,
    rgb: Arc<image::RgbImage>,
    texture: Option<TextureHandle>,
}

enum ModelState {
    Loading,
    Ready(ModelInfo),
    Failed(String),
}

struct ModelEntry {
    id: u64,
    source: ModelSource,
    state: ModelState,
    warm_s: Option<f64>,
}

struct Done {
    rec: Reconstruction,
    texture: Option<TextureHandle>,
    /// Heatmap texture at a scale, and the mean |difference| in 8-bit levels.
    diff: Option<(f32, TextureHandle, f32)>,
    latent_tex: Option<(TextureHandle, TextureHandle, usize)>,
}

enum ResultState {
    Queued,
    Running {
        stage: &'static str,
        done: usize,
        total: usize,
    },
    Done(Box<Done>),
    Failed(String),
}

struct ResultEntry {
    state: ResultState,
    cancel: Arc<AtomicBool>,
    started: Instant,
}

/// A message in the UI: an error with a suggested fix, or a note.
pub struct Message {
    pub text: String,
    pub fix: Option<String>,
    pub error: bool,
}

/// Events from helper threads (file decoding, dialogs, saving).
enum UiEvent {
    Image(Result<(String, image::RgbImage), String>),
    Picked(Pick, Vec<PathBuf>),
    Saved(Result<PathBuf, String>),
    Download(dcae::hub::DownloadProgress),
    Downloaded(Result<PathBuf, String>),
}

/// A running Hugging Face download.
struct Download {
    repo: String,
    progress: Option<dcae::hub::DownloadProgress>,
    cancel: Arc<AtomicBool>,
    started: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Pick {
    Images,
    ModelFolder,
    Lpips,
    Save(SaveKind),
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

/// Which image a split side shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Original,
    Model(u64),
}

pub struct Workbench {
    pub settings: Settings,
    worker: WorkerHandle,
    events_tx: Sender<UiEvent>,
    events_rx: Receiver<UiEvent>,
    images: Vec<ImageEntry>,
    current: usize,
    models: Vec<ModelEntry>,
    results: HashMap<(u64, u64), ResultEntry>,
    next_id: u64,
    zoom: ZoomPan,
    split: (Slot, Slot, f32),
    focus: Option<u64>,
    latent_channel: usize,
    pub messages: Vec<Message>,
    presenter: bool,
    fullscreen: bool,
    render_gpu: Option<String>,
    backend: Backend,
    screenshot: Option<PathBuf>,
    screenshot_requested: bool,
    screenshot_image: Arc<std::sync::Mutex<Option<Arc<ColorImage>>>>,
    started: Instant,
    frame_ms: Vec<f32>,
    /// Frame times while a reconstruction was running (the UI must keep drawing).
    busy_frame_ms: Vec<f32>,
    /// Seconds from start to the first reconstruction on screen.
    first_result_s: Option<f64>,
    last_frame: Option<Instant>,
    show_help: bool,
    pending_images: usize,
    ctx: egui::Context,
    pending_saves: usize,
    hide_timings: bool,
    download: Option<Download>,
    hub_choice: usize,
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
        let ctx = cc.egui_ctx.clone();
        let worker = WorkerHandle::spawn(move || ctx.request_repaint())?;
        let (events_tx, events_rx) = channel();
        let mut app = Workbench {
            settings,
            worker,
            events_tx,
            events_rx,
            images: Vec::new(),
            current: 0,
            models: Vec::new(),
            results: HashMap::new(),
            next_id: 1,
            zoom: ZoomPan::default(),
            split: (Slot::Original, Slot::Original, 0.5),
            focus: None,
            latent_channel: 0,
            messages: Vec::new(),
            presenter: false,
            fullscreen: false,
            render_gpu,
            backend: Backend::Cpu,
            screenshot: startup.screenshot.clone(),
            screenshot_requested: false,
            screenshot_image: Arc::default(),
            started: Instant::now(),
            frame_ms: Vec::new(),
            busy_frame_ms: Vec::new(),
            first_result_s: None,
            last_frame: None,
            show_help: false,
            pending_images: 0,
            ctx: cc.egui_ctx.clone(),
            pending_saves: 0,
            hide_timings: startup.hide_timings,
            download: None,
            hub_choice: 0,
        };
        app.apply_theme(&cc.egui_ctx);
        app.configure_worker();
        if !startup.no_default_model {
            app.add_model(ModelSource::Embedded);
        }
        let mut dirs = startup.models.clone();
        if startup.models.is_empty() {
            dirs.extend(app.settings.model_dirs.clone());
        }
        for d in dirs {
            app.add_model(ModelSource::Folder(d));
        }
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

    fn apply_theme(&self, ctx: &egui::Context) {
        ctx.set_theme(if self.settings.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
    }

    /// The backend "Auto" resolves to, and sends backend + LPIPS settings to the worker.
    fn configure_worker(&mut self) {
        self.backend = match self.settings.backend {
            BackendChoice::Cpu => Backend::Cpu,
            BackendChoice::Wgpu => Backend::Wgpu,
            BackendChoice::Auto if self.render_gpu.is_some() => Backend::Wgpu,
            BackendChoice::Auto => Backend::Cpu,
        };
        let lpips = self
            .settings
            .lpips_weights
            .clone()
            .or_else(default_lpips_weights);
        self.send(Job::Configure {
            backend: self.backend,
            lpips,
        });
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

    // ---------------------------------------------------------------- images and models

    pub fn add_model(&mut self, source: ModelSource) {
        if self.models.iter().any(|m| m.source == source) {
            return;
        }
        let id = self.id();
        self.models.push(ModelEntry {
            id,
            source: source.clone(),
            state: ModelState::Loading,
            warm_s: None,
        });
        if let ModelSource::Folder(d) = &source
            && !self.settings.model_dirs.contains(d)
        {
            self.settings.model_dirs.push(d.clone());
        }
        self.send(Job::Load { model: id, source });
    }

    fn remove_model(&mut self, id: u64) {
        if let Some(i) = self.models.iter().position(|m| m.id == id) {
            let m = self.models.remove(i);
            if let ModelSource::Folder(d) = &m.source {
                self.settings.model_dirs.retain(|x| x != d);
            }
            self.results.retain(|&(_, mid), r| {
                if mid == id {
                    r.cancel.store(true, Ordering::Relaxed);
                }
                mid != id
            });
            self.send(Job::Unload { model: id });
        }
    }

    /// Decodes files on a thread; each arrives as an [`UiEvent::Image`].
    pub fn open_paths(&mut self, paths: Vec<PathBuf>) {
        for p in paths {
            self.pending_images += 1;
            let tx = self.events_tx.clone();
            let ctx = self.ctx.clone();
            std::thread::spawn(move || {
                let r = dcae::image_io::load_image(&p)
                    .map(|(img, _)| {
                        let name = p
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| p.display().to_string());
                        (name, img.to_rgb8())
                    })
                    .map_err(|e| e.to_string());
                let _ = tx.send(UiEvent::Image(r));
                ctx.request_repaint();
            });
        }
    }

    fn add_image_bytes(&mut self, name: &str, bytes: &[u8]) {
        match image::load_from_memory(bytes) {
            Ok(img) => self.add_image(name.to_string(), img.to_rgb8()),
            Err(e) => self.error(format!("{name}: {e}"), None),
        }
    }

    pub fn add_image(&mut self, name: String, rgb: image::RgbImage) {
        let id = self.id();
        self.images.push(ImageEntry {
            id,
            name,
            rgb: Arc::new(rgb),
            texture: None,
        });
        self.current = self.images.len() - 1;
        self.zoom.fit = true;
        self.queue_current();
    }

    /// Queues a reconstruction of the current image by every ready model that has none.
    fn queue_current(&mut self) {
        let Some(img) = self.images.get(self.current) else {
            return;
        };
        let (iid, rgb) = (img.id, img.rgb.clone());
        let ready: Vec<u64> = self
            .models
            .iter()
            .filter(|m| matches!(m.state, ModelState::Ready(_)))
            .map(|m| m.id)
            .collect();
        for mid in ready {
            let retry = matches!(
                self.results.get(&(iid, mid)).map(|r| &r.state),
                Some(ResultState::Failed(_))
            );
            if self.results.contains_key(&(iid, mid)) && !retry {
                continue;
            }
            let cancel = Arc::new(AtomicBool::new(false));
            self.results.insert(
                (iid, mid),
                ResultEntry {
                    state: ResultState::Queued,
                    cancel: cancel.clone(),
                    started: Instant::now(),
                },
            );
            self.send(Job::Reconstruct {
                image: iid,
                model: mid,
                rgb: rgb.clone(),
                tiling: self.settings.tiling,
                tile_px: self.settings.tile_px,
                cancel,
            });
        }
    }

    /// True while any reconstruction is queued or running.
    pub fn busy(&self) -> bool {
        self.results.values().any(|r| match &r.state {
            ResultState::Queued | ResultState::Running { .. } => true,
            ResultState::Done(d) => d.rec.lpips.as_ref().is_err_and(|e| e == LPIPS_PENDING),
            ResultState::Failed(_) => false,
        }) || self
            .models
            .iter()
            .any(|m| matches!(m.state, ModelState::Loading))
            || self.pending_images > 0
            || self.pending_saves > 0
    }

    /// Metrics line of a finished reconstruction of the current image (tests read this too).
    pub fn metrics_text(&self, model: u64) -> Option<String> {
        let img = self.images.get(self.current)?;
        match &self.results.get(&(img.id, model))?.state {
            ResultState::Done(d) => Some(metrics_line(&d.rec, img.rgb.dimensions())),
            _ => None,
        }
    }

    fn first_metrics(&self) -> String {
        self.models
            .iter()
            .filter_map(|m| {
                let img = self.images.get(self.current)?;
                let r = self.results.get(&(img.id, m.id))?;
                match &r.state {
                    ResultState::Done(d) => Some(format!(
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
        self.focus
            .filter(|f| ready.iter().any(|(id, _)| id == f))
            .or_else(|| ready.first().map(|(id, _)| *id))
    }

    fn done(&self, model: u64) -> Option<&Done> {
        let img = self.images.get(self.current)?;
        match &self.results.get(&(img.id, model))?.state {
            ResultState::Done(d) => Some(d),
            _ => None,
        }
    }

    // ---------------------------------------------------------------- commands

    /// Executes one command (menus, toolbar, shortcuts and tests all come here).
    pub fn run(&mut self, ctx: &egui::Context, cmd: Command) {
        match cmd {
            Command::OpenImages => self.pick(Pick::Images),
            Command::PasteImage => self.paste_image(),
            Command::AddModelFolder => self.pick(Pick::ModelFolder),
            Command::ReconstructAll => {
                if let Some(img) = self.images.get(self.current) {
                    let iid = img.id;
                    self.results.retain(|&(i, _), r| {
                        i != iid || matches!(r.state, ResultState::Running { .. })
                    });
                }
                self.queue_current();
            }
            Command::CancelAll => {
                let mut n = 0;
                for r in self.results.values_mut() {
                    if matches!(r.state, ResultState::Queued | ResultState::Running { .. }) {
                        r.cancel.store(true, Ordering::Relaxed);
                        n += 1;
                    }
                }
                if n > 0 {
                    self.note(format!("cancelling {n} reconstruction(s)"));
                }
            }
            Command::View(v) => self.settings.view = v,
            Command::ZoomIn | Command::ZoomOut => {
                let f = if cmd == Command::ZoomIn { 1.25 } else { 0.8 };
                let cell = Rect::from_min_size(Pos2::ZERO, vec2(2.0, 2.0));
                self.zoom.zoom_about(cell, cell.center(), f);
            }
            Command::ZoomFit => self.zoom.fit = true,
            Command::ZoomActual => self.zoom.actual_pixels(ctx.pixels_per_point()),
            Command::ToggleTiles => self.settings.show_tiles = !self.settings.show_tiles,
            Command::NextImage | Command::PrevImage => {
                if !self.images.is_empty() {
                    let n = self.images.len();
                    self.current = if cmd == Command::NextImage {
                        (self.current + 1) % n
                    } else {
                        (self.current + n - 1) % n
                    };
                    self.zoom.fit = true;
                    self.queue_current();
                }
            }
            Command::NextModel => {
                let ready = self.ready_models();
                if !ready.is_empty() {
                    let cur = self.focus_model();
                    let i = ready
                        .iter()
                        .position(|(id, _)| Some(*id) == cur)
                        .unwrap_or(0);
                    self.focus = Some(ready[(i + 1) % ready.len()].0);
                }
            }
            Command::SaveReconstruction => self.pick(Pick::Save(SaveKind::Reconstruction)),
            Command::SaveDifference => self.pick(Pick::Save(SaveKind::Difference)),
            Command::SaveLatent => self.pick(Pick::Save(SaveKind::Latent)),
            Command::SaveSheet => self.pick(Pick::Save(SaveKind::Sheet)),
            Command::TogglePresenter => {
                self.presenter = !self.presenter;
                self.fullscreen = self.presenter;
                ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(self.fullscreen));
                ctx.set_zoom_factor(if self.presenter {
                    self.settings.presenter_zoom
                } else {
                    1.0
                });
                if self.presenter {
                    // Pre-warm: the first reconstruction on a device compiles its kernels.
                    for id in self.model_ids() {
                        self.send(Job::Warm { model: id });
                    }
                }
            }
            Command::ToggleFullscreen => {
                self.fullscreen = !self.fullscreen;
                ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(self.fullscreen));
            }
        }
    }

    /// Opens a native dialog on its own thread (the UI keeps drawing).
    fn pick(&mut self, what: Pick) {
        let dir = self.settings.last_dir.clone();
        let suggested = self.suggested_name(what);
        if let Pick::Save(kind) = what
            && let Err(e) = self.save_payload(kind)
        {
            self.error(e, None);
            return;
        }
        let tx = self.events_tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let mut d = rfd::FileDialog::new();
            if let Some(dir) = dir {
                d = d.set_directory(dir);
            }
            let paths = match what {
                Pick::Images => d
                    .add_filter(
                        "images",
                        &["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"],
                    )
                    .pick_files()
                    .unwrap_or_default(),
                Pick::ModelFolder => d.pick_folder().into_iter().collect(),
                Pick::Lpips => d
                    .add_filter("LPIPS VGG16 weights", &["pth", "safetensors"])
                    .pick_file()
                    .into_iter()
                    .collect(),
                Pick::Save(_) => d.set_file_name(suggested).save_file().into_iter().collect(),
            };
            if !paths.is_empty() {
                let _ = tx.send(UiEvent::Picked(what, paths));
                ctx.request_repaint();
            }
        });
    }

    fn suggested_name(&self, what: Pick) -> String {
        let stem = self
            .images
            .get(self.current)
            .map(|i| {
                Path::new(&i.name)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .unwrap_or_else(|| "image".into());
        let model = self
            .focus_model()
            .and_then(|id| self.models.iter().find(|m| m.id == id))
            .map(|m| sanitize(&m.source.label()))
            .unwrap_or_default();
        match what {
            Pick::Save(SaveKind::Reconstruction) => format!("{stem}-{model}.png"),
            Pick::Save(SaveKind::Difference) => format!("{stem}-{model}-difference.png"),
            Pick::Save(SaveKind::Latent) => format!("{stem}-{model}-latent.safetensors"),
            Pick::Save(SaveKind::Sheet) => format!("{stem}-comparison.png"),
            _ => String::new(),
        }
    }

    /// Checks there is something to save before asking where.
    fn save_payload(&self, kind: SaveKind) -> Result<(), String> {
        match kind {
            SaveKind::Sheet => {
                if self.images.is_empty() {
                    return Err("no image to put on a sheet".into());
                }
            }
            _ => {
                let m = self
                    .focus_model()
                    .ok_or("no model is loaded; add one first")?;
                self.done(m)
                    .ok_or("the selected model has no finished reconstruction of this image yet")?;
            }
        }
        Ok(())
    }

    /// Saves without a dialog (what the dialog's answer leads to; also for tests and scripts).
    /// Runs on a thread; the result appears as a message.
    pub fn export(&mut self, kind: SaveKind, path: PathBuf) -> Result<(), String> {
        self.save_payload(kind)?;
        self.pending_saves += 1;
        self.save(kind, path);
        Ok(())
    }

    /// Saves to `path` on a thread; the result arrives as [`UiEvent::Saved`].
    fn save(&mut self, kind: SaveKind, path: PathBuf) {
        let Some(img) = self.images.get(self.current) else {
            return;
        };
        let orig = img.rgb.clone();
        let focus = self.focus_model();
        let d = focus.and_then(|m| self.done(m)).map(|d| d.rec.clone());
        let sheet_panels = self.sheet_panels();
        let diff_scale = self.settings.diff_scale;
        let tx = self.events_tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let r: Result<(), String> = (|| match kind {
                SaveKind::Reconstruction => {
                    let d = d.ok_or("nothing to save")?;
                    d.image.save(&path).map_err(|e| e.to_string())
                }
                SaveKind::Difference => {
                    let d = d.ok_or("nothing to save")?;
                    let diff = analysis::signed_difference(orig.as_raw(), d.image.as_raw());
                    let heat = analysis::heatmap(&diff, diff_scale);
                    image::RgbImage::from_raw(orig.width(), orig.height(), heat)
                        .ok_or("heatmap size")?
                        .save(&path)
                        .map_err(|e| e.to_string())
                }
                SaveKind::Latent => {
                    let d = d.ok_or("nothing to save")?;
                    save_latent(&d.latent, &path)
                }
                SaveKind::Sheet => {
                    let panels: Vec<sheet::Panel> = sheet_panels
                        .iter()
                        .map(|(img, title, lines)| sheet::Panel {
                            image: img.as_ref(),
                            title: title.clone(),
                            lines: lines.clone(),
                        })
                        .collect();
                    let cols = panels.len().min(4);
                    sheet::compose(&panels, cols, 512)
                        .save(&path)
                        .map_err(|e| e.to_string())
                }
            })();
            let _ = tx.send(UiEvent::Saved(r.map(|()| path)));
            ctx.request_repaint();
        });
    }

    fn sheet_panels(&self) -> Vec<(Arc<image::RgbImage>, String, Vec<String>)> {
        let Some(img) = self.images.get(self.current) else {
            return Vec::new();
        };
        let (w, h) = img.rgb.dimensions();
        let mut out = vec![(
            img.rgb.clone(),
            format!("Original: {}", img.name),
            vec![format!("{w}x{h}, {} values (8-bit RGB)", w * h * 3)],
        )];
        for m in &self.models {
            if let (ModelState::Ready(info), Some(d)) = (&m.state, self.done(m.id)) {
                out.push((
                    d.rec.image.clone(),
                    format!("{} (f{}c{})", info.name, info.factor, info.latent_channels),
                    metrics_line(&d.rec, (w, h))
                        .split(" | ")
                        .map(str::to_string)
                        .collect(),
                ));
            }
        }
        out
    }

    fn paste_image(&mut self) {
        let got = arboard::Clipboard::new().and_then(|mut c| c.get_image());
        match got {
            Ok(img) => {
                let (w, h) = (img.width as u32, img.height as u32);
                let rgba = image::RgbaImage::from_raw(w, h, img.bytes.into_owned());
                match rgba {
                    Some(rgba) => {
                        let rgb = image::DynamicImage::ImageRgba8(rgba).to_rgb8();
                        self.add_image("pasted image".into(), rgb);
                    }
                    None => self.error("the clipboard image has an unexpected size", None),
                }
            }
            Err(e) => self.error(
                format!("no image on the clipboard ({e})"),
                Some("copy an image first, or open a file (Ctrl+O) or drop one on the window"),
            ),
        }
    }

    // ---------------------------------------------------------------- events

    fn poll(&mut self, ctx: &egui::Context) {
        while let Some(r) = self.worker.try_recv() {
            self.on_reply(r);
        }
        while let Ok(e) = self.events_rx.try_recv() {
            match e {
                UiEvent::Image(Ok((name, rgb))) => {
                    self.pending_images = self.pending_images.saturating_sub(1);
                    self.add_image(name, rgb);
                }
                UiEvent::Image(Err(e)) => {
                    self.pending_images = self.pending_images.saturating_sub(1);
                    self.error(e, Some("open a PNG, JPEG, WebP, BMP or TIFF file"));
                }
                UiEvent::Picked(what, paths) => {
                    if let Some(dir) = paths.first().and_then(|p| {
                        if p.is_dir() {
                            Some(p.clone())
                        } else {
                            p.parent().map(Path::to_path_buf)
                        }
                    }) {
                        self.settings.last_dir = Some(dir);
                    }
                    match what {
                        Pick::Images => self.open_paths(paths),
                        Pick::ModelFolder => {
                            for p in paths {
                                self.add_model(ModelSource::Folder(p));
                            }
                        }
                        Pick::Lpips => {
                            self.settings.lpips_weights = paths.into_iter().next();
                            self.configure_worker();
                        }
                        Pick::Save(kind) => {
                            if let Some(p) = paths.into_iter().next() {
                                self.pending_saves += 1;
                                self.save(kind, p);
                            }
                        }
                    }
                }
                UiEvent::Saved(Ok(p)) => {
                    self.pending_saves = self.pending_saves.saturating_sub(1);
                    self.note(format!("saved {}", p.display()))
                }
                UiEvent::Download(p) => {
                    if let Some(d) = &mut self.download {
                        d.progress = Some(p);
                    }
                }
                UiEvent::Downloaded(r) => {
                    let repo = self.download.take().map(|d| d.repo).unwrap_or_default();
                    match r {
                        Ok(dir) => {
                            self.note(format!("{repo}: in the cache at {}", dir.display()));
                            self.add_model(ModelSource::Folder(dir));
                        }
                        Err(e) if e == "cancelled" => {
                            self.note(format!("{repo}: download cancelled"))
                        }
                        Err(e) => self.error(
                            format!("{repo}: {e}"),
                            Some("check the network (or HF_ENDPOINT / HF_TOKEN), then retry"),
                        ),
                    }
                }
                UiEvent::Saved(Err(e)) => {
                    self.pending_saves = self.pending_saves.saturating_sub(1);
                    self.error(format!("saving failed: {e}"), Some("choose another folder"))
                }
            }
        }
        // Drag and drop.
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if !dropped.is_empty() {
            let (dirs, files): (Vec<PathBuf>, Vec<PathBuf>) =
                dropped.into_iter().partition(|p| p.is_dir());
            for d in dirs {
                self.add_model(ModelSource::Folder(d));
            }
            self.open_paths(files);
        }
    }

    fn on_reply(&mut self, r: Reply) {
        match r {
            Reply::Loaded { model, result } => {
                let Some(m) = self.models.iter_mut().find(|m| m.id == model) else {
                    return;
                };
                match result {
                    Ok(info) => {
                        m.state = ModelState::Ready(info);
                        self.queue_current();
                    }
                    Err(e) => {
                        let name = m.source.label();
                        m.state = ModelState::Failed(e.clone());
                        self.error(
                            format!("model {name}: {e}"),
                            Some("pick a folder with config.json and a .safetensors file"),
                        );
                    }
                }
            }
            Reply::Progress {
                image,
                model,
                stage,
                done,
                total,
            } => {
                if let Some(e) = self.results.get_mut(&(image, model)) {
                    if matches!(e.state, ResultState::Queued) {
                        e.started = Instant::now();
                    }
                    e.state = ResultState::Running { stage, done, total };
                }
            }
            Reply::Finished {
                image,
                model,
                result,
            } => {
                let Some(e) = self.results.get_mut(&(image, model)) else {
                    return;
                };
                match result {
                    Ok(rec) => {
                        self.first_result_s
                            .get_or_insert(self.started.elapsed().as_secs_f64());
                        e.state = ResultState::Done(Box::new(Done {
                            rec,
                            texture: None,
                            diff: None,
                            latent_tex: None,
                        }))
                    }
                    Err(msg) => {
                        let cancelled = msg == "cancelled";
                        e.state = ResultState::Failed(msg.clone());
                        if !cancelled {
                            let fix = if msg.contains("memory") || msg.contains("alloc") {
                                "set Tiling to Always with smaller tiles, or use the CPU backend"
                            } else if msg.contains("NaN") {
                                "try the CPU backend or another model"
                            } else {
                                "check the model and image, then press R to retry"
                            };
                            self.error(msg, Some(fix));
                        }
                    }
                }
            }
            Reply::Warmed { model, seconds } => {
                if let Some(m) = self.models.iter_mut().find(|m| m.id == model) {
                    m.warm_s = Some(seconds);
                }
            }
            Reply::Lpips {
                image,
                model,
                value,
            } => {
                if let Some(ResultState::Done(d)) =
                    self.results.get_mut(&(image, model)).map(|e| &mut e.state)
                {
                    d.rec.lpips = value;
                }
            }
            Reply::Note(n) => self.note(n),
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let mut fired = Vec::new();
        ctx.input_mut(|i| {
            for c in Command::ALL {
                if let Some(s) = c.shortcut()
                    && i.consume_shortcut(&s)
                {
                    fired.push(c);
                }
            }
            // Presenter convenience: "=" zooms in too (no Shift needed for "+").
            if i.consume_key(egui::Modifiers::NONE, Key::Equals) {
                fired.push(Command::ZoomIn);
            }
            if i.consume_key(egui::Modifiers::NONE, Key::F1) {
                fired.push(Command::TogglePresenter);
                fired.pop();
                self.show_help = !self.show_help;
            }
        });
        let pasted = ctx.input(|i| i.events.iter().any(|e| matches!(e, egui::Event::Paste(_))));
        if pasted {
            fired.push(Command::PasteImage);
        }
        for c in fired {
            self.run(ctx, c);
        }
    }

    fn screenshot_step(&mut self, ctx: &egui::Context) {
        let Some(path) = self.screenshot.clone() else {
            return;
        };
        let shot = self.screenshot_image.lock().ok().and_then(|mut g| g.take());
        if let Some(img) = shot {
            let [w, h] = img.size;
            let bytes: Vec<u8> = img.pixels.iter().flat_map(|p| p.to_array()).collect();
            let r = image::RgbaImage::from_raw(w as u32, h as u32, bytes)
                .ok_or_else(|| "bad screenshot size".to_string())
                .and_then(|i| i.save(&path).map_err(|e| e.to_string()));
            match r {
                Ok(()) => eprintln!(
                    "screenshot {} ({w}x{h}) after {:.1} s, first reconstruction on screen \
                     after {:.1} s; frame time median {:.1} ms overall, \
                     {:.1} ms (max {:.1} ms, {} frames) while a reconstruction ran; {}",
                    path.display(),
                    self.started.elapsed().as_secs_f64(),
                    self.first_result_s.unwrap_or(f64::NAN),
                    median(&self.frame_ms),
                    median(&self.busy_frame_ms),
                    self.busy_frame_ms.iter().copied().fold(0.0, f32::max),
                    self.busy_frame_ms.len(),
                    self.first_metrics()
                ),
                Err(e) => eprintln!("screenshot failed: {e}"),
            }
            self.screenshot = None;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let ready = !self.busy() && self.images.iter().any(|i| i.texture.is_some());
        let timeout = self.started.elapsed() > Duration::from_secs(900);
        if (ready || timeout) && !self.screenshot_requested {
            self.screenshot_requested = true;
            let slot = self.screenshot_image.clone();
            let c = ctx.clone();
            ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
                egui::ScreenshotCallback::new(move |img| {
                    if let Ok(mut g) = slot.lock() {
                        *g = Some(img);
                    }
                    c.request_repaint();
                }),
            ));
        }
        ctx.request_repaint_after(Duration::from_millis(100));
    }
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
        if let Some(t) = self.last_frame {
            let ms = (now - t).as_secs_f32() * 1000.0;
            self.frame_ms.push(ms);
            if self.frame_ms.len() > 600 {
                self.frame_ms.drain(..300);
            }
            if self
                .results
                .values()
                .any(|r| matches!(r.state, ResultState::Running { .. }))
            {
                self.busy_frame_ms.push(ms);
            }
        }
        self.last_frame = Some(now);
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
        let mut cmds = Vec::new();
        egui::Panel::top("menu").show(ui, |ui| {
            cmds.extend(self.menu_bar(ui));
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            self.status_bar(ui);
            self.messages_ui(ui);
        });
        egui::Panel::bottom("metrics")
            .resizable(true)
            .show(ui, |ui| self.metrics_table(ui));
        egui::Panel::left("side")
            .resizable(true)
            .default_size(270.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    cmds.extend(self.side_panel(ui));
                });
            });
        egui::CentralPanel::default().show(ui, |ui| self.central(ui));
        self.help_window(&ctx);
        for c in cmds {
            self.run(&ctx, c);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, settings::KEY, &self.settings);
    }
}

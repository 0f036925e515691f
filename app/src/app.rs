//! The workbench: images on the left, models and settings beside them, the comparison views in
//! the middle and the metrics table below. The UI only emits [`Command`]s and [`Job`]s; models
//! run on the worker thread, file decoding and saving on short-lived threads.

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
    diff: Option<(f32, TextureHandle)>,
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

    // ---------------------------------------------------------------- drawing

    fn menu_bar(&mut self, ui: &mut egui::Ui) -> Vec<Command> {
        let mut cmds = Vec::new();
        let ctx = ui.ctx().clone();
        egui::MenuBar::new().ui(ui, |ui| {
            let mut item = |ui: &mut egui::Ui, c: Command| {
                let b = egui::Button::new(c.label()).shortcut_text(c.shortcut_text(&ctx));
                if ui.add(b).on_hover_text(c.tooltip()).clicked() {
                    cmds.push(c);
                }
            };
            ui.menu_button("File", |ui| {
                for c in [
                    Command::OpenImages,
                    Command::PasteImage,
                    Command::AddModelFolder,
                    Command::SaveReconstruction,
                    Command::SaveDifference,
                    Command::SaveLatent,
                    Command::SaveSheet,
                ] {
                    item(ui, c);
                }
            });
            ui.menu_button("View", |ui| {
                for v in ViewMode::ALL {
                    item(ui, Command::View(v));
                }
                ui.separator();
                for c in [
                    Command::ZoomIn,
                    Command::ZoomOut,
                    Command::ZoomFit,
                    Command::ZoomActual,
                    Command::ToggleTiles,
                    Command::NextModel,
                    Command::TogglePresenter,
                    Command::ToggleFullscreen,
                ] {
                    item(ui, c);
                }
            });
            ui.separator();
            for v in ViewMode::ALL {
                if ui
                    .selectable_label(self.settings.view == v, v.label())
                    .on_hover_text(Command::View(v).shortcut_text(&ctx))
                    .clicked()
                {
                    cmds.push(Command::View(v));
                }
            }
            ui.separator();
            if ui
                .button(Command::ReconstructAll.label())
                .on_hover_text(Command::ReconstructAll.tooltip())
                .clicked()
            {
                cmds.push(Command::ReconstructAll);
            }
            if ui
                .button("Help")
                .on_hover_text("Keyboard shortcuts (F1)")
                .clicked()
            {
                self.show_help = !self.show_help;
            }
        });
        cmds
    }

    fn side_panel(&mut self, ui: &mut egui::Ui) -> Vec<Command> {
        let mut cmds = Vec::new();
        ui.heading("Images");
        if ui.button("Open images…").clicked() {
            cmds.push(Command::OpenImages);
        }
        let mut pick = None;
        let mut load_sample = None;
        egui::ScrollArea::vertical()
            .id_salt("images")
            .max_height(140.0)
            .show(ui, |ui| {
                for (i, img) in self.images.iter().enumerate() {
                    let (w, h) = img.rgb.dimensions();
                    let label = format!("{} ({w}x{h})", img.name);
                    if ui.selectable_label(i == self.current, label).clicked() {
                        pick = Some(i);
                    }
                }
            });
        ui.horizontal_wrapped(|ui| {
            ui.label("Samples:");
            for (i, (name, _)) in SAMPLES.iter().enumerate() {
                if ui.small_button(*name).clicked() {
                    load_sample = Some(i);
                }
            }
        });
        if let Some(i) = pick {
            self.current = i;
            self.zoom.fit = true;
            self.queue_current();
        }
        if let Some(i) = load_sample {
            let (name, bytes) = SAMPLES[i];
            self.add_image_bytes(name, bytes);
        }
        ui.separator();
        ui.heading("Models");
        let dims = self.images.get(self.current).map(|i| i.rgb.dimensions());
        let mut remove = None;
        let focus = self.focus_model();
        for m in &self.models {
            ui.group(|ui| {
                ui.horizontal(|ui| {
                    let name = m.source.label();
                    if ui
                        .selectable_label(focus == Some(m.id), &name)
                        .on_hover_text("Shown in the difference and latent views")
                        .clicked()
                    {
                        self.focus = Some(m.id);
                    }
                    if ui
                        .small_button("x")
                        .on_hover_text(format!("Remove {name}"))
                        .clicked()
                    {
                        remove = Some(m.id);
                    }
                });
                match &m.state {
                    ModelState::Loading => {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label("loading…");
                        });
                    }
                    ModelState::Failed(e) => {
                        ui.colored_label(ui.visuals().error_fg_color, e);
                    }
                    ModelState::Ready(info) => {
                        ui.label(format!(
                            "f{} c{} · {:.2} M params · {}",
                            info.factor,
                            info.latent_channels,
                            info.params as f64 / 1e6,
                            info.backend
                        ));
                        if let Some((w, h)) = dims {
                            let f = info.factor as u32;
                            let (lw, lh) = (w.div_ceil(f), h.div_ceil(f));
                            ui.label(format!(
                                "latent {}x{}x{} for this image",
                                info.latent_channels, lh, lw
                            ));
                        }
                        if let Some(s) = m.warm_s {
                            ui.label(format!("warmed in {s:.2} s"));
                        }
                    }
                }
            });
        }
        if let Some(id) = remove {
            self.remove_model(id);
        }
        if ui.button("Add model folder…").clicked() {
            cmds.push(Command::AddModelFolder);
        }
        self.hub_ui(ui);
        ui.separator();
        egui::CollapsingHeader::new("Settings")
            .default_open(!self.presenter)
            .show(ui, |ui| self.settings_ui(ui));
        cmds
    }

    /// Official checkpoints from Hugging Face, downloaded into the standard HF cache.
    fn hub_ui(&mut self, ui: &mut egui::Ui) {
        let repos = dcae::hub::official_repos();
        egui::CollapsingHeader::new("Official checkpoints (Hugging Face)")
            .default_open(false)
            .show(ui, |ui| {
                self.hub_choice = self.hub_choice.min(repos.len().saturating_sub(1));
                egui::ComboBox::from_id_salt("hub-repo")
                    .selected_text(repos.get(self.hub_choice).map_or("", |r| r.name))
                    .show_ui(ui, |ui| {
                        for (i, r) in repos.iter().enumerate() {
                            ui.selectable_value(&mut self.hub_choice, i, r.name)
                                .on_hover_text(r.repo);
                        }
                    });
                let mut cancel = false;
                if let Some(d) = &self.download {
                    let (done, total) = d
                        .progress
                        .as_ref()
                        .map_or((0, 0), |p| (p.done_bytes, p.total_bytes));
                    let file = d.progress.as_ref().map_or("", |p| p.file.as_str());
                    let frac = if total > 0 { done as f32 / total as f32 } else { 0.0 };
                    let secs = d.started.elapsed().as_secs_f64().max(1e-3);
                    let rate = done as f64 / secs;
                    let eta = if total > done && rate > 0.0 {
                        format!(", {:.0} s left", (total - done) as f64 / rate)
                    } else {
                        String::new()
                    };
                    ui.label(format!("{}: {file}", d.repo));
                    ui.add(egui::ProgressBar::new(frac).text(format!(
                        "{:.1} / {:.1} MB ({:.1} MB/s{eta})",
                        done as f64 / 1e6,
                        total as f64 / 1e6,
                        rate / 1e6
                    )));
                    cancel = ui.button("Cancel download").clicked();
                } else if ui
                    .button("Download")
                    .on_hover_text("Into the Hugging Face cache (HF_HOME / HF_HUB_CACHE; HF_ENDPOINT, HF_TOKEN honoured); checked against the hub's sha256")
                    .clicked()
                    && let Some(r) = repos.get(self.hub_choice)
                {
                    self.start_download(r.repo.to_string());
                }
                if cancel && let Some(d) = &self.download {
                    d.cancel.store(true, Ordering::Relaxed);
                }
            });
    }

    /// Downloads on its own thread (network is not model work: reconstructions keep running).
    pub fn start_download(&mut self, repo: String) {
        let opts = match dcae::hub::HubOptions::from_env() {
            Ok(o) => o,
            Err(e) => {
                self.error(
                    e.to_string(),
                    Some("check HF_ENDPOINT / HF_HOME / HF_HUB_CACHE"),
                );
                return;
            }
        };
        let cancel = Arc::new(AtomicBool::new(false));
        self.download = Some(Download {
            repo: repo.clone(),
            progress: None,
            cancel: cancel.clone(),
            started: Instant::now(),
        });
        let tx = self.events_tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let mut last = Instant::now();
            let r = dcae::hub::download_model(
                &repo,
                &opts,
                &mut |p| {
                    // A repaint per 64 KiB chunk would be wasteful: at most 20 per second.
                    if last.elapsed() > Duration::from_millis(50) || p.done_bytes == p.total_bytes {
                        last = Instant::now();
                        let _ = tx.send(UiEvent::Download(p));
                        ctx.request_repaint();
                    }
                },
                &cancel,
            );
            let r = r.map_err(|e| match e {
                dcae::Error::Cancelled => "cancelled".to_string(),
                e => e.to_string(),
            });
            let _ = tx.send(UiEvent::Downloaded(r));
            ctx.request_repaint();
        });
    }

    /// True while a download runs.
    pub fn downloading(&self) -> bool {
        self.download.is_some()
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        let before = self.settings.clone();
        egui::ComboBox::from_label("Backend")
            .selected_text(self.settings.backend.label())
            .show_ui(ui, |ui| {
                for b in BackendChoice::ALL {
                    ui.selectable_value(&mut self.settings.backend, b, b.label());
                }
            });
        egui::ComboBox::from_label("Tiling")
            .selected_text(self.settings.tiling.label())
            .show_ui(ui, |ui| {
                for t in TilingMode::ALL {
                    ui.selectable_value(&mut self.settings.tiling, t, t.label());
                }
            });
        ui.add(
            egui::Slider::new(&mut self.settings.tile_px, 128..=2048)
                .step_by(128.0)
                .suffix(" px")
                .text("tile size"),
        );
        ui.add(
            egui::Slider::new(&mut self.settings.diff_scale, 2.0..=128.0)
                .logarithmic(true)
                .suffix(" levels")
                .text("difference scale"),
        );
        ui.checkbox(&mut self.settings.dark, "Dark theme");
        ui.horizontal(|ui| {
            let l = self
                .settings
                .lpips_weights
                .clone()
                .or_else(default_lpips_weights)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into());
            ui.label(format!("LPIPS weights: {l}"));
        });
        if ui
            .button("Choose LPIPS weights…")
            .on_hover_text("VGG16 LPIPS weights (.pth or .safetensors); see README")
            .clicked()
        {
            self.pick(Pick::Lpips);
        }
        ui.label(format!(
            "Compute: {}{}",
            self.backend,
            self.render_gpu
                .as_ref()
                .map(|g| format!(" · display GPU {g}"))
                .unwrap_or_else(|| " · no hardware GPU for display".into())
        ));
        if self.settings.backend != before.backend {
            self.configure_worker();
        }
        if self.settings.dark != before.dark {
            self.apply_theme(ui.ctx());
        }
        if (self.settings.tiling, self.settings.tile_px) != (before.tiling, before.tile_px) {
            // Tiling changes the result: redo the current image.
            self.run(ui.ctx(), Command::ReconstructAll);
        }
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        let mut cancel = false;
        ui.horizontal(|ui| {
            let mut running = Vec::new();
            for m in &self.models {
                for img in &self.images {
                    if let Some(r) = self.results.get(&(img.id, m.id)) {
                        match r.state {
                            ResultState::Running { stage, done, total } => running.push(format!(
                                "{} · {}: {stage} {done}/{total} ({:.1} s)",
                                img.name,
                                m.source.label(),
                                r.started.elapsed().as_secs_f64()
                            )),
                            ResultState::Queued => {
                                running.push(format!("{} · {}: queued", img.name, m.source.label()))
                            }
                            _ => {}
                        }
                    }
                }
            }
            if running.is_empty() {
                ui.label("Ready");
            } else {
                ui.spinner();
                ui.label(running.join("   "));
                if ui.button("Cancel").on_hover_text("Esc").clicked() {
                    cancel = true;
                }
            }
            if !self.hide_timings {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.label(format!(
                        "frame {:.1} ms",
                        self.frame_ms.last().copied().unwrap_or(0.0)
                    ));
                });
            }
        });
        if cancel {
            self.run(ui.ctx(), Command::CancelAll);
        }
    }

    fn messages_ui(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        for (i, m) in self.messages.iter().enumerate().rev().take(4) {
            ui.horizontal_wrapped(|ui| {
                let color = if m.error {
                    ui.visuals().error_fg_color
                } else {
                    ui.visuals().weak_text_color()
                };
                ui.colored_label(color, &m.text);
                if let Some(f) = &m.fix {
                    ui.label(format!("fix: {f}"));
                }
                if ui.small_button("Dismiss").clicked() {
                    dismiss = Some(i);
                }
            });
        }
        if let Some(i) = dismiss {
            self.messages.remove(i);
        }
    }

    fn metrics_table(&mut self, ui: &mut egui::Ui) {
        let Some(img) = self.images.get(self.current) else {
            return;
        };
        let (w, h) = img.rgb.dimensions();
        egui::Grid::new("metrics")
            .striped(true)
            .num_columns(9)
            .show(ui, |ui| {
                for t in [
                    "model", "PSNR", "SSIM", "LPIPS", "latent", "values", "ratio", "time",
                    "backend",
                ] {
                    ui.strong(t);
                }
                ui.end_row();
                for m in &self.models {
                    let ModelState::Ready(info) = &m.state else {
                        continue;
                    };
                    ui.label(&info.name);
                    match self.results.get(&(img.id, m.id)).map(|r| &r.state) {
                        Some(ResultState::Done(d)) => {
                            let r = &d.rec;
                            ui.label(format!("{:.2} dB", r.psnr));
                            ui.label(r.ssim.map_or("n/a".into(), |s| format!("{s:.4}")));
                            ui.label(match &r.lpips {
                                Ok(v) => format!("{v:.4}"),
                                Err(e) => format!("n/a ({e})"),
                            });
                            let l = &r.latent;
                            ui.label(format!("{}x{}x{}", l.channels, l.height, l.width));
                            ui.label(format!("{}", l.len()));
                            ui.label(format!(
                                "{:.1}x",
                                analysis::compression_ratio(w as usize, h as usize, l.len())
                            ));
                            let secs = if self.hide_timings {
                                "-".to_string()
                            } else {
                                format!("{:.2} s", r.seconds)
                            };
                            ui.label(format!(
                                "{secs}{}",
                                r.tiles
                                    .as_ref()
                                    .map(|t| format!(" ({} tiles)", t.len()))
                                    .unwrap_or_default()
                            ));
                        }
                        Some(ResultState::Failed(e)) => {
                            ui.colored_label(ui.visuals().error_fg_color, e);
                            for _ in 0..6 {
                                ui.label("");
                            }
                        }
                        _ => {
                            ui.spinner();
                            for _ in 0..6 {
                                ui.label("");
                            }
                        }
                    }
                    ui.label(&info.backend);
                    ui.end_row();
                }
            });
    }

    fn ensure_textures(&mut self, ctx: &egui::Context) {
        let max = ctx.input(|i| i.max_texture_side);
        let scale = self.settings.diff_scale;
        let cur = self.current;
        let Some(img) = self.images.get_mut(cur) else {
            return;
        };
        if img.texture.is_none() {
            img.texture = Some(texture(ctx, &format!("img{}", img.id), &img.rgb, max));
        }
        let (iid, orig) = (img.id, img.rgb.clone());
        for ((i, _m), r) in self.results.iter_mut() {
            if *i != iid {
                continue;
            }
            if let ResultState::Done(d) = &mut r.state {
                if d.texture.is_none() {
                    d.texture = Some(texture(ctx, "rec", &d.rec.image, max));
                }
                if d.diff.as_ref().is_none_or(|(s, _)| *s != scale) {
                    let diff = analysis::signed_difference(orig.as_raw(), d.rec.image.as_raw());
                    let heat = analysis::heatmap(&diff, scale);
                    let (w, h) = orig.dimensions();
                    if let Some(hi) = image::RgbImage::from_raw(w, h, heat) {
                        d.diff = Some((scale, texture(ctx, "diff", &hi, max)));
                    }
                }
            }
        }
    }

    fn central(&mut self, ui: &mut egui::Ui) {
        let Some(img) = self.images.get(self.current) else {
            ui.centered_and_justified(|ui| {
                ui.label(if self.pending_images > 0 {
                    "Decoding image…"
                } else {
                    "Open an image (Ctrl+O), drop one here, or paste one."
                });
            });
            return;
        };
        let size = {
            let (w, h) = img.rgb.dimensions();
            vec2(w as f32, h as f32)
        };
        match self.settings.view {
            ViewMode::Grid => self.grid_view(ui, size),
            ViewMode::Split => self.split_view(ui, size),
            ViewMode::Difference => self.diff_view(ui, size),
            ViewMode::Latent => self.latent_view(ui),
        }
    }

    /// Cells to draw: (title, texture, tiles) for the original and each model.
    fn cells(&self) -> Vec<Cell<'_>> {
        let Some(img) = self.images.get(self.current) else {
            return Vec::new();
        };
        let tiles = self
            .models
            .iter()
            .filter_map(|m| self.done(m.id).and_then(|d| d.rec.tiles.as_ref()))
            .next();
        let mut v = vec![(
            format!("Original · {}", img.name),
            img.texture.as_ref().map(|t| t.id()),
            tiles,
        )];
        for m in &self.models {
            if let ModelState::Ready(info) = &m.state {
                let (tex, tiles, title) = match self.results.get(&(img.id, m.id)).map(|r| &r.state)
                {
                    Some(ResultState::Done(d)) => (
                        d.texture.as_ref().map(|t| t.id()),
                        d.rec.tiles.as_ref(),
                        format!(
                            "{} · {:.2} dB · SSIM {}",
                            info.name,
                            d.rec.psnr,
                            d.rec.ssim.map_or("n/a".into(), |s| format!("{s:.3}"))
                        ),
                    ),
                    Some(ResultState::Running { stage, done, total }) => (
                        None,
                        None,
                        format!("{} · {stage} {done}/{total}", info.name),
                    ),
                    Some(ResultState::Failed(e)) => {
                        (None, None, format!("{} · failed: {e}", info.name))
                    }
                    _ => (None, None, format!("{} · queued", info.name)),
                };
                v.push((title, tex, tiles));
            }
        }
        v
    }

    fn grid_view(&mut self, ui: &mut egui::Ui, size: Vec2) {
        let n = 1 + self.ready_models().len();
        let area = ui.available_rect_before_wrap();
        let (rows, cols) = grid_shape(n, area.size(), size.x / size.y.max(1.0));
        let cell_size = vec2(area.width() / cols as f32, area.height() / rows as f32);
        let title_h = 20.0;
        let image_cell = vec2(cell_size.x - 4.0, cell_size.y - title_h - 4.0);
        if self.zoom.fit {
            self.zoom.fit_to(image_cell, size);
            self.zoom.fit = true;
        }
        let mut zoom = self.zoom;
        let show_tiles = self.settings.show_tiles;
        let cells = self.cells();
        for (i, (title, tex, tiles)) in cells.iter().enumerate() {
            let (r, c) = (i / cols, i % cols);
            let min = area.min + vec2(c as f32 * cell_size.x, r as f32 * cell_size.y);
            let cell = Rect::from_min_size(min, cell_size).shrink(2.0);
            let title_rect = Rect::from_min_size(cell.min, vec2(cell.width(), title_h));
            let img_rect = Rect::from_min_max(pos2(cell.min.x, cell.min.y + title_h), cell.max);
            ui.painter().text(
                title_rect.left_center(),
                Align2::LEFT_CENTER,
                title,
                FontId::proportional(14.0),
                ui.visuals().text_color(),
            );
            let resp = ui.interact(
                img_rect,
                ui.scope_id().with(("cell", i)),
                Sense::click_and_drag(),
            );
            interact_zoom(ui, &resp, img_rect, &mut zoom);
            let painter = ui.painter_at(img_rect);
            painter.rect_filled(img_rect, 0.0, ui.visuals().extreme_bg_color);
            if let Some(t) = tex {
                painter.image(
                    *t,
                    zoom.image_rect(img_rect, size),
                    Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0)),
                    Color32::WHITE,
                );
            } else {
                painter.text(
                    img_rect.center(),
                    Align2::CENTER_CENTER,
                    "…",
                    FontId::proportional(24.0),
                    ui.visuals().weak_text_color(),
                );
            }
            if show_tiles && let Some(tiles) = tiles {
                draw_tiles(&painter, &zoom, img_rect, tiles);
            }
            if let Some(p) = resp.hover_pos() {
                let ip = zoom.to_image(img_rect, p);
                resp.on_hover_text_at_pointer(format!(
                    "x {:.0}, y {:.0}",
                    ip.x.floor(),
                    ip.y.floor()
                ));
            }
        }
        drop(cells);
        self.zoom = zoom;
        ui.allocate_rect(area, Sense::hover());
    }

    fn slot_texture(&self, s: Slot) -> Option<egui::TextureId> {
        match s {
            Slot::Original => self
                .images
                .get(self.current)
                .and_then(|i| i.texture.as_ref().map(|t| t.id())),
            Slot::Model(m) => self
                .done(m)
                .and_then(|d| d.texture.as_ref().map(|t| t.id())),
        }
    }

    fn slot_name(&self, s: Slot) -> String {
        match s {
            Slot::Original => "Original".into(),
            Slot::Model(m) => self
                .models
                .iter()
                .find(|x| x.id == m)
                .map(|x| x.source.label())
                .unwrap_or_else(|| "?".into()),
        }
    }

    fn split_view(&mut self, ui: &mut egui::Ui, size: Vec2) {
        let ready = self.ready_models();
        if self.split.1 == Slot::Original
            && let Some((id, _)) = ready.first()
        {
            self.split.1 = Slot::Model(*id);
        }
        let mut slots = vec![Slot::Original];
        slots.extend(ready.iter().map(|(id, _)| Slot::Model(*id)));
        ui.horizontal(|ui| {
            for (label, which) in [("Left", 0), ("Right", 1)] {
                let cur = if which == 0 {
                    self.split.0
                } else {
                    self.split.1
                };
                let mut sel = cur;
                egui::ComboBox::new(("split", which), label)
                    .selected_text(self.slot_name(cur))
                    .show_ui(ui, |ui| {
                        for s in &slots {
                            ui.selectable_value(&mut sel, *s, self.slot_name(*s));
                        }
                    });
                if which == 0 {
                    self.split.0 = sel;
                } else {
                    self.split.1 = sel;
                }
            }
            ui.label("Drag the divider; scroll to zoom.");
        });
        let area = ui.available_rect_before_wrap();
        if self.zoom.fit {
            self.zoom.fit_to(area.size(), size);
            self.zoom.fit = true;
        }
        let mut zoom = self.zoom;
        let resp = ui.interact(area, ui.scope_id().with("split"), Sense::click_and_drag());
        let divider_x = area.left() + self.split.2 * area.width();
        let near_divider = resp
            .interact_pointer_pos()
            .or(resp.hover_pos())
            .is_some_and(|p| (p.x - divider_x).abs() < 12.0);
        if resp.dragged() && (near_divider || ui.input(|i| i.modifiers.shift)) {
            if let Some(p) = resp.interact_pointer_pos() {
                self.split.2 = ((p.x - area.left()) / area.width()).clamp(0.0, 1.0);
            }
        } else {
            interact_zoom(ui, &resp, area, &mut zoom);
        }
        if near_divider {
            ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
        }
        let full = zoom.image_rect(area, size);
        let uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
        let divider_x = area.left() + self.split.2 * area.width();
        let left = Rect::from_min_max(area.min, pos2(divider_x, area.max.y));
        let right = Rect::from_min_max(pos2(divider_x, area.min.y), area.max);
        ui.painter_at(area)
            .rect_filled(area, 0.0, ui.visuals().extreme_bg_color);
        for (slot, clip) in [(self.split.0, left), (self.split.1, right)] {
            if let Some(t) = self.slot_texture(slot) {
                ui.painter_at(clip).image(t, full, uv, Color32::WHITE);
            }
        }
        let p = ui.painter_at(area);
        p.line_segment(
            [pos2(divider_x, area.top()), pos2(divider_x, area.bottom())],
            Stroke::new(2.0, Color32::YELLOW),
        );
        for (text, anchor, pos) in [
            (
                self.slot_name(self.split.0),
                Align2::LEFT_TOP,
                area.left_top() + vec2(6.0, 6.0),
            ),
            (
                self.slot_name(self.split.1),
                Align2::RIGHT_TOP,
                area.right_top() + vec2(-6.0, 6.0),
            ),
        ] {
            let r = p.text(
                pos,
                anchor,
                &text,
                FontId::proportional(15.0),
                Color32::WHITE,
            );
            p.rect_filled(r.expand(3.0), 3.0, Color32::from_black_alpha(160));
            p.text(
                pos,
                anchor,
                &text,
                FontId::proportional(15.0),
                Color32::WHITE,
            );
        }
        self.zoom = zoom;
        ui.allocate_rect(area, Sense::hover());
    }

    fn diff_view(&mut self, ui: &mut egui::Ui, size: Vec2) {
        let Some(mid) = self.focus_model() else {
            ui.label("No model loaded.");
            return;
        };
        let name = self.slot_name(Slot::Model(mid));
        let scale = self.settings.diff_scale;
        let full = ui.available_rect_before_wrap();
        let bar_w = 70.0;
        let area = Rect::from_min_max(
            pos2(full.min.x, full.min.y + 24.0),
            pos2(full.max.x - bar_w, full.max.y),
        );
        if self.zoom.fit {
            self.zoom.fit_to(area.size(), size);
            self.zoom.fit = true;
        }
        let Some(d) = self.done(mid) else {
            ui.label(format!("{name}: reconstruction not finished yet."));
            return;
        };
        let tex = d.diff.as_ref().map(|(_, t)| t.id());
        let mean_abs = {
            let orig = &self.images[self.current].rgb;
            let diff = analysis::signed_difference(orig.as_raw(), d.rec.image.as_raw());
            diff.iter().map(|v| v.abs()).sum::<f32>() / diff.len().max(1) as f32
        };
        ui.horizontal(|ui| {
            ui.label(format!(
                "{name}: reconstruction - original, mean |diff| {mean_abs:.2} levels (M: next model)"
            ));
        });
        let mut zoom = self.zoom;
        let resp = ui.interact(area, ui.scope_id().with("diff"), Sense::click_and_drag());
        interact_zoom(ui, &resp, area, &mut zoom);
        let p = ui.painter_at(area);
        p.rect_filled(area, 0.0, ui.visuals().extreme_bg_color);
        if let Some(t) = tex {
            p.image(
                t,
                zoom.image_rect(area, size),
                Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        if let Some(pos) = resp.hover_pos() {
            let ip = zoom.to_image(area, pos);
            let (x, y) = (ip.x.floor(), ip.y.floor());
            if x >= 0.0 && y >= 0.0 && x < size.x && y < size.y {
                let orig = &self.images[self.current].rgb;
                let (a, b) = (
                    orig.get_pixel(x as u32, y as u32),
                    d.rec.image.get_pixel(x as u32, y as u32),
                );
                let diff: f32 = (0..3)
                    .map(|c| f32::from(b[c]) - f32::from(a[c]))
                    .sum::<f32>()
                    / 3.0;
                resp.on_hover_text_at_pointer(format!(
                    "x {x}, y {y}: original {:?}, reconstruction {:?}, diff {diff:+.1}",
                    a.0, b.0
                ));
            }
        }
        // Colour bar.
        let bar = Rect::from_min_max(
            pos2(full.max.x - bar_w + 10.0, full.min.y + 20.0),
            pos2(full.max.x - bar_w + 30.0, full.max.y - 20.0),
        );
        let p = ui.painter();
        let steps = 64;
        for k in 0..steps {
            let t0 = k as f32 / steps as f32;
            let y0 = bar.top() + t0 * bar.height();
            let v = 1.0 - 2.0 * (k as f32 + 0.5) / steps as f32;
            let [r, g, b] = analysis::diverging(v);
            p.rect_filled(
                Rect::from_min_max(
                    pos2(bar.left(), y0),
                    pos2(bar.right(), y0 + bar.height() / steps as f32 + 1.0),
                ),
                0.0,
                Color32::from_rgb(r, g, b),
            );
        }
        for (t, label) in [
            (0.0, format!("+{scale:.0}")),
            (0.5, "0".into()),
            (1.0, format!("-{scale:.0}")),
        ] {
            p.text(
                pos2(bar.right() + 4.0, bar.top() + t * bar.height()),
                Align2::LEFT_CENTER,
                label,
                FontId::proportional(12.0),
                ui.visuals().text_color(),
            );
        }
        self.zoom = zoom;
        ui.allocate_rect(full, Sense::hover());
    }

    fn latent_view(&mut self, ui: &mut egui::Ui) {
        let Some(mid) = self.focus_model() else {
            ui.label("No model loaded.");
            return;
        };
        let name = self.slot_name(Slot::Model(mid));
        let ctx = ui.ctx().clone();
        let cur = self.current;
        let Some(iid) = self.images.get(cur).map(|i| i.id) else {
            return;
        };
        let Some(ResultState::Done(d)) = self.results.get_mut(&(iid, mid)).map(|r| &mut r.state)
        else {
            ui.label(format!("{name}: reconstruction not finished yet."));
            return;
        };
        let l = d.rec.latent.clone();
        let cols = (l.channels as f32).sqrt().ceil() as usize;
        if d.latent_tex.as_ref().is_none_or(|(_, _, c)| *c != cols) {
            let (gw, gh, grey) = l.channel_grid(cols);
            let grid = ColorImage::from_gray([gw, gh], &grey);
            let pca: Vec<u8> = l.pca_rgb().into_iter().flatten().collect();
            let pca = ColorImage::from_rgb([l.width, l.height], &pca);
            let opts = nearest();
            d.latent_tex = Some((
                ctx.load_texture("latent-grid", grid, opts),
                ctx.load_texture("latent-pca", pca, opts),
                cols,
            ));
        }
        let Some((grid_tex, pca_tex, _)) = d.latent_tex.clone() else {
            return;
        };
        ui.label(format!(
            "{name}: latent {}x{}x{} = {} values · channels scaled to their own range · PCA: first 3 components as RGB",
            l.channels, l.height, l.width, l.len()
        ));
        let area = ui.available_rect_before_wrap();
        let half = area.width() * 0.5;
        let left = Rect::from_min_size(area.min, vec2(half - 8.0, area.height() * 0.62));
        let right =
            Rect::from_min_size(area.min + vec2(half, 0.0), vec2(half, area.height() * 0.62));
        // Channel grid.
        let gsize = grid_tex.size_vec2();
        let gscale = (left.width() / gsize.x).min(left.height() / gsize.y);
        let grect = Rect::from_center_size(left.center(), gsize * gscale);
        ui.painter().image(
            grid_tex.id(),
            grect,
            Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0)),
            Color32::WHITE,
        );
        let resp = ui.interact(grect, ui.scope_id().with("latent-grid"), Sense::hover());
        if let Some(p) = resp.hover_pos() {
            let g = (p - grect.min) / gscale;
            if let Some((c, y, x)) = l.grid_cell(cols, g.x as usize, g.y as usize) {
                self.latent_channel = c;
                let v = l.at(c, y, x).unwrap_or(f32::NAN);
                resp.on_hover_text_at_pointer(format!("channel {c}, y {y}, x {x}: {v:.4}"));
            }
        }
        // PCA view.
        let psize = pca_tex.size_vec2();
        let pscale = (right.width() / psize.x).min(right.height() / psize.y);
        let prect = Rect::from_center_size(right.center(), psize * pscale);
        ui.painter().image(
            pca_tex.id(),
            prect,
            Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0)),
            Color32::WHITE,
        );
        let presp = ui.interact(prect, ui.scope_id().with("latent-pca"), Sense::hover());
        if let Some(p) = presp.hover_pos() {
            let q = (p - prect.min) / pscale;
            let (x, y) = (q.x as usize, q.y as usize);
            let c = self.latent_channel.min(l.channels.saturating_sub(1));
            if let Some(v) = l.at(c, y, x) {
                presp.on_hover_text_at_pointer(format!("y {y}, x {x}: channel {c} = {v:.4}"));
            }
        }
        // Histogram and per-channel statistics.
        let below = Rect::from_min_max(pos2(area.min.x, left.max.y + 8.0), area.max);
        let hist_rect = Rect::from_min_size(below.min, vec2(half - 8.0, below.height()));
        draw_histogram(ui, hist_rect, &l.histogram(64));
        let stats_rect = Rect::from_min_max(pos2(below.min.x + half, below.min.y), below.max);
        let stats = l.channel_stats();
        ui.scope_builder(egui::UiBuilder::new().max_rect(stats_rect), |ui| {
            egui::ScrollArea::vertical()
                .id_salt("latent-stats")
                .show(ui, |ui| {
                    egui::Grid::new("latent-stats-grid")
                        .striped(true)
                        .show(ui, |ui| {
                            for t in ["ch", "mean", "std", "min", "max"] {
                                ui.strong(t);
                            }
                            ui.end_row();
                            for (c, s) in stats.iter().enumerate() {
                                let label = if c == self.latent_channel {
                                    egui::RichText::new(c.to_string()).strong()
                                } else {
                                    egui::RichText::new(c.to_string())
                                };
                                ui.label(label);
                                ui.label(format!("{:.3}", s.mean));
                                ui.label(format!("{:.3}", s.std));
                                ui.label(format!("{:.3}", s.min));
                                ui.label(format!("{:.3}", s.max));
                                ui.end_row();
                            }
                        });
                });
        });
        ui.allocate_rect(area, Sense::hover());
    }

    fn help_window(&mut self, ctx: &egui::Context) {
        let mut open = self.show_help;
        egui::Window::new("Keyboard shortcuts")
            .open(&mut open)
            .collapsible(false)
            .show(ctx, |ui| {
                egui::Grid::new("help").striped(true).show(ui, |ui| {
                    for c in Command::ALL {
                        if c.shortcut().is_some() {
                            ui.label(c.label());
                            ui.monospace(c.shortcut_text(ctx));
                            ui.end_row();
                        }
                    }
                    ui.label("Help");
                    ui.monospace("F1");
                    ui.end_row();
                    ui.label("Zoom / pan");
                    ui.monospace("scroll / drag, double-click fits");
                    ui.end_row();
                });
            });
        self.show_help = open;
    }
}

fn default_lpips_weights() -> Option<PathBuf> {
    // Where tools/fetch-lpips-weights.sh puts the shift-tolerant LPIPS VGG16 weights.
    let p = PathBuf::from("target/lpips/stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth");
    p.is_file().then_some(p)
}

fn nearest() -> TextureOptions {
    // Pixel-exact when magnified, smooth when shrunk.
    TextureOptions {
        magnification: egui::TextureFilter::Nearest,
        minification: egui::TextureFilter::Linear,
        ..TextureOptions::default()
    }
}

/// Uploads an RGB image, downscaled when a side exceeds the GPU's texture limit.
fn texture(
    ctx: &egui::Context,
    name: &str,
    img: &image::RgbImage,
    max_side: usize,
) -> TextureHandle {
    let (w, h) = img.dimensions();
    let big = w.max(h) as usize;
    let shown;
    let src = if big > max_side {
        let s = max_side as f32 / big as f32;
        shown = image::imageops::resize(
            img,
            ((w as f32 * s) as u32).max(1),
            ((h as f32 * s) as u32).max(1),
            image::imageops::FilterType::Triangle,
        );
        &shown
    } else {
        img
    };
    let ci = ColorImage::from_rgb([src.width() as usize, src.height() as usize], src.as_raw());
    ctx.load_texture(name, ci, nearest())
}

fn interact_zoom(ui: &egui::Ui, resp: &egui::Response, cell: Rect, zoom: &mut ZoomPan) {
    if resp.dragged() {
        zoom.pan(resp.drag_delta());
    }
    if resp.double_clicked() {
        zoom.fit = true;
    }
    if resp.hovered() {
        let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
        let factor = pinch * (scroll / 200.0).exp();
        if (factor - 1.0).abs() > 1e-4
            && let Some(p) = resp.hover_pos()
        {
            zoom.zoom_about(cell, p, factor);
        }
    }
}

fn draw_tiles(painter: &egui::Painter, zoom: &ZoomPan, cell: Rect, tiles: &[[usize; 4]]) {
    for (k, t) in tiles.iter().enumerate() {
        let a = zoom.to_screen(cell, pos2(t[0] as f32, t[1] as f32));
        let b = zoom.to_screen(cell, pos2((t[0] + t[2]) as f32, (t[1] + t[3]) as f32));
        let color = if k % 2 == 0 {
            Color32::from_rgb(255, 220, 0)
        } else {
            Color32::from_rgb(0, 220, 255)
        };
        painter.rect_stroke(
            Rect::from_min_max(a, b),
            0.0,
            Stroke::new(1.5, color),
            egui::StrokeKind::Inside,
        );
    }
}

fn draw_histogram(ui: &egui::Ui, rect: Rect, h: &analysis::Histogram) {
    let p = ui.painter_at(rect);
    p.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let top = h.counts.iter().copied().max().unwrap_or(1).max(1) as f32;
    let inner = rect.shrink2(vec2(6.0, 18.0));
    let bw = inner.width() / h.counts.len().max(1) as f32;
    for (i, &c) in h.counts.iter().enumerate() {
        let hgt = inner.height() * c as f32 / top;
        let x = inner.left() + i as f32 * bw;
        p.rect_filled(
            Rect::from_min_max(
                pos2(x, inner.bottom() - hgt),
                pos2(x + bw - 1.0, inner.bottom()),
            ),
            0.0,
            ui.visuals().selection.bg_fill,
        );
    }
    let font = FontId::proportional(12.0);
    let col = ui.visuals().text_color();
    p.text(
        rect.left_top() + vec2(6.0, 2.0),
        Align2::LEFT_TOP,
        "histogram of all latent values",
        font.clone(),
        col,
    );
    p.text(
        rect.left_bottom() + vec2(6.0, -2.0),
        Align2::LEFT_BOTTOM,
        format!("{:.3}", h.min),
        font.clone(),
        col,
    );
    p.text(
        rect.right_bottom() + vec2(-6.0, -2.0),
        Align2::RIGHT_BOTTOM,
        format!("{:.3}", h.max),
        font,
        col,
    );
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

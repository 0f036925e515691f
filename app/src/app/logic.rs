//! What happens when the worker or a helper thread replies, and the work the UI hands out:
//! models and images in and out, queueing reconstructions, saving, the screenshot step.

use super::*;

impl Workbench {
    pub(super) fn apply_theme(&self, ctx: &egui::Context) {
        ctx.set_theme(if self.settings.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
    }

    /// The backend "Auto" resolves to, and sends backend + LPIPS settings to the worker.
    pub(super) fn configure_worker(&mut self) {
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

    pub(super) fn remove_model(&mut self, id: u64) {
        if let Some(i) = self.models.iter().position(|m| m.id == id) {
            let m = self.models.remove(i);
            if let ModelSource::Folder(d) = &m.source {
                self.settings.model_dirs.retain(|x| x != d);
            }
            self.tasks
                .retain(|k, _| !matches!(k, JobKind::Reconstruct { model, .. } if *model == id));
            self.send(Job::Unload { model: id });
        }
    }

    /// Decodes files on a thread; each arrives as an [`UiEvent::Image`].
    pub fn open_paths(&mut self, paths: Vec<PathBuf>) {
        for p in paths {
            self.pending.images += 1;
            let tx = self.events_tx.clone();
            let ctx = self.ctx.clone();
            std::thread::spawn(move || {
                let r = dcae::io::image::load_image(&p)
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

    pub(super) fn add_image_bytes(&mut self, name: &str, bytes: &[u8]) {
        match image::load_from_memory(bytes) {
            Ok(img) => self.add_image(name.to_string(), img.to_rgb8()),
            Err(e) => self.error(format!("{name}: {e}"), None),
        }
    }

    pub fn add_image(&mut self, name: String, rgb: image::RgbImage) {
        let id = self.id();
        let rgb = Arc::new(rgb);
        let (tx, ctx, img) = (self.events_tx.clone(), self.ctx.clone(), rgb.clone());
        std::thread::spawn(move || {
            let _ = tx.send(UiEvent::Baseline(id, Box::new(Baseline::of(&img))));
            ctx.request_repaint();
        });
        self.recon.images.push(ImageEntry {
            id,
            name,
            rgb,
            texture: None,
            baseline: None,
        });
        self.recon.current = self.recon.images.len() - 1;
        self.recon.zoom.fit = true;
        self.queue_current();
    }

    /// Queues a reconstruction of the current image by every ready model that has none.
    pub(super) fn queue_current(&mut self) {
        let Some(img) = self.recon.images.get(self.recon.current) else {
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
                self.recon_task(iid, mid).map(|r| &r.state),
                Some(TaskState::Failed(_))
            );
            if self.recon_task(iid, mid).is_some() && !retry {
                continue;
            }
            let (job, cancel) = self.tasks.add(JobKind::Reconstruct {
                image: iid,
                model: mid,
            });
            self.send(Job::Reconstruct {
                job,
                model: mid,
                rgb: rgb.clone(),
                tiling: self.settings.tiling(),
                cancel,
            });
        }
    }

    /// Checks there is something to save before asking where.
    pub(super) fn save_payload(&self, kind: SaveKind) -> Result<(), String> {
        match kind {
            SaveKind::Sheet => {
                if self.recon.images.is_empty() {
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
        self.pending.saves += 1;
        self.save(kind, path);
        Ok(())
    }

    /// Saves to `path` on a thread; the result arrives as [`UiEvent::Saved`].
    pub(super) fn save(&mut self, kind: SaveKind, path: PathBuf) {
        let Some(img) = self.recon.images.get(self.recon.current) else {
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

    pub(super) fn sheet_panels(&self) -> Vec<(Arc<image::RgbImage>, String, Vec<String>)> {
        let Some(img) = self.recon.images.get(self.recon.current) else {
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

    pub(super) fn poll(&mut self, ctx: &egui::Context) {
        while let Some(r) = self.worker.try_recv() {
            self.on_reply(r);
        }
        while let Ok(e) = self.events_rx.try_recv() {
            match e {
                UiEvent::Image(Ok((name, rgb))) => {
                    self.pending.images = self.pending.images.saturating_sub(1);
                    self.add_image(name, rgb);
                }
                UiEvent::Image(Err(e)) => {
                    self.pending.images = self.pending.images.saturating_sub(1);
                    self.error(e, Some("open a PNG, JPEG, WebP, BMP or TIFF file"));
                }
                UiEvent::Baseline(id, b) => {
                    if let Some(img) = self.recon.images.iter_mut().find(|i| i.id == id) {
                        img.baseline = Some(*b);
                    }
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
                        Pick::GenModelFolder => {
                            for p in paths {
                                self.add_gen_model(p);
                            }
                        }
                        Pick::Lpips => {
                            self.settings.lpips_weights = paths.into_iter().next();
                            self.configure_worker();
                        }
                        Pick::Save(kind) => {
                            if let Some(p) = paths.into_iter().next() {
                                self.pending.saves += 1;
                                self.save(kind, p);
                            }
                        }
                    }
                }
                UiEvent::Saved(Ok(p)) => {
                    self.pending.saves = self.pending.saves.saturating_sub(1);
                    self.note(format!("saved {}", p.display()))
                }
                UiEvent::Download { file, done, total } => {
                    if let Some(d) = &mut self.download {
                        d.progress = Some((file, done, total));
                    }
                }
                UiEvent::Downloaded(r) => {
                    let (repo, generation) = self
                        .download
                        .take()
                        .map(|d| (d.repo, d.generation))
                        .unwrap_or_default();
                    match r {
                        Ok(dir) => {
                            self.note(format!("{repo}: in the cache at {}", dir.display()));
                            if generation {
                                // The plan said "to download"; now it is on disk.
                                self.gen_tab.hub.plans.remove(&repo);
                                self.add_and_select_gen_model(dir);
                            } else {
                                self.add_model(ModelSource::Folder(dir));
                            }
                        }
                        Err(e) if e.is_cancelled() => {
                            self.note(format!("{repo}: download cancelled"))
                        }
                        Err(e) => self.report(format!("{repo}: {e}"), &e),
                    }
                }
                UiEvent::Saved(Err(e)) => {
                    self.pending.saves = self.pending.saves.saturating_sub(1);
                    self.error(format!("saving failed: {e}"), Some("choose another folder"))
                }
                UiEvent::Plan(repo, plan) => {
                    self.gen_tab.hub.plans.insert(repo, plan);
                }
                UiEvent::Gallery(item) => {
                    if !self.gen_tab.gallery.iter().any(|g| g.path == item.path) {
                        self.gen_tab.gallery.push(*item);
                    }
                }
                UiEvent::GalleryDone => {
                    self.pending.gallery = self.pending.gallery.saturating_sub(1);
                }
                UiEvent::GalleryImage(path, img) => {
                    if let Some(it) = self.gen_tab.gallery.iter_mut().find(|g| g.path == path) {
                        it.image = Some(img);
                        it.texture = None;
                    }
                }
                UiEvent::Restored(path, settings) => {
                    self.pending.images = self.pending.images.saturating_sub(1);
                    self.note(format!("settings restored from {}", path.display()));
                    self.restore(*settings);
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
            self.open_dropped(dropped);
        }
    }

    pub(super) fn on_reply(&mut self, r: Reply) {
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
                        m.state = ModelState::Failed(e.to_string());
                        self.report(format!("model {name}: {e}"), &e);
                    }
                }
            }
            Reply::Progress {
                job,
                stage,
                done,
                total,
            } => {
                self.on_gen_progress(job, stage, done);
                self.tasks.progress(job, stage, done, total)
            }
            Reply::GenLoaded { model, result } => self.on_gen_loaded(model, result),
            Reply::GenPreview { job, image } => self.on_gen_preview(job, image),
            Reply::GenDecoded { job, step, image } => self.on_gen_decoded(job, step, image),
            Reply::Generated { job, result } => self.on_generated(job, result),
            Reply::Finished { job, result } => {
                if self.tasks.get(job).is_none() {
                    // A job dropped meanwhile (its image or model was removed).
                    return;
                }
                let outcome = result.map(|rec| {
                    self.perf
                        .first_result_s
                        .get_or_insert(self.perf.started.elapsed().as_secs_f64());
                    Output::Recon(Box::new(Done {
                        rec,
                        texture: None,
                        diff: None,
                        latent_tex: None,
                    }))
                });
                if let Err(e) = &outcome {
                    self.report(e.to_string(), e);
                }
                self.tasks.finish(job, outcome);
            }
            Reply::Warmed { model, seconds } => {
                if let Some(m) = self.models.iter_mut().find(|m| m.id == model) {
                    m.warm_s = Some(seconds);
                }
            }
            Reply::Lpips { job, value } => {
                if let Some(TaskState::Done(Output::Recon(d))) =
                    self.tasks.get_mut(job).map(|t| &mut t.state)
                {
                    d.rec.lpips = value;
                }
            }
            Reply::Note(n) => self.note(n),
        }
    }

    /// Shows a failed job's message with the fix its kind suggests (a cancel is no error).
    pub(super) fn report(&mut self, text: String, e: &JobError) {
        if !e.is_cancelled() {
            self.error(text, e.fix());
        }
    }

    pub(super) fn screenshot_step(&mut self, ctx: &egui::Context) {
        let Some(path) = self.shot.path.clone() else {
            return;
        };
        let shot = self.shot.image.lock().ok().and_then(|mut g| g.take());
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
                    self.perf.started.elapsed().as_secs_f64(),
                    self.perf.first_result_s.unwrap_or(f64::NAN),
                    median(&self.perf.frame_ms),
                    median(&self.perf.busy_frame_ms),
                    self.perf.busy_frame_ms.iter().copied().fold(0.0, f32::max),
                    self.perf.busy_frame_ms.len(),
                    match self.settings.tab {
                        Tab::Reconstruct => self.first_metrics(),
                        Tab::Generate => self.gen_perf_line(),
                    }
                ),
                Err(e) => eprintln!("screenshot failed: {e}"),
            }
            self.shot.path = None;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let ready = !self.busy()
            && match self.settings.tab {
                Tab::Reconstruct => self.recon.images.iter().any(|i| i.texture.is_some()),
                // Models loaded, no job left, and the result (if any) on screen.
                Tab::Generate => {
                    self.gen_tab.running.is_none()
                        && self.gen_tab.shown.is_none_or(|i| {
                            self.gen_tab
                                .gallery
                                .get(i)
                                .is_some_and(|g| g.texture.is_some())
                        })
                }
            };
        let timeout = self.perf.started.elapsed() > Duration::from_secs(900);
        if (ready || timeout) && !self.shot.requested {
            self.shot.requested = true;
            let slot = self.shot.image.clone();
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

    /// Downloads on its own thread (network is not model work: reconstructions keep running).
    pub fn start_download(&mut self, repo: String) {
        self.spawn_download(repo, false, |repo, opts, progress, cancel| {
            dcae::hub::download_model(repo, opts, progress, cancel)
        });
    }

    /// Runs `fetch` on a download thread with progress and cancel; the folder it returns joins
    /// the generation list (`generation`) or the reconstruction list.
    pub(super) fn spawn_download(
        &mut self,
        repo: String,
        generation: bool,
        fetch: impl FnOnce(
            &str,
            &dcae::hub::HubOptions,
            &mut dyn dcae::Progress,
            &Cancel,
        ) -> dcae::Result<PathBuf>
        + Send
        + 'static,
    ) {
        if self.download.is_some() {
            self.error(
                "a download is running already",
                Some("wait for it or cancel it first"),
            );
            return;
        }
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
        let cancel = Cancel::new();
        self.download = Some(Download {
            repo: repo.clone(),
            generation,
            progress: None,
            cancel: cancel.clone(),
            started: Instant::now(),
        });
        let tx = self.events_tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let mut last = Instant::now();
            let mut progress = |file: &str, done: u64, total: u64| {
                // A repaint per 64 KiB chunk would be wasteful: at most 20 per second.
                if last.elapsed() > Duration::from_millis(50) || done == total {
                    last = Instant::now();
                    let file = file.to_string();
                    let _ = tx.send(UiEvent::Download { file, done, total });
                    ctx.request_repaint();
                }
            };
            let r =
                fetch(&repo, &opts, &mut progress, &cancel).map_err(|e| JobError::from_engine(&e));
            let _ = tx.send(UiEvent::Downloaded(r));
            ctx.request_repaint();
        });
    }

    /// True while a download runs.
    pub fn downloading(&self) -> bool {
        self.download.is_some()
    }
}

//! What every [`Command`] and [`Action`] does (menus, toolbar, panels, shortcuts and tests
//! all come here), plus the native dialogs and the clipboard.

use super::*;

impl Workbench {
    /// Executes one parameterised action (panels emit these; tests may too).
    pub fn apply(&mut self, ctx: &egui::Context, action: Action) {
        match action {
            Action::Command(c) => self.run(ctx, c),
            Action::SelectImage(i) => {
                if i < self.recon.images.len() {
                    self.recon.current = i;
                    self.recon.zoom.fit = true;
                    self.queue_current();
                }
            }
            Action::LoadSample(i) => {
                if let Some(&(name, bytes)) = SAMPLES.get(i) {
                    self.add_image_bytes(name, bytes);
                }
            }
            Action::FocusModel(id) => self.recon.focus = Some(id),
            Action::RemoveModel(id) => self.remove_model(id),
            Action::StartDownload(repo) => self.start_download(repo),
            Action::CheckGenHub(repo) => self.check_gen_hub(repo),
            Action::DecodeNow(job) => self.decode_now(job),
            Action::StartGenDownload(repo) => self.start_gen_download(repo),
            Action::CancelDownload => {
                if let Some(d) = &self.download {
                    d.cancel.cancel();
                }
            }
            Action::SelectGenModel(id) => {
                if self.gen_tab.form.model != Some(id) {
                    self.gen_tab.form.model = Some(id);
                    if let Some(info) = self.gen_tab.model(id).and_then(|m| m.info()) {
                        let defaults = info.defaults.clone();
                        self.gen_tab.form.load(&defaults, false);
                    }
                }
            }
            Action::RemoveGenModel(id) => self.remove_gen_model(id),
            Action::ToggleClass(k) => {
                let c = &mut self.gen_tab.form.classes;
                if let Some(i) = c.iter().position(|&x| x == k) {
                    c.remove(i);
                } else if c.len() < dcae::pipeline::class_to_image::MAX_IMAGES {
                    c.push(k);
                }
            }
            Action::RandomSeed => self.gen_tab.form.seed = super::gen_logic::random_seed(),
            Action::CancelJob(job) => self.cancel_job(job),
            Action::MoveJob(job, up) => self.gen_tab.move_queued(job, up),
            Action::RestoreGallery(i) => self.restore_gallery(i),
            Action::CompareModels => {
                self.settings.tab = Tab::Generate;
                self.compare_models();
            }
            Action::AddToDeck => self.add_to_deck(),
            Action::RemoveFromDeck(i) => {
                if i < self.settings.deck.len() {
                    self.settings.deck.remove(i);
                    self.gen_tab.deck_pos = None;
                }
            }
        }
    }

    pub fn run(&mut self, ctx: &egui::Context, cmd: Command) {
        match cmd {
            Command::OpenImages => self.pick(Pick::Images),
            Command::PasteImage => self.paste_image(),
            Command::AddModelFolder => self.pick(Pick::ModelFolder),
            Command::ReconstructAll => {
                if let Some(iid) = self.recon.image().map(|i| i.id) {
                    // Redo the image: drop its finished and queued jobs, keep a running one.
                    self.tasks.retain(|k, st| {
                        !matches!(k, JobKind::Reconstruct { image, .. } if *image == iid)
                            || matches!(st, TaskState::Running { .. })
                    });
                }
                self.queue_current();
            }
            Command::CancelAll => {
                let g = self.cancel_all_generation();
                let n = self
                    .tasks
                    .cancel_where(|k| matches!(k, JobKind::Reconstruct { .. }));
                if n > 0 {
                    self.note(format!("cancelling {n} reconstruction(s)"));
                }
                if g > 0 {
                    self.note(format!("cancelling {g} generation(s)"));
                }
            }
            Command::Tab(t) => self.settings.tab = t,
            Command::AddGenModelFolder => self.pick(Pick::GenModelFolder),
            Command::Generate => {
                self.settings.tab = Tab::Generate;
                self.start_generation();
            }
            Command::View(v) => self.settings.view = v,
            Command::ZoomIn | Command::ZoomOut => {
                let f = if cmd == Command::ZoomIn { 1.25 } else { 0.8 };
                let cell = Rect::from_min_size(Pos2::ZERO, vec2(2.0, 2.0));
                self.recon.zoom.zoom_about(cell, cell.center(), f);
            }
            Command::ZoomFit => self.recon.zoom.fit = true,
            Command::ZoomActual => self.recon.zoom.actual_pixels(ctx.pixels_per_point()),
            Command::ToggleTiles => self.settings.show_tiles = !self.settings.show_tiles,
            Command::NextImage | Command::PrevImage if self.settings.tab == Tab::Generate => {
                self.deck_step(cmd == Command::NextImage);
            }
            Command::NextImage | Command::PrevImage => {
                if !self.recon.images.is_empty() {
                    let n = self.recon.images.len();
                    self.recon.current = if cmd == Command::NextImage {
                        (self.recon.current + 1) % n
                    } else {
                        (self.recon.current + n - 1) % n
                    };
                    self.recon.zoom.fit = true;
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
                    self.recon.focus = Some(ready[(i + 1) % ready.len()].0);
                }
            }
            Command::SaveReconstruction => self.pick(Pick::Save(SaveKind::Reconstruction)),
            Command::SaveDifference => self.pick(Pick::Save(SaveKind::Difference)),
            Command::SaveLatent => self.pick(Pick::Save(SaveKind::Latent)),
            Command::SaveSheet => self.pick(Pick::Save(SaveKind::Sheet)),
            Command::TogglePresenter => {
                self.chrome.presenter = !self.chrome.presenter;
                self.chrome.fullscreen = self.chrome.presenter;
                ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(self.chrome.fullscreen));
                ctx.set_zoom_factor(if self.chrome.presenter {
                    self.settings.presenter_zoom
                } else {
                    1.0
                });
                if self.chrome.presenter {
                    // Pre-warm: the first reconstruction on a device compiles its kernels.
                    for id in self.model_ids() {
                        self.send(Job::Warm { model: id });
                    }
                }
            }
            Command::ToggleFullscreen => {
                self.chrome.fullscreen = !self.chrome.fullscreen;
                ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(self.chrome.fullscreen));
            }
        }
    }

    /// Opens a native dialog on its own thread (the UI keeps drawing).
    pub(super) fn pick(&mut self, what: Pick) {
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
                Pick::ModelFolder | Pick::GenModelFolder => d.pick_folder().into_iter().collect(),
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

    pub(super) fn suggested_name(&self, what: Pick) -> String {
        let stem = self
            .recon
            .images
            .get(self.recon.current)
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

    pub(super) fn paste_image(&mut self) {
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

    pub(super) fn shortcuts(&mut self, ctx: &egui::Context) {
        // Ctrl+Enter generates from inside the prompt box too.
        if self.settings.tab == Tab::Generate
            && let Some(s) = Command::Generate.shortcut()
            && ctx.input_mut(|i| i.consume_shortcut(&s))
        {
            self.run(ctx, Command::Generate);
        }
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
                self.chrome.show_help = !self.chrome.show_help;
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
}

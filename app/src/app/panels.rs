//! Panels around the views: menu bar, images/models/settings side panel, Hugging Face
//! downloads, status line, messages and the metrics table.

use super::*;

impl Workbench {
    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) -> Vec<Command> {
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
                    Command::AddGenModelFolder,
                    Command::SaveReconstruction,
                    Command::SaveDifference,
                    Command::SaveLatent,
                    Command::SaveSheet,
                ] {
                    item(ui, c);
                }
            });
            ui.menu_button("View", |ui| {
                for t in Tab::ALL {
                    item(ui, Command::Tab(t));
                }
                ui.separator();
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
            for t in Tab::ALL {
                let c = Command::Tab(t);
                if ui
                    .selectable_label(
                        self.settings.tab == t,
                        egui::RichText::new(t.label()).strong(),
                    )
                    .on_hover_text(format!("{} ({})", c.tooltip(), c.shortcut_text(&ctx)))
                    .clicked()
                {
                    cmds.push(c);
                }
            }
            ui.separator();
            if self.settings.tab == Tab::Reconstruct {
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
            }
            if ui
                .button("Help")
                .on_hover_text("Keyboard shortcuts (F1)")
                .clicked()
            {
                self.chrome.show_help = !self.chrome.show_help;
            }
        });
        cmds
    }

    pub(super) fn side_panel(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut acts = Vec::new();
        ui.heading("Images");
        if ui.button("Open images…").clicked() {
            acts.push(Action::Command(Command::OpenImages));
        }
        egui::ScrollArea::vertical()
            .id_salt("images")
            .max_height(140.0)
            .show(ui, |ui| {
                for (i, img) in self.recon.images.iter().enumerate() {
                    let (w, h) = img.rgb.dimensions();
                    let label = format!("{} ({w}x{h})", img.name);
                    if ui
                        .selectable_label(i == self.recon.current, label)
                        .clicked()
                    {
                        acts.push(Action::SelectImage(i));
                    }
                }
            });
        ui.horizontal_wrapped(|ui| {
            ui.label("Samples:");
            for (i, (name, _)) in SAMPLES.iter().enumerate() {
                if ui.small_button(*name).clicked() {
                    acts.push(Action::LoadSample(i));
                }
            }
        });
        ui.separator();
        ui.heading("Models");
        let dims = self
            .recon
            .images
            .get(self.recon.current)
            .map(|i| i.rgb.dimensions());
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
                        acts.push(Action::FocusModel(m.id));
                    }
                    if ui
                        .small_button("x")
                        .on_hover_text(format!("Remove {name}"))
                        .clicked()
                    {
                        acts.push(Action::RemoveModel(m.id));
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
        if ui.button("Add model folder…").clicked() {
            acts.push(Action::Command(Command::AddModelFolder));
        }
        acts.extend(self.hub_ui(ui));
        ui.separator();
        egui::CollapsingHeader::new("Settings")
            .default_open(!self.chrome.presenter)
            .show(ui, |ui| self.settings_ui(ui));
        acts
    }

    /// Official checkpoints from Hugging Face, downloaded into the standard HF cache.
    pub(super) fn hub_ui(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut acts = Vec::new();
        let repos = dcae::hub::official_repos();
        egui::CollapsingHeader::new("Official checkpoints (Hugging Face)")
            .default_open(false)
            .show(ui, |ui| {
                self.chrome.hub_choice = self.chrome.hub_choice.min(repos.len().saturating_sub(1));
                egui::ComboBox::from_id_salt("hub-repo")
                    .selected_text(repos.get(self.chrome.hub_choice).map_or("", |r| r.name))
                    .show_ui(ui, |ui| {
                        for (i, r) in repos.iter().enumerate() {
                            ui.selectable_value(&mut self.chrome.hub_choice, i, r.name)
                                .on_hover_text(r.repo);
                        }
                    });
                if self.download.is_some() {
                    acts.extend(self.download_progress_ui(ui));
                } else if ui
                    .button("Download")
                    .on_hover_text("Into the Hugging Face cache (HF_HOME / HF_HUB_CACHE; HF_ENDPOINT, HF_TOKEN honoured); checked against the hub's sha256")
                    .clicked()
                    && let Some(r) = repos.get(self.chrome.hub_choice)
                {
                    acts.push(Action::StartDownload(r.repo.to_string()));
                }
            });
        acts
    }

    /// The running download: file, bar with MB, rate and ETA, and its cancel button.
    pub(super) fn download_progress_ui(&self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut acts = Vec::new();
        let Some(d) = &self.download else {
            return acts;
        };
        let (file, done, total) = d
            .progress
            .as_ref()
            .map_or(("", 0, 0), |(f, d, t)| (f.as_str(), *d, *t));
        let frac = if total > 0 {
            done as f32 / total as f32
        } else {
            0.0
        };
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
        if ui.button("Cancel download").clicked() {
            acts.push(Action::CancelDownload);
        }
        acts
    }

    pub(super) fn settings_ui(&mut self, ui: &mut egui::Ui) {
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
        let shared = if self.backend == dcae::Backend::Wgpu && dcae::backend::wgpu_is_shared() {
            " (the window's device)"
        } else {
            ""
        };
        ui.label(format!(
            "Compute: {}{shared}{}",
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

    pub(super) fn status_bar(&mut self, ui: &mut egui::Ui) {
        let mut cancel = false;
        ui.horizontal(|ui| {
            let mut running = Vec::new();
            for m in &self.models {
                for img in &self.recon.images {
                    if let Some(r) = self.recon_task(img.id, m.id) {
                        match r.state {
                            TaskState::Running { stage, done, total } => running.push(format!(
                                "{} · {}: {stage} {done}/{total} ({:.1} s)",
                                img.name,
                                m.source.label(),
                                r.started.elapsed().as_secs_f64()
                            )),
                            TaskState::Queued => {
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
            if !self.chrome.hide_timings {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.label(format!(
                        "frame {:.1} ms",
                        self.perf.frame_ms.last().copied().unwrap_or(0.0)
                    ));
                });
            }
        });
        if cancel {
            self.run(ui.ctx(), Command::CancelAll);
        }
    }

    pub(super) fn messages_ui(&mut self, ui: &mut egui::Ui) {
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

    pub(super) fn metrics_table(&mut self, ui: &mut egui::Ui) {
        let Some(img) = self.recon.images.get(self.recon.current) else {
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
                // What the same number of values gives without DC-AE.
                if let Some(b) = img.baseline.as_ref().filter(|_| !self.ready_models().is_empty()) {
                    ui.label(format!("bicubic ({BASELINE_RATIO}x fewer values)"))
                        .on_hover_text("bicubic downscale to as many values as a DC-AE latent, then bicubic upscale");
                    ui.label(format!("{:.2} dB", b.psnr));
                    ui.label(b.ssim.map_or("n/a".into(), |s| format!("{s:.4}")));
                    ui.label("-");
                    ui.label(format!("3x{}x{} pixels", b.small.1, b.small.0));
                    ui.label(format!("{}", b.values));
                    ui.label(format!(
                        "{:.1}x",
                        analysis::compression_ratio(w as usize, h as usize, b.values)
                    ));
                    ui.label("-");
                    ui.label("cpu");
                    ui.end_row();
                }
                for m in &self.models {
                    let ModelState::Ready(info) = &m.state else {
                        continue;
                    };
                    ui.label(&info.name);
                    match self.recon_task(img.id, m.id).map(|r| &r.state) {
                        Some(TaskState::Done(Output::Recon(d))) => {
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
                            let secs = if self.chrome.hide_timings {
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
                        Some(TaskState::Failed(e)) => {
                            ui.colored_label(ui.visuals().error_fg_color, e.to_string());
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
}

//! Drawing the Generate tab: the side panel (models, the form, the queue), the central view
//! (live preview with step, s/step and ETA, or the chosen result) and the gallery strip.

use super::gen_tab::{self, GenState, progress_text, step_rate};
use super::*;

/// Class search results listed at once.
const CLASS_MATCHES: usize = 40;
/// Batch sizes offered (one grid of images per run).
const MAX_BATCH: usize = 16;

impl Workbench {
    pub(super) fn gen_side_panel(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut acts = Vec::new();
        ui.heading("Generation models");
        let selected = self.gen_tab.form.model;
        for m in &self.gen_tab.models {
            ui.group(|ui| {
                ui.horizontal(|ui| {
                    let name = ModelSource::Folder(m.dir.clone()).label();
                    if ui
                        .selectable_label(selected == Some(m.id), &name)
                        .on_hover_text(m.dir.display().to_string())
                        .clicked()
                    {
                        acts.push(Action::SelectGenModel(m.id));
                    }
                    if ui
                        .small_button("x")
                        .on_hover_text(format!("Remove {name}"))
                        .clicked()
                    {
                        acts.push(Action::RemoveGenModel(m.id));
                    }
                });
                match &m.state {
                    GenState::Loading => {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label("loading…");
                        });
                    }
                    GenState::Failed(e) => {
                        ui.colored_label(ui.visuals().error_fg_color, e);
                    }
                    GenState::Ready(info) => {
                        let kind = match &info.kind {
                            crate::generate::GenKind::Class { family } => {
                                format!("class-conditional {family}")
                            }
                            crate::generate::GenKind::Text { sprint: true } => {
                                "text-to-image (Sana-Sprint)".into()
                            }
                            crate::generate::GenKind::Text { sprint: false } => {
                                "text-to-image (Sana)".into()
                            }
                        };
                        ui.label(kind);
                        let [c, h, w] = info.latent;
                        ui.label(format!(
                            "DC-AE {} · latent {c}x{h}x{w} · {:.2} M params · {}",
                            info.autoencoder,
                            info.params as f64 / 1e6,
                            info.backend
                        ));
                    }
                }
            });
        }
        if ui
            .button(Command::AddGenModelFolder.label())
            .on_hover_text(Command::AddGenModelFolder.tooltip())
            .clicked()
        {
            acts.push(Action::Command(Command::AddGenModelFolder));
        }
        acts.extend(self.gen_hub_ui(ui));
        ui.separator();
        acts.extend(self.gen_form(ui));
        ui.separator();
        acts.extend(self.gen_queue(ui));
        acts.extend(self.deck_ui(ui));
        acts
    }

    /// Generation models from Hugging Face: the registered class-conditional checkpoints and
    /// the Sana pipelines (or any repo id), with the size on disk before downloading.
    fn gen_hub_ui(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut acts = Vec::new();
        let repos = dcae::hub::generation_repos();
        egui::CollapsingHeader::new("From Hugging Face")
            .id_salt("gen-hub")
            .show(ui, |ui| {
                let hub = &mut self.gen_tab.hub;
                hub.choice = hub.choice.min(repos.len().saturating_sub(1));
                let short = |r: &dcae::hub::GenerationRepo| {
                    r.repo.rsplit('/').next().unwrap_or(&r.repo).to_string()
                };
                let label = ui.label("Repo");
                egui::ComboBox::from_id_salt("gen-hub-repo")
                    .width(ui.available_width() - 8.0)
                    .selected_text(repos.get(hub.choice).map(short).unwrap_or_default())
                    .show_ui(ui, |ui| {
                        for (i, r) in repos.iter().enumerate() {
                            ui.selectable_value(&mut hub.choice, i, short(r))
                                .on_hover_text(format!("{}\n{}", r.repo, r.detail));
                        }
                    })
                    .response
                    .labelled_by(label.id);
                if hub.custom.trim().is_empty()
                    && let Some(r) = repos.get(hub.choice)
                {
                    ui.small(&r.detail);
                }
                let label = ui.label("or repo id");
                ui.add(
                    egui::TextEdit::singleline(&mut hub.custom)
                        .hint_text("org/name")
                        .desired_width(f32::INFINITY),
                )
                .labelled_by(label.id);
                let Some(repo) = hub.repo(&repos) else {
                    return;
                };
                match hub.plans.get(&repo) {
                    None => {
                        if dcae::hub::resolve_repo(&repo).is_ok() {
                            // Opening the section (or picking a repo) asks for the size once.
                            acts.push(Action::CheckGenHub(repo.clone()));
                        } else {
                            ui.colored_label(
                                ui.visuals().error_fg_color,
                                "not an org/name repo id",
                            );
                            return;
                        }
                    }
                    Some(p) => {
                        ui.horizontal(|ui| {
                            if matches!(p, gen_tab::HubPlan::Checking) {
                                ui.spinner();
                            }
                            let text = gen_tab::plan_text(p);
                            if matches!(p, gen_tab::HubPlan::Failed(_)) {
                                ui.colored_label(ui.visuals().error_fg_color, text);
                            } else {
                                ui.label(text);
                            }
                        });
                    }
                }
                if self.download.is_some() {
                    acts.extend(self.download_progress_ui(ui));
                    return;
                }
                ui.horizontal(|ui| {
                    let cached = matches!(
                        self.gen_tab.hub.plans.get(&repo),
                        Some(gen_tab::HubPlan::Cached(..))
                    );
                    let verb = if cached { "Load" } else { "Download" };
                    if ui
                        .button(verb)
                        .on_hover_text(
                            "Into the Hugging Face cache (HF_HOME / HF_HUB_CACHE; HF_ENDPOINT, \
                             HF_TOKEN honoured), every file checked against the hub's sha256, \
                             then loaded here",
                        )
                        .clicked()
                    {
                        acts.push(Action::StartGenDownload(repo.clone()));
                    }
                    if matches!(
                        self.gen_tab.hub.plans.get(&repo),
                        Some(gen_tab::HubPlan::Failed(_))
                    ) && ui.button("Check again").clicked()
                    {
                        self.gen_tab.hub.plans.remove(&repo);
                    }
                });
            });
        acts
    }

    /// The presenter's seed deck: saved results stepped through with the arrow keys.
    fn deck_ui(&self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut acts = Vec::new();
        egui::CollapsingHeader::new(format!("Seed deck ({})", self.settings.deck.len()))
            .id_salt("gen-deck")
            .show(ui, |ui| {
                ui.small(
                    "Left/Right step through it: the saved result shows at once, its settings \
                     fill the form",
                );
                for (i, p) in self.settings.deck.iter().enumerate() {
                    ui.horizontal(|ui| {
                        let name = p
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let title = self
                            .gen_tab
                            .gallery
                            .iter()
                            .find(|g| &g.path == p)
                            .map_or(name, |g| g.title.chars().take(32).collect());
                        let _ = ui.selectable_label(self.gen_tab.deck_pos == Some(i), title);
                        if ui
                            .small_button("x")
                            .on_hover_text("Remove from the deck")
                            .clicked()
                        {
                            acts.push(Action::RemoveFromDeck(i));
                        }
                    });
                }
                if ui
                    .add_enabled(
                        self.gen_tab.shown.is_some(),
                        egui::Button::new("Add shown result"),
                    )
                    .clicked()
                {
                    acts.push(Action::AddToDeck);
                }
            });
        acts
    }

    fn gen_form(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut acts = Vec::new();
        let Some((model_id, info)) = self.gen_tab.selected() else {
            ui.label("Add or select a generation model to sample with.");
            return acts;
        };
        let info = info.clone();
        let text = gen_tab::is_text(&info);
        ui.heading("Settings");
        if text {
            ui.label("Prompt");
            ui.add(
                egui::TextEdit::multiline(&mut self.gen_tab.form.prompt)
                    .hint_text("a photo of an astronaut riding a horse")
                    .desired_rows(3)
                    .desired_width(f32::INFINITY),
            );
            if let Some(tok) = &info.tokenizer
                && let GenerationSettings::Text(d) = &info.defaults
            {
                let prompt = &self.gen_tab.form.prompt;
                let (used, budget) = match &self.gen_tab.token_count {
                    Some((m, p, v)) if *m == model_id && p == prompt => *v,
                    _ => {
                        let v = dcae::text::prompt::prompt_budget(tok, prompt, &d.prompt_options);
                        self.gen_tab.token_count = Some((model_id, prompt.clone(), v));
                        v
                    }
                };
                let t = format!("{used} / {budget} tokens");
                if used > budget {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        format!("{t}: the end is cut off"),
                    );
                } else {
                    ui.label(t);
                }
            }
            let styles = &mut self.settings.styles;
            let form_style = &mut self.gen_tab.form.style;
            ui.horizontal(|ui| {
                let l = ui.label("Style");
                let name = form_style
                    .and_then(|i| styles.get(i))
                    .map_or("none".to_string(), |s| s.name.clone());
                egui::ComboBox::from_id_salt("gen-style")
                    .selected_text(name)
                    .show_ui(ui, |ui| {
                        ui.selectable_value(form_style, None, "none");
                        for (i, s) in styles.iter().enumerate() {
                            ui.selectable_value(form_style, Some(i), &s.name);
                        }
                    })
                    .response
                    .labelled_by(l.id);
            });
            egui::CollapsingHeader::new("Edit styles")
                .id_salt("gen-styles")
                .show(ui, |ui| {
                    ui.small("`{prompt}` stands for the prompt; the PNG keeps the expanded text");
                    let mut remove = None;
                    for (i, s) in styles.iter_mut().enumerate() {
                        ui.horizontal(|ui| {
                            ui.add(egui::TextEdit::singleline(&mut s.name).desired_width(80.0));
                            if ui
                                .small_button("x")
                                .on_hover_text("Remove this style")
                                .clicked()
                            {
                                remove = Some(i);
                            }
                        });
                        ui.add(
                            egui::TextEdit::multiline(&mut s.template)
                                .desired_rows(2)
                                .desired_width(f32::INFINITY),
                        );
                    }
                    if let Some(i) = remove {
                        styles.remove(i);
                        *form_style = None;
                    }
                    if ui.small_button("add style").clicked() {
                        styles.push(crate::settings::StylePreset {
                            name: "new style".into(),
                            template: "{prompt}".into(),
                        });
                    }
                });
            ui.label("Negative prompt");
            ui.add(
                egui::TextEdit::singleline(&mut self.gen_tab.form.negative)
                    .desired_width(f32::INFINITY),
            );
        } else {
            ui.label("Classes (one image each)");
            ui.horizontal_wrapped(|ui| {
                for &k in &self.gen_tab.form.classes {
                    if ui
                        .small_button(format!("{} ×", self.gen_tab.class_name(k)))
                        .on_hover_text(format!("class {k}: click to remove"))
                        .clicked()
                    {
                        acts.push(Action::ToggleClass(k));
                    }
                }
            });
            ui.add(
                egui::TextEdit::singleline(&mut self.gen_tab.form.class_search)
                    .hint_text("search ImageNet classes")
                    .desired_width(f32::INFINITY),
            );
            if !self.gen_tab.form.class_search.trim().is_empty() {
                let matches = self
                    .gen_tab
                    .class_matches(&self.gen_tab.form.class_search, CLASS_MATCHES);
                egui::ScrollArea::vertical()
                    .id_salt("class-matches")
                    .max_height(120.0)
                    .show(ui, |ui| {
                        for (k, name) in matches {
                            let on = self.gen_tab.form.classes.contains(&k);
                            if ui.selectable_label(on, format!("{k} {name}")).clicked() {
                                acts.push(Action::ToggleClass(k));
                            }
                        }
                    });
            }
        }
        let form = &mut self.gen_tab.form;
        egui::Grid::new("gen-form").num_columns(2).show(ui, |ui| {
            let l = ui.label("Seed");
            ui.horizontal(|ui| {
                ui.add(egui::DragValue::new(&mut form.seed).range(0..=(1u64 << 53) - 1))
                    .labelled_by(l.id);
                ui.checkbox(&mut form.seed_locked, "lock")
                    .on_hover_text("Keep this seed after a run (else a fresh one is drawn)");
                if ui.small_button("random").on_hover_text("Random seed").clicked() {
                    acts.push(Action::RandomSeed);
                }
            });
            ui.end_row();
            let l = ui.label("Steps");
            ui.add(egui::DragValue::new(&mut form.steps).range(1..=1000))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label(
                if matches!(info.kind, crate::generate::GenKind::Text { sprint: true }) {
                    "Guidance (embedded)"
                } else {
                    "CFG"
                },
            );
            ui.add(
                egui::DragValue::new(&mut form.cfg)
                    .range(0.0..=30.0)
                    .speed(0.05),
            )
            .labelled_by(l.id);
            ui.end_row();
            if info.pag {
                let l = ui.label("PAG");
                ui.add(
                    egui::DragValue::new(&mut form.pag)
                        .range(0.0..=20.0)
                        .speed(0.05),
                )
                .labelled_by(l.id)
                .on_hover_text("Perturbed-attention guidance; 0 = off (SanaPAGPipeline: 3.0)");
                ui.end_row();
            }
            let l = ui.label("Sampler");
            egui::ComboBox::from_id_salt("gen-sampler")
                .selected_text(form.sampler.clone())
                .show_ui(ui, |ui| {
                    for s in &info.samplers {
                        ui.selectable_value(&mut form.sampler, s.to_string(), *s);
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            if text {
                let l = ui.label("Size");
                ui.horizontal(|ui| {
                    egui::ComboBox::from_id_salt("gen-size")
                        .selected_text(format!("{}x{}", form.width, form.height))
                        .show_ui(ui, |ui| {
                            for &(w, h) in &info.sizes {
                                if ui
                                    .selectable_label(
                                        (form.width, form.height) == (w, h),
                                        format!("{w}x{h}"),
                                    )
                                    .clicked()
                                {
                                    (form.width, form.height) = (w, h);
                                }
                            }
                        })
                        .response
                        .labelled_by(l.id);
                    if ui.small_button("swap").on_hover_text("Swap width and height").clicked() {
                        std::mem::swap(&mut form.width, &mut form.height);
                    }
                });
                ui.end_row();
                ui.label("Binning");
                ui.checkbox(&mut form.binning, "nearest trained aspect ratio")
                    .on_hover_text("Generate at the model's nearest bin, then resize back (diffusers' default)");
                ui.end_row();
                let l = ui.label("Batch");
                ui.add(egui::DragValue::new(&mut form.batch).range(1..=MAX_BATCH))
                    .labelled_by(l.id);
                ui.end_row();
            } else if let Some(&(w, h)) = info.sizes.first() {
                ui.label("Size");
                ui.label(format!("{w}x{h} (the model's own)"));
                ui.end_row();
            }
        });
        ui.horizontal(|ui| {
            if ui
                .add(
                    egui::Button::new("Generate")
                        .shortcut_text(Command::Generate.shortcut_text(ui.ctx())),
                )
                .on_hover_text(Command::Generate.tooltip())
                .clicked()
            {
                acts.push(Action::Command(Command::Generate));
            }
            let peers = self
                .gen_tab
                .models
                .iter()
                .filter_map(|m| m.info())
                .filter(|i| gen_tab::is_text(i) == text)
                .count();
            if ui
                .add_enabled(peers >= 2, egui::Button::new("Compare models"))
                .on_hover_text(
                    "The same settings and seed with every ready model of this kind, side by \
                     side with latent size, tokens and timings",
                )
                .on_disabled_hover_text("Add a second model of this kind to compare")
                .clicked()
            {
                acts.push(Action::CompareModels);
            }
        });
        if self.gen_tab.form.base.is_some() {
            ui.small("settings restored from an image: Generate reproduces it");
        }
        acts
    }

    fn gen_queue(&self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut acts = Vec::new();
        let running = self.gen_tab.running;
        if running.is_none() && self.gen_tab.queue.is_empty() {
            return acts;
        }
        ui.heading("Queue");
        for job in running.iter().chain(self.gen_tab.queue.iter()) {
            let Some(g) = self.gen_tab.jobs.get(job) else {
                continue;
            };
            ui.horizontal(|ui| {
                let title = self.gen_tab.title(&g.settings);
                let short: String = title.chars().take(28).collect();
                if Some(*job) == running {
                    ui.spinner();
                } else {
                    if ui.small_button("up").on_hover_text("Run earlier").clicked() {
                        acts.push(Action::MoveJob(*job, true));
                    }
                    if ui.small_button("down").on_hover_text("Run later").clicked() {
                        acts.push(Action::MoveJob(*job, false));
                    }
                }
                ui.label(format!("{short} · seed {}", g.settings.seed()));
                if ui.small_button("x").on_hover_text("Cancel").clicked() {
                    acts.push(Action::CancelJob(*job));
                }
            });
        }
        acts
    }

    /// The live preview of the running job, else the chosen result.
    pub(super) fn gen_central(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut acts = Vec::new();
        let ctx = ui.ctx().clone();
        let max = ctx.input(|i| i.max_texture_side);
        if let Some(job) = self.gen_tab.running {
            let line = match self.tasks.get(job).map(|t| &t.state) {
                Some(TaskState::Running {
                    stage: "sampling",
                    done,
                    total,
                }) => {
                    let rate = self.gen_tab.jobs.get(&job).and_then(|g| {
                        let (t, d0) = g.first_step?;
                        step_rate(d0, *done, t.elapsed().as_secs_f64())
                    });
                    let rate = rate.filter(|_| !self.chrome.hide_timings);
                    progress_text(*done, *total, rate)
                }
                Some(TaskState::Running { stage, done, total }) if *total > 0 => {
                    format!("{stage} {done}/{total}")
                }
                Some(TaskState::Running { stage, .. }) => format!("{stage}…"),
                _ => "starting…".into(),
            };
            let sampling = matches!(
                self.tasks.get(job).map(|t| &t.state),
                Some(TaskState::Running {
                    stage: "sampling",
                    ..
                })
            );
            let decoding = self.gen_tab.jobs.get(&job).is_some_and(|g| g.decoding());
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(line);
                if ui.button("Cancel").clicked() {
                    acts.push(Action::CancelJob(job));
                }
                if ui
                    .add_enabled(sampling && !decoding, egui::Button::new("Decode now"))
                    .on_hover_text(
                        "Put the current estimate through the decoder after this step (it \
                         shows beside the live preview; sampling pauses for one decode)",
                    )
                    .clicked()
                {
                    acts.push(Action::DecodeNow(job));
                }
                if decoding {
                    ui.label("decoding…");
                }
            });
            let Some(g) = self.gen_tab.jobs.get_mut(&job) else {
                return acts;
            };
            let shape = match &g.settings {
                GenerationSettings::Text(s) => Some(vec2(s.width as f32, s.height as f32)),
                GenerationSettings::Class(_) => None,
            };
            let live = g.preview.as_mut().map(|(img, tex)| {
                let t = tex.get_or_insert_with(|| {
                    let ci = ColorImage::from_rgb(
                        [img.width() as usize, img.height() as usize],
                        img.as_raw(),
                    );
                    ctx.load_texture("gen-preview", ci, TextureOptions::LINEAR)
                });
                let size = shape.unwrap_or(vec2(img.width() as f32, img.height() as f32));
                (t.id(), size)
            });
            let full = g.decoded.as_mut().map(|(step, img, tex)| {
                let t =
                    tex.get_or_insert_with(|| super::views::texture(&ctx, "gen-decoded", img, max));
                (t.id(), vec2(img.width() as f32, img.height() as f32), *step)
            });
            match (live, full) {
                (Some((lt, ls)), Some((ft, fs, step))) => {
                    let avail = ui.available_size();
                    let cell = vec2(avail.x / 2.0 - 8.0, avail.y - 40.0);
                    ui.horizontal_top(|ui| {
                        for (t, size, caption) in [
                            (lt, ls, "live: a linear map of the estimate".to_string()),
                            (ft, fs, format!("decoded at step {step}")),
                        ] {
                            let s = (cell.x / size.x).min(cell.y / size.y).max(0.01);
                            ui.vertical(|ui| {
                                ui.image((t, size * s));
                                ui.small(caption);
                            });
                        }
                    });
                }
                (Some((lt, ls)), None) => {
                    show_fitted(ui, lt, ls);
                    ui.small("preview: a linear map of the current estimate (no decoder)");
                }
                (None, Some((ft, fs, step))) => {
                    show_fitted(ui, ft, fs);
                    ui.small(format!("the estimate at step {step} through the decoder"));
                }
                (None, None) => {
                    ui.label("waiting for the first step…");
                }
            }
            return acts;
        }
        let Some(i) = self
            .gen_tab
            .shown
            .filter(|&i| i < self.gen_tab.gallery.len())
        else {
            ui.centered_and_justified(|ui| {
                ui.label(if self.gen_tab.models.is_empty() {
                    "Add a generation model folder (Ctrl+Shift+M): a class-conditional model or a \
                     Sana pipeline. Results are kept in the gallery below."
                } else {
                    "Pick a class or write a prompt, then Generate (Ctrl+Enter)."
                });
            });
            return acts;
        };
        if let Some(group) = self.gen_tab.gallery[i].group {
            let members = self.gen_tab.group_items(group);
            let pending = self
                .gen_tab
                .queue
                .iter()
                .filter(|j| {
                    self.gen_tab
                        .jobs
                        .get(j)
                        .is_some_and(|g| g.group == Some(group))
                })
                .count();
            if members.len() > 1 || pending > 0 {
                self.compare_view(ui, &members, pending);
                return acts;
            }
        }
        let it = &mut self.gen_tab.gallery[i];
        let title = it.title.clone();
        let path = it.path.display().to_string();
        ui.horizontal(|ui| {
            ui.label(format!("{title} · seed {}", it.settings.seed()));
            ui.separator();
            let has_latent = it.latent.is_some();
            if ui
                .selectable_label(!self.gen_tab.show_latent || !has_latent, "Image")
                .clicked()
            {
                self.gen_tab.show_latent = false;
            }
            let r = ui
                .add_enabled(
                    has_latent,
                    egui::Button::selectable(self.gen_tab.show_latent && has_latent, "Latent"),
                )
                .on_hover_text("The final latent in the latent inspector")
                .on_disabled_hover_text(
                    "The final latent is kept for results made in this session",
                );
            if r.clicked() {
                self.gen_tab.show_latent = true;
            }
        });
        ui.small(path);
        if self.gen_tab.show_latent
            && let Some(l) = it.latent.clone()
        {
            let name = it.caption.clone().unwrap_or_else(|| title.clone());
            let name = name.split(" · ").next().unwrap_or_default().to_string();
            super::views::draw_latent(
                ui,
                &name,
                &l,
                &mut it.latent_tex,
                &mut self.gen_tab.latent_channel,
            );
            return acts;
        }
        let src = it.image.clone().unwrap_or_else(|| it.thumb.clone());
        let tex = it
            .texture
            .get_or_insert_with(|| super::views::texture(&ctx, "gen-result", &src, max));
        let id = tex.id();
        let size = vec2(src.width() as f32, src.height() as f32);
        show_fitted(ui, id, size);
        acts
    }

    /// One comparison's results side by side, each with its caption.
    fn compare_view(&mut self, ui: &mut egui::Ui, members: &[usize], pending: usize) {
        let ctx = ui.ctx().clone();
        let max = ctx.input(|i| i.max_texture_side);
        let n = (members.len() + pending).max(1);
        if let Some(&first) = members.first() {
            let it = &self.gen_tab.gallery[first];
            ui.label(format!(
                "{} · seed {} · one run per model",
                it.title,
                it.settings.seed()
            ));
        }
        let avail = ui.available_size();
        let cell = vec2(avail.x / n as f32 - 8.0, avail.y - 60.0);
        ui.horizontal_top(|ui| {
            for &i in members {
                let it = &mut self.gen_tab.gallery[i];
                let src = it.image.clone().unwrap_or_else(|| it.thumb.clone());
                let tex = it
                    .texture
                    .get_or_insert_with(|| super::views::texture(&ctx, "gen-result", &src, max))
                    .id();
                let size = vec2(src.width() as f32, src.height() as f32);
                let s = (cell.x / size.x).min(cell.y / size.y).max(0.01);
                ui.vertical(|ui| {
                    ui.image((tex, size * s));
                    ui.small(it.caption.clone().unwrap_or_default());
                });
            }
            for _ in 0..pending {
                ui.vertical(|ui| {
                    ui.spinner();
                    ui.label("queued");
                });
            }
        });
    }

    /// The gallery: search and a strip of thumbnails, newest first.
    pub(super) fn gallery_strip(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut acts = Vec::new();
        ui.horizontal(|ui| {
            ui.label(format!("Gallery ({})", self.gen_tab.gallery.len()))
                .on_hover_text(format!(
                    "Every result, its settings in the PNG: {}",
                    self.gen_tab.gallery_dir.display()
                ));
            ui.add(
                egui::TextEdit::singleline(&mut self.gen_tab.search)
                    .hint_text("search prompts and classes")
                    .desired_width(240.0),
            );
        });
        let ctx = ui.ctx().clone();
        let matches = self.gen_tab.gallery_matches();
        egui::ScrollArea::horizontal()
            .id_salt("gallery")
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    for i in matches {
                        let it = &mut self.gen_tab.gallery[i];
                        let tex = thumb_texture(&ctx, it);
                        let resp = ui
                            .add(
                                egui::Button::image(egui::Image::new((
                                    tex,
                                    vec2(it.thumb.width() as f32, it.thumb.height() as f32)
                                        * (96.0 / it.thumb.height().max(1) as f32),
                                )))
                                .selected(self.gen_tab.shown == Some(i)),
                            )
                            .on_hover_text(format!(
                                "{} · seed {}\n{}",
                                it.title,
                                it.settings.seed(),
                                it.path.display()
                            ));
                        if resp.clicked() {
                            acts.push(Action::RestoreGallery(i));
                        }
                    }
                });
            });
        acts
    }
}

/// A gallery item's thumbnail texture (made once).
fn thumb_texture(ctx: &egui::Context, it: &mut gen_tab::GalleryItem) -> egui::TextureId {
    it.thumb_texture
        .get_or_insert_with(|| {
            let ci = ColorImage::from_rgb(
                [it.thumb.width() as usize, it.thumb.height() as usize],
                it.thumb.as_raw(),
            );
            ctx.load_texture("thumb", ci, TextureOptions::LINEAR)
        })
        .id()
}

/// Draws a texture of `size` pixels as large as fits, centred.
fn show_fitted(ui: &mut egui::Ui, tex: egui::TextureId, size: Vec2) {
    let avail = ui.available_size();
    let s = (avail.x / size.x).min(avail.y / size.y).max(0.01);
    ui.vertical_centered(|ui| {
        ui.image((tex, size * s));
    });
}

//! The Generate tab's work: generation models in and out, the job queue (held here until the
//! worker is free, so it can be reordered and cancelled before it starts), replies from the
//! worker, the gallery folder and restoring settings from a PNG.

use super::gen_tab::{self, GalleryItem, GenEntry, GenJob, GenState};
use super::*;
use crate::tasks::JobId;

/// Longest side of a gallery thumbnail.
const THUMB: u32 = 160;

fn thumbnail(img: &image::RgbImage) -> image::RgbImage {
    let (w, h) = img.dimensions();
    let s = (THUMB as f32 / w.max(h) as f32).min(1.0);
    image::imageops::thumbnail(
        img,
        ((w as f32 * s) as u32).max(1),
        ((h as f32 * s) as u32).max(1),
    )
}

/// The cached snapshot of a generation repo: a complete pipeline, else a complete model.
fn cached_generation(repo: &str, opts: &dcae::hub::HubOptions) -> dcae::Result<Option<PathBuf>> {
    Ok(match dcae::hub::cached_pipeline(repo, opts, None)? {
        Some(d) => Some(d),
        None => dcae::hub::cached_model(repo, opts)?,
    })
}

/// Bytes of the files under `dir`, links followed (a cache snapshot links into `blobs/`).
fn dir_size(dir: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    let mut folders = 0;
    while let Some(d) = stack.pop() {
        // A link back up the tree must not make this endless.
        folders += 1;
        if folders > 10_000 {
            break;
        }
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match std::fs::metadata(e.path()) {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => n += m.len(),
                Err(_) => {}
            }
        }
    }
    n
}

impl Workbench {
    /// Loads a generation model folder on the worker (once per folder).
    pub fn add_gen_model(&mut self, dir: PathBuf) {
        if let Some(m) = self.gen_tab.models.iter().find(|m| m.dir == dir) {
            self.gen_tab.form.model.get_or_insert(m.id);
            return;
        }
        let id = self.id();
        self.gen_tab.models.push(GenEntry {
            id,
            dir: dir.clone(),
            state: GenState::Loading,
        });
        if !self.settings.gen_model_dirs.contains(&dir) {
            self.settings.gen_model_dirs.push(dir.clone());
        }
        self.gen_tab.form.model.get_or_insert(id);
        // Fitted preview maps live beside the gallery (both in the app's data folder).
        let preview_cache = self
            .gen_tab
            .gallery_dir
            .parent()
            .map(|p| p.join("preview-maps"));
        self.send(Job::LoadGen {
            model: id,
            dir,
            preview_cache,
        });
    }

    /// Finds out, on a helper thread, whether `repo` is in the cache (and its size there) or
    /// what a download would fetch (HEAD requests; an index json is read for its shards).
    pub fn check_gen_hub(&mut self, repo: String) {
        if matches!(
            self.gen_tab.hub.plans.get(&repo),
            Some(gen_tab::HubPlan::Checking)
        ) {
            return;
        }
        self.gen_tab
            .hub
            .plans
            .insert(repo.clone(), gen_tab::HubPlan::Checking);
        let tx = self.events_tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let plan = (|| -> dcae::Result<gen_tab::HubPlan> {
                let opts = dcae::hub::HubOptions::from_env()?;
                if let Some(d) = cached_generation(&repo, &opts)? {
                    let n = dir_size(&d);
                    return Ok(gen_tab::HubPlan::Cached(d, n));
                }
                dcae::hub::plan_download(&repo, &opts, None, &Cancel::new())
                    .map(gen_tab::HubPlan::Remote)
            })()
            .unwrap_or_else(|e| gen_tab::HubPlan::Failed(e.to_string()));
            let _ = tx.send(UiEvent::Plan(repo, plan));
            ctx.request_repaint();
        });
    }

    /// Downloads a generation repo (a diffusers pipeline or a model folder, whichever it is)
    /// into the Hugging Face cache and adds it to the tab's models.
    pub fn start_gen_download(&mut self, repo: String) {
        // What the size check found is not asked of the hub again.
        let known = match self.gen_tab.hub.plans.get(&repo) {
            Some(gen_tab::HubPlan::Cached(dir, _)) => {
                let dir = dir.clone();
                self.add_and_select_gen_model(dir);
                return;
            }
            Some(gen_tab::HubPlan::Remote(p)) => Some(p.kind),
            _ => None,
        };
        self.spawn_download(repo, true, move |repo, opts, progress, cancel| {
            if let Some(d) = cached_generation(repo, opts)? {
                return Ok(d);
            }
            let kind = match known {
                Some(k) => k,
                None => dcae::hub::plan_download(repo, opts, None, cancel)?.kind,
            };
            match kind {
                dcae::hub::RepoKind::Pipeline => {
                    dcae::hub::download_pipeline(repo, opts, None, progress, cancel)
                }
                dcae::hub::RepoKind::Model => {
                    dcae::hub::download_model(repo, opts, progress, cancel)
                }
            }
        });
    }

    /// Adds a generation model folder (if new) and makes it the selected one.
    pub(super) fn add_and_select_gen_model(&mut self, dir: PathBuf) {
        self.add_gen_model(dir.clone());
        if let Some(m) = self.gen_tab.models.iter().find(|m| m.dir == dir) {
            self.gen_tab.form.model = Some(m.id);
        }
    }

    pub(super) fn remove_gen_model(&mut self, id: u64) {
        let Some(i) = self.gen_tab.models.iter().position(|m| m.id == id) else {
            return;
        };
        let m = self.gen_tab.models.remove(i);
        self.settings.gen_model_dirs.retain(|d| *d != m.dir);
        let queued: Vec<JobId> = self
            .gen_tab
            .queue
            .iter()
            .copied()
            .filter(|j| self.gen_tab.jobs.get(j).is_some_and(|g| g.model == id))
            .collect();
        for j in queued {
            self.cancel_job(j);
        }
        self.tasks
            .cancel_where(|k| matches!(k, JobKind::Generate { model } if *model == id));
        if self.gen_tab.form.model == Some(id) {
            self.gen_tab.form.model = self.gen_tab.models.first().map(|m| m.id);
        }
        self.send(Job::UnloadGen { model: id });
    }

    /// Queues a run of the form's settings with the selected model.
    pub fn start_generation(&mut self) {
        let Some((model, info)) = self.gen_tab.selected() else {
            self.error(
                "no generation model is ready",
                Some("add a class-conditional or Sana pipeline folder (Ctrl+Shift+M)"),
            );
            return;
        };
        let settings = match self.gen_tab.form.settings(info, &self.settings.styles) {
            Ok(s) => s,
            Err(e) => {
                self.error(e, Some("fix the setting, then press Generate again"));
                return;
            }
        };
        self.queue_generation(model, settings, None);
        self.next_seed();
        self.dispatch_generation();
    }

    /// The same class or prompt and seed with every ready model of the selected model's kind,
    /// one job each: the results show side by side with latent size, tokens and timings.
    pub fn compare_models(&mut self) {
        let Some((_, sel)) = self.gen_tab.selected() else {
            self.error("no generation model is ready", None);
            return;
        };
        let text = gen_tab::is_text(sel);
        let runs: Vec<(u64, Result<GenerationSettings, String>)> = self
            .gen_tab
            .models
            .iter()
            .filter_map(|m| m.info().map(|i| (m.id, i)))
            .filter(|(_, i)| gen_tab::is_text(i) == text)
            .map(|(id, i)| (id, self.gen_tab.form.settings(i, &self.settings.styles)))
            .collect();
        if runs.len() < 2 {
            self.error(
                "comparing needs two ready models of the same kind",
                Some("add another class-conditional (or Sana) model folder"),
            );
            return;
        }
        let group = self.id();
        for (model, s) in runs {
            match s {
                Ok(s) => self.queue_generation(model, s, Some(group)),
                Err(e) => self.error(e, Some("fix the setting, then compare again")),
            }
        }
        self.next_seed();
        self.dispatch_generation();
    }

    fn queue_generation(&mut self, model: u64, settings: GenerationSettings, group: Option<u64>) {
        let (job, _) = self.tasks.add(JobKind::Generate { model });
        self.gen_tab.jobs.insert(
            job,
            GenJob {
                model,
                group,
                settings,
                preview: None,
                previews: 0,
                first_step: None,
                started: None,
                first_preview_s: None,
                decode: Arc::default(),
                decoded: None,
            },
        );
        self.gen_tab.queue.push(job);
    }

    /// Unlocked, the next run gets a fresh seed.
    fn next_seed(&mut self) {
        if !self.gen_tab.form.seed_locked {
            self.gen_tab.form.seed = random_seed();
        }
    }

    /// Timings of the finished generation jobs (the screenshot log): first preview, s/step and
    /// total seconds per job.
    pub(super) fn gen_perf_line(&self) -> String {
        let mut jobs: Vec<_> = self.gen_tab.jobs.iter().collect();
        jobs.sort_by_key(|(id, _)| **id);
        jobs.iter()
            .filter_map(|(id, g)| match self.tasks.get(**id).map(|t| &t.state) {
                Some(TaskState::Done(Output::Gen(r))) => Some(format!(
                    "{}: first preview after {:.2} s, {:.4} s/step, {:.2} s in all, {} previews",
                    self.gen_tab.title(&g.settings),
                    g.first_preview_s.unwrap_or(f64::NAN),
                    r.step_s,
                    r.seconds,
                    g.previews
                )),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Adds the shown result to the seed deck.
    pub(super) fn add_to_deck(&mut self) {
        let Some(it) = self.gen_tab.shown.and_then(|i| self.gen_tab.gallery.get(i)) else {
            self.error(
                "no result is shown",
                Some("generate or pick one in the gallery"),
            );
            return;
        };
        let p = it.path.clone();
        if !self.settings.deck.contains(&p) {
            self.settings.deck.push(p);
        }
        self.gen_tab.deck_pos = Some(self.settings.deck.len() - 1);
    }

    /// Shows the next (or previous) deck entry: its saved result at once, its settings in
    /// the form (Generate re-runs it).
    pub(super) fn deck_step(&mut self, forward: bool) {
        let Some(pos) =
            gen_tab::deck_step(self.gen_tab.deck_pos, self.settings.deck.len(), forward)
        else {
            return;
        };
        self.gen_tab.deck_pos = Some(pos);
        let path = self.settings.deck[pos].clone();
        match self.gen_tab.gallery.iter().position(|g| g.path == path) {
            Some(i) => self.restore_gallery(i),
            None => self.error(
                format!("deck entry {} is not in the gallery", path.display()),
                Some("remove it from the deck, or point --gallery at its folder"),
            ),
        }
    }

    /// Hands the next queued job to the worker when none is running there.
    pub(super) fn dispatch_generation(&mut self) {
        while self.gen_tab.running.is_none() && !self.gen_tab.queue.is_empty() {
            let job = self.gen_tab.queue.remove(0);
            let Some(task) = self.tasks.get(job) else {
                continue;
            };
            let cancel = task.cancel.clone();
            let Some(g) = self.gen_tab.jobs.get_mut(&job) else {
                continue;
            };
            g.started = Some(Instant::now());
            let (model, settings) = (g.model, Box::new(g.settings.clone()));
            let decode = g.decode.clone();
            self.gen_tab.running = Some(job);
            self.tasks.progress(job, "starting", 0, 0);
            let gallery = self.gen_tab.gallery_dir.clone();
            self.send(Job::Generate {
                job,
                model,
                settings,
                gallery,
                cancel,
                decode,
            });
        }
    }

    /// Asks the running job to put its current estimate through the decoder after the step
    /// it is in (beside the cheap preview).
    pub fn decode_now(&mut self, job: JobId) {
        if let Some(g) = self.gen_tab.jobs.get(&job) {
            g.decode.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub(super) fn on_gen_decoded(
        &mut self,
        job: JobId,
        step: u64,
        image: Result<Arc<image::RgbImage>, String>,
    ) {
        match image {
            Ok(img) => {
                if let Some(g) = self.gen_tab.jobs.get_mut(&job) {
                    g.decoded = Some((step, img, None));
                }
            }
            Err(e) => self.error(
                format!("decoding the estimate at step {step}: {e}"),
                Some("sampling goes on; try a smaller size or the f32c32 model"),
            ),
        }
    }

    /// Cancels a generation job: a queued one never starts; a running one stops after the
    /// step it is in.
    pub fn cancel_job(&mut self, job: JobId) {
        if let Some(i) = self.gen_tab.queue.iter().position(|&j| j == job) {
            self.gen_tab.queue.remove(i);
            if let Some(t) = self.tasks.get(job) {
                t.cancel.cancel();
            }
            self.tasks.finish(job, Err(JobError::cancelled()));
        } else if let Some(t) = self.tasks.get(job) {
            t.cancel.cancel();
        }
    }

    /// Cancels every generation job, queued and running.
    pub(super) fn cancel_all_generation(&mut self) -> usize {
        let queued: Vec<JobId> = self.gen_tab.queue.clone();
        let n = queued.len();
        for j in queued {
            self.cancel_job(j);
        }
        n + self
            .tasks
            .cancel_where(|k| matches!(k, JobKind::Generate { .. }))
    }

    pub(super) fn on_gen_loaded(
        &mut self,
        model: u64,
        result: Result<Box<crate::generate::GenModelInfo>, JobError>,
    ) {
        let Some(m) = self.gen_tab.models.iter_mut().find(|m| m.id == model) else {
            return;
        };
        match result {
            Ok(info) => {
                let selected = self.gen_tab.form.model == Some(model);
                let restored = self.gen_tab.form.base.is_some();
                if selected && !restored {
                    self.gen_tab.form.load(&info.defaults, false);
                }
                m.state = GenState::Ready(info);
                if selected && self.chrome.generate_on_load {
                    self.chrome.generate_on_load = false;
                    self.start_generation();
                }
            }
            Err(e) => {
                let name = ModelSource::Folder(m.dir.clone()).label();
                m.state = GenState::Failed(e.to_string());
                self.error(format!("generation model {name}: {e}"), e.generation_fix());
            }
        }
    }

    pub(super) fn on_gen_progress(&mut self, job: JobId, stage: &str, done: u64) {
        if let Some(g) = self.gen_tab.jobs.get_mut(&job)
            && stage == "sampling"
            && g.first_step.is_none()
        {
            g.first_step = Some((Instant::now(), done));
        }
    }

    pub(super) fn on_gen_preview(&mut self, job: JobId, image: Arc<image::RgbImage>) {
        if let Some(g) = self.gen_tab.jobs.get_mut(&job) {
            g.previews += 1;
            if g.first_preview_s.is_none() {
                g.first_preview_s = g.started.map(|t| t.elapsed().as_secs_f64());
            }
            g.preview = Some((image, None));
        }
    }

    pub(super) fn on_generated(&mut self, job: JobId, result: Result<Box<Generation>, JobError>) {
        if self.gen_tab.running == Some(job) {
            self.gen_tab.running = None;
        }
        match result {
            Ok(g) => {
                let title = self.gen_tab.title(&g.settings);
                let job_info = self.gen_tab.jobs.get(&job);
                let group = job_info.and_then(|j| j.group);
                let caption = job_info.and_then(|j| self.gen_tab.model(j.model)).map(|m| {
                    let name = ModelSource::Folder(m.dir.clone()).label();
                    let lat = m.info().map(|i| i.latent).unwrap_or([0; 3]);
                    let [c, h, w] = if g.latent.channels > 0 {
                        [g.latent.channels, g.latent.height, g.latent.width]
                    } else {
                        lat
                    };
                    let mut s = format!("{name} · latent {c}x{h}x{w} ({} tokens)", h * w);
                    if !self.chrome.hide_timings {
                        s.push_str(&format!(" · {:.3} s/step · {:.2} s", g.step_s, g.seconds));
                    }
                    s
                });
                self.gen_tab.gallery.push(GalleryItem {
                    path: g.path.clone(),
                    group,
                    caption,
                    settings: g.settings.clone(),
                    title,
                    thumb: Arc::new(thumbnail(&g.image)),
                    image: Some(g.image.clone()),
                    texture: None,
                    thumb_texture: None,
                    latent: (g.latent.channels > 0).then(|| Arc::new(g.latent.clone())),
                    latent_tex: None,
                });
                self.gen_tab.shown = Some(self.gen_tab.gallery.len() - 1);
                self.tasks.finish(job, Ok(Output::Gen(g)));
            }
            Err(e) => {
                if !e.is_cancelled() {
                    self.error(format!("generation: {e}"), e.generation_fix());
                }
                self.tasks.finish(job, Err(e));
            }
        }
        self.dispatch_generation();
    }

    /// Reads the gallery folder on a thread: each PNG with settings arrives as an
    /// [`UiEvent::Gallery`] (oldest first, by name: names start with a timestamp).
    pub(super) fn scan_gallery(&mut self) {
        let Ok(rd) = std::fs::read_dir(&self.gen_tab.gallery_dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
            .collect();
        files.sort();
        self.pending.gallery += 1;
        let tx = self.events_tx.clone();
        let ctx = self.ctx.clone();
        let names = self.gen_tab.class_names.clone();
        std::thread::spawn(move || {
            for p in files {
                let Ok(settings) = GenerationSettings::from_png(&p) else {
                    continue;
                };
                let Ok(img) = image::open(&p) else { continue };
                let title = super::gen_tab::title_of(&settings, &names);
                let item = GalleryItem {
                    path: p,
                    group: None,
                    caption: None,
                    settings,
                    title,
                    thumb: Arc::new(thumbnail(&img.to_rgb8())),
                    image: None,
                    texture: None,
                    thumb_texture: None,
                    latent: None,
                    latent_tex: None,
                };
                let _ = tx.send(UiEvent::Gallery(Box::new(item)));
                ctx.request_repaint();
            }
            let _ = tx.send(UiEvent::GalleryDone);
            ctx.request_repaint();
        });
    }

    /// Shows gallery item `i` large and puts its settings into the form.
    pub(super) fn restore_gallery(&mut self, i: usize) {
        let Some(it) = self.gen_tab.gallery.get(i) else {
            return;
        };
        let settings = it.settings.clone();
        if it.image.is_none() {
            let (tx, ctx, path) = (self.events_tx.clone(), self.ctx.clone(), it.path.clone());
            std::thread::spawn(move || {
                if let Ok(img) = image::open(&path) {
                    let _ = tx.send(UiEvent::GalleryImage(path, Arc::new(img.to_rgb8())));
                    ctx.request_repaint();
                }
            });
        }
        self.gen_tab.shown = Some(i);
        self.restore(settings);
    }

    /// Puts `settings` into the form, selecting (or loading) the model folder they name.
    pub fn restore(&mut self, settings: GenerationSettings) {
        let dir = match &settings {
            GenerationSettings::Class(c) => c.model.clone(),
            GenerationSettings::Text(t) => PathBuf::from(&t.model),
        };
        let known = self
            .gen_tab
            .models
            .iter()
            .find(|m| m.dir == dir || dcae::pipeline::settings::absolute(&m.dir) == dir)
            .map(|m| m.id);
        match known {
            Some(id) => self.gen_tab.form.model = Some(id),
            None if dir.is_dir() => {
                self.gen_tab.form.model = None;
                self.add_gen_model(dir);
            }
            None => self.error(
                format!(
                    "the model these settings were made with is not here: {}",
                    dir.display()
                ),
                Some("add its folder (Ctrl+Shift+M), then restore again"),
            ),
        }
        self.gen_tab.form.load(&settings, true);
        self.settings.tab = Tab::Generate;
    }

    /// Dropped files: a PNG with generation settings restores them; any other image opens in
    /// the Reconstruct tab; folders are added as models of the tab shown.
    pub(super) fn open_dropped(&mut self, paths: Vec<PathBuf>) {
        for p in paths {
            if p.is_dir() {
                match self.settings.tab {
                    Tab::Generate => self.add_gen_model(p),
                    Tab::Reconstruct => self.add_model(ModelSource::Folder(p)),
                }
                continue;
            }
            let png = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
            if !png {
                self.open_paths(vec![p]);
                continue;
            }
            self.pending.images += 1;
            let tx = self.events_tx.clone();
            let ctx = self.ctx.clone();
            std::thread::spawn(move || {
                let event = match GenerationSettings::from_png(&p) {
                    Ok(s) => UiEvent::Restored(p, Box::new(s)),
                    Err(_) => UiEvent::Image(
                        dcae::io::image::load_image(&p)
                            .map(|(img, _)| {
                                let name = p
                                    .file_name()
                                    .map(|n| n.to_string_lossy().into_owned())
                                    .unwrap_or_default();
                                (name, img.to_rgb8())
                            })
                            .map_err(|e| e.to_string()),
                    ),
                };
                let _ = tx.send(event);
                ctx.request_repaint();
            });
        }
    }
}

/// A seed from the clock and a counter (reproducibility comes from the seed being stored, not
/// from how it was drawn).
pub(super) fn random_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = t ^ N.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    // splitmix64 finaliser; kept below 2^53 so the seed survives any JSON reader.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) & ((1 << 53) - 1)
}

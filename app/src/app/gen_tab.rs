//! The Generate tab's state: generation models, the form (class or prompt, seed, steps,
//! guidance, sampler, size, batch), the job queue the UI holds until the worker is free (so
//! it can be reordered), the live preview and the gallery of saved results.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use dcae::pipeline::class_to_image::ClassToImage;
use dcae::pipeline::generation::GenerationSettings;
use dcae::pipeline::text_to_image::{TextSampler, TextToImage};
use egui::TextureHandle;

use crate::generate::{GenKind, GenModelInfo};
use crate::settings::StylePreset;
use crate::tasks::JobId;

pub enum GenState {
    Loading,
    Ready(Box<GenModelInfo>),
    Failed(String),
}

/// A generation model folder of the tab's list.
pub struct GenEntry {
    pub id: u64,
    pub dir: PathBuf,
    pub state: GenState,
}

impl GenEntry {
    pub fn info(&self) -> Option<&GenModelInfo> {
        match &self.state {
            GenState::Ready(i) => Some(i),
            _ => None,
        }
    }
}

/// What the user edits. Turned into engine settings by [`GenForm::settings`] on top of the
/// model's defaults (or of restored settings, so fields the form does not show survive).
#[derive(Debug, Clone)]
pub struct GenForm {
    pub model: Option<u64>,
    pub classes: Vec<i64>,
    pub class_search: String,
    pub prompt: String,
    pub negative: String,
    pub seed: u64,
    /// Keep the seed after a run (else a fresh one is drawn for the next).
    pub seed_locked: bool,
    pub steps: usize,
    pub cfg: f32,
    pub pag: f32,
    pub sampler: String,
    pub width: usize,
    pub height: usize,
    pub batch: usize,
    /// Sana's resolution binning: generate at the nearest trained aspect ratio, resize back.
    pub binning: bool,
    /// The style template applied to the prompt (index into the settings' styles).
    pub style: Option<usize>,
    /// Restored settings the form started from (`None`: the model's defaults).
    pub base: Option<GenerationSettings>,
}

impl Default for GenForm {
    fn default() -> Self {
        Self {
            model: None,
            classes: vec![207],
            class_search: String::new(),
            prompt: String::new(),
            negative: String::new(),
            seed: 0,
            seed_locked: false,
            steps: 20,
            cfg: 4.5,
            pag: 0.0,
            sampler: String::new(),
            width: 1024,
            height: 1024,
            batch: 1,
            binning: true,
            style: None,
            base: None,
        }
    }
}

impl GenForm {
    /// Fills every field from `s` (model defaults or restored settings).
    pub fn load(&mut self, s: &GenerationSettings, restored: bool) {
        match s {
            GenerationSettings::Class(c) => {
                if restored || self.classes.is_empty() {
                    self.classes = c.classes.clone();
                }
                self.steps = c.steps;
                self.cfg = c.cfg;
                self.pag = 0.0;
                self.sampler = c.sampler.name().to_string();
                self.batch = 1;
            }
            GenerationSettings::Text(t) => {
                if restored {
                    self.prompt = t.prompt.clone();
                    self.negative = t.negative.clone();
                }
                self.steps = t.steps;
                self.cfg = t.cfg;
                self.pag = t.pag;
                self.sampler = t.sampler.name().to_string();
                self.width = t.width;
                self.height = t.height;
                self.batch = t.batch;
                self.binning = t.binning;
            }
        }
        if restored {
            self.seed = s.seed();
            self.seed_locked = true;
        }
        self.base = restored.then(|| s.clone());
    }

    /// The engine settings of a run with `info`'s model (the prompt through the chosen style
    /// of `styles`: the PNG keeps the expanded prompt, so it replays without the style).
    pub fn settings(
        &self,
        info: &GenModelInfo,
        styles: &[StylePreset],
    ) -> Result<GenerationSettings, String> {
        let base = match (&self.base, &info.defaults) {
            (Some(b @ GenerationSettings::Class(_)), GenerationSettings::Class(_))
            | (Some(b @ GenerationSettings::Text(_)), GenerationSettings::Text(_)) => b,
            _ => &info.defaults,
        };
        Ok(match base {
            GenerationSettings::Class(c) => {
                let mut s: ClassToImage = c.clone();
                if let GenerationSettings::Class(d) = &info.defaults {
                    s.model = d.model.clone();
                    s.autoencoder = d.autoencoder.clone();
                }
                if self.classes.is_empty() {
                    return Err("pick at least one class".into());
                }
                s.classes = self.classes.clone();
                s.cols = dcae::pipeline::class_to_image::default_cols(s.classes.len());
                s.seed = self.seed;
                s.steps = self.steps;
                s.cfg = self.cfg;
                s.sampler = dcae::diffusion::class_cond::SamplerKind::ALL
                    .into_iter()
                    .find(|k| k.name() == self.sampler)
                    .unwrap_or(s.sampler);
                s.validate().map_err(|e| e.to_string())?;
                GenerationSettings::Class(s)
            }
            GenerationSettings::Text(t) => {
                let mut s: TextToImage = t.clone();
                if let GenerationSettings::Text(d) = &info.defaults {
                    s.model = d.model.clone();
                }
                s.prompt = match self.style.and_then(|i| styles.get(i)) {
                    Some(st) => st.apply(&self.prompt),
                    None => self.prompt.clone(),
                };
                s.negative = self.negative.clone();
                s.seed = self.seed;
                s.steps = self.steps;
                s.cfg = self.cfg;
                s.pag = if info.pag { self.pag } else { 0.0 };
                s.sampler = self.sampler.parse::<TextSampler>().unwrap_or(s.sampler);
                s.width = self.width;
                s.height = self.height;
                s.batch = self.batch;
                s.binning = self.binning;
                s.validate().map_err(|e| e.to_string())?;
                GenerationSettings::Text(s)
            }
        })
    }
}

/// A saved result of the gallery.
pub struct GalleryItem {
    pub path: PathBuf,
    /// The comparison this result belongs to (one run of the same settings per model).
    pub group: Option<u64>,
    /// Model, latent, tokens and timings, for results made in this session.
    pub caption: Option<String>,
    pub settings: GenerationSettings,
    pub title: String,
    /// A small copy for the strip, and the full image when known.
    pub thumb: Arc<image::RgbImage>,
    pub image: Option<Arc<image::RgbImage>>,
    /// The large view's texture (of `image`, else of `thumb`) and the strip's.
    pub texture: Option<TextureHandle>,
    pub thumb_texture: Option<TextureHandle>,
    /// The first image's final latent (unscaled), for results made in this session.
    pub latent: Option<Arc<crate::analysis::Latent>>,
    /// The latent inspector's textures of it.
    pub latent_tex: Option<(TextureHandle, TextureHandle, usize)>,
}

/// A job of the tab: its model and settings, live state.
pub struct GenJob {
    pub model: u64,
    /// The comparison it belongs to.
    pub group: Option<u64>,
    pub settings: GenerationSettings,
    /// Latest preview and its texture.
    pub preview: Option<(Arc<image::RgbImage>, Option<TextureHandle>)>,
    pub previews: usize,
    /// The first sampling report: when, and the step count it gave.
    pub first_step: Option<(Instant, u64)>,
    /// When the worker started it.
    pub started: Option<Instant>,
    /// Seconds from the job's start to its first preview.
    pub first_preview_s: Option<f64>,
    /// Set to ask the worker for a full decode of the estimate ("Decode now"); the worker
    /// clears it when the decode is done.
    pub decode: Arc<std::sync::atomic::AtomicBool>,
    /// The latest full decode: its step, image and texture.
    pub decoded: Option<(u64, Arc<image::RgbImage>, Option<TextureHandle>)>,
}

impl GenJob {
    /// A decode was asked for and has not come back yet.
    pub fn decoding(&self) -> bool {
        self.decode.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What the hub section knows about a repo's download.
#[derive(Debug, Clone)]
pub enum HubPlan {
    Checking,
    /// Already in the cache: its folder and size on disk.
    Cached(PathBuf, u64),
    /// What a download would fetch.
    Remote(dcae::hub::DownloadPlan),
    Failed(String),
}

/// The Generate tab's hub section: the registered generation repos (or any repo id typed in)
/// with their download size, checked once per repo.
#[derive(Default)]
pub struct GenHub {
    pub choice: usize,
    /// A repo id typed in; used instead of the list when not empty.
    pub custom: String,
    pub plans: HashMap<String, HubPlan>,
}

impl GenHub {
    /// The repo the section is about.
    pub fn repo(&self, repos: &[dcae::hub::GenerationRepo]) -> Option<String> {
        let c = self.custom.trim();
        if !c.is_empty() {
            return Some(c.to_string());
        }
        repos.get(self.choice).map(|r| r.repo.clone())
    }
}

/// Bytes for people: "812 B", "41.3 KB", "1.23 GB".
pub fn human_bytes(n: u64) -> String {
    let f = n as f64;
    if n < 1000 {
        format!("{n} B")
    } else if f < 1e6 {
        format!("{:.1} KB", f / 1e3)
    } else if f < 1e9 {
        format!("{:.1} MB", f / 1e6)
    } else {
        format!("{:.2} GB", f / 1e9)
    }
}

/// What the hub section says about a plan.
pub fn plan_text(plan: &HubPlan) -> String {
    match plan {
        HubPlan::Checking => "checking the size…".into(),
        HubPlan::Cached(_, n) => format!("in the cache: {} on disk", human_bytes(*n)),
        HubPlan::Remote(p) => {
            let kind = match p.kind {
                dcae::hub::RepoKind::Model => "model",
                dcae::hub::RepoKind::Pipeline => "pipeline",
            };
            let unknown = match p.unknown_sizes() {
                0 => String::new(),
                k => format!(" + {k} of unknown size"),
            };
            if p.missing_bytes() == 0 && unknown.is_empty() {
                format!(
                    "{kind}, {} files, {}: all in the cache",
                    p.files.len(),
                    human_bytes(p.total_bytes())
                )
            } else {
                format!(
                    "{kind}, {} files: {} to download{unknown} ({} on disk)",
                    p.files.len(),
                    human_bytes(p.missing_bytes()),
                    human_bytes(p.total_bytes())
                )
            }
        }
        HubPlan::Failed(e) => e.clone(),
    }
}

pub struct GenTab {
    pub models: Vec<GenEntry>,
    pub hub: GenHub,
    pub form: GenForm,
    /// Jobs waiting for the worker, in run order (reorderable).
    pub queue: Vec<JobId>,
    /// The job the worker runs now.
    pub running: Option<JobId>,
    pub jobs: HashMap<JobId, GenJob>,
    pub gallery: Vec<GalleryItem>,
    pub gallery_dir: PathBuf,
    pub search: String,
    /// The gallery item shown large (index into `gallery`), when no job is running.
    pub shown: Option<usize>,
    /// ImageNet names, one list of synonyms per class id.
    pub class_names: Vec<Vec<String>>,
    /// Position in the seed deck (the settings' `deck`).
    pub deck_pos: Option<usize>,
    /// The token counter's last answer, by (model, prompt): the prompt box is drawn every
    /// frame, the tokenizer runs only when the text changes.
    pub token_count: Option<(u64, String, (usize, usize))>,
    /// The shown result's final latent in the latent inspector, instead of its image.
    pub show_latent: bool,
    pub latent_channel: usize,
}

impl GenTab {
    pub fn new(gallery_dir: PathBuf) -> Self {
        Self {
            models: Vec::new(),
            hub: GenHub::default(),
            form: GenForm::default(),
            queue: Vec::new(),
            running: None,
            jobs: HashMap::new(),
            gallery: Vec::new(),
            gallery_dir,
            search: String::new(),
            shown: None,
            class_names: dcae::pipeline::classes::class_table(),
            deck_pos: None,
            token_count: None,
            show_latent: false,
            latent_channel: 0,
        }
    }

    pub fn model(&self, id: u64) -> Option<&GenEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The selected model, when it is ready.
    pub fn selected(&self) -> Option<(u64, &GenModelInfo)> {
        let id = self.form.model?;
        self.model(id)?.info().map(|i| (id, i))
    }

    /// Class ids whose names contain `query` (case-insensitive), at most `limit`.
    pub fn class_matches(&self, query: &str, limit: usize) -> Vec<(i64, String)> {
        let q = query.trim().to_lowercase();
        self.class_names
            .iter()
            .enumerate()
            .filter(|(i, names)| {
                q.is_empty()
                    || i.to_string() == q
                    || names.iter().any(|n| n.to_lowercase().contains(&q))
            })
            .take(limit)
            .map(|(i, names)| (i as i64, names.first().cloned().unwrap_or_default()))
            .collect()
    }

    /// The first name of class `id`.
    pub fn class_name(&self, id: i64) -> String {
        class_name_in(id, &self.class_names)
    }

    /// Gallery indices matching the search, newest first.
    pub fn gallery_matches(&self) -> Vec<usize> {
        let q = self.search.trim().to_lowercase();
        (0..self.gallery.len())
            .rev()
            .filter(|&i| {
                let it = &self.gallery[i];
                q.is_empty()
                    || it.title.to_lowercase().contains(&q)
                    || matches!(&it.settings, GenerationSettings::Class(c)
                        if c.classes.iter().any(|&k| self.class_name(k).to_lowercase().contains(&q)))
            })
            .collect()
    }

    /// A one-line title for settings: the prompt, or the class names.
    pub fn title(&self, s: &GenerationSettings) -> String {
        title_of(s, &self.class_names)
    }

    /// Gallery indices of the comparison `group`, in the order they finished.
    pub fn group_items(&self, group: u64) -> Vec<usize> {
        (0..self.gallery.len())
            .filter(|&i| self.gallery[i].group == Some(group))
            .collect()
    }

    /// Moves a queued job one place earlier (`up`) or later.
    pub fn move_queued(&mut self, job: JobId, up: bool) {
        if let Some(i) = self.queue.iter().position(|&j| j == job) {
            let k = if up {
                i.checked_sub(1)
            } else {
                (i + 1 < self.queue.len()).then_some(i + 1)
            };
            if let Some(k) = k {
                self.queue.swap(i, k);
            }
        }
    }
}

/// The first name of class `id` in `names` (one synonym list per id).
pub fn class_name_in(id: i64, names: &[Vec<String>]) -> String {
    usize::try_from(id)
        .ok()
        .and_then(|i| names.get(i))
        .and_then(|n| n.first().cloned())
        .unwrap_or_else(|| format!("class {id}"))
}

/// A one-line title: the prompt, or the class names (usable off the UI thread).
pub fn title_of(s: &GenerationSettings, names: &[Vec<String>]) -> String {
    match s {
        GenerationSettings::Class(c) => c
            .classes
            .iter()
            .map(|&k| class_name_in(k, names))
            .collect::<Vec<_>>()
            .join(", "),
        GenerationSettings::Text(t) => t.prompt.clone(),
    }
}

/// The next deck position from `pos` in a deck of `n` (wrapping), forward or back.
pub fn deck_step(pos: Option<usize>, n: usize, forward: bool) -> Option<usize> {
    if n == 0 {
        return None;
    }
    Some(match pos {
        None => {
            if forward {
                0
            } else {
                n - 1
            }
        }
        Some(p) if forward => (p + 1) % n,
        Some(p) => (p + n - 1) % n,
    })
}

/// Progress text of a running job: "step 3/20 · 0.41 s/step · ETA 7 s", the rate once two
/// steps have been seen.
pub fn progress_text(done: u64, total: u64, step_s: Option<f64>) -> String {
    let mut s = format!("step {done}/{total}");
    if let Some(per) = step_s {
        let eta = per * total.saturating_sub(done) as f64;
        s.push_str(&format!(" · {per:.2} s/step · ETA {eta:.0} s"));
    }
    s
}

/// Seconds per step from the first sampling report `(when, step)` to `done` steps `elapsed`
/// seconds later; `None` until a step has passed since.
pub fn step_rate(first_done: u64, done: u64, elapsed: f64) -> Option<f64> {
    (done > first_done).then(|| elapsed / (done - first_done) as f64)
}

/// What kind of form a model needs.
pub fn is_text(info: &GenModelInfo) -> bool {
    matches!(info.kind, GenKind::Text { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_text_has_rate_and_eta_once_steps_run() {
        assert_eq!(progress_text(0, 20, None), "step 0/20");
        assert_eq!(
            progress_text(4, 20, step_rate(0, 4, 2.0)),
            "step 4/20 · 0.50 s/step · ETA 8 s"
        );
        assert_eq!(step_rate(3, 3, 1.0), None);
        assert_eq!(step_rate(1, 3, 1.0), Some(0.5));
    }

    #[test]
    fn bytes_and_plans_read_as_people_say_them() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(41_300), "41.3 KB");
        assert_eq!(human_bytes(6_400_000_000), "6.40 GB");
        let file = |size, cached| dcae::hub::RemoteFile {
            path: "f".into(),
            size,
            cached,
        };
        let plan = |files| {
            HubPlan::Remote(dcae::hub::DownloadPlan {
                repo: "a/b".into(),
                commit: "0".repeat(40),
                kind: dcae::hub::RepoKind::Pipeline,
                files,
            })
        };
        assert_eq!(
            plan_text(&plan(vec![
                file(Some(2_000_000), false),
                file(Some(500), true)
            ])),
            "pipeline, 2 files: 2.0 MB to download (2.0 MB on disk)"
        );
        assert_eq!(
            plan_text(&plan(vec![file(Some(500), true)])),
            "pipeline, 1 files, 500 B: all in the cache"
        );
        assert!(plan_text(&plan(vec![file(None, false)])).contains("1 of unknown size"));
        let hub = GenHub {
            custom: "  org/x ".into(),
            ..GenHub::default()
        };
        assert_eq!(hub.repo(&[]), Some("org/x".into()));
        assert_eq!(GenHub::default().repo(&[]), None);
    }

    #[test]
    fn deck_steps_wrap() {
        assert_eq!(deck_step(None, 0, true), None);
        assert_eq!(deck_step(None, 3, true), Some(0));
        assert_eq!(deck_step(None, 3, false), Some(2));
        assert_eq!(deck_step(Some(2), 3, true), Some(0));
        assert_eq!(deck_step(Some(0), 3, false), Some(2));
        assert_eq!(deck_step(Some(5), 3, true), Some(0));
    }

    #[test]
    fn queue_moves_stay_in_bounds() {
        let mut t = GenTab::new(PathBuf::from("/tmp/x"));
        t.queue = vec![JobId(1), JobId(2), JobId(3)];
        t.move_queued(JobId(1), true);
        assert_eq!(t.queue, vec![JobId(1), JobId(2), JobId(3)]);
        t.move_queued(JobId(3), true);
        assert_eq!(t.queue, vec![JobId(1), JobId(3), JobId(2)]);
        t.move_queued(JobId(2), false);
        assert_eq!(t.queue, vec![JobId(1), JobId(3), JobId(2)]);
    }

    #[test]
    fn class_search_by_name_and_id() {
        let t = GenTab::new(PathBuf::from("/tmp/x"));
        let m = t.class_matches("tabby", 10);
        assert!(m.iter().any(|(id, _)| *id == 281), "{m:?}");
        assert_eq!(t.class_matches("207", 10)[0].0, 207);
        assert_eq!(t.class_matches("", 5).len(), 5);
    }
}

//! The model side of the Generate tab, run on the worker thread: generation models
//! (class-conditional folders and Sana pipeline folders) loaded once, each with its
//! autoencoder's live-preview map; a job samples with the engine's pipelines, sends a preview
//! of the current estimate after every step and saves the result, settings in its PNG text,
//! into the gallery folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use dcae::burn::tensor::Device;
use dcae::diffusion::class_cond::DiffusionConfig;
use dcae::io::image::RgbF32;
use dcae::pipeline::class_to_image::{self, ClassToImage};
use dcae::pipeline::generation::GenerationSettings;
use dcae::pipeline::preview::LatentRgb;
use dcae::pipeline::text_to_image::{self, PipelineKind, TextToImage, TextToImagePipeline};
use dcae::text::TextTokenizer;
use dcae::{Backend, Cancel, DcAe, DecodedEstimate, Precision};

use crate::analysis::Latent;
use crate::error::{JobError, JobErrorKind};
use crate::worker::guarded;

/// What kind of generation model a folder holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenKind {
    /// A class-conditional network (UViT, DiT, USiT) on a DC-AE.
    Class { family: String },
    /// A Sana pipeline folder (Sana-Sprint when `sprint`).
    Text { sprint: bool },
}

/// What the Generate tab shows about a loaded generation model.
#[derive(Clone)]
pub struct GenModelInfo {
    pub name: String,
    pub kind: GenKind,
    /// The autoencoder, e.g. "f32c32".
    pub autoencoder: String,
    /// Latent `[C, H, W]` at the default size.
    pub latent: [usize; 3],
    pub params: usize,
    pub backend: String,
    /// The references' own defaults for this model (prompt/classes left empty).
    pub defaults: GenerationSettings,
    /// Text models: the tokenizer (for the live token counter) and the token budget.
    pub tokenizer: Option<Arc<TextTokenizer>>,
    /// Whether the model takes PAG (Sana, not Sprint).
    pub pag: bool,
    /// Sampler names the model accepts.
    pub samplers: Vec<&'static str>,
    /// Output sizes `(width, height)` the model is made for: its aspect-ratio bins (Sana) or
    /// its one native size (class-conditional).
    pub sizes: Vec<(usize, usize)>,
}

impl std::fmt::Debug for GenModelInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenModelInfo")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("latent", &self.latent)
            .finish_non_exhaustive()
    }
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The images as one grid.
    pub image: Arc<image::RgbImage>,
    /// Where the PNG (settings in its text chunk) was saved.
    pub path: PathBuf,
    pub settings: GenerationSettings,
    pub seconds: f64,
    /// Sampling seconds per step.
    pub step_s: f64,
    /// The first image's final latent (unscaled), for the latent inspector.
    pub latent: Latent,
}

/// A loaded generation model.
pub(crate) enum GenModel {
    Class {
        dir: PathBuf,
        loaded: Box<class_to_image::Loaded>,
        preview: Option<LatentRgb>,
    },
    Text {
        pipe: Box<TextToImagePipeline>,
        preview: Option<LatentRgb>,
        scaling: f32,
    },
}

/// Side of the photos the preview map is fitted on: 16 latent pixels per side, within
/// 256..=1024 px.
fn fit_side(f: usize) -> u32 {
    (16 * f).clamp(256, 1024) as u32
}

/// The preview map of `ae`: from `cache` when a map was fitted for these weights before,
/// else fitted on the bundled photos (seconds for a full-size autoencoder on a CPU) and kept
/// there. `None` when fitting fails: previews are a nicety, not a requirement.
fn fit_preview(ae: &DcAe, photos: &[&[u8]], cache: Option<&Path>) -> Option<LatentRgb> {
    let c = ae.config.latent_channels;
    let file = cache
        .zip(preview_key(ae))
        .map(|(d, k)| d.join(format!("{k}.json")));
    if let Some(f) = &file
        && let Some(map) = read_cached_map(f, c)
    {
        return Some(map);
    }
    let side = fit_side(ae.factor());
    let imgs: Vec<RgbF32> = photos
        .iter()
        .filter_map(|b| image::load_from_memory(b).ok())
        .map(|i| {
            let rgb = i.to_rgb8();
            RgbF32::from_rgb8(&image::imageops::resize(
                &rgb,
                side,
                side,
                image::imageops::FilterType::Triangle,
            ))
        })
        .collect();
    let map = LatentRgb::fit_autoencoder(ae, &imgs).ok()?;
    if let Some(f) = &file
        && let Ok(json) = serde_json::to_vec(&map)
    {
        // A cache that cannot be written only costs the next load the fit.
        let _ = f
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .ok()
            .and_then(|_| dcae::io::write_atomic(f, &json).ok());
    }
    Some(map)
}

/// What a fitted map depends on: the weights file (path, size, modification time), the
/// latent layout, the precision and the bundled photos; `None` for random weights.
fn preview_key(ae: &DcAe) -> Option<String> {
    let src = ae.source.as_ref()?;
    let meta = std::fs::metadata(src).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let path = std::fs::canonicalize(src).unwrap_or_else(|_| src.clone());
    let id = format!(
        "preview-v1|{}|{}|{mtime}|c{}|f{}|{:?}|{}",
        path.display(),
        meta.len(),
        ae.config.latent_channels,
        ae.factor(),
        ae.precision,
        crate::app::SAMPLES.len()
    );
    Some(dcae::hub::sha256_hex(id.as_bytes())[..32].to_string())
}

/// A cached map, if the file holds one of the right shape with finite values.
fn read_cached_map(file: &Path, channels: usize) -> Option<LatentRgb> {
    let bytes = std::fs::read(file).ok()?;
    let map: LatentRgb = serde_json::from_slice(&bytes).ok()?;
    let ok = map.channels == channels
        && map.weights.len() == 3 * channels
        && map.weights.iter().chain(&map.bias).all(|v| v.is_finite());
    ok.then_some(map)
}

fn model_err(e: &dcae::Error) -> JobError {
    JobError::from_engine(e)
}

/// Loads the generation model in `dir`: a Sana pipeline folder (`model_index.json`) or a
/// class-conditional folder (`config.json` + `model.safetensors`).
pub(crate) fn load_gen_model(
    dir: &Path,
    device: &Device,
    backend: Backend,
    photos: &[&[u8]],
    preview_cache: Option<&Path>,
) -> Result<(GenModel, GenModelInfo), JobError> {
    let name = crate::worker::ModelSource::Folder(dir.to_path_buf()).label();
    if dir.join("model_index.json").is_file() {
        let pipe = TextToImagePipeline::open(dir, None, device).map_err(|e| model_err(&e))?;
        let (sana, _) = pipe.configs().map_err(|e| model_err(&e))?;
        let vae_cfg = pipe.folder.vae_config().map_err(|e| model_err(&e))?;
        let sprint = pipe.folder.kind == PipelineKind::Sprint;
        let defaults = TextToImage::with_defaults(
            dir.display().to_string(),
            None,
            &pipe.folder,
            String::new(),
            text_to_image::Choices {
                backend: Some(backend),
                ..Default::default()
            },
        );
        let tokenizer = Arc::new(pipe.folder.tokenizer().map_err(|e| model_err(&e))?);
        // The preview map needs the autoencoder once; the parameter count reads headers only.
        let preview = {
            let ae = pipe
                .folder
                .vae(device, Precision::F32)
                .map_err(|e| model_err(&e))?;
            fit_preview(&ae, photos, preview_cache)
        };
        let mut params = 0u64;
        for c in ["text_encoder", "transformer", "vae"] {
            params += pipe.folder.param_count(c).map_err(|e| model_err(&e))?;
        }
        let f = vae_cfg.spatial_compression();
        let info = GenModelInfo {
            name,
            kind: GenKind::Text { sprint },
            autoencoder: format!("f{f}c{}", vae_cfg.latent_channels),
            latent: [sana.in_channels, defaults.height / f, defaults.width / f],
            params: params as usize,
            backend: backend.to_string(),
            defaults: GenerationSettings::Text(defaults),
            tokenizer: Some(tokenizer),
            pag: !sprint,
            samplers: if sprint {
                vec!["scm"]
            } else {
                vec!["flow-dpm", "flow-euler"]
            },
            sizes: size_presets(sprint, sana.sample_size, f),
        };
        // Only the tokenizer and recent prompt embeddings stay loaded between jobs: each job
        // loads, runs and frees Gemma, the transformer and the autoencoder in turn.
        let scaling = vae_cfg.scaling_factor.unwrap_or(1.0) as f32;
        return Ok((
            GenModel::Text {
                pipe: Box::new(pipe),
                preview,
                scaling,
            },
            info,
        ));
    }
    let cfg_path = dir.join("config.json");
    let config = DiffusionConfig::from_file(&cfg_path).map_err(|e| model_err(&e))?;
    let defaults = ClassToImage::with_defaults(
        dir,
        &config,
        vec![0],
        class_to_image::Choices {
            backend: Some(backend),
            ..Default::default()
        },
    );
    let loaded = guarded(|| class_to_image::load(&defaults, device))?;
    let preview = fit_preview(&loaded.ae, photos, preview_cache);
    let chw = loaded.net.config.latent_chw();
    let family = loaded.net.config.family;
    let info = GenModelInfo {
        name,
        kind: GenKind::Class {
            family: family.name().to_string(),
        },
        autoencoder: format!(
            "f{}c{}",
            loaded.ae.factor(),
            loaded.ae.config.latent_channels
        ),
        latent: chw,
        params: loaded.net.num_params() + loaded.ae.num_params(),
        backend: backend.to_string(),
        defaults: GenerationSettings::Class(defaults),
        tokenizer: None,
        pag: false,
        samplers: dcae::diffusion::class_cond::SamplerKind::ALL
            .iter()
            .filter(|s| s.family_ok(family))
            .map(|s| s.name())
            .collect(),
        sizes: vec![(chw[2] * loaded.ae.factor(), chw[1] * loaded.ae.factor())],
    };
    Ok((
        GenModel::Class {
            dir: dir.to_path_buf(),
            loaded: Box::new(loaded),
            preview,
        },
        info,
    ))
}

/// A Sana model's aspect-ratio bins as `(width, height)`, square first; without a table (a
/// test-sized model) the native size.
fn size_presets(sprint: bool, sample_size: usize, f: usize) -> Vec<(usize, usize)> {
    use dcae::diffusion::sana::bins;
    let table = if sprint {
        Ok(bins::BIN_1024)
    } else {
        bins::table_for_sample_size(sample_size)
    };
    match table {
        Ok(t) => {
            let mut v: Vec<(usize, usize)> = t.iter().map(|&(_, h, w)| (w, h)).collect();
            v.sort_by_key(|&(w, h)| (w != h, w.abs_diff(h), w));
            v
        }
        Err(_) => vec![(sample_size * f, sample_size * f)],
    }
}

/// Where a generation job reports: steps, previews of the estimate, and the estimate decoded
/// when `decode_wanted` is set (the UI's "Decode now"; cleared once it is done).
pub(crate) struct GenReports<'a> {
    /// `(stage, done, total)` of every update.
    pub progress: &'a mut dyn FnMut(&str, u64, u64),
    /// A preview image of the first item's estimate.
    pub preview: &'a mut dyn FnMut(image::RgbImage),
    /// The first item's estimate through the decoder, at sampling step `.0`.
    pub decoded: &'a mut dyn FnMut(u64, Result<image::RgbImage, String>),
    pub decode_wanted: &'a AtomicBool,
}

/// The engine-facing sink of a job: [`GenReports`] plus the preview map and latent layout.
struct PreviewSink<'a, 'b> {
    reports: &'a mut GenReports<'b>,
    map: Option<&'a LatentRgb>,
    /// Latent `[C, H, W]` of one item and the scaling factor the network's latents carry.
    chw: [usize; 3],
    scaling: f32,
    /// The last sampling step reported.
    step: u64,
}

impl dcae::Progress for PreviewSink<'_, '_> {
    fn update(&mut self, stage: &str, done: u64, total: u64) {
        if stage == "sampling" {
            self.step = done;
        }
        (self.reports.progress)(stage, done, total);
    }

    fn wants_estimate(&self) -> bool {
        self.map.is_some()
    }

    fn estimate(&mut self, latent: &[f32]) {
        let Some(map) = self.map else { return };
        let [c, h, w] = self.chw;
        let Some(first) = latent.get(..c * h * w) else {
            return;
        };
        let z: Vec<f32> = first.iter().map(|v| v / self.scaling).collect();
        if let Ok(rgb) = map.apply(&z, h, w)
            && let Some(img) = image::RgbImage::from_raw(w as u32, h as u32, rgb)
        {
            (self.reports.preview)(img);
        }
    }

    fn wants_decode(&self) -> bool {
        self.reports.decode_wanted.load(Ordering::Relaxed)
    }

    fn decoded(&mut self, image: Result<DecodedEstimate, String>) {
        self.reports.decode_wanted.store(false, Ordering::Relaxed);
        let img = image.and_then(|d| {
            let one = class_to_image::Images {
                pixels: d.pixels,
                n: 1,
                height: d.height,
                width: d.width,
            };
            let (rgb, w, h) = class_to_image::grid(&one, 1);
            image::RgbImage::from_raw(w as u32, h as u32, rgb)
                .ok_or_else(|| "the decoded estimate has a bad size".to_string())
        });
        // Samplers hand over a step's estimate before reporting the step done.
        (self.reports.decoded)(self.step + 1, img);
    }
}

/// A file name in `dir` that does not exist yet: `<stem>.png`, else `<stem>-2.png`, ...
pub fn fresh_path(dir: &Path, stem: &str) -> PathBuf {
    let p = dir.join(format!("{stem}.png"));
    if !p.exists() {
        return p;
    }
    (2..)
        .map(|i| dir.join(format!("{stem}-{i}.png")))
        .find(|p| !p.exists())
        .unwrap_or(p)
}

/// Runs one generation with `model`, reporting steps and previews, and saves the PNG into
/// `gallery`.
pub(crate) fn run_generation(
    model: &mut GenModel,
    settings: &GenerationSettings,
    gallery: &Path,
    reports: GenReports<'_>,
    cancel: &Cancel,
) -> Result<Generation, JobError> {
    let t0 = Instant::now();
    let mut sampling: Option<(Instant, u64)> = None;
    let GenReports {
        progress: sink_progress,
        preview,
        decoded,
        decode_wanted,
    } = reports;
    let mut progress = |stage: &str, done: u64, total: u64| {
        if stage == "sampling" {
            let s = sampling.get_or_insert((Instant::now(), total));
            s.1 = total;
        }
        sink_progress(stage, done, total);
    };
    let mut reports = GenReports {
        progress: &mut progress,
        preview,
        decoded,
        decode_wanted,
    };
    let (png, grid, latent, settings) = match (model, settings) {
        (
            GenModel::Class {
                dir,
                loaded,
                preview,
            },
            GenerationSettings::Class(s),
        ) => {
            let mut s = s.clone();
            // The folder this model was loaded from, whatever the restored settings said.
            s.model = dcae::pipeline::settings::absolute(dir);
            let chw = loaded.net.config.latent_chw();
            let scaling = loaded.scaling_factor as f32;
            let mut sink = PreviewSink {
                reports: &mut reports,
                map: preview.as_ref(),
                chw,
                scaling,
                step: 0,
            };
            let (images, z) =
                guarded(|| class_to_image::run_with_latents(loaded, &s, &mut sink, cancel))?;
            let png = guarded(|| class_to_image::grid_png(&images, &s))?;
            let (rgb, w, h) = class_to_image::grid(&images, s.cols);
            let per: usize = chw.iter().product();
            let latent = Latent {
                channels: chw[0],
                height: chw[1],
                width: chw[2],
                data: z[..per.min(z.len())].to_vec(),
            };
            (png, (rgb, w, h), Some(latent), GenerationSettings::Class(s))
        }
        (
            GenModel::Text {
                pipe,
                preview,
                scaling,
            },
            GenerationSettings::Text(s),
        ) => {
            let (sana, _) = guarded(|| pipe.configs())?;
            let f = guarded(|| pipe.folder.vae_config())?.spatial_compression();
            let (gh, gw) = guarded(|| pipe.generation_size(s, &sana))?;
            let chw = [sana.in_channels, gh / f, gw / f];
            let mut sink = PreviewSink {
                reports: &mut reports,
                map: preview.as_ref(),
                chw,
                scaling: *scaling,
                step: 0,
            };
            let g = guarded(|| pipe.run(s, &mut sink, cancel))?;
            let png = guarded(|| text_to_image::png(&g, s))?;
            let cols = ((g.images.n as f64).sqrt().ceil() as usize).max(1);
            let grid = class_to_image::grid(&g.images, cols);
            let per: usize = chw.iter().product();
            let latent = Latent {
                channels: chw[0],
                height: chw[1],
                width: chw[2],
                data: g.latents[..per].iter().map(|v| v / *scaling).collect(),
            };
            (png, grid, Some(latent), GenerationSettings::Text(s.clone()))
        }
        _ => {
            return Err(JobError::new(
                JobErrorKind::BadInput,
                "these settings are for the other kind of model (class vs text)",
            ));
        }
    };
    let seconds = t0.elapsed().as_secs_f64();
    let step_s = sampling
        .map(|(t, n)| t.elapsed().as_secs_f64() / n.max(1) as f64)
        .unwrap_or(0.0);
    std::fs::create_dir_all(gallery).map_err(|e| {
        JobError::new(
            JobErrorKind::BadInput,
            format!("gallery folder {}: {e}", gallery.display()),
        )
    })?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let path = fresh_path(gallery, &format!("{stamp}-seed{}", settings.seed()));
    dcae::io::write_atomic(&path, &png).map_err(|e| JobError::from_engine(&e))?;
    let (rgb, w, h) = grid;
    let image = image::RgbImage::from_raw(w as u32, h as u32, rgb)
        .ok_or_else(|| JobError::new(JobErrorKind::Device, "the image grid has a bad size"))?;
    Ok(Generation {
        image: Arc::new(image),
        path,
        settings,
        seconds,
        step_s,
        latent: latent.unwrap_or(Latent {
            channels: 0,
            height: 0,
            width: 0,
            data: Vec::new(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_paths_never_reuse_a_name() {
        let d = std::env::temp_dir().join(format!("dcae-fresh-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let a = fresh_path(&d, "x");
        assert_eq!(a, d.join("x.png"));
        std::fs::write(&a, b"1").unwrap();
        let b = fresh_path(&d, "x");
        assert_eq!(b, d.join("x-2.png"));
        std::fs::write(&b, b"2").unwrap();
        assert_eq!(fresh_path(&d, "x"), d.join("x-3.png"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn cached_preview_maps_are_checked_before_use() {
        let d = std::env::temp_dir().join(format!("dcae-prevmap-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("m.json");
        let map = LatentRgb {
            channels: 2,
            weights: vec![0.5, -0.25, 1.0, 0.0, 0.125, 2.0],
            bias: [0.1, 0.2, 0.3],
        };
        std::fs::write(&f, serde_json::to_vec(&map).unwrap()).unwrap();
        assert_eq!(read_cached_map(&f, 2), Some(map.clone()));
        // Another latent width, a truncated file, a non-finite value: refit instead.
        assert_eq!(read_cached_map(&f, 3), None);
        std::fs::write(&f, b"{\"channels\": 2, \"weights\": [").unwrap();
        assert_eq!(read_cached_map(&f, 2), None);
        let bad = LatentRgb {
            weights: vec![f32::NAN; 6],
            ..map
        };
        let text = serde_json::to_string(&bad).unwrap();
        std::fs::write(&f, text).unwrap();
        assert_eq!(read_cached_map(&f, 2), None);
        assert_eq!(read_cached_map(&d.join("missing.json"), 2), None);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn preview_photos_are_sized_by_the_factor() {
        assert_eq!(fit_side(8), 256);
        assert_eq!(fit_side(32), 512);
        assert_eq!(fit_side(64), 1024);
        assert_eq!(fit_side(128), 1024);
    }
}

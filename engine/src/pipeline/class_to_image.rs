//! Class-to-image generation (`dcae sample`, the app's Generate tab): a class-conditional
//! network and its autoencoder resolved from a model folder, latents sampled for class labels,
//! decoded, laid out as one PNG grid whose text chunk holds every setting.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::settings::{SAMPLE_KEY, absolute, ascii_json, png_with_text, read_png_json};
use crate::autoencoder::DcAe;
use crate::backend::Backend;
use crate::diffusion::{
    DiffusionConfig, DiffusionModel, SampleSettings, SamplerKind, autoencoder_preset,
    bundled_autoencoder, generate,
};
use crate::error::{Error, Result};
use crate::io::image::quantize;
use crate::pipeline::classes::NUM_CLASSES;
use crate::pipeline::preview::{DecodeOnDemand, decode_estimate};
use crate::task::{Cancel, Progress};
use crate::weights::Precision;

/// Every setting of one run; its JSON (field order as declared) is what the PNG stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassToImage {
    /// Diffusion model folder: `config.json` + `model.safetensors`.
    pub model: PathBuf,
    /// DC-AE folder, when `model.safetensors` has no `autoencoder.` weights.
    #[serde(default)]
    pub autoencoder: Option<PathBuf>,
    pub classes: Vec<i64>,
    pub seed: u64,
    pub steps: usize,
    pub cfg: f32,
    pub sampler: SamplerKind,
    /// Images per grid row.
    pub cols: usize,
    pub backend: Backend,
    pub precision: Precision,
}

/// Most images one run makes (one per class).
pub const MAX_IMAGES: usize = 256;
/// Most sampler steps (the references use at most 250).
pub const MAX_STEPS: usize = 1000;
/// Largest guidance scale accepted (the references use 1 to 10).
pub const MAX_CFG: f32 = 100.0;

/// About square: `ceil(sqrt(n))` images per row.
pub fn default_cols(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).clamp(1, n.max(1))
}

impl ClassToImage {
    /// Settings for `classes` with the model's own defaults (steps, CFG, sampler) where a
    /// choice is `None`; paths made absolute so the PNG replays from any directory.
    pub fn with_defaults(
        model: &Path,
        config: &DiffusionConfig,
        classes: Vec<i64>,
        choices: Choices,
    ) -> Self {
        let n = classes.len();
        Self {
            model: absolute(model),
            autoencoder: choices.autoencoder.as_deref().map(absolute),
            seed: choices.seed,
            steps: choices.steps.unwrap_or(config.default_steps),
            cfg: choices.cfg.unwrap_or(config.default_cfg),
            sampler: choices.sampler.unwrap_or(config.default_sampler),
            cols: choices.cols.unwrap_or_else(|| default_cols(n)),
            classes,
            backend: choices.backend.unwrap_or_default(),
            precision: choices.precision.unwrap_or_default(),
        }
    }

    /// Every number in its range, the same checks whether the settings come from the command
    /// line, the app or a PNG's metadata.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Input(m));
        let n = self.classes.len();
        if !(1..=MAX_IMAGES).contains(&n) {
            return bad(format!(
                "{n} classes: give 1..={MAX_IMAGES} (one image per class)"
            ));
        }
        if let Some(c) = self
            .classes
            .iter()
            .find(|&&c| !(0..NUM_CLASSES).contains(&c))
        {
            return bad(format!(
                "class id {c} is out of range 0..={} (the null class {NUM_CLASSES} is not a class)",
                NUM_CLASSES - 1
            ));
        }
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return bad(format!("steps {}: give 1..={MAX_STEPS}", self.steps));
        }
        if !(self.cfg.is_finite() && self.cfg.abs() <= MAX_CFG) {
            return bad(format!(
                "cfg {}: the guidance scale must be a number in -{MAX_CFG}..={MAX_CFG}",
                self.cfg
            ));
        }
        if !(1..=n).contains(&self.cols) {
            return bad(format!(
                "cols {}: give 1..={n} (the number of images)",
                self.cols
            ));
        }
        Ok(())
    }

    /// The settings as stored in a PNG, with the version that wrote them.
    pub fn to_json(&self) -> Result<Value> {
        let stored = Stored {
            settings: self.clone(),
            dcae_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        serde_json::to_value(stored)
            .map_err(|e| Error::Input(format!("the settings cannot be stored: {e}")))
    }

    pub fn from_json(v: Value) -> std::result::Result<Self, String> {
        serde_json::from_value::<Stored>(v)
            .map(|s| s.settings)
            .map_err(|e| e.to_string())
    }

    /// The settings of a PNG written by `dcae sample` (or the app), validated.
    pub fn from_png(path: &Path) -> Result<Self> {
        let named = |e: String| Error::Input(format!("{}: settings: {e}", path.display()));
        let s = Self::from_json(read_png_json(path, SAMPLE_KEY)?).map_err(named)?;
        s.validate().map_err(|e| named(e.to_string()))?;
        Ok(s)
    }
}

/// What the PNG's text chunk holds: the settings and the version that wrote them.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    settings: ClassToImage,
    #[serde(default)]
    dcae_version: String,
}

/// The user's choices; `None` takes the model's default.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    pub autoencoder: Option<PathBuf>,
    pub seed: u64,
    pub steps: Option<usize>,
    pub cfg: Option<f32>,
    pub sampler: Option<SamplerKind>,
    pub cols: Option<usize>,
    pub backend: Option<Backend>,
    pub precision: Option<Precision>,
}

/// A network, its autoencoder and the latent scaling between them.
#[derive(Debug)]
pub struct Loaded {
    pub net: DiffusionModel,
    pub ae: DcAe,
    pub scaling_factor: f64,
    /// Set when neither config had a scaling factor (1.0 is used).
    pub scaling_note: Option<String>,
}

/// Loads the network of `s.model` and its autoencoder on `device`.
pub fn load(s: &ClassToImage, device: &Device) -> Result<Loaded> {
    let net = DiffusionModel::load(&s.model, device, s.precision)?;
    let ae = resolve_autoencoder(
        &s.model,
        s.autoencoder.as_deref(),
        &net,
        device,
        s.precision,
    )?;
    let c = net.config.latent_chw()[0];
    if ae.config.latent_channels != c {
        return Err(Error::Input(format!(
            "the autoencoder has {} latent channels, the diffusion model {c}",
            ae.config.latent_channels
        )));
    }
    let (scaling_factor, scaling_note) =
        match net.config.scaling_factor.or(ae.config.scaling_factor) {
            Some(sf) => (sf, None),
            None => (
                1.0,
                Some("no scaling factor in either config; using 1.0".to_string()),
            ),
        };
    Ok(Loaded {
        net,
        ae,
        scaling_factor,
        scaling_note,
    })
}

/// The autoencoder of a diffusion model folder: `explicit` when given, else the
/// `autoencoder.` weights beside the network (official single files), else the folder the
/// config names (relative to the model folder) or `autoencoder/`.
pub fn resolve_autoencoder(
    model_dir: &Path,
    explicit: Option<&Path>,
    net: &DiffusionModel,
    device: &Device,
    precision: Precision,
) -> Result<DcAe> {
    if let Some(dir) = explicit {
        return DcAe::load(dir, device, precision);
    }
    let weights = model_dir.join("model.safetensors");
    if DiffusionModel::file_has_autoencoder(&weights)? {
        let cfg = autoencoder_preset(&net.config).ok_or_else(|| {
            Error::Input(
                "model.safetensors holds `autoencoder.` weights but the config names no DC-AE preset"
                    .into(),
            )
        })??;
        return bundled_autoencoder(cfg, &weights, device, precision);
    }
    let candidates: Vec<PathBuf> = net
        .config
        .autoencoder
        .iter()
        .map(|a| model_dir.join(a))
        .chain([model_dir.join("autoencoder")])
        .filter(|p| p.join("config.json").is_file())
        .collect();
    match candidates.first() {
        Some(dir) => DcAe::load(dir, device, precision),
        None => Err(Error::MissingFile(format!(
            "{} has no autoencoder weights; give --autoencoder <DC-AE folder>",
            model_dir.display()
        ))),
    }
}

/// Decoded images `[n, 3, h, w]` in about [-1, 1].
#[derive(Debug, Clone)]
pub struct Images {
    pub pixels: Vec<f32>,
    pub n: usize,
    pub height: usize,
    pub width: usize,
}

/// Samples one latent per class and decodes them. `progress` hears the sampler's steps (and
/// gets the estimate decoded when it [asks](Progress::wants_decode)).
pub fn run(
    loaded: &mut Loaded,
    s: &ClassToImage,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<Images> {
    run_with_latents(loaded, s, progress, cancel).map(|(images, _)| images)
}

/// [`run`], also returning the final latents, unscaled (what the decoder read), `[N, C, H, W]`.
pub fn run_with_latents(
    loaded: &mut Loaded,
    s: &ClassToImage,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<(Images, Vec<f32>)> {
    s.validate()?;
    let chw = loaded.net.config.latent_chw();
    let [_, h, w] = loaded.ae.config.image_size_of(chw[1], chw[2]);
    let n = s.classes.len() as u64;
    crate::limits::check(
        &format!("{n} image(s) of {w}x{h}"),
        crate::limits::image_grid(n, h as u64, w as u64).saturating_add(
            crate::limits::autoencoder_pass(&loaded.ae.config, n, h as u64, w as u64, None),
        ),
    )?;
    let settings = SampleSettings {
        sampler: s.sampler,
        steps: s.steps,
        cfg: s.cfg,
        seed: s.seed,
        labels: s.classes.clone(),
        null_class: loaded.net.config.num_classes() as i64,
    };
    let family = loaded.net.config.family;
    let sf = loaded.scaling_factor as f32;
    let latent = {
        let ae = &loaded.ae;
        let mut sink = DecodeOnDemand {
            inner: progress,
            chw,
            scaling: sf,
            decode: |z, chw| decode_estimate(ae, z, chw),
        };
        generate(&mut loaded.net, family, chw, &settings, &mut sink, cancel)?
    };
    if latent.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite(
            "sampling produced NaN/inf values; try --precision f32 or fewer guidance".into(),
        ));
    }
    let n = s.classes.len();
    let z: Vec<f32> = latent.iter().map(|v| v / sf).collect();
    let zt = Tensor::<4>::from_data(
        TensorData::new(z.clone(), [n, chw[0], chw[1], chw[2]]),
        &loaded.ae.device,
    );
    let img = loaded.ae.decode(zt)?;
    let [_, _, h, w] = img.dims();
    let pixels = img
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| Error::readback("the image", e))?;
    Ok((
        Images {
            pixels,
            n,
            height: h,
            width: w,
        },
        z,
    ))
}

/// The images as one 8-bit grid of `cols` per row (white where a row is short): RGB bytes,
/// width, height.
pub fn grid(images: &Images, cols: usize) -> (Vec<u8>, usize, usize) {
    let Images {
        pixels,
        n,
        height: h,
        width: w,
    } = images;
    let (n, h, w) = (*n, *h, *w);
    let cols = cols.max(1);
    let rows = n.div_ceil(cols);
    let (gw, gh) = (cols * w, rows * h);
    let mut rgb = vec![255u8; gw * gh * 3];
    for i in 0..n {
        let (ox, oy) = ((i % cols) * w, (i / cols) * h);
        let item = &pixels[i * 3 * h * w..(i + 1) * 3 * h * w];
        for y in 0..h {
            for x in 0..w {
                let o = ((oy + y) * gw + ox + x) * 3;
                for c in 0..3 {
                    rgb[o + c] = quantize(item[c * h * w + y * w + x]);
                }
            }
        }
    }
    (rgb, gw, gh)
}

/// The grid as PNG bytes with the settings in its `dcae-sample` text chunk.
pub fn grid_png(images: &Images, s: &ClassToImage) -> Result<Vec<u8>> {
    let (rgb, gw, gh) = grid(images, s.cols);
    png_with_text(&rgb, gw, gh, SAMPLE_KEY, &ascii_json(&s.to_json()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClassToImage {
        ClassToImage {
            model: "/m/ü".into(),
            autoencoder: None,
            classes: vec![207, 281],
            seed: 3,
            steps: 4,
            cfg: 1.5,
            sampler: SamplerKind::DpmSolver,
            cols: 2,
            backend: Backend::Cpu,
            precision: Precision::F32,
        }
    }

    #[test]
    fn settings_round_trip_as_json_with_names() {
        let s = settings();
        let v = s.to_json().unwrap();
        assert_eq!(v["sampler"], "dpm-solver");
        assert_eq!(v["backend"], "cpu");
        assert_eq!(v["precision"], "f32");
        assert_eq!(v["autoencoder"], Value::Null);
        assert_eq!(v["dcae_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(ClassToImage::from_json(v.clone()).unwrap(), s);
        let mut missing = v.clone();
        missing.as_object_mut().unwrap().remove("seed");
        assert!(
            ClassToImage::from_json(missing)
                .unwrap_err()
                .contains("seed")
        );
        let mut bad = v;
        bad["sampler"] = "nope".into();
        assert!(
            ClassToImage::from_json(bad)
                .unwrap_err()
                .contains("unknown sampler")
        );
    }
}

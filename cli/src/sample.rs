//! `dcae sample`: class-conditional generation with a UViT / DiT / USiT checkpoint, decoded by
//! its DC-AE, written as one PNG grid whose tEXt chunk holds every setting (`--from` replays it).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use dcae::burn::tensor::{Tensor, TensorData};
use dcae::diffusion::{DiffusionConfig, DiffusionModel, SampleSettings, SamplerKind, generate};
use dcae::image_io::quantize;
use dcae::tensor_io::write_atomic;
use dcae::{Backend, DcAe, Precision};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

/// The 1000 ImageNet-1k class names, one line per class id, synonyms separated by ", ".
const CLASSES: &str = include_str!("../../assets/imagenet_classes.txt");

/// tEXt keyword of the settings chunk.
const META_KEY: &str = "dcae-sample";

#[derive(Args)]
pub struct SampleArgs {
    /// Diffusion model folder: config.json ({"model_name": ...} or {"kind": ...}) and
    /// model.safetensors (the official single file also holds the autoencoder).
    #[arg(long, required_unless_present = "from")]
    model: Option<PathBuf>,
    /// DC-AE folder, when model.safetensors has no `autoencoder.` weights.
    #[arg(long)]
    autoencoder: Option<PathBuf>,
    /// Class ids (0-999) or names ("golden retriever"); one image per class.
    #[arg(long = "class", num_args = 1.., required_unless_present = "from")]
    classes: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sampler steps (default: the model's: 30 DPM-Solver, 250 DDPM / ODE points).
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale (default: the model's FID setting).
    #[arg(long)]
    cfg: Option<f32>,
    /// dpm-solver (UViT), ddpm | ddim (DiT), dopri5 | heun2 (USiT).
    #[arg(long)]
    sampler: Option<SamplerKind>,
    /// Images per grid row (default: about square).
    #[arg(long)]
    cols: Option<usize>,
    #[arg(long)]
    backend: Option<Backend>,
    #[arg(long)]
    precision: Option<Precision>,
    /// Reproduce the image whose metadata a PNG written by `dcae sample` holds.
    #[arg(long, conflicts_with_all = ["model", "classes", "steps", "cfg", "sampler", "seed", "cols", "autoencoder"])]
    from: Option<PathBuf>,
    /// Output PNG.
    #[arg(short, long)]
    output: PathBuf,
}

/// Every setting of one run, as written into the PNG.
#[derive(Debug, Clone)]
struct Settings {
    model: PathBuf,
    autoencoder: Option<PathBuf>,
    classes: Vec<i64>,
    seed: u64,
    steps: usize,
    cfg: f32,
    sampler: SamplerKind,
    cols: usize,
    backend: Backend,
    precision: Precision,
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "f32",
        Precision::Bf16 => "bf16",
        Precision::F16 => "f16",
    }
}

impl Settings {
    fn to_json(&self) -> Value {
        json!({
            "model": self.model.to_string_lossy(),
            "autoencoder": self.autoencoder.as_ref().map(|p| p.to_string_lossy().into_owned()),
            "classes": self.classes,
            "seed": self.seed,
            "steps": self.steps,
            "cfg": self.cfg,
            "sampler": self.sampler.name(),
            "cols": self.cols,
            "backend": self.backend.to_string(),
            "precision": precision_name(self.precision),
            "dcae_version": env!("CARGO_PKG_VERSION"),
        })
    }

    fn from_json(v: &Value) -> Result<Self> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .with_context(|| format!("settings lack `{k}`"))
        };
        let u = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .with_context(|| format!("settings lack `{k}`"))
        };
        Ok(Self {
            model: PathBuf::from(s("model")?),
            autoencoder: v
                .get("autoencoder")
                .and_then(Value::as_str)
                .map(PathBuf::from),
            classes: v
                .get("classes")
                .and_then(Value::as_array)
                .context("settings lack `classes`")?
                .iter()
                .map(|c| c.as_i64().context("class ids must be integers"))
                .collect::<Result<_>>()?,
            seed: u("seed")?,
            steps: u("steps")? as usize,
            cfg: v
                .get("cfg")
                .and_then(Value::as_f64)
                .context("settings lack `cfg`")? as f32,
            sampler: s("sampler")?.parse().map_err(anyhow::Error::msg)?,
            cols: u("cols")? as usize,
            backend: s("backend")?.parse().map_err(anyhow::Error::msg)?,
            precision: s("precision")?.parse().map_err(anyhow::Error::msg)?,
        })
    }
}

/// Class names: line i = class i.
fn class_table() -> Vec<Vec<String>> {
    CLASSES
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(", ").map(|s| s.trim().to_lowercase()).collect())
        .collect()
}

/// A class id or a name: exact synonym match first, then a unique substring match.
fn resolve_class(arg: &str, table: &[Vec<String>]) -> Result<i64> {
    if let Ok(id) = arg.trim().parse::<i64>() {
        if !(0..1000).contains(&id) {
            bail!("class id {id} is out of range 0..=999");
        }
        return Ok(id);
    }
    let q = arg.trim().to_lowercase().replace('_', " ");
    if let Some(i) = table.iter().position(|syn| syn.contains(&q)) {
        return Ok(i as i64);
    }
    let hits: Vec<usize> = (0..table.len())
        .filter(|&i| table[i].iter().any(|s| s.contains(&q)))
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one as i64),
        [] => bail!("no ImageNet class matches `{arg}`; give an id 0-999 or another name"),
        many => {
            let list: Vec<String> = many
                .iter()
                .take(8)
                .map(|&i| format!("{i} ({})", table[i][0]))
                .collect();
            bail!(
                "`{arg}` matches {} classes: {}{}; be more specific or give the id",
                many.len(),
                list.join(", "),
                if many.len() > 8 { ", ..." } else { "" }
            )
        }
    }
}

pub fn run(a: &SampleArgs) -> Result<()> {
    if !a
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        bail!("output {} must end in .png", a.output.display());
    }
    let settings = match &a.from {
        Some(png) => {
            let mut s = read_settings(png)?;
            if let Some(b) = a.backend {
                s.backend = b;
            }
            if let Some(p) = a.precision {
                s.precision = p;
            }
            eprintln!("settings from {}: {}", png.display(), s.to_json());
            s
        }
        None => {
            let model = a.model.clone().context("--model is required")?;
            let cfg = DiffusionConfig::from_file(&model.join("config.json"))
                .with_context(|| format!("reading {}", model.join("config.json").display()))?;
            let table = class_table();
            let classes = a
                .classes
                .iter()
                .map(|c| resolve_class(c, &table))
                .collect::<Result<Vec<_>>>()?;
            let n = classes.len();
            // Absolute paths, so `--from` works from any directory.
            let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            Settings {
                model: abs(&model),
                autoencoder: a.autoencoder.as_deref().map(abs),
                classes,
                seed: a.seed,
                steps: a.steps.unwrap_or(cfg.default_steps),
                cfg: a.cfg.unwrap_or(cfg.default_cfg),
                sampler: a.sampler.unwrap_or(cfg.default_sampler),
                cols: a
                    .cols
                    .unwrap_or_else(|| (n as f64).sqrt().ceil() as usize)
                    .clamp(1, n.max(1)),
                backend: a.backend.unwrap_or_default(),
                precision: a.precision.unwrap_or_default(),
            }
        }
    };
    sample(&settings, &a.output)
}

fn sample(s: &Settings, output: &Path) -> Result<()> {
    let device = s.backend.device()?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("loading {} on {}", s.model.display(), s.backend));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut net = DiffusionModel::load(&s.model, &device, s.precision)
        .with_context(|| format!("loading diffusion model {}", s.model.display()))?;
    let ae = load_autoencoder(s, &net, &device)?;
    spinner.finish_and_clear();
    let chw = net.config.latent_chw();
    if ae.config.latent_channels != chw[0] {
        bail!(
            "the autoencoder has {} latent channels, the diffusion model {}",
            ae.config.latent_channels,
            chw[0]
        );
    }
    let sf = net
        .config
        .scaling_factor
        .or(ae.config.scaling_factor)
        .unwrap_or_else(|| {
            eprintln!("note: no scaling factor in either config; using 1.0");
            1.0
        });
    eprintln!(
        "model: {} ({}, {:.1}M params), latent {}x{}x{}, {} x{} steps, cfg {}, seed {}, {} on {}",
        net.config
            .model_name
            .clone()
            .unwrap_or_else(|| s.model.display().to_string()),
        net.config.family.name(),
        net.num_params() as f64 / 1e6,
        chw[0],
        chw[1],
        chw[2],
        s.sampler.name(),
        s.steps,
        s.cfg,
        s.seed,
        precision_name(s.precision),
        s.backend
    );
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("sampling [{bar:30}] {percent}% {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let settings = SampleSettings {
        sampler: s.sampler,
        steps: s.steps,
        cfg: s.cfg,
        seed: s.seed,
        labels: s.classes.clone(),
        null_class: net.config.num_classes() as i64,
    };
    let family = net.config.family;
    let mut progress = |f: f32| bar.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
    let latent = generate(&mut net, family, chw, &settings, &mut progress)?;
    bar.finish_and_clear();
    if latent.iter().any(|v| !v.is_finite()) {
        bail!("sampling produced NaN/inf values; try --precision f32 or fewer guidance");
    }
    let n = s.classes.len();
    let z: Vec<f32> = latent.iter().map(|v| v / sf as f32).collect();
    let z = Tensor::<4>::from_data(TensorData::new(z, [n, chw[0], chw[1], chw[2]]), &device);
    let img = ae.decode(z)?;
    let [_, _, h, w] = img.dims();
    let px = img
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the image back: {e:?}"))?;
    write_grid(&px, n, h, w, s.cols, &s.to_json(), output)?;
    println!(
        "{} image(s) {w}x{h} -> {} (settings in its `{META_KEY}` text chunk)",
        n,
        output.display()
    );
    Ok(())
}

fn load_autoencoder(
    s: &Settings,
    net: &DiffusionModel,
    device: &dcae::burn::tensor::Device,
) -> Result<DcAe> {
    if let Some(dir) = &s.autoencoder {
        return DcAe::load(dir, device, s.precision)
            .with_context(|| format!("loading autoencoder {}", dir.display()));
    }
    let weights = s.model.join("model.safetensors");
    if DiffusionModel::file_has_autoencoder(&weights)? {
        let cfg = dcae::diffusion::autoencoder_preset(&net.config).context(
            "model.safetensors holds `autoencoder.` weights but the config names no DC-AE preset",
        )??;
        return dcae::diffusion::bundled_autoencoder(cfg, &weights, device, s.precision)
            .with_context(|| format!("loading the autoencoder in {}", weights.display()));
    }
    let candidates: Vec<PathBuf> = net
        .config
        .autoencoder
        .iter()
        .map(|a| s.model.join(a))
        .chain([s.model.join("autoencoder")])
        .filter(|p| p.join("config.json").is_file())
        .collect();
    match candidates.first() {
        Some(dir) => DcAe::load(dir, device, s.precision)
            .with_context(|| format!("loading autoencoder {}", dir.display())),
        None => bail!(
            "{} has no autoencoder weights; give --autoencoder <DC-AE folder>",
            s.model.display()
        ),
    }
}

/// JSON with every non-ASCII character escaped, so it is valid Latin-1 for a tEXt chunk.
fn ascii_json(v: &Value) -> String {
    let mut out = String::new();
    for ch in v.to_string().chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            let mut buf = [0u16; 2];
            for u in ch.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

fn write_grid(
    px: &[f32],
    n: usize,
    h: usize,
    w: usize,
    cols: usize,
    meta: &Value,
    path: &Path,
) -> Result<()> {
    let rows = n.div_ceil(cols);
    let (gw, gh) = (cols * w, rows * h);
    let mut rgb = vec![255u8; gw * gh * 3];
    for i in 0..n {
        let (ox, oy) = ((i % cols) * w, (i / cols) * h);
        let item = &px[i * 3 * h * w..(i + 1) * 3 * h * w];
        for y in 0..h {
            for x in 0..w {
                let o = ((oy + y) * gw + ox + x) * 3;
                for c in 0..3 {
                    rgb[o + c] = quantize(item[c * h * w + y * w + x]);
                }
            }
        }
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, gw as u32, gh as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.add_text_chunk(META_KEY.to_string(), ascii_json(meta))
            .context("adding PNG text")?;
        let mut wr = enc.write_header().context("writing PNG header")?;
        wr.write_image_data(&rgb).context("writing PNG data")?;
        wr.finish().context("finishing PNG")?;
    }
    write_atomic(path, &bytes)?;
    Ok(())
}

fn read_settings(png_path: &Path) -> Result<Settings> {
    let bytes =
        std::fs::read(png_path).with_context(|| format!("reading {}", png_path.display()))?;
    let dec = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = dec
        .read_info()
        .with_context(|| format!("{} is not a readable PNG", png_path.display()))?;
    let text = reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .find(|t| t.keyword == META_KEY)
        .map(|t| t.text.clone())
        .with_context(|| {
            format!(
                "{} has no `{META_KEY}` text chunk (not written by dcae sample)",
                png_path.display()
            )
        })?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: settings are not valid JSON", png_path.display()))?;
    Settings::from_json(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_table_has_1000_lines() {
        assert_eq!(class_table().len(), 1000);
    }

    #[test]
    fn class_lookup() {
        let t = class_table();
        assert_eq!(resolve_class("207", &t).unwrap(), 207);
        assert!(resolve_class("1000", &t).is_err());
        assert!(resolve_class("-1", &t).is_err());
        assert!(resolve_class("zzzz-not-a-class", &t).is_err());
    }
}

//! `dcae`: encode, decode, reconstruct and benchmark DC-AE models from the command line.

mod bench;
mod bench_diffusion;
mod bench_text;
mod download;
mod generate;
mod sample;
mod train;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use dcae::autoencoder::{TileSpec, Tiling};
use dcae::burn::tensor::{Tensor, TensorData};
use dcae::io::image::{Fit, RgbF32, fit_plan, fit_to_multiple, load_image};
use dcae::io::tensors::{HostTensor, TensorFile, write_atomic, write_tensors};
use dcae::io::{folder_files, refuse_overwrite};
use dcae::pipeline::{ReconstructOptions, reconstruct as reconstruct_image};
use dcae::{Backend, Cancel, DcAe, Precision};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "dcae",
    version,
    about = "DC-AE (Deep Compression Autoencoder) in Rust"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Run jobs even when their memory estimate exceeds what the machine has (the budget is
    /// `DCAE_MEMORY_LIMIT`, e.g. 16G, else the available memory).
    #[arg(long, global = true)]
    no_limits: bool,
    /// Make damaged image data (a truncated JPEG or PNG) an error instead of a note.
    #[arg(long, global = true)]
    strict: bool,
}

/// A count parsed from the command line, with its valid range in the error.
pub fn in_range<const LO: usize, const HI: usize>(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if (LO..=HI).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a whole number in {LO}..={HI}")),
    }
}

/// Options every model command takes.
#[derive(Args, Clone)]
struct Common {
    /// Model folder: config.json + model.safetensors or diffusion_pytorch_model.safetensors.
    #[arg(long)]
    model: PathBuf,
    /// Compute backend.
    #[arg(long, default_value = "wgpu")]
    backend: Backend,
    /// Weights and activations precision (attention and norm statistics stay f32).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Tile size in pixels for large images: `auto` (tile above 1 Mpx), 0 (never) or a size.
    #[arg(long, default_value = "auto")]
    tile: TileArg,
}

#[derive(Clone, Copy)]
enum TileArg {
    Auto,
    Off,
    Px(usize),
}

impl std::str::FromStr for TileArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(TileArg::Auto),
            "0" | "off" => Ok(TileArg::Off),
            n => n
                .parse::<usize>()
                .map(TileArg::Px)
                .map_err(|_| format!("--tile takes auto, 0 or a size in pixels, not `{n}`")),
        }
    }
}

impl TileArg {
    fn tiling(self) -> Tiling {
        match self {
            TileArg::Auto => Tiling::Auto,
            TileArg::Off => Tiling::Never,
            TileArg::Px(px) => Tiling::With(TileSpec::with_tile(px)),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Train an autoencoder (the paper's three phases) from a run file.
    Train {
        /// Run file (TOML): model, data, perceptual weights, schedule, phase1/2/3 settings.
        #[arg(long)]
        config: PathBuf,
        /// Continue the run from `<out_dir>/checkpoint.safetensors` (same step, optimizer, EMA).
        #[arg(long)]
        resume: bool,
        /// Only export the latest checkpoint (EMA weights) to `<out_dir>/model`, no training.
        #[arg(long, conflicts_with = "resume")]
        export: bool,
    },
    /// PSNR / SSIM (/ LPIPS) of a model's reconstructions per image, with a bicubic baseline
    /// holding as many values as the latent; last line `mean psnr=<dB> ssim=<value>`.
    Eval {
        /// Model folder (config.json + weights).
        #[arg(long)]
        model: PathBuf,
        /// An image folder (recursive) or one image.
        folder: PathBuf,
        #[arg(long, default_value = "cpu")]
        backend: Backend,
        /// LPIPS VGG16 weight files (.pth / .safetensors) to add an LPIPS column.
        #[arg(long, num_args = 1..)]
        lpips: Vec<PathBuf>,
        /// Downscale images whose longer side exceeds this first (0 = full size).
        #[arg(long, default_value = "0")]
        max_side: usize,
    },
    /// Encode images (or an `image` tensor) to a latent safetensors file.
    Encode {
        #[command(flatten)]
        common: Common,
        /// Image files (PNG, JPEG, WebP, ...) or one .safetensors holding `image` [N,3,H,W] in [-1,1].
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output .safetensors (key `latent`).
        #[arg(short, long)]
        output: PathBuf,
        /// Multiply the latent by the config's scaling factor (what diffusion models consume).
        #[arg(long)]
        scaled: bool,
        /// How sizes that are not multiples of the compression factor are fitted.
        #[arg(long, default_value = "crop")]
        fit: Fit,
    },
    /// Decode a latent safetensors file (key `latent`) to images or a tensor.
    Decode {
        #[command(flatten)]
        common: Common,
        /// Input .safetensors with key `latent` [N,C,h,w].
        input: PathBuf,
        /// Output .safetensors (key `reconstruction`) or .png (one file per batch item).
        #[arg(short, long)]
        output: PathBuf,
        /// The latent is scaled (divide by the scaling factor first). Files written by
        /// `dcae encode --scaled` say so themselves.
        #[arg(long)]
        scaled: bool,
    },
    /// Encode and decode one image, write the reconstruction and print PSNR / SSIM.
    Reconstruct {
        #[command(flatten)]
        common: Common,
        image: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, default_value = "crop")]
        fit: Fit,
    },
    /// Time encode and decode per image size and report peak memory, as a table.
    Bench(bench::BenchArgs),
    /// Class-conditional sampling with a UViT / DiT / USiT model, decoded to a PNG grid.
    Sample(sample::SampleArgs),
    /// Text-to-image with a Sana pipeline (folder or repo id), written as a PNG.
    Generate(generate::GenerateArgs),
    /// Download an official checkpoint (or any DC-AE repo) from the Hugging Face hub into its
    /// cache and print the model folder.
    Download(download::DownloadArgs),
    /// Show the device a backend picks and which precisions it supports.
    Info {
        #[arg(long, default_value = "wgpu")]
        backend: Backend,
    },
    /// Check this machine against reference fixtures: every case folder under DIR (config.json,
    /// weights, input.safetensors, expected.safetensors) is encoded and decoded on the backend
    /// and compared key by key with the reference's numbers (f32: max|err| <= 5e-4 * max(1,
    /// max|ref|), rel-L2 <= 1e-4; bf16/f16: latent and reconstruction, 0.25 / 0.1). One line
    /// per case; exit 1 when any key fails.
    Conformance {
        /// A fixture folder, e.g. ../shared/fixtures/dcae.
        dir: PathBuf,
        #[arg(long, default_value = "wgpu")]
        backend: Backend,
        #[arg(long, default_value = "f32")]
        precision: Precision,
    },
}

fn main() {
    // Before any thread starts: large tensors from the heap, not one mmap each.
    dcae::alloc::tune();
    let cli = Cli::parse();
    dcae::limits::set_enforced(!cli.no_limits);
    dcae::io::image::set_strict(cli.strict);
    let result = match cli.cmd {
        Cmd::Encode {
            common,
            inputs,
            output,
            scaled,
            fit,
        } => encode(&common, &inputs, &output, scaled, fit),
        Cmd::Decode {
            common,
            input,
            output,
            scaled,
        } => decode(&common, &input, &output, scaled),
        Cmd::Reconstruct {
            common,
            image,
            output,
            fit,
        } => reconstruct(&common, &image, &output, fit),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::Sample(args) => sample::run(&args),
        Cmd::Generate(args) => generate::run(&args),
        Cmd::Info { backend } => info(backend),
        Cmd::Conformance {
            dir,
            backend,
            precision,
        } => conformance(&dir, backend, precision),
        Cmd::Download(args) => download::run(&args),
        Cmd::Train {
            config,
            resume,
            export,
        } => train::run_train(&config, resume, export),
        Cmd::Eval {
            model,
            folder,
            backend,
            lpips,
            max_side,
        } => train::run_eval(&model, &folder, backend, &lpips, max_side),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load_model(c: &Common) -> Result<DcAe> {
    let spinner = spinner(format!("loading {} on {}", c.model.display(), c.backend));
    let device = c.backend.device()?;
    let model = DcAe::load(&c.model, &device, c.precision)
        .with_context(|| format!("loading model {}", c.model.display()))?;
    spinner.finish_and_clear();
    eprintln!(
        "model: f{} c{}, {:.1}M params, {} on {}",
        model.factor(),
        model.config.latent_channels,
        model.num_params() as f64 / 1e6,
        c.precision.name(),
        c.backend
    );
    Ok(model)
}

/// A cancel token set by the first Ctrl-C (or SIGTERM); a second one exits at once (130).
fn cancel_on_signals() -> Result<Cancel> {
    let cancel = Cancel::new();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, cancel.flag())
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, cancel.flag()).context("installing the signal handler")?;
    }
    Ok(cancel)
}

/// A tile progress sink drawing on `pb`.
fn tile_progress(pb: &ProgressBar) -> impl FnMut(&str, u64, u64) + '_ {
    |_, done, total| {
        pb.set_length(total);
        pb.set_position(done);
    }
}

fn spinner(msg: String) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tiles, {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

fn to_tensor(t: &HostTensor, device: &dcae::burn::tensor::Device) -> Tensor<4> {
    let s = &t.shape;
    Tensor::from_data(
        TensorData::new(t.data.clone(), [s[0], s[1], s[2], s[3]]),
        device,
    )
}

/// What a non-finite model output means for the user.
const NON_FINITE: &str = "the model produced NaN/inf values; with --precision f16 try bf16 or f32, otherwise the weights may be corrupt";

fn to_host(t: Tensor<4>) -> Result<HostTensor> {
    let t = dcae::pipeline::reconstruct::host(t, "the result")?;
    if t.data.iter().any(|v| !v.is_finite()) {
        bail!(NON_FINITE);
    }
    Ok(t)
}

/// Images (fitted) stacked into one [N,3,H,W] batch plus their original sizes.
fn load_images(paths: &[PathBuf], f: usize, fit: Fit) -> Result<(HostTensor, Vec<(usize, usize)>)> {
    let mut imgs: Vec<RgbF32> = Vec::new();
    let mut orig = Vec::new();
    for p in paths {
        let (img, notes) = load_image(p)?;
        for n in notes {
            eprintln!("note: {}: {n}", p.display());
        }
        let (img, info) = fit_to_multiple(&img, f, fit).with_context(|| p.display().to_string())?;
        if let Some(rule) = info.rule {
            eprintln!("note: {}: {rule}", p.display());
        }
        orig.push(match fit {
            Fit::Pad => info.original,
            Fit::Crop => info.fitted,
        });
        if let Some(first) = imgs.first()
            && (first.width, first.height) != (img.width, img.height)
        {
            bail!(
                "{} is {}x{} after fitting but {} is {}x{}; a batch needs one size: encode them in separate runs",
                p.display(),
                img.width,
                img.height,
                paths[0].display(),
                first.width,
                first.height
            );
        }
        imgs.push(img);
    }
    let (w, h) = (imgs[0].width, imgs[0].height);
    let data = imgs.into_iter().flat_map(|i| i.data).collect();
    Ok((
        HostTensor {
            shape: vec![paths.len(), 3, h, w],
            data,
        },
        orig,
    ))
}

fn is_ext(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// The files an output must not overwrite: the inputs and every file of the model folder.
fn protected(inputs: &[PathBuf], model: &Path) -> Vec<PathBuf> {
    let mut v = inputs.to_vec();
    v.extend(folder_files(model));
    v
}

fn encode(c: &Common, inputs: &[PathBuf], output: &Path, scaled: bool, fit: Fit) -> Result<()> {
    if !is_ext(output, "safetensors") {
        bail!("output {} must end in .safetensors", output.display());
    }
    refuse_overwrite(output, &protected(inputs, &c.model))?;
    let model = load_model(c)?;
    let f = model.factor();
    let (image, orig) = if inputs.len() == 1 && is_ext(&inputs[0], "safetensors") {
        let t = TensorFile::open_kind(&inputs[0], "image tensor file")?.tensor("image")?;
        if t.data.iter().any(|v| !v.is_finite()) {
            bail!(
                "{}: `image` holds NaN or infinite values",
                inputs[0].display()
            );
        }
        let (lo, hi) = t
            .data
            .iter()
            .fold((0f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
        if lo < -1.001 || hi > 1.001 {
            eprintln!(
                "note: {}: `image` values span [{lo}, {hi}]; the model expects images in [-1, 1]",
                inputs[0].display()
            );
        }
        if t.shape.len() != 4 || t.shape[1] != 3 {
            bail!(
                "{}: `image` has shape {:?}, expected [N, 3, H, W]",
                inputs[0].display(),
                t.shape
            );
        }
        let (h, w) = (t.shape[2], t.shape[3]);
        if !h.is_multiple_of(f) || !w.is_multiple_of(f) || h == 0 || w == 0 {
            bail!(
                "{}: `image` is {w}x{h}; tensor inputs must already be multiples of {f}",
                inputs[0].display()
            );
        }
        let n = t.shape[0];
        (t, vec![(w, h); n])
    } else {
        load_images(inputs, f, fit)?
    };
    let (h, w) = (image.shape[2], image.shape[3]);
    let x = to_tensor(&image, &model.device);
    let spec = c.tile.tiling().spec(h, w);
    let pb = bar(1, "encode");
    let z = model.encode_tiled(x, spec, &mut tile_progress(&pb), &Cancel::new())?;
    pb.finish_and_clear();
    let z = if scaled {
        let s = model
            .config
            .scaling_factor
            .context("--scaled: this model's config has no scaling_factor")?;
        z * s
    } else {
        z
    };
    let z = to_host(z)?;
    let mut meta = HashMap::new();
    meta.insert("dcae.scaled".to_string(), scaled.to_string());
    meta.insert(
        "dcae.original_sizes".to_string(),
        serde_json::to_string(&orig).unwrap_or_default(),
    );
    write_tensors(output, &[("latent", &z)], Some(meta))?;
    println!(
        "latent {:?} (unscaled{}) -> {}",
        z.shape,
        if scaled {
            "; scaled by the config's factor"
        } else {
            ""
        },
        output.display()
    );
    Ok(())
}

/// The `dcae encode` metadata: whether the latent is scaled, and the images' original sizes.
fn latent_metadata(file: &TensorFile) -> (bool, Option<Vec<(usize, usize)>>) {
    let m = file.metadata();
    let scaled = m.get("dcae.scaled").is_some_and(|s| s == "true");
    let sizes = m
        .get("dcae.original_sizes")
        .and_then(|s| serde_json::from_str(s).ok());
    (scaled, sizes)
}

fn decode(c: &Common, input: &Path, output: &Path, scaled: bool) -> Result<()> {
    let png = is_ext(output, "png");
    if !png && !is_ext(output, "safetensors") {
        bail!(
            "output {} must end in .png or .safetensors",
            output.display()
        );
    }
    let file = TensorFile::open_kind(input, "latent file")?;
    let t = file.tensor("latent")?;
    if t.shape.len() != 4 {
        bail!(
            "{}: `latent` has shape {:?}, expected [N, C, h, w]",
            input.display(),
            t.shape
        );
    }
    let (meta_scaled, sizes) = latent_metadata(&file);
    let protect = protected(&[input.to_path_buf()], &c.model);
    let n = t.shape[0];
    if png && n > 1 {
        for i in 0..n {
            refuse_overwrite(&numbered(output, i), &protect)?;
        }
    } else {
        refuse_overwrite(output, &protect)?;
    }
    let model = load_model(c)?;
    let f = model.factor();
    let z = to_tensor(&t, &model.device);
    let z = if scaled || meta_scaled {
        let s = model
            .config
            .scaling_factor
            .context("the latent is scaled but this model's config has no scaling_factor")?;
        z / s
    } else {
        z
    };
    let spec = c.tile.tiling().spec(t.shape[2] * f, t.shape[3] * f);
    let pb = bar(1, "decode");
    let y = model.decode_tiled(z, spec, &mut tile_progress(&pb), &Cancel::new())?;
    pb.finish_and_clear();
    let y = to_host(y)?;
    if !png {
        write_tensors(output, &[("reconstruction", &y)], None)?;
        println!("reconstruction {:?} -> {}", y.shape, output.display());
        return Ok(());
    }
    let n = y.shape[0];
    for (i, img) in split_batch(&y).into_iter().enumerate() {
        let img = match sizes.as_ref().and_then(|s| s.get(i)) {
            Some(&(w, h)) if w <= img.width && h <= img.height => img.crop(0, 0, w, h),
            _ => img,
        };
        let path = if n == 1 {
            output.to_path_buf()
        } else {
            numbered(output, i)
        };
        save_png(&img, &path)?;
        println!("{}x{} -> {}", img.width, img.height, path.display());
    }
    Ok(())
}

fn numbered(p: &Path, i: usize) -> PathBuf {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.with_file_name(format!("{stem}-{i}.png"))
}

fn split_batch(y: &HostTensor) -> Vec<RgbF32> {
    let (n, h, w) = (y.shape[0], y.shape[2], y.shape[3]);
    let per = 3 * h * w;
    (0..n)
        .map(|i| RgbF32 {
            width: w,
            height: h,
            data: y.data[i * per..(i + 1) * per].to_vec(),
        })
        .collect()
}

fn save_png(img: &RgbF32, path: &Path) -> Result<()> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.to_rgb8()
        .write_to(&mut buf, image::ImageFormat::Png)
        .context("encoding PNG")?;
    write_atomic(path, buf.get_ref())?;
    Ok(())
}

fn reconstruct(c: &Common, image: &Path, output: &Path, fit: Fit) -> Result<()> {
    if !is_ext(output, "png") {
        bail!("output {} must end in .png", output.display());
    }
    refuse_overwrite(output, &protected(&[image.to_path_buf()], &c.model))?;
    let model = load_model(c)?;
    let (img, notes) = load_image(image)?;
    for n in notes {
        eprintln!("note: {}: {n}", image.display());
    }
    let plan = fit_plan(img.width, img.height, model.factor(), fit)
        .with_context(|| image.display().to_string())?;
    if let Some(rule) = &plan.rule {
        eprintln!("note: {}: {rule}", image.display());
    }
    let opts = ReconstructOptions {
        fit,
        tiling: c.tile.tiling(),
    };
    let pb = bar(1, "encode/decode");
    let r = reconstruct_image(&model, &img, &opts, &mut tile_progress(&pb), &Cancel::new())
        .map_err(|e| match e {
            dcae::Error::NonFinite(_) => anyhow::anyhow!(NON_FINITE),
            e => e.into(),
        })?;
    pb.finish_and_clear();
    save_png(&r.output, output)?;
    let (ow, oh) = (r.original.width, r.original.height);
    let [zc, zh, zw] = [r.latent.shape[0], r.latent.shape[1], r.latent.shape[2]];
    println!(
        "{}x{} -> latent {}x{}x{} ({} values, {:.1}x fewer than the 8-bit image) -> {}",
        ow,
        oh,
        zc,
        zh,
        zw,
        zc * zh * zw,
        (3 * ow * oh) as f64 / (zc * zh * zw) as f64,
        output.display()
    );
    println!(
        "psnr={:.2} dB ssim={} time={:.2}s{}",
        r.psnr,
        r.ssim
            .map_or("n/a (image < 11 px)".into(), |s| format!("{s:.4}")),
        r.seconds,
        match r.tiles {
            Some(_) => format!(
                " (tiled, {} px tiles)",
                opts.tiling
                    .spec(r.fit.fitted.1, r.fit.fitted.0)
                    .map_or(0, |s| s.tile_px)
            ),
            None => String::new(),
        }
    );
    Ok(())
}

fn info(backend: Backend) -> Result<()> {
    let device = backend.device()?;
    println!("backend {backend}: {device:?}");
    for p in [Precision::F32, Precision::Bf16, Precision::F16] {
        let ok = device.supports_dtype(p.dtype());
        println!(
            "  --precision {}: {}",
            p.name(),
            if ok { "supported" } else { "not supported" }
        );
    }
    Ok(())
}

/// `dcae conformance DIR`: the fixture suite on this machine's backend.
fn conformance(dir: &Path, backend: Backend, precision: Precision) -> Result<()> {
    use dcae::pipeline::conformance::{
        F32_TOL, HALF_KEYS, HALF_TOL, case_dirs, check_case, summary,
    };
    let cases = case_dirs(dir);
    if cases.is_empty() {
        bail!(
            "no fixture case (a folder with config.json) under {}",
            dir.display()
        );
    }
    let device = backend.device()?;
    let (tol, only) = match precision {
        Precision::F32 => (F32_TOL, &[][..]),
        _ => (HALF_TOL, HALF_KEYS),
    };
    let mut failing = 0;
    for case in &cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        match check_case(case, &device, precision, tol, only) {
            Ok(r) => {
                println!(
                    "{}",
                    summary(&format!("{backend}/{precision:?}"), &name, &r)
                );
                for f in &r.failures {
                    println!("  {f}");
                }
                failing += usize::from(!r.failures.is_empty());
            }
            Err(e) => {
                println!("{backend}/{precision:?} {name}: could not run: {e}");
                failing += 1;
            }
        }
    }
    if failing > 0 {
        bail!(
            "{failing} of {} cases failed on {backend}/{precision:?}",
            cases.len()
        );
    }
    println!("{} cases pass on {backend}/{precision:?}", cases.len());
    Ok(())
}

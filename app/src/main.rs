//! `dcae-app [IMAGE]...`: the workbench (Reconstruct and Generate tabs).

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Parser;
use dcae_app::settings::{BackendChoice, Tab};
use dcae_app::{Startup, Workbench};

#[derive(Parser, Debug)]
#[command(
    name = "dcae-app",
    version,
    about = "Compare DC-AE reconstructions side by side"
)]
struct Args {
    /// Images to open (PNG, JPEG, WebP, ...). Without any, a sample photo opens.
    images: Vec<PathBuf>,
    /// Extra model folders (config.json + safetensors), besides the embedded defaults.
    #[arg(long = "model")]
    models: Vec<PathBuf>,
    /// Generation model folders: class-conditional (config.json + model.safetensors) or a
    /// Sana pipeline (model_index.json).
    #[arg(long = "gen-model")]
    gen_models: Vec<PathBuf>,
    /// Where generated images are kept (default: gallery/ in the app's data folder).
    #[arg(long)]
    gallery: Option<PathBuf>,
    /// Tab to open on: reconstruct or generate.
    #[arg(long, value_parser = parse_tab)]
    tab: Option<Tab>,
    /// Generate once with the first generation model's defaults as soon as it has loaded
    /// (demos, screenshots).
    #[arg(long)]
    generate: bool,
    /// Compute backend: auto, cpu or wgpu.
    #[arg(long, value_parser = parse_backend)]
    backend: Option<BackendChoice>,
    /// Do not load the embedded default models (`assets/models`: f32c32, f64c128 and f128c512).
    #[arg(long)]
    no_default_model: bool,
    /// Start in presenter mode (fullscreen, large fonts, models pre-warmed).
    #[arg(long)]
    presenter: bool,
    /// Save a screenshot once the first image's reconstructions are done, then quit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Ignore saved settings.
    #[arg(long)]
    fresh: bool,
    /// Window size, e.g. 1600x1000.
    #[arg(long, default_value = "1600x1000", value_parser = parse_size)]
    size: (f32, f32),
}

fn parse_backend(s: &str) -> Result<BackendChoice, String> {
    match s {
        "auto" => Ok(BackendChoice::Auto),
        "cpu" => Ok(BackendChoice::Cpu),
        "wgpu" | "gpu" => Ok(BackendChoice::Wgpu),
        o => Err(format!("unknown backend `{o}` (auto, cpu, wgpu)")),
    }
}

fn parse_tab(s: &str) -> Result<Tab, String> {
    match s {
        "reconstruct" => Ok(Tab::Reconstruct),
        "generate" => Ok(Tab::Generate),
        o => Err(format!("unknown tab `{o}` (reconstruct, generate)")),
    }
}

fn parse_size(s: &str) -> Result<(f32, f32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WIDTHxHEIGHT")?;
    let p = |v: &str| v.parse::<f32>().map_err(|e| e.to_string());
    Ok((p(w)?, p(h)?))
}

fn main() -> anyhow::Result<()> {
    // Before any thread starts: large tensors from the heap, not one mmap each.
    dcae::alloc::tune();
    let args = Args::parse();
    for p in &args.images {
        if !p.exists() {
            anyhow::bail!("{}: no such file", p.display());
        }
    }
    let startup = Startup {
        images: args.images,
        models: args.models,
        no_default_model: args.no_default_model,
        no_samples: false,
        backend: args.backend,
        presenter: args.presenter,
        screenshot: args.screenshot,
        fresh_settings: args.fresh,
        hide_timings: false,
        gen_models: args.gen_models,
        gallery: args.gallery,
        tab: args.tab,
        generate_on_load: args.generate,
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("DC-AE workbench")
            .with_inner_size([args.size.0, args.size.1])
            .with_drag_and_drop(true),
        wgpu_options: eframe::egui_wgpu::WgpuConfiguration {
            wgpu_setup: dcae_app::gpu::window_setup(),
            ..Default::default()
        },
        ..Default::default()
    };
    eframe::run_native(
        "dcae-workbench",
        options,
        Box::new(move |cc| Ok(Box::new(Workbench::new(cc, startup)?))),
    )
    .map_err(|e| anyhow!("{e}"))
}

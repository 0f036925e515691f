//! `dcae download`: official checkpoints (or any files of any repo) from the Hugging Face hub
//! into its cache.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use dcae::Cancel;
use dcae::hub::{self, HubOptions};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct DownloadArgs {
    /// An official checkpoint name (see --list), e.g. dc-ae-f32c32-sana-1.1, or a Hugging Face
    /// repo id org/name.
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// List the official checkpoints, their repos and which are in the cache.
    #[arg(long, conflicts_with = "name")]
    list: bool,
    /// Hub URL (default: $HF_ENDPOINT, else https://huggingface.co).
    #[arg(long)]
    endpoint: Option<String>,
    /// Hub cache folder (default: $HF_HUB_CACHE, else $HF_HOME/hub, else
    /// ~/.cache/huggingface/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Branch, tag or commit hash.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Fetch these files of the repo instead of a DC-AE checkpoint (repeatable; paths inside
    /// the repo such as `transformer/config.json`; an `*.index.json` brings its shards).
    #[arg(long = "file", conflicts_with = "list")]
    files: Vec<String>,
    /// Download a diffusers text-to-image pipeline (model_index.json + its components); the
    /// official Sana repos are recognised without it.
    #[arg(long, conflicts_with_all = ["list", "files"])]
    pipeline: bool,
    /// Pipeline weight variant (bf16, fp16); only that variant's files are fetched.
    #[arg(long, conflicts_with_all = ["list", "files"])]
    variant: Option<String>,
}

pub fn run(args: &DownloadArgs) -> Result<()> {
    let mut opts = HubOptions::from_env()?;
    if let Some(e) = &args.endpoint {
        opts.endpoint = e.trim_end_matches('/').to_string();
    }
    if let Some(c) = &args.cache_dir {
        opts.cache_dir = c.clone();
    }
    opts.revision = args.revision.clone();
    if args.list {
        return list(&opts);
    }
    let name = args
        .name
        .as_deref()
        .context("name a checkpoint or repo, or pass --list")?;
    // First Ctrl-C (or SIGTERM): stop at the next chunk and delete the partial file. A second
    // one exits at once.
    let cancel: Cancel = crate::cancel_on_signals()?;
    let repo = hub::resolve_repo(name)?;
    eprintln!(
        "{repo} @ {} from {} into {}",
        opts.revision,
        opts.endpoint,
        opts.cache_dir.display()
    );
    let pb = ProgressBar::hidden();
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut current = String::new();
    let mut progress = |file: &str, done: u64, total: u64| {
        if file != current {
            if !current.is_empty() {
                pb.println(format!("  {current} done"));
            }
            current = file.to_string();
            pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            pb.reset();
            pb.set_length(total);
            pb.set_message(file.to_string());
        }
        pb.set_position(done);
    };
    let pipeline =
        args.pipeline || args.variant.is_some() || dcae::diffusion::sana::preset(&repo).is_some();
    let result = if pipeline {
        hub::download_pipeline(
            &repo,
            &opts,
            args.variant.as_deref(),
            &mut progress,
            &cancel,
        )
    } else if args.files.is_empty() {
        hub::download_model(&repo, &opts, &mut progress, &cancel)
    } else {
        let files: Vec<&str> = args.files.iter().map(String::as_str).collect();
        hub::download_files(&repo, &opts, &files, &mut progress, &cancel)
    };
    pb.finish_and_clear();
    match result {
        Ok(dir) => {
            println!("{}", dir.display());
            Ok(())
        }
        Err(dcae::Error::Cancelled) => {
            eprintln!("download cancelled; no partial file was kept");
            std::process::exit(130);
        }
        Err(e) => Err(e.into()),
    }
}

fn list(opts: &HubOptions) -> Result<()> {
    let width = hub::official_repos()
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0);
    for r in hub::official_repos() {
        let cached = hub::cached_model(r.repo, opts)?
            .map(|p| format!("  (cached: {})", p.display()))
            .unwrap_or_default();
        println!("{:width$}  {}{cached}", r.name, r.repo);
    }
    println!();
    println!(
        "Sana text-to-image pipelines (`dcae download <repo> [--variant bf16]`, then \
         `dcae generate --model <repo>`):"
    );
    for p in dcae::diffusion::sana::presets() {
        let kind = if p.sprint { "Sana-Sprint, SCM" } else { "Sana" };
        let cached = hub::cached_pipeline(p.repo, opts, None)?
            .map(|d| format!("  (cached: {})", d.display()))
            .unwrap_or_default();
        println!("  {}  ({kind}, {} px){cached}", p.repo, p.bin_side);
    }
    Ok(())
}

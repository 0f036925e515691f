//! Downloads from the Hugging Face hub into the standard Hugging Face cache, so the Python
//! tools and this crate share one copy: official DC-AE checkpoints ([`download_model`]) and
//! any list of files of any repo, subfolders and sharded weights included
//! ([`download_files`]).
//!
//! The cache layout is the one `huggingface_hub` uses (`<cache>/models--org--name/{blobs/<etag>,
//! snapshots/<commit>/<path>, refs/<revision>}`, [`cache`]); files already in the cache are
//! returned without any request. The bytes are fetched here ([`client`]) rather than by
//! `hf-hub`'s own downloader, because that one can neither be cancelled mid-file nor checks
//! what it received: each file streams in chunks (the [`Cancel`] token is checked between
//! chunks), is hashed while it streams and compared with the checksum the hub sends
//! ([`checksum`]: `X-Linked-Etag` = sha256 of an LFS file, `ETag` = git blob sha1 of a small
//! file), and only a verified file enters `blobs/`. A cancelled or failed download leaves
//! nothing behind; every file is fetched and verified before the first one is moved in.

mod cache;
mod checksum;
mod client;
pub mod plan;
pub mod registry;

use std::path::{Path, PathBuf};

pub use checksum::{git_blob_sha1, sha256_hex};
pub use plan::{
    DownloadPlan, GenerationKind, GenerationRepo, RemoteFile, RepoKind, generation_repos,
    plan_download,
};
pub use registry::{
    OFFICIAL_REPOS, OfficialRepo, RepoFormat, find_official, official_repos, resolve_repo,
};

use cache::RepoCache;
use client::{Client, Remote, fetch_blob};
use registry::{check_repo_path, check_revision};

use crate::autoencoder::{AeFolder, DcAeConfig, WEIGHT_FILES};
use crate::diffusion::{DiffusionConfig, DiffusionModel};
use crate::error::{Error, Result};
use crate::task::{Cancel, Progress};
use crate::weights::WeightStore;
use crate::weights::store::index_weight_map;

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and what to download.
#[derive(Clone)]
pub struct HubOptions {
    /// Hub base URL without a trailing slash (`HF_ENDPOINT`, default [`DEFAULT_ENDPOINT`]).
    pub endpoint: String,
    /// The hub cache folder (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Branch, tag or commit hash (default `main`).
    pub revision: String,
    /// Access token for private or gated repos (`HF_TOKEN`, else the `token` file
    /// `huggingface-cli login` writes), sent as `Authorization: Bearer`.
    pub token: Option<String>,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("revision", &self.revision)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (as
/// `huggingface_hub` resolves it).
fn hf_home() -> Result<PathBuf> {
    if let Some(h) = env_nonempty("HF_HOME") {
        return Ok(PathBuf::from(h));
    }
    if let Some(x) = env_nonempty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(x).join("huggingface"));
    }
    dirs::home_dir()
        .map(|h| h.join(".cache").join("huggingface"))
        .ok_or_else(|| {
            Error::Input(
                "cannot find the home folder for the Hugging Face cache; set HF_HUB_CACHE or HF_HOME"
                    .into(),
            )
        })
}

impl HubOptions {
    /// Options from the environment, as `huggingface_hub` reads it: `HF_ENDPOINT`,
    /// `HF_HUB_CACHE` / `HF_HOME`, `HF_TOKEN` (or `$HF_HOME/token`); revision `main`.
    pub fn from_env() -> Result<Self> {
        let endpoint = env_nonempty("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        let cache_dir = match env_nonempty("HF_HUB_CACHE") {
            Some(c) => PathBuf::from(c),
            None => hf_home()?.join("hub"),
        };
        let token = env_nonempty("HF_TOKEN").or_else(|| {
            let path = hf_home().ok()?.join("token");
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            cache_dir,
            revision: "main".into(),
            token,
        })
    }
}

/// Files of `repo` at `opts.revision` as one snapshot folder, fetched into the cache unless
/// all of them (and every shard an index lists) are there already.
///
/// `files` are paths inside the repo (`model_index.json`,
/// `text_encoder/model.safetensors.index.json`); an index json brings the shards its
/// `weight_map` names (paths beside it). Every request after the first is pinned to the
/// commit the first file came from. Each file is validated by what it is: JSON must parse, a
/// safetensors file must have a readable header with at least one tensor. `progress` hears
/// `(path, bytes done, bytes total)`; `cancel` stops at the next 64 KiB chunk with
/// [`Error::Cancelled`].
pub fn download_files(
    repo: &str,
    opts: &HubOptions,
    files: &[&str],
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<PathBuf> {
    let repo_id = resolve_repo(repo)?;
    check_revision(&opts.revision)?;
    if files.is_empty() {
        return Err(Error::Input("no file to download".into()));
    }
    for f in files {
        check_repo_path(f)?;
    }
    let cache = RepoCache::new(&repo_id, opts);
    if let Some(dir) = cached_snapshot(&cache, &opts.revision, files) {
        validate_files(&dir, files)?;
        return Ok(dir);
    }
    cancel.check()?;
    let client = Client::new(&repo_id, opts);
    let first = client
        .head(&opts.revision, files[0])?
        .ok_or_else(|| not_found(&client, &opts.revision, files[0]))?;
    let commit = first.commit.clone();
    let mut remotes = vec![first];
    for f in &files[1..] {
        cancel.check()?;
        let r = client
            .head(&commit, f)?
            .ok_or_else(|| not_found(&client, &commit, f))?;
        remotes.push(r);
    }
    let dir = fetch(&client, &cache, &commit, remotes, progress, cancel)?;
    validate_files(&dir, files)?;
    Ok(dir)
}

/// The snapshot folder of `files` at `opts.revision` when the cache holds all of them
/// (shards of an index included), without any request.
pub fn cached_files(repo: &str, opts: &HubOptions, files: &[&str]) -> Result<Option<PathBuf>> {
    let repo_id = resolve_repo(repo)?;
    check_revision(&opts.revision)?;
    for f in files {
        check_repo_path(f)?;
    }
    Ok(cached_snapshot(
        &RepoCache::new(&repo_id, opts),
        &opts.revision,
        files,
    ))
}

/// Downloads a model folder: a DC-AE checkpoint, or a class-conditional diffusion single file.
/// `repo` is an `org/name` repo id or a short official name such as `dc-ae-f32c32-sana-1.1`.
/// Returns the snapshot folder holding `config.json` and the weights
/// (`diffusion_pytorch_model.safetensors`, else `model.safetensors`), ready for
/// [`DcAe::load`](crate::DcAe::load) or `DiffusionModel::load`; the config and the weights
/// header are validated for what they are.
/// Progress, cancel and caching as [`download_files`].
pub fn download_model(
    repo: &str,
    opts: &HubOptions,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<PathBuf> {
    let repo_id = resolve_repo(repo)?;
    check_revision(&opts.revision)?;
    let cache = RepoCache::new(&repo_id, opts);
    let snapshot = match cached_model_at(&cache, &opts.revision) {
        Some(dir) => dir,
        None => {
            cancel.check()?;
            let client = Client::new(&repo_id, opts);
            let remotes = model_remotes(&client, &repo_id, &opts.revision, cancel)?;
            let commit = remotes[0].commit.clone();
            fetch(&client, &cache, &commit, remotes, progress, cancel)?
        }
    };
    validate_dcae(&snapshot)?;
    Ok(snapshot)
}

/// `config.json` and the weights file of a model repo at `revision` (both at the commit the
/// config came from): an official repo's own weights name, else the first of [`WEIGHT_FILES`]
/// the repo has.
fn model_remotes(
    client: &Client,
    repo_id: &str,
    revision: &str,
    cancel: &Cancel,
) -> Result<Vec<Remote>> {
    let config = client
        .head(revision, "config.json")?
        .ok_or_else(|| Error::Download {
            url: client.url(revision, "config.json"),
            message: "HTTP 404: no config.json in this repo (is it a model folder?)".into(),
        })?;
    let commit = config.commit.clone();
    let candidates: Vec<&str> = match find_official(repo_id) {
        Some(r) => vec![r.format.weights_file()],
        None => WEIGHT_FILES.to_vec(),
    };
    for file in &candidates {
        cancel.check()?;
        if let Some(weights) = client.head(&commit, file)? {
            return Ok(vec![config, weights]);
        }
    }
    Err(Error::Download {
        url: client.url(&commit, candidates[0]),
        message: format!(
            "HTTP 404: the repo has no {} at commit {commit}",
            candidates.join(" or ")
        ),
    })
}

/// The snapshot folder of a DC-AE `repo` at `opts.revision` if the cache holds a complete
/// one (config + weights), without any request.
pub fn cached_model(repo: &str, opts: &HubOptions) -> Result<Option<PathBuf>> {
    let repo = resolve_repo(repo)?;
    check_revision(&opts.revision)?;
    Ok(cached_model_at(
        &RepoCache::new(&repo, opts),
        &opts.revision,
    ))
}

fn cached_model_at(cache: &RepoCache, revision: &str) -> Option<PathBuf> {
    let commit = cache.commit_of(revision)?;
    cache.cached_file(&commit, "config.json")?;
    WEIGHT_FILES
        .iter()
        .find_map(|f| cache.cached_file(&commit, f))?;
    Some(cache.snapshot(&commit))
}

fn cached_snapshot(cache: &RepoCache, revision: &str, files: &[&str]) -> Option<PathBuf> {
    let commit = cache.commit_of(revision)?;
    for f in files {
        let p = cache.cached_file(&commit, f)?;
        if f.ends_with(".index.json") {
            let text = std::fs::read_to_string(&p).ok()?;
            for shard in index_shards(f, &text).ok()? {
                cache.cached_file(&commit, &shard)?;
            }
        }
    }
    Some(cache.snapshot(&commit))
}

fn not_found(client: &Client, revision: &str, file: &str) -> Error {
    Error::Download {
        url: client.url(revision, file),
        message: format!("HTTP 404: the repo has no {file}"),
    }
}

/// The shard paths (inside the repo) a safetensors index at `index_path` names.
fn index_shards(index_path: &str, text: &str) -> Result<Vec<String>> {
    let map = index_weight_map(text, Path::new(index_path))?;
    let dir = index_path.rsplit_once('/').map(|(d, _)| d);
    let mut shards: Vec<String> = Vec::new();
    for file in map.values() {
        let path = match dir {
            Some(d) => format!("{d}/{file}"),
            None => file.clone(),
        };
        check_repo_path(&path)?;
        if !shards.contains(&path) {
            shards.push(path);
        }
    }
    Ok(shards)
}

/// Fetches and verifies every remote (and the shards of index files) at `commit`, then moves
/// them into the cache, links the snapshot and writes the ref, in that order.
fn fetch(
    client: &Client,
    cache: &RepoCache,
    commit: &str,
    mut remotes: Vec<Remote>,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<PathBuf> {
    let blobs = cache.blobs();
    let mut fetched = Vec::new();
    let mut i = 0;
    while i < remotes.len() {
        let tmp = fetch_blob(client, &blobs, commit, &remotes[i], progress, cancel)?;
        if remotes[i].file.ends_with(".index.json") {
            let path = tmp
                .as_ref()
                .map(|t| t.path.clone())
                .unwrap_or_else(|| cache.blob(&remotes[i].etag));
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            for shard in index_shards(&remotes[i].file, &text)? {
                if remotes.iter().any(|r| r.file == shard) {
                    continue;
                }
                cancel.check()?;
                let r = client
                    .head(commit, &shard)?
                    .ok_or_else(|| not_found(client, commit, &shard))?;
                remotes.push(r);
            }
        }
        if let Some(t) = tmp {
            fetched.push((t, remotes[i].etag.clone()));
        }
        i += 1;
    }
    cache.store_blobs(fetched)?;
    for r in &remotes {
        cache.link(commit, r)?;
    }
    cache.write_ref(commit)?;
    Ok(cache.snapshot(commit))
}

/// Each file checked by what it is: JSON parses (an index also lists its shards), a
/// safetensors file has a readable header with tensors.
fn validate_files(dir: &Path, files: &[&str]) -> Result<()> {
    for f in files {
        let p = dir.join(f);
        if f.ends_with(".json") {
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            if f.ends_with(".index.json") {
                index_shards(f, &text)?;
                WeightStore::from_weights(&p, Some(crate::weights::KeyLayout::Diffusers))?;
            } else {
                serde_json::from_str::<serde_json::Value>(&text).map_err(|e| Error::Config {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
            }
        } else if f.ends_with(".safetensors") {
            check_weights_header(&p)?;
        }
    }
    Ok(())
}

fn check_weights_header(path: &Path) -> Result<()> {
    if WeightStore::file_keys(path)?.is_empty() {
        return Err(Error::CorruptWeights {
            path: path.to_path_buf(),
            message: "the file holds no tensors".into(),
        });
    }
    Ok(())
}

/// A downloaded model folder checked by what it is: a DC-AE (`AutoencoderDC` config or a DC-AE
/// model name), or a class-conditional diffusion single file (`{"model_name":
/// "dc-ae-...-uvit-h-in-512px"}` + `diffusion_model.` weights).
fn validate_dcae(dir: &Path) -> Result<()> {
    let folder = AeFolder::find(dir)?;
    check_weights_header(&folder.weights)?;
    match DcAeConfig::from_file(&folder.config) {
        Ok(_) => Ok(()),
        Err(ae_err) => {
            if DiffusionConfig::from_file(&folder.config).is_err() {
                return Err(ae_err);
            }
            if DiffusionModel::file_has_autoencoder(&folder.weights)?
                || WeightStore::file_keys(&folder.weights)?
                    .iter()
                    .any(|k| k.starts_with("diffusion_model."))
            {
                Ok(())
            } else {
                Err(Error::CorruptWeights {
                    path: folder.weights,
                    message: "a diffusion config, but the weights hold no `diffusion_model.` keys"
                        .into(),
                })
            }
        }
    }
}

/// The files of a diffusers Sana pipeline repo for one precision `variant` (`None`: the plain
/// names), in the order they are looked up: per component its config, then the weights —
/// `<stem>.safetensors.index[.<v>].json` (its shards follow) before `<stem>[.<v>].safetensors`.
/// The tokenizer needs `tokenizer.json` only.
fn pipeline_candidates(variant: Option<&str>) -> Vec<(String, Vec<String>)> {
    let weights = |dir: &str, stem: &str| -> Vec<String> {
        match variant {
            Some(v) => vec![
                format!("{dir}/{stem}.safetensors.index.{v}.json"),
                format!("{dir}/{stem}.{v}.safetensors"),
            ],
            None => vec![
                format!("{dir}/{stem}.safetensors.index.json"),
                format!("{dir}/{stem}.safetensors"),
            ],
        }
    };
    vec![
        ("model_index.json".into(), vec!["model_index.json".into()]),
        (
            "scheduler".into(),
            vec!["scheduler/scheduler_config.json".into()],
        ),
        ("tokenizer".into(), vec!["tokenizer/tokenizer.json".into()]),
        (
            "text_encoder config".into(),
            vec!["text_encoder/config.json".into()],
        ),
        ("text_encoder".into(), weights("text_encoder", "model")),
        (
            "transformer config".into(),
            vec!["transformer/config.json".into()],
        ),
        (
            "transformer".into(),
            weights("transformer", "diffusion_pytorch_model"),
        ),
        ("vae config".into(), vec!["vae/config.json".into()]),
        ("vae".into(), weights("vae", "diffusion_pytorch_model")),
    ]
}

/// A precision variant is a plain name (`bf16`, `fp16`): it becomes part of file names.
fn check_variant(variant: Option<&str>) -> Result<()> {
    match variant {
        Some(v) if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Err(Error::Input(format!(
                "variant `{v}`: give a name like bf16 or fp16"
            )))
        }
        _ => Ok(()),
    }
}

/// The file each pipeline component takes at `commit` for `variant` (less `model_index.json`):
/// the first candidate the hub has; a component with none is an error naming it.
fn pipeline_files(
    client: &Client,
    commit: &str,
    variant: Option<&str>,
    cancel: &Cancel,
) -> Result<Vec<String>> {
    let candidates = pipeline_candidates(variant);
    let mut files: Vec<String> = Vec::new();
    for (what, options) in &candidates[1..] {
        cancel.check()?;
        let mut found = None;
        for f in options {
            if client.head(commit, f)?.is_some() {
                found = Some(f.clone());
                break;
            }
        }
        let f = found.ok_or_else(|| Error::Download {
            url: client.url(commit, &options[0]),
            message: format!(
                "HTTP 404: the repo has no {what} ({}) at commit {commit}{}",
                options.join(" or "),
                variant
                    .map(|v| format!("; is there a `{v}` variant?"))
                    .unwrap_or_default()
            ),
        })?;
        files.push(f);
    }
    Ok(files)
}

/// Downloads one variant of a diffusers Sana pipeline repo (`Efficient-Large-Model/
/// Sana_1600M_1024px_diffusers`, ...): `model_index.json`, the scheduler config, the tokenizer,
/// and config + weights of the text encoder, transformer and VAE — the index json and its
/// shards where the repo has one (a stale single file beside it is not fetched), only the
/// variant asked for. Streams with progress, checks every sha256, pins every file to the
/// commit of the first. Returns the snapshot folder.
pub fn download_pipeline(
    repo: &str,
    opts: &HubOptions,
    variant: Option<&str>,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<PathBuf> {
    let repo_id = resolve_repo(repo)?;
    check_revision(&opts.revision)?;
    check_variant(variant)?;
    if let Some(dir) = cached_pipeline_at(&RepoCache::new(&repo_id, opts), &opts.revision, variant)
    {
        return Ok(dir);
    }
    cancel.check()?;
    let client = Client::new(&repo_id, opts);
    let index = client
        .head(&opts.revision, "model_index.json")?
        .ok_or_else(|| Error::Download {
            url: client.url(&opts.revision, "model_index.json"),
            message: "HTTP 404: no model_index.json (not a diffusers pipeline repo)".into(),
        })?;
    let commit = index.commit.clone();
    let files = pipeline_files(&client, &commit, variant, cancel)?;
    let mut pinned = opts.clone();
    pinned.revision = commit.clone();
    let mut all: Vec<&str> = vec!["model_index.json"];
    all.extend(files.iter().map(String::as_str));
    let dir = download_files(&repo_id, &pinned, &all, progress, cancel)?;
    // The ref the user asked for points at the commit the files came from.
    RepoCache::new(&repo_id, opts).write_ref(&commit)?;
    Ok(dir)
}

/// The snapshot folder of a complete pipeline download (as [`download_pipeline`] fetches it)
/// at `opts.revision`, without any request.
pub fn cached_pipeline(
    repo: &str,
    opts: &HubOptions,
    variant: Option<&str>,
) -> Result<Option<PathBuf>> {
    let repo_id = resolve_repo(repo)?;
    check_revision(&opts.revision)?;
    Ok(cached_pipeline_at(
        &RepoCache::new(&repo_id, opts),
        &opts.revision,
        variant,
    ))
}

fn cached_pipeline_at(cache: &RepoCache, revision: &str, variant: Option<&str>) -> Option<PathBuf> {
    let commit = cache.commit_of(revision)?;
    let mut files = Vec::new();
    for (_, options) in pipeline_candidates(variant) {
        let f = options
            .into_iter()
            .find(|f| cache.cached_file(&commit, f).is_some())?;
        files.push(f);
    }
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    cached_snapshot(cache, &commit, &refs)
}

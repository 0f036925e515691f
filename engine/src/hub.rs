//! Downloads of official DC-AE checkpoints from the Hugging Face hub into the standard
//! Hugging Face cache, so the Python tools and this crate share one copy.
//!
//! [`download_model`] returns the snapshot folder (`config.json` + weights) that
//! [`DcAe::load`](crate::DcAe::load) reads. The cache layout is the one `huggingface_hub` uses
//! (`<cache>/models--org--name/{blobs/<etag>, snapshots/<commit>/<file>, refs/<revision>}`),
//! through the `hf-hub` crate; a model already in the cache is returned without any request.
//!
//! The bytes are fetched here rather than by `hf-hub`'s own downloader, because that one can
//! neither be cancelled mid-file nor checks what it received: each file streams in chunks
//! (the cancel flag is checked between chunks), is hashed while it streams and compared with
//! the checksum the hub sends (`X-Linked-Etag`: the sha256 of an LFS file; `ETag`: the git blob
//! sha1 of a small file), and only a verified file is renamed into `blobs/`. A cancelled or
//! failed download leaves nothing behind.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hf_hub::{Cache, CacheRepo, Repo, RepoType};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use ureq::http::{Response, Uri};

use crate::autoencoder::WEIGHT_FILES;
use crate::config::DcAeConfig;
use crate::error::{Error, Result};
use crate::weights::WeightStore;

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How a checkpoint repository is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoFormat {
    /// diffusers `AutoencoderDC`: `config.json` + `diffusion_pytorch_model.safetensors`.
    Diffusers,
    /// The original efficientvit / DC-Gen `DCAE_HF` format: `config.json` holding
    /// `{"model_name": ...}` + `model.safetensors`.
    Original,
}

impl RepoFormat {
    /// The weights file name in a repo of this format.
    pub fn weights_file(self) -> &'static str {
        match self {
            RepoFormat::Diffusers => WEIGHT_FILES[0],
            RepoFormat::Original => WEIGHT_FILES[1],
        }
    }
}

/// An official DC-AE checkpoint on the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficialRepo {
    /// The checkpoint's short name, as [`DcAeConfig::official`] spells it.
    pub name: &'static str,
    /// Hugging Face repo id (`org/name`).
    pub repo: &'static str,
    pub format: RepoFormat,
}

const fn diffusers(name: &'static str, repo: &'static str) -> OfficialRepo {
    OfficialRepo {
        name,
        repo,
        format: RepoFormat::Diffusers,
    }
}

const fn original(name: &'static str, repo: &'static str) -> OfficialRepo {
    OfficialRepo {
        name,
        repo,
        format: RepoFormat::Original,
    }
}

/// Every official checkpoint with a known hub repo, one per [`DcAeConfig::official`] name
/// (less the two spellings of the 1.5 names that are only aliases).
///
/// The `mit-han-lab/<name>-diffusers` repos are the ones `fixtures/dcae/official-configs.json`
/// records (diffusers' conversion script) plus sana-1.1 and lite-sana-1.1, which diffusers
/// and Sana load by these ids. `dc-ae-lite-f32c32` is DC-Gen's re-release under `dc-ai`.
/// The 256px and 1.5 checkpoints have no diffusers repo; DC-Gen loads them with
/// `DCAE_HF.from_pretrained(f"{organization}/{name}")` (organisation from its
/// `REGISTERED_DCAE_MODEL`), so they are listed in that original format.
pub const OFFICIAL_REPOS: &[OfficialRepo] = &[
    diffusers(
        "dc-ae-f32c32-in-1.0",
        "mit-han-lab/dc-ae-f32c32-in-1.0-diffusers",
    ),
    diffusers(
        "dc-ae-f64c128-in-1.0",
        "mit-han-lab/dc-ae-f64c128-in-1.0-diffusers",
    ),
    diffusers(
        "dc-ae-f128c512-in-1.0",
        "mit-han-lab/dc-ae-f128c512-in-1.0-diffusers",
    ),
    diffusers(
        "dc-ae-f32c32-mix-1.0",
        "mit-han-lab/dc-ae-f32c32-mix-1.0-diffusers",
    ),
    diffusers(
        "dc-ae-f64c128-mix-1.0",
        "mit-han-lab/dc-ae-f64c128-mix-1.0-diffusers",
    ),
    diffusers(
        "dc-ae-f128c512-mix-1.0",
        "mit-han-lab/dc-ae-f128c512-mix-1.0-diffusers",
    ),
    diffusers(
        "dc-ae-f32c32-sana-1.0",
        "mit-han-lab/dc-ae-f32c32-sana-1.0-diffusers",
    ),
    diffusers(
        "dc-ae-f32c32-sana-1.1",
        "mit-han-lab/dc-ae-f32c32-sana-1.1-diffusers",
    ),
    diffusers(
        "dc-ae-lite-f32c32-sana-1.1",
        "mit-han-lab/dc-ae-lite-f32c32-sana-1.1-diffusers",
    ),
    diffusers("dc-ae-lite-f32c32", "dc-ai/dc-ae-lite-f32c32-diffusers"),
    original(
        "dc-ae-f32c32-in-1.0-256px",
        "mit-han-lab/dc-ae-f32c32-in-1.0-256px",
    ),
    original("dc-ae-f32c128-1.5", "dc-ai/dc-ae-f32c128-1.5"),
    original("dc-ae-f64c128-1.5", "dc-ai/dc-ae-f64c128-1.5"),
];

/// The official checkpoints, for a UI to offer.
pub fn official_repos() -> &'static [OfficialRepo] {
    OFFICIAL_REPOS
}

/// The official entry for a short name (`dc-ae-f32c32-sana-1.1`, also with `-diffusers`) or a
/// repo id.
pub fn find_official(name_or_repo: &str) -> Option<&'static OfficialRepo> {
    let base = name_or_repo
        .strip_suffix("-diffusers")
        .unwrap_or(name_or_repo);
    OFFICIAL_REPOS
        .iter()
        .find(|r| r.repo == name_or_repo || (!name_or_repo.contains('/') && r.name == base))
}

/// The repo id for a short official name or an `org/name` repo id (returned as it is).
pub fn resolve_repo(name_or_repo: &str) -> Result<String> {
    if let Some(r) = find_official(name_or_repo) {
        return Ok(r.repo.to_string());
    }
    if name_or_repo.contains('/') {
        check_repo_id(name_or_repo)?;
        return Ok(name_or_repo.to_string());
    }
    Err(Error::UnknownModel {
        name: name_or_repo.to_string(),
        known: OFFICIAL_REPOS
            .iter()
            .map(|r| r.name)
            .collect::<Vec<_>>()
            .join(", ")
            + " (or any org/name repo id)",
    })
}

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

/// Progress of one file's transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadProgress {
    /// File name in the repo (`config.json`, `diffusion_pytorch_model.safetensors`).
    pub file: String,
    pub done_bytes: u64,
    /// Size announced by the hub (0 when it announced none).
    pub total_bytes: u64,
}

fn check_repo_id(repo: &str) -> Result<()> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && !p.contains("..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((org, name)) if ok_part(org) && ok_part(name) => Ok(()),
        _ => Err(Error::Input(format!(
            "`{repo}` is not a Hugging Face repo id (expected org/name of letters, digits, `-`, `_`, `.`)"
        ))),
    }
}

fn check_revision(rev: &str) -> Result<()> {
    let ok = !rev.is_empty()
        && !rev.starts_with('/')
        && !rev.ends_with('/')
        && !rev.contains("..")
        && !rev.contains("//")
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "`{rev}` is not a usable revision (a branch, tag or commit hash)"
        )))
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The snapshot folder of `repo` at `opts.revision` if the cache holds a complete one
/// (config + weights), without any request.
pub fn cached_model(repo: &str, opts: &HubOptions) -> Result<Option<PathBuf>> {
    let repo = resolve_repo(repo)?;
    check_revision(&opts.revision)?;
    Ok(cached_snapshot(&cache_repo(&repo, opts), &opts.revision))
}

fn cache_repo(repo: &str, opts: &HubOptions) -> CacheRepo {
    Cache::new(opts.cache_dir.clone()).repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Model,
        opts.revision.clone(),
    ))
}

fn complete_snapshot(dir: &Path) -> bool {
    dir.join("config.json").is_file() && WEIGHT_FILES.iter().any(|f| dir.join(f).is_file())
}

fn cached_snapshot(cache: &CacheRepo, revision: &str) -> Option<PathBuf> {
    // A commit hash names its snapshot directly (`huggingface_hub` writes no ref for it).
    if is_hex(revision, 40) {
        let dir = cache.pointer_path(&revision.to_ascii_lowercase());
        if complete_snapshot(&dir) {
            return Some(dir);
        }
    }
    // refs/<revision> -> snapshots/<commit>/config.json (hf-hub's lookup).
    let dir = cache.get("config.json")?.parent()?.to_path_buf();
    complete_snapshot(&dir).then_some(dir)
}

/// Downloads `repo` (an `org/name` repo id, or a short official name such as
/// `dc-ae-f32c32-sana-1.1`) at `opts.revision` into the hub cache and returns the snapshot
/// folder holding `config.json` and the weights, ready for [`DcAe::load`](crate::DcAe::load).
///
/// A complete snapshot already in the cache is returned without any request. Otherwise the
/// config and the weights (`diffusion_pytorch_model.safetensors`, else `model.safetensors`)
/// are fetched at one commit. `progress` sees every chunk; setting `cancel` (from the callback
/// or another thread) stops the transfer at the next chunk with [`Error::Cancelled`]. Errors
/// name the URL; a checksum mismatch is [`Error::Checksum`] and caches nothing. The config
/// and the weights header are validated before returning.
pub fn download_model(
    repo: &str,
    opts: &HubOptions,
    progress: &mut dyn FnMut(DownloadProgress),
    cancel: &AtomicBool,
) -> Result<PathBuf> {
    let repo_id = resolve_repo(repo)?;
    check_revision(&opts.revision)?;
    let cache = cache_repo(&repo_id, opts);
    let snapshot = match cached_snapshot(&cache, &opts.revision) {
        Some(dir) => dir,
        None => fetch_snapshot(&repo_id, opts, &cache, progress, cancel)?,
    };
    validate_snapshot(&snapshot)?;
    Ok(snapshot)
}

fn validate_snapshot(dir: &Path) -> Result<()> {
    DcAeConfig::from_file(&dir.join("config.json"))?;
    let weights = WEIGHT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::MissingFile(format!("no weights in {}", dir.display())))?;
    let keys = WeightStore::file_keys(&weights)?;
    if keys.is_empty() {
        return Err(Error::CorruptWeights {
            path: weights,
            message: "the file holds no tensors".into(),
        });
    }
    Ok(())
}

/// What a HEAD on `resolve/<revision>/<file>` tells.
struct Remote {
    file: String,
    commit: String,
    /// Normalised: no quotes, no `W/`.
    etag: String,
    size: Option<u64>,
}

struct Client {
    endpoint: String,
    repo: String,
    token: Option<String>,
    /// No redirects: the LFS redirect's own headers carry the metadata.
    head: ureq::Agent,
    /// Follows redirects (to the LFS/Xet storage); the token only goes to the same host.
    get: ureq::Agent,
}

impl Client {
    fn new(repo: &str, opts: &HubOptions) -> Self {
        let base = || {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .user_agent(format!("dcae/{}", env!("CARGO_PKG_VERSION")))
                // The bytes hashed must be the file's bytes.
                .accept_encoding("identity")
                .timeout_connect(Some(Duration::from_secs(30)))
                .timeout_recv_response(Some(Duration::from_secs(120)))
                .timeout_per_read(Some(Duration::from_secs(120)))
        };
        Self {
            endpoint: opts.endpoint.trim_end_matches('/').to_string(),
            repo: repo.to_string(),
            token: opts.token.clone(),
            head: base().max_redirects(0).build().into(),
            get: base()
                .max_redirects(10)
                .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
                .build()
                .into(),
        }
    }

    fn url(&self, revision: &str, file: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{file}",
            self.endpoint,
            self.repo,
            revision.replace('/', "%2F")
        )
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    /// HEAD, following only relative redirects (a renamed repo); an absolute redirect is the
    /// LFS one, whose headers describe the file. `Ok(None)` for a missing file (404).
    fn head(&self, revision: &str, file: &str) -> Result<Option<Remote>> {
        let mut url = self.url(revision, file);
        for _ in 0..5 {
            let resp = self
                .auth(self.head.head(&url))
                .call()
                .map_err(|e| net_error(&url, e))?;
            let status = resp.status().as_u16();
            let location = header(&resp, "location");
            if (300..400).contains(&status)
                && let Some(loc) = location.as_deref()
                && loc.starts_with('/')
            {
                url = format!("{}{loc}", origin(&url).unwrap_or_default());
                continue;
            }
            if status == 404 {
                let code = header(&resp, "x-error-code");
                if code.is_none() || code.as_deref() == Some("EntryNotFound") {
                    return Ok(None);
                }
            }
            if !(200..400).contains(&status) {
                return Err(status_error(&url, &resp));
            }
            let commit = header(&resp, "x-repo-commit").ok_or_else(|| Error::Download {
                url: url.clone(),
                message: format!(
                    "the server sent no X-Repo-Commit header (HTTP {status}); is {} a Hugging Face hub?",
                    self.endpoint
                ),
            })?;
            if !is_hex(&commit, 40) {
                return Err(Error::Download {
                    url,
                    message: format!("X-Repo-Commit `{commit}` is not a commit hash"),
                });
            }
            let etag = header(&resp, "x-linked-etag")
                .or_else(|| header(&resp, "etag"))
                .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string())
                .ok_or_else(|| Error::Download {
                    url: url.clone(),
                    message: "the server sent no ETag, so the file cannot be verified".into(),
                })?;
            // It names the blob file, so it must be a hash and nothing else.
            if !(is_hex(&etag, 64) || is_hex(&etag, 40)) {
                return Err(Error::Download {
                    url,
                    message: format!(
                        "the ETag `{etag}` is neither a sha256 nor a git sha1, so the file cannot be verified"
                    ),
                });
            }
            let size = header(&resp, "x-linked-size")
                .or_else(|| {
                    (200..300)
                        .contains(&status)
                        .then(|| header(&resp, "content-length"))
                        .flatten()
                })
                .and_then(|s| s.parse().ok());
            return Ok(Some(Remote {
                file: file.to_string(),
                commit: commit.to_ascii_lowercase(),
                etag,
                size,
            }));
        }
        Err(Error::Download {
            url,
            message: "too many redirects".into(),
        })
    }
}

fn header<B>(resp: &Response<B>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn origin(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

fn net_error(url: &str, e: ureq::Error) -> Error {
    Error::Download {
        url: url.to_string(),
        message: format!("cannot reach the server: {e}"),
    }
}

fn status_error<B>(url: &str, resp: &Response<B>) -> Error {
    let status = resp.status().as_u16();
    let hint = match status {
        401 | 403 => {
            ": the repo does not exist, is private, or is gated (accept its terms on the hub and set HF_TOKEN)"
        }
        404 => ": no such repo, revision or file",
        _ => "",
    };
    let detail = header(resp, "x-error-message")
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    Error::Download {
        url: url.to_string(),
        message: format!("HTTP {status}{hint}{detail}"),
    }
}

/// How a download is checked against its etag.
enum Check {
    /// LFS file: the etag is the sha256 of the content.
    Sha256(Sha256),
    /// Small git file of known size: the etag is sha1(`blob <len>\0` + content).
    GitSha1(Sha1),
    /// Git file of unknown size: hashed from the finished temp file.
    GitSha1Later,
}

impl Check {
    /// For an etag [`Client::head`] accepted: 64 hex digits (sha256) or 40 (git sha1).
    fn new(etag: &str, size: Option<u64>) -> Self {
        match size {
            _ if etag.len() == 64 => Check::Sha256(Sha256::new()),
            Some(n) => {
                let mut h = Sha1::new();
                h.update(format!("blob {n}\0").as_bytes());
                Check::GitSha1(h)
            }
            None => Check::GitSha1Later,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Check::Sha256(h) => h.update(bytes),
            Check::GitSha1(h) => h.update(bytes),
            Check::GitSha1Later => {}
        }
    }

    fn finish(self, tmp: &Path) -> Result<String> {
        Ok(match self {
            Check::Sha256(h) => hex(&h.finalize()),
            Check::GitSha1(h) => hex(&h.finalize()),
            Check::GitSha1Later => {
                let bytes = std::fs::read(tmp).map_err(|e| Error::io(tmp, e))?;
                git_blob_sha1(&bytes)
            }
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lower-case hex sha256 of `bytes` (the etag the hub sends for an LFS file).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The git blob id of `bytes` (the etag the hub sends for a file stored in git).
pub fn git_blob_sha1(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex(&h.finalize())
}

/// Removes the temp file unless the download completed.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn fetch_snapshot(
    repo: &str,
    opts: &HubOptions,
    cache: &CacheRepo,
    progress: &mut dyn FnMut(DownloadProgress),
    cancel: &AtomicBool,
) -> Result<PathBuf> {
    let client = Client::new(repo, opts);
    let cancelled = || cancel.load(Ordering::Relaxed);
    if cancelled() {
        return Err(Error::Cancelled);
    }
    let config = client
        .head(&opts.revision, "config.json")?
        .ok_or_else(|| Error::Download {
            url: client.url(&opts.revision, "config.json"),
            message: "HTTP 404: no config.json in this repo (is it a DC-AE checkpoint?)".into(),
        })?;
    // Every further request is pinned to the commit the config came from.
    let commit = config.commit.clone();
    let candidates: Vec<&str> = match find_official(repo) {
        Some(r) => vec![r.format.weights_file()],
        None => WEIGHT_FILES.to_vec(),
    };
    let mut weights = None;
    for file in &candidates {
        if cancelled() {
            return Err(Error::Cancelled);
        }
        if let Some(r) = client.head(&commit, file)? {
            weights = Some(r);
            break;
        }
    }
    let weights = weights.ok_or_else(|| Error::Download {
        url: client.url(&commit, candidates[0]),
        message: format!(
            "HTTP 404: the repo has no {} at commit {commit}",
            candidates.join(" or ")
        ),
    })?;
    // Both files are fetched and verified before either enters the cache.
    let mut fetched = Vec::new();
    for remote in [&config, &weights] {
        if let Some(tmp) = fetch_blob(&client, cache, &commit, remote, progress, cancel)? {
            fetched.push((tmp, cache.blob_path(&remote.etag)));
        }
    }
    for (mut tmp, blob) in fetched {
        std::fs::rename(&tmp.path, &blob).map_err(|e| Error::io(&blob, e))?;
        tmp.keep = true;
    }
    let snapshot = cache.pointer_path(&commit);
    for remote in [&config, &weights] {
        link_snapshot(cache, &snapshot, remote)?;
    }
    // The ref last: a lookup only ever finds complete snapshots.
    cache
        .create_ref(&commit)
        .map_err(|e| Error::io(cache.pointer_path(&commit), e))?;
    Ok(snapshot)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Streams one file into a verified temp file beside `blobs/<etag>`, or `None` when that blob
/// is already there.
fn fetch_blob(
    client: &Client,
    cache: &CacheRepo,
    commit: &str,
    remote: &Remote,
    progress: &mut dyn FnMut(DownloadProgress),
    cancel: &AtomicBool,
) -> Result<Option<TempFile>> {
    let blob = cache.blob_path(&remote.etag);
    let url = client.url(commit, &remote.file);
    let file_label = format!("{}/{}", client.repo, remote.file);
    if let Ok(meta) = std::fs::metadata(&blob)
        && meta.is_file()
        && remote.size.is_none_or(|n| n == meta.len())
    {
        return Ok(None);
    }
    let mut check = Check::new(&remote.etag, remote.size);
    let blobs = blob
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let resp = client
        .auth(client.get.get(&url))
        .call()
        .map_err(|e| net_error(&url, e))?;
    if !resp.status().is_success() {
        return Err(status_error(&url, &resp));
    }
    let total = remote
        .size
        .or_else(|| header(&resp, "content-length").and_then(|s| s.parse().ok()));
    let mut reader = resp.into_body().into_reader();
    let tmp = TempFile {
        path: blobs.join(format!(
            "{}.{}-{}.incomplete",
            remote.etag,
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        )),
        keep: false,
    };
    let mut out = std::fs::File::create(&tmp.path).map_err(|e| Error::io(&tmp.path, e))?;
    let report = |done| DownloadProgress {
        file: remote.file.clone(),
        done_bytes: done,
        total_bytes: total.unwrap_or(0),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    progress(report(0));
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Download {
                    url,
                    message: format!("the transfer broke off after {done} bytes: {e}"),
                });
            }
        };
        check.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| Error::io(&tmp.path, e))?;
        done += n as u64;
        progress(report(done));
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    if let Some(t) = total
        && t != done
    {
        return Err(Error::Download {
            url,
            message: format!("received {done} bytes, the hub announced {t}"),
        });
    }
    out.sync_all().map_err(|e| Error::io(&tmp.path, e))?;
    drop(out);
    let found = check.finish(&tmp.path)?;
    if !found.eq_ignore_ascii_case(&remote.etag) {
        return Err(Error::Checksum {
            file: file_label,
            expected: remote.etag.clone(),
            found,
        });
    }
    Ok(Some(tmp))
}

/// `snapshots/<commit>/<file>` -> `../../blobs/<etag>` (a relative symlink, as
/// `huggingface_hub` makes), or a copy of the blob where symlinks are not allowed.
fn link_snapshot(cache: &CacheRepo, snapshot: &Path, remote: &Remote) -> Result<()> {
    std::fs::create_dir_all(snapshot).map_err(|e| Error::io(snapshot, e))?;
    let pointer = snapshot.join(&remote.file);
    if pointer.symlink_metadata().is_ok() {
        std::fs::remove_file(&pointer).map_err(|e| Error::io(&pointer, e))?;
    }
    let target = Path::new("..").join("..").join("blobs").join(&remote.etag);
    #[cfg(unix)]
    let linked = std::os::unix::fs::symlink(&target, &pointer).is_ok();
    #[cfg(windows)]
    let linked = std::os::windows::fs::symlink_file(&target, &pointer).is_ok();
    #[cfg(not(any(unix, windows)))]
    let linked = {
        let _ = target;
        false
    };
    if linked && pointer.is_file() {
        return Ok(());
    }
    let _ = std::fs::remove_file(&pointer);
    let blob = cache.blob_path(&remote.etag);
    let tmp = TempFile {
        path: snapshot.join(format!(".{}.{}.copy", remote.file, std::process::id())),
        keep: false,
    };
    std::fs::copy(&blob, &tmp.path).map_err(|e| Error::io(&blob, e))?;
    std::fs::rename(&tmp.path, &pointer).map_err(|e| Error::io(&pointer, e))?;
    let mut tmp = tmp;
    tmp.keep = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_repos_cover_every_preset_name() {
        let presets: Vec<&str> = DcAeConfig::official().iter().map(|(n, _)| *n).collect();
        for r in OFFICIAL_REPOS {
            assert!(presets.contains(&r.name), "{} is not a preset", r.name);
            assert!(DcAeConfig::from_model_name(r.name).is_ok());
            check_repo_id(r.repo).unwrap();
            if r.format == RepoFormat::Diffusers {
                assert!(r.repo.ends_with("-diffusers"), "{}", r.repo);
            }
        }
        // Every preset has an entry, except the json spellings of the 1.5 names.
        for p in presets {
            let alias = p.starts_with("dc-ae-1.5-");
            assert_eq!(
                OFFICIAL_REPOS.iter().any(|r| r.name == p),
                !alias,
                "preset {p}"
            );
        }
    }

    #[test]
    fn names_resolve_to_repos() {
        assert_eq!(
            resolve_repo("dc-ae-f32c32-sana-1.1").unwrap(),
            "mit-han-lab/dc-ae-f32c32-sana-1.1-diffusers"
        );
        assert_eq!(
            resolve_repo("dc-ae-f64c128-in-1.0-diffusers").unwrap(),
            "mit-han-lab/dc-ae-f64c128-in-1.0-diffusers"
        );
        assert_eq!(resolve_repo("me/my-ae").unwrap(), "me/my-ae");
        let e = resolve_repo("dc-ae-f16c4").unwrap_err().to_string();
        assert!(e.contains("dc-ae-f32c32-sana-1.1"), "{e}");
        for bad in ["a/b/c", "/x", "x/", "a/../b", "a/b c"] {
            assert!(resolve_repo(bad).is_err(), "{bad}");
        }
        for bad in ["", "../x", "a b", "/main"] {
            assert!(check_revision(bad).is_err(), "{bad:?}");
        }
        check_revision("refs/pr/1").unwrap();
    }

    #[test]
    fn hashes_match_known_values() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // `printf hello | git hash-object --stdin`
        assert_eq!(
            git_blob_sha1(b"hello"),
            "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0"
        );
    }
}

//! What a download would fetch, found out before fetching it: every file with its size (HEAD
//! requests; an index json is read into memory for the shards it names) and whether the cache
//! already holds it. The generation repos a UI offers: the registered class-conditional
//! checkpoints and the Sana pipelines.

use super::cache::RepoCache;
use super::client::{Client, Remote};
use super::registry::{check_revision, resolve_repo};
use super::{HubOptions, check_variant, index_shards, model_remotes, not_found, pipeline_files};
use crate::error::{Error, Result};
use crate::task::Cancel;

/// How a repo is laid out, as far as downloading goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// `config.json` + one weights file (a DC-AE or a class-conditional checkpoint).
    Model,
    /// A diffusers pipeline (`model_index.json` and component folders).
    Pipeline,
}

/// One file a download would fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub path: String,
    /// As the hub announces it (`None` when it did not say).
    pub size: Option<u64>,
    /// The cache already holds this blob.
    pub cached: bool,
}

/// What [`plan_download`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadPlan {
    pub repo: String,
    pub commit: String,
    pub kind: RepoKind,
    pub files: Vec<RemoteFile>,
}

impl DownloadPlan {
    /// Bytes of every file (those of unknown size count 0).
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }

    /// Bytes still to fetch: the files the cache lacks.
    pub fn missing_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| !f.cached)
            .filter_map(|f| f.size)
            .sum()
    }

    /// How many files the hub gave no size for.
    pub fn unknown_sizes(&self) -> usize {
        self.files.iter().filter(|f| f.size.is_none()).count()
    }
}

/// Index files are a few hundred KB; anything near this is not one.
const MAX_INDEX_BYTES: u64 = 16 << 20;

/// The files a download of `repo` at `opts.revision` would fetch, with sizes, without
/// fetching any weights: a pipeline repo (it has `model_index.json`) as [`super::download_pipeline`]
/// would take it for `variant`, else a model repo as [`super::download_model`] would.
pub fn plan_download(
    repo: &str,
    opts: &HubOptions,
    variant: Option<&str>,
    cancel: &Cancel,
) -> Result<DownloadPlan> {
    let repo_id = resolve_repo(repo)?;
    check_revision(&opts.revision)?;
    check_variant(variant)?;
    let client = Client::new(&repo_id, opts);
    let cache = RepoCache::new(&repo_id, opts);
    cancel.check()?;
    let (kind, commit, mut remotes) = match client.head(&opts.revision, "model_index.json")? {
        Some(index) => {
            let commit = index.commit.clone();
            let files = pipeline_files(&client, &commit, variant, cancel)?;
            let mut remotes = vec![index];
            for f in &files {
                cancel.check()?;
                remotes.push(
                    client
                        .head(&commit, f)?
                        .ok_or_else(|| not_found(&client, &commit, f))?,
                );
            }
            (RepoKind::Pipeline, commit, remotes)
        }
        None => {
            let remotes = model_remotes(&client, &repo_id, &opts.revision, cancel)?;
            (RepoKind::Model, remotes[0].commit.clone(), remotes)
        }
    };
    // The shards an index names, each with its own HEAD.
    let mut i = 0;
    while i < remotes.len() {
        if remotes[i].file.ends_with(".index.json") {
            let file = remotes[i].file.clone();
            cancel.check()?;
            let bytes = match cached_blob(&cache, &remotes[i]) {
                Some(p) => std::fs::read(&p).map_err(|e| Error::io(&p, e))?,
                None => client.get_small(&commit, &file, MAX_INDEX_BYTES)?,
            };
            let text = String::from_utf8_lossy(&bytes);
            for shard in index_shards(&file, &text)? {
                if remotes.iter().any(|r| r.file == shard) {
                    continue;
                }
                cancel.check()?;
                remotes.push(
                    client
                        .head(&commit, &shard)?
                        .ok_or_else(|| not_found(&client, &commit, &shard))?,
                );
            }
        }
        i += 1;
    }
    let files = remotes
        .iter()
        .map(|r| RemoteFile {
            path: r.file.clone(),
            size: r.size,
            cached: cached_blob(&cache, r).is_some(),
        })
        .collect();
    Ok(DownloadPlan {
        repo: repo_id,
        commit,
        kind,
        files,
    })
}

/// The cached blob of `remote` when it is there at the announced size (as the fetch checks).
fn cached_blob(cache: &RepoCache, remote: &Remote) -> Option<std::path::PathBuf> {
    let blob = cache.blob(&remote.etag);
    let meta = std::fs::metadata(&blob).ok()?;
    (meta.is_file() && remote.size.is_none_or(|n| n == meta.len())).then_some(blob)
}

/// What a generation repo holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationKind {
    /// A class-conditional checkpoint (efficientvit `DCAE_Diffusion_HF` layout).
    Class,
    /// A Sana pipeline (Sana-Sprint when `sprint`).
    Text { sprint: bool },
}

/// A generation model on the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationRepo {
    /// `org/name`.
    pub repo: String,
    pub kind: GenerationKind,
    /// A short line for a list: family, autoencoder, resolution.
    pub detail: String,
}

/// Every generation model with a known repo: the registered class-conditional checkpoints
/// (`mit-han-lab/<name>`, as efficientvit's `DCAE_Diffusion_HF.from_pretrained` loads them)
/// and the official Sana pipelines.
pub fn generation_repos() -> Vec<GenerationRepo> {
    let mut v: Vec<GenerationRepo> = crate::diffusion::REGISTERED
        .iter()
        .map(|name| {
            let ae = if name.starts_with("dc-ae-f64c128") {
                "f64c128"
            } else {
                "f32c32"
            };
            let family = ["dit", "uvit", "usit"]
                .into_iter()
                .find(|f| name.contains(&format!("-{f}-")))
                .unwrap_or("class-conditional")
                .to_ascii_uppercase()
                .replace("UVIT", "UViT")
                .replace("USIT", "USiT");
            GenerationRepo {
                repo: format!("mit-han-lab/{name}"),
                kind: GenerationKind::Class,
                detail: format!("{family}, ImageNet 512 px, DC-AE {ae}"),
            }
        })
        .collect();
    v.extend(
        crate::diffusion::sana::presets()
            .into_iter()
            .map(|p| GenerationRepo {
                repo: p.repo.to_string(),
                kind: GenerationKind::Text { sprint: p.sprint },
                detail: format!(
                    "{}, {} px, DC-AE f32c32",
                    if p.sprint { "Sana-Sprint" } else { "Sana" },
                    p.bin_side
                ),
            }),
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_repos_are_valid_unique_ids() {
        let repos = generation_repos();
        assert_eq!(
            repos.len(),
            crate::diffusion::REGISTERED.len() + crate::diffusion::sana::presets().len()
        );
        for r in &repos {
            assert!(resolve_repo(&r.repo).is_ok(), "{}", r.repo);
            assert_eq!(repos.iter().filter(|o| o.repo == r.repo).count(), 1);
        }
        let h = repos
            .iter()
            .find(|r| r.repo == "mit-han-lab/dc-ae-f64c128-in-1.0-uvit-h-in-512px")
            .unwrap();
        assert_eq!(h.kind, GenerationKind::Class);
        assert!(h.detail.contains("UViT") && h.detail.contains("f64c128"));
        assert!(
            repos
                .iter()
                .any(|r| r.kind == GenerationKind::Text { sprint: true })
        );
    }

    #[test]
    fn plan_sums_skip_unknown_and_cached() {
        let f = |size, cached| RemoteFile {
            path: "x".into(),
            size,
            cached,
        };
        let p = DownloadPlan {
            repo: "a/b".into(),
            commit: "0".repeat(40),
            kind: RepoKind::Model,
            files: vec![f(Some(10), false), f(Some(5), true), f(None, false)],
        };
        assert_eq!(p.total_bytes(), 15);
        assert_eq!(p.missing_bytes(), 10);
        assert_eq!(p.unknown_sizes(), 1);
    }
}

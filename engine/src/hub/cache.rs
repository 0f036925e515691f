//! The Hugging Face cache layout (`huggingface_hub`'s, through the `hf-hub` crate's paths):
//! `<cache>/models--org--name/{blobs/<etag>, snapshots/<commit>/<path> -> ../../blobs/<etag>,
//! refs/<revision>}`, read defensively: a ref must hold a commit hash and every file of a
//! snapshot must resolve inside the cache.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, CacheRepo, Repo, RepoType};

use super::HubOptions;
use super::client::{Remote, TempFile};
use super::registry::is_hex;
use crate::error::{Error, Result};

/// One repo's folder in the cache.
pub(crate) struct RepoCache {
    root: PathBuf,
    repo: CacheRepo,
}

impl RepoCache {
    pub fn new(repo: &str, opts: &HubOptions) -> Self {
        Self {
            root: opts.cache_dir.clone(),
            repo: Cache::new(opts.cache_dir.clone()).repo(Repo::with_revision(
                repo.to_string(),
                RepoType::Model,
                opts.revision.clone(),
            )),
        }
    }

    /// `blobs/` of this repo.
    pub fn blobs(&self) -> PathBuf {
        let b = self.repo.blob_path("x");
        b.parent().map(Path::to_path_buf).unwrap_or(b)
    }

    pub fn blob(&self, etag: &str) -> PathBuf {
        self.repo.blob_path(etag)
    }

    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.repo.pointer_path(commit)
    }

    /// The commit `revision` names: itself when it is a commit hash, else the hash in
    /// `refs/<revision>` (anything else there is ignored, so a hostile ref cannot point the
    /// lookup outside the cache).
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if is_hex(revision, 40) {
            return Some(revision.to_ascii_lowercase());
        }
        let refs = self
            .snapshot("x")
            .parent()?
            .parent()?
            .join("refs")
            .join(revision);
        let text = std::fs::read_to_string(refs).ok()?;
        let commit = text.trim();
        is_hex(commit, 40).then(|| commit.to_ascii_lowercase())
    }

    /// `snapshots/<commit>/<path>` if it is a file that resolves inside the cache.
    pub fn cached_file(&self, commit: &str, path: &str) -> Option<PathBuf> {
        let p = self.snapshot(commit).join(path);
        let real = p.canonicalize().ok()?;
        let root = self.root.canonicalize().ok()?;
        (real.starts_with(&root) && real.is_file()).then_some(p)
    }

    /// Moves verified temp files to their blobs (all were verified before the first moves).
    pub fn store_blobs(&self, fetched: Vec<(TempFile, String)>) -> Result<()> {
        for (mut tmp, etag) in fetched {
            let blob = self.blob(&etag);
            std::fs::rename(&tmp.path, &blob).map_err(|e| Error::io(&blob, e))?;
            tmp.keep = true;
        }
        Ok(())
    }

    /// `snapshots/<commit>/<path>` -> `../../blobs/<etag>` (one `..` more per subfolder), a
    /// relative symlink as `huggingface_hub` makes, or a copy of the blob where symlinks are
    /// not allowed.
    pub fn link(&self, commit: &str, remote: &Remote) -> Result<()> {
        let pointer = self.snapshot(commit).join(&remote.file);
        let dir = pointer
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.snapshot(commit));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        if pointer.symlink_metadata().is_ok() {
            std::fs::remove_file(&pointer).map_err(|e| Error::io(&pointer, e))?;
        }
        let depth = remote.file.split('/').count();
        let mut target = PathBuf::new();
        for _ in 0..=depth {
            target.push("..");
        }
        let target = target.join("blobs").join(&remote.etag);
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
        let blob = self.blob(&remote.etag);
        let name = pointer
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut tmp = TempFile {
            path: dir.join(format!(".{name}.{}.copy", std::process::id())),
            keep: false,
        };
        std::fs::copy(&blob, &tmp.path).map_err(|e| Error::io(&blob, e))?;
        std::fs::rename(&tmp.path, &pointer).map_err(|e| Error::io(&pointer, e))?;
        tmp.keep = true;
        Ok(())
    }

    /// `refs/<revision>` -> `commit`, written last so a lookup only finds complete snapshots.
    pub fn write_ref(&self, commit: &str) -> Result<()> {
        self.repo
            .create_ref(commit)
            .map_err(|e| Error::io(self.snapshot(commit), e))
    }
}

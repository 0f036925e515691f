//! Checking downloaded bytes against the hub's etags: sha256 for LFS files, the git blob sha1
//! for files stored in git.

use std::path::Path;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How a download is checked against its etag.
pub(crate) enum Check {
    /// LFS file: the etag is the sha256 of the content.
    Sha256(Sha256),
    /// Small git file of known size: the etag is sha1(`blob <len>\0` + content).
    GitSha1(Sha1),
    /// Git file of unknown size: hashed from the finished temp file.
    GitSha1Later,
}

impl Check {
    /// For an etag the HEAD request accepted: 64 hex digits (sha256) or 40 (git sha1).
    pub(crate) fn new(etag: &str, size: Option<u64>) -> Self {
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

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Check::Sha256(h) => h.update(bytes),
            Check::GitSha1(h) => h.update(bytes),
            Check::GitSha1Later => {}
        }
    }

    pub(crate) fn finish(self, tmp: &Path) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

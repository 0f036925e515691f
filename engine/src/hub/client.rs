//! The HTTP side: HEAD requests that tell a file's commit, etag and size, and streamed GETs
//! into verified temp files beside the cache's blobs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ureq::http::{Response, Uri};

use super::HubOptions;
use super::checksum::Check;
use super::registry::is_hex;
use crate::error::{Error, Result};
use crate::task::{Cancel, Progress};

/// What a HEAD on `resolve/<revision>/<file>` tells.
pub(crate) struct Remote {
    pub file: String,
    pub commit: String,
    /// Normalised: no quotes, no `W/`.
    pub etag: String,
    pub size: Option<u64>,
}

pub(crate) struct Client {
    endpoint: String,
    pub repo: String,
    token: Option<String>,
    /// No redirects: the LFS redirect's own headers carry the metadata.
    head: ureq::Agent,
    /// Follows redirects (to the LFS/Xet storage); the token only goes to the same host.
    get: ureq::Agent,
}

impl Client {
    pub fn new(repo: &str, opts: &HubOptions) -> Self {
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

    pub fn url(&self, revision: &str, file: &str) -> String {
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
    pub fn head(&self, revision: &str, file: &str) -> Result<Option<Remote>> {
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

impl Client {
    /// The bytes of a small file (an index json), at most `max` of them, into memory: for
    /// looking inside before deciding what to fetch. Nothing is written to the cache.
    pub fn get_small(&self, revision: &str, file: &str, max: u64) -> Result<Vec<u8>> {
        let url = self.url(revision, file);
        let resp = self
            .auth(self.get.get(&url))
            .call()
            .map_err(|e| net_error(&url, e))?;
        if !resp.status().is_success() {
            return Err(status_error(&url, &resp));
        }
        let mut out = Vec::new();
        resp.into_body()
            .into_reader()
            .take(max + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::Download {
                url: url.clone(),
                message: format!("the transfer broke off: {e}"),
            })?;
        if out.len() as u64 > max {
            return Err(Error::Download {
                url,
                message: format!("larger than the {max} bytes an index file may have"),
            });
        }
        Ok(out)
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

/// Removes the temp file unless the download completed.
pub(crate) struct TempFile {
    pub path: PathBuf,
    pub keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Streams one file into a verified temp file beside `blobs/<etag>`, or `None` when that blob
/// is already there.
pub(crate) fn fetch_blob(
    client: &Client,
    blobs: &Path,
    commit: &str,
    remote: &Remote,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<Option<TempFile>> {
    let blob = blobs.join(&remote.etag);
    let url = client.url(commit, &remote.file);
    let file_label = format!("{}/{}", client.repo, remote.file);
    if let Ok(meta) = std::fs::metadata(&blob)
        && meta.is_file()
        && remote.size.is_none_or(|n| n == meta.len())
    {
        return Ok(None);
    }
    let mut check = Check::new(&remote.etag, remote.size);
    std::fs::create_dir_all(blobs).map_err(|e| Error::io(blobs, e))?;
    cancel.check()?;
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
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    progress.update(&remote.file, 0, total.unwrap_or(0));
    loop {
        cancel.check()?;
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
        progress.update(&remote.file, done, total.unwrap_or(0));
    }
    cancel.check()?;
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

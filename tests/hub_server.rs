//! A local stand-in for the Hugging Face hub (the sandbox cannot reach the real one): a
//! minimal HTTP/1.1 server on 127.0.0.1 that answers HEAD and GET on
//! `/{org}/{name}/resolve/{revision|commit}/{file}` with the headers the hub sends
//! (`x-repo-commit`, quoted `etag` = git blob sha1 for small files, and for LFS files a 302 to
//! `/blob/<sha256>` carrying `x-linked-etag` / `x-linked-size`), 404s with `x-error-code`, and
//! relative 307s for renamed repos. It counts and logs every request.
//!
//! Shared by `tests/hub.rs` and `cli/tests/download.rs` (`#[path]` module).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dcae::hub::{git_blob_sha1, sha256_hex};

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
pub const REPO: &str = "test-org/dcae-tiny-diffusers";
pub const WEIGHTS: &str = "diffusion_pytorch_model.safetensors";

/// One file in the served repo.
pub struct Served {
    pub bytes: Vec<u8>,
    /// Stored in LFS: served through a redirect, etag = sha256.
    pub lfs: bool,
}

#[derive(Default)]
pub struct Behaviour {
    /// Flip one byte in the middle of every LFS body (the etag stays the true sha256).
    pub corrupt_lfs: AtomicBool,
    /// Pause between 64 KiB chunks of a body.
    pub chunk_delay_ms: AtomicUsize,
}

pub struct StandIn {
    pub endpoint: String,
    /// Every request, as `METHOD /path`.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Authorization headers received on `/resolve/` requests.
    pub auth: Arc<Mutex<Vec<String>>>,
    /// LFS body bytes written so far (all requests).
    pub body_bytes_sent: Arc<AtomicUsize>,
    pub behaviour: Arc<Behaviour>,
}

impl StandIn {
    pub fn requests(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// The fixture model's files as the diffusers repo would hold them.
pub fn fixture_files(model_dir: &Path) -> HashMap<String, Served> {
    let read = |f: &str| std::fs::read(model_dir.join(f)).unwrap();
    HashMap::from([
        (
            "config.json".to_string(),
            Served {
                bytes: read("config.json"),
                lfs: false,
            },
        ),
        (
            WEIGHTS.to_string(),
            Served {
                bytes: read("model.safetensors"),
                lfs: true,
            },
        ),
    ])
}

/// Serves `files` as repo [`REPO`] at commit [`COMMIT`] (branch `main`); the repo
/// `old-org/old-name` redirects to it as a renamed repo does.
pub fn start(files: HashMap<String, Served>) -> StandIn {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoint = format!("http://{addr}");
    let files = Arc::new(files);
    let stand_in = StandIn {
        endpoint: endpoint.clone(),
        log: Arc::default(),
        auth: Arc::default(),
        body_bytes_sent: Arc::default(),
        behaviour: Arc::default(),
    };
    let (log, auth, sent, behaviour) = (
        stand_in.log.clone(),
        stand_in.auth.clone(),
        stand_in.body_bytes_sent.clone(),
        stand_in.behaviour.clone(),
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let ctx = Ctx {
                endpoint: endpoint.clone(),
                files: files.clone(),
                log: log.clone(),
                auth: auth.clone(),
                sent: sent.clone(),
                behaviour: behaviour.clone(),
            };
            std::thread::spawn(move || {
                // A client that hangs up mid-body is expected (cancel tests).
                let _ = ctx.serve(stream);
            });
        }
    });
    stand_in
}

/// An endpoint where nothing listens.
pub fn dead_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

struct Ctx {
    endpoint: String,
    files: Arc<HashMap<String, Served>>,
    log: Arc<Mutex<Vec<String>>>,
    auth: Arc<Mutex<Vec<String>>>,
    sent: Arc<AtomicUsize>,
    behaviour: Arc<Behaviour>,
}

struct Reply {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    lfs_body: bool,
}

impl Reply {
    fn status(status: &'static str) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            lfs_body: false,
        }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

impl Ctx {
    fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut auth = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.trim().eq_ignore_ascii_case("authorization")
            {
                auth = Some(v.trim().to_string());
            }
        }
        self.log.lock().unwrap().push(format!("{method} {path}"));
        if path.contains("/resolve/") {
            self.auth
                .lock()
                .unwrap()
                .push(auth.unwrap_or_else(|| "<none>".into()));
        }
        let reply = if method == "HEAD" || method == "GET" {
            self.route(&path)
        } else {
            Reply::status("405 Method Not Allowed")
        };
        self.write(stream, &method, reply)
    }

    fn route(&self, path: &str) -> Reply {
        if let Some(sha) = path.strip_prefix("/blob/") {
            return match self
                .files
                .values()
                .find(|f| f.lfs && sha256_hex(&f.bytes) == sha)
            {
                Some(f) => Reply {
                    body: f.bytes.clone(),
                    lfs_body: true,
                    ..Reply::status("200 OK")
                }
                .header("content-type", "application/octet-stream"),
                None => Reply::status("404 Not Found"),
            };
        }
        let Some((repo, rest)) = path.trim_start_matches('/').split_once("/resolve/") else {
            return Reply::status("404 Not Found");
        };
        if repo == "old-org/old-name" {
            return Reply::status("307 Temporary Redirect")
                .header("location", format!("/{REPO}/resolve/{rest}"));
        }
        if repo != REPO {
            return Reply::status("404 Not Found")
                .header("x-error-code", "RepoNotFound")
                .header("x-error-message", "Repository not found");
        }
        let Some((rev, file)) = rest.split_once('/') else {
            return Reply::status("404 Not Found");
        };
        if rev != "main" && rev != COMMIT {
            return Reply::status("404 Not Found")
                .header("x-error-code", "RevisionNotFound")
                .header("x-error-message", "Invalid rev id");
        }
        let Some(f) = self.files.get(file) else {
            return Reply::status("404 Not Found")
                .header("x-error-code", "EntryNotFound")
                .header("x-error-message", "Entry not found");
        };
        if f.lfs {
            let sha = sha256_hex(&f.bytes);
            Reply::status("302 Found")
                .header("location", format!("{}/blob/{sha}", self.endpoint))
                .header("x-repo-commit", COMMIT)
                .header("x-linked-etag", format!("\"{sha}\""))
                .header("x-linked-size", f.bytes.len().to_string())
                .header("etag", "W/\"2a-redirect\"")
        } else {
            Reply {
                body: f.bytes.clone(),
                ..Reply::status("200 OK")
            }
            .header("x-repo-commit", COMMIT)
            .header("etag", format!("\"{}\"", git_blob_sha1(&f.bytes)))
            .header("content-type", "text/plain; charset=utf-8")
        }
    }

    fn write(&self, mut stream: TcpStream, method: &str, mut reply: Reply) -> std::io::Result<()> {
        let mut head = format!("HTTP/1.1 {}\r\n", reply.status);
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            reply.body.len()
        ));
        stream.write_all(head.as_bytes())?;
        if method == "HEAD" {
            return stream.flush();
        }
        if reply.lfs_body && self.behaviour.corrupt_lfs.load(Ordering::SeqCst) {
            let mid = reply.body.len() / 2;
            reply.body[mid] ^= 0x55;
        }
        let delay = self.behaviour.chunk_delay_ms.load(Ordering::SeqCst) as u64;
        for chunk in reply.body.chunks(64 * 1024) {
            stream.write_all(chunk)?;
            stream.flush()?;
            if reply.lfs_body {
                self.sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
        }
        stream.flush()
    }
}

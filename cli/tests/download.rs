//! `dcae download` end to end through the real binary, against the local hub stand-in of the
//! conformance tests (the real hub is not reachable from the sandbox).

#[path = "../../tests/hub_server.rs"]
mod hub_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hub_server::{COMMIT, REPO, WEIGHTS};

fn fixture_model() -> PathBuf {
    let root = std::env::var_os("DCAE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/dcae")
        });
    root.join("f32c32-sana-96x128-b2")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dcae-cli-dl-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn dcae() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcae"));
    for v in ["HF_ENDPOINT", "HF_HUB_CACHE", "HF_HOME", "HF_TOKEN"] {
        c.env_remove(v);
    }
    c
}

/// `dcae download REPO --endpoint E --cache-dir C`.
fn download(endpoint: &str, cache: &Path) -> Command {
    let mut c = dcae();
    c.args(["download", REPO, "--endpoint", endpoint, "--cache-dir"])
        .arg(cache);
    c
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn download_prints_the_snapshot_and_env_vars_reach_the_cache() {
    let server = hub_server::start(hub_server::fixture_files(&fixture_model()));
    let cache = tmp("ok");
    let out = download(&server.endpoint, &cache).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let snapshot = PathBuf::from(stdout.trim());
    let repo_dir = cache.join(format!("models--{}", REPO.replace('/', "--")));
    assert_eq!(snapshot, repo_dir.join("snapshots").join(COMMIT));
    assert!(snapshot.join(WEIGHTS).is_file() && snapshot.join("config.json").is_file());

    // HF_ENDPOINT / HF_HUB_CACHE instead of flags: answered from the cache, no request.
    let before = server.requests();
    let out = dcae()
        .args(["download", REPO])
        .env("HF_ENDPOINT", &server.endpoint)
        .env("HF_HUB_CACHE", &cache)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), stdout.trim());
    assert_eq!(server.requests(), before);

    // The downloaded folder is a model folder for the other commands.
    let out = dcae()
        .args(["encode", "--backend", "cpu", "--model"])
        .arg(&snapshot)
        .arg(fixture_model().join("input.safetensors"))
        .arg("-o")
        .arg(cache.join("latent.safetensors"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --list names every official checkpoint with its repo.
    let out = dcae()
        .args(["download", "--list", "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        list.lines().any(|l| l.starts_with("dc-ae-f32c32-sana-1.1 ")
            && l.contains("mit-han-lab/dc-ae-f32c32-sana-1.1-diffusers")),
        "{list}"
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn unknown_name_lists_the_known_ones() {
    let cache = tmp("unknown");
    let out = dcae()
        .args(["download", "dc-ae-f16c4", "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        line.contains("unknown model name `dc-ae-f16c4`") && line.contains("dc-ae-f64c128-in-1.0"),
        "{line}"
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn ctrl_c_cancels_and_leaves_no_partial_file() {
    let server = hub_server::start(hub_server::fixture_files(&fixture_model()));
    // ~25 chunks of 64 KiB, 200 ms apart: several seconds to interrupt it in.
    server.behaviour.chunk_delay_ms.store(200, Ordering::SeqCst);
    let cache = tmp("ctrlc");
    let mut child = download(&server.endpoint, &cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while server.body_bytes_sent.load(Ordering::SeqCst) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no transfer started"
        );
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Instant::now();
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("download cancelled"), "{stderr}");
    // It stopped at the next chunk, long before the ~5 s transfer would have ended.
    assert!(
        killed.elapsed() < Duration::from_secs(3),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(files_under(&cache), Vec::<PathBuf>::new());
    std::fs::remove_dir_all(&cache).unwrap();
}

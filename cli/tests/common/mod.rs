//! Helpers shared by the `dcae` binary's tests: fixture paths, temp folders, running the binary
//! and checking that a failure is one clean `error:` line.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// A DC-AE fixture folder (`$DCAE_FIXTURES` overrides the root).
pub fn fixture(name: &str) -> PathBuf {
    std::env::var_os("DCAE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared().join("fixtures/dcae"))
        .join(name)
}

/// A fresh temp folder for one test.
pub fn tmp(tag: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dcae-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn dcae(args: &[&str]) -> Output {
    dcae_env(args, &[])
}

/// Runs the binary with extra environment variables.
pub fn dcae_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dcae"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run dcae")
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn ok(o: &Output) {
    assert!(o.status.success(), "dcae failed:\n{:?}", text(o));
}

/// A clean failure: non-zero exit, no panic, an `error:` line containing `needle`.
pub fn fails_with(o: &Output, needle: &str) {
    let (out, err) = text(o);
    assert!(!o.status.success(), "expected failure:\n{out}\n{err}");
    assert!(!err.contains("panicked"), "panic:\n{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    assert!(
        line.contains(needle),
        "error line {line:?} lacks {needle:?}"
    );
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

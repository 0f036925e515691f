//! Shared helpers for the conformance tests: fixture discovery and tensor comparison.

use std::path::{Path, PathBuf};

/// The fixture root: `$env_var` if set, else `<repo>/../shared/fixtures/<sub>`.
pub fn fixture_root(env_var: &str, sub: &str) -> PathBuf {
    match std::env::var_os(env_var) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures")
            .join(sub),
    }
}

/// Every folder under `root` (recursively) that holds a `config.json`, sorted.
pub fn case_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.join("config.json").is_file() {
                    out.push(p);
                } else {
                    stack.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Error statistics of `got` against `expected`.
#[derive(Debug, Clone, Copy)]
pub struct Diff {
    pub max_abs: f64,
    pub max_ref: f64,
    pub rel_l2: f64,
}

impl Diff {
    pub fn of(got: &[f32], expected: &[f32]) -> Diff {
        let mut max_abs = 0f64;
        let mut max_ref = 0f64;
        let (mut num, mut den) = (0f64, 0f64);
        if got.len() != expected.len() {
            // A wrong number of values must fail whatever they are.
            return Diff {
                max_abs: f64::INFINITY,
                max_ref: 0.0,
                rel_l2: f64::INFINITY,
            };
        }
        for (&g, &e) in got.iter().zip(expected) {
            let d = (g as f64 - e as f64).abs();
            // NaN must fail, so it becomes infinite error.
            let d = if d.is_nan() { f64::INFINITY } else { d };
            max_abs = max_abs.max(d);
            max_ref = max_ref.max((e as f64).abs());
            num += d * d;
            den += (e as f64) * (e as f64);
        }
        Diff {
            max_abs,
            max_ref,
            rel_l2: if den > 0.0 {
                num.sqrt() / den.sqrt()
            } else {
                num.sqrt()
            },
        }
    }

    /// The fixtures README check: max abs <= `abs_tol * max(1, max|expected|)` and
    /// rel-L2 <= `rel_tol`.
    pub fn passes(&self, abs_tol: f64, rel_tol: f64) -> bool {
        self.max_abs <= abs_tol * self.max_ref.max(1.0) && self.rel_l2 <= rel_tol
    }
}

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

/// Fixture discovery and tensor comparison live in the engine (`dcae conformance` uses them too).
pub use dcae::pipeline::conformance::{Diff, case_dirs};

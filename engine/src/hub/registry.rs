//! The official DC-AE checkpoints on the hub and repo-id / revision checks.

use crate::autoencoder::WEIGHT_FILES;
use crate::error::{Error, Result};

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

pub(crate) fn check_repo_id(repo: &str) -> Result<()> {
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

pub(crate) fn check_revision(rev: &str) -> Result<()> {
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

/// A file path inside a repo (`config.json`, `text_encoder/model-00001-of-00002.safetensors`):
/// relative, `/`-separated, no empty, `.` or `..` component.
pub(crate) fn check_repo_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.' | '+'))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "`{path}` is not a file path inside a repo (relative, `/`-separated, letters, digits, `-`, `_`, `.`)"
        )))
    }
}

pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoencoder::DcAeConfig;

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
    fn repo_paths_stay_inside_the_repo() {
        for good in [
            "config.json",
            "text_encoder/model-00001-of-00002.safetensors",
            "a+b.json",
        ] {
            check_repo_path(good).unwrap();
        }
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "../x",
            "a/./b",
            "a/../../b",
            "x/",
            "a b",
        ] {
            assert!(check_repo_path(bad).is_err(), "{bad:?}");
        }
    }
}

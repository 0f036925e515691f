//! Files in and out: images ([`image`]: decode, fit to the compression factor, quantise) and
//! f32 tensors in safetensors files ([`tensors`]), every write atomic.

pub mod image;
pub mod tensors;

pub use tensors::write_atomic;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Largest text file (config.json, index json, run file) read: a hostile path (`/dev/zero`, a
/// multi-GB file) must not hang or exhaust memory.
pub const MAX_TEXT_FILE: u64 = 64 << 20;

/// Reads a small text file (a config), refusing what is not a regular file or is larger than
/// [`MAX_TEXT_FILE`].
pub fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Input(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if meta.len() > MAX_TEXT_FILE {
        return Err(Error::Input(format!(
            "{} is {} bytes; a config file is at most {} MB",
            path.display(),
            meta.len(),
            MAX_TEXT_FILE >> 20
        )));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TEXT_FILE).read_to_string(&mut text))
        .map_err(|e| Error::io(path, e))?;
    Ok(text)
}

/// Reads a config file with [`read_text`] and parses it; a parse error names the file.
pub fn read_config<T, E: std::fmt::Display>(
    path: &Path,
    parse: impl FnOnce(&str) -> std::result::Result<T, E>,
) -> Result<T> {
    parse(&read_text(path)?).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Refuses paths that are not regular files (devices, FIFOs, folders) before they are read
/// whole.
pub fn check_regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        Ok(())
    } else if meta.is_dir() {
        Err(Error::Input(format!(
            "{} is a folder, not a file",
            path.display()
        )))
    } else {
        Err(Error::Input(format!(
            "{} is not a regular file",
            path.display()
        )))
    }
}

/// `p` with every link resolved; for a path that does not exist yet, its folder's.
fn resolved(p: &Path) -> Option<PathBuf> {
    if let Ok(r) = p.canonicalize() {
        return Some(r);
    }
    let name = p.file_name()?;
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = match parent {
        Some(d) => d.canonicalize().ok()?,
        None => std::env::current_dir().ok()?,
    };
    Some(dir.join(name))
}

/// Refuses to write `output` when it is, or resolves to through links, one of `inputs` (an
/// input image, latent, tensor file, or a file of the model folder): checked before anything
/// runs, so a typo never destroys data.
pub fn refuse_overwrite(output: &Path, inputs: &[PathBuf]) -> Result<()> {
    let Some(out) = resolved(output) else {
        return Ok(());
    };
    for input in inputs {
        if resolved(input).is_some_and(|i| i == out) {
            return Err(Error::Input(format!(
                "refusing to write {}: it is the input {}; choose another output path",
                output.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Every file directly in `dir` (a model folder's config and weights), for
/// [`refuse_overwrite`]; empty when `dir` is not a folder.
pub fn folder_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_that_are_inputs_are_refused_through_links() {
        let dir = std::env::temp_dir().join(format!("dcae-overwrite-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("model")).unwrap();
        let input = dir.join("x.png");
        std::fs::write(&input, b"x").unwrap();
        std::fs::write(dir.join("model/model.safetensors"), b"w").unwrap();
        let inputs = [vec![input.clone()], folder_files(&dir.join("model"))].concat();
        assert!(refuse_overwrite(&input, &inputs).is_err());
        // The same file by another spelling.
        let dotted = dir.join("model/../x.png");
        assert!(refuse_overwrite(&dotted, &inputs).is_err());
        assert!(refuse_overwrite(&dir.join("model/model.safetensors"), &inputs).is_err());
        #[cfg(unix)]
        {
            let link = dir.join("link.png");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&input, &link).unwrap();
            let e = refuse_overwrite(&link, &inputs).unwrap_err().to_string();
            assert!(
                e.contains("refusing to write") && e.contains("x.png"),
                "{e}"
            );
        }
        refuse_overwrite(&dir.join("new.png"), &inputs).unwrap();
        refuse_overwrite(&dir.join("model/other.png"), &inputs).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

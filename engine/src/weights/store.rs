//! [`WeightStore`]: validated safetensors files (one file, or the shards a
//! `*.safetensors.index.json` lists) with every tensor under its canonical name
//! ([`super::remap`]) and strict consumption tracking: the model builder takes each tensor once
//! by name with its expected shape, and [`WeightStore::finish`] fails on anything left over.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use super::remap::{KeyLayout, Source, canonicalise, detect_layout};
use crate::error::{Error, Result};
use crate::io::tensors::decode_floats;

/// Where the bytes of one raw tensor live.
#[derive(Debug, Clone)]
pub(crate) struct RawInfo {
    /// Index into [`WeightStore::files`].
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    range: std::ops::Range<usize>,
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

struct Shard {
    path: PathBuf,
    bytes: Bytes,
}

/// A validated checkpoint with canonical key names and consumption tracking.
pub struct WeightStore {
    files: Vec<Shard>,
    raw: BTreeMap<String, RawInfo>,
    canonical: BTreeMap<String, Source>,
    taken: BTreeSet<String>,
    layout: KeyLayout,
}

/// A tensor converted to f32, row-major.
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub(crate) fn corrupt(path: &Path, message: impl Into<String>) -> Error {
    Error::CorruptWeights {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn map_file(path: &Path) -> Result<Bytes> {
    crate::io::check_regular_file(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < 8 {
        return Err(corrupt(
            path,
            format!("{len} bytes is too short for a safetensors header (empty or truncated file)"),
        ));
    }
    // SAFETY: the map is read-only; a concurrent writer could change the bytes under us,
    // which would give wrong numbers but not memory unsafety in our use (we only copy out).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Bytes::Mapped(map))
}

/// Every raw tensor of one validated file whose name starts with `prefix` (stripped).
fn index_file(
    path: &Path,
    bytes: &[u8],
    file: usize,
    prefix: &str,
) -> Result<BTreeMap<String, RawInfo>> {
    SafeTensors::deserialize(bytes).map_err(|e| corrupt(path, e.to_string()))?;
    crate::io::tensors::check_unique_keys(bytes).map_err(|m| corrupt(path, m))?;
    let (header, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| corrupt(path, e.to_string()))?;
    let base = 8 + header;
    let mut raw = BTreeMap::new();
    for (name, info) in meta.tensors() {
        let Some(name) = name.strip_prefix(prefix) else {
            continue;
        };
        let (a, b) = info.data_offsets;
        raw.insert(
            name.to_string(),
            RawInfo {
                file,
                dtype: info.dtype,
                shape: info.shape.clone(),
                range: base + a..base + b,
            },
        );
    }
    Ok(raw)
}

/// The `weight_map` of a safetensors index json (`model.safetensors.index.json`): tensor key
/// -> shard file name. `path` names the index in errors.
pub fn index_weight_map(text: &str, path: &Path) -> Result<BTreeMap<String, String>> {
    let bad = |message: String| Error::Config {
        path: path.to_path_buf(),
        message,
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no `weight_map` object (not a safetensors index)".into()))?;
    map.iter()
        .map(|(k, f)| match f.as_str() {
            Some(f) => Ok((k.clone(), f.to_string())),
            None => Err(bad(format!("weight_map[`{k}`] is not a file name"))),
        })
        .collect()
}

/// The weights file of a model component folder: `<stem>.safetensors.index.json` when it
/// exists (the shards it lists win over a stale single file beside it), else
/// `<stem>.safetensors`.
pub fn component_weights(dir: &Path, stem: &str) -> Option<PathBuf> {
    let index = dir.join(format!("{stem}.safetensors.index.json"));
    if index.is_file() {
        return Some(index);
    }
    let single = dir.join(format!("{stem}.safetensors"));
    single.is_file().then_some(single)
}

/// The weights of a diffusers / transformers component folder in a precision variant
/// (`fp16`, `bf16`; the name only — the dtypes are read from each header):
/// `<stem>.safetensors.index.<v>.json` or `<stem>.<v>.safetensors`. Without a variant: the
/// plain files when present, else the one variant the folder holds (a download of only
/// `--variant bf16`). An index always wins over a single file beside it.
pub fn component_weights_variant(dir: &Path, stem: &str, variant: Option<&str>) -> Result<PathBuf> {
    let of = |v: &str| {
        let index = dir.join(format!("{stem}.safetensors.index.{v}.json"));
        let single = dir.join(format!("{stem}.{v}.safetensors"));
        if index.is_file() {
            Some(index)
        } else {
            single.is_file().then_some(single)
        }
    };
    let found = match variant {
        Some(v) => of(v),
        None => component_weights(dir, stem).or_else(|| {
            let present: Vec<PathBuf> = ["bf16", "fp16", "fp32"]
                .iter()
                .filter_map(|v| of(v))
                .collect();
            (present.len() == 1).then(|| present[0].clone())
        }),
    };
    found.ok_or_else(|| {
        Error::MissingFile(format!(
            "{}: no {stem}{} weights (.safetensors or .safetensors.index.json)",
            dir.display(),
            variant
                .map(|v| format!(" `{v}` variant"))
                .unwrap_or_default()
        ))
    })
}

impl WeightStore {
    /// Memory-maps and validates `path`; the key layout is detected (a DC-AE checkpoint).
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_prefixed(path, "", None)
    }

    /// Like [`WeightStore::from_file`], but sees only the keys under `prefix` (stripped), for
    /// files that hold several models (`diffusion_model.` + `autoencoder.` in the DC-AE
    /// diffusion checkpoints). `layout` overrides detection (`Some(AsIs)` keeps every name as
    /// it is, which is what non-autoencoder modules need).
    pub fn from_file_prefixed(
        path: &Path,
        prefix: &str,
        layout: Option<KeyLayout>,
    ) -> Result<Self> {
        let bytes = map_file(path)?;
        Self::build(vec![(path.to_path_buf(), bytes)], prefix, layout)
    }

    /// Validates an in-memory safetensors buffer (embedded models, tests).
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Self> {
        Self::build(vec![(PathBuf::from(name), Bytes::Owned(bytes))], "", None)
    }

    /// One file, or the shards a `*.safetensors.index.json` names (`weight_map`: key ->
    /// shard file beside the index). Strict: a listed shard that is missing, a key the index
    /// puts in a shard that lacks it, or a shard key the index does not list is an error.
    pub fn from_weights(path: &Path, layout: Option<KeyLayout>) -> Result<Self> {
        let name = path.to_string_lossy();
        if !name.ends_with(".index.json") {
            return Self::from_file_prefixed(path, "", layout);
        }
        let text = crate::io::read_text(path)?;
        let map = index_weight_map(&text, path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut shards: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, file) in &map {
            if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    message: format!("shard `{file}` is not a plain file name beside the index"),
                });
            }
            shards.entry(file.clone()).or_default().push(key.clone());
        }
        if shards.is_empty() {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: "`weight_map` is empty".into(),
            });
        }
        let mut files = Vec::new();
        for file in shards.keys() {
            let p = dir.join(file);
            if !p.is_file() {
                return Err(Error::MissingFile(format!(
                    "{} lists shard {file}, which is not in {}",
                    path.display(),
                    dir.display()
                )));
            }
            files.push((p.clone(), map_file(&p)?));
        }
        let store = Self::build(files, "", layout)?;
        for (i, keys) in shards.values().enumerate() {
            let shard = &store.files[i].path;
            for k in keys {
                if store.raw.get(k).is_none_or(|r| r.file != i) {
                    return Err(corrupt(
                        shard,
                        format!("the index puts `{k}` in this shard, but it is not there"),
                    ));
                }
            }
        }
        if let Some((k, r)) = store.raw.iter().find(|(k, _)| !map.contains_key(*k)) {
            return Err(corrupt(
                &store.files[r.file].path,
                format!("`{k}` is in this shard but not in {}", path.display()),
            ));
        }
        Ok(store)
    }

    fn build(
        files: Vec<(PathBuf, Bytes)>,
        prefix: &str,
        forced: Option<KeyLayout>,
    ) -> Result<Self> {
        let mut raw: BTreeMap<String, RawInfo> = BTreeMap::new();
        for (i, (path, bytes)) in files.iter().enumerate() {
            for (k, info) in index_file(path, bytes, i, prefix)? {
                if let Some(prev) = raw.get(&k) {
                    return Err(corrupt(
                        path,
                        format!("`{k}` is also in {}", files[prev.file].0.display()),
                    ));
                }
                raw.insert(k, info);
            }
        }
        let first = &files[0].0;
        if raw.is_empty() {
            return Err(corrupt(
                first,
                if prefix.is_empty() {
                    "the file holds no tensors".to_string()
                } else {
                    format!("the file holds no tensors under `{prefix}`")
                },
            ));
        }
        let layout = forced
            .or_else(|| detect_layout(raw.keys()))
            .ok_or_else(|| {
                corrupt(
                    first,
                    format!(
                        "keys are neither diffusers nor efficientvit DC-AE keys (first key `{}`)",
                        raw.keys().next().map(String::as_str).unwrap_or("")
                    ),
                )
            })?;
        let canonical = canonicalise(layout, raw.keys())?;
        Ok(Self {
            files: files
                .into_iter()
                .map(|(path, bytes)| Shard { path, bytes })
                .collect(),
            raw,
            canonical,
            taken: BTreeSet::new(),
            layout,
        })
    }

    /// Every tensor name in a safetensors file (header only), sorted.
    pub fn file_keys(path: &Path) -> Result<Vec<String>> {
        let bytes = map_file(path)?;
        let (_, meta) =
            SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(path, e.to_string()))?;
        let mut k: Vec<String> = meta.tensors().into_keys().collect();
        k.sort();
        Ok(k)
    }

    /// Detected (or forced) key layout.
    pub fn layout(&self) -> KeyLayout {
        self.layout
    }

    /// Number of raw tensors.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True when the store holds no tensors (never, after validation).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The dtype a tensor is stored in (by canonical name; fused tensors report their first
    /// part's).
    pub fn dtype(&self, key: &str) -> Option<Dtype> {
        let name = match self.canonical.get(key)? {
            Source::One(n) => n,
            Source::Cat(v) => v.first()?,
        };
        self.raw.get(name).map(|r| r.dtype)
    }

    /// Takes the tensor with canonical name `key`, checking its shape.
    pub fn take(&mut self, key: &str, expected: &[usize]) -> Result<RawTensor> {
        let Some(src) = self.canonical.get(key).cloned() else {
            return Err(Error::MissingKey {
                key: key.to_string(),
                expected: expected.to_vec(),
            });
        };
        self.taken.insert(key.to_string());
        let t = match src {
            Source::One(name) => self.read(&name)?,
            Source::Cat(names) => {
                let parts = names
                    .iter()
                    .map(|n| self.read(n))
                    .collect::<Result<Vec<_>>>()?;
                let rest = parts[0].shape[1..].to_vec();
                if parts.iter().any(|p| p.shape[1..] != rest[..]) {
                    return Err(Error::ShapeMismatch {
                        key: key.to_string(),
                        expected: expected.to_vec(),
                        found: parts[0].shape.clone(),
                    });
                }
                let rows: usize = parts.iter().map(|p| p.shape[0]).sum();
                let mut shape = vec![rows];
                shape.extend(rest);
                let data = parts.into_iter().flat_map(|p| p.data).collect();
                RawTensor { shape, data }
            }
        };
        // 1x1 convs stored as Linear [out, in] (diffusers) become [out, in, 1, 1].
        let shape = if t.shape.len() == 2 && expected.len() == 4 && expected[2..] == [1, 1] {
            vec![t.shape[0], t.shape[1], 1, 1]
        } else {
            t.shape
        };
        if shape != expected {
            return Err(Error::ShapeMismatch {
                key: key.to_string(),
                expected: expected.to_vec(),
                found: shape,
            });
        }
        Ok(RawTensor {
            shape,
            data: t.data,
        })
    }

    /// Marks an optional buffer (BatchNorm `num_batches_tracked`) as seen if present.
    pub fn skip_if_present(&mut self, key: &str) {
        if self.canonical.contains_key(key) {
            self.taken.insert(key.to_string());
        }
    }

    /// Fails if any tensor was not used by the architecture.
    pub fn finish(self) -> Result<()> {
        let left: Vec<&String> = self
            .canonical
            .keys()
            .filter(|k| !self.taken.contains(*k))
            .collect();
        match left.first() {
            None => Ok(()),
            Some(first) => Err(Error::UnexpectedKeys {
                count: left.len(),
                first: self.canonical[*first].raw_name(),
            }),
        }
    }

    fn read(&self, name: &str) -> Result<RawTensor> {
        let info = &self.raw[name];
        let shard = &self.files[info.file];
        let bytes = &shard.bytes[info.range.clone()];
        let data = decode_floats(info.dtype, bytes).ok_or_else(|| Error::BadDtype {
            key: name.to_string(),
            dtype: format!("{:?}", info.dtype),
        })?;
        if !data.iter().all(|x| x.is_finite()) {
            return Err(corrupt(
                &shard.path,
                format!("weight `{name}` holds NaN or infinite values"),
            ));
        }
        Ok(RawTensor {
            shape: info.shape.clone(),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_garbage_files_are_errors() {
        for bytes in [vec![], vec![1, 2, 3], b"\x10\0\0\0\0\0\0\0{\"a\":".to_vec()] {
            let e = WeightStore::from_bytes("x.safetensors", bytes)
                .err()
                .unwrap();
            assert!(matches!(e, Error::CorruptWeights { .. }), "{e}");
        }
    }
}

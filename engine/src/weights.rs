//! Checkpoint reading: one loader for both released key layouts.
//!
//! A [`WeightStore`] memory-maps a safetensors file, validates its header, detects the key layout
//! (diffusers or original efficientvit) and exposes every tensor under one *canonical* name:
//! the diffusers name, except that `attn.to_q/to_k/to_v` are fused into one `attn.qkv` weight
//! [3T, C, 1, 1] (the original layout; the three diffusers "roles" are just thirds of it, cut
//! across head boundaries) and every 1x1 conv is 4-D. The model builder takes each tensor by
//! canonical name with its expected shape; [`WeightStore::finish`] then fails on anything left.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::tensor_io::decode_floats;

/// Key layout of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// diffusers `AutoencoderDC` (`encoder.down_blocks.1.0.conv1.weight`, ...).
    Diffusers,
    /// mit-han-lab/efficientvit `DCAE` (`encoder.stages.1.op_list.0.main.conv1.conv.weight`, ...).
    EfficientVit,
}

/// Where the bytes of one raw tensor live.
#[derive(Debug, Clone)]
struct RawInfo {
    dtype: Dtype,
    shape: Vec<usize>,
    range: std::ops::Range<usize>,
}

/// How a canonical tensor is assembled from raw tensors.
#[derive(Debug, Clone)]
enum Source {
    One(String),
    /// Concatenate along dim 0 (diffusers to_q, to_k, to_v -> fused qkv).
    Cat(Vec<String>),
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

/// A validated checkpoint with canonical key names and consumption tracking.
pub struct WeightStore {
    path: PathBuf,
    bytes: Bytes,
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

fn corrupt(path: &Path, message: impl Into<String>) -> Error {
    Error::CorruptWeights {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl WeightStore {
    /// Memory-maps and validates `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < 8 {
            return Err(corrupt(
                path,
                format!(
                    "{len} bytes is too short for a safetensors header (empty or truncated file)"
                ),
            ));
        }
        // SAFETY: the map is read-only; a concurrent writer could change the bytes under us,
        // which would give wrong numbers but not memory unsafety in our use (we only copy out).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::from_bytes_inner(path, Bytes::Mapped(map), "", None)
    }

    /// Like [`WeightStore::from_file`], but sees only the keys under `prefix` (stripped), for
    /// files that hold several models (`diffusion_model.` + `autoencoder.` in the DC-AE
    /// diffusion checkpoints). `layout` overrides detection (`Some(Diffusers)` keeps every name
    /// as it is, which is what non-autoencoder modules need).
    pub fn from_file_prefixed(
        path: &Path,
        prefix: &str,
        layout: Option<KeyLayout>,
    ) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: as in `from_file`.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::from_bytes_inner(path, Bytes::Mapped(map), prefix, layout)
    }

    /// Every tensor name in a safetensors file (header only), sorted.
    pub fn file_keys(path: &Path) -> Result<Vec<String>> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: as in `from_file`; only the header is read.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (_, meta) =
            SafeTensors::read_metadata(&map).map_err(|e| corrupt(path, e.to_string()))?;
        let mut k: Vec<String> = meta.tensors().into_keys().collect();
        k.sort();
        Ok(k)
    }

    /// Validates an in-memory safetensors buffer (tests, downloads).
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Self> {
        Self::from_bytes_inner(Path::new(name), Bytes::Owned(bytes), "", None)
    }

    fn from_bytes_inner(
        path: &Path,
        bytes: Bytes,
        prefix: &str,
        forced: Option<KeyLayout>,
    ) -> Result<Self> {
        SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, e.to_string()))?;
        let (header, meta) =
            SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(path, e.to_string()))?;
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
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    range: base + a..base + b,
                },
            );
        }
        if raw.is_empty() {
            return Err(corrupt(
                path,
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
                    path,
                    format!(
                        "keys are neither diffusers nor efficientvit DC-AE keys (first key `{}`)",
                        raw.keys().next().map(String::as_str).unwrap_or("")
                    ),
                )
            })?;
        let canonical = canonicalise(layout, &raw)?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            raw,
            canonical,
            taken: BTreeSet::new(),
            layout,
        })
    }

    /// Detected key layout.
    pub fn layout(&self) -> KeyLayout {
        self.layout
    }

    /// Number of raw tensors in the file.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True when the file holds no tensors (never, after validation).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
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

    /// Fails if any tensor in the file was not used by the architecture.
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
                first: raw_name(&self.canonical[*first]),
            }),
        }
    }

    fn read(&self, name: &str) -> Result<RawTensor> {
        let info = &self.raw[name];
        let bytes = &self.bytes[info.range.clone()];
        let data = decode_floats(info.dtype, bytes).ok_or_else(|| Error::BadDtype {
            key: name.to_string(),
            dtype: format!("{:?}", info.dtype),
        })?;
        if !data.iter().all(|x| x.is_finite()) {
            return Err(corrupt(
                &self.path,
                format!("weight `{name}` holds NaN or infinite values"),
            ));
        }
        Ok(RawTensor {
            shape: info.shape.clone(),
            data,
        })
    }
}

fn raw_name(src: &Source) -> String {
    match src {
        Source::One(n) => n.clone(),
        Source::Cat(v) => v.join(" + "),
    }
}

fn detect_layout<'a>(keys: impl Iterator<Item = &'a String>) -> Option<KeyLayout> {
    let (mut d, mut e) = (0, 0);
    for k in keys {
        if k.contains(".stages.") || k.contains("project_in") || k.contains("project_out") {
            e += 1;
        } else if k.contains("_blocks.") || k.contains("conv_in") || k.contains("conv_out") {
            d += 1;
        }
    }
    match (d, e) {
        (d, 0) if d > 0 => Some(KeyLayout::Diffusers),
        (0, e) if e > 0 => Some(KeyLayout::EfficientVit),
        _ => None,
    }
}

fn canonicalise(
    layout: KeyLayout,
    raw: &BTreeMap<String, RawInfo>,
) -> Result<BTreeMap<String, Source>> {
    let mut out: BTreeMap<String, Source> = BTreeMap::new();
    for name in raw.keys() {
        // Unknown efficientvit keys keep their name so `finish` reports them as unexpected.
        let canon = match layout {
            KeyLayout::Diffusers => name.clone(),
            KeyLayout::EfficientVit => {
                efficientvit_to_canonical(name).unwrap_or_else(|| name.clone())
            }
        };
        if let Some(prefix) = canon.strip_suffix(".attn.to_q.weight") {
            let parts = ["to_q", "to_k", "to_v"].map(|r| format!("{prefix}.attn.{r}.weight"));
            // The fused weight needs all three thirds; a missing one is reported by name.
            for p in &parts {
                if !raw.contains_key(p) {
                    return Err(Error::MissingKey {
                        key: p.clone(),
                        expected: vec![],
                    });
                }
            }
            out.insert(
                format!("{prefix}.attn.qkv.weight"),
                Source::Cat(parts.to_vec()),
            );
            continue;
        }
        if canon.ends_with(".attn.to_k.weight") || canon.ends_with(".attn.to_v.weight") {
            let prefix = canon.rsplitn(3, '.').nth(2).unwrap_or_default();
            if !raw.contains_key(&format!("{prefix}.to_q.weight")) {
                return Err(Error::MissingKey {
                    key: format!("{prefix}.to_q.weight"),
                    expected: vec![],
                });
            }
            continue;
        }
        out.insert(canon, Source::One(name.clone()));
    }
    Ok(out)
}

/// Maps one original efficientvit key to its canonical (diffusers-style) name.
/// Returns `None` for keys of no known pattern.
pub fn efficientvit_to_canonical(name: &str) -> Option<String> {
    let p: Vec<&str> = name.split('.').collect();
    let join = |head: &str, tail: &[&str]| -> String {
        if tail.is_empty() {
            head.to_string()
        } else {
            format!("{head}.{}", tail.join("."))
        }
    };
    match p.as_slice() {
        ["encoder", "project_in", "conv", rest @ ..] => Some(join("encoder.conv_in", rest)),
        ["encoder", "project_out", "main", "op_list", "0", "conv", t]
        | ["encoder", "project_out", "op_list", "0", "conv", t] => {
            Some(format!("encoder.conv_out.{t}"))
        }
        ["decoder", "project_in", "main", "conv", t] | ["decoder", "project_in", "conv", t] => {
            Some(format!("decoder.conv_in.{t}"))
        }
        ["decoder", "project_out", "op_list", "0", t] => Some(format!("decoder.norm_out.{t}")),
        ["decoder", "project_out", "op_list", "2", "conv", rest @ ..] => {
            Some(join("decoder.conv_out", rest))
        }
        [
            part @ ("encoder" | "decoder"),
            "stages",
            i,
            "op_list",
            j,
            rest @ ..,
        ] => {
            let blocks = if *part == "encoder" {
                "down_blocks"
            } else {
                "up_blocks"
            };
            let tail = block_tail(rest)?;
            Some(format!("{part}.{blocks}.{i}.{j}.{tail}"))
        }
        _ => None,
    }
}

fn block_tail(rest: &[&str]) -> Option<String> {
    let s = match rest {
        ["main", c @ ("conv1" | "conv2"), "conv", t] => format!("{c}.{t}"),
        ["main", "conv2", "norm", t] => format!("norm.{t}"),
        ["main", "conv", "conv", t] | ["main", "conv", t] => format!("conv.{t}"),
        ["context_module", "main", "qkv", "conv", "weight"] => "attn.qkv.weight".into(),
        ["context_module", "main", "aggreg", k, "0", "weight"] => {
            format!("attn.to_qkv_multiscale.{k}.proj_in.weight")
        }
        ["context_module", "main", "aggreg", k, "1", "weight"] => {
            format!("attn.to_qkv_multiscale.{k}.proj_out.weight")
        }
        ["context_module", "main", "proj", "conv", "weight"] => "attn.to_out.weight".into(),
        ["context_module", "main", "proj", "norm", t] => format!("attn.norm_out.{t}"),
        ["local_module", "main", "inverted_conv", "conv", t] => {
            format!("conv_out.conv_inverted.{t}")
        }
        ["local_module", "main", "depth_conv", "conv", t] => format!("conv_out.conv_depth.{t}"),
        ["local_module", "main", "point_conv", "conv", t] => format!("conv_out.conv_point.{t}"),
        ["local_module", "main", "point_conv", "norm", t] => format!("conv_out.norm.{t}"),
        _ => return None,
    };
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efficientvit_keys_map_to_diffusers_names() {
        let cases = [
            ("encoder.project_in.conv.weight", "encoder.conv_in.weight"),
            (
                "encoder.project_in.conv.conv.bias",
                "encoder.conv_in.conv.bias",
            ),
            (
                "encoder.stages.1.op_list.0.main.conv1.conv.weight",
                "encoder.down_blocks.1.0.conv1.weight",
            ),
            (
                "decoder.stages.2.op_list.3.main.conv2.norm.running_var",
                "decoder.up_blocks.2.3.norm.running_var",
            ),
            (
                "encoder.stages.1.op_list.2.main.conv.bias",
                "encoder.down_blocks.1.2.conv.bias",
            ),
            (
                "decoder.stages.4.op_list.0.main.conv.conv.weight",
                "decoder.up_blocks.4.0.conv.weight",
            ),
            (
                "encoder.stages.3.op_list.1.context_module.main.aggreg.0.1.weight",
                "encoder.down_blocks.3.1.attn.to_qkv_multiscale.0.proj_out.weight",
            ),
            (
                "decoder.stages.5.op_list.1.local_module.main.point_conv.norm.bias",
                "decoder.up_blocks.5.1.conv_out.norm.bias",
            ),
            (
                "encoder.project_out.main.op_list.0.conv.weight",
                "encoder.conv_out.weight",
            ),
            (
                "encoder.project_out.op_list.0.conv.bias",
                "encoder.conv_out.bias",
            ),
            ("decoder.project_in.main.conv.bias", "decoder.conv_in.bias"),
            (
                "decoder.project_out.op_list.0.weight",
                "decoder.norm_out.weight",
            ),
            (
                "decoder.project_out.op_list.2.conv.conv.weight",
                "decoder.conv_out.conv.weight",
            ),
        ];
        for (evit, canon) in cases {
            assert_eq!(
                efficientvit_to_canonical(evit).as_deref(),
                Some(canon),
                "{evit}"
            );
        }
        assert_eq!(
            efficientvit_to_canonical("encoder.stages.1.op_list.0.foo"),
            None
        );
    }

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

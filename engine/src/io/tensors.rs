//! Reading and writing named f32 tensors in safetensors files (CLI inputs and outputs).

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{Error, Result};

/// A named tensor read from a file, converted to f32.
#[derive(Debug, Clone)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Little-endian float bytes of `dtype` to f32; `None` for non-float dtypes.
pub(crate) fn decode_floats(dtype: Dtype, b: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        _ => return None,
    })
}

/// Fails when a safetensors header (already validated) names a tensor twice: JSON parsers keep
/// the last one silently, so two tools could read different tensors from one file.
pub(crate) fn check_unique_keys(bytes: &[u8]) -> std::result::Result<(), String> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut dup = None;
            while let Some(k) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(k.clone()) && dup.is_none() {
                    dup = Some(k);
                }
            }
            Ok(dup)
        }
    }
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
        .ok_or("no header")?;
    let header = bytes.get(8..8 + n).ok_or("truncated header")?;
    let mut de = serde_json::Deserializer::from_slice(header);
    match de.deserialize_map(Keys) {
        Ok(None) => Ok(()),
        Ok(Some(k)) => Err(format!("the header names `{k}` twice")),
        Err(e) => Err(e.to_string()),
    }
}

/// A safetensors file read once; tensors are converted to f32 on request.
pub struct TensorFile {
    path: std::path::PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    /// Reads and validates the file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_kind(path, "safetensors file")
    }

    /// [`Self::open`] naming what the file should be in errors (`latent file`, `image tensor
    /// file`). Header keys are checked for duplicates (a JSON parser would keep the last).
    pub fn open_kind(path: &Path, kind: &str) -> Result<Self> {
        crate::io::check_regular_file(path)?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(path, bytes, kind)
    }

    /// A file's bytes already in memory; `path` names it in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>, kind: &str) -> Result<Self> {
        let bad = |m: String| {
            Error::Input(format!(
                "{} is not a readable {kind} (safetensors): {m}",
                path.display()
            ))
        };
        SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        check_unique_keys(&bytes).map_err(bad)?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
        })
    }

    fn view(&self) -> SafeTensors<'_> {
        // Validated in `open`.
        SafeTensors::deserialize(&self.bytes).expect("validated in TensorFile::open")
    }

    /// Tensor names, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.view().names().into_iter().map(String::from).collect();
        k.sort();
        k
    }

    /// The header's string metadata, if any.
    pub fn metadata(&self) -> HashMap<String, String> {
        SafeTensors::read_metadata(&self.bytes)
            .ok()
            .and_then(|(_, m)| m.metadata().clone())
            .unwrap_or_default()
    }

    /// Tensor `key` as f32 (F32, F16, BF16, F64 accepted).
    pub fn tensor(&self, key: &str) -> Result<HostTensor> {
        let st = self.view();
        let view = st.tensor(key).map_err(|_| {
            Error::Input(format!(
                "{}: no tensor `{key}` (found: {})",
                self.path.display(),
                self.keys().join(", ")
            ))
        })?;
        let data = decode_floats(view.dtype(), view.data()).ok_or_else(|| {
            Error::Input(format!(
                "{}: tensor `{key}` has dtype {:?}; expected a float type",
                self.path.display(),
                view.dtype()
            ))
        })?;
        Ok(HostTensor {
            shape: view.shape().to_vec(),
            data,
        })
    }
}

/// Reads tensor `key` from a safetensors file as f32 (F32, F16, BF16, F64 accepted).
pub fn read_tensor(path: &Path, key: &str) -> Result<HostTensor> {
    TensorFile::open(path)?.tensor(key)
}

/// Writes f32 tensors atomically (temp file + rename), with optional string metadata.
pub fn write_tensors(
    path: &Path,
    tensors: &[(&str, &HostTensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    write_tensors_as(path, tensors, metadata, Dtype::F32)
}

/// [`write_tensors`] storing every tensor as `dtype` (F32, F16 or BF16).
pub fn write_tensors_as(
    path: &Path,
    tensors: &[(&str, &HostTensor)],
    metadata: Option<HashMap<String, String>>,
    dtype: Dtype,
) -> Result<()> {
    let encode = |v: &f32| -> Vec<u8> {
        match dtype {
            Dtype::F16 => half::f16::from_f32(*v).to_le_bytes().to_vec(),
            Dtype::BF16 => half::bf16::from_f32(*v).to_le_bytes().to_vec(),
            _ => v.to_le_bytes().to_vec(),
        }
    };
    let dtype = match dtype {
        Dtype::F16 | Dtype::BF16 => dtype,
        _ => Dtype::F32,
    };
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| t.data.iter().flat_map(encode).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            TensorView::new(dtype, t.shape.clone(), b)
                .map(|v| (name.to_string(), v))
                .map_err(|e| Error::Input(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = safetensors::serialize(views, metadata).map_err(|e| Error::Input(e.to_string()))?;
    write_atomic(path, &sorted_header(out))
}

/// The same file with its header's keys sorted. `safetensors::serialize` writes the metadata
/// map in `HashMap` order, which changes from run to run; sorted, one input always gives the
/// same bytes. Offsets are relative to the data, so only the header is rewritten.
fn sorted_header(file: Vec<u8>) -> Vec<u8> {
    let n = file
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize);
    let Some(n) = n.filter(|&n| 8 + n <= file.len()) else {
        return file;
    };
    // serde_json's map is ordered by key (no `preserve_order` in this workspace).
    let Ok(header) = serde_json::from_slice::<serde_json::Value>(&file[8..8 + n]) else {
        return file;
    };
    let mut text = header.to_string().into_bytes();
    // Pad with spaces to a multiple of 8, as safetensors aligns the data.
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + file.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&file[8 + n..]);
    out
}

/// Writes `bytes` to `path` via a temporary file in the same folder and a rename, so a crash
/// never leaves a half-written file under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and call: two threads writing one path must not share a temp file.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp{}-{n}", std::process::id()));
    // fsync before the rename: after a power loss the file under the final name is complete.
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        use std::io::Write;
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        // The final name is what the user gave; the temp file is ours.
        return Err(Error::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Number of tensor elements a safetensors file declares, from its header alone (the file's
/// data is not read: memory plans of multi-GB checkpoints cost a few KB of I/O).
pub fn header_elements(path: &Path) -> Result<u64> {
    use std::io::Read;
    let bad = |m: String| Error::CorruptWeights {
        path: path.to_path_buf(),
        message: m,
    };
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| bad("shorter than a safetensors header".into()))?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return Err(bad(format!("header of {n} bytes (over 100 MiB)")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|_| bad("truncated header".into()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("header is not a JSON object".into()))?;
    let mut total = 0u64;
    for (k, t) in obj {
        if k == "__metadata__" {
            continue;
        }
        let shape = t["shape"]
            .as_array()
            .ok_or_else(|| bad(format!("`{k}` has no shape")))?;
        let mut e = 1u64;
        for d in shape {
            e = e.saturating_mul(d.as_u64().ok_or_else(|| bad(format!("`{k}` shape")))?);
        }
        total = total.saturating_add(e);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metadata in a `HashMap` comes out in a random order; the written file does not.
    #[test]
    fn files_with_metadata_are_byte_identical_run_to_run() {
        let dir = std::env::temp_dir().join(format!("dcae-sorted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = HostTensor {
            shape: vec![2, 3],
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        let meta = || -> HashMap<String, String> {
            (0..16)
                .map(|i| (format!("key{i}"), i.to_string()))
                .collect()
        };
        let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
        write_tensors(&a, &[("x", &t)], Some(meta())).unwrap();
        write_tensors(&b, &[("x", &t)], Some(meta())).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let f = TensorFile::open(&a).unwrap();
        assert_eq!(f.metadata(), meta());
        assert_eq!(f.tensor("x").unwrap().data, t.data);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

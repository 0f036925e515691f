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

/// Reads tensor `key` from a safetensors file as f32 (F32, F16, BF16, F64 accepted).
pub fn read_tensor(path: &Path, key: &str) -> Result<HostTensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::CorruptWeights {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let view = st.tensor(key).map_err(|_| {
        Error::Input(format!(
            "{}: no tensor `{key}` (found: {})",
            path.display(),
            st.names()
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let b = view.data();
    let data: Vec<f32> = match view.dtype() {
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
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        other => {
            return Err(Error::Input(format!(
                "{}: tensor `{key}` has dtype {other:?}; expected a float type",
                path.display()
            )));
        }
    };
    Ok(HostTensor {
        shape: view.shape().to_vec(),
        data,
    })
}

/// Writes f32 tensors atomically (temp file + rename), with optional string metadata.
pub fn write_tensors(
    path: &Path,
    tensors: &[(&str, &HostTensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (name.to_string(), v))
                .map_err(|e| Error::Input(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = safetensors::serialize(views, metadata).map_err(|e| Error::Input(e.to_string()))?;
    write_atomic(path, &out)
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
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

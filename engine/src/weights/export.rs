//! Writing a built module's parameters back to a safetensors file under their checkpoint keys
//! (random-weight pipelines for tests and benchmarks; the same keys the strict loader reads).

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::{DType, Tensor};

use crate::error::{Error, Result};
use crate::io::tensors::{HostTensor, write_tensors_as};

struct Collect<'a> {
    names: HashMap<ParamId, &'a str>,
    out: Vec<(String, HostTensor)>,
    err: Option<Error>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(name) = self.names.get(&param.id) else {
            return;
        };
        let t = param.val();
        let shape = t.dims().to_vec();
        match t.cast(DType::F32).into_data().try_to_vec::<f32>() {
            Ok(data) => self
                .out
                .push((name.to_string(), HostTensor { shape, data })),
            Err(e) => self.err = Some(Error::readback("a parameter", e)),
        }
    }
}

/// Writes every parameter of `m` named in `names` (from [`super::Builder::into_names`]) to
/// `path` as `dtype` (F32, F16, BF16), atomically.
pub fn write_module<M: Module>(
    m: &M,
    names: &[(ParamId, String)],
    path: &Path,
    dtype: safetensors::Dtype,
) -> Result<()> {
    let mut v = Collect {
        names: names.iter().map(|(id, n)| (*id, n.as_str())).collect(),
        out: Vec::new(),
        err: None,
    };
    m.visit(&mut v);
    if let Some(e) = v.err {
        return Err(e);
    }
    let refs: Vec<(&str, &HostTensor)> = v.out.iter().map(|(k, t)| (k.as_str(), t)).collect();
    write_tensors_as(path, &refs, None, dtype)
}

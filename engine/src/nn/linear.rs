//! `nn.Linear` with PyTorch `[out, in]` weights, so checkpoints load without transposes.

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use crate::error::Result;
use crate::weights::{Builder, Init};

/// `nn.Linear`: `y = x W^T + b`, over the last dimension.
#[derive(Module, Debug)]
pub struct Linear {
    /// [out, in]
    pub weight: Param<Tensor<2>>,
    /// [out]
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    pub fn build(b: &mut Builder, key: &str, cin: usize, cout: usize, bias: bool) -> Result<Self> {
        let weight = b.param(&format!("{key}.weight"), [cout, cin], Init::Fan(cin))?;
        let bias = if bias {
            Some(b.param(&format!("{key}.bias"), [cout], Init::Fan(cin))?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// # Shapes
    /// `[..., in] -> [..., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let w = self.weight.val();
        let [cout, cin] = w.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let mut y = x.cast(w.dtype()).reshape([rows, cin]).matmul(w.transpose());
        if let Some(b) = &self.bias {
            y = y + b.val().reshape([1, cout]);
        }
        let mut out = dims;
        out[D - 1] = cout;
        y.reshape(out)
    }
}

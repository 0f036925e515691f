//! timm `Mlp`: fc1, GELU (exact or tanh), fc2.

use crate::kernels::{gelu, gelu_tanh as gelu_approximate};
use burn::module::Module;
use burn::tensor::Tensor;

use super::Linear;
use crate::error::Result;
use crate::weights::Builder;

/// timm `Mlp`: fc1, GELU (exact or tanh), fc2.
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub tanh_gelu: bool,
}

impl Mlp {
    pub fn build(
        b: &mut Builder,
        key: &str,
        dim: usize,
        hidden: usize,
        tanh_gelu: bool,
    ) -> Result<Self> {
        Ok(Self {
            fc1: Linear::build(b, &format!("{key}.fc1"), dim, hidden, true)?,
            fc2: Linear::build(b, &format!("{key}.fc2"), hidden, dim, true)?,
            tanh_gelu,
        })
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.fc1.forward(x);
        let h = if self.tanh_gelu {
            gelu_approximate(h)
        } else {
            gelu(h)
        };
        self.fc2.forward(h)
    }
}

//! Activation functions by config name.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use crate::kernels::{gelu, silu};

/// Activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Relu,
    Silu,
    Gelu,
}

/// Applies an activation function.
pub fn activate<const D: usize>(x: Tensor<D>, act: Act) -> Tensor<D> {
    match act {
        Act::Relu => relu(x),
        Act::Silu => silu(x),
        Act::Gelu => gelu(x),
    }
}

/// Activation stored in a module (encoded as an index so the module derive can hold it).
pub(crate) fn act_code(a: Act) -> usize {
    match a {
        Act::Relu => 0,
        Act::Silu => 1,
        Act::Gelu => 2,
    }
}

pub(crate) fn act_from_code(c: usize) -> Act {
    match c {
        0 => Act::Relu,
        1 => Act::Silu,
        _ => Act::Gelu,
    }
}

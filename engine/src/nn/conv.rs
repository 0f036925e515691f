//! Convolutions: the "same"-padded square conv of every DC-AE block and the patch embedding
//! (kernel = stride) of the diffusion transformers.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::error::Result;
use crate::weights::{Builder, Init};

/// 2-D convolution with square kernel, "same" padding (k/2), optional bias.
#[derive(Module, Debug)]
pub struct Conv {
    /// [out, in / groups, k, k]
    pub weight: Param<Tensor<4>>,
    /// [out]
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: usize,
    pub groups: usize,
}

/// Shape of a [`Conv`]: `cin -> cout` channels, `k x k` kernel, stride, groups, bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub groups: usize,
    pub bias: bool,
}

impl ConvSpec {
    /// Stride 1, one group, with bias.
    pub fn new(cin: usize, cout: usize, k: usize) -> Self {
        Self {
            cin,
            cout,
            k,
            stride: 1,
            groups: 1,
            bias: true,
        }
    }

    pub fn stride(self, stride: usize) -> Self {
        Self { stride, ..self }
    }

    pub fn groups(self, groups: usize) -> Self {
        Self { groups, ..self }
    }

    pub fn no_bias(self) -> Self {
        Self {
            bias: false,
            ..self
        }
    }
}

impl Conv {
    pub fn build(b: &mut Builder, key: &str, spec: ConvSpec) -> Result<Self> {
        let ConvSpec {
            cin,
            cout,
            k,
            stride,
            groups,
            bias,
        } = spec;
        let fan_in = cin / groups * k * k;
        let weight = b.param(
            &format!("{key}.weight"),
            [cout, cin / groups, k, k],
            Init::Fan(fan_in),
        )?;
        let bias = if bias {
            Some(b.param(&format!("{key}.bias"), [cout], Init::Fan(fan_in))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride,
            groups,
        })
    }

    /// Runs in the weight dtype.
    ///
    /// # Shapes
    /// `[B, in, H, W] -> [B, out, H / stride, W / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let w = self.weight.val();
        let pad = w.dims()[2] / 2;
        let bias = self.bias.as_ref().map(|b| b.val());
        let x = x.cast(w.dtype());
        match crate::kernels::conv2d(x, &w, bias.as_ref(), self.stride, pad, self.groups) {
            Ok(y) => y,
            Err(x) => conv2d(
                x,
                w,
                bias,
                ConvOptions::new([self.stride; 2], [pad; 2], [1, 1], self.groups),
            ),
        }
    }
}

/// Conv2d with kernel = stride = p (patch embedding), flattened to tokens.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    /// [D, C, p, p]
    pub weight: Param<Tensor<4>>,
    pub bias: Param<Tensor<1>>,
}

impl PatchEmbed {
    pub fn build(b: &mut Builder, key: &str, cin: usize, dim: usize, p: usize) -> Result<Self> {
        let fan = cin * p * p;
        Ok(Self {
            weight: b.param(&format!("{key}.weight"), [dim, cin, p, p], Init::Fan(fan))?,
            bias: b.param(&format!("{key}.bias"), [dim], Init::Fan(fan))?,
        })
    }

    /// # Shapes
    /// `[B, C, H, W] -> [B, (H/p)(W/p), D]` (row-major tokens)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let w = self.weight.val();
        let p = w.dims()[2];
        let y = conv2d(
            x.cast(w.dtype()),
            w,
            Some(self.bias.val()),
            ConvOptions::new([p, p], [0, 0], [1, 1], 1),
        );
        let [bsz, d, h, ww] = y.dims();
        y.reshape([bsz, d, h * ww]).swap_dims(1, 2)
    }
}

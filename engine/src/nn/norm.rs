//! Normalisations, statistics always in f32: RMSNorm2d and eval-mode BatchNorm2d over channels
//! (DC-AE), LayerNorm over the last dimension (transformers).

use burn::module::{Module, Param};
use burn::tensor::{DType, Tensor};

use crate::error::Result;
use crate::kernels;
use crate::weights::{Builder, Init};

/// Normalisation layer of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormType {
    /// RMSNorm over channels with weight and bias, eps 1e-5.
    RmsNorm,
    /// BatchNorm2d in eval mode (running statistics), eps 1e-5.
    BatchNorm,
}

const NORM_EPS: f64 = 1e-5;

/// RMSNorm over the channel dimension with weight and bias (diffusers `RMSNorm(bias=True)`,
/// efficientvit `TritonRMSNorm2d`). The statistic is computed in f32.
#[derive(Module, Debug)]
pub struct RmsNorm2d {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
}

impl RmsNorm2d {
    pub fn build(b: &mut Builder, key: &str, c: usize) -> Result<Self> {
        Ok(Self {
            weight: b.param_f32(&format!("{key}.weight"), [c], Init::Ones)?,
            bias: b.param_f32(&format!("{key}.bias"), [c], Init::Zeros)?,
        })
    }

    /// # Shapes
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // One fused CPU kernel for f32 inference on burn-flex; Burn's ops everywhere else.
        let x = match kernels::rms_norm_2d(x, &self.weight.val(), &self.bias.val(), NORM_EPS as f32)
        {
            Ok(y) => return y,
            Err(x) => x,
        };
        let dtype = x.dtype();
        let c = self.weight.dims()[0];
        let xf = x.cast(DType::F32);
        let ms = xf.clone().powi_scalar(2).mean_dim(1);
        let y = xf * (ms + NORM_EPS).sqrt().recip();
        let w = self.weight.val().reshape([1, c, 1, 1]);
        let bias = self.bias.val().reshape([1, c, 1, 1]);
        (y * w + bias).cast(dtype)
    }
}

/// BatchNorm2d in eval mode (running statistics).
#[derive(Module, Debug)]
pub struct BatchNorm2d {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub running_mean: Param<Tensor<1>>,
    pub running_var: Param<Tensor<1>>,
}

impl BatchNorm2d {
    pub fn build(b: &mut Builder, key: &str, c: usize) -> Result<Self> {
        let n = Self {
            weight: b.param_f32(&format!("{key}.weight"), [c], Init::Ones)?,
            bias: b.param_f32(&format!("{key}.bias"), [c], Init::Zeros)?,
            running_mean: b.param_f32(&format!("{key}.running_mean"), [c], Init::Zeros)?,
            running_var: b.param_f32(&format!("{key}.running_var"), [c], Init::Ones)?,
        };
        b.skip(&format!("{key}.num_batches_tracked"));
        Ok(n)
    }

    /// # Shapes
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let dtype = x.dtype();
        let c = self.weight.dims()[0];
        let scale = self.weight.val() * (self.running_var.val() + NORM_EPS).sqrt().recip();
        let shift = self.bias.val() - self.running_mean.val() * scale.clone();
        let y = x.cast(DType::F32) * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1]);
        y.cast(dtype)
    }
}

/// The norm of a residual branch.
#[derive(Module, Debug)]
pub enum Norm {
    Rms(RmsNorm2d),
    Batch(BatchNorm2d),
}

impl Norm {
    pub fn build(b: &mut Builder, key: &str, c: usize, kind: NormType) -> Result<Self> {
        Ok(match kind {
            NormType::RmsNorm => Norm::Rms(RmsNorm2d::build(b, key, c)?),
            NormType::BatchNorm => Norm::Batch(BatchNorm2d::build(b, key, c)?),
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Norm::Rms(n) => n.forward(x),
            Norm::Batch(n) => n.forward(x),
        }
    }
}

/// LayerNorm over the last dimension, statistics in f32; `affine: false` is DiT's
/// `elementwise_affine=False`.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Option<Param<Tensor<1>>>,
    pub bias: Option<Param<Tensor<1>>>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn build(b: &mut Builder, key: &str, dim: usize, eps: f64, affine: bool) -> Result<Self> {
        let (weight, bias) = if affine {
            (
                Some(b.param_f32(&format!("{key}.weight"), [dim], Init::Ones)?),
                Some(b.param_f32(&format!("{key}.bias"), [dim], Init::Zeros)?),
            )
        } else {
            (None, None)
        };
        Ok(Self { weight, bias, eps })
    }

    /// # Shapes
    /// `[B, L, D] -> [B, L, D]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let dtype = x.dtype();
        let d = x.dims()[2];
        let x = x.cast(DType::F32);
        let mean = x.clone().mean_dim(2);
        let xc = x - mean;
        let var = xc.clone().powi_scalar(2).mean_dim(2);
        let mut y = xc * (var + self.eps).sqrt().recip();
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            y = y * w.val().reshape([1, 1, d]) + b.val().reshape([1, 1, d]);
        }
        y.cast(dtype)
    }
}

/// RMSNorm over the last dimension, statistic in f32: `x / sqrt(mean(x^2) + eps) * (offset + w)`.
/// `offset` is 0 for diffusers' `RMSNorm` (Sana's caption and q/k norms) and 1 for Gemma's
/// zero-centred weights.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    pub eps: f64,
    pub offset: f64,
}

impl RmsNorm {
    pub fn build(b: &mut Builder, key: &str, dim: usize, eps: f64, offset: f64) -> Result<Self> {
        let init = if offset == 0.0 {
            Init::Ones
        } else {
            Init::Zeros
        };
        Ok(Self {
            weight: b.param_f32(&format!("{key}.weight"), [dim], init)?,
            eps,
            offset,
        })
    }

    /// # Shapes
    /// `[..., D] -> [..., D]`
    pub fn forward<const N: usize>(&self, x: Tensor<N>) -> Tensor<N> {
        let dtype = x.dtype();
        let d = self.weight.dims()[0];
        let xf = x.cast(DType::F32);
        let ms = xf.clone().powi_scalar(2).mean_dim(N - 1);
        let y = xf * (ms + self.eps).sqrt().recip();
        let mut shape = [1; N];
        shape[N - 1] = d;
        let w = self.weight.val().reshape(shape) + self.offset;
        (y * w).cast(dtype)
    }
}

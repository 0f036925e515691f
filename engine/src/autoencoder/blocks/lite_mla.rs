//! LiteMLA: multi-scale ReLU linear attention (efficientvit `LiteMLA`, diffusers
//! `SanaMultiscaleLinearAttention` + `SanaMultiscaleAttnProcessor2_0`).
//!
//! The fused qkv output is laid out head-major: channel `g*3d + s*d + i` with `s` in {q, k, v},
//! so q, k and v of a head are interleaved (diffusers' `to_q/to_k/to_v` are thirds of this
//! weight, not per-role projections). The multi-scale branch's output is appended after the
//! plain qkv and supplies the second half of the heads. Attention is computed in f32 whatever
//! the model precision, as both references do.

use burn::module::Module;
use burn::tensor::{DType, Tensor};

use crate::error::Result;
use crate::nn::conv::{Conv, ConvSpec};
use crate::nn::{RmsNorm2d, relu_linear_attention};
use crate::weights::Builder;

/// Depthwise k x k conv then grouped 1x1 conv (one group per head-role), both without bias.
#[derive(Module, Debug)]
pub struct MultiscaleProjection {
    pub proj_in: Conv,
    pub proj_out: Conv,
}

#[derive(Module, Debug)]
pub struct LiteMla {
    /// [3T, C, 1, 1], head-major.
    pub qkv: Conv,
    pub to_qkv_multiscale: Vec<MultiscaleProjection>,
    pub to_out: Conv,
    pub norm_out: RmsNorm2d,
    pub head_dim: usize,
}

impl LiteMla {
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        c: usize,
        head_dim: usize,
        scales: &[usize],
    ) -> Result<Self> {
        let heads = c / head_dim;
        let t = heads * head_dim;
        let qkv = Conv::build(
            b,
            &format!("{key}.qkv"),
            ConvSpec::new(c, 3 * t, 1).no_bias(),
        )?;
        let mut to_qkv_multiscale = Vec::new();
        for (i, &k) in scales.iter().enumerate() {
            let p = format!("{key}.to_qkv_multiscale.{i}");
            to_qkv_multiscale.push(MultiscaleProjection {
                proj_in: Conv::build(
                    b,
                    &format!("{p}.proj_in"),
                    ConvSpec::new(3 * t, 3 * t, k).groups(3 * t).no_bias(),
                )?,
                proj_out: Conv::build(
                    b,
                    &format!("{p}.proj_out"),
                    ConvSpec::new(3 * t, 3 * t, 1).groups(3 * heads).no_bias(),
                )?,
            });
        }
        let to_out = Conv::build(
            b,
            &format!("{key}.to_out"),
            ConvSpec::new(t * (1 + scales.len()), c, 1).no_bias(),
        )?;
        let norm_out = RmsNorm2d::build(b, &format!("{key}.norm_out"), c)?;
        Ok(Self {
            qkv,
            to_qkv_multiscale,
            to_out,
            norm_out,
            head_dim,
        })
    }

    /// Attention half of an EfficientViT block, residual included.
    ///
    /// # Shapes
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [bsz, _, h, w] = x.dims();
        let dtype = x.dtype();
        let d = self.head_dim;
        let qkv = self.qkv.forward(x.clone());
        let mut parts = vec![qkv.clone()];
        for ms in &self.to_qkv_multiscale {
            parts.push(ms.proj_out.forward(ms.proj_in.forward(qkv.clone())));
        }
        let qkv = if parts.len() == 1 {
            qkv
        } else {
            Tensor::cat(parts, 1)
        };
        let n = h * w;
        // [B, G, 3d, N]; the kernel works in f32 whatever the model precision.
        let qkv = qkv
            .cast(DType::F32)
            .reshape([bsz as i64, -1, 3 * d as i64, n as i64]);
        let [_, g, _, _] = qkv.dims();
        let q = qkv.clone().narrow(2, 0, d);
        let k = qkv.clone().narrow(2, d, d);
        let v = qkv.narrow(2, 2 * d, d);
        let out = relu_linear_attention(q, k, v);
        let out = out.reshape([bsz, g * d, h, w]).cast(dtype);
        let out = self.norm_out.forward(self.to_out.forward(out));
        out + x
    }
}

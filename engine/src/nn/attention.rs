//! Softmax attention, products in f32: the scaled-dot-product kernel every model shares
//! ([`sdpa`]: optional logit softcap and additive bias), and timm's fused-qkv self-attention
//! ([`Attention`], UViT / DiT).

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Tensor};

use super::Linear;
use crate::error::Result;
use crate::weights::Builder;

/// `softmax(q k^T * scale [softcapped] + bias) v` per head, in f32.
///
/// `softcap` is Gemma-2's `tanh(s / c) * c`, applied before the bias (the additive mask);
/// `bias` broadcasts over `[B, H, Lq, Lk]` (e.g. `[B, 1, 1, Lk]` for a key padding mask).
///
/// # Shapes
/// `q: [B, H, Lq, d]`, `k, v: [B, H, Lk, d] -> [B, H, Lq, d]`
pub fn sdpa(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<Tensor<4>>,
    scale: f64,
    softcap: Option<f64>,
) -> Tensor<4> {
    let (q, k, v) = (q.cast(DType::F32), k.cast(DType::F32), v.cast(DType::F32));
    let mut scores = q.matmul(k.swap_dims(2, 3)) * scale;
    if let Some(c) = softcap {
        scores = (scores / c).tanh() * c;
    }
    if let Some(b) = bias {
        scores = scores + b.cast(DType::F32);
    }
    softmax(scores, 3).matmul(v)
}

/// Multi-head self-attention: fused `qkv` split as `(3, heads, head_dim)` along the features,
/// `softmax(q k^T / sqrt(head_dim)) v` in f32 (the reference casts q/k/v to f32), `proj`.
#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    pub heads: usize,
}

impl Attention {
    pub fn build(
        b: &mut Builder,
        key: &str,
        dim: usize,
        heads: usize,
        qkv_bias: bool,
    ) -> Result<Self> {
        Ok(Self {
            qkv: Linear::build(b, &format!("{key}.qkv"), dim, 3 * dim, qkv_bias)?,
            proj: Linear::build(b, &format!("{key}.proj"), dim, dim, true)?,
            heads,
        })
    }

    /// # Shapes
    /// `[B, L, D] -> [B, L, D]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [bsz, l, d] = x.dims();
        let (h, dh) = (self.heads, d / self.heads);
        let dtype = x.dtype();
        let qkv = self
            .qkv
            .forward(x)
            .cast(DType::F32)
            .reshape([bsz, l, 3, h, dh])
            .permute([2, 0, 3, 1, 4]);
        let part = |i: usize| qkv.clone().narrow(0, i, 1).reshape([bsz, h, l, dh]);
        let (q, k, v) = (part(0), part(1), part(2));
        let o = sdpa(q, k, v, None, 1.0 / (dh as f64).sqrt(), None);
        let o = o.swap_dims(1, 2).reshape([bsz, l, d]).cast(dtype);
        self.proj.forward(o)
    }
}

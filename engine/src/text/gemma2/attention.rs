//! Gemma-2 self-attention (transformers `Gemma2Attention`, eager): grouped-query heads, RoPE
//! (rotate-half), scale `query_pre_attn_scalar^-0.5`, logit softcap before the additive mask,
//! softmax in f32.

use burn::module::Module;
use burn::tensor::Tensor;

use super::config::Gemma2Config;
use crate::error::Result;
use crate::nn::rope::apply_rope;
use crate::nn::{Linear, sdpa};
use crate::weights::Builder;

#[derive(Module, Debug)]
pub struct Gemma2Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// `query_pre_attn_scalar^-0.5`.
    pub scale: f64,
    /// Logit softcap; 0 = none.
    pub softcap: f64,
}

impl Gemma2Attention {
    pub fn build(b: &mut Builder, key: &str, c: &Gemma2Config) -> Result<Self> {
        let (d, h, kv, hd) = (
            c.hidden_size,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.head_dim,
        );
        Ok(Self {
            q_proj: Linear::build(b, &format!("{key}.q_proj"), d, h * hd, false)?,
            k_proj: Linear::build(b, &format!("{key}.k_proj"), d, kv * hd, false)?,
            v_proj: Linear::build(b, &format!("{key}.v_proj"), d, kv * hd, false)?,
            o_proj: Linear::build(b, &format!("{key}.o_proj"), h * hd, d, false)?,
            heads: h,
            kv_heads: kv,
            head_dim: hd,
            scale: c.query_pre_attn_scalar.powf(-0.5),
            softcap: c.attn_logit_softcapping.unwrap_or(0.0),
        })
    }

    /// `bias`: `[B, 1, T, T]` additive mask (0 or f32::MIN); `cos`, `sin`: `[T, head_dim]`.
    ///
    /// # Shapes
    /// `[B, T, D] -> [B, T, D]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        bias: Tensor<4>,
        cos: &Tensor<2>,
        sin: &Tensor<2>,
    ) -> Tensor<3> {
        let dtype = x.dtype();
        let [b, t, _] = x.dims();
        let (h, kv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let split = |y: Tensor<3>, n: usize| y.reshape([b, t, n, hd]).swap_dims(1, 2);
        let q = apply_rope(split(self.q_proj.forward(x.clone()), h), cos, sin);
        let k = apply_rope(split(self.k_proj.forward(x.clone()), kv), cos, sin);
        let v = split(self.v_proj.forward(x), kv);
        // GQA: query head i reads key/value head i / (h / kv) (transformers' `repeat_kv`).
        let rep = h / kv;
        let repeat = |y: Tensor<4>| {
            if rep == 1 {
                y
            } else {
                y.unsqueeze_dim::<5>(2)
                    .expand([b, kv, rep, t, hd])
                    .reshape([b, h, t, hd])
            }
        };
        let softcap = (self.softcap > 0.0).then_some(self.softcap);
        let o = sdpa(q, repeat(k), repeat(v), Some(bias), self.scale, softcap);
        let o = o.swap_dims(1, 2).reshape([b, t, h * hd]).cast(dtype);
        self.o_proj.forward(o)
    }
}

//! Sana's two attentions: ReLU linear self-attention over the image tokens (diffusers
//! `SanaLinearAttnProcessor2_0`) and softmax cross-attention to the caption
//! (`SanaAttnProcessor2_0`), each with the optional `rms_norm_across_heads` q/k norm.

use burn::module::Module;
use burn::tensor::{DType, Tensor};

use crate::error::Result;
use crate::nn::{Linear, RmsNorm, relu_linear_attention, sdpa};
use crate::weights::Builder;

/// diffusers `Attention(qk_norm="rms_norm_across_heads")`: eps 1e-5, learned weight, over the
/// whole projection (all heads at once).
const QK_NORM_EPS: f64 = 1e-5;

fn qk_norm(b: &mut Builder, key: &str, width: usize, on: bool) -> Result<Option<RmsNorm>> {
    if !on {
        return Ok(None);
    }
    Ok(Some(RmsNorm::build(b, key, width, QK_NORM_EPS, 0.0)?))
}

/// `attn1`: `to_out(linear_attention(relu(q), relu(k), v))` with heads of `head_dim`.
#[derive(Module, Debug)]
pub struct LinearSelfAttention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub norm_q: Option<RmsNorm>,
    pub norm_k: Option<RmsNorm>,
    pub to_out: Linear,
    pub heads: usize,
}

impl LinearSelfAttention {
    pub fn build(
        b: &mut Builder,
        key: &str,
        d: usize,
        heads: usize,
        head_dim: usize,
        bias: bool,
        qk_norm_on: bool,
    ) -> Result<Self> {
        let inner = heads * head_dim;
        Ok(Self {
            to_q: Linear::build(b, &format!("{key}.to_q"), d, inner, bias)?,
            to_k: Linear::build(b, &format!("{key}.to_k"), d, inner, bias)?,
            to_v: Linear::build(b, &format!("{key}.to_v"), d, inner, bias)?,
            norm_q: qk_norm(b, &format!("{key}.norm_q"), inner, qk_norm_on)?,
            norm_k: qk_norm(b, &format!("{key}.norm_k"), inner, qk_norm_on)?,
            to_out: Linear::build(b, &format!("{key}.to_out.0"), inner, d, true)?,
            heads,
        })
    }

    /// The kernel runs in f32 (its 1e-15 normaliser underflows in half precision).
    ///
    /// # Shapes
    /// `[B, N, D] -> [B, N, D]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.attend(x, true)
    }

    /// The unperturbed rows of a PAG block: diffusers' PAG processors skip `norm_q` / `norm_k`
    /// (a quirk of `PAGCFGSanaLinearAttnProcessor2_0`, reproduced for faithfulness).
    pub fn forward_pag(&self, x: Tensor<3>) -> Tensor<3> {
        self.attend(x, false)
    }

    fn attend(&self, x: Tensor<3>, qk_norm: bool) -> Tensor<3> {
        let dtype = x.dtype();
        let mut q = self.to_q.forward(x.clone());
        let mut k = self.to_k.forward(x.clone());
        let v = self.to_v.forward(x);
        if let (true, Some(nq), Some(nk)) = (qk_norm, &self.norm_q, &self.norm_k) {
            q = nq.forward(q);
            k = nk.forward(k);
        }
        let [bsz, n, inner] = q.dims();
        let g = self.heads;
        // [B, N, G d] -> [B, G, d, N], the kernel's layout.
        let heads = |t: Tensor<3>| t.swap_dims(1, 2).reshape([bsz, g, inner / g, n]);
        let o = relu_linear_attention(heads(q), heads(k), heads(v));
        let o = o.reshape([bsz, inner, n]).swap_dims(1, 2).cast(dtype);
        self.to_out.forward(o)
    }

    /// PAG's perturbed branch: identity attention, `to_out(to_v(x))`.
    ///
    /// # Shapes
    /// `[B, N, D] -> [B, N, D]`
    pub fn identity(&self, x: Tensor<3>) -> Tensor<3> {
        self.to_out.forward(self.to_v.forward(x))
    }
}

/// `attn2`: softmax attention from the image tokens to the caption tokens, scale
/// `1/sqrt(head_dim)`, additive key bias (the `-10000` padding mask).
#[derive(Module, Debug)]
pub struct CrossAttention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub norm_q: Option<RmsNorm>,
    pub norm_k: Option<RmsNorm>,
    pub to_out: Linear,
    pub heads: usize,
}

impl CrossAttention {
    pub fn build(
        b: &mut Builder,
        key: &str,
        d: usize,
        ctx_dim: usize,
        heads: usize,
        head_dim: usize,
        qk_norm_on: bool,
    ) -> Result<Self> {
        let inner = heads * head_dim;
        Ok(Self {
            to_q: Linear::build(b, &format!("{key}.to_q"), d, inner, true)?,
            to_k: Linear::build(b, &format!("{key}.to_k"), ctx_dim, inner, true)?,
            to_v: Linear::build(b, &format!("{key}.to_v"), ctx_dim, inner, true)?,
            norm_q: qk_norm(b, &format!("{key}.norm_q"), inner, qk_norm_on)?,
            norm_k: qk_norm(b, &format!("{key}.norm_k"), inner, qk_norm_on)?,
            to_out: Linear::build(b, &format!("{key}.to_out.0"), inner, d, true)?,
            heads,
        })
    }

    /// `bias`: `[B, 1, 1, T]`, 0 for kept caption tokens and -10000 for padding.
    ///
    /// # Shapes
    /// `x: [B, N, D]`, `ctx: [B, T, D_ctx]` -> `[B, N, D]`
    pub fn forward(&self, x: Tensor<3>, ctx: Tensor<3>, bias: Tensor<4>) -> Tensor<3> {
        let dtype = x.dtype();
        let mut q = self.to_q.forward(x);
        let mut k = self.to_k.forward(ctx.clone());
        let v = self.to_v.forward(ctx);
        if let (Some(nq), Some(nk)) = (&self.norm_q, &self.norm_k) {
            q = nq.forward(q);
            k = nk.forward(k);
        }
        let [bsz, n, inner] = q.dims();
        let t = k.dims()[1];
        let g = self.heads;
        let dh = inner / g;
        let heads = |x: Tensor<3>, l: usize| x.reshape([bsz, l, g, dh]).swap_dims(1, 2);
        let o = sdpa(
            heads(q, n),
            heads(k, t),
            heads(v, t),
            Some(bias),
            1.0 / (dh as f64).sqrt(),
            None,
        );
        let o = o.swap_dims(1, 2).reshape([bsz, n, inner]).cast(dtype);
        self.to_out.forward(o)
    }
}

/// The additive key bias of a `[B, T]` keep mask (1 keep, 0 drop): `(1 - m) * -10000`, as
/// `[B, 1, 1, T]` in f32 (diffusers uses -10000, not -inf, so an all-padding row stays finite).
pub fn mask_bias(mask: Tensor<2>) -> Tensor<4> {
    let [b, t] = mask.dims();
    let m = mask.cast(DType::F32);
    ((m.neg() + 1.0) * -10000.0).reshape([b, 1, 1, t])
}

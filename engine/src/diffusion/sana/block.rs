//! `SanaTransformerBlock`: adaLN-single modulated linear self-attention, un-normalised
//! cross-attention to the caption, and the Mix-FFN (GLUMBConv on the token image).

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use super::attention::{CrossAttention, LinearSelfAttention};
use super::config::SanaConfig;
use crate::diffusion::class_cond::Taps;
use crate::error::Result;
use crate::nn::{GluMbConv, LayerNorm};
use crate::weights::{Builder, Init};

#[derive(Module, Debug)]
pub struct SanaBlock {
    /// Pre-norm of the self-attention (never affine).
    pub norm1: LayerNorm,
    pub attn1: LinearSelfAttention,
    pub attn2: CrossAttention,
    /// Pre-norm of the feed-forward (`norm_elementwise_affine`).
    pub norm2: LayerNorm,
    pub ff: GluMbConv,
    /// [6, D]: shift / scale / gate of the attention and of the feed-forward.
    pub scale_shift_table: Param<Tensor<2>>,
}

/// Which rows take PAG's perturbed (identity) self-attention in this block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Perturb {
    /// The perturbed rows are `from..B` (the last chunk of PAG's batch).
    pub from: usize,
}

impl SanaBlock {
    pub fn build(b: &mut Builder, key: &str, c: &SanaConfig) -> Result<Self> {
        let d = c.inner_dim();
        let qk = c.qk_norm()?;
        Ok(Self {
            norm1: LayerNorm::build(b, &format!("{key}.norm1"), d, c.norm_eps, false)?,
            attn1: LinearSelfAttention::build(
                b,
                &format!("{key}.attn1"),
                d,
                c.num_attention_heads,
                c.attention_head_dim,
                c.attention_bias,
                qk,
            )?,
            attn2: CrossAttention::build(
                b,
                &format!("{key}.attn2"),
                d,
                c.cross_attention_dim.unwrap_or(d),
                c.num_cross_attention_heads.unwrap_or(1),
                c.cross_attention_head_dim.unwrap_or(d),
                qk,
            )?,
            norm2: LayerNorm::build(
                b,
                &format!("{key}.norm2"),
                d,
                c.norm_eps,
                c.norm_elementwise_affine,
            )?,
            ff: GluMbConv::build_with(b, &format!("{key}.ff"), d, c.ff_hidden(), false)?,
            scale_shift_table: b.param(
                &format!("{key}.scale_shift_table"),
                [6, d],
                Init::Fan(d),
            )?,
        })
    }

    /// `t6`: the `[B, 6D]` modulation, `ctx` the normalised caption, `bias` its key mask,
    /// `hw` the token grid.
    ///
    /// # Shapes
    /// `x: [B, N, D]` (N = h w, row-major) -> `[B, N, D]`
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        t6: Tensor<2>,
        ctx: Tensor<3>,
        bias: Tensor<4>,
        hw: [usize; 2],
        perturb: Option<Perturb>,
        taps: &mut Taps,
        i: usize,
    ) -> Tensor<3> {
        let [bsz, n, d] = x.dims();
        let m = self.scale_shift_table.val().unsqueeze_dim::<3>(0) + t6.reshape([bsz, 6, d]);
        let part = |k: usize| m.clone().narrow(1, k, 1);
        let h = self.norm1.forward(x.clone()) * (part(1) + 1.0) + part(0);
        let a = match perturb {
            None => self.attn1.forward(h),
            Some(p) => {
                let normal = self.attn1.forward_pag(h.clone().narrow(0, 0, p.from));
                let ptb = self.attn1.identity(h.narrow(0, p.from, bsz - p.from));
                Tensor::cat(vec![normal, ptb], 0)
            }
        };
        taps.record(|| format!("inter.transformer_blocks.{i}.attn1"), &a);
        let x = x + part(2) * a;
        let a = self.attn2.forward(x.clone(), ctx, bias);
        taps.record(|| format!("inter.transformer_blocks.{i}.attn2"), &a);
        let x = x + a;
        let h = self.norm2.forward(x.clone()) * (part(4) + 1.0) + part(3);
        let [hh, ww] = hw;
        let img = h.swap_dims(1, 2).reshape([bsz, d, hh, ww]);
        let f = self.ff.forward(img);
        if taps.is_on() {
            taps.record(
                || format!("inter.transformer_blocks.{i}.ff"),
                &f.clone().reshape([bsz, d, n]),
            );
        }
        let f = f.reshape([bsz, d, n]).swap_dims(1, 2);
        x + part(5) * f
    }
}

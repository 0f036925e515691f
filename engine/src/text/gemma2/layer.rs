//! `Gemma2DecoderLayer`: sandwich norms around attention and the GELU-tanh gated MLP.

use crate::kernels::gelu_tanh as gelu_approximate;
use burn::module::Module;
use burn::tensor::Tensor;

use super::attention::Gemma2Attention;
use super::config::Gemma2Config;
use crate::diffusion::class_cond::Taps;
use crate::error::Result;
use crate::nn::{Linear, RmsNorm};
use crate::weights::Builder;

/// `down(gelu_tanh(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Gemma2Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Gemma2Mlp {
    fn build(b: &mut Builder, key: &str, d: usize, hidden: usize) -> Result<Self> {
        Ok(Self {
            gate_proj: Linear::build(b, &format!("{key}.gate_proj"), d, hidden, false)?,
            up_proj: Linear::build(b, &format!("{key}.up_proj"), d, hidden, false)?,
            down_proj: Linear::build(b, &format!("{key}.down_proj"), hidden, d, false)?,
        })
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let g = gelu_approximate(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(g * self.up_proj.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct Gemma2Layer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Gemma2Attention,
    pub post_attention_layernorm: RmsNorm,
    pub pre_feedforward_layernorm: RmsNorm,
    pub mlp: Gemma2Mlp,
    pub post_feedforward_layernorm: RmsNorm,
    /// Uses the sliding-window mask.
    pub sliding: bool,
}

impl Gemma2Layer {
    pub fn build(b: &mut Builder, key: &str, c: &Gemma2Config, i: usize) -> Result<Self> {
        let d = c.hidden_size;
        // Gemma's RMSNorm multiplies by (1 + w): the checkpoint's weights are zero-centred.
        let norm = |b: &mut Builder, name: &str| {
            RmsNorm::build(b, &format!("{key}.{name}"), d, c.rms_norm_eps, 1.0)
        };
        Ok(Self {
            input_layernorm: norm(b, "input_layernorm")?,
            self_attn: Gemma2Attention::build(b, &format!("{key}.self_attn"), c)?,
            post_attention_layernorm: norm(b, "post_attention_layernorm")?,
            pre_feedforward_layernorm: norm(b, "pre_feedforward_layernorm")?,
            mlp: Gemma2Mlp::build(b, &format!("{key}.mlp"), d, c.intermediate_size)?,
            post_feedforward_layernorm: norm(b, "post_feedforward_layernorm")?,
            sliding: c.sliding(i),
        })
    }

    /// `bias`: this layer's mask (full or sliding).
    ///
    /// # Shapes
    /// `[B, T, D] -> [B, T, D]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        bias: Tensor<4>,
        rope: &(Tensor<2>, Tensor<2>),
        taps: &mut Taps,
        i: usize,
    ) -> Tensor<3> {
        let a = self.self_attn.forward(
            self.input_layernorm.forward(x.clone()),
            bias,
            &rope.0,
            &rope.1,
        );
        taps.record(|| format!("inter.layers.{i}.self_attn"), &a);
        let x = x + self.post_attention_layernorm.forward(a);
        let m = self
            .mlp
            .forward(self.pre_feedforward_layernorm.forward(x.clone()));
        x + self.post_feedforward_layernorm.forward(m)
    }
}

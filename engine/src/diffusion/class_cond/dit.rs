//! DiT (efficientvit `diffusioncore/models/dit.py`, from facebookresearch/DiT with timm 1.x
//! blocks): patch tokens with a fixed sin-cos position table, adaLN-Zero conditioning on
//! `t_emb + y_emb`, learned sigma (2C outputs).

use crate::kernels::silu;
use burn::module::{Module, Param};
use burn::tensor::{Int, Tensor};
use serde::Deserialize;

use super::Taps;
use crate::error::{Error, Result};
use crate::nn::reshape::unpatchify;
use crate::nn::{Attention, LabelEmbed, LayerNorm, Linear, Mlp, PatchEmbed};
use crate::weights::{Builder, Init};

/// DiT hyper-parameters (efficientvit `DiTConfig`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct DiTConfig {
    pub input_size: usize,
    pub patch_size: usize,
    pub in_channels: usize,
    pub hidden_size: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    /// Output 2C channels: epsilon and the variance interpolation value.
    pub learn_sigma: bool,
    pub num_classes: usize,
    pub frequency_embedding_size: usize,
    pub layernorm_eps: f64,
}

impl Default for DiTConfig {
    fn default() -> Self {
        Self {
            input_size: 16,
            patch_size: 1,
            in_channels: 32,
            hidden_size: 1152,
            depth: 28,
            num_heads: 16,
            mlp_ratio: 4.0,
            learn_sigma: true,
            num_classes: 1000,
            frequency_embedding_size: 256,
            layernorm_eps: 1e-6,
        }
    }
}

impl DiTConfig {
    /// DiT-XL as registered in efficientvit `diffusion_model_zoo.py` (de7d7733cc03): depth 28,
    /// hidden 1152, heads 16, patch 1, learn_sigma.
    pub fn xl(in_channels: usize, input_size: usize) -> Self {
        Self {
            in_channels,
            input_size,
            ..Self::default()
        }
    }

    pub fn out_channels(&self) -> usize {
        if self.learn_sigma {
            2 * self.in_channels
        } else {
            self.in_channels
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.patch_size == 0 || !self.input_size.is_multiple_of(self.patch_size) {
            return Err(Error::Unsupported(format!(
                "DiT input_size {} is not a multiple of patch_size {}",
                self.input_size, self.patch_size
            )));
        }
        if self.num_heads == 0 || !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(Error::Unsupported(format!(
                "DiT hidden_size {} is not a multiple of num_heads {}",
                self.hidden_size, self.num_heads
            )));
        }
        Ok(())
    }
}

/// `Sequential(SiLU, Linear(D, n D))` producing n modulation vectors.
#[derive(Module, Debug)]
pub struct AdaLn {
    pub linear: Linear,
    pub n: usize,
}

impl AdaLn {
    fn build(b: &mut Builder, key: &str, d: usize, n: usize) -> Result<Self> {
        Ok(Self {
            linear: Linear::build(b, &format!("{key}.adaLN_modulation.1"), d, n * d, true)?,
            n,
        })
    }

    /// `[B, D] -> n x [B, 1, D]`
    fn forward(&self, c: Tensor<2>) -> Vec<Tensor<3>> {
        self.linear
            .forward(silu(c))
            .chunk(self.n, 1)
            .into_iter()
            .map(|t| t.unsqueeze_dim(1))
            .collect()
    }
}

fn modulate(x: Tensor<3>, shift: Tensor<3>, scale: Tensor<3>) -> Tensor<3> {
    x * (scale + 1.0) + shift
}

#[derive(Module, Debug)]
pub struct DiTBlock {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
    pub ada: AdaLn,
}

impl DiTBlock {
    fn build(b: &mut Builder, key: &str, c: &DiTConfig) -> Result<Self> {
        let d = c.hidden_size;
        Ok(Self {
            norm1: LayerNorm::build(b, "", d, c.layernorm_eps, false)?,
            attn: Attention::build(b, &format!("{key}.attn"), d, c.num_heads, true)?,
            norm2: LayerNorm::build(b, "", d, c.layernorm_eps, false)?,
            mlp: Mlp::build(
                b,
                &format!("{key}.mlp"),
                d,
                (d as f64 * c.mlp_ratio) as usize,
                true,
            )?,
            ada: AdaLn::build(b, key, d, 6)?,
        })
    }

    fn forward(&self, x: Tensor<3>, c: Tensor<2>) -> Tensor<3> {
        let m = self.ada.forward(c);
        let h = self.attn.forward(modulate(
            self.norm1.forward(x.clone()),
            m[0].clone(),
            m[1].clone(),
        ));
        let x = x + m[2].clone() * h;
        let h = self.mlp.forward(modulate(
            self.norm2.forward(x.clone()),
            m[3].clone(),
            m[4].clone(),
        ));
        x + m[5].clone() * h
    }
}

#[derive(Module, Debug)]
pub struct DiT {
    pub x_embedder: PatchEmbed,
    /// [1, L, D]; fixed sin-cos in the reference, loaded from the checkpoint (its w/h order is
    /// the reference's meshgrid quirk).
    pub pos_embed: Param<Tensor<3>>,
    pub t_fc1: Linear,
    pub t_fc2: Linear,
    pub y_embedder: LabelEmbed,
    pub blocks: Vec<DiTBlock>,
    pub norm_final: LayerNorm,
    pub final_linear: Linear,
    pub final_ada: AdaLn,
    pub patch_size: usize,
    pub out_channels: usize,
    pub freq_size: usize,
}

impl DiT {
    pub(crate) fn build(b: &mut Builder, c: &DiTConfig) -> Result<Self> {
        c.validate()?;
        let d = c.hidden_size;
        let p = c.patch_size;
        let l = (c.input_size / p).pow(2);
        Ok(Self {
            x_embedder: PatchEmbed::build(b, "x_embedder.proj", c.in_channels, d, p)?,
            pos_embed: b.param("pos_embed", [1, l, d], Init::Fan(1))?,
            t_fc1: Linear::build(b, "t_embedder.mlp.0", c.frequency_embedding_size, d, true)?,
            t_fc2: Linear::build(b, "t_embedder.mlp.2", d, d, true)?,
            y_embedder: LabelEmbed::build(b, "y_embedder", c.num_classes + 1, d)?,
            blocks: (0..c.depth)
                .map(|i| DiTBlock::build(b, &format!("blocks.{i}"), c))
                .collect::<Result<_>>()?,
            norm_final: LayerNorm::build(b, "", d, c.layernorm_eps, false)?,
            final_linear: Linear::build(
                b,
                "final_layer.linear",
                d,
                p * p * c.out_channels(),
                true,
            )?,
            final_ada: AdaLn::build(b, "final_layer", d, 2)?,
            patch_size: p,
            out_channels: c.out_channels(),
            freq_size: c.frequency_embedding_size,
        })
    }

    /// `t_freq`: the 256-wide sinusoid of the (respaced-to-original) integer timestep `[B, F]`.
    ///
    /// # Shapes
    /// `[B, C, H, W] -> [B, C_out, H, W]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        t_freq: Tensor<2>,
        y: Tensor<1, Int>,
        taps: &mut Taps,
    ) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let p = self.patch_size;
        let tokens = self.x_embedder.forward(x);
        taps.record(|| "inter.x_embedder".into(), &tokens);
        let mut x = tokens + self.pos_embed.val();
        let t = self.t_fc2.forward(silu(self.t_fc1.forward(t_freq)));
        taps.record(|| "inter.t_embedder".into(), &t.clone().unsqueeze_dim(1));
        let ye = self.y_embedder.forward(y);
        taps.record(|| "inter.y_embedder".into(), &ye.clone().unsqueeze_dim(1));
        let c = t + ye;
        for (i, blk) in self.blocks.iter().enumerate() {
            x = blk.forward(x, c.clone());
            taps.record(|| format!("inter.blocks.{i}"), &x);
        }
        let m = self.final_ada.forward(c);
        let x = self.final_linear.forward(modulate(
            self.norm_final.forward(x),
            m[0].clone(),
            m[1].clone(),
        ));
        taps.record(|| "inter.final_layer".into(), &x);
        unpatchify(x, h / p, w / p, p, self.out_channels)
    }
}

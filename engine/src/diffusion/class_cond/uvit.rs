//! U-ViT (efficientvit `diffusioncore/models/uvit.py`, from baofff/U-ViT): all tokens are
//! transformer tokens, `[label, time, patches]`, with long skips from the in-blocks to the
//! out-blocks. USiT is the same network trained with the SiT flow time convention.

use burn::module::{Module, Param};
use burn::tensor::{Int, Tensor};
use serde::Deserialize;

use super::Taps;
use crate::error::{Error, Result};
use crate::nn::reshape::unpatchify;
use crate::nn::{Attention, LabelEmbed, LayerNorm, Linear, Mlp, PatchEmbed};
use crate::weights::{Builder, Init};

/// UViT hyper-parameters (the constructor arguments of efficientvit's `UViTConfig`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct UViTConfig {
    /// Latent side (H = W).
    pub input_size: usize,
    pub patch_size: usize,
    pub in_channels: usize,
    pub hidden_size: usize,
    /// in_blocks = mid = out_blocks: depth // 2 in, 1 mid, depth // 2 out.
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    /// Only `false` is implemented (every released model); the time token is the raw sinusoid.
    pub mlp_time_embed: bool,
    pub num_classes: usize,
    pub layernorm_eps: f64,
}

impl Default for UViTConfig {
    fn default() -> Self {
        Self {
            input_size: 16,
            patch_size: 1,
            in_channels: 32,
            hidden_size: 1152,
            depth: 28,
            num_heads: 16,
            mlp_ratio: 4.0,
            qkv_bias: false,
            mlp_time_embed: false,
            num_classes: 1000,
            layernorm_eps: 1e-5,
        }
    }
}

impl UViTConfig {
    /// UViT-S / H / 2B as registered in efficientvit `diffusion_model_zoo.py` (de7d7733cc03):
    /// depth 12/28/28, hidden 512/1152/2048, heads 8/16/32, patch 1, `input_size = 512 / f`.
    pub fn preset(size: &str, in_channels: usize, input_size: usize) -> Option<Self> {
        let (depth, hidden_size, num_heads) = match size {
            "s" => (12, 512, 8),
            "h" => (28, 1152, 16),
            "2b" => (28, 2048, 32),
            _ => return None,
        };
        Some(Self {
            input_size,
            in_channels,
            depth,
            hidden_size,
            num_heads,
            ..Self::default()
        })
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Unsupported(m));
        if self.mlp_time_embed {
            return bad("UViT mlp_time_embed = true (no released model uses it)".into());
        }
        if self.patch_size == 0 || !self.input_size.is_multiple_of(self.patch_size) {
            return bad(format!(
                "UViT input_size {} is not a multiple of patch_size {}",
                self.input_size, self.patch_size
            ));
        }
        if self.num_heads == 0 || !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad(format!(
                "UViT hidden_size {} is not a multiple of num_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        if self.depth < 1 {
            return bad("UViT depth must be at least 1".into());
        }
        Ok(())
    }

    fn tokens(&self) -> usize {
        (self.input_size / self.patch_size).pow(2)
    }
}

/// Pre-norm transformer block with an optional long-skip input.
#[derive(Module, Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
    pub skip_linear: Option<Linear>,
}

impl Block {
    fn build(b: &mut Builder, key: &str, c: &UViTConfig, skip: bool) -> Result<Self> {
        let d = c.hidden_size;
        Ok(Self {
            norm1: LayerNorm::build(b, &format!("{key}.norm1"), d, c.layernorm_eps, true)?,
            attn: Attention::build(b, &format!("{key}.attn"), d, c.num_heads, c.qkv_bias)?,
            norm2: LayerNorm::build(b, &format!("{key}.norm2"), d, c.layernorm_eps, true)?,
            mlp: Mlp::build(
                b,
                &format!("{key}.mlp"),
                d,
                (d as f64 * c.mlp_ratio) as usize,
                false,
            )?,
            skip_linear: if skip {
                Some(Linear::build(
                    b,
                    &format!("{key}.skip_linear"),
                    2 * d,
                    d,
                    true,
                )?)
            } else {
                None
            },
        })
    }

    fn forward(&self, x: Tensor<3>, skip: Option<Tensor<3>>) -> Tensor<3> {
        let x = match (&self.skip_linear, skip) {
            (Some(l), Some(s)) => l.forward(Tensor::cat(vec![x, s], 2)),
            _ => x,
        };
        let x = x.clone() + self.attn.forward(self.norm1.forward(x));
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

/// The UViT network; module paths mirror the checkpoint keys.
#[derive(Module, Debug)]
pub struct UViT {
    pub patch_embed: PatchEmbed,
    /// [1, 2 + L, D], learned.
    pub pos_embed: Param<Tensor<3>>,
    pub label_emb: LabelEmbed,
    pub in_blocks: Vec<Block>,
    pub mid_block: Block,
    pub out_blocks: Vec<Block>,
    pub norm: LayerNorm,
    pub decoder_pred: Linear,
    pub patch_size: usize,
    pub in_channels: usize,
    pub hidden_size: usize,
}

impl UViT {
    pub(crate) fn build(b: &mut Builder, c: &UViTConfig) -> Result<Self> {
        c.validate()?;
        let d = c.hidden_size;
        let p = c.patch_size;
        let half = c.depth / 2;
        Ok(Self {
            patch_embed: PatchEmbed::build(b, "patch_embed.proj", c.in_channels, d, p)?,
            pos_embed: b.param("pos_embed", [1, 2 + c.tokens(), d], Init::Fan(1))?,
            label_emb: LabelEmbed::build(b, "label_emb", c.num_classes + 1, d)?,
            in_blocks: (0..half)
                .map(|i| Block::build(b, &format!("in_blocks.{i}"), c, false))
                .collect::<Result<_>>()?,
            mid_block: Block::build(b, "mid_block", c, false)?,
            out_blocks: (0..half)
                .map(|i| Block::build(b, &format!("out_blocks.{i}"), c, true))
                .collect::<Result<_>>()?,
            norm: LayerNorm::build(b, "norm", d, c.layernorm_eps, true)?,
            decoder_pred: Linear::build(b, "decoder_pred", d, p * p * c.in_channels, true)?,
            patch_size: p,
            in_channels: c.in_channels,
            hidden_size: d,
        })
    }

    /// `time_token`: the sinusoidal embedding of the time input `[B, D]` (UViT: 1000 t,
    /// USiT: t); `y`: class ids `[B]`.
    ///
    /// # Shapes
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        time_token: Tensor<2>,
        y: Tensor<1, Int>,
        taps: &mut Taps,
    ) -> Tensor<4> {
        let [bsz, _, h, w] = x.dims();
        let p = self.patch_size;
        let d = self.hidden_size;
        let dtype = self.pos_embed.val().dtype();
        let tokens = self.patch_embed.forward(x);
        taps.record(|| "inter.patch_embed".into(), &tokens);
        taps.record(
            || "inter.time_embed".into(),
            &time_token.clone().unsqueeze_dim(1),
        );
        let label = self.label_emb.forward(y);
        taps.record(|| "inter.label_emb".into(), &label.clone().unsqueeze_dim(1));
        let mut x = Tensor::cat(
            vec![
                label.reshape([bsz, 1, d]).cast(dtype),
                time_token.reshape([bsz, 1, d]).cast(dtype),
                tokens,
            ],
            1,
        ) + self.pos_embed.val();
        let mut skips = Vec::with_capacity(self.in_blocks.len());
        for (i, blk) in self.in_blocks.iter().enumerate() {
            x = blk.forward(x, None);
            taps.record(|| format!("inter.in_blocks.{i}"), &x);
            skips.push(x.clone());
        }
        x = self.mid_block.forward(x, None);
        taps.record(|| "inter.mid_block".into(), &x);
        for (i, blk) in self.out_blocks.iter().enumerate() {
            x = blk.forward(x, skips.pop());
            taps.record(|| format!("inter.out_blocks.{i}"), &x);
        }
        x = self.norm.forward(x);
        taps.record(|| "inter.norm".into(), &x);
        let x = self.decoder_pred.forward(x);
        taps.record(|| "inter.decoder_pred".into(), &x);
        let l = x.dims()[1];
        let x = x.narrow(1, 2, l - 2);
        unpatchify(x, h / p, w / p, p, self.in_channels)
    }
}

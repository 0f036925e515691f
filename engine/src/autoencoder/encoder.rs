//! DC-AE encoder: stem, stages (blocks then a downsample), output projection with the
//! channel-averaging shortcut. diffusers `Encoder` in `autoencoder_dc.py`; efficientvit
//! `DCAEEncoder`.

use burn::module::Module;
use burn::tensor::Tensor;

use super::blocks::evit::EfficientVitBlock;
use super::blocks::resample::{DownBlock, UpBlock};
use super::blocks::resblock::ResBlock;
use super::config::{Act, BlockType, DcAeConfig, NormType};
use crate::error::Result;
use crate::nn::Trace;
use crate::nn::conv::{Conv, ConvSpec};
use crate::nn::reshape::average_channel_groups;
use crate::weights::Builder;

/// One entry of a stage (`down_blocks.i.j` / `up_blocks.i.j`).
// Blocks are built once and live in a Vec; the variant size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Block {
    Res(ResBlock),
    Evit(EfficientVitBlock),
    Down(DownBlock),
    Up(UpBlock),
}

impl Block {
    /// Runs the block, recording `{name}` (and `{name}.attn` for EfficientViT blocks).
    pub(crate) fn forward_traced(&self, x: Tensor<4>, name: &str, trace: &mut Trace) -> Tensor<4> {
        let y = match self {
            Block::Res(b) => b.forward(x),
            Block::Evit(b) => {
                let (a, y) = b.forward_with_attn(x);
                trace.record(|| format!("{name}.attn"), &a);
                y
            }
            Block::Down(b) => b.forward(x),
            Block::Up(b) => b.forward(x),
        };
        trace.record(|| name.to_string(), &y);
        y
    }

    pub(crate) fn build_main(b: &mut Builder, key: &str, s: &StageSpec) -> Result<Self> {
        Ok(match s.kind {
            BlockType::ResBlock => Block::Res(ResBlock::build(b, key, s.width, s.norm, s.act)?),
            BlockType::EfficientViTBlock => Block::Evit(EfficientVitBlock::build(
                b, key, s.width, s.head_dim, s.scales,
            )?),
        })
    }
}

/// What the main blocks of one stage are made of.
pub(crate) struct StageSpec<'a> {
    pub kind: BlockType,
    pub width: usize,
    pub norm: NormType,
    pub act: Act,
    pub head_dim: usize,
    pub scales: &'a [usize],
}

/// `encoder.conv_in`: a plain 3x3 conv (stage-0 depth > 0) or a shortcut-free DownBlock.
#[derive(Module, Debug)]
pub enum Stem {
    Conv(Conv),
    Down(DownBlock),
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub conv_in: Stem,
    pub down_blocks: Vec<Vec<Block>>,
    pub conv_out: Conv,
    /// Channel-averaging group of the output shortcut; 0 when off.
    pub out_shortcut_group: usize,
}

impl Encoder {
    pub(crate) fn build(b: &mut Builder, cfg: &DcAeConfig) -> Result<Self> {
        let w = &cfg.encoder_block_out_channels;
        let depth = &cfg.encoder_layers_per_block;
        let n = w.len();
        let conv_in = if depth[0] > 0 {
            Stem::Conv(Conv::build(
                b,
                "encoder.conv_in",
                ConvSpec::new(cfg.in_channels, w[0], 3),
            )?)
        } else {
            Stem::Down(DownBlock::build(
                b,
                "encoder.conv_in",
                cfg.in_channels,
                w[1],
                cfg.downsample_block_type,
                false,
            )?)
        };
        let mut down_blocks = Vec::with_capacity(n);
        for i in 0..n {
            let mut stage = Vec::new();
            // The encoder always uses RMSNorm and SiLU (efficientvit defaults; diffusers hardcodes).
            let spec = StageSpec {
                kind: cfg.encoder_block_types[i],
                width: w[i],
                norm: NormType::RmsNorm,
                act: Act::Silu,
                head_dim: cfg.attention_head_dim,
                scales: &cfg.encoder_qkv_multiscales[i],
            };
            for j in 0..depth[i] {
                stage.push(Block::build_main(
                    b,
                    &format!("encoder.down_blocks.{i}.{j}"),
                    &spec,
                )?);
            }
            if i < n - 1 && depth[i] > 0 {
                stage.push(Block::Down(DownBlock::build(
                    b,
                    &format!("encoder.down_blocks.{i}.{}", depth[i]),
                    w[i],
                    w[i + 1],
                    cfg.downsample_block_type,
                    cfg.resample_shortcut,
                )?));
            }
            down_blocks.push(stage);
        }
        let conv_out = Conv::build(
            b,
            "encoder.conv_out",
            ConvSpec::new(w[n - 1], cfg.latent_channels, 3),
        )?;
        Ok(Self {
            conv_in,
            down_blocks,
            conv_out,
            out_shortcut_group: if cfg.encoder_out_shortcut {
                w[n - 1] / cfg.latent_channels
            } else {
                0
            },
        })
    }

    /// # Shapes
    /// `[B, 3, H, W] -> [B, latent_channels, H/f, W/f]`
    pub fn forward(&self, x: Tensor<4>, trace: &mut Trace) -> Tensor<4> {
        let mut h = self.stem(x);
        trace.record(|| "encoder.conv_in".into(), &h);
        for i in 0..self.down_blocks.len() {
            h = self.stage(i, h, trace);
        }
        let out = self.project_out(h, trace);
        trace.record(|| "latent".into(), &out);
        out
    }

    /// `encoder.conv_in`. `[B, 3, H, W] -> [B, C, H/2, W/2]`
    pub(crate) fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.conv_in {
            Stem::Conv(c) => c.forward(x),
            Stem::Down(d) => d.forward(x),
        }
    }

    /// Stage `i`: its blocks, then its downsample (when it has one).
    pub(crate) fn stage(&self, i: usize, mut h: Tensor<4>, trace: &mut Trace) -> Tensor<4> {
        let stage = &self.down_blocks[i];
        if stage.is_empty() {
            return h;
        }
        for (j, block) in stage.iter().enumerate() {
            h = block.forward_traced(h, &format!("encoder.down_blocks.{i}.{j}"), trace);
        }
        trace.record(|| format!("encoder.down_blocks.{i}"), &h);
        h
    }

    /// `encoder.conv_out` plus the channel-averaging shortcut. `[B, C, h, w] -> [B, latent, h, w]`
    pub(crate) fn project_out(&self, h: Tensor<4>, trace: &mut Trace) -> Tensor<4> {
        let out = self.conv_out.forward(h.clone());
        trace.record(|| "encoder.conv_out".into(), &out);
        if self.out_shortcut_group > 0 {
            out + average_channel_groups(h, self.out_shortcut_group)
        } else {
            out
        }
    }
}

//! DC-AE decoder: input projection with the channel-duplicating shortcut, stages from the
//! deepest (upsample then blocks), head RMSNorm -> act -> conv (or shortcut-free UpBlock).
//! diffusers `Decoder` in `autoencoder_dc.py`; efficientvit `DCAEDecoder`.

use burn::module::Module;
use burn::tensor::Tensor;

use super::DcAeConfig;
use super::blocks::resample::UpBlock;
use super::encoder::{Block, StageSpec};
use crate::error::Result;
use crate::nn::act::{act_code, act_from_code, activate};
use crate::nn::conv::{Conv, ConvSpec};
use crate::nn::reshape::repeat_interleave_channels;
use crate::nn::{RmsNorm2d, Trace};
use crate::weights::Builder;

/// `decoder.conv_out`: a plain 3x3 conv (stage-0 depth > 0) or a shortcut-free UpBlock.
#[derive(Module, Debug)]
pub enum Head {
    Conv(Conv),
    Up(UpBlock),
}

#[derive(Module, Debug)]
pub struct Decoder {
    pub conv_in: Conv,
    /// Channel repeat count of the input shortcut; 0 when off.
    pub in_shortcut_repeats: usize,
    pub up_blocks: Vec<Vec<Block>>,
    pub norm_out: RmsNorm2d,
    pub conv_out: Head,
    conv_act: usize,
}

impl Decoder {
    pub(crate) fn build(b: &mut Builder, cfg: &DcAeConfig) -> Result<Self> {
        let w = &cfg.decoder_block_out_channels;
        let depth = &cfg.decoder_layers_per_block;
        let n = w.len();
        let conv_in = Conv::build(
            b,
            "decoder.conv_in",
            ConvSpec::new(cfg.latent_channels, w[n - 1], 3),
        )?;
        let mut up_blocks: Vec<Vec<Block>> = (0..n).map(|_| Vec::new()).collect();
        for i in (0..n).rev() {
            let mut stage = Vec::new();
            if i < n - 1 && depth[i] > 0 {
                stage.push(Block::Up(UpBlock::build(
                    b,
                    &format!("decoder.up_blocks.{i}.0"),
                    w[i + 1],
                    w[i],
                    cfg.upsample_block_type,
                    cfg.resample_shortcut,
                )?));
            }
            let offset = stage.len();
            let spec = StageSpec {
                kind: cfg.decoder_block_types[i],
                width: w[i],
                norm: cfg.decoder_norm_types[i],
                act: cfg.decoder_act_fns[i],
                head_dim: cfg.attention_head_dim,
                scales: &cfg.decoder_qkv_multiscales[i],
            };
            for j in 0..depth[i] {
                let key = format!("decoder.up_blocks.{i}.{}", j + offset);
                stage.push(Block::build_main(b, &key, &spec)?);
            }
            up_blocks[i] = stage;
        }
        let (norm_out, conv_out) = if depth[0] > 0 {
            (
                RmsNorm2d::build(b, "decoder.norm_out", w[0])?,
                Head::Conv(Conv::build(
                    b,
                    "decoder.conv_out",
                    ConvSpec::new(w[0], cfg.in_channels, 3),
                )?),
            )
        } else {
            (
                RmsNorm2d::build(b, "decoder.norm_out", w[1])?,
                Head::Up(UpBlock::build(
                    b,
                    "decoder.conv_out",
                    w[1],
                    cfg.in_channels,
                    cfg.upsample_block_type,
                    false,
                )?),
            )
        };
        Ok(Self {
            conv_in,
            in_shortcut_repeats: if cfg.decoder_in_shortcut {
                w[n - 1] / cfg.latent_channels
            } else {
                0
            },
            up_blocks,
            norm_out,
            conv_out,
            conv_act: act_code(cfg.decoder_conv_act_fn),
        })
    }

    /// # Shapes
    /// `[B, latent_channels, h, w] -> [B, 3, h*f, w*f]`
    pub fn forward(&self, z: Tensor<4>, trace: &mut Trace) -> Tensor<4> {
        let mut h = self.project_in(z, trace);
        trace.record(|| "decoder.project_in".into(), &h);
        for i in (0..self.up_blocks.len()).rev() {
            h = self.stage(i, h, trace);
        }
        let h = self.norm_out.forward(h);
        trace.record(|| "decoder.norm_out".into(), &h);
        let h = activate(h, act_from_code(self.conv_act));
        let out = match &self.conv_out {
            Head::Conv(c) => c.forward(h),
            Head::Up(u) => u.forward(h),
        };
        trace.record(|| "reconstruction".into(), &out);
        out
    }

    /// `decoder.conv_in` plus the channel-duplicating shortcut. `[B, latent, h, w] -> [B, C, h, w]`
    pub(crate) fn project_in(&self, z: Tensor<4>, trace: &mut Trace) -> Tensor<4> {
        let h = self.conv_in.forward(z.clone());
        trace.record(|| "decoder.conv_in".into(), &h);
        if self.in_shortcut_repeats > 0 {
            h + repeat_interleave_channels(z, self.in_shortcut_repeats)
        } else {
            h
        }
    }

    /// Stage `i`: its upsample (when it has one), then its blocks.
    pub(crate) fn stage(&self, i: usize, mut h: Tensor<4>, trace: &mut Trace) -> Tensor<4> {
        let stage = &self.up_blocks[i];
        if stage.is_empty() {
            return h;
        }
        for (j, block) in stage.iter().enumerate() {
            h = block.forward_traced(h, &format!("decoder.up_blocks.{i}.{j}"), trace);
        }
        trace.record(|| format!("decoder.up_blocks.{i}"), &h);
        h
    }
}

//! Down/up-sampling blocks with the paper's residual autoencoding shortcuts
//! (diffusers `DCDownBlock2d` / `DCUpBlock2d`; efficientvit `ConvPixelUnshuffleDownSampleLayer`,
//! `ConvPixelShuffleUpSampleLayer`, `InterpolateConvUpSampleLayer` with
//! `PixelUnshuffleChannelAveragingDownSampleLayer` / `ChannelDuplicatingPixelUnshuffleUpSampleLayer`).

use burn::module::Module;
use burn::tensor::Tensor;

use crate::autoencoder::config::{Downsample, Upsample};
use crate::error::Result;
use crate::nn::conv::{Conv, ConvSpec};
use crate::nn::reshape::{
    average_channel_groups, pixel_shuffle, pixel_unshuffle, repeat_interleave_channels,
    upsample_nearest2x,
};
use crate::weights::Builder;

/// Encoder downsampling `Cin -> Cout` at half resolution.
#[derive(Module, Debug)]
pub struct DownBlock {
    pub conv: Conv,
    /// pixel_unshuffle after the conv (else the conv has stride 2).
    pub unshuffle: bool,
    /// Space-to-channel + channel-averaging shortcut; 0 when off, else the group size.
    pub shortcut_group: usize,
}

impl DownBlock {
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        cin: usize,
        cout: usize,
        kind: Downsample,
        shortcut: bool,
    ) -> Result<Self> {
        let (conv, unshuffle) = match kind {
            Downsample::PixelUnshuffle => (
                Conv::build(b, &format!("{key}.conv"), ConvSpec::new(cin, cout / 4, 3))?,
                true,
            ),
            Downsample::StridedConv => (
                Conv::build(
                    b,
                    &format!("{key}.conv"),
                    ConvSpec::new(cin, cout, 3).stride(2),
                )?,
                false,
            ),
        };
        Ok(Self {
            conv,
            unshuffle,
            shortcut_group: if shortcut { 4 * cin / cout } else { 0 },
        })
    }

    /// # Shapes
    /// `[B, Cin, H, W] -> [B, Cout, H/2, W/2]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let main = self.conv.forward(x.clone());
        let main = if self.unshuffle {
            pixel_unshuffle(main)
        } else {
            main
        };
        if self.shortcut_group == 0 {
            return main;
        }
        main + average_channel_groups(pixel_unshuffle(x), self.shortcut_group)
    }
}

/// Decoder upsampling `Cin -> Cout` at double resolution.
#[derive(Module, Debug)]
pub struct UpBlock {
    pub conv: Conv,
    /// Nearest x2 before the conv (else pixel_shuffle after it).
    pub interpolate: bool,
    /// Channel-duplicating + channel-to-space shortcut; 0 when off, else the repeat count.
    pub shortcut_repeats: usize,
}

impl UpBlock {
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        cin: usize,
        cout: usize,
        kind: Upsample,
        shortcut: bool,
    ) -> Result<Self> {
        let (conv, interpolate) = match kind {
            Upsample::PixelShuffle => (
                Conv::build(b, &format!("{key}.conv"), ConvSpec::new(cin, cout * 4, 3))?,
                false,
            ),
            Upsample::Interpolate => (
                Conv::build(b, &format!("{key}.conv"), ConvSpec::new(cin, cout, 3))?,
                true,
            ),
        };
        Ok(Self {
            conv,
            interpolate,
            shortcut_repeats: if shortcut { 4 * cout / cin } else { 0 },
        })
    }

    /// # Shapes
    /// `[B, Cin, H, W] -> [B, Cout, 2H, 2W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let main = if self.interpolate {
            self.conv.forward(upsample_nearest2x(x.clone()))
        } else {
            pixel_shuffle(self.conv.forward(x.clone()))
        };
        if self.shortcut_repeats == 0 {
            return main;
        }
        main + pixel_shuffle(repeat_interleave_channels(x, self.shortcut_repeats))
    }
}

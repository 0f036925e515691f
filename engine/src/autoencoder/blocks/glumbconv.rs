//! GLUMBConv: inverted 1x1 (C -> 8C, bias) -> SiLU -> depthwise 3x3 (bias) -> split into value
//! and gate halves -> value * SiLU(gate) -> point 1x1 (4C -> C, no bias) -> RMSNorm, + input.
//! diffusers `models/normalization.py`-era `GLUMBConv` (expand ratio 4), efficientvit `GLUMBConv`.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use crate::error::Result;
use crate::nn::RmsNorm2d;
use crate::nn::conv::{Conv, ConvSpec};
use crate::weights::Builder;

#[derive(Module, Debug)]
pub struct GluMbConv {
    pub conv_inverted: Conv,
    pub conv_depth: Conv,
    pub conv_point: Conv,
    pub norm: RmsNorm2d,
}

impl GluMbConv {
    pub(crate) fn build(b: &mut Builder, key: &str, c: usize) -> Result<Self> {
        let hidden = 4 * c;
        Ok(Self {
            conv_inverted: Conv::build(
                b,
                &format!("{key}.conv_inverted"),
                ConvSpec::new(c, 2 * hidden, 1),
            )?,
            conv_depth: Conv::build(
                b,
                &format!("{key}.conv_depth"),
                ConvSpec::new(2 * hidden, 2 * hidden, 3).groups(2 * hidden),
            )?,
            conv_point: Conv::build(
                b,
                &format!("{key}.conv_point"),
                ConvSpec::new(hidden, c, 1).no_bias(),
            )?,
            norm: RmsNorm2d::build(b, &format!("{key}.norm"), c)?,
        })
    }

    /// # Shapes
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = silu(self.conv_inverted.forward(x.clone()));
        let h = self.conv_depth.forward(h);
        let hidden = h.dims()[1] / 2;
        let value = h.clone().narrow(1, 0, hidden);
        let gate = silu(h.narrow(1, hidden, hidden));
        let h = self.conv_point.forward(value * gate);
        self.norm.forward(h) + x
    }
}

//! ResBlock: conv3x3 (bias) -> act -> conv3x3 (no bias) -> norm, plus the input.
//! diffusers `models/autoencoders/autoencoder_dc.py::ResBlock`; efficientvit `ResBlock` inside
//! `ResidualBlock(main, IdentityLayer)`. There is no pre-norm.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::error::Result;
use crate::nn::Norm;
use crate::nn::act::{Act, act_code, act_from_code, activate};
use crate::nn::conv::{Conv, ConvSpec};
use crate::nn::norm::NormType;
use crate::weights::Builder;

#[derive(Module, Debug)]
pub struct ResBlock {
    pub conv1: Conv,
    pub conv2: Conv,
    pub norm: Norm,
    act: usize,
}

impl ResBlock {
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        c: usize,
        norm: NormType,
        act: Act,
    ) -> Result<Self> {
        Ok(Self {
            conv1: Conv::build(b, &format!("{key}.conv1"), ConvSpec::new(c, c, 3))?,
            conv2: Conv::build(b, &format!("{key}.conv2"), ConvSpec::new(c, c, 3).no_bias())?,
            norm: Norm::build(b, &format!("{key}.norm"), c, norm)?,
            act: act_code(act),
        })
    }

    /// # Shapes
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv1.forward(x.clone());
        let h = activate(h, act_from_code(self.act));
        let h = self.norm.forward(self.conv2.forward(h));
        h + x
    }
}

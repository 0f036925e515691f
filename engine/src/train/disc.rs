//! PatchGAN-style discriminator (Isola et al. 2017, as in taming-transformers' NLayer
//! discriminator) for phase 3: 4x4 convolutions, stride 2 then 1, LeakyReLU(0.2), one logit per
//! patch. No normalisation layers, so it has no running statistics to checkpoint.

use burn::module::{Module, ParamId};
use burn::tensor::Tensor;
use burn::tensor::activation::leaky_relu;

use crate::error::Result;
use crate::nn::conv::{Conv, ConvSpec};
use crate::weights::Builder;

#[derive(Module, Debug)]
pub struct Discriminator {
    pub layers: Vec<Conv>,
}

impl Discriminator {
    /// `channels` base width; `n_layers` stride-2 convolutions. Keys `disc.layers.N.*`.
    pub fn build(
        b: &mut Builder,
        channels: usize,
        n_layers: usize,
    ) -> Result<(Self, Vec<(ParamId, String)>)> {
        let mut layers = Vec::new();
        let mut cin = 3;
        let mut cout = channels;
        for i in 0..=n_layers {
            let stride = if i < n_layers { 2 } else { 1 };
            layers.push(Conv::build(
                b,
                &format!("disc.layers.{i}"),
                ConvSpec::new(cin, cout, 4).stride(stride),
            )?);
            cin = cout;
            cout = (cout * 2).min(channels * 8);
        }
        layers.push(Conv::build(
            b,
            &format!("disc.layers.{}", n_layers + 1),
            ConvSpec::new(cin, 1, 4),
        )?);
        Ok((Self { layers }, std::mem::take(&mut b.names)))
    }

    /// Patch logits.
    ///
    /// # Shapes
    /// `[B, 3, H, W] -> [B, 1, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let n = self.layers.len();
        let mut h = x;
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(h);
            if i + 1 < n {
                h = leaky_relu(h, 0.2);
            }
        }
        h
    }
}

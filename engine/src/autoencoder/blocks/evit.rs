//! EfficientViT block: `x + LiteMLA(x)` then `x + GLUMBConv(x)`.
//! diffusers `EfficientViTBlock` (`attn`, `conv_out`); efficientvit `EfficientViTBlock`
//! (`context_module`, `local_module`).

use burn::module::Module;
use burn::tensor::Tensor;

use super::lite_mla::LiteMla;
use crate::error::Result;
use crate::nn::GluMbConv;
use crate::weights::Builder;

#[derive(Module, Debug)]
pub struct EfficientVitBlock {
    pub attn: LiteMla,
    pub conv_out: GluMbConv,
}

impl EfficientVitBlock {
    pub(crate) fn build(
        b: &mut Builder,
        key: &str,
        c: usize,
        head_dim: usize,
        scales: &[usize],
    ) -> Result<Self> {
        Ok(Self {
            attn: LiteMla::build(b, &format!("{key}.attn"), c, head_dim, scales)?,
            conv_out: GluMbConv::build(b, &format!("{key}.conv_out"), c)?,
        })
    }

    /// Returns (attention-half output, block output).
    ///
    /// # Shapes
    /// `[B, C, H, W] -> ([B, C, H, W], [B, C, H, W])`
    pub fn forward_with_attn(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let a = self.attn.forward(x);
        let y = self.conv_out.forward(a.clone());
        (a, y)
    }

    /// # Shapes
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with_attn(x).1
    }
}

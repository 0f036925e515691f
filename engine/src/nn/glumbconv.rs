//! GLUMBConv, the gated MBConv of DC-AE's EfficientViT blocks and of Sana's feed-forward:
//! inverted 1x1 (C -> 2h, bias) -> SiLU -> depthwise 3x3 (bias) -> split into value and gate
//! halves -> value * SiLU(gate) -> point 1x1 (h -> C, no bias), then (DC-AE) RMSNorm and the
//! residual. diffusers `GLUMBConv` (DC-AE: expand 4, `rms_norm`, residual; Sana: expand
//! `mlp_ratio`, no norm, no residual); efficientvit `GLUMBConv`.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::error::Result;
use crate::kernels::{glu_silu, silu};
use crate::nn::RmsNorm2d;
use crate::nn::conv::{Conv, ConvSpec};
use crate::weights::Builder;

#[derive(Module, Debug)]
pub struct GluMbConv {
    pub conv_inverted: Conv,
    pub conv_depth: Conv,
    pub conv_point: Conv,
    pub norm: Option<RmsNorm2d>,
    pub residual: bool,
}

impl GluMbConv {
    /// DC-AE's: hidden `4c`, RMSNorm and the residual.
    pub fn build(b: &mut Builder, key: &str, c: usize) -> Result<Self> {
        Self::build_with(b, key, c, 4 * c, true)
    }

    /// `hidden` channels (`int(expand_ratio * c)`); `norm_residual` adds DC-AE's RMSNorm and
    /// residual, Sana's feed-forward has neither.
    pub fn build_with(
        b: &mut Builder,
        key: &str,
        c: usize,
        hidden: usize,
        norm_residual: bool,
    ) -> Result<Self> {
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
            norm: if norm_residual {
                Some(RmsNorm2d::build(b, &format!("{key}.norm"), c)?)
            } else {
                None
            },
            residual: norm_residual,
        })
    }

    /// # Shapes
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = silu(self.conv_inverted.forward(x.clone()));
        let h = self.conv_depth.forward(h);
        let h = self.conv_point.forward(glu_silu(h));
        let h = match &self.norm {
            Some(n) => n.forward(h),
            None => h,
        };
        if self.residual { h + x } else { h }
    }
}

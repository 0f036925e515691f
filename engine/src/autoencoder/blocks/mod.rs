//! The blocks DC-AE stages are made of: residual blocks, EfficientViT blocks (LiteMLA +
//! GLUMBConv, shared in `nn`) and the down/up-sampling blocks with residual autoencoding shortcuts.

pub mod evit;
pub mod lite_mla;
pub mod resample;
pub mod resblock;

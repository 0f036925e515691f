//! Layers shared by every model family: convolutions, norms (RMSNorm2d, BatchNorm2d, LayerNorm,
//! RMSNorm), linear layers, softmax and ReLU linear attention, rotary embeddings, MLP,
//! GLUMBConv, embeddings, parameter-free reshapes, activations and activation tracing. Each
//! layer is built through [`crate::weights::Builder`] under its checkpoint key.

pub mod act;
pub mod attention;
pub mod conv;
pub mod embedding;
pub mod glumbconv;
pub mod linear;
pub mod linear_attention;
pub mod mlp;
pub mod norm;
pub mod reshape;
pub mod rope;
pub mod trace;

pub use act::activate;
pub use attention::{Attention, sdpa};
pub use conv::{Conv, PatchEmbed};
pub use embedding::{LabelEmbed, labels_tensor, timestep_embedding};
pub use glumbconv::GluMbConv;
pub use linear::Linear;
pub use linear_attention::relu_linear_attention;
pub use mlp::Mlp;
pub use norm::{BatchNorm2d, LayerNorm, Norm, RmsNorm, RmsNorm2d};
pub use trace::Trace;

//! Checkpoint reading, shared by every model: a strict [`WeightStore`] over one safetensors
//! file or the shards of an index json ([`store`]), key layouts and their canonical names
//! ([`remap`]), and the [`Builder`] that turns stored tensors (or a seeded random init) into
//! named parameters ([`builder`]).

pub mod builder;
pub mod export;
pub mod remap;
pub mod store;

pub use builder::{Builder, Init, Precision, check_precision, param_id};
pub use export::write_module;
pub use remap::{KeyLayout, efficientvit_to_canonical};
pub use store::{RawTensor, WeightStore, component_weights, component_weights_variant};

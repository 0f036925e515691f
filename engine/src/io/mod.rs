//! Files in and out: images ([`image`]: decode, fit to the compression factor, quantise) and
//! f32 tensors in safetensors files ([`tensors`]), every write atomic.

pub mod image;
pub mod tensors;

pub use tensors::write_atomic;

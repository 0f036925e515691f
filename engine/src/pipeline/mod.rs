//! What users run, in one place for every front end (CLI, app, training): reconstruction of
//! an image ([`reconstruct`]), evaluation over images against a bicubic baseline ([`eval`]),
//! class-to-image generation ([`class_to_image`], with [`classes`] for ImageNet names),
//! text-to-image with Sana ([`text_to_image`]), generation settings carried in PNG text
//! chunks ([`settings`], either kind as one [`generation::GenerationSettings`]), and cheap
//! live previews of latents ([`preview`]).

pub mod class_to_image;
pub mod classes;
pub mod conformance;
pub mod eval;
pub mod generation;
pub mod preview;
pub mod reconstruct;
pub mod settings;
pub mod text_to_image;

pub use reconstruct::{ReconstructOptions, Reconstruction, reconstruct};

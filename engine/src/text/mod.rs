//! Text encoders of the text-to-image models: Sana's Gemma-2 ([`gemma2`]), its tokenizer
//! ([`tokenizer`], the Hugging Face `tokenizer.json` through the `tokenizers` crate) and the
//! prompt pipeline of diffusers' Sana pipelines ([`prompt`]: case, complex human instruction,
//! padding, the BOS + last-299 selection).

pub mod gemma2;
pub mod prompt;
pub mod tokenizer;

pub use gemma2::{Gemma2, Gemma2Config};
pub use prompt::{PromptOptions, PromptTokens};
pub use tokenizer::TextTokenizer;

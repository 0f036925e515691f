//! The Hugging Face fast-tokenizer file (`tokenizer/tokenizer.json`) through the `tokenizers`
//! crate, pure Rust (`fancy-regex`). Special tokens come from the file's post-processor (BOS
//! for Gemma); padding and truncation are done by [`super::prompt`], as diffusers asks the
//! tokenizer for them.

use std::path::Path;

use crate::error::{Error, Result};

/// Largest tokenizer file accepted (Gemma's is 34 MB).
const MAX_TOKENIZER_BYTES: u64 = 512 << 20;

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// The padding id (`<pad>` when the vocabulary has it, else 0 — Gemma's).
    pub pad_id: i64,
}

impl TextTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        crate::io::check_regular_file(path)?;
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        if len > MAX_TOKENIZER_BYTES {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!("{len} bytes is not a tokenizer.json (over 512 MiB)"),
            });
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        // The file comes from the internet: a panic in the parser on a hostile file is an error
        // like any other, not a crash.
        // Syntax first: the `tokenizers` parser panics (rather than erring) on malformed JSON
        // inside some sections, and a truncated download is the common bad file.
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::Unsupported(format!("tokenizer.json is not valid JSON: {e}")))?;
        let parsed =
            std::panic::catch_unwind(|| serde_json::from_value::<tokenizers::Tokenizer>(value))
                .map_err(|_| {
                    Error::Unsupported("not a usable tokenizer.json (its parser gave up)".into())
                })?;
        let inner = parsed
            .map_err(|e| Error::Unsupported(format!("not a Hugging Face tokenizer.json: {e}")))?;
        let pad_id = inner.token_to_id("<pad>").map_or(0, i64::from);
        Ok(Self { inner, pad_id })
    }

    /// Token ids of `text` with the special tokens of the post-processor (BOS first for Gemma),
    /// untruncated.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let enc = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.inner.encode(text, true)
        }))
        .map_err(|_| Error::Input("tokenizer: the tokenizer.json cannot encode this text".into()))?
        .map_err(|e| Error::Input(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

//! The prompt pipeline of diffusers' `SanaPipeline._get_gemma_prompt_embeds` / `encode_prompt`,
//! tensor-free: case and whitespace, the complex human instruction (CHI), right padding to
//! `len(CHI tokens incl. BOS) + 300 - 2`, truncation, and the selection of BOS + the last 299
//! positions; the negative prompt without CHI at 300 tokens.

use serde::{Deserialize, Serialize};

use super::tokenizer::TextTokenizer;
use crate::error::{Error, Result};

/// diffusers' default `complex_human_instruction` (joined with `"\n"`, prepended to the
/// prompt; the last line ends with a space).
pub const COMPLEX_HUMAN_INSTRUCTION: [&str; 8] = [
    "Given a user prompt, generate an 'Enhanced prompt' that provides detailed visual descriptions suitable for image generation. Evaluate the level of detail in the user prompt:",
    "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial relationships to create vivid and concrete scenes.",
    "- If the prompt is already detailed, refine and enhance the existing details slightly without overcomplicating.",
    "Here are examples of how to transform or refine prompts:",
    "- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.",
    "- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus passing by towering glass skyscrapers.",
    "Please generate only the enhanced description for the prompt below and avoid including any additional commentary or evaluations:",
    "User Prompt: ",
];

/// Longest prompt accepted, in bytes (tokenisation is linear, but a pasted book is a mistake).
pub const MAX_PROMPT_BYTES: usize = 64 << 10;

/// How prompts are turned into tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptOptions {
    /// Prepend the complex human instruction (diffusers' and Sana's default).
    pub chi: bool,
    /// Keep the prompt's case (diffusers lower-cases; NVlabs' own pipeline does not).
    pub keep_case: bool,
    /// Tokens the transformer sees (300 in every release).
    pub max_sequence_length: usize,
}

impl Default for PromptOptions {
    fn default() -> Self {
        Self {
            chi: true,
            keep_case: false,
            max_sequence_length: 300,
        }
    }
}

/// A tokenised batch row: what the text encoder reads (`ids`, `mask`, both `len` long) and the
/// positions of its output the transformer keeps (`select`, `max_sequence_length` long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTokens {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub select: Vec<usize>,
}

impl PromptTokens {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The selected ids and mask (what the golden file of the tests holds).
    pub fn selected(&self) -> (Vec<i64>, Vec<i64>) {
        (
            self.select.iter().map(|&i| self.ids[i]).collect(),
            self.select.iter().map(|&i| self.mask[i]).collect(),
        )
    }
}

/// Python's `str.strip()`: Unicode whitespace plus the ASCII separators `\x1c`..`\x1f`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// `prompt.lower().strip()` (diffusers with `clean_caption=False`), or only the strip with
/// `keep_case`.
pub fn preprocess(prompt: &str, keep_case: bool) -> String {
    if keep_case {
        py_strip(prompt).to_string()
    } else {
        py_strip(&prompt.to_lowercase()).to_string()
    }
}

fn check(prompt: &str, opts: &PromptOptions) -> Result<()> {
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(Error::Input(format!(
            "the prompt is {} bytes; at most {MAX_PROMPT_BYTES} are accepted (only the first \
             {} tokens are used anyway)",
            prompt.len(),
            opts.max_sequence_length
        )));
    }
    if !(2..=4096).contains(&opts.max_sequence_length) {
        return Err(Error::Input(format!(
            "max_sequence_length {}: give 2..=4096",
            opts.max_sequence_length
        )));
    }
    Ok(())
}

/// Right-pads or truncates `ids` to `n` (mask 1 on tokens).
fn pad_to(mut ids: Vec<i64>, n: usize, pad: i64) -> (Vec<i64>, Vec<i64>) {
    ids.truncate(n);
    let mut mask = vec![1; ids.len()];
    mask.resize(n, 0);
    ids.resize(n, pad);
    (ids, mask)
}

/// The positive prompt's tokens (`_get_gemma_prompt_embeds` + `select_index`).
pub fn prompt_tokens(
    tok: &TextTokenizer,
    prompt: &str,
    opts: &PromptOptions,
) -> Result<PromptTokens> {
    check(prompt, opts)?;
    let n = opts.max_sequence_length;
    let p = preprocess(prompt, opts.keep_case);
    let (text, len) = if opts.chi {
        let chi = COMPLEX_HUMAN_INSTRUCTION.join("\n");
        let chi_tokens = tok.encode(&chi)?.len();
        (format!("{chi}{p}"), chi_tokens + n - 2)
    } else {
        (p, n)
    };
    let (ids, mask) = pad_to(tok.encode(&text)?, len, tok.pad_id);
    // `[0] + list(range(-(n - 1), 0))`: BOS and the last n - 1 positions.
    let mut select = vec![0];
    select.extend(len - (n - 1)..len);
    Ok(PromptTokens { ids, mask, select })
}

/// Tokens `prompt` takes (without BOS) and how many the transformer sees: the live counter
/// of a prompt box. With the instruction prefix the budget is `max_sequence_length - 2`
/// (BOS and the prefix's own last position), else `max_sequence_length - 1`.
pub fn prompt_budget(tok: &TextTokenizer, prompt: &str, opts: &PromptOptions) -> (usize, usize) {
    let p = preprocess(prompt, opts.keep_case);
    let used = tok
        .encode(&p)
        .map(|ids| ids.len().saturating_sub(1))
        .unwrap_or(0);
    let n = opts.max_sequence_length;
    (used, n.saturating_sub(if opts.chi { 2 } else { 1 }))
}

/// The negative (unconditional) prompt: no CHI, padded to `max_sequence_length`, no selection
/// (diffusers' `""` gives BOS + padding, mask `[1, 0, ...]`).
pub fn negative_tokens(
    tok: &TextTokenizer,
    prompt: &str,
    opts: &PromptOptions,
) -> Result<PromptTokens> {
    check(prompt, opts)?;
    let n = opts.max_sequence_length;
    let p = preprocess(prompt, opts.keep_case);
    let (ids, mask) = pad_to(tok.encode(&p)?, n, tok.pad_id);
    Ok(PromptTokens {
        ids,
        mask,
        select: (0..n).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocessing_matches_python() {
        assert_eq!(preprocess("  A Cat\u{1f}\n", false), "a cat");
        assert_eq!(preprocess("  A Cat ", true), "A Cat");
        assert_eq!(preprocess("ΣΑΣ", false), "σας");
        // The CHI text diffusers hashes (1057 bytes).
        assert_eq!(COMPLEX_HUMAN_INSTRUCTION.join("\n").len(), 1057);
    }

    #[test]
    fn padding_and_truncation() {
        assert_eq!(
            pad_to(vec![2, 5], 4, 0),
            (vec![2, 5, 0, 0], vec![1, 1, 0, 0])
        );
        assert_eq!(
            pad_to(vec![2, 5, 6, 7, 8], 3, 0),
            (vec![2, 5, 6], vec![1, 1, 1])
        );
    }
}

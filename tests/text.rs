//! The tokenizer and prompt pipeline against the committed golden
//! (`tests/data/tokenizer/`, made by `tests/tools/make_tokenizer_golden.py` with the
//! `tokenizers` and `transformers` packages driving the tokenizer the way diffusers'
//! `SanaPipeline` does): ids and masks after the BOS + last-299 selection for a dozen prompts
//! (unicode, emoji, over-long, empty, ...), CHI on and off, case kept or not, and negative
//! prompts.

use std::path::{Path, PathBuf};

use dcae::text::TextTokenizer;
use dcae::text::prompt::{
    COMPLEX_HUMAN_INSTRUCTION, PromptOptions, negative_tokens, prompt_tokens,
};
use sha2::{Digest, Sha256};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tokenizer")
}

fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn prompts_match_the_transformers_golden() {
    let tok = TextTokenizer::from_file(&data().join("tokenizer.json")).unwrap();
    let text = std::fs::read_to_string(data().join("golden.json")).unwrap();
    let g: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(tok.vocab_size() as u64, g["vocab_size"].as_u64().unwrap());
    let chi = COMPLEX_HUMAN_INSTRUCTION.join("\n");
    assert_eq!(
        tok.encode(&chi).unwrap().len() as u64,
        g["chi_tokens"].as_u64().unwrap()
    );
    let n = g["max_sequence_length"].as_u64().unwrap() as usize;
    let rows = g["prompts"].as_array().unwrap();
    assert!(rows.len() >= 12);
    for r in rows {
        let p = r["prompt"].as_str().unwrap();
        let opts = PromptOptions {
            chi: r["chi"].as_bool().unwrap(),
            keep_case: r["keep_case"].as_bool().unwrap(),
            max_sequence_length: n,
        };
        let t = prompt_tokens(&tok, p, &opts).unwrap();
        assert_eq!(
            t.len() as u64,
            r["encoder_len"].as_u64().unwrap(),
            "encoder length of {p:?} {opts:?}"
        );
        let (ids, mask) = t.selected();
        assert_eq!(ids, ints(&r["ids"]), "ids of {p:?} {opts:?}");
        assert_eq!(mask, ints(&r["mask"]), "mask of {p:?} {opts:?}");
    }
    for r in g["negatives"].as_array().unwrap() {
        let p = r["prompt"].as_str().unwrap();
        let t = negative_tokens(&tok, p, &PromptOptions::default()).unwrap();
        let (ids, mask) = t.selected();
        assert_eq!(ids, ints(&r["ids"]), "negative {p:?}");
        assert_eq!(mask, ints(&r["mask"]), "negative {p:?}");
    }
}

/// diffusers' CHI text, byte for byte (its sha256 as computed from diffusers 0.42.1's list).
#[test]
fn chi_is_diffusers_text() {
    let chi = COMPLEX_HUMAN_INSTRUCTION.join("\n");
    let hex: String = Sha256::digest(chi.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex,
        "48290080bb4fd4a264bdc81d0647ac0221359a36506e2b3e954616d6cb48c3da"
    );
}

#[test]
fn a_broken_tokenizer_file_is_one_clear_error() {
    for bad in [&b""[..], b"{", b"{\"model\": 3}", &[0xff, 0xfe, 0x00][..]] {
        let e = TextTokenizer::from_bytes(bad).err().expect("must fail");
        assert!(e.to_string().contains("tokenizer.json"), "{e}");
    }
    let dir = std::env::temp_dir().join(format!("dcae-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("tokenizer.json");
    std::fs::write(&p, b"not json").unwrap();
    let e = TextTokenizer::from_file(&p).err().unwrap().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

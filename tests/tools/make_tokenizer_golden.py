#!/usr/bin/env python3
"""Builds the tokenizer golden of tests/text.rs: a small tokenizer.json with the structure of
Gemma's (normalizer Replace " " -> "▁", no pre-tokenizer, BPE with byte fallback and the
<0xNN> byte tokens, <pad>=0 <eos>=1 <bos>=2 <unk>=3, BOS from a TemplateProcessing
post-processor), and the ids / masks that transformers' tokenizer gives for a dozen prompts
when driven the way diffusers' SanaPipeline drives it (`_get_gemma_prompt_embeds`:
lower().strip(), the complex human instruction prepended, padding="max_length" to
len(encode(CHI)) + 300 - 2, truncation, add_special_tokens; then `select_index` = [0] + the
last 299 positions; the negative prompt without CHI at 300 tokens).

    python3 -m venv v && v/bin/pip install tokenizers transformers
    v/bin/python tests/tools/make_tokenizer_golden.py tests/data/tokenizer
"""
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
from transformers import PreTrainedTokenizerFast

CHI = [
    "Given a user prompt, generate an 'Enhanced prompt' that provides detailed visual descriptions suitable for image generation. Evaluate the level of detail in the user prompt:",
    "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial relationships to create vivid and concrete scenes.",
    "- If the prompt is already detailed, refine and enhance the existing details slightly without overcomplicating.",
    "Here are examples of how to transform or refine prompts:",
    "- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.",
    "- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus passing by towering glass skyscrapers.",
    "Please generate only the enhanced description for the prompt below and avoid including any additional commentary or evaluations:",
    "User Prompt: ",
]
MAX_LEN = 300
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]

LONG = " ".join(["a very long prompt about a lighthouse on a cliff at sunset"] * 60)
PROMPTS = [
    "A cat sleeping",
    "  Mixed CASE with   spaces  ",
    "",
    "unicode: café, naïve, Σίσυφος, 日本語のテキスト",
    "🐱🚀 a rocket cat 👨‍👩‍👧",
    LONG,
    "tabs\tand\nnewlines\r\n",
    "punctuation!?... — em dash – en dash «quotes»",
    "numbers 1234567890 and 3.14159",
    "<bos> literal special-token text <pad>",
    "مرحبا بالعالم",
    "ΣΑΣ final sigma",
]
# (prompt index, options) rows beside the defaults.
VARIANTS = [
    (1, {"chi": False}),
    (1, {"keep_case": True}),
    (5, {"chi": False}),
    (3, {"chi": False, "keep_case": True}),
]
NEGATIVES = ["", "Blurry, low quality", LONG]


def build_tokenizer():
    corpus = [l.lower() for l in CHI] + CHI + [
        "a photo of a cat on a red sofa in the sun",
        "the quick brown fox jumps over the lazy dog",
        "an astronaut riding a horse on the moon, detailed, 4k",
    ]
    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.normalizer = normalizers.Replace(" ", "\u2581")
    trainer = trainers.BpeTrainer(vocab_size=250, special_tokens=[], limit_alphabet=60, show_progress=False)
    t.train_from_iterator(corpus, trainer)
    trained = json.loads(t.to_str())["model"]
    vocab = {}
    for s in SPECIALS + [f"<0x{i:02X}>" for i in range(256)]:
        vocab[s] = len(vocab)
    for tok, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if tok not in vocab:
            vocab[tok] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    g = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    g.normalizer = normalizers.Replace(" ", "\u2581")
    g.add_special_tokens(SPECIALS)
    g.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", 2)]
    )
    g.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    return g


def encode(tok, prompt, chi=True, keep_case=False):
    p = prompt.strip() if keep_case else prompt.lower().strip()
    if chi:
        chi_text = "\n".join(CHI)
        text = chi_text + p
        length = len(tok.encode(chi_text)) + MAX_LEN - 2
    else:
        text = p
        length = MAX_LEN
    enc = tok([text], padding="max_length", max_length=length, truncation=True, add_special_tokens=True)
    ids, mask = enc.input_ids[0], enc.attention_mask[0]
    select = [0] + list(range(length - (MAX_LEN - 1), length))
    return [ids[i] for i in select], [mask[i] for i in select], length


def main(out):
    os.makedirs(out, exist_ok=True)
    g = build_tokenizer()
    path = os.path.join(out, "tokenizer.json")
    g.save(path)
    tok = PreTrainedTokenizerFast(
        tokenizer_file=path, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    tok.padding_side = "right"
    rows = []
    for i, p in enumerate(PROMPTS):
        ids, mask, n = encode(tok, p)
        rows.append({"prompt": p, "chi": True, "keep_case": False, "encoder_len": n, "ids": ids, "mask": mask})
    for i, opts in VARIANTS:
        ids, mask, n = encode(tok, PROMPTS[i], **opts)
        rows.append({"prompt": PROMPTS[i], "chi": opts.get("chi", True), "keep_case": opts.get("keep_case", False),
                     "encoder_len": n, "ids": ids, "mask": mask})
    negs = []
    for p in NEGATIVES:
        ids, mask, n = encode(tok, p, chi=False)
        negs.append({"prompt": p, "ids": ids, "mask": mask})
    golden = {
        "made_by": "tests/tools/make_tokenizer_golden.py",
        "tokenizers": __import__("tokenizers").__version__,
        "transformers": __import__("transformers").__version__,
        "vocab_size": g.get_vocab_size(with_added_tokens=True),
        "chi_tokens": len(tok.encode("\n".join(CHI))),
        "max_sequence_length": MAX_LEN,
        "prompts": rows,
        "negatives": negs,
    }
    with open(os.path.join(out, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("vocab", golden["vocab_size"], "chi tokens", golden["chi_tokens"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tokenizer")

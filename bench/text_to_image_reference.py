"""Times the references of `dcae bench --text-to-image` with random weights: diffusers
SanaTransformer2DModel (Sana 600M / 1.6B configs, 1024² = 32x32x32 latent, batch 2, 300 caption
tokens of which 20 valid, t = 999) and transformers Gemma2Model (Gemma-2-2B config, 300
tokens, eager attention), one warm-up then the median of --runs; prints ours / theirs per row
from our JSON lines (--ours). Called by compare_text_to_image.sh."""
import argparse, json, statistics, time

import torch
from diffusers import SanaTransformer2DModel
from transformers import Gemma2Config, Gemma2Model

SANA = {
    "Sana 600M": dict(num_attention_heads=36, num_layers=28, num_cross_attention_heads=16,
                      cross_attention_head_dim=72, cross_attention_dim=1152),
    "Sana 1.6B": dict(num_attention_heads=70, num_layers=20, num_cross_attention_heads=20,
                      cross_attention_head_dim=112, cross_attention_dim=2240),
}


def timed(fn, runs):
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ours", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    ours = {}
    for line in open(a.ours):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            ours[r["model"]] = r
    rows = []
    with torch.inference_mode():
        for name, kw in SANA.items():
            torch.manual_seed(0)
            m = SanaTransformer2DModel(in_channels=32, out_channels=32, attention_head_dim=32,
                                       caption_channels=2304, sample_size=32, **kw).to(dev).eval()
            x = torch.randn(2, 32, 32, 32, device=dev)
            ctx = torch.randn(2, 300, 2304, device=dev)
            mask = torch.zeros(2, 300, dtype=torch.int64, device=dev)
            mask[:, :20] = 1
            t = torch.full((2,), 999.0, device=dev)
            ms = timed(lambda: m(x, encoder_hidden_states=ctx, encoder_attention_mask=mask, timestep=t,
                                 return_dict=False), a.runs)
            rows.append((name, sum(p.numel() for p in m.parameters()), ms))
            del m
        torch.manual_seed(0)
        g = Gemma2Model(Gemma2Config(attn_implementation="eager")).to(dev).eval()
        ids = (2 + (torch.arange(300) * 7919) % 255000).unsqueeze(0).to(dev)
        am = torch.ones(1, 300, dtype=torch.int64, device=dev)
        ms = timed(lambda: g(input_ids=ids, attention_mask=am), a.runs)
        rows.append(("Gemma-2-2B", sum(p.numel() for p in g.parameters()), ms))
    print(f"threads {a.threads}, device {a.device}, median of {a.runs} after a warm-up, OMP_WAIT_POLICY=PASSIVE")
    print("| model | params (M) | ours ms | reference ms | ours / reference |")
    print("|---|---:|---:|---:|---:|")
    for name, params, ref in rows:
        o = ours.get(name, {}).get("ms")
        ratio = f"{o / ref:.2f}" if o else "-"
        print(f"| {name} | {params / 1e6:.1f} | {o:.0f} | {ref:.0f} | {ratio} |" if o else
              f"| {name} | {params / 1e6:.1f} | - | {ref:.0f} | - |")


if __name__ == "__main__":
    main()

"""Times diffusers AutoencoderDC (the reference) on the configs `dcae bench` ran and prints a
side-by-side table with our time / reference time. Called by compare_reference.sh."""
import argparse, json, os, statistics, time, resource

import torch
from diffusers import AutoencoderDC


def load_folder(folder):
    """A diffusers AutoencoderDC from a model folder (config.json + safetensors), strict."""
    cfg = json.load(open(os.path.join(folder, "config.json")))
    if "model_name" in cfg:
        raise SystemExit("reference bench needs a diffusers config.json")
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_") and k not in ("reference", "weights_format", "efficientvit_config")}
    model = AutoencoderDC(**cfg)
    from safetensors.torch import load_file
    for name in ("diffusion_pytorch_model.safetensors", "model.safetensors"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            model.load_state_dict({k: v.float() for k, v in load_file(p).items()}, strict=True)
            break
    return model, cfg


def train_step(args):
    """The step `dcae train` takes with bench/lib.sh's run file: L1 loss on a [B, 3, crop,
    crop] batch, backward, global-norm clipping at 1, AdamW (lr 1e-4, wd 0.01), EMA 0.99.
    Returns the median step time in ms after 2 warm-up steps."""
    model, _ = load_folder(args.train_model)
    model.train()
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    ema = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(args.train_steps + 2):
        x = torch.rand(args.train_batch, 3, args.train_crop, args.train_crop, generator=g) * 2 - 1
        t0 = time.perf_counter()
        y = model.decode(model.encode(x).latent).sample
        loss = (y - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(0.99).add_(p, alpha=0.01)
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def load(args):
    if args.model:
        return load_folder(args.model)
    allc = json.load(open(args.configs))
    entry = allc["checkpoints"].get(args.preset) or allc["not_in_conversion_script"]["checkpoints"][args.preset]
    cfg = {k: v for k, v in entry["config"].items() if not k.startswith("_")}
    torch.manual_seed(0)
    return AutoencoderDC(**cfg), cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model"); ap.add_argument("--preset"); ap.add_argument("--configs")
    ap.add_argument("--size", default="256"); ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2); ap.add_argument("--device", default="cpu")
    ap.add_argument("--ours", required=True)
    ap.add_argument("--train-model"); ap.add_argument("--train-crop", type=int, default=128)
    ap.add_argument("--train-batch", type=int, default=6); ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--ours-train-ms", type=float, default=float("nan"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.train_model:
        ref = train_step(args)
        print(f"reference: diffusers {__import__('diffusers').__version__}, torch {torch.__version__}, cpu, "
              f"{args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
              f"median of {args.train_steps} steps after 2 warm-up steps")
        print("| training step | ours ms | ref ms | ours/ref |")
        print("|---|---:|---:|---:|")
        print(f"| {os.path.basename(os.path.normpath(args.train_model))}, batch {args.train_batch} x "
              f"{args.train_crop}², L1 + AdamW + clip + EMA | {args.ours_train_ms:.0f} | {ref:.0f} | "
              f"{args.ours_train_ms / ref:.2f} |")
        return
    model, cfg = load(args)
    model = model.eval().to(args.device)
    f = 2 ** (len(cfg["encoder_block_out_channels"]) - 1)
    ours = {r["size"]: r for r in (json.loads(l) for l in open(args.ours) if l.strip())}
    print(f"reference: diffusers {__import__('diffusers').__version__}, torch {torch.__version__}, "
          f"{args.device}, {args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"median of {args.runs} runs after 1 warm-up")
    print("| size | ours enc ms | ref enc ms | enc ours/ref | ours dec ms | ref dec ms | dec ours/ref | ours peak MB | ref peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in [int(s) for s in args.size.split(",")]:
        x = torch.rand(1, 3, size, size, device=args.device) * 2 - 1
        enc, dec = [], []
        with torch.inference_mode():
            for i in range(args.runs + 1):
                sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
                sync(); t0 = time.perf_counter()
                z = model.encode(x).latent
                sync(); t1 = time.perf_counter()
                y = model.decode(z).sample
                sync(); t2 = time.perf_counter()
                if i > 0:
                    enc.append((t1 - t0) * 1e3); dec.append((t2 - t1) * 1e3)
        re, rd = statistics.median(enc), statistics.median(dec)
        o = ours.get(size, {})
        oe, od = o.get("encode_ms", float("nan")), o.get("decode_ms", float("nan"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if args.device == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**20
        print(f"| {size}x{size} | {oe:.1f} | {re:.1f} | {oe/re:.2f} | {od:.1f} | {rd:.1f} | {od/rd:.2f} | "
              f"{o.get('peak_mb') or 'n/a'} | {peak:.0f} |")


if __name__ == "__main__":
    main()

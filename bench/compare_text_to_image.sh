#!/usr/bin/env bash
# One Sana 600M / 1.6B transformer step at 1024² (batch 2) and a Gemma-2-2B encode of 300
# tokens, ours (`dcae bench --text-to-image`) then diffusers / transformers (PyTorch), in one
# run on one machine; prints ours / theirs per row. Random weights (~25 GB RAM in f32).
#
#   bash bench/compare_text_to_image.sh [--backend cpu|wgpu|cuda] [--runs N] [--precision f32|bf16]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
backend="cpu"; runs=1; precision="f32"
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend="$2"; shift 2;;
    --runs) runs="$2"; shift 2;;
    --precision) precision="$2"; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
venv="${DCAE_BENCH_VENV:-$here/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch diffusers transformers safetensors numpy
fi
bin="$root/target/release/dcae"
[ -x "$bin" ] || (cd "$root" && cargo build --release --workspace)
threads="${DCAE_BENCH_THREADS:-$(nproc)}"
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$threads" RAYON_NUM_THREADS="$threads"
ours="$(mktemp)"
"$bin" bench --text-to-image --backend "$backend" --precision "$precision" --runs "$runs" --json | tee "$ours"
torch_dev=cpu; [ "$backend" = cpu ] || torch_dev=cuda
"$venv/bin/python" "$here/text_to_image_reference.py" --runs "$runs" --threads "$threads" \
  --device "$torch_dev" --ours "$ours"

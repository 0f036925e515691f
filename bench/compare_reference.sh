#!/usr/bin/env bash
# Times our `dcae bench` and the diffusers reference (PyTorch) on the same configs, in one run
# on one machine, and prints our time / theirs per row.
#
#   bash bench/compare_reference.sh [--preset NAME | --model DIR] [--size 256,512] [--backend cpu|wgpu|cuda] [--runs N]
#
# The reference gets its own venv (bench/.venv: torch + diffusers from PyPI), the same thread
# count as ours and OMP_WAIT_POLICY=PASSIVE (OpenMP spin-waits otherwise slow small ops).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
preset="dc-ae-f32c32-in-1.0"; model=""; size="256"; backend="cpu"; runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset="$2"; shift 2;;
    --model) model="$2"; shift 2;;
    --size) size="$2"; shift 2;;
    --backend) backend="$2"; shift 2;;
    --runs) runs="$2"; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
venv="${DCAE_BENCH_VENV:-$here/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch diffusers safetensors numpy
fi
bin="$root/target/release/dcae"
[ -x "$bin" ] || (cd "$root" && cargo build --release -p dcae-cli)
threads="${DCAE_BENCH_THREADS:-$(nproc)}"
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$threads" RAYON_NUM_THREADS="$threads"
if [ -n "$model" ]; then src=(--model "$model"); else src=(--preset "$preset"); fi
ours="$(mktemp)"
"$bin" bench "${src[@]}" --size "$size" --backend "$backend" --runs "$runs" --json > "$ours"
torch_dev=cpu; [ "$backend" = cpu ] || torch_dev=cuda
"$venv/bin/python" "$here/reference_bench.py" "${src[@]}" --size "$size" --runs "$runs" \
  --threads "$threads" --device "$torch_dev" --ours "$ours" \
  --configs "$root/../shared/fixtures/dcae/official-configs.json"

#!/usr/bin/env bash
# Times our `dcae bench` and the diffusers reference (PyTorch) on the same configs, in one run
# on one machine, and prints our time / theirs per row.
#
#   bash bench/compare_reference.sh [--preset NAME | --model DIR] [--size 256,512] [--backend cpu|wgpu|cuda] [--runs N]
#   bash bench/compare_reference.sh --train [--train-model DIR] [--train-crop 128] [--train-batch 6] [--train-steps 5]
#
# --train times one training step instead (CPU): forward + backward + AdamW + clipping + EMA
# of a model folder (default: the embedded default model) at its training crop and batch,
# ours through `dcae train` (the step seconds in log.csv, median after 2 warm-up steps; the
# one decoding thread of the data loader runs beside it), the reference's on random crops.
#
# The reference gets its own venv (bench/.venv: torch + diffusers from PyPI), the same thread
# count as ours and OMP_WAIT_POLICY=PASSIVE (OpenMP spin-waits otherwise slow small ops).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
preset="dc-ae-f32c32-in-1.0"; model=""; size="256"; backend="cpu"; runs=3
train=0; train_model="$root/assets/models/f32c32"; crop=128; batch=6; steps=5
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset="$2"; shift 2;;
    --model) model="$2"; shift 2;;
    --size) size="$2"; shift 2;;
    --backend) backend="$2"; shift 2;;
    --runs) runs="$2"; shift 2;;
    --train) train=1; shift;;
    --train-model) train_model="$2"; shift 2;;
    --train-crop) crop="$2"; shift 2;;
    --train-batch) batch="$2"; shift 2;;
    --train-steps) steps="$2"; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
venv="${DCAE_BENCH_VENV:-$here/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch diffusers safetensors numpy
fi
bin="$root/target/release/dcae"
[ -x "$bin" ] || (cd "$root" && cargo build --release --workspace)
threads="${DCAE_BENCH_THREADS:-$(nproc)}"
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$threads" RAYON_NUM_THREADS="$threads"
if [ "$train" = 1 ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  write_train_run "$work/run.toml" "$work/run" "$train_model" "$crop" "$batch" "$((steps + 2))"
  "$bin" train --config "$work/run.toml" > "$work/train.out" 2>&1 || { tail -5 "$work/train.out"; exit 1; }
  ours_ms="$(awk -v s="$(step_seconds "$work/run/log.csv" 2)" 'BEGIN { print s * 1000 }')"
  "$venv/bin/python" "$here/reference_bench.py" --ours /dev/null --threads "$threads" \
    --train-model "$train_model" --train-crop "$crop" --train-batch "$batch" \
    --train-steps "$steps" --ours-train-ms "$ours_ms"
  exit 0
fi
if [ -n "$model" ]; then src=(--model "$model"); else src=(--preset "$preset"); fi
ours="$(mktemp)"
"$bin" bench "${src[@]}" --size "$size" --backend "$backend" --runs "$runs" --json > "$ours"
torch_dev=cpu; [ "$backend" = cpu ] || torch_dev=cuda
"$venv/bin/python" "$here/reference_bench.py" "${src[@]}" --size "$size" --runs "$runs" \
  --threads "$threads" --device "$torch_dev" --ours "$ours" \
  --configs "$root/../shared/fixtures/dcae/official-configs.json"

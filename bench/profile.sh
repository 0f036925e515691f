#!/usr/bin/env bash
# Where the CPU time of an encode, a decode and a training step goes: samples `dcae bench
# --stage encode`, `--stage decode` and a short `dcae train` with perf (cpu-clock, so it works
# in VMs without hardware counters) and prints, for each, the top symbols, the share of the
# main thread (work no other core helps with) and of the kernel (page faults, syscalls).
#
#   bash bench/profile.sh [--preset NAME | --model DIR] [--size 256] [--top 25]
#                         [--train-model DIR] [--train-crop 128] [--train-batch 6] [--train-steps 8]
#                         [--only encode|decode|train]
#
# Defaults: the dc-ae-f32c32-sana-1.0 architecture (random weights) at 256x256, and a phase-1
# step (L1 only) of the embedded default model at its training crop and batch. Needs `perf`
# (Debian: apt-get install linux-perf). Threads: RAYON_NUM_THREADS, default all cores.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
preset="dc-ae-f32c32-sana-1.0"; model=""; size=256; top=25; only=""
train_model="$root/assets/models/f32c32"; crop=128; batch=6; steps=8
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset="$2"; shift 2;;
    --model) model="$2"; shift 2;;
    --size) size="$2"; shift 2;;
    --top) top="$2"; shift 2;;
    --train-model) train_model="$2"; shift 2;;
    --train-crop) crop="$2"; shift 2;;
    --train-batch) batch="$2"; shift 2;;
    --train-steps) steps="$2"; shift 2;;
    --only) only="$2"; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
command -v perf >/dev/null || { echo "perf not found (Debian: apt-get install linux-perf)" >&2; exit 1; }
bin="$root/target/release/dcae"
[ -x "$bin" ] || (cd "$root" && cargo build --release --workspace)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -n "$model" ]; then src=(--model "$model"); else src=(--preset "$preset"); fi

# One recorded command -> the report: top symbols, then the share per thread and per dso.
report() {
  local name="$1"; shift
  local data="$work/$name.data"
  echo
  echo "=== $name: $*"
  local t0; t0=$(date +%s%N)
  perf record -q -e cpu-clock -F 1999 -o "$data" -- "$@" > "$work/$name.out" 2>&1 \
    || { echo "command failed:"; tail -5 "$work/$name.out"; return 1; }
  echo "wall $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  echo "--- top $top symbols (self time, % of all samples)"
  perf report -i "$data" --stdio --no-children --sort symbol --percent-limit 0.3 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -n "$top" \
    | sed -E 's/\[\.\] //; s/ +/ /g; s/^ //' | cut -c1-150
  echo "--- by thread (the first is the main thread: work no rayon worker shares)"
  perf report -i "$data" --stdio --no-children --sort pid 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -n 6 | sed -E 's/ +/ /g; s/^ //'
  echo "--- user vs kernel"
  perf report -i "$data" --stdio --no-children --sort dso 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -n 5 | sed -E 's/ +/ /g; s/^ //'
}

if [ -z "$only" ] || [ "$only" = encode ]; then
  report encode "$bin" bench "${src[@]}" --size "$size" --backend cpu --runs 1 --stage encode
fi
if [ -z "$only" ] || [ "$only" = decode ]; then
  report decode "$bin" bench "${src[@]}" --size "$size" --backend cpu --runs 1 --stage decode
fi
if [ -z "$only" ] || [ "$only" = train ]; then
  # A phase-1 run of the default model: L1 loss, AdamW, clipping, EMA; no LPIPS, no validation.
  write_train_run "$work/train.toml" "$work/run" "$train_model" "$crop" "$batch" "$steps"
  report train "$bin" train --config "$work/train.toml"
  echo "--- step seconds (log.csv; the first step includes start-up)"
  cut -d, -f1,11 "$work/run/log.csv" | tail -n +2 | tr '\n' ' '; echo
  echo "median after the first 2: $(step_seconds "$work/run/log.csv" 2) s"
fi

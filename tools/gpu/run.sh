#!/usr/bin/env bash
# One go on a borrowed GPU machine (NVIDIA driver, no Rust): check the machine, check our
# numbers against the reference fixtures on CUDA (f32 and bf16), then train the default models
# for a set time with bf16 mixed precision, and leave everything in OUT.
#
#   tools/gpu/run.sh OUT [--minutes 6] [--bin target/release/dcae] [--fixtures DIR]
#                        [--config configs/trio-f128c512.toml]... [--backend cuda|cpu]
#
# Build the binary here first, with CUDA (tools/setup-cuda-build.sh), and copy the checkout:
#   cargo build --release --features dcae-cli/cuda
# Without an NVIDIA GPU (no nvidia-smi, or it lists none) everything runs on the CPU backend
# in f32 instead: the same steps, so the script itself is tested anywhere (cli/tests/gpu_script.rs).
#
# OUT gets: run.log (everything printed), machine.txt, conformance-<precision>.txt, and per
# run file runs/<name>/ (checkpoint, log.csv, val.csv, run.json, model/ export), and
# summary.txt with one line per step: `<name>: <steps> steps in <s> s = <steps/s> steps/s, ...`.
# Each run stops after its share of --minutes (Ctrl-C semantics: it checkpoints) and is then
# exported; `dcae train --config ... --resume` continues it on the next machine.
set -uo pipefail

out="${1:?usage: tools/gpu/run.sh OUT [--minutes N] [--bin PATH] [--fixtures DIR] [--config FILE]... [--backend cuda|cpu]}"
shift
root="$(cd "$(dirname "$0")/../.." && pwd)"
minutes=6
bin="$root/target/release/dcae"
fixtures="$root/../shared/fixtures/dcae"
configs=()
backend=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2;;
    --bin) bin="$2"; shift 2;;
    --fixtures) fixtures="$2"; shift 2;;
    --config) configs+=("$2"); shift 2;;
    --backend) backend="$2"; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
[ ${#configs[@]} -gt 0 ] || configs=("$root/configs/trio-f128c512.toml")
mkdir -p "$out" || exit 2
out="$(cd "$out" && pwd)"
exec > >(tee -a "$out/run.log") 2>&1
[ -x "$bin" ] || { echo "error: $bin is not an executable dcae binary"; exit 2; }
t_start=$(date +%s)
echo "== $(date -u +%FT%TZ) tools/gpu/run.sh: $bin, $minutes min of training over ${#configs[@]} run file(s)"

# --- the machine -----------------------------------------------------------------------------
{
  uname -a
  grep -m1 "model name" /proc/cpuinfo || true
  echo "cpus: $(nproc)"
  free -g | head -2
} > "$out/machine.txt" 2>&1
if [ -z "$backend" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
    backend=cuda
  else
    backend=cpu
    echo "no NVIDIA GPU (nvidia-smi missing or lists none): CPU fallback, f32"
  fi
fi
precision=f32
if [ "$backend" = cuda ]; then
  precision=bf16
  nvidia-smi | tee -a "$out/machine.txt"
  # libdevice (NVVM's math library) for the CUDA compiler: CUDA_PATH, the usual toolkit
  # folders, or the pip wheel of nvidia-cuda-nvcc.
  libdevice=""
  for d in "${CUDA_PATH:-}" "${CUDA_HOME:-}" /usr/local/cuda /usr/local/cuda-* /usr/lib/cuda /opt/cuda \
           $(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null); do
    [ -n "$d" ] || continue
    f="$(find "$d" -path '*nvvm/libdevice/libdevice.10.bc' 2>/dev/null | head -1)"
    if [ -n "$f" ]; then libdevice="$f"; break; fi
  done
  if [ -n "$libdevice" ]; then
    export CUDA_PATH="${libdevice%/nvvm/libdevice/libdevice.10.bc}"
    echo "libdevice: $libdevice (CUDA_PATH=$CUDA_PATH)"
  else
    echo "warning: no nvvm/libdevice/libdevice.10.bc found (set CUDA_PATH); kernels needing it will fail"
  fi
  # NCCL (multi-GPU all-reduce) is loaded as libnccl.so; some machines ship only libnccl.so.2.
  nccl="$(ldconfig -p 2>/dev/null | awk '/libnccl\.so(\.[0-9]+)* /{print $NF; exit}')"
  [ -n "$nccl" ] || nccl="$(find /usr /opt "${CUDA_PATH:-/nonexistent}" -name 'libnccl.so*' 2>/dev/null | head -1)"
  if [ -n "$nccl" ]; then
    mkdir -p "$out/lib"
    [ -e "$(dirname "$nccl")/libnccl.so" ] || ln -sf "$nccl" "$out/lib/libnccl.so"
    export LD_LIBRARY_PATH="$out/lib:$(dirname "$nccl")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "nccl: $nccl"
  else
    echo "note: no libnccl found (only multi-GPU runs need it)"
  fi
fi
"$bin" info --backend "$backend" 2>&1 | tee -a "$out/machine.txt"

# --- conformance -----------------------------------------------------------------------------
status=0
for p in f32 bf16; do
  echo "== conformance $backend/$p"
  "$bin" conformance "$fixtures" --backend "$backend" --precision "$p" > "$out/conformance-$p.txt" 2>&1
  rc=$?
  cat "$out/conformance-$p.txt"
  [ $rc -eq 0 ] || { echo "conformance $backend/$p FAILED (rc $rc)"; status=1; }
done

# --- training --------------------------------------------------------------------------------
share=$(awk -v m="$minutes" -v n="${#configs[@]}" 'BEGIN { printf "%.0f", m * 60 / n }')
mkdir -p "$out/runs"
: > "$out/summary.txt"
for cfg in "${configs[@]}"; do
  name="$(basename "$cfg" .toml)"
  dir="$(cd "$(dirname "$cfg")" && pwd)"
  # A copy beside the original (its relative data paths stay valid) with this machine's
  # backend and precision and the output under OUT.
  run="$dir/.gpu-$name.toml"
  {
    echo "precision = \"$precision\""
    sed -e "s|^backend = .*|backend = \"$backend\"|" \
        -e "s|^out_dir = .*|out_dir = \"$out/runs/$name\"|" \
        -e '/^precision = /d' "$cfg"
  } > "$run"
  resume=()
  [ -f "$out/runs/$name/checkpoint.safetensors" ] && resume=(--resume)
  # The run's step count (run.json, written at every stop) before and after.
  step_of() { grep -m1 '^  "step":' "$out/runs/$name/run.json" 2>/dev/null | tr -dc '0-9' || true; }
  before=$(step_of); before=${before:-0}
  echo "== train $name: $share s on $backend/$precision"
  t0=$(date +%s)
  timeout --signal=INT --kill-after=120 "$share" "$bin" train --config "$run" "${resume[@]}"
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  # 0: finished; 124/130: stopped at the time limit after its checkpoint.
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 130 ]; then
    echo "train $name FAILED (rc $rc)"; status=1
  fi
  if [ -f "$out/runs/$name/checkpoint.safetensors" ]; then
    "$bin" train --config "$run" --export || status=1
  fi
  after=$(step_of); after=${after:-$before}
  last="$(tail -n 1 "$out/runs/$name/val.csv" 2>/dev/null | cut -d, -f1,3)"
  awk -v n="$name" -v s="$((after - before))" -v a="$after" -v t="$secs" -v b="$backend/$precision" -v v="$last" \
    'BEGIN { printf "%s: %d steps (now at step %d) in %d s = %.3f steps/s on %s (start-up and validation included); last val (step,psnr): %s\n", n, s, a, t, (t > 0 ? s / t : 0), b, v }' \
    | tee -a "$out/summary.txt"
  rm -f "$run"
done
echo "== done in $(( $(date +%s) - t_start )) s, status $status"
exit $status

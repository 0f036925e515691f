# Shared by bench/profile.sh and bench/compare_reference.sh (sourced, not run).

# write_train_run FILE OUT_DIR MODEL_DIR CROP BATCH STEPS: a `dcae train` run file for one
# phase-1 step of MODEL_DIR as the PyTorch side of compare_reference.sh --train takes it: L1
# loss only, AdamW (lr 1e-4, weight decay 0.01), global-norm clipping at 1, EMA 0.99, every
# parameter trained, no validation or checkpoints in the timed steps, one decoding thread.
write_train_run() {
  local file="$1" out="$2" model="$3" crop="$4" batch="$5" steps="$6"
  local root; root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  cat > "$file" <<RUN
out_dir = "$out"
seed = 0
backend = "cpu"
[model]
config = "$model/config.json"
init = "$model"
[data]
train = "$root/../shared/data/train"
workers = 1
[schedule]
phases = [1]
checkpoint_every = 1000000
val_every = 0
log_every = 1
[phase1]
steps = $steps
resolution = $crop
batch_size = $batch
lr = 1e-4
warmup = 0
weight_decay = 0.01
grad_clip = 1.0
ema_decay = 0.99
perceptual_weight = 0.0
trainable = ["all"]
RUN
}

# step_seconds LOG_CSV SKIP: the median of the `seconds` column of a training log, after the
# first SKIP steps (warm-up).
step_seconds() {
  tail -n +2 "$1" | tail -n +"$(( $2 + 1 ))" | cut -d, -f11 | sort -g \
    | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

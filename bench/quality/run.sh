#!/usr/bin/env bash
# bench/quality/run.sh: issue 17's method comparison on a real model, SmolLM2-135M-Instruct
# (LLaMA architecture, 30 blocks, hidden 576, GQA 9/3, vocab 49,152, tied), fine-tuned on the four
# LLM-Adapters commonsense train sets and scored on their test sets. One command, one GPU:
#
#   bench/quality/run.sh                  every stage below; results in $OUT
#   bench/quality/run.sh STAGE...         some of them: prepare grid speed final eval report
#
# Stages (each skips what a previous call on the same machine already finished, so a call cut short
# continues where it stopped):
#   prepare  converts the GGUF (owlore convert --from-gguf, bf16), builds the train mix (17,754
#            records) and the held-out slice (every 20th record of the mix, 887), tokenizes them
#            once (owlore tokenize; loss on the answers only), computes the OWL ratios of the base
#            model on tinyshakespeare (owlore outliers), and scores the base model
#   grid     every method x learning rate (LRS) once (seed 1, GRID_EPOCHS epochs, default 1) on the
#            mix less the slice; the learning rate of a method is the one with the lowest answer
#            cross-entropy on the slice (never on test)
#   speed    every method alone on the GPU for SPEED_STEPS steps: tokens/s, peak memory
#   final    every method x SEEDS at its learning rate on the whole mix, and OwLore with GAMMAS
#            blocks at a time (OwLore's learning rate)
#   eval     every final model on the four test sets: acc, acc_norm, answer_ce (owlore eval
#            --format commonsense, one model load for the four sets). Each training job of grid and
#            final evaluates its model as soon as it is trained (on the slice, on the test sets), so
#            evaluation overlaps the other jobs' training; this stage does what is left.
#   report   results.json, results.md (the table) and results.svg (the plot) from all of it
#
# Methods (METHODS): full lisa galore owlore owlore-fullrank owlore-uniform (owlore with
# --sampling uniform: the OWL ablation). Shared settings: batch 16 x 512 tokens, EPOCHS epochs
# (default 1, as the grid's: each rate is chosen for the schedule it is then used with), linear
# schedule without warm-up (the recipes'), GaLore rank RANK (default 64 for hidden 576), OwLore/LISA
# 5 of 30 blocks (recipes' gamma), interval 50, seeds 1..3; the data order
# depends only on the seed, so every method sees the same order for a seed.
#
# Training runs go PARALLEL at a time (default 6 on a GPU: a 135M model leaves an H200 mostly idle,
# so runs share it); tokens/s and memory are therefore measured by the speed stage, each method
# alone. Everything streams into $OUT as it finishes: quality.tgz (every run's config, metrics,
# summary, log and eval JSON), results.json/.md/.svg, run.log.
#
# Environment: OUT (default bench-out/quality), WORK (default /tmp/owlore-quality), GGUF (the
# SmolLM2 GGUF; default: scripts/get-smollm2.sh --path, then /tmp/owlore-gguf/<name>), OWLORE_BIN,
# DEVICE (cuda | cpu; default cuda when nvidia-smi works), SHARED (the shared data folder: default
# ../shared, else .device/shared), METHODS, LRS (default "3e-4 1e-3 3e-3"), SEEDS (default "1 2 3"),
# GAMMAS (default "2 10"), EPOCHS, GRID_EPOCHS, RANK, PARALLEL, SPEED_STEPS (default 60), STUDY_FLAGS (more
# `owlore train` flags for the grid's and the final runs, not the speed runs; default on a GPU "--gpu-mem
# 24GiB": the room of a 24 GB card, in which a 135M run keeps its activations and the head's moments on the
# device instead of sending them over the bus that the parallel runs share; "" for the plain defaults), MPS
# (auto | on | off: the parallel runs share the GPU through an MPS daemon of their own, see mps_start),
# SMOKE=1 (a CPU check of the pipeline: 2 steps of 2 x 128 tokens per run, 4 records per test set and slice,
# one learning rate and seed, gammas off; its numbers mean nothing).
#
# How the GGUF reaches the GPU machine: one device call carries at most 64 MiB and the GGUF is 98 MB,
# so it travels in two parts over two consecutive calls (the machine keeps /tmp while it stays warm):
# see bench/quality/gguf-parts.sh and the README.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-bench-out/quality}
WORK=${WORK:-/tmp/owlore-quality}
BIN=${OWLORE_BIN:-$ROOT/build-cuda/owlore}
[ -x "$BIN" ] || BIN=$ROOT/build/owlore
export LD_LIBRARY_PATH="$ROOT/build-cuda/devlib:${LD_LIBRARY_PATH:-}"
SMOKE=${SMOKE:-0}
if [ -z "${DEVICE:-}" ]; then
  if nvidia-smi >/dev/null 2>&1; then DEVICE=cuda; else DEVICE=cpu; fi
fi
SHARED=${SHARED:-}
if [ -z "$SHARED" ]; then
  if [ -d ../shared/data/real ]; then SHARED=../shared; else SHARED=.device/shared; fi
fi
METHODS=${METHODS:-full lisa galore owlore owlore-fullrank owlore-uniform}
LRS=${LRS:-3e-4 1e-3 3e-3}
SEEDS=${SEEDS:-1 2 3}
GAMMAS=${GAMMAS:-2 10}
EPOCHS=${EPOCHS:-1}
GRID_EPOCHS=${GRID_EPOCHS:-1}
RANK=${RANK:-64}
SPEED_STEPS=${SPEED_STEPS:-60}
if [ "$DEVICE" = cuda ]; then
  STUDY_FLAGS=${STUDY_FLAGS---gpu-mem 24GiB} # a 24 GB card's room: activations kept, moments on the device
else
  STUDY_FLAGS=${STUDY_FLAGS-}
fi
MPS=${MPS:-auto}
if [ "$DEVICE" = cuda ]; then PARALLEL=${PARALLEL:-6}; else PARALLEL=${PARALLEL:-1}; fi
SHAPE=(--batch-size 16 --block-size 512)
STEPS=()
TEST_LIMIT=0
EVAL_SHAPE=(--batch-size 32 --block-size 512)
if [ "$SMOKE" = 1 ]; then
  SHAPE=(--batch-size 2 --block-size 128)
  STEPS=(--steps 2)
  SPEED_STEPS=2
  TEST_LIMIT=4
  EVAL_SHAPE=(--batch-size 4 --block-size 256)
  LRS=${SMOKE_LRS:-3e-4}
  SEEDS=${SMOKE_SEEDS:-1}
  GAMMAS=${SMOKE_GAMMAS:-}
fi
SETS=(boolq ARC-Easy ARC-Challenge openbookqa)
mkdir -p "$OUT" "$WORK"/{runs,eval,logs}
LOG=$OUT/run.log

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$LOG"; }
die() {
  say "FAILED: $*"
  pack
  exit 1
}

# Everything so far into $OUT (atomically: a machine taken back leaves the previous tarball).
pack() {
  tar -czf "$OUT/quality.tgz.tmp" -C "$WORK" --exclude='*/model' --exclude='*.safetensors' --exclude='*.bin' \
    --exclude='smollm2' --exclude='cache' runs eval logs data/counts.json ratios.json 2>/dev/null
  mv -f "$OUT/quality.tgz.tmp" "$OUT/quality.tgz"
}

# method flags: the method name and its extra flags (owlore-uniform is owlore with uniform sampling)
method_flags() {
  case "$1" in
  owlore-uniform) echo "--method owlore --sampling uniform --rank $RANK" ;;
  galore | owlore | owlore-fullrank) echo "--method $1 --rank $RANK" ;;
  *) echo "--method $1" ;;
  esac
}

find_gguf() {
  local g=${GGUF:-}
  [ -n "$g" ] || g=$(scripts/get-smollm2.sh --path 2>/dev/null) || g=/tmp/owlore-gguf/SmolLM2-135M-Instruct.Q4_1.gguf
  [ -f "$g" ] || die "no GGUF at $g (hint: scripts/get-smollm2.sh here; on the GPU machine bench/quality/gguf-parts.sh)"
  echo "$g"
}

stage_prepare() {
  local model=$WORK/smollm2 data=$WORK/data
  if [ ! -f "$model/config.json" ]; then
    local g
    g=$(find_gguf) || exit 1
    say "convert $g"
    "$BIN" convert --from-gguf "$g" --out "$model" --dtype bf16 >"$WORK/logs/convert.log" 2>&1 ||
      die "convert (see logs/convert.log): $(tail -2 "$WORK/logs/convert.log")"
  fi
  if [ ! -f "$data/counts.json" ]; then
    local lim=()
    [ "$TEST_LIMIT" -gt 0 ] && lim=(--test-limit "$TEST_LIMIT" --holdout-limit "$TEST_LIMIT")
    python3 bench/quality/mix.py "$SHARED/data/real/commonsense" "$data" "${lim[@]}" >"$data.counts.tmp" ||
      die "mix.py"
    mkdir -p "$data" && mv "$data.counts.tmp" "$data/counts.json"
    say "data: $(cat "$data/counts.json")"
  fi
  for f in train_mix grid_train; do
    [ -f "$data/$f.bin" ] && continue
    "$BIN" tokenize --tokenizer "$model" --data "$data/$f.json" --format alpaca --out "$data/$f.bin" \
      >"$WORK/logs/tokenize-$f.log" 2>&1 || die "tokenize $f (see logs/tokenize-$f.log)"
    say "tokenized $f: $(grep -iE 'tokens|samples' "$WORK/logs/tokenize-$f.log" | tail -1)"
  done
  if [ ! -f "$WORK/ratios.json" ]; then
    local ns=64 sl=2048
    [ "$SMOKE" = 1 ] && ns=2 sl=256
    "$BIN" outliers --model "$model" --data "$SHARED/data/real/text/tinyshakespeare.txt" --out "$WORK/ratios.json" \
      --nsamples $ns --seqlen $sl --device "$DEVICE" >"$WORK/logs/outliers.log" 2>&1 ||
      die "outliers (see logs/outliers.log)"
    say "OWL ratios: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([round(x,2) for x in d["ratios"]])' "$WORK/ratios.json" 2>/dev/null)"
  fi
  eval_one base "$model"
  pack
}

# A queue of jobs (one command line each, in $1) run PARALLEL at a time; a failed job is reported and
# the others go on (the report shows what is missing).
run_queue() {
  local q=$1
  [ -s "$q" ] || return 0
  local mps=0
  mps_start && mps=1
  say "$(wc -l <"$q") runs, $PARALLEL at a time$([ $mps = 1 ] && echo ", sharing the GPU through MPS")"
  xargs -P "$PARALLEL" -I{} -d '\n' bash -c '{}' <"$q"
  [ $mps = 1 ] && mps_stop
  pack
}

# MPS (auto: on a GPU, with more than one run at a time, where nvidia-cuda-mps-control exists): a daemon of
# this study's own (pipe and log folders under $WORK) lets the runs' kernels share the GPU at once instead of
# taking turns; it runs only around the grid's and the final queues, never around the speed runs.
mps_start() {
  [ "$DEVICE" = cuda ] && [ "$PARALLEL" -gt 1 ] && [ "$MPS" != off ] || return 1
  command -v nvidia-cuda-mps-control >/dev/null || { [ "$MPS" = on ] && say "MPS: no nvidia-cuda-mps-control"; return 1; }
  export CUDA_MPS_PIPE_DIRECTORY=$WORK/mps-pipe CUDA_MPS_LOG_DIRECTORY=$WORK/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if ! nvidia-cuda-mps-control -d; then
    say "MPS: the daemon did not start; runs take turns on the GPU"
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    return 1
  fi
  trap mps_stop EXIT
}

mps_stop() {
  [ -n "${CUDA_MPS_PIPE_DIRECTORY:-}" ] || return 0
  echo quit | nvidia-cuda-mps-control >/dev/null 2>&1
  sleep 1
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  trap - EXIT
}

# train_job NAME DATA LR SEED EXTRA...: one line of a queue; skipped when RUN/summary.json exists.
# JOB_EPOCHS (default EPOCHS) sets the epochs; JOB_EVAL set (to "test", or to data files) evaluates the
# model right after its training, in the same line of the queue (bench/quality/run.sh eval1).
train_job() {
  local name=$1 data=$2 lr=$3 seed=$4
  shift 4
  local run=$WORK/runs/$name
  [ -f "$run/summary.json" ] && return 0
  local steps=("${STEPS[@]}")
  [ ${#steps[@]} -gt 0 ] || steps=(--epochs "${JOB_EPOCHS:-$EPOCHS}")
  local after=
  if [ -n "${JOB_EVAL:-}" ]; then
    after=$(printf '%q ' "$ROOT/bench/quality/run.sh" eval1 "$name" "$run/model")
    [ "$JOB_EVAL" = test ] || after+=$(printf '%q ' $JOB_EVAL)
    after=" && $after"
  fi
  local cmd
  cmd=$(printf '%q ' "$BIN" train --model "$WORK/smollm2" --data "$data" --out "$run" --ratios "$WORK/ratios.json" \
    --lr "$lr" --seed "$seed" "${SHAPE[@]}" "${steps[@]}" --val-split 0 --eval-every 0 --save-every -1 \
    --log-every 50 --device "$DEVICE" "$@")
  printf '{ rm -rf %q; %s>%q 2>&1 && echo "[$(date +%%H:%%M:%%S)] done %s" || { echo "[$(date +%%H:%%M:%%S)] FAILED %s (logs/%s.log)"; false; }; }%s\n' \
    "$run" "$cmd" "$WORK/logs/$name.log" "$name" "$name" "$name" "$after"
}

# eval_one NAME MODEL_DIR [SETS...]: the four test sets (or the given files), one model load.
eval_one() {
  local name=$1 model=$2
  shift 2
  local out=$WORK/eval/$name.json files
  [ -f "$out" ] && return 0
  if [ $# -gt 0 ]; then
    files=$(IFS=,; echo "$*")
  else
    files=$(for s in "${SETS[@]}"; do printf '%s,' "$WORK/data/test_$s.json"; done)
    files=${files%,}
  fi
  "$BIN" eval --model "$model" --data "$files" --format commonsense --json "$out.tmp" "${EVAL_SHAPE[@]}" \
    --device "$DEVICE" >"$WORK/logs/eval-$name.log" 2>&1 && mv "$out.tmp" "$out" ||
    { say "eval $name FAILED (logs/eval-$name.log): $(tail -1 "$WORK/logs/eval-$name.log")"; return 1; }
  say "eval $name: $(grep -iE 'total|acc' "$WORK/logs/eval-$name.log" | tail -1)"
}

stage_grid() {
  local q=$WORK/grid.queue
  : >"$q"
  for m in $METHODS; do
    for lr in $LRS; do
      JOB_EPOCHS=$GRID_EPOCHS JOB_EVAL=$WORK/data/holdout.json \
        train_job "grid-$m-lr$lr" "$WORK/data/grid_train.bin" "$lr" 1 $(method_flags "$m") $STUDY_FLAGS >>"$q"
    done
  done
  run_queue "$q"
  for m in $METHODS; do
    for lr in $LRS; do
      local run=$WORK/runs/grid-$m-lr$lr
      [ -f "$run/summary.json" ] && eval_one "grid-$m-lr$lr" "$run/model" "$WORK/data/holdout.json"
    done
  done
  pack
}

# The learning rate a method's grid chose (lowest answer_ce on the held-out slice), or the recipe's
# when the grid has no result for it.
chosen_lr() {
  python3 - "$WORK/eval" "$1" $LRS <<'EOF'
import json, os, sys
d, m, lrs = sys.argv[1], sys.argv[2], sys.argv[3:]
best = None
for lr in lrs:
    try:
        with open(os.path.join(d, f"grid-{m}-lr{lr}.json")) as f:
            ce = json.load(f)["answer_ce"]
    except (OSError, KeyError, ValueError):
        continue
    if best is None or ce < best[0]:
        best = (ce, lr)
print(best[1] if best else "")
EOF
}

stage_speed() {
  [ "$DEVICE" = cuda ] || say "speed on $DEVICE: figures are the CPU's"
  for m in $METHODS; do
    local name=speed-$m
    [ -f "$WORK/runs/$name/summary.json" ] && continue
    local job
    job=$(
      STEPS=(--steps "$SPEED_STEPS")
      train_job "$name" "$WORK/data/train_mix.bin" 3e-4 1 $(method_flags "$m") --save-model=false
    )
    bash -c "$job" | tee -a "$LOG"
  done
  pack
}

stage_final() {
  local q=$WORK/final.queue
  : >"$q"
  local owl_lr=
  for m in $METHODS; do
    local lr
    lr=$(chosen_lr "$m")
    [ -n "$lr" ] || { lr=3e-4; say "$m: no grid result, lr $lr"; }
    say "$m: learning rate $lr"
    [ "$m" = owlore ] && owl_lr=$lr
    for s in $SEEDS; do
      JOB_EVAL=test train_job "final-$m-s$s" "$WORK/data/train_mix.bin" "$lr" "$s" $(method_flags "$m") \
        $STUDY_FLAGS >>"$q"
    done
  done
  for g in $GAMMAS; do
    for s in $SEEDS; do
      JOB_EVAL=test train_job "final-owlore-g$g-s$s" "$WORK/data/train_mix.bin" "${owl_lr:-3e-4}" "$s" $(method_flags owlore) \
        --gamma "$g" $STUDY_FLAGS >>"$q"
    done
  done
  run_queue "$q"
}

stage_eval() {
  for run in "$WORK"/runs/final-*; do
    [ -f "$run/summary.json" ] || continue
    eval_one "$(basename "$run")" "$run/model"
  done
  pack
}

stage_report() {
  python3 bench/quality/report.py "$WORK" "$OUT" --device "$DEVICE" --smoke "$SMOKE" | tee -a "$LOG"
  pack
}

# eval1 NAME MODEL [FILES...]: one model's evaluation, for the lines of the queues (train_job's JOB_EVAL).
if [ "${1:-}" = eval1 ]; then
  shift
  eval_one "$@"
  exit
fi
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(prepare grid speed final eval report)
say "quality study on $DEVICE ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)); $("$BIN" version 2>&1 | head -1); stages ${stages[*]}; smoke $SMOKE"
for st in "${stages[@]}"; do
  case "$st" in
  prepare | grid | speed | final | eval | report)
    t0=$SECONDS
    "stage_$st"
    say "stage $st: $((SECONDS - t0)) s"
    ;;
  *) die "unknown stage $st (prepare grid speed final eval report)" ;;
  esac
done

#!/usr/bin/env bash
# dist_acceptance.sh: issue 15's figures on one machine of N GPUs, one device call per N (about 7
# minutes for N = 4 on an H100 node): LLaMA-2-7B shape, owlore, STEPS (100) steps of 16 x 512 tokens
# per GPU, each comparison measured side by side in the call:
#   1gpu      one GPU, batch 16: the single-GPU rate that N GPUs should scale (>= 90 % of N x it)
#   accN      one GPU, batch 16 x --grad-accum N --accum-mode projected: the global batch of N ranks
#             with their semantics (--dp-reduce projected), for the loss comparison
#   gpusN     `owlore train --gpus N` (mpirun when on PATH, else the local launcher), batch 16 per GPU
# It prints each run's BENCH line (bench/gpu_bench.sh: tokens/s, peaks) and then a summary: scaling
# efficiency, dp_bytes_per_step against ddp_bytes_per_step, and the largest relative loss gap between
# gpusN and accN (bf16: a few 1e-3 is noise; a wrong sum shows as a diverging curve).
# usage, from the repository root on the GPU machine, with build-cuda/owlore and build-cuda/devlib
# (scripts/device-bundle.sh) carried: bench/dist_acceptance.sh N [N...]     DRY=1 prints the commands.
# Environment: OUT (default bench-out), STEPS, OWLORE_NCCL_LIBRARY (scripts/find-nccl.sh finds pip's).
# NVLink multicast stays off: NCCL_NVLS_ENABLE=0 is exported for every rank.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-out}
STEPS=${STEPS:-100}
DRY=${DRY:-0}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
nccl=$(scripts/find-nccl.sh)
if [ -n "$nccl" ]; then export OWLORE_NCCL_LIBRARY=$nccl; fi
RECIPE=(--batch-size 16 --block-size 512 --save-every -1 --projector randomized --interval 50)
[ $# -gt 0 ] || { echo "usage: $0 N [N...]  (GPUs per run, e.g. 2 4)" >&2; exit 2; }
mkdir -p "$OUT"
have=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')

bench() {
  local name=$1
  shift
  if [ "$DRY" = 1 ]; then
    echo "bench/gpu_bench.sh $name llama2-7b owlore $STEPS ${RECIPE[*]} $*"
    return 0
  fi
  OUT=$OUT bench/gpu_bench.sh "$name" llama2-7b owlore "$STEPS" "${RECIPE[@]}" "$@" | tee -a "$OUT/dist.log"
}

# The summary of one N from the runs' RESULT lines and metrics.
summary() {
  python3 - "$OUT" "$1" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
def result(name):
    for line in open(f"{out}/{name}.log", errors="replace"):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return None
def losses(name):
    return [json.loads(l)["loss"] for l in open(f"{out}/{name}.metrics.jsonl") if '"loss"' in l]
one, acc, gpus = result("1gpu"), result(f"acc{n}"), result(f"gpus{n}")
if not (one and acc and gpus):
    print(f"N={n}: a run did not finish (see {out}/*.log)")
    sys.exit(1)
eff = gpus["avg_tokens_per_s"] / (n * one["avg_tokens_per_s"])
a, g = losses(f"acc{n}"), losses(f"gpus{n}")
gap = max(abs(x - y) / abs(x) for x, y in zip(a, g))
print(f"N={n}: 1 GPU {one['avg_tokens_per_s']:.0f} tok/s avg, {n} GPUs {gpus['avg_tokens_per_s']:.0f}: "
      f"scaling efficiency {eff * 100:.1f} % (target >= 90 %); bytes a step {gpus.get('dp_bytes_per_step', 0):.4g} "
      f"against DDP's {gpus.get('ddp_bytes_per_step', 0):.4g}; losses against one GPU at the same global batch: "
      f"largest relative gap {gap:.3g} over {min(len(a), len(g))} steps")
PY
}

lib=${OWLORE_NCCL_LIBRARY:-libnccl.so.2 on the loader path}
[ "$DRY" = 1 ] || { nvidia-smi -L; echo "NCCL: $lib"; } | tee "$OUT/dist.log"
bench 1gpu
for n in "$@"; do
  if [ "$DRY" != 1 ] && [ "$n" -gt "$have" ]; then
    echo "N=$n: this machine has $have GPUs" | tee -a "$OUT/dist.log"
    continue
  fi
  bench "acc$n" --grad-accum "$n" --accum-mode projected
  bench "gpus$n" --gpus "$n"
  [ "$DRY" = 1 ] || summary "$n" | tee -a "$OUT/dist.log"
done

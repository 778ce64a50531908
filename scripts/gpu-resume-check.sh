#!/usr/bin/env bash
# Exact resume on the GPU: trains the real TinyStories-656K model with OwLore on
# the CUDA backend for STEPS steps uninterrupted, then again killed with SIGKILL
# at a few moments (during training and during a checkpoint save) and resumed
# until done; the loss sequences must be equal bit for bit. Run on the GPU
# machine after scripts/device-bundle.sh: OUT=dir scripts/gpu-resume-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH="$PWD/build-cuda/devlib:${LD_LIBRARY_PATH:-}"
out=${OUT:-resume-check}
mkdir -p "$out"
bin=${OWLORE_BIN:-./build-cuda/owlore}
dev=${OWLORE_DEVICE:-cuda}
model=.device/shared/data/real/hf/TinyStories-656K
work=$(mktemp -d)
data=.device/shared/data/real/text/tinyshakespeare.txt
echo '{"ratios": [1.0, 0.6]}' >"$work/r.json"
steps=24
common=(--model "$model" --data "$data" --method owlore --gamma 1 --interval 5 --rank 32 --update-gap 4
        --projector randomized --ratios "$work/r.json" --steps $steps --batch-size 8 --block-size 256 --val-split 0
        --save-every 3 --device "$dev" --save-model=false --log-every 100)
$bin train "${common[@]}" --out "$work/a" >"$out/resume-a.log" 2>&1 || { echo "RESUME-CHECK uninterrupted run failed"; tail "$out/resume-a.log"; exit 1; }
kills=0
for k in 1 2 3 4; do
  if [ $k -eq 1 ]; then $bin train "${common[@]}" --out "$work/b" >>"$out/resume-b.log" 2>&1 & pid=$!
  else $bin train --resume "$work/b" --device "$dev" >>"$out/resume-b.log" 2>&1 & pid=$!; fi
  target=$((k * 5))
  slow=""
  for i in $(seq 1 600); do
    n=$(grep -c '"loss"' "$work/b/metrics.jsonl" 2>/dev/null); n=${n:-0}
    [ "$n" -ge "$target" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
  wait $pid 2>/dev/null
done
$bin train --resume "$work/b" --device "$dev" >>"$out/resume-b.log" 2>&1 || { echo "RESUME-CHECK final resume failed"; tail "$out/resume-b.log"; exit 1; }
python3 - "$work/a/metrics.jsonl" "$work/b/metrics.jsonl" "$kills" <<'PY'
import json, sys
def losses(p):
    return [(d["step"], d["loss"], d["grad_norm"]) for d in map(json.loads, open(p)) if "loss" in d]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
same = a == b
print("RESUME-CHECK %s: %d steps uninterrupted, %d after %s kills; first loss %.9f last %.9f" % (
    "BIT-EXACT" if same else "DIFFERENT", len(a), len(b), sys.argv[3], a[0][1], a[-1][1]))
if not same:
    for x, y in zip(a, b):
        if x != y:
            print("first difference:", x, y)
            break
    sys.exit(1)
PY

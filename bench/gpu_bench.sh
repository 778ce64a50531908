#!/usr/bin/env bash
# One owlore benchmark run on the GPU machine, with the GPU memory sampled by
# nvidia-smi every 100 ms, for the whole device and for the process (their
# peaks go next to owlore's own arena peak). Usage:
#   bench/gpu_bench.sh NAME SHAPE METHOD STEPS [extra owlore train flags...]
# Prints the RESULT line of `owlore train` extended with nvidia_smi_peak_mib
# (device) and nvidia_smi_process_peak_mib, and writes $OUT/NAME.log and
# $OUT/NAME.metrics.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
name=$1 shape=$2 method=$3 steps=$4
shift 4
out=${OUT:-bench-out}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/build-cuda/devlib:${LD_LIBRARY_PATH:-}"
layers=$(./build-cuda/owlore info "$shape" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["num_layers"])')
python3 bench/owl_ratios.py "$layers" "/tmp/ratios-$layers.json"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"/tmp/smi-$name.log" 2>/dev/null &
smi=$!
nvidia-smi --query-compute-apps=used_memory --format=csv,noheader,nounits -lms 100 >"/tmp/smi-proc-$name.log" 2>/dev/null &
smi_proc=$!
"${OWLORE_BIN:-./build-cuda/owlore}" train --model "$shape" --data synthetic --method "$method" --steps "$steps" \
  --ratios "/tmp/ratios-$layers.json" --out "/tmp/run-$name" --save-model=false --val-split 0 \
  --device cuda --log-every 10 "$@" >"$out/$name.log" 2>&1
rc=$?
kill $smi $smi_proc 2>/dev/null; wait $smi $smi_proc 2>/dev/null
peak=$(sort -n "/tmp/smi-$name.log" | tail -1)
proc_peak=$(grep -E '^[0-9]+$' "/tmp/smi-proc-$name.log" | sort -n | tail -1)
cp "/tmp/run-$name/metrics.jsonl" "$out/$name.metrics.jsonl" 2>/dev/null
line=$(grep '^RESULT ' "$out/$name.log" | tail -1 | cut -c8-)
if [ $rc -ne 0 ] || [ -z "$line" ]; then
  echo "BENCH $name FAILED (rc $rc)"; tail -5 "$out/$name.log"; exit 1
fi
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["name"]=sys.argv[2]; d["nvidia_smi_peak_mib"]=int(sys.argv[3] or 0); d["nvidia_smi_process_peak_mib"]=int(sys.argv[4] or 0); print("BENCH "+json.dumps(d))' "$line" "$name" "${peak:-0}" "${proc_peak:-0}"

#!/usr/bin/env bash
# plan_replay.sh [BIN]: owlore plan's predicted steady tokens/s for the offload runs measured on an H100
# (2026-12-05, README "Streaming frozen blocks"; l3-24g-host, -dev, -auto, l7-none-b, l7-24g-b: the day's third
# session; l13n-30: the fourth, 30 steps over three calls), each with the probe rates of its own device call and the
# placement it ran with (flags forced where auto would now choose another), against the measured steady
# rate; the homes (device/host/disk) the plan gives are printed beside the measured ones. Runs on the CPU
# machine: it checks the cost model (src/train/costmodel.c) after a change, with no GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/owlore}
[ -x "$BIN" ] || { echo "plan_replay.sh: no $BIN (build first, or give the binary)" >&2; exit 1; }
R='--batch-size 16 --block-size 512 --save-every -1 --projector randomized --interval 50 --device cuda --data synthetic'
status=0
# name | shape | measured steady tok/s | measured homes | probe rates of that call | the run's flags
while IFS='|' read -r name shape meas homes rates flags; do
  out=$("$BIN" plan --model "$shape" $R $flags $rates 2>&1)
  p=$(echo "$out" | sed -nE 's/^predicted .* ([0-9]+) tokens\/s.*/\1/p')
  h=$(echo "$out" | sed -nE 's/^blocks .*: ([0-9]+) blocks on the device, ([0-9]+) streamed from host memory, ([0-9]+) from.*/\1\/\2\/\3/p; s/^blocks .*every block on the device.*/all device/p')
  if [ -z "$p" ]; then echo "$name: no prediction: $out" >&2; status=1; continue; fi
  python3 -c "import sys; p,m=float(sys.argv[2]),float(sys.argv[3]); print(f'{sys.argv[1]:10s} plan homes {sys.argv[5]:11s} (run {sys.argv[4]:10s}) plan {p:8.0f} measured {m:8.0f} tok/s: {(p/m-1)*100:+6.1f} %')" \
    "$name" "$p" "$meas" "$homes" "$h"
done <<'LIST'
l7-none|llama2-7b|13449|all device|--gemm-tflops 706 --h2d-gbps 55.1|--offload none
l7-24g|llama2-7b|15440|12/20/0|--gemm-tflops 706 --h2d-gbps 55.1|--gpu-mem 24GiB --offload auto --host-mem 48GiB
l3-24g|llama3-8b|10390|6/26/0|--gemm-tflops 706 --h2d-gbps 55.1|--gpu-mem 24GiB --offload auto --host-mem 48GiB --offload-optimizer on --keep-acts 16 --stream-slots 5
l3-24g-host|llama3-8b|10405|12/20/0|--gemm-tflops 673 --h2d-gbps 52.4|--gpu-mem 24GiB --offload auto --host-mem 48GiB --offload-optimizer on --keep-acts 12 --stream-slots 5
l3-24g-dev|llama3-8b|12102|6/26/0|--gemm-tflops 673 --h2d-gbps 52.4|--gpu-mem 24GiB --offload auto --host-mem 48GiB
l3-24g-auto|llama3-8b|12205|14/18/0|--gemm-tflops 729 --h2d-gbps 55.1|--gpu-mem 24GiB --offload auto --host-mem 48GiB
l7-none-b|llama2-7b|13584|all device|--gemm-tflops 729 --h2d-gbps 55.1|--offload none
l7-24g-b|llama2-7b|15635|12/20/0|--gemm-tflops 729 --h2d-gbps 55.1|--gpu-mem 24GiB --offload auto --host-mem 48GiB
l7-8g|llama2-7b|12573|2/30/0|--gemm-tflops 719 --h2d-gbps 55.3|--gpu-mem 8GiB --offload auto --host-mem 48GiB
l3-10g|llama3-8b|8659|0/32/0|--gemm-tflops 676 --h2d-gbps 47.6|--gpu-mem 10GiB --offload auto --host-mem 48GiB --offload-optimizer on
l13-24g|llama2-13b|7442|17/23/0|--gemm-tflops 676 --h2d-gbps 47.6|--gpu-mem 24GiB --offload auto --host-mem 48GiB
l33-24g|llama-33b|2866|10/50/0|--gemm-tflops 676 --h2d-gbps 47.6|--gpu-mem 24GiB --offload auto --host-mem 80GiB
l13n|llama2-13b|258.6|2/1/37|--gemm-tflops 697 --h2d-gbps 51.7 --disk-gbps 1.3|--gpu-mem 10GiB --host-mem 8GiB --offload auto --nvme-dir /tmp
l13n-30|llama2-13b|243.7|2/1/37|--gemm-tflops 718 --h2d-gbps 54.9 --disk-gbps 1.14|--gpu-mem 10GiB --host-mem 8GiB --offload auto --nvme-dir /tmp
LIST
exit $status

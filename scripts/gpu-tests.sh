#!/usr/bin/env bash
# Runs the GPU-labelled tests from a build made by scripts/device-bundle.sh, on
# the GPU machine (no ctest needed: the binaries run directly). Output and a
# log per test go to ${OUT:-gpu-test-logs}. The tests it expects are listed
# below (tests/gpu/*.c): one that was not built, or a tests/gpu file missing
# from the list, fails the run instead of being skipped.
#   usage: scripts/gpu-tests.sh [TEST...] [criterion flags, e.g. --filter 'cuda_offload/*']
# (TEST: some of the names below; default all of them)
#   test_cuda_ops      every CUDA op against its CPU twin
#   test_cuda_model    the model against the transformers fixtures, trajectories
#   test_cuda_offload  the block store under load on the copy stream, copy_sync,
#                      and streamed blocks giving the resident bits in training
#   test_cuda_probe    owlore probe's copy, disk and GEMM figures on the device
#   test_cuda_dist     the GPU ranks' gradient sums (NCCL) in a group of one give one process's bits
# NCCL: OWLORE_NCCL_LIBRARY, else the libnccl.so.2 of pip's nvidia-nccl wheel when python3 has one, else
# the loader's path.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-test-logs}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/build-cuda/devlib:${LD_LIBRARY_PATH:-}"
export OWLORE_SOURCE_DIR="$PWD" OWLORE_SHARED_DIR="$PWD/.device/shared" OWLORE_BINARY="$PWD/build-cuda/owlore"
all=(test_cuda_ops test_cuda_model test_cuda_offload test_cuda_probe test_cuda_dist)
nccl=$(scripts/find-nccl.sh)
if [ -n "$nccl" ]; then export OWLORE_NCCL_LIBRARY=$nccl; fi
status=0
for f in tests/gpu/test_*.c; do
  case " ${all[*]} " in *" $(basename "$f" .c) "*) ;; *) echo "$f is not listed in $0"; status=1 ;; esac
done
names=()
while [[ "${1:-}" == test_* ]]; do names+=("$1"); shift; done
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
for name in "${names[@]}"; do
  t=build-cuda/tests/$name
  if [ ! -x "$t" ]; then
    echo "$name: not built (scripts/device-bundle.sh builds build-cuda)"; status=1; continue
  fi
  "$t" --verbose=1 --jobs 1 "$@" >"$out/$name.log" 2>&1 || status=1
  grep -E "Synthesis|FAIL|\[----\] [a-z_]+:" "$out/$name.log" | head -80
done
exit $status

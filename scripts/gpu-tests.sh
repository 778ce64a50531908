#!/usr/bin/env bash
# Runs the GPU-labelled tests from a build made by scripts/device-bundle.sh, on
# the GPU machine (no ctest needed: the binaries run directly). Output and a
# log per test go to ${OUT:-gpu-test-logs}.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-test-logs}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/build-cuda/devlib:${LD_LIBRARY_PATH:-}"
export OWLORE_SOURCE_DIR="$PWD" OWLORE_SHARED_DIR="$PWD/.device/shared" OWLORE_BINARY="$PWD/build-cuda/owlore"
status=0
for t in build-cuda/tests/test_cuda_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  "$t" --verbose=1 --jobs 1 >"$out/$name.log" 2>&1 || status=1
  grep -E "Synthesis|FAIL|\[----\] [a-z_]+:" "$out/$name.log" | head -80
done
exit $status

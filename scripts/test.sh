#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs the packages,
# builds (with the CUDA backend when nvcc is present, so every .cu file is
# compiled), runs every CPU test, then runs the CPU tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer and fails on any report.
# GPU tests (ctest label gpu) need a device: ctest --test-dir build -L gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
# headless Chromium renders the run report in tests/test_report.c (required when this is set)
export OWLORE_WITH_CHROMIUM=1
./scripts/install-deps.sh
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
jobs=$(nproc)

echo "== format (.clang-format, 120 columns)"
./scripts/format.sh --check

echo "== layers (#include rules of CONTRIBUTING.md)"
./scripts/check-layers.sh
./scripts/fn-length.sh src/train 80

echo "== build (Release, warnings are errors)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DOWLORE_WERROR=ON
cmake --build build -j"$jobs"

echo "== tests"
# the real SmolLM2 GGUF of tests/test_gguf.c (skipped there, with a message, when the download fails)
./scripts/get-smollm2.sh >/dev/null || echo "warning: scripts/get-smollm2.sh failed; the SmolLM2 conversion test will skip"
ctest --test-dir build --output-on-failure -LE gpu -j"$jobs"

echo "== tests under ASan + UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOWLORE_SANITIZE=ON -DOWLORE_CUDA=OFF -DOWLORE_WERROR=ON
cmake --build build-asan -j"$jobs"
log=build-asan/sanitizer-tests.log
status=0
ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L cpu -LE "gpu|slow" --output-on-failure -V -j"$jobs" >"$log" 2>&1 || status=$?
tail -n 15 "$log"
if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$log"; then
  echo "sanitizer reports found (full log: $log)"
  exit 1
fi
[ "$status" -eq 0 ] || { echo "sanitizer test run failed (full log: $log)"; exit "$status"; }

if [ -x scripts/run-fuzz.sh ]; then
  echo "== fuzzing (bounded)"
  OWLORE_FUZZ_SECONDS="${OWLORE_FUZZ_SECONDS:-60}" ./scripts/run-fuzz.sh
fi
echo "== all tests passed"

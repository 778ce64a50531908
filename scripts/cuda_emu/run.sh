#!/usr/bin/env bash
# run.sh: builds the CUDA backend (cuda/*.cu) for the CPU emulator of this
# folder and runs the GPU tests (tests/gpu) on it, on a machine without a GPU.
# usage: scripts/cuda_emu/run.sh ops|model|probe|offload|all|dist [criterion flags, e.g. --filter 'cuda_ops/rmsnorm']
# dist: an owlore binary on the emulated backend, and tests/test_dist.c's comparisons of two ranks with one
# process run with it (--device cuda, fp32; mpirun's ranks and the local launcher's), the ranks summing
# through fake_nccl.c (owlore's own rank transport underneath).
# Slow (every GPU thread is a host thread); the long-sequence attention test
# takes hours there: skip it with --filter '!(*attention_long*)'.
# OWLORE_EMU_SANITIZE=1 builds the emulated backend with ASan/UBSan (the
# library itself is not instrumented). OWLORE_EMU_FLAGS adds compiler flags for
# cuda/*.cu (e.g. -DCUDA_SCRATCH_BYTES=4096); OWLORE_EMU_SMEM_OPTIN=BYTES makes
# the emulated device offer that much shared memory per block (e.g. 101376, an
# sm_86 / sm_89 device) instead of the H200's 232448. OWLORE_EMU_LATE_COPIES=1 holds
# copies on the copy streams until something must see them (README.md); the
# offload target runs its tests both ways unless it is set. The tests see
# OWLORE_EMU=1 (smaller sizes where every GPU thread is a host thread).
set -euo pipefail
which=${1:-all}
shift || true
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EMU=$ROOT/scripts/cuda_emu
OUT=$ROOT/build-emu
mkdir -p "$OUT/gen" "$OUT/obj" "$OUT/include"
cmake -S "$ROOT" -B "$OUT/lib" -DOWLORE_CUDA=OFF -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$OUT/lib" -j2 --target owlore_lib >/dev/null
for h in cuda_runtime.h cublasLt.h cublas_v2.h cuda_fp16.h cusolverDn.h cuda_bf16.h; do
  printf '#pragma once\n#include "emu_api.h"\n' >"$OUT/include/$h"
done
rm -f "$OUT"/gen/*.cpp
python3 "$EMU/gen.py" "$OUT/gen" "$ROOT"/cuda/*.cu
SAN=()
if [ "${OWLORE_EMU_SANITIZE:-0}" = 1 ]; then SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer); fi
CXXF=(-std=c++17 -O2 -g -fno-strict-aliasing "${SAN[@]}" -I"$OUT/include" -I"$EMU/include" -I"$ROOT/src" -I"$ROOT")
read -r -a EXTRA <<<"${OWLORE_EMU_FLAGS:-}"
for f in "$OUT"/gen/*.cpp; do
  g++ "${CXXF[@]}" "${EXTRA[@]}" -c "$f" -o "$OUT/obj/$(basename "$f" .cpp).o"
done
for f in "$EMU/emu.cpp" "$EMU/emu_api.cpp"; do
  g++ "${CXXF[@]}" -c "$f" -o "$OUT/obj/$(basename "$f" .cpp).o"
done
CF=(-std=c11 -O1 -g -D_POSIX_C_SOURCE=200809L -I"$ROOT/src" -I"$ROOT" -I"$ROOT/tests/support")
rm -f "$OUT"/obj/support_*.o
for f in "$ROOT"/tests/support/*.c; do gcc "${CF[@]}" -c "$f" -o "$OUT/obj/support_$(basename "$f" .c).o"; done
LIBS=($(pkg-config --libs criterion libcjson libpcre2-8 libzstd liburing) -lopenblas -fopenmp -lpthread -lm)
MPIL=($(mpicc --showme:link 2>/dev/null)) # the library's dist/comm.c calls MPI when it was built with it
tests=()
case "$which" in
  ops) tests=(test_cuda_ops) ;;
  model) tests=(test_cuda_model) ;;
  probe) tests=(test_cuda_probe) ;;
  offload) tests=(test_cuda_offload) ;;
  all) tests=(test_cuda_ops test_cuda_model test_cuda_probe test_cuda_offload) ;;
  dist) ;;
  *) echo "usage: $0 ops|model|probe|offload|all|dist [criterion flags]" >&2; exit 2 ;;
esac
export OWLORE_SOURCE_DIR=$ROOT OWLORE_SHARED_DIR=$ROOT/../shared OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OWLORE_EMU=1
rc=0
for t in "${tests[@]}"; do
  gcc "${CF[@]}" -c "$ROOT/tests/gpu/$t.c" -o "$OUT/obj/$t.o"
  g++ "${SAN[@]}" -o "$OUT/$t" "$OUT/obj/$t.o" "$OUT"/obj/support_*.o "$OUT"/obj/cuda_*.o "$OUT/obj/emu.o" "$OUT/obj/emu_api.o" \
      "$OUT/lib/libowlore_lib.a" "${LIBS[@]}" "${MPIL[@]}" -ldl
  # the offload tests run twice: copies as early as CUDA allows (when queued) and as late (README.md)
  modes=("${OWLORE_EMU_LATE_COPIES:-0}")
  if [ "$t" = test_cuda_offload ] && [ -z "${OWLORE_EMU_LATE_COPIES:-}" ]; then modes=(0 1); fi
  for late in "${modes[@]}"; do
    echo "== $t (OWLORE_EMU_LATE_COPIES=$late)"
    OWLORE_EMU_LATE_COPIES=$late "$OUT/$t" --jobs 1 --verbose "$@" || rc=1
  done
done
if [ "$which" = dist ]; then
  gcc "${CF[@]}" -c "$ROOT/src/main.c" -o "$OUT/obj/main.o"
  # -rdynamic: fake_nccl.c sums through the binary's own dist/comm.h (MPI or the local launcher's memory)
  g++ "${SAN[@]}" -rdynamic -o "$OUT/owlore" "$OUT/obj/main.o" "$OUT"/obj/cuda_*.o "$OUT/obj/emu.o" \
      "$OUT/obj/emu_api.o" "$OUT/lib/libowlore_lib.a" "${LIBS[@]}" "${MPIL[@]}" -ldl
  gcc "${CF[@]}" -shared -fPIC "$EMU/fake_nccl.c" -o "$OUT/libfakenccl.so"
  gcc "${CF[@]}" -c "$ROOT/tests/test_dist.c" -o "$OUT/obj/test_dist.o"
  g++ -o "$OUT/test_dist" "$OUT/obj/test_dist.o" "$OUT"/obj/support_*.o "$OUT/lib/libowlore_lib.a" "${LIBS[@]}" \
      "${MPIL[@]}"
  echo "== test_dist on the emulated CUDA backend (two ranks against one process)"
  OWLORE_BINARY=$OUT/owlore OWLORE_TEST_DIST_DEVICE=cuda OWLORE_EMU_DEVICES=2 OWLORE_NCCL_LIBRARY=$OUT/libfakenccl.so \
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    "$OUT/test_dist" --jobs 1 --verbose --filter 'dist/two_ranks*' "$@" || rc=1
  echo "== test_cuda_dist (a group of one through NCCL's stand-in gives one process's bits)"
  gcc "${CF[@]}" -c "$ROOT/tests/gpu/test_cuda_dist.c" -o "$OUT/obj/test_cuda_dist.o"
  g++ "${SAN[@]}" -rdynamic -o "$OUT/test_cuda_dist" "$OUT/obj/test_cuda_dist.o" "$OUT"/obj/support_*.o \
      "$OUT"/obj/cuda_*.o "$OUT/obj/emu.o" "$OUT/obj/emu_api.o" "$OUT/lib/libowlore_lib.a" "${LIBS[@]}" \
      "${MPIL[@]}" -ldl
  OWLORE_NCCL_LIBRARY=$OUT/libfakenccl.so "$OUT/test_cuda_dist" --jobs 1 --verbose "$@" || rc=1
fi
exit $rc

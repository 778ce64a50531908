#!/usr/bin/env bash
# Prepares a CUDA build to run on another machine (the GPU host) that lacks
# some of this machine's libraries: builds build-cuda, then copies every shared
# library the binaries need that is not part of glibc, the CUDA driver or the
# CUDA toolkit into build-cuda/devlib (use it with LD_LIBRARY_PATH), and the
# real test data and the PyTorch reference bench into .device/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
# Only the H200's architecture by default (smaller binaries to carry); CI builds all.
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DOWLORE_CUDA=ON -DOWLORE_MPI=OFF -DOWLORE_CUDA_ARCHS="${OWLORE_CUDA_ARCHS:-90}" >/dev/null
cmake --build build-cuda -j"$(nproc)"
rm -rf build-cuda/devlib && mkdir -p build-cuda/devlib
for bin in build-cuda/owlore build-cuda/tests/test_* build-cuda/bench/*; do
  [ -x "$bin" ] && [ -f "$bin" ] || continue
  ldd "$bin" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    # glibc, the CUDA driver and toolkit, and the base libraries of the GPU machine's image
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libcuda.so*|libcudart*|libcublas*|libcusolver*|\
    libcusparse*|libnvJitLink*|libstdc++*|libgcc_s*|libz.so*|libcrypto*|libssl*|libffi*|libcom_err*|libgssapi*|\
    libk5crypto*|libkeyutils*|libkrb5*|libresolv*|libpcre2-8*|libzstd*|libopenblas*|libgfortran*|libquadmath*) ;;
    *) cp -L "$lib" build-cuda/devlib/ ;;
  esac
done
mkdir -p .device/shared/data/real/hf .device/shared/data/real/text .device/shared/bench
cp ../shared/data/real/text/tinyshakespeare.txt .device/shared/data/real/text/
cp -r ../shared/data/real/hf/TinyStories-656K .device/shared/data/real/hf/
cp ../shared/bench/torch_reference_bench.py .device/shared/bench/
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
du -sh build-cuda .device | cat
ls build-cuda/devlib

#!/usr/bin/env bash
# Fresh Debian 12 machine to a finished OwLore run: installs the packages,
# builds owlore, and runs the self-contained demo (a small LLaMA pre-trained on a
# generated corpus, its outlier ratios, then OwLore fine-tuning on a new task).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
./build/owlore demo --out "${1:-owlore-demo}"

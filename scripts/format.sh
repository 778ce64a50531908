#!/usr/bin/env bash
# Formats the C and CUDA sources with .clang-format (Debian 12's clang-format 14,
# installed by scripts/install-deps.sh), or with --check lists the files that
# differ from it and the lines over 120 columns, failing if there are any (CI).
# The CUDA emulator (scripts/cuda_emu, C++) is not ours to format.
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLANG_FORMAT:-clang-format}
command -v "$CF" >/dev/null || { echo "format.sh: $CF is not installed (./scripts/install-deps.sh installs it)"; exit 2; }
mapfile -t files < <(git ls-files 'src/*.c' 'src/*.h' 'cuda/*.cu' 'cuda/*.cuh' 'cuda/*.h' 'offload/*.c' 'offload/*.h' \
                                  'tests/*.c' 'tests/*.h' 'bench/*.c' 'bench/*.h')
if [ "${1:-}" != "--check" ]; then
  "$CF" -i "${files[@]}"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  if ! "$CF" "$f" | cmp -s - "$f"; then
    echo "not formatted: $f (run scripts/format.sh)"; bad=1
  fi
done
if awk 'length($0) > 120 { printf "%s:%d: %d columns (at most 120)\n", FILENAME, FNR, length($0); bad = 1 } END { exit !bad }' "${files[@]}"; then
  bad=1
fi
[ "$bad" -eq 0 ] && echo "format.sh: ${#files[@]} files formatted, every line within 120 columns"
exit "$bad"

#!/usr/bin/env bash
# gguf-parts.sh: how the quality study's inputs reach the GPU machine, whose calls carry at most 64 MiB
# each. The SmolLM2 GGUF is 98 MB, so it travels in two halves over two consecutive device calls (the
# machine keeps /tmp while it stays warm, about 30 s after a call):
#   here:      bench/quality/gguf-parts.sh split
#              -> .device/quality-1: the GGUF's first half and the commonsense sets (tar.xz, ~1.5 MB)
#                 .device/quality-2: its second half
#   call 1:    carry [".device/quality-1"];  command: bench/quality/gguf-parts.sh stash
#              -> /tmp/owlore-gguf holds the first half and the sets
#   call 2:    carry [".device/quality-2", "build-cuda/owlore", "build-cuda/devlib", ".device/shared"];
#              command: bench/quality/gguf-parts.sh join && GGUF=/tmp/owlore-gguf/SmolLM2-135M-Instruct.Q4_1.gguf \
#                       SHARED=/tmp/owlore-gguf/shared OUT=$OUT bench/quality/run.sh
#              -> join checks the whole file's sha256 (a stale or missing first half is an error naming it)
# About 59 MB travel in call 2 (the halves are 47 MB each).
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
STASH=/tmp/owlore-gguf
case "${1:-}" in
split)
  src=$(scripts/get-smollm2.sh)
  shared=${SHARED:-../shared}
  rm -rf .device/quality-1 .device/quality-2
  mkdir -p .device/quality-1 .device/quality-2
  size=$(stat -c %s "$src")
  half=$(((size + 1) / 2))
  head -c "$half" "$src" >.device/quality-1/$NAME.part1
  tail -c +"$((half + 1))" "$src" >.device/quality-2/$NAME.part2
  tar -cJf .device/quality-1/commonsense.tar.xz -C "$shared/data/real" commonsense
  grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >>.git/info/exclude
  du -sh .device/quality-1 .device/quality-2 | cat
  ;;
stash)
  [ -f .device/quality-1/$NAME.part1 ] || { echo "gguf-parts.sh: no .device/quality-1 (carry it)" >&2; exit 1; }
  mkdir -p "$STASH"
  cp .device/quality-1/* "$STASH"/
  echo "stashed the first half and the sets in $STASH"
  ;;
join)
  [ -f "$STASH/$NAME.part1" ] ||
    { echo "gguf-parts.sh: $STASH/$NAME.part1 is missing (the machine went back since call 1? run stash again)" >&2; exit 1; }
  [ -f .device/quality-2/$NAME.part2 ] || { echo "gguf-parts.sh: no .device/quality-2 (carry it)" >&2; exit 1; }
  cat "$STASH/$NAME.part1" .device/quality-2/$NAME.part2 >"$STASH/$NAME.tmp"
  # scripts/get-smollm2.sh holds the file's size and sha256: it checks the joined file
  OWLORE_SMOLLM2_GGUF="$STASH/$NAME.tmp" scripts/get-smollm2.sh --path >/dev/null 2>&1 ||
    { rm -f "$STASH/$NAME.tmp"; echo "gguf-parts.sh: the joined file is not $NAME (size or sha256 differs)" >&2; exit 1; }
  mv "$STASH/$NAME.tmp" "$STASH/$NAME"
  mkdir -p "$STASH/shared/data/real/text"
  tar -xJf "$STASH/commonsense.tar.xz" -C "$STASH/shared/data/real"
  cp .device/shared/data/real/text/tinyshakespeare.txt "$STASH/shared/data/real/text/"
  echo "$STASH/$NAME (sha256 checked); shared data in $STASH/shared"
  ;;
*)
  sed -n '2,17p' "$0"
  exit 2
  ;;
esac

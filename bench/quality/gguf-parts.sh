#!/usr/bin/env bash
# gguf-parts.sh: how the quality study's inputs reach the GPU machine, whose calls carry at most 64 MiB
# each. The SmolLM2 GGUF is 98 MB, so it travels in two halves over two consecutive device calls (the
# machine keeps /tmp while it stays warm, about 30 s after a call):
#   here:      [PART1_MB=45] bench/quality/gguf-parts.sh split
#              -> .device/quality-1: the GGUF's first PART1_MB MB (default: half)
#                 .device/quality-2: the rest, and the commonsense sets (tar.xz, ~0.9 MB)
#   call 1:    carry [".device/quality-1", ...];  command: bench/quality/gguf-parts.sh stash; ...
#              -> /tmp/owlore-gguf holds the first part (call 1 can do other work beside it, in the
#                 64 MiB that the part and the work tree leave)
#   call 2:    carry [".device/quality-2", ".device/shared/data/real/text"] and the build (carried, or left
#              there by call 1: an ignored folder stays while the machine is warm);
#              command: bench/quality/gguf-parts.sh join && GGUF=/tmp/owlore-gguf/SmolLM2-135M-Instruct.Q4_1.gguf \
#                       SHARED=/tmp/owlore-gguf/shared OUT=$OUT bench/quality/run.sh
#              -> join checks the whole file's sha256 (a stale or missing first part is an error naming it)
# The work tree itself (tracked files, ~11 MB) travels in every call.
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
  [ -z "${PART1_MB:-}" ] || half=$((PART1_MB * 1000000))
  [ "$half" -gt 0 ] && [ "$half" -lt "$size" ] || { echo "gguf-parts.sh: PART1_MB must leave both parts non-empty" >&2; exit 2; }
  head -c "$half" "$src" >.device/quality-1/$NAME.part1
  tail -c +"$((half + 1))" "$src" >.device/quality-2/$NAME.part2
  tar -cJf .device/quality-2/commonsense.tar.xz -C "$shared/data/real" commonsense
  grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >>.git/info/exclude
  du -sh .device/quality-1 .device/quality-2 | cat
  ;;
stash)
  [ -f .device/quality-1/$NAME.part1 ] || { echo "gguf-parts.sh: no .device/quality-1 (carry it)" >&2; exit 1; }
  mkdir -p "$STASH"
  cp .device/quality-1/* "$STASH"/
  echo "stashed the first part in $STASH"
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
  tar -xJf .device/quality-2/commonsense.tar.xz -C "$STASH/shared/data/real"
  cp .device/shared/data/real/text/tinyshakespeare.txt "$STASH/shared/data/real/text/"
  echo "$STASH/$NAME (sha256 checked); shared data in $STASH/shared"
  ;;
*)
  sed -n '2,17p' "$0"
  exit 2
  ;;
esac

#!/usr/bin/env bash
# run-fuzz.sh: builds the libFuzzer targets (clang, -DOWLORE_FUZZ=ON) in
# build-fuzz/ and runs each for a bounded time.
#   scripts/run-fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all targets)
# Targets: tokenizer_load, tokenizer_encode, jsonl (the dataset readers), gguf (the GGUF reader,
# dequantisation, the LLaMA config and the tokenizer rebuild).
# Seeds: tests/fuzz/corpus/<target>/ (read only; new inputs go to
# build-fuzz/corpus/<target>/). A crashing input is copied to
# tests/fuzz/regressions/<target>/, where test_fuzz_regressions replays it in
# every normal test run; the script then exits 1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-${FUZZ_SECONDS:-${OWLORE_FUZZ_SECONDS:-60}}}
shift || true
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
CC=${CC:-clang} cmake -S "$root" -B "$build" -DOWLORE_FUZZ=ON -DOWLORE_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$root"/tests/fuzz/fuzz_*.c; do t=$(basename "$f" .c); targets+=("${t#fuzz_}"); done
fi
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target $(printf 'fuzz_%s ' "${targets[@]}")
status=0
for t in "${targets[@]}"; do
  work="$build/corpus/$t" art="$build/artifacts/$t"
  mkdir -p "$work" "$art" "$root/tests/fuzz/regressions/$t"
  dict=()
  [ "$t" = tokenizer_load ] && dict=(-dict="$root/tests/fuzz/tokenizer_json.dict")
  [ "$t" = jsonl ] && dict=(-dict="$root/tests/fuzz/jsonl.dict")
  [ "$t" = gguf ] && dict=(-dict="$root/tests/fuzz/gguf.dict")
  echo "== fuzz_$t for ${secs}s"
  if ! "$build/tests/fuzz/fuzz_$t" "$work" "$root/tests/fuzz/corpus/$t" "${dict[@]}" -max_total_time="$secs" \
        -rss_limit_mb=4096 -max_len=65536 -timeout=30 -artifact_prefix="$art/" -print_final_stats=1 2>"$build/fuzz_$t.log"; then
    status=1
    tail -40 "$build/fuzz_$t.log"
  else
    grep -E "^(#|Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$build/fuzz_$t.log" | tail -3
  fi
  for a in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
    [ -e "$a" ] || continue
    cp "$a" "$root/tests/fuzz/regressions/$t/"
    echo "fuzz_$t: $(basename "$a") saved to tests/fuzz/regressions/$t/ (replayed by test_fuzz_regressions)"
    status=1
  done
done
exit $status

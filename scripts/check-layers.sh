#!/usr/bin/env bash
# check-layers.sh [ROOT]: checks the #include "..." lines of ROOT/src, ROOT/cuda
# and ROOT/offload (ROOT: the repository) against the layer rules of
# CONTRIBUTING.md:
#   src/core                                  includes only core
#   src/model, data, owl, optim, backend      never train or cmd (nor main)
#   src/train                                 never cmd
#   src/dist (the ranks of a data-parallel    only core; only train and cmd include it
#   run)
#   src/offload or offload/ (when it exists)  only core, backend and offload
#   cuda/                                     only core, backend and cuda (and the
#                                             emulator's headers, scripts/cuda_emu/include)
#   anything outside cuda/                    never cuda/
# An include names a layer by its first directory ("core/json.h" is core); a
# bare name ("tok_internal.h") is the including file's own directory. An
# include that resolves to no file is reported too. Prints file:line, the
# include and the rule broken for each violation; exit 1 when there is any.
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
[ -d src ] || { echo "check-layers.sh: no src/ in $root" >&2; exit 2; }

# The layer of a file: src/<dir>/... is <dir>, src/main.c is main, cuda/... is
# cuda, offload/... is offload.
layer_of_file() {
    case "$1" in
    src/*/*) local rest="${1#src/}" && echo "${rest%%/*}" ;;
    src/*) echo main ;;
    cuda/*) echo cuda ;;
    offload/*) echo offload ;;
    esac
}

# The layer an include of file $1 names ($2: the quoted path), or "" when it resolves to nothing.
layer_of_include() {
    local file="$1" inc="$2"
    if [ -e "$(dirname "$file")/$inc" ] && [[ "$inc" != */* ]]; then
        layer_of_file "$file"
    elif [[ "$inc" == cuda/* || "$inc" == offload/* ]] && [ -e "$inc" ]; then
        echo "${inc%%/*}"
    elif [[ "$inc" == */* ]] && [ -e "src/$inc" ]; then
        echo "${inc%%/*}"
    elif [ "$(layer_of_file "$file")" = cuda ] && [ -e "scripts/cuda_emu/include/$inc" ]; then
        echo cuda_emu
    fi
}

# The rule file layer $1 breaks by including layer $2, or "" when allowed.
broken_rule() {
    local from="$1" to="$2"
    if [ "$to" = cuda ] && [ "$from" != cuda ]; then
        echo "nothing outside cuda/ includes cuda/ (ask the backend's operations table instead)"
        return
    fi
    case "$from" in
    core) [ "$to" = core ] || echo "src/core includes only core" ;;
    model | data | owl | optim | backend)
        case "$to" in
        train | cmd | main) echo "src/$from is below train: it never includes train or cmd" ;;
        dist) echo "src/$from never includes dist (the trainer hands it the ranks' sums)" ;;
        esac ;;
    dist) [ "$to" = core ] || [ "$to" = dist ] || echo "src/dist includes only core" ;;
    train) case "$to" in cmd | main) echo "src/train never includes cmd" ;; esac ;;
    offload)
        case "$to" in core | backend | offload) ;; *) echo "offload includes only core and backend" ;; esac ;;
    cuda)
        case "$to" in core | backend | cuda | cuda_emu) ;; *) echo "cuda/ includes only core, backend and cuda" ;; esac ;;
    esac
}

violations=0
while IFS= read -r file; do
    while IFS=: read -r line text; do
        inc="$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/' <<<"$text")"
        to="$(layer_of_include "$file" "$inc")"
        if [ -z "$to" ]; then
            rule="the include resolves to no file under src/, cuda/ or offload/"
        else
            rule="$(broken_rule "$(layer_of_file "$file")" "$to")"
        fi
        if [ -n "$rule" ]; then
            echo "$file:$line: #include \"$inc\": $rule"
            violations=$((violations + 1))
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
done < <(find src cuda offload -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) 2>/dev/null | sort)

if [ "$violations" -gt 0 ]; then
    echo "check-layers.sh: $violations include(s) break the layer rules (CONTRIBUTING.md, \"Layers\")"
    exit 1
fi
echo "check-layers.sh: every #include of src/, cuda/ and offload/ keeps to the layer rules"

#!/usr/bin/env bash
# fn-length.sh DIR LIMIT: lists every function definition in DIR's .c/.cu/.h files longer than
# LIMIT lines (counted from the line its signature starts on to its closing brace), one per line
# as file:line:name:length, and exits 1 if there is any. Reads house-style C (clang-format, attached
# braces): comments, string and character literals are skipped when counting braces; a definition
# is a brace block at file scope whose header has a '(' with no '=' before it.
set -euo pipefail
if [ $# -ne 2 ] || [ ! -d "$1" ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 DIR LIMIT (lists functions in DIR longer than LIMIT lines)" >&2
    exit 2
fi
mapfile -t files < <(find "$1" -type f \( -name '*.c' -o -name '*.cu' -o -name '*.h' \) | LC_ALL=C sort)
[ ${#files[@]} -eq 0 ] && exit 0
awk -v limit="$2" '
FNR == 1 { depth = 0; incomment = 0; hdr = ""; hstart = 0; infn = 0 }
{
    line = $0; s = ""; i = 1; n = length(line)
    while (i <= n) {
        c = substr(line, i, 1); c2 = substr(line, i, 2)
        if (incomment) { if (c2 == "*/") { incomment = 0; i += 2 } else i++; continue }
        if (c2 == "/*") { incomment = 1; i += 2; continue }
        if (c2 == "//") break
        if (c == "\"" || c == "\047") {
            q = c; i++
            while (i <= n) { d = substr(line, i, 1); if (d == "\\") { i += 2; continue } if (d == q) break; i++ }
            i++; s = s q q; continue
        }
        s = s c; i++
    }
    if (depth == 0 && s ~ /^[ \t]*#/) next
    # a header starts at column 0; one that already holds a whole (...) and no brace (a macro
    # invocation such as WRAP(op, ...) without a semicolon) gives way to the next line at column 0
    if (depth == 0 && hdr != "" && s ~ /^[A-Za-z_]/ && index(hdr, "(") && gsub(/\(/, "(", hdr) == gsub(/\)/, ")", hdr)) hdr = ""
    if (depth == 0 && hdr == "" && s ~ /^[A-Za-z_]/) { hstart = FNR; hdr = " " }
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (depth == 0 && hdr != "") hdr = hdr c
        if (c == "{") {
            if (depth == 0 && hdr != "") {
                p = index(hdr, "(")
                if (p > 0 && index(substr(hdr, 1, p), "=") == 0) {
                    # the name stands before the last top-level (...) of the header (the parameters;
                    # earlier ones are attributes such as __launch_bounds__(256))
                    pd = 0
                    for (j = 1; j <= length(hdr); j++) {
                        ch = substr(hdr, j, 1)
                        if (ch == "(" && pd++ == 0) p = j
                        else if (ch == ")") pd--
                    }
                    pre = substr(hdr, 1, p - 1); sub(/[ \t]+$/, "", pre)
                    match(pre, /[A-Za-z_][A-Za-z_0-9]*$/); name = substr(pre, RSTART, RLENGTH)
                    infn = 1; fstart = hstart
                }
            }
            depth++
        } else if (c == "}") {
            depth--
            if (depth == 0) {
                if (infn && FNR - fstart + 1 > limit) { printf "%s:%d:%s:%d\n", FILENAME, fstart, name, FNR - fstart + 1; bad = 1 }
                infn = 0; hdr = ""
            }
        } else if (c == ";" && depth == 0) hdr = ""
    }
    if (depth == 0 && hdr != "") hdr = hdr " "
}
END { exit bad ? 1 : 0 }
' "${files[@]}"

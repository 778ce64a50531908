/* cmd_encode.c: `owlore encode` and `owlore decode`, the tokenizer debugging
 * commands: text on stdin -> ids on stdout, and back. */
#include "cmd/commands.h"

#include "core/args.h"
#include "data/tokenizer.h"
#include "data/tokenizer_mode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_stdin(char **out, size_t *len, OwError *err) {
    size_t cap = 1 << 16, n = 0;
    char *buf = ow_xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = ow_xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return ow_fail(err, "cannot read standard input");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* --tokenizer-mode: tokenizers (default here: the file as is) or transformers (what train uses) */
static int load(const char *path, const char *mode, Tokenizer **tok, OwError *err) {
    if (!mode || strcmp(mode, "tokenizers") == 0) return tokenizer_load(path, tok, err);
    if (strcmp(mode, "transformers") == 0)
        return tokenizer_load_mode(path, TOKENIZER_MODE_TRANSFORMERS, tok, NULL, err);
    return ow_fail(err, "--tokenizer-mode \"%s\" is not allowed (allowed: tokenizers, transformers)", mode);
}

/* What encode and decode share: flags (--tokenizer, --tokenizer-mode and the
 * command's own switch), --help, loading the tokenizer and reading stdin.
 * Returns 1 to go on; 0 when the command is over, with its exit code in *code. */
static int setup(const char *cmd, int argc, char **argv, ArgSpec own, const char *usage, const char *desc,
                 Tokenizer **tok, char **in, size_t *len, int *code) {
    const char *tok_path = NULL, *mode = NULL;
    const ArgSpec specs[] = {
        {"tokenizer", ARG_STR, &tok_path, "DIR|FILE", "tokenizer.json, or a model directory holding one", NULL},
        own,
        {"tokenizer-mode", ARG_STR, &mode, "MODE",
         "tokenizers (default: tokenizer.json as is) | transformers (as train loads it)", NULL},
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    ArgsResult res;
    OwError err;
    ow_error_clear(&err);
    int parsed = cmd_args(cmd, argc, argv, specs, nspecs, usage, desc, &res);
    if (parsed >= 0) {
        *code = parsed;
        return 0;
    }
    if (!tok_path || res.npos > 0) {
        fprintf(stderr, "owlore %s: error: %s (see --help)\n", cmd,
                !tok_path ? "--tokenizer is required" : "unexpected positional argument");
        *code = 2;
        return 0;
    }
    if (load(tok_path, mode, tok, &err) != 0) {
        *code = cmd_report_error(cmd, &err);
        return 0;
    }
    if (read_stdin(in, len, &err) != 0) {
        tokenizer_free(*tok);
        *code = cmd_report_error(cmd, &err);
        return 0;
    }
    return 1;
}

int cmd_encode(int argc, char **argv) {
    int add_special = 0;
    Tokenizer *tok;
    char *text;
    size_t len;
    int code, go = setup("encode", argc, argv,
                         (ArgSpec){"add-special", ARG_BOOL, &add_special, NULL,
                                   "add the post-processor's special tokens (BOS/EOS)", NULL},
                         "owlore encode --tokenizer DIR|FILE [--add-special] < text",
                         "Reads UTF-8 text from standard input and prints its token ids, space-separated, on one line\n"
                         "(the ids Hugging Face tokenizers gives; invalid UTF-8 is replaced by U+FFFD first).",
                         &tok, &text, &len, &code);
    if (!go) return code;
    OwError err;
    IdVec ids = {0};
    int rc = tokenizer_encode(tok, text, len, add_special, &ids, &err);
    free(text);
    if (rc == 0) {
        for (size_t i = 0; i < ids.len; i++) printf(i ? " %d" : "%d", ids.data[i]);
        printf("\n");
        if (fflush(stdout) != 0) rc = ow_fail(&err, "cannot write standard output: %s", strerror(errno));
    }
    idvec_free(&ids);
    tokenizer_free(tok);
    return rc == 0 ? 0 : cmd_report_error("encode", &err);
}

static int parse_ids(const char *s, size_t n, IdVec *out, OwError *err) {
    size_t i = 0, k = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
        if (i >= n) break;
        size_t j = i;
        while (j < n && !(s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r')) j++;
        char buf[32];
        size_t l = j - i;
        char *end = NULL;
        long long v = -1;
        if (l < sizeof buf) {
            memcpy(buf, s + i, l);
            buf[l] = '\0';
            errno = 0;
            v = strtoll(buf, &end, 10);
        }
        if (l >= sizeof buf || errno || end == buf || *end || v < 0 || v > INT32_MAX)
            return ow_fail(err, "standard input: id number %zu, \"%.*s\", is not a non-negative integer", k + 1,
                           (int)(l > 40 ? 40 : l), s + i);
        idvec_push(out, (int32_t)v);
        k++;
        i = j;
    }
    return 0;
}

int cmd_decode(int argc, char **argv) {
    int skip_special = 0;
    Tokenizer *tok;
    char *in;
    size_t len;
    int code,
        go = setup("decode", argc, argv,
                   (ArgSpec){"skip-special", ARG_BOOL, &skip_special, NULL,
                             "leave out special tokens (like skip_special_tokens=True)", NULL},
                   "owlore decode --tokenizer DIR|FILE [--skip-special] < ids",
                   "Reads token ids (separated by whitespace) from standard input and prints the text they decode\n"
                   "to, exactly (no newline is added).",
                   &tok, &in, &len, &code);
    if (!go) return code;
    OwError err;
    IdVec ids = {0};
    int rc = parse_ids(in, len, &ids, &err);
    free(in);
    char *text = NULL;
    size_t tlen = 0;
    if (rc == 0) rc = tokenizer_decode(tok, ids.data, ids.len, skip_special, &text, &tlen, &err);
    if (rc == 0) {
        if ((tlen && fwrite(text, 1, tlen, stdout) != tlen) || fflush(stdout) != 0)
            rc = ow_fail(&err, "cannot write standard output: %s", strerror(errno));
    }
    free(text);
    idvec_free(&ids);
    tokenizer_free(tok);
    return rc == 0 ? 0 : cmd_report_error("decode", &err);
}

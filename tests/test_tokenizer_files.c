// ctest-labels: cpu slow
/* test_tokenizer_files.c: the tokenizer on whole real text files against HF
 * tokenizers (each file encoded as one string, id for id; the decode of
 * those ids equal to HF's decode), and the pre-tokenizer regexes around every Unicode code
 * point against tokenizers' (Oniguruma) spans. */
#include "core/fileio.h"
#include "core/hash.h"
#include "core/log.h"
#include "data/tokenizer.h"
#include "test_support.h"
#include "tok_fixtures.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Fixture files of the tokenizer directory ending in suffix, sorted. */
static size_t list_fixtures(const char *suffix, char ***out) {
    char *dir = ts_fixture_path("tokenizer");
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!ends_with(e->d_name, suffix)) continue;
        names = realloc(names, (n + 1) * sizeof *names);
        names[n] = malloc(strlen(e->d_name) + 16);
        sprintf(names[n], "tokenizer/%s", e->d_name);
        n++;
    }
    closedir(d);
    free(dir);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    *out = names;
    return n;
}

Test(tokenizer_files, whole_text_files_match_hf, .timeout = 1800) {
    char **files;
    size_t nf = list_fixtures(".bin.zst", &files);
    TfRegistry *reg = tf_registry_open();
    size_t pairs = 0, tokens = 0, bytes = 0;
    for (size_t k = 0; k < nf; k++) {
        if (!strstr(files[k], "__")) continue; /* torture/decode are test_tokenizer.c's */
        if (strstr(files[k], "__sweep")) continue;
        TfFile f;
        tf_load(files[k], &f);
        cr_assert_eq(f.n, 2);
        const TfRecord *r = &f.recs[0], *dec = &f.recs[1];
        cr_assert(r->kind == 1 && dec->kind == 2 && strncmp(r->name, "file:", 5) == 0);
        char *p = ts_shared_path(r->name + 5);
        char *text;
        size_t len;
        OwError err;
        cr_assert(ow_read_file(p, &text, &len, &err) == 0, "%s", err.msg);
        cr_assert_eq(xxh64(text, len, 0), r->digest, "%s changed since the fixture was made", p);
        Tokenizer *tok = tf_get(reg, r->tok);
        IdVec ids = {0};
        double t0 = ow_now();
        cr_assert(tokenizer_encode(tok, text, len, r->flag, &ids, &err) == 0, "%s", err.msg);
        double dt = ow_now() - t0;
        char msg[4096];
        long at = tf_compare(tok, ids.data, ids.len, r->ids, r->n_ids, msg, sizeof msg);
        cr_expect(at < 0, "%s on %s: %s", r->tok, r->name + 5, msg);
        /* decode of HF's ids equals HF's decode (by hash); report whether it gives the text back */
        char *back;
        size_t blen;
        cr_assert(tokenizer_decode(tok, r->ids, r->n_ids, 0, &back, &blen, &err) == 0, "%s", err.msg);
        cr_expect_eq(xxh64(back, blen, 0), dec->digest, "%s: decode of %s differs from HF's decode", r->tok, p);
        int round = blen == len && memcmp(back, text, len) == 0;
        fprintf(stderr, "%-12s %-50s %8zu tokens %s (%.2f s); decode %s%s\n", r->tok, r->name + 5, r->n_ids,
                at < 0 ? "equal to HF" : "DIFFERENT", dt,
                xxh64(back, blen, 0) == dec->digest ? "equal to HF" : "DIFFERENT",
                round ? ", gives the text back" : " (lossy in HF too: unknown characters)");
        pairs++;
        tokens += r->n_ids;
        bytes += len;
        free(back);
        idvec_free(&ids);
        free(text);
        free(p);
        tf_free(&f);
    }
    fprintf(stderr, "whole files: %zu (tokenizer, file) pairs, %zu bytes, %zu tokens compared with HF tokenizers\n",
            pairs, bytes, tokens);
    cr_log_info("whole files: %zu pairs, %zu tokens compared", pairs, tokens);
    cr_expect_geq(pairs, 8);
    for (size_t k = 0; k < nf; k++) free(files[k]);
    free(files);
    tf_registry_close(reg);
}

/* ---- regex sweep ---- */

typedef struct SweepCtx {
    const char *text;
    char *out;
    size_t len, cap;
} SweepCtx;

static size_t char_index(const char *s, size_t byte) {
    size_t c = 0;
    for (size_t i = 0; i < byte; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
    return c;
}

static void sweep_span(void *ctx, size_t start, size_t end) {
    SweepCtx *c = ctx;
    char buf[64];
    int n = snprintf(buf, sizeof buf, " %zu-%zu", char_index(c->text, start), char_index(c->text, end));
    if (c->len + (size_t)n + 1 > c->cap) {
        c->cap = 2 * (c->len + (size_t)n + 1);
        c->out = realloc(c->out, c->cap);
    }
    memcpy(c->out + c->len, buf, (size_t)n + 1);
    c->len += (size_t)n;
}

static size_t put_utf8(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63));
    o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* Spans around every code point, compared with tokenizers' (runs of equal
 * spans in the fixture). Code points PCRE2's Unicode tables do not know
 * (assigned after its Unicode version) may differ and are counted apart. */
Test(tokenizer_files, regex_sweep_matches_oniguruma, .timeout = 1800) {
    char **files;
    size_t nf = list_fixtures("__sweep.txt.zst", &files);
    cr_assert_geq(nf, 1, "no sweep fixtures");
    TfRegistry *reg = tf_registry_open();
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *unassigned = pcre2_compile((PCRE2_SPTR) "^\\p{Cn}$", PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    for (size_t k = 0; k < nf; k++) {
        char name[64];
        const char *base = strrchr(files[k], '/') + 1;
        size_t nl = (size_t)(strstr(base, "__") - base);
        memcpy(name, base, nl);
        name[nl] = '\0';
        char *path = ts_fixture_path(files[k]), *comp;
        size_t clen;
        OwError err;
        cr_assert(ow_read_file(path, &comp, &clen, &err) == 0, "%s", err.msg);
        unsigned long long rn = ZSTD_getFrameContentSize(comp, clen);
        char *runs = malloc(rn + 1);
        cr_assert(ZSTD_decompress(runs, rn, comp, clen) == rn);
        runs[rn] = '\0';
        Tokenizer *tok = tf_get(reg, name);
        TokenizerWork *w = tokenizer_work_new();
        char *line = runs, *expect = NULL;
        size_t same = 0, differ_known = 0, differ_new = 0;
        uint32_t next_run = (uint32_t)strtoul(line, NULL, 16);
        for (uint32_t cp = 0; cp < 0x110000; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            if (line && cp == next_run) { /* enter the next run */
                char *nlp = strchr(line, '\n');
                *nlp = '\0';
                expect = strchr(line, ' ');
                line = nlp[1] ? nlp + 1 : NULL;
                next_run = line ? (uint32_t)strtoul(line, NULL, 16) : UINT32_MAX;
            }
            /* the probe: f"x{c}y 1{c}2 {c} {c}{c}\n{c}'{c} {c}s" */
            char c[4], s[128];
            size_t cl = put_utf8(cp, c), n = 0;
            for (const char *t = "x@y 1@2 @ @@\n@'@ @s"; *t; t++) {
                if (*t == '@') {
                    memcpy(s + n, c, cl);
                    n += cl;
                } else {
                    s[n++] = *t;
                }
            }
            s[n] = '\0';
            SweepCtx sc = {s, NULL, 0, 0};
            cr_assert(tokenizer_pre_tokenize(tok, w, s, n, sweep_span, &sc, &err) == 0, "%s", err.msg);
            if (sc.out && strcmp(sc.out, expect) == 0) {
                same++;
            } else if (pcre2_match(unassigned, (PCRE2_SPTR)c, cl, 0, 0, md, NULL) >= 0) {
                differ_new++;
            } else {
                if (differ_known++ < 10) cr_log_error("%s: U+%04X: owlore%s, tokenizers%s", name, cp, sc.out, expect);
            }
            free(sc.out);
        }
        fprintf(stderr,
                "%s sweep: %zu code points with equal spans, %zu different, %zu different but unassigned in PCRE2's "
                "Unicode tables\n",
                name, same, differ_known, differ_new);
        cr_expect_eq(differ_known, 0, "%s: %zu code points split differently from tokenizers", name, differ_known);
        cr_expect_lt(differ_new, 20000);
        tokenizer_work_free(w);
        free(runs);
        free(comp);
        free(path);
        free(files[k]);
    }
    free(files);
    pcre2_match_data_free(md);
    pcre2_code_free(unassigned);
    tf_registry_close(reg);
}

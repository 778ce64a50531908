/* dataset.c: the dataset driver (see dataset.h): option defaults, format
 * detection, UTF-8 repair, the skip/strict policy for bad records, encoding
 * each sample, and the assembly of the token data (one heap block: document
 * offsets, ids, mask). The readers are in dataset_read.c. */
#include "data/dataset_internal.h"

#include "core/cancel.h"
#include "core/fileio.h"
#include "core/hash.h"
#include "core/log.h"
#include "data/tok_internal.h" /* utf8_valid_prefix, utf8_append_lossy: the tokenizer's UTF-8 repair */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void data_options_defaults(DataOptions *o) {
    memset(o, 0, sizeof *o);
    o->format = DATA_FORMAT_AUTO;
    o->chat_template = CHAT_TEMPLATE_NONE;
    o->tokenizer_mode = TOKENIZER_MODE_TRANSFORMERS;
    o->append_eos = 1;
}

const char *const data_format_names[] = {"auto", "text", "jsonl", "alpaca", "chat", "tokens", NULL};

const char *data_format_name(DataFormat f) {
    return (unsigned)f < sizeof data_format_names / sizeof data_format_names[0] - 1 ? data_format_names[f] : "?";
}

/* ---- detection ---- */

static int has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

static size_t bom_len(const char *data, size_t len) { return len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; }

static int detect(const char *name, const char *data, size_t len, DataFormat *out, OwError *err) {
    if (len >= 8 && memcmp(data, "OWLTOKS\0", 8) == 0) {
        *out = DATA_FORMAT_TOKENS;
        return 0;
    }
    size_t b = bom_len(data, len);
    data += b;
    len -= b;
    if (has_ext(name, ".bin") || has_ext(name, ".tok")) {
        *out = DATA_FORMAT_TOKENS; /* without the magic: tokfile_read says what is wrong */
        return 0;
    }
    if (has_ext(name, ".txt") || has_ext(name, ".text") || has_ext(name, ".md")) {
        *out = DATA_FORMAT_TEXT;
        return 0;
    }
    int json = has_ext(name, ".jsonl") || has_ext(name, ".json") || has_ext(name, ".ndjson");
    if (!json) {
        size_t i = 0;
        while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) i++;
        json = i < len && (data[i] == '{' || data[i] == '[');
    }
    if (!json) {
        *out = DATA_FORMAT_TEXT;
        return 0;
    }
    return detect_json_format(name, data, len, out, err);
}

int dataset_detect_format(const char *path, DataFormat *out, OwError *err) {
    MappedFile mf;
    if (ow_map_file(path, &mf, err) != 0) return -1;
    int rc = detect(path, mf.data ? (const char *)mf.data : "", mf.size, out, err);
    ow_unmap_file(&mf);
    return rc;
}

/* ---- hashing ---- */

static uint64_t source_hash(uint64_t file_hash, DataFormat fmt, const DataOptions *o, const Tokenizer *tok) {
    Xxh64 h;
    xxh64_init(&h, 0);
    static const char tag[] = "owlore-data-v1"; /* bump when a rendering rule changes */
    xxh64_update(&h, tag, sizeof tag);
    xxh64_update(&h, &file_hash, sizeof file_hash);
    int chat = fmt == DATA_FORMAT_CHAT, instr = fmt == DATA_FORMAT_ALPACA || chat;
    int32_t v[6] = {(int32_t)fmt,
                    chat ? (int32_t)o->chat_template : 0,
                    chat ? 0 : o->append_eos,
                    instr ? o->train_on_prompt : 0,
                    tokenizer_bos_id(tok),
                    tokenizer_eos_id(tok)};
    xxh64_update(&h, v, sizeof v);
    /* strict refuses what a lenient build skipped: a lenient build's cache must not serve a strict one (hashed only
     * when set, so lenient hashes stay as they were; text has no bad records) */
    static const char strict_tag[] = "strict";
    if (o->strict && fmt != DATA_FORMAT_TEXT) xxh64_update(&h, strict_tag, sizeof strict_tag);
    /* chatml's default system message (chat_template.h) is part of every rendering that has no system message
     * (hashed only when the model's template has one, so other hashes stay as they were) */
    char *sys = chat && o->chat_template == CHAT_TEMPLATE_CHATML ? chat_template_default_system_of(tok) : NULL;
    if (sys) {
        static const char sys_tag[] = "default-system";
        xxh64_update(&h, sys_tag, sizeof sys_tag);
        xxh64_update(&h, sys, strlen(sys) + 1);
    }
    free(sys);
    if (fmt == DATA_FORMAT_TEXT) {
        uint64_t n = strlen(o->doc_separator);
        xxh64_update(&h, &n, sizeof n);
        xxh64_update(&h, o->doc_separator, n);
    }
    return xxh64_final(&h);
}

int dataset_source_hash(const char *path, const Tokenizer *tok, const DataOptions *opt, uint64_t *hash, OwError *err) {
    MappedFile mf;
    if (ow_map_file(path, &mf, err) != 0) return -1;
    const char *data = mf.data ? (const char *)mf.data : "";
    DataFormat fmt = opt->format;
    int rc = fmt == DATA_FORMAT_AUTO ? detect(path, data, mf.size, &fmt, err) : 0;
    if (rc == 0) *hash = source_hash(xxh64(data, mf.size, 0), fmt, opt, tok);
    ow_unmap_file(&mf);
    return rc;
}

/* ---- the build ---- */

int build_problem(DatasetBuild *b, ProblemKind kind, const char *where, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (kind != PROBLEM_EMPTY && b->opt->strict)
        return ow_fail(b->err, "%s: %s (strict: a bad record is fatal; without --strict it is skipped and counted)",
                       where, msg);
    if (kind == PROBLEM_MALFORMED) b->st->malformed++;
    if (kind == PROBLEM_INVALID) b->st->invalid++;
    if (kind == PROBLEM_EMPTY) b->st->empty++;
    if (!b->st->first_problem[0]) {
        size_t cap = sizeof b->st->first_problem, n = strlen(where);
        if (n > cap / 2) n = cap / 2;
        memcpy(b->st->first_problem, where, n);
        memcpy(b->st->first_problem + n, ": ", 2);
        size_t m = strlen(msg);
        if (m > cap - n - 3) m = cap - n - 3;
        memcpy(b->st->first_problem + n + 2, msg, m);
        b->st->first_problem[n + 2 + m] = '\0';
    }
    if (kind != PROBLEM_EMPTY && b->warned < 5) {
        OW_WARN("%s: %s (skipped)", where, msg);
        b->warned++;
    }
    return 0;
}

int build_add_sample(DatasetBuild *b, const char *where) {
    if (ow_cancelled()) return ow_fail_cancelled(b->err, b->name); /* checked per sample: well under a second */
    OwError e;
    if (sample_encode(b->tok, b->work, &b->sample, &b->ids, b->with_mask ? &b->mask : NULL, &b->scratch, &e) != 0)
        return ow_fail(b->err, "%s: %s", where, e.msg);
    if (b->ndocs + 2 > b->offsets_cap) {
        b->offsets_cap = b->offsets_cap ? b->offsets_cap * 2 : 1024;
        b->offsets = ow_xrealloc(b->offsets, b->offsets_cap * sizeof *b->offsets);
    }
    b->offsets[++b->ndocs] = b->ids.len;
    b->st->samples++;
    return 0;
}

static void build_free(DatasetBuild *b) {
    chat_template_free(&b->chat);
    tokenizer_work_free(b->work);
    sample_scratch_free(&b->scratch);
    sample_free(&b->sample);
    free(b->msgs);
    idvec_free(&b->ids);
    bytevec_free(&b->mask);
    free(b->offsets);
}

/* counts the U+FFFD characters (EF BF BD) in s */
static int64_t count_fffd(const char *s, size_t n) {
    int64_t k = 0;
    for (size_t i = 0; i + 3 <= n; i++)
        if ((unsigned char)s[i] == 0xEF && (unsigned char)s[i + 1] == 0xBF && (unsigned char)s[i + 2] == 0xBD) k++;
    return k;
}

int dataset_tokenize_buffer(const char *name, const char *data, size_t len, const Tokenizer *tok,
                            const DataOptions *opt, TokData *out, DataStats *stats, OwError *err) {
    memset(out, 0, sizeof *out);
    DataStats local;
    DataStats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    DataFormat fmt = opt->format;
    if (fmt == DATA_FORMAT_AUTO && detect(name, data, len, &fmt, err) != 0) return -1;
    st->format = fmt;
    if (fmt == DATA_FORMAT_TOKENS)
        return ow_fail(err, "%s: an owlore token file has nothing to tokenize (pass it to train --data directly)",
                       name);
    if (fmt != DATA_FORMAT_CHAT && opt->append_eos && tokenizer_eos_id(tok) < 0)
        return ow_fail(err,
                       "%s: append_eos is set but the tokenizer %s has no EOS token (hint: eos_token in "
                       "tokenizer_config.json, or --append-eos false)",
                       name, tokenizer_path(tok));
    uint64_t file_hash = xxh64(data, len, 0);
    size_t b0 = bom_len(data, len);
    const char *text = data + b0;
    size_t tlen = len - b0;
    TokBuf clean = {0};
    size_t valid = utf8_valid_prefix(text, tlen);
    if (valid != tlen) {
        int64_t line = 1;
        for (size_t i = 0; i < valid; i++) line += text[i] == '\n';
        utf8_append_lossy(&clean, text, tlen);
        st->utf8_replaced = count_fffd(clean.data, clean.len) - count_fffd(text, tlen);
        st->utf8_first_line = line;
        text = clean.data;
        tlen = clean.len;
    }
    DatasetBuild b;
    memset(&b, 0, sizeof b);
    b.name = name;
    b.tok = tok;
    b.opt = opt;
    b.format = fmt;
    b.st = st;
    b.err = err;
    b.with_mask = (fmt == DATA_FORMAT_ALPACA || fmt == DATA_FORMAT_CHAT) && !opt->train_on_prompt;
    b.work = tokenizer_work_new();
    b.offsets_cap = 1024;
    b.offsets = ow_xmalloc(b.offsets_cap * sizeof *b.offsets);
    b.offsets[0] = 0;
    int rc = -1;
    if (fmt == DATA_FORMAT_CHAT && chat_template_prepare(opt->chat_template, tok, &b.chat, err) != 0) goto done;
    if (fmt == DATA_FORMAT_TEXT)
        rc = read_text_documents(&b, text ? text : "", tlen);
    else
        rc = read_json_records(&b, text ? text : "", tlen);
    if (rc != 0) goto done;
    rc = -1;
    if (st->samples == 0) {
        ow_fail(err, "%s: no usable sample (format %s: %lld records, %lld malformed, %lld invalid, %lld empty)%s%s",
                name, data_format_name(fmt), (long long)st->records, (long long)st->malformed, (long long)st->invalid,
                (long long)st->empty, st->first_problem[0] ? "; first problem: " : "", st->first_problem);
        goto done;
    }
    size_t count = b.ids.len, nd = b.ndocs;
    size_t off_bytes = (nd + 1) * sizeof(uint64_t), id_bytes = count * sizeof(int32_t),
           mask_bytes = b.with_mask ? count : 0;
    char *block = ow_try_malloc(off_bytes + id_bytes + mask_bytes, "tokenized data", err);
    if (!block) goto done;
    memcpy(block, b.offsets, off_bytes);
    memcpy(block + off_bytes, b.ids.data, id_bytes);
    if (mask_bytes) memcpy(block + off_bytes + id_bytes, b.mask.data, mask_bytes);
    out->count = (int64_t)count;
    out->vocab_size = tokenizer_vocab_size(tok);
    out->width = 4;
    out->ids = block + off_bytes;
    out->mask = mask_bytes ? (const uint8_t *)(block + off_bytes + id_bytes) : NULL;
    out->ndocs = (int64_t)nd;
    out->doc_offsets = (const uint64_t *)block;
    out->tokenizer_hash = tokenizer_hash(tok);
    out->source_hash = source_hash(file_hash, fmt, opt, tok);
    out->heap = block;
    st->tokens = (int64_t)count;
    st->loss_tokens = (int64_t)count;
    if (mask_bytes) {
        st->loss_tokens = 0;
        for (size_t i = 0; i < count; i++) st->loss_tokens += b.mask.data[i];
    }
    rc = 0;
done:
    build_free(&b);
    tokbuf_free(&clean);
    return rc;
}

int dataset_tokenize_file(const char *path, const Tokenizer *tok, const DataOptions *opt, TokData *out,
                          DataStats *stats, OwError *err) {
    memset(out, 0, sizeof *out);
    MappedFile mf;
    if (ow_map_file(path, &mf, err) != 0) return -1;
    int rc = dataset_tokenize_buffer(path, mf.data ? (const char *)mf.data : "", mf.size, tok, opt, out, stats, err);
    ow_unmap_file(&mf);
    return rc;
}

void dataset_log_stats(const char *path, const DataStats *st) {
    OW_INFO("%s: %s data, %lld samples kept of %lld records, %lld tokens (%lld in the loss); skipped: %lld malformed, "
            "%lld invalid, %lld empty",
            path, data_format_name(st->format), (long long)st->samples, (long long)st->records, (long long)st->tokens,
            (long long)st->loss_tokens, (long long)st->malformed, (long long)st->invalid, (long long)st->empty);
    if (st->malformed + st->invalid > 0)
        OW_WARN("%s: %lld bad records were skipped (first: %s); --strict makes them fatal", path,
                (long long)(st->malformed + st->invalid), st->first_problem);
    if (st->utf8_replaced > 0)
        OW_WARN("%s: %lld invalid UTF-8 sequences (the first on line %lld) were replaced by U+FFFD, as Python's "
                "errors=\"replace\" does",
                path, (long long)st->utf8_replaced, (long long)st->utf8_first_line);
}

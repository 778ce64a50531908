/* dataset_read.c: the dataset readers: the documents of a text file, the
 * records of JSON lines or of a JSON array, and the fields of each record
 * (text, alpaca, chat), rendered into the build's sample. Every problem names
 * the file and the line (or array element) and what is wrong with which
 * field. The input is valid UTF-8 here (dataset.c repairs it first). */
#include "data/dataset_internal.h"

#include "data/prompt_template.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- helpers ---- */

static const char *find_bytes(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0 || nn > hn) return NULL;
    const char *end = h + hn - nn + 1;
    for (const char *p = h; p < end;) {
        p = memchr(p, n[0], (size_t)(end - p));
        if (!p) return NULL;
        if (memcmp(p, n, nn) == 0) return p;
        p++;
    }
    return NULL;
}

static int64_t count_newlines(const char *s, size_t n) {
    int64_t k = 0;
    for (const char *p = s, *e = s + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++) k++;
    return k;
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

static int is_blank(const char *s, size_t n) {
    size_t b, e;
    text_strip(s, n, &b, &e);
    return b == e;
}

/* ---- text documents ---- */

int read_text_documents(DatasetBuild *b, const char *data, size_t len) {
    const char *sep = b->opt->doc_separator;
    size_t seplen = strlen(sep), pos = 0;
    int64_t line = 1, doc = 0;
    char where[600];
    for (;;) {
        const char *hit = seplen ? find_bytes(data + pos, len - pos, sep, seplen) : NULL;
        size_t end = hit ? (size_t)(hit - data) : len;
        size_t s, e;
        text_strip(data + pos, end - pos, &s, &e);
        doc++;
        int64_t doc_line = s == e ? line : line + count_newlines(data + pos, s); /* where its text starts */
        snprintf(where, sizeof where, "%s:%lld (document %lld)", b->name, (long long)doc_line, (long long)doc);
        b->st->records++;
        int rc;
        if (s == e) {
            rc = build_problem(b, PROBLEM_EMPTY, where, "empty document");
        } else {
            sample_reset(&b->sample);
            sample_append(&b->sample, data + pos + s, e - s);
            b->sample.whole_loss = 1;
            b->sample.add_special = 1;
            b->sample.append_eos = b->opt->append_eos;
            rc = build_add_sample(b, where);
        }
        if (rc != 0) return -1;
        if (!hit) break;
        line += count_newlines(data + pos, end + seplen - pos);
        pos = end + seplen;
    }
    return 0;
}

/* ---- record fields ---- */

/* a required (or optional: *out = NULL when absent/null) string field */
static int get_field(DatasetBuild *b, const cJSON *obj, const char *key, int required, const char *where,
                     const char **out, int *rc) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || (!required && cJSON_IsNull(v))) {
        if (!required) return 0;
        *rc = build_problem(b, PROBLEM_INVALID, where, "missing field \"%s\" (%s records have %s)", key,
                            data_format_name(b->format),
                            b->format == DATA_FORMAT_CHAT     ? "\"messages\": [{\"role\", \"content\"}, ...]"
                            : b->format == DATA_FORMAT_ALPACA ? "\"instruction\", \"output\" and an optional \"input\""
                                                              : "\"text\"");
        return -1;
    }
    if (!cJSON_IsString(v)) {
        *rc = build_problem(b, PROBLEM_INVALID, where, "field \"%s\" must be a string, got %s", key, type_name(v));
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

static int record_text(DatasetBuild *b, const cJSON *obj, const char *where) {
    const char *text;
    int rc = 0;
    if (get_field(b, obj, "text", 1, where, &text, &rc) != 0) return rc;
    size_t n = strlen(text);
    if (is_blank(text, n)) return build_problem(b, PROBLEM_EMPTY, where, "empty \"text\"");
    sample_reset(&b->sample);
    sample_append(&b->sample, text, n);
    b->sample.whole_loss = 1;
    b->sample.add_special = 1;
    b->sample.append_eos = b->opt->append_eos;
    return build_add_sample(b, where);
}

static int record_alpaca(DatasetBuild *b, const cJSON *obj, const char *where) {
    const char *ins, *inp, *outp;
    int rc = 0;
    if (get_field(b, obj, "instruction", 1, where, &ins, &rc) != 0 ||
        get_field(b, obj, "input", 0, where, &inp, &rc) != 0 || get_field(b, obj, "output", 1, where, &outp, &rc) != 0)
        return rc;
    size_t on = strlen(outp);
    if (is_blank(outp, on)) return build_problem(b, PROBLEM_EMPTY, where, "empty \"output\"");
    alpaca_render(ins, strlen(ins), inp, inp ? strlen(inp) : 0, outp, on, b->opt->append_eos, &b->sample);
    return build_add_sample(b, where);
}

static int record_chat(DatasetBuild *b, const cJSON *obj, const char *where) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    if (!msgs)
        return build_problem(b, PROBLEM_INVALID, where,
                             "missing field \"messages\" (chat records have \"messages\": "
                             "[{\"role\", \"content\"}, ...])");
    if (!cJSON_IsArray(msgs))
        return build_problem(b, PROBLEM_INVALID, where, "field \"messages\" must be an array, got %s", type_name(msgs));
    size_t n = 0, useful = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, n++) {
        if (n == b->msgs_cap) {
            b->msgs_cap = b->msgs_cap ? b->msgs_cap * 2 : 16;
            b->msgs = ow_xrealloc(b->msgs, b->msgs_cap * sizeof *b->msgs);
        }
        if (!cJSON_IsObject(m))
            return build_problem(b, PROBLEM_INVALID, where,
                                 "messages[%zu] must be an object {\"role\", \"content\"}, got %s", n, type_name(m));
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role"),
                    *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!role || !content)
            return build_problem(b, PROBLEM_INVALID, where, "messages[%zu]: missing field \"%s\"", n,
                                 !role ? "role" : "content");
        if (!cJSON_IsString(role))
            return build_problem(b, PROBLEM_INVALID, where, "messages[%zu].role must be a string, got %s", n,
                                 type_name(role));
        if (!cJSON_IsString(content))
            return build_problem(
                b, PROBLEM_INVALID, where, "messages[%zu].content must be a string, got %s%s", n, type_name(content),
                cJSON_IsArray(content) ? " (content parts are not supported: join them into one string)" : "");
        int r = chat_role_from_name(role->valuestring);
        if (r < 0)
            return build_problem(b, PROBLEM_INVALID, where,
                                 "messages[%zu].role \"%.40s\" is not one of system, user, "
                                 "assistant (hint: ShareGPT-style \"from\"/\"value\" records need converting)",
                                 n, role->valuestring);
        size_t len = strlen(content->valuestring);
        b->msgs[n] = (ChatMessage){(ChatRole)r, content->valuestring, len};
        if (r == CHAT_ASSISTANT && !is_blank(content->valuestring, len)) useful++;
    }
    OwError e;
    if (chat_render(&b->chat, b->msgs, n, &b->sample, &e) != 0)
        return build_problem(b, PROBLEM_INVALID, where, "%s", e.msg);
    if (useful == 0) return build_problem(b, PROBLEM_EMPTY, where, "no assistant message with content");
    return build_add_sample(b, where);
}

static int record_process(DatasetBuild *b, const cJSON *obj, const char *where) {
    b->st->records++;
    if (!cJSON_IsObject(obj))
        return build_problem(b, PROBLEM_MALFORMED, where, "expected a JSON object, got %s", type_name(obj));
    switch (b->format) {
    case DATA_FORMAT_JSONL: return record_text(b, obj, where);
    case DATA_FORMAT_ALPACA: return record_alpaca(b, obj, where);
    case DATA_FORMAT_CHAT: return record_chat(b, obj, where);
    default: break;
    }
    return ow_fail(b->err, "%s: format %s is not a JSON record format", b->name, data_format_name(b->format));
}

DataFormat record_format(const cJSON *obj) {
    if (!cJSON_IsObject(obj)) return DATA_FORMAT_AUTO;
    if (cJSON_GetObjectItemCaseSensitive(obj, "messages")) return DATA_FORMAT_CHAT;
    if (cJSON_GetObjectItemCaseSensitive(obj, "instruction")) return DATA_FORMAT_ALPACA;
    if (cJSON_GetObjectItemCaseSensitive(obj, "text")) return DATA_FORMAT_JSONL;
    return DATA_FORMAT_AUTO;
}

/* ---- JSON containers ---- */

static size_t skip_space(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* line and column of offset off */
static void line_col(const char *s, size_t off, int64_t *line, int64_t *col) {
    *line = 1 + count_newlines(s, off);
    size_t i = off;
    while (i > 0 && s[i - 1] != '\n') i--;
    *col = (int64_t)(off - i) + 1;
}

static unsigned hex4(const char *s) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15) return 0x10000; /* not an escape cJSON accepts: its own error */
        v = v * 16 + d;
    }
    return v;
}

/* What cJSON would hide or report vaguely in JSON text s: a raw NUL byte (not
 * JSON: malformed); a \u0000 escape (valid JSON, but owlore's strings end at a
 * NUL, so the text would be silently cut: the record is refused as invalid
 * rather than truncated); a lone UTF-16 surrogate escape (not a character:
 * malformed, as cJSON and Python's strict decoders see it). Returns -1 when
 * there is none, else the kind, with the offset in *at and a description. */
static int escape_problem(const char *s, size_t n, size_t *at, const char **what) {
    for (size_t i = 0; i < n; i++) {
        *at = i;
        if (s[i] == '\0') {
            *what = "a raw NUL byte";
            return PROBLEM_MALFORMED;
        }
        if (s[i] != '\\' || i + 1 >= n) continue;
        if (s[i + 1] != 'u' || i + 6 > n) {
            i++; /* an escaped character: skip it (so \\u0000 is a backslash, then text) */
            continue;
        }
        unsigned u = hex4(s + i + 2);
        if (u == 0) {
            *what = "a NUL character (\\u0000)";
            return PROBLEM_INVALID;
        }
        int high = u >= 0xD800 && u <= 0xDBFF, low = u >= 0xDC00 && u <= 0xDFFF;
        if (high && i + 12 <= n && s[i + 6] == '\\' && s[i + 7] == 'u') {
            unsigned v = hex4(s + i + 8);
            if (v >= 0xDC00 && v <= 0xDFFF) {
                i += 11; /* a surrogate pair: one character */
                continue;
            }
        }
        if (high || low) {
            *what = "a lone UTF-16 surrogate escape (not a character: a high surrogate \\ud800-\\udbff must be "
                    "followed by a low one \\udc00-\\udfff)";
            return PROBLEM_MALFORMED;
        }
        i += 5;
    }
    return -1;
}

/* The message of escape_problem's finding, `pos` being "column 7" or "line 2, column 7". */
static void escape_message(int kind, const char *what, const char *pos, char *msg, size_t cap) {
    if (kind == PROBLEM_MALFORMED)
        snprintf(msg, cap, "malformed JSON at %s: %s", pos, what);
    else
        snprintf(msg, cap, "a string holds %s at %s, which owlore's text cannot carry (refused rather than cut short)",
                 what, pos);
}

static cJSON *parse_array(const char *name, const char *data, size_t len, OwError *err) {
    size_t at;
    const char *what;
    int kind = escape_problem(data, len, &at, &what);
    if (kind >= 0) {
        int64_t l, c;
        line_col(data, at, &l, &c);
        char pos[64], msg[400];
        snprintf(pos, sizeof pos, "line %lld, column %lld", (long long)l, (long long)c);
        escape_message(kind, what, pos, msg, sizeof msg);
        ow_fail(err, "%s: %s (a JSON array file must be valid as a whole; hint: JSON lines let bad records be skipped)",
                name, msg);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    size_t off = end && end >= data ? (size_t)(end - data) : 0;
    if (root && skip_space(data + off, len - off) != len - off) {
        cJSON_Delete(root);
        root = NULL;
    }
    if (!root) {
        int64_t l, c;
        line_col(data, off > len ? len : off, &l, &c);
        ow_fail(err,
                "%s: malformed JSON near line %lld, column %lld (a JSON array file must be valid as a whole; "
                "hint: JSON lines, one record per line, let bad records be skipped)",
                name, (long long)l, (long long)c);
    }
    return root;
}

/* Calls fn on each non-blank line (without its \n or \r\n). */
typedef int (*LineFn)(void *ctx, const char *s, size_t n, int64_t line);
static int each_line(const char *data, size_t len, LineFn fn, void *ctx) {
    int64_t line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len, n = end - pos;
        line++;
        if (n && data[pos + n - 1] == '\r') n--;
        if (skip_space(data + pos, n) != n) {
            int rc = fn(ctx, data + pos, n, line);
            if (rc != 0) return rc;
        }
        pos = end + 1;
    }
    return 0;
}

typedef struct LineCtx {
    DatasetBuild *b;  /* reading */
    DataFormat found; /* detection: the first object record's format, line and keys */
    int64_t line;
    char keys[200];
    char first_bad[480]; /* detection: why the first line that is no object record is not */
} LineCtx;

static int record_line(void *ctx, const char *s, size_t n, int64_t line) {
    DatasetBuild *b = ((LineCtx *)ctx)->b;
    char where[600];
    snprintf(where, sizeof where, "%s:%lld", b->name, (long long)line);
    size_t at;
    const char *what;
    int kind = escape_problem(s, n, &at, &what);
    if (kind >= 0) {
        char pos[32], msg[400];
        snprintf(pos, sizeof pos, "column %zu", at + 1);
        escape_message(kind, what, pos, msg, sizeof msg);
        b->st->records++;
        return build_problem(b, (ProblemKind)kind, where, "%s", msg);
    }
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    size_t off = end && end >= s ? (size_t)(end - s) : 0;
    int rc;
    if (!obj) {
        b->st->records++;
        rc = build_problem(b, PROBLEM_MALFORMED, where, "malformed JSON at column %zu", (off > n ? n : off) + 1);
    } else if (skip_space(s + off, n - off) != n - off) {
        b->st->records++;
        rc = build_problem(b, PROBLEM_MALFORMED, where, "text after the JSON value at column %zu (one record per line)",
                           off + 1);
    } else {
        rc = record_process(b, obj, where);
    }
    cJSON_Delete(obj);
    return rc;
}

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcasecmp(s + n - m, suf) == 0;
}

int dataset_is_json_array(const char *name, const char *data, size_t len) {
    if (has_suffix(name, ".jsonl") || has_suffix(name, ".ndjson")) return 0;
    size_t i = skip_space(data, len);
    return i < len && data[i] == '[';
}

int read_json_records(DatasetBuild *b, const char *data, size_t len) {
    if (dataset_is_json_array(b->name, data, len)) {
        cJSON *root = parse_array(b->name, data, len, b->err);
        if (!root) return -1;
        int rc = 0;
        size_t k = 0;
        char where[600];
        for (const cJSON *it = root->child; it && rc == 0; it = it->next, k++) {
            snprintf(where, sizeof where, "%s: element %zu", b->name, k);
            rc = record_process(b, it, where);
        }
        cJSON_Delete(root);
        return rc;
    }
    LineCtx c = {b, DATA_FORMAT_AUTO, 0, {0}, {0}};
    return each_line(data, len, record_line, &c);
}

/* ---- detection ---- */

static void list_keys(const cJSON *obj, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = '\0';
    int k = 0;
    for (const cJSON *it = obj->child; it && o + 40 < cap; it = it->next, k++)
        o += (size_t)snprintf(buf + o, cap - o, "%s\"%.30s\"", k ? ", " : "", it->string);
    if (k == 0) snprintf(buf, cap, "none");
}

static int detect_line(void *ctx, const char *s, size_t n, int64_t line) {
    LineCtx *c = ctx;
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!obj || !cJSON_IsObject(obj)) {
        if (!c->first_bad[0]) {
            size_t at;
            const char *what;
            int kind = escape_problem(s, n, &at, &what);
            char pos[32], msg[400];
            snprintf(pos, sizeof pos, "column %zu", at + 1);
            if (kind >= 0)
                escape_message(kind, what, pos, msg, sizeof msg);
            else if (!obj)
                snprintf(msg, sizeof msg, "malformed JSON at column %zu",
                         (end && end >= s && (size_t)(end - s) < n ? (size_t)(end - s) : n) + 1);
            else
                snprintf(msg, sizeof msg, "expected a JSON object, got %s", type_name(obj));
            snprintf(c->first_bad, sizeof c->first_bad, "line %lld: %s", (long long)line, msg);
        }
        cJSON_Delete(obj);
        return 0; /* the first record that parses decides */
    }
    c->found = record_format(obj);
    c->line = line;
    if (c->found == DATA_FORMAT_AUTO) list_keys(obj, c->keys, sizeof c->keys);
    cJSON_Delete(obj);
    return 1;
}

int detect_json_format(const char *name, const char *data, size_t len, DataFormat *out, OwError *err) {
    LineCtx c = {NULL, DATA_FORMAT_AUTO, 0, {0}, {0}};
    char loc[64];
    if (dataset_is_json_array(name, data, len)) {
        cJSON *root = parse_array(name, data, len, err);
        if (!root) return -1;
        int64_t k = 0, at = -1;
        for (const cJSON *it = root->child; it; it = it->next, k++) {
            if (!cJSON_IsObject(it)) continue;
            c.found = record_format(it);
            if (c.found == DATA_FORMAT_AUTO) list_keys(it, c.keys, sizeof c.keys);
            at = k;
            break;
        }
        cJSON_Delete(root);
        if (at < 0) return ow_fail(err, "%s: the JSON array holds no object record", name);
        snprintf(loc, sizeof loc, "element %lld", (long long)at);
    } else {
        if (each_line(data, len, detect_line, &c) == 0)
            return ow_fail(err,
                           "%s: no line is a JSON object, so the data format cannot be detected (first: %s) (hint: "
                           "--format text for plain text)",
                           name, c.first_bad);
        snprintf(loc, sizeof loc, "line %lld", (long long)c.line);
    }
    if (c.found == DATA_FORMAT_AUTO)
        return ow_fail(err,
                       "%s: cannot tell the data format from the keys of the first record (%s: %s): chat records "
                       "have \"messages\", alpaca records \"instruction\" and \"output\", text records \"text\" (hint: "
                       "--format)",
                       name, loc, c.keys);
    *out = c.found;
    return 0;
}

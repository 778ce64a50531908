/* eval_commonsense.c: see eval_commonsense.h. */
#include "train/eval_commonsense.h"

#include "core/fileio.h"
#include "core/json.h"
#include "data/dataset.h"
#include "data/prompt_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char k_format[] = "Answer format:";

static int is_blank_char(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* The text after the last "Answer format:" that starts a line, up to the line's end; NULL when none. */
static const char *format_line(const char *ins, size_t *len) {
    const char *found = NULL;
    size_t kn = sizeof k_format - 1;
    for (const char *p = ins; (p = strstr(p, k_format)) != NULL; p += kn)
        if (p == ins || p[-1] == '\n') found = p + kn;
    if (!found) return NULL;
    const char *nl = strchr(found, '\n');
    *len = nl ? (size_t)(nl - found) : strlen(found);
    return found;
}

void commonsense_options_free(char **opts, int n) {
    for (int i = 0; i < n; i++) free(opts[i]);
    free(opts);
}

int commonsense_options(const char *instruction, char ***opts, int *n) {
    size_t len;
    const char *line = format_line(instruction, &len);
    *opts = NULL;
    *n = 0;
    if (!line) return -1;
    int cap = 1;
    for (size_t i = 0; i < len; i++) cap += line[i] == '/';
    char **v = ow_xcalloc((size_t)cap, sizeof *v);
    for (size_t a = 0; *n < cap;) {
        const char *slash = memchr(line + a, '/', len - a);
        size_t e = slash ? (size_t)(slash - line) : len, b = a, f = e;
        while (b < f && is_blank_char(line[b])) b++;
        while (f > b && is_blank_char(line[f - 1])) f--;
        if (b == f) {
            commonsense_options_free(v, *n);
            *n = 0;
            return -2;
        }
        v[*n] = ow_xmalloc(f - b + 1);
        memcpy(v[*n], line + b, f - b);
        v[(*n)++][f - b] = '\0';
        a = e + 1;
    }
    *opts = v;
    return 0;
}

/* ---- reading ---- */

typedef struct Reader {
    const char *path;
    const EvalEncoder *enc;
    McSet *set;
    RenderedSample prompt;
} Reader;

static int field_string(const cJSON *o, const char *key, int required, const char *where, const char **out,
                        OwError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (!required) return 0;
        return ow_fail(err,
                       "%s: missing field \"%s\" (commonsense records have \"instruction\" with an \"Answer format: "
                       "a/b/...\" line, an optional \"input\", and \"answer\")",
                       where, key);
    }
    if (!cJSON_IsString(v)) return ow_fail(err, "%s: field \"%s\" must be a string", where, key);
    *out = v->valuestring;
    return 0;
}

/* The label: the index of answer among the options. */
static int find_label(char **opts, int n, const char *answer, const char *where, OwError *err) {
    for (int j = 0; j < n; j++)
        if (strcmp(opts[j], answer) == 0) return j;
    char list[400];
    size_t o = 0;
    list[0] = '\0';
    for (int j = 0; j < n && o + 60 < sizeof list; j++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%.50s", j ? "/" : "", opts[j]);
    ow_fail(err,
            "%s: field \"answer\" \"%.60s\" is not one of the options %s of the instruction's Answer format line "
            "(hint: the answer must be spelled as an option)",
            where, answer, list);
    return -1;
}

static int read_record(Reader *r, const cJSON *o, const char *where, OwError *err) {
    if (!cJSON_IsObject(o)) return ow_fail(err, "%s: expected a JSON object (an alpaca record)", where);
    const char *ins, *inp, *answer;
    if (field_string(o, "instruction", 1, where, &ins, err) != 0 ||
        field_string(o, "input", 0, where, &inp, err) != 0 || field_string(o, "answer", 1, where, &answer, err) != 0)
        return -1;
    char **opts;
    int n, orc = commonsense_options(ins, &opts, &n);
    if (orc != 0)
        return ow_fail(err,
                       orc == -1
                           ? "%s: field \"instruction\" has no \"Answer format: a/b/...\" line naming the options "
                             "(hint: --format mc reads {\"context\", \"choices\", \"label\"} items)"
                           : "%s: field \"instruction\": its Answer format line names an empty option (hint: "
                             "options are separated by single slashes, as in \"Answer format: true/false\")",
                       where);
    int label = find_label(opts, n, answer, where, err), rc = -1;
    if (label >= 0) {
        McItem *it = mc_set_push(r->set, n);
        it->label = label;
        for (int j = 0; j < n; j++) {
            size_t pl = sizeof COMMONSENSE_ANSWER_PREFIX - 1, ol = strlen(opts[j]);
            it->text[j] = ow_xmalloc(pl + ol + 1);
            memcpy(it->text[j], COMMONSENSE_ANSWER_PREFIX, pl);
            memcpy(it->text[j] + pl, opts[j], ol + 1);
            it->chars[j] = mc_text_chars(it->text[j]);
        }
        /* the prompt as training renders the record, its response left empty */
        alpaca_render(ins, strlen(ins), inp, inp ? strlen(inp) : 0, "", 0, 0, &r->prompt);
        rc = mc_item_encode(r->enc, r->enc->bos, r->enc->nbos, r->prompt.text, r->prompt.len,
                            (const char *const *)it->text, it, err);
        if (rc != 0) ow_fail_prefix(err, "%s", where);
        if (rc == 0) rc = mc_item_check(it, where, err);
        for (int j = 0; j < n; j++) { /* the item keeps the option words (the continuations were encoded) */
            free(it->text[j]);
            it->text[j] = opts[j];
        }
        free(opts);
        opts = NULL;
        if (rc == 0)
            mc_set_commit(r->set);
        else
            mc_set_drop(r->set);
    }
    commonsense_options_free(opts, opts ? n : 0);
    return rc;
}

/* Calls fn on every record: the array's elements, or each non-blank line parsed. */
typedef int (*RecordFn)(void *ctx, const cJSON *o, const char *where, OwError *err);
static int each_record(const char *path, const char *text, size_t len, RecordFn fn, void *ctx, OwError *err) {
    char where[600];
    if (dataset_is_json_array(path, text, len)) {
        cJSON *root = json_parse(text, len, path, err);
        if (!root) return -1;
        int rc = 0;
        long long k = 0;
        for (const cJSON *o = root->child; rc == 0 && o; o = o->next, k++) {
            snprintf(where, sizeof where, "%s: record %lld", path, k);
            rc = fn(ctx, o, where, err);
        }
        cJSON_Delete(root);
        return rc;
    }
    long long line = 0, k = 0;
    for (const char *p = text, *end = text + len; p < end; p++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end, *q = p;
        line++;
        while (q < le && is_blank_char(*q)) q++;
        if (q < le) {
            snprintf(where, sizeof where, "%s: record %lld (line %lld)", path, k++, line);
            cJSON *o = json_parse(p, (size_t)(le - p), where, err);
            int rc = o ? fn(ctx, o, where, err) : -1;
            cJSON_Delete(o);
            if (rc != 0) return rc;
        }
        p = le;
    }
    return 0;
}

static int reader_record(void *ctx, const cJSON *o, const char *where, OwError *err) {
    return read_record(ctx, o, where, err);
}

int commonsense_read(const char *path, const EvalEncoder *enc, McSet *out, OwError *err) {
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    if (ow_read_file(path, &text, &len, err) != 0) return -1;
    Reader r = {path, enc, out, {0}};
    int rc = each_record(path, text, len, reader_record, &r, err);
    free(text);
    sample_free(&r.prompt);
    if (rc == 0 && out->n == 0)
        rc = ow_fail(err, "%s: no records (expected a JSON array or JSON lines of alpaca records)", path);
    if (rc != 0) mc_set_free(out);
    return rc;
}

/* ---- detection ---- */

static int detect_record(void *ctx, const cJSON *o, const char *where, OwError *err) {
    (void)where;
    (void)err;
    const cJSON *ins = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "instruction") : NULL;
    size_t n;
    *(int *)ctx = cJSON_IsString(ins) && format_line(ins->valuestring, &n) != NULL;
    return 1; /* the first record decides */
}

/* Whether the file's first non-blank byte opens a JSON array or object (read from its head only, so token
 * files of any size are not read whole). */
static int starts_as_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int c;
    while ((c = fgetc(f)) != EOF && is_blank_char((char)c)) {}
    fclose(f);
    return c == '[' || c == '{';
}

int commonsense_detect(const char *path) {
    char *text;
    size_t len;
    OwError err;
    if (!starts_as_json(path) || ow_read_file(path, &text, &len, &err) != 0) return 0;
    int yes = 0;
    each_record(path, text, len, detect_record, &yes, &err);
    free(text);
    return yes;
}

/* ---- answer extraction ---- */

/* LLM-Adapters' patterns (commonsense_evaluate.py extract_answer), each as its words in pattern order. */
static const char *const k_patterns[][6] = {
    {"true", "false", NULL},
    {"solution1", "solution2", NULL},
    {"answer1", "answer2", "answer3", "answer4", "answer5", NULL},
    {"ending1", "ending2", "ending3", "ending4", NULL},
    {"option1", "option2", NULL},
};

static int pattern_has(const char *const *words, const char *w) {
    for (; *words; words++)
        if (strcmp(*words, w) == 0) return 1;
    return 0;
}

int commonsense_extract_answer(const char *text, const char *const *options, int n) {
    const char *const *words = NULL;
    int nw = n;
    for (size_t p = 0; !words && p < sizeof k_patterns / sizeof k_patterns[0]; p++) {
        int all = n > 0;
        for (int j = 0; all && j < n; j++) all = pattern_has(k_patterns[p], options[j]);
        if (all) {
            words = k_patterns[p];
            for (nw = 0; words[nw]; nw++) {}
        }
    }
    if (!words) words = options;
    for (const char *p = text; *p; p++)
        for (int w = 0; w < nw; w++) {
            size_t wl = strlen(words[w]);
            if (wl == 0 || strncmp(p, words[w], wl) != 0) continue;
            for (int j = 0; j < n; j++)
                if (strcmp(options[j], words[w]) == 0) return j;
            return -1;
        }
    return -1;
}

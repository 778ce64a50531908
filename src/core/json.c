/* json.c: see json.h. */
#include "core/json.h"

#include "core/fileio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *json_parse(const char *text, size_t len, const char *where, OwError *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        if (off > len) off = len;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        ow_fail(err, "%s: malformed JSON near line %d, column %d (hint: check the file is complete valid JSON)", where,
                line, col);
        return NULL;
    }
    /* cJSON stops at the end of the first value: anything else must be whitespace. */
    if (end) {
        size_t off = (size_t)(end - text);
        for (size_t i = off; i < len; i++) {
            char c = text[i];
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t' && c != '\0') {
                cJSON_Delete(root);
                ow_fail(err, "%s: trailing data after the JSON value at byte %zu", where, i);
                return NULL;
            }
        }
    }
    return root;
}

cJSON *json_parse_file(const char *path, OwError *err) { return json_parse_file_max(path, OW_JSON_FILE_MAX, err); }

cJSON *json_parse_file_max(const char *path, size_t max_bytes, OwError *err) {
    char *text;
    size_t len;
    if (ow_read_file_max(path, max_bytes, &text, &len, err) != 0) return NULL;
    cJSON *root = json_parse(text, len, path, err);
    free(text);
    return root;
}

void json_show(const cJSON *v, char *buf, size_t cap) {
    char *s = v ? cJSON_PrintUnformatted(v) : NULL;
    if (!s) {
        snprintf(buf, cap, "(missing)");
        return;
    }
    if (strlen(s) >= cap) {
        snprintf(buf, cap, "%.*s...", (int)(cap > 8 ? cap - 8 : 0), s);
    } else {
        snprintf(buf, cap, "%s", s);
    }
    cJSON_free(s);
}

/* The type error of every getter: names the key, what it must be and the value found. */
static int type_error(const cJSON *it, const char *key, const char *what, const char *where, OwError *err) {
    char v[200];
    json_show(it, v, sizeof v);
    return ow_fail(err, "%s: key \"%s\" must be %s, got %s", where, key, what, v);
}

static const cJSON *lookup(const cJSON *obj, const char *key, int required, const char *where, OwError *err, int *rc) {
    *rc = 0;
    const cJSON *it = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!it || cJSON_IsNull(it)) {
        if (required) *rc = ow_fail(err, "%s: missing required key \"%s\"", where, key);
        return NULL;
    }
    return it;
}

int json_get_num(const cJSON *obj, const char *key, int required, double *out, const char *where, OwError *err) {
    int rc;
    const cJSON *it = lookup(obj, key, required, where, err, &rc);
    if (!it) return rc;
    if (!cJSON_IsNumber(it)) return type_error(it, key, "a number", where, err);
    *out = it->valuedouble;
    return 0;
}

int json_get_int(const cJSON *obj, const char *key, int required, int64_t *out, const char *where, OwError *err) {
    int rc;
    const cJSON *it = lookup(obj, key, required, where, err, &rc);
    if (!it) return rc;
    double v = it->valuedouble;
    if (!cJSON_IsNumber(it) || v != floor(v) || fabs(v) > 9007199254740992.0)
        return type_error(it, key, "an integer", where, err);
    *out = (int64_t)v;
    return 0;
}

int json_get_uint(const cJSON *obj, const char *key, int required, int64_t max, int64_t *out, const char *where,
                  OwError *err) {
    int rc;
    const cJSON *it = lookup(obj, key, required, where, err, &rc);
    if (!it) return rc;
    double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
    if (v < 0 || v != floor(v) || v > (double)max) {
        char what[64];
        snprintf(what, sizeof what, "an integer in [0, %lld]", (long long)max);
        return type_error(it, key, what, where, err);
    }
    *out = (int64_t)v;
    return 0;
}

int json_get_bool(const cJSON *obj, const char *key, int required, int *out, const char *where, OwError *err) {
    int rc;
    const cJSON *it = lookup(obj, key, required, where, err, &rc);
    if (!it) return rc;
    if (!cJSON_IsBool(it)) return type_error(it, key, "true or false", where, err);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return 0;
}

int json_get_str(const cJSON *obj, const char *key, int required, const char **out, const char *where, OwError *err) {
    int rc;
    const cJSON *it = lookup(obj, key, required, where, err, &rc);
    if (!it) return rc;
    if (!cJSON_IsString(it)) return type_error(it, key, "a string", where, err);
    *out = it->valuestring;
    return 0;
}

char *json_print_text(const cJSON *root, size_t *len) {
    char *text = cJSON_Print(root);
    if (!text) return NULL;
    size_t n = strlen(text);
    char *buf = ow_xmalloc(n + 2);
    memcpy(buf, text, n);
    buf[n] = '\n';
    buf[n + 1] = '\0';
    cJSON_free(text);
    *len = n + 1;
    return buf;
}

int json_write_file(const char *path, const cJSON *root, OwError *err) {
    size_t n;
    char *buf = json_print_text(root, &n);
    if (!buf) return ow_fail(err, "%s: cannot serialise JSON", path);
    int rc = ow_write_file_atomic(path, buf, n, err);
    free(buf);
    return rc;
}

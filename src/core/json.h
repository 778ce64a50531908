/* json.h: strict JSON reading on top of cJSON, with errors that name the
 * file, the key and what was expected, plus a small writer for JSON lines.
 * `where` in these calls is the file (or "file: object") used in messages. */
#ifndef OWLORE_CORE_JSON_H
#define OWLORE_CORE_JSON_H

#include "core/error.h"

#include <cjson/cJSON.h>
#include <stdint.h>

/* Parses text; a syntax error names `where` with line and column. */
cJSON *json_parse(const char *text, size_t len, const char *where, OwError *err);
/* Size caps of JSON files (a file past its cap is refused, not read): tokenizer.json
 * and everything else, and the small settings files (config.json,
 * tokenizer_config.json, special_tokens_map.json), whose real ones are kilobytes. */
#define OW_JSON_FILE_MAX ((size_t)64 << 20)
#define OW_JSON_CONFIG_MAX ((size_t)4 << 20)

/* Reads and parses a file of at most OW_JSON_FILE_MAX bytes. */
cJSON *json_parse_file(const char *path, OwError *err);
/* Same, with the cap max_bytes. */
cJSON *json_parse_file_max(const char *path, size_t max_bytes, OwError *err);

/* A short printable rendering of a JSON value for messages ("(missing)" for NULL;
 * cut with "..." to fit cap). */
void json_show(const cJSON *v, char *buf, size_t cap);

/* Getters. `required`: a missing (or null) key is an error; otherwise *out
 * keeps its value. Type mismatches are errors either way, naming the value
 * found. Return 0 or -1. */
int json_get_int(const cJSON *obj, const char *key, int required, int64_t *out, const char *where, OwError *err);
/* An integer in [0, max]. */
int json_get_uint(const cJSON *obj, const char *key, int required, int64_t max, int64_t *out, const char *where,
                  OwError *err);
int json_get_num(const cJSON *obj, const char *key, int required, double *out, const char *where, OwError *err);
int json_get_bool(const cJSON *obj, const char *key, int required, int *out, const char *where, OwError *err);
/* *out points into obj (valid while obj lives). */
int json_get_str(const cJSON *obj, const char *key, int required, const char **out, const char *where, OwError *err);

/* Writes a cJSON tree to a file atomically (pretty-printed). */
/* The tree as pretty-printed text ending in a newline (heap, NUL-terminated;
 * its length without the NUL in *len); NULL when cJSON cannot print it. */
char *json_print_text(const cJSON *root, size_t *len);
int json_write_file(const char *path, const cJSON *root, OwError *err);

#endif

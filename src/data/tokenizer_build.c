/* tokenizer_build.c: makes a tokenizer.json from a template tokenizer.json
 * and GPT-2 style vocabulary/merges files (encoder.json + vocab.bpe,
 * vocab.json + merges.txt): the template's model.vocab and model.merges are
 * replaced, everything else is kept. Used for LLaMA-3, whose full
 * tokenizer.json is not shipped in ../shared; the merges keep the file's
 * order (their rank) and the "a b" string form tokenizers reads; "#version"
 * lines are dropped as tokenizers drops them, an empty line (but for the end
 * of the file) is an error, as in tokenizers. */
#include "core/fileio.h"
#include "core/json.h"
#include "data/tokenizer.h"

#include <stdlib.h>
#include <string.h>

int tokenizer_build_json(const char *template_json, const char *vocab_json, const char *merges_txt,
                         const char *out_path, OwError *err) {
    cJSON *tmpl = json_parse_file(template_json, err);
    if (!tmpl) return -1;
    cJSON *vocab = NULL;
    char *merges = NULL;
    int rc = -1;
    cJSON *model = cJSON_GetObjectItemCaseSensitive(tmpl, "model");
    if (!cJSON_IsObject(model)) {
        ow_fail(err, "%s: model: missing or not an object", template_json);
        goto done;
    }
    vocab = json_parse_file(vocab_json, err);
    if (!vocab) goto done;
    if (!cJSON_IsObject(vocab)) {
        ow_fail(err, "%s: expected a JSON object mapping tokens to ids", vocab_json);
        goto done;
    }
    size_t mlen;
    if (ow_read_file(merges_txt, &merges, &mlen, err) != 0) goto done;
    cJSON *arr = cJSON_CreateArray();
    size_t line = 0;
    for (char *p = merges, *end = merges + mlen; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e[-1] = '\0';
        *e = '\0';
        line++;
        if (!*p && nl && nl + 1 < end) {
            cJSON_Delete(arr);
            ow_fail(err, "%s: line %zu is empty (each line must be one merge, \"a b\")", merges_txt, line);
            goto done;
        }
        if (*p && strncmp(p, "#version", 8) != 0) cJSON_AddItemToArray(arr, cJSON_CreateString(p));
        p = nl ? nl + 1 : end;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(model, "merges", arr);
    cJSON_ReplaceItemInObjectCaseSensitive(model, "vocab", vocab);
    vocab = NULL; /* now owned by tmpl */
    char *text = cJSON_PrintUnformatted(tmpl);
    if (!text) {
        ow_fail(err, "%s: cannot serialise the tokenizer JSON", out_path);
        goto done;
    }
    rc = ow_write_file_atomic(out_path, text, strlen(text), err);
    cJSON_free(text);
done:
    free(merges);
    cJSON_Delete(vocab);
    cJSON_Delete(tmpl);
    return rc;
}

/* test_json.c: core/json.h getters: required and optional keys, and type
 * errors that name the file, the key and the value found. */
#include "core/json.h"

#include <criterion/criterion.h>
#include <string.h>

Test(json, getters_name_the_key_and_the_value_found) {
    OwError err;
    const char *text = "{\"n\": 7, \"neg\": -1, \"big\": 70000, \"s\": \"x\", \"b\": true, \"z\": null}";
    cJSON *o = json_parse(text, strlen(text), "f.json", &err);
    cr_assert_not_null(o, "%s", err.msg);
    int64_t v = 0;
    cr_assert_eq(json_get_uint(o, "n", 1, 65535, &v, "f.json", &err), 0);
    cr_assert_eq(v, 7);
    cr_assert_eq(json_get_uint(o, "neg", 1, 65535, &v, "f.json", &err), -1);
    cr_assert(strstr(err.msg, "f.json: key \"neg\" must be an integer in [0, 65535], got -1") != NULL, "%s", err.msg);
    cr_assert_eq(json_get_uint(o, "big", 1, 65535, &v, "f.json", &err), -1);
    cr_assert(strstr(err.msg, "got 70000") != NULL, "%s", err.msg);
    cr_assert_eq(json_get_uint(o, "z", 0, 65535, &v, "f.json", &err), 0, "null counts as missing");
    cr_assert_eq(v, 7, "an optional missing key keeps the value");
    cr_assert_eq(json_get_uint(o, "z", 1, 65535, &v, "f.json", &err), -1);
    cr_assert(strstr(err.msg, "missing required key \"z\"") != NULL, "%s", err.msg);
    const char *s = NULL;
    cr_assert_eq(json_get_str(o, "b", 1, &s, "f.json", &err), -1);
    cr_assert(strstr(err.msg, "key \"b\" must be a string, got true") != NULL, "%s", err.msg);
    int b = 0;
    cr_assert_eq(json_get_bool(o, "s", 1, &b, "f.json", &err), -1);
    cr_assert(strstr(err.msg, "must be true or false, got \"x\"") != NULL, "%s", err.msg);
    cJSON_Delete(o);
}

// ctest-labels: cpu
#define _GNU_SOURCE /* realpath */
/* test_cmd_probe.c: `owlore probe` on the CPU: the human output gives every
 * figure with its unit and where it came from (measured now, the cache's
 * path); --json prints one object with every field of ProbeResult and
 * "cached", true on the next run with the same figures; a cache file that is
 * not JSON is ignored with a warning, measured again and rewritten; a missing
 * --nvme-dir exits 1 naming it; a positional argument is a usage error. */
#include "core/fileio.h"
#include "core/json.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *home, *disk, *cache;
} ProbeEnv;

static ProbeEnv env_new(void) {
    ProbeEnv e = {.home = ts_tmpdir(), .disk = ts_tmpdir()};
    e.cache = ow_path_join(e.home, "owlore/probe.json");
    return e;
}

static void env_free(ProbeEnv *e) {
    ts_rmtree(e->home);
    ts_rmtree(e->disk);
    free(e->home);
    free(e->disk);
    free(e->cache);
}

/* Runs `owlore probe --device cpu --threads 1 --nvme-dir DISK ARGS` with XDG_CACHE_HOME=HOME;
 * stderr goes to HOME/stderr.txt. */
static int probe_in(const ProbeEnv *e, const char *disk, const char *args, char **out) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "XDG_CACHE_HOME='%s' '%s' probe --device cpu --threads 1 --nvme-dir '%s' %s 2>'%s/stderr.txt'", e->home,
             ts_owlore_binary(), disk, args, e->home);
    return ts_run(cmd, out);
}

static int probe(const ProbeEnv *e, const char *args, char **out) { return probe_in(e, e->disk, args, out); }

static char *stderr_text(const ProbeEnv *e) {
    char *p = ow_path_join(e->home, "stderr.txt"), *text = ts_read_text(p);
    free(p);
    return text;
}

/* The --json output, every key of ProbeResult checked; the value of "cached". */
static cJSON *parse_json(const char *out) {
    OwError err;
    cJSON *o = json_parse(out, strlen(out), "owlore probe --json", &err);
    cr_assert_not_null(o, "%s:\n%s", err.msg, out);
    const char *numbers[] = {"h2d_gbps", "d2h_gbps", "disk_gbps", "gemm_tflops", "gemm_n", "seconds"};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, numbers[i]);
        cr_expect(cJSON_IsNumber(v) && v->valuedouble > 0, "\"%s\" in:\n%s", numbers[i], out);
    }
    const char *strings[] = {"device", "disk_path", "disk_dir", "gemm_dtype"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        cr_expect(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, strings[i])), "\"%s\" in:\n%s", strings[i], out);
    cr_expect(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(o, "disk_direct")), "%s", out);
    cr_expect(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(o, "cached")), "%s", out);
    return o;
}

static int cached(const cJSON *o) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "cached")); }
static double seconds(const cJSON *o) { return cJSON_GetObjectItemCaseSensitive(o, "seconds")->valuedouble; }

Test(cmd_probe, measures_then_answers_from_the_cache) {
    ProbeEnv e = env_new();
    char *out, disk[PATH_MAX];
    cr_assert_not_null(realpath(e.disk, disk));
    cr_assert_eq(probe(&e, "", &out), 0, "%s", out);
    const char *want[] = {"device:          cpu",
                          "host -> device:",
                          "device -> host:",
                          "store disk read:",
                          "GEMM:",
                          " GB/s",
                          " TFLOP/s",
                          "measured now in",
                          e.cache};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(out, want[i]), "no \"%s\" in:\n%s", want[i], out);
    cr_expect(strstr(out, disk), "the disk directory %s is not named in:\n%s", disk, out);
    free(out);

    cr_assert_eq(probe(&e, "--json", &out), 0, "%s", out);
    cJSON *a = parse_json(out);
    cr_expect(cached(a), "the second run measured again:\n%s", out);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(a, "disk_dir")->valuestring, disk);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(a, "device")->valuestring, "cpu");
    free(out);

    cr_assert_eq(probe(&e, "", &out), 0, "%s", out);
    cr_expect(strstr(out, "from the cache") && strstr(out, e.cache), "%s", out);
    free(out);

    /* a cache that is not JSON: a warning, measured again, rewritten */
    ts_write_file(e.cache, "{\"version\": 1, \"entries\": [", 27);
    cr_assert_eq(probe(&e, "--json", &out), 0, "%s", out);
    cJSON *b = parse_json(out);
    cr_expect(!cached(b) && seconds(b) != seconds(a), "a corrupt cache was used:\n%s", out);
    char *err = stderr_text(&e);
    cr_expect(strstr(err, "ignoring the probe cache") && strstr(err, e.cache), "no warning naming the cache:\n%s", err);
    free(err);
    free(out);
    OwError jerr;
    cJSON *root = json_parse_file(e.cache, &jerr);
    cr_expect_not_null(root, "the cache was not rewritten: %s", jerr.msg);
    cJSON_Delete(root);
    cJSON_Delete(a);
    cJSON_Delete(b);
    env_free(&e);
}

Test(cmd_probe, missing_nvme_dir_and_stray_arguments_are_refused) {
    ProbeEnv e = env_new();
    char *missing = ow_path_join(e.disk, "gone"), *out;
    cr_expect_eq(probe_in(&e, missing, "", &out), 1, "%s", out);
    free(out);
    char *err = stderr_text(&e);
    cr_expect(strstr(err, "owlore probe: error:") && strstr(err, missing) && strstr(err, "no such directory"), "%s",
              err);
    free(err);
    cr_expect(!ow_path_exists(e.cache), "a failed probe wrote the cache");
    cr_expect_eq(probe(&e, "extra", &out), 2, "%s", out);
    free(out);
    free(missing);
    env_free(&e);
}

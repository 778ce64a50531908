// ctest-labels: cpu
#define _GNU_SOURCE /* realpath */
/* test_probe.c: the offload engine's measurements and their cache
 * (offload/probe.h) on the CPU backend. A small probe gives finite positive
 * figures, measures the disk through a store file that it removes again (and
 * sweeps the probe files of dead processes); probe_get saves its figures
 * under XDG_CACHE_HOME, answers from them without measuring (same figures,
 * the file untouched) and measures again on refresh; cache entries that do
 * not parse are dropped with the others kept; a missing, non-directory,
 * read-only or full disk directory fails naming the directory. */
#include "backend/backend.h"
#include "core/fileio.h"
#include "core/json.h"
#include "offload/probe.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const ProbeOptions SMALL = {.copy_bytes = 1 << 20, .disk_bytes = 1 << 20, .gemm_n = 64};

static Backend *cpu_backend(void) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    cr_assert_not_null(be, "%s", err.msg);
    return be;
}

/* The names in dir besides . and .. */
static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int positive(double x) { return isfinite(x) && x > 0; }

Test(probe, cpu_figures_are_finite_and_positive_and_the_store_file_goes) {
    Backend *be = cpu_backend();
    char *dir = ts_tmpdir(), resolved[PATH_MAX];
    cr_assert_not_null(realpath(dir, resolved));
    ProbeResult r;
    OwError err;
    cr_assert_eq(probe_run(be, dir, &SMALL, &r, &err), 0, "%s", err.msg);
    cr_expect(positive(r.h2d_gbps) && positive(r.d2h_gbps) && positive(r.disk_gbps) && positive(r.gemm_tflops),
              "h2d %g, d2h %g, disk %g GB/s, %g TFLOP/s", r.h2d_gbps, r.d2h_gbps, r.disk_gbps, r.gemm_tflops);
    cr_expect(positive(r.seconds));
    cr_expect_str_eq(r.device, "cpu");
    cr_expect_str_eq(r.disk_dir, resolved);
    cr_expect(strcmp(r.disk_path, "io_uring") == 0 || strcmp(r.disk_path, "threads") == 0, "%s", r.disk_path);
    cr_expect_str_eq(r.gemm_dtype, "F32");
    cr_expect_eq(r.gemm_n, 64);
    cr_expect_eq(r.cached, 0);
    cr_expect_eq(dir_entries(dir), 0, "the probe left a file in %s", dir);

    cr_assert_eq(probe_run(be, NULL, &SMALL, &r, &err), 0, "%s", err.msg);
    cr_expect(r.disk_gbps == 0 && r.disk_dir[0] == '\0' && r.disk_path[0] == '\0' && positive(r.h2d_gbps));
    be->ops->destroy(be);
    ts_rmtree(dir);
    free(dir);
}

/* A probe file of a dead process (a killed probe) is removed; one of a live process stays. */
Test(probe, sweeps_the_probe_files_of_dead_processes) {
    pid_t dead = fork();
    cr_assert(dead >= 0);
    if (dead == 0) _exit(0);
    cr_assert_eq(waitpid(dead, NULL, 0), dead);
    char *dir = ts_tmpdir(), name[64];
    snprintf(name, sizeof name, ".owlore-probe-%d.store.tmp-%d", (int)dead, (int)dead);
    char *stale = ow_path_join(dir, name);
    snprintf(name, sizeof name, ".owlore-probe-%d.store", (int)getppid());
    char *live = ow_path_join(dir, name);
    ts_write_file(stale, "x", 1);
    ts_write_file(live, "x", 1);
    Backend *be = cpu_backend();
    ProbeResult r;
    OwError err;
    cr_assert_eq(probe_run(be, dir, &SMALL, &r, &err), 0, "%s", err.msg);
    cr_expect(!ow_path_exists(stale), "%s was left", stale);
    cr_expect(ow_path_exists(live), "%s (a live process's) was removed", live);
    be->ops->destroy(be);
    ts_rmtree(dir);
    free(dir);
    free(stale);
    free(live);
}

/* ---- the cache ---- */

/* A fresh XDG_CACHE_HOME; its probe.json path in *path (heap). */
static char *cache_home(char **path) {
    char *home = ts_tmpdir(), buf[4096];
    cr_assert_eq(setenv("XDG_CACHE_HOME", home, 1), 0);
    OwError err;
    cr_assert_eq(probe_cache_path(buf, sizeof buf, &err), 0, "%s", err.msg);
    *path = ow_xstrdup(buf);
    char *want = ow_path_join(home, "owlore/probe.json");
    cr_assert_str_eq(*path, want);
    free(want);
    return home;
}

static int same_figures(const ProbeResult *a, const ProbeResult *b) {
    return strcmp(a->device, b->device) == 0 && strcmp(a->disk_dir, b->disk_dir) == 0 && a->h2d_gbps == b->h2d_gbps &&
           a->d2h_gbps == b->d2h_gbps && a->disk_gbps == b->disk_gbps && a->gemm_tflops == b->gemm_tflops &&
           a->gemm_n == b->gemm_n && strcmp(a->gemm_dtype, b->gemm_dtype) == 0 && a->seconds == b->seconds;
}

static cJSON *cache_entries(const char *path, cJSON **root) {
    OwError err;
    *root = json_parse_file(path, &err);
    cr_assert_not_null(*root, "%s", err.msg);
    cJSON *entries = cJSON_GetObjectItemCaseSensitive(*root, "entries");
    cr_assert(cJSON_IsArray(entries), "%s has no entries array", path);
    return entries;
}

Test(probe_cache, the_second_get_reads_the_cache_and_refresh_measures_again) {
    char *path, *home = cache_home(&path);
    Backend *be = cpu_backend();
    ProbeResult a, b, c;
    OwError err;
    cr_assert_eq(probe_get(be, NULL, 0, &a, &err), 0, "%s", err.msg);
    cr_expect_eq(a.cached, 0);
    struct stat s1, s2, s3;
    cr_assert_eq(stat(path, &s1), 0, "%s was not written", path);

    cr_assert_eq(probe_get(be, NULL, 0, &b, &err), 0, "%s", err.msg);
    cr_expect_eq(b.cached, 1);
    cr_expect(same_figures(&a, &b), "the cached figures differ (seconds %.17g vs %.17g)", a.seconds, b.seconds);
    cr_assert_eq(stat(path, &s2), 0);
    cr_expect(s1.st_ino == s2.st_ino && s1.st_mtim.tv_sec == s2.st_mtim.tv_sec &&
                  s1.st_mtim.tv_nsec == s2.st_mtim.tv_nsec,
              "a cached answer rewrote the cache");

    cr_assert_eq(probe_get(be, NULL, 1, &c, &err), 0, "%s", err.msg);
    cr_expect_eq(c.cached, 0);
    cr_expect_neq(c.seconds, a.seconds, "refresh did not measure again");
    cr_assert_eq(stat(path, &s3), 0);
    cr_expect_neq(s3.st_ino, s1.st_ino, "refresh did not rewrite the cache");
    cJSON *root, *entries = cache_entries(path, &root);
    cr_expect_eq(cJSON_GetArraySize(entries), 1, "refresh added a second entry for the same key");
    cJSON_Delete(root);
    be->ops->destroy(be);
    ts_rmtree(home);
    free(home);
    free(path);
}

/* probe_cached answers from the cache without a backend (`owlore plan`): the device's entry by its label's
 * prefix, none for a device never probed. */
Test(probe_cache, cached_figures_without_a_backend) {
    char *path, *home = cache_home(&path);
    ProbeResult none, a, b;
    cr_assert_eq(probe_cached("cpu", NULL, &none), 0, "an empty cache answers");
    Backend *be = cpu_backend();
    OwError err;
    cr_assert_eq(probe_get(be, NULL, 0, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(probe_cached("cpu", NULL, &b), 1);
    cr_expect(same_figures(&a, &b), "probe_cached gave other figures");
    cr_expect_eq(b.cached, 1);
    cr_assert_eq(probe_cached("cuda:", NULL, &none), 0, "a device never probed answers");
    be->ops->destroy(be);
    ts_rmtree(home);
    free(home);
    free(path);
}

/* Entries with a figure of the wrong type, negative or zero, or not even an object, are
 * dropped (each would otherwise answer for the cpu); another device's valid entry is kept,
 * its figures bit for bit; the file is rewritten with it and the new one. */
Test(probe_cache, bad_entries_are_dropped_and_the_others_kept) {
    char *path, *home = cache_home(&path);
    ProbeResult cpu = {.device = "cpu",
                       .h2d_gbps = 5,
                       .d2h_gbps = 5,
                       .gemm_tflops = 0.1,
                       .gemm_dtype = "F32",
                       .gemm_n = 256,
                       .seconds = 0.5};
    ProbeResult other = cpu;
    snprintf(other.device, sizeof other.device, "cuda: Test GPU");
    other.h2d_gbps = 0.1 + 0.2; /* 0.30000000000000004: printed "0.3" by cJSON's own round trip */
    cJSON *root = cJSON_CreateObject(), *entries = cJSON_AddArrayToObject(root, "entries");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON *bad[3] = {probe_result_json(&cpu), probe_result_json(&cpu), probe_result_json(&cpu)};
    cJSON_ReplaceItemInObject(bad[0], "h2d_gbps", cJSON_CreateString("fast"));
    cJSON_ReplaceItemInObject(bad[1], "h2d_gbps", cJSON_CreateNumber(-1));
    cJSON_ReplaceItemInObject(bad[2], "h2d_gbps", cJSON_CreateNumber(0));
    for (int i = 0; i < 3; i++) cJSON_AddItemToArray(entries, bad[i]);
    cJSON_AddItemToArray(entries, cJSON_CreateString("not an entry"));
    cJSON *kept = probe_result_json(&other);
    cJSON_ReplaceItemInObject(kept, "h2d_gbps", cJSON_CreateRaw("0.30000000000000004"));
    cJSON_AddItemToArray(entries, kept);
    OwError err;
    char *dir = ow_path_dirname(path);
    cr_assert_eq(ow_mkdir_p(dir, &err), 0, "%s", err.msg);
    cr_assert_eq(json_write_file(path, root, &err), 0, "%s", err.msg);
    cJSON_Delete(root);

    Backend *be = cpu_backend();
    ProbeResult r, again;
    cr_assert_eq(probe_get(be, NULL, 0, &r, &err), 0, "%s", err.msg);
    cr_expect_eq(r.cached, 0, "a bad entry was taken for the cpu's figures");
    cr_expect(positive(r.h2d_gbps));
    entries = cache_entries(path, &root);
    cr_assert_eq(cJSON_GetArraySize(entries), 2);
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(entries, 0), "device")->valuestring, other.device);
    double h2d = cJSON_GetObjectItem(cJSON_GetArrayItem(entries, 0), "h2d_gbps")->valuedouble;
    cr_expect(h2d == other.h2d_gbps, "the kept entry's figure changed in the rewrite: %.17g", h2d);
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(entries, 1), "device")->valuestring, "cpu");
    cJSON_Delete(root);
    cr_assert_eq(probe_get(be, NULL, 0, &again, &err), 0, "%s", err.msg);
    cr_expect(again.cached && same_figures(&r, &again));
    be->ops->destroy(be);
    ts_rmtree(home);
    free(home);
    free(dir);
    free(path);
}

/* ---- bad disk directories ---- */

static void expect_dir_refused(const char *dir, const char *why) {
    Backend *be = cpu_backend();
    ProbeResult r;
    OwError err;
    cr_assert_neq(probe_run(be, dir, &SMALL, &r, &err), 0, "probed %s", dir);
    cr_expect(strstr(err.msg, dir) && strstr(err.msg, why), "expected \"%s\" and \"%s\" in: %s", dir, why, err.msg);
    cr_assert_neq(probe_get(be, dir, 0, &r, &err), 0, "probe_get probed %s", dir);
    cr_expect(strstr(err.msg, dir) && strstr(err.msg, why), "expected \"%s\" and \"%s\" in: %s", dir, why, err.msg);
    be->ops->destroy(be);
}

Test(probe, missing_dir_or_file_fails_naming_it) {
    char *home = ts_tmpdir(), *missing = ow_path_join(home, "no-such-dir"), *file = ow_path_join(home, "a-file");
    cr_assert_eq(setenv("XDG_CACHE_HOME", home, 1), 0);
    expect_dir_refused(missing, "no such directory");
    ts_write_file(file, "x", 1);
    expect_dir_refused(file, "not a directory");
    ts_rmtree(home);
    free(home);
    free(missing);
    free(file);
}

/* In the namespace child: 0 when probing mnt fails naming it, why and a hint, leaving nothing. */
static int refused_body(const char *mnt, const char *why, const char *hint) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    ProbeResult r;
    if (!be) return fprintf(stderr, "%s\n", err.msg), 1;
    if (probe_run(be, mnt, &(ProbeOptions){.copy_bytes = 1 << 20, .disk_bytes = 1 << 20, .gemm_n = 64}, &r, &err) == 0)
        return fprintf(stderr, "probed %s\n", mnt), 2;
    fprintf(stderr, "%s\n", err.msg);
    if (!strstr(err.msg, mnt) || !strstr(err.msg, why) || !strstr(err.msg, hint)) return 3;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", mnt);
    if (system(cmd) != 0) return fprintf(stderr, "a file is left behind\n"), 4;
    be->ops->destroy(be);
    return 0;
}

static int read_only_body(const char *mnt) { return refused_body(mnt, "Read-only file system", "not writable"); }
static int full_body(const char *mnt) { return refused_body(mnt, "No space left on device", "free space"); }

Test(probe, read_only_dir_fails_naming_it) {
    int rc = ts_on_private_tmpfs("1m", MS_RDONLY, read_only_body);
    cr_assert_eq(rc, 0, "child status %d (its stderr above)", rc);
}

Test(probe, full_disk_fails_naming_it_and_leaves_nothing) {
    int rc = ts_on_private_tmpfs("256k", 0, full_body);
    cr_assert_eq(rc, 0, "child status %d (its stderr above)", rc);
}

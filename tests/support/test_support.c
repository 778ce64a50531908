/* test_support.c: see test_support.h. */
#define _GNU_SOURCE
#include "test_support.h"

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/rng.h"
#include "core/runtime.h"
#include "data/tokfile.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The test binaries get the same library settings as the owlore binary
 * (core/runtime.h); this runs before Criterion's main and may re-execute the
 * binary with its original arguments. */
__attribute__((constructor)) static void test_runtime_setup(void) {
    static char buf[65536];
    static char *argv[256];
    FILE *fp = fopen("/proc/self/cmdline", "rb");
    if (!fp) return;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    int argc = 0;
    for (size_t i = 0; i < n && argc < 255; i += strlen(buf + i) + 1) argv[argc++] = buf + i;
    argv[argc] = NULL;
    if (argc > 0) ow_runtime_setup(argv);
}

static const char *source_dir(void) {
    const char *s = getenv("OWLORE_SOURCE_DIR");
    cr_assert(s != NULL, "OWLORE_SOURCE_DIR is not set (run the tests through ctest)");
    return s;
}

char *ts_source_path(const char *rel) { return ow_path_join(source_dir(), rel); }

char *ts_fixture_path(const char *rel) {
    char *fx = ts_source_path("tests/fixtures");
    char *p = ow_path_join(fx, rel);
    free(fx);
    return p;
}

char *ts_shared_path(const char *rel) {
    const char *s = getenv("OWLORE_SHARED_DIR");
    cr_assert(s != NULL, "OWLORE_SHARED_DIR is not set (run the tests through ctest)");
    cr_assert(ow_is_dir(s), "the shared data folder %s is missing (it must sit beside the checkout as ../shared)", s);
    return ow_path_join(s, rel);
}

const char *ts_owlore_binary(void) {
    const char *b = getenv("OWLORE_BINARY");
    cr_assert(b != NULL, "OWLORE_BINARY is not set (run the tests through ctest)");
    return b;
}

char *ts_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/owlore-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    cr_assert(d != NULL, "mkdtemp failed");
    return ow_xstrdup(d);
}

void ts_rmtree(const char *path) {
    OwError err;
    ow_remove_tree(path, &err);
}

void ts_write_file(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "wb");
    cr_assert(fp != NULL, "cannot write %s", path);
    if (len) cr_assert(fwrite(data, 1, len, fp) == len);
    fclose(fp);
}

char *ts_read_text(const char *path) {
    char *text;
    size_t len;
    OwError err;
    cr_assert_eq(ow_read_file(path, &text, &len, &err), 0, "%s", err.msg);
    return text;
}

pid_t ts_spawn(const char *cmd, const char *log, const char *slow_ms) {
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (slow_ms) setenv("OWLORE_TEST_SLOW_SAVE_MS", slow_ms, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void write_proc(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) _exit(77);
    close(fd);
}

int ts_on_private_tmpfs(const char *size, unsigned long mount_flags, int (*body)(const char *mnt)) {
    char *dir = ts_tmpdir(), *mnt = ow_path_join(dir, "mnt");
    cr_assert_eq(mkdir(mnt, 0755), 0);
    uid_t uid = getuid();
    gid_t gid = getgid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        char map[64];
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) _exit(77);
        write_proc("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "0 %d 1", (int)uid);
        write_proc("/proc/self/uid_map", map);
        snprintf(map, sizeof map, "0 %d 1", (int)gid);
        write_proc("/proc/self/gid_map", map);
        char opts[64];
        snprintf(opts, sizeof opts, "size=%s", size);
        if (mount("none", mnt, "tmpfs", mount_flags, opts) != 0) _exit(77);
        _exit(body(mnt));
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    ts_rmtree(dir);
    free(dir);
    free(mnt);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        cr_skip_test("unshare(CLONE_NEWUSER | CLONE_NEWNS) or a tmpfs mount is not allowed here");
    cr_assert(WIFEXITED(status), "the child died (status %d)", status);
    return WEXITSTATUS(status);
}

void ts_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int ts_save_in_progress(const char *run) {
    char *cd = ow_path_join(run, "checkpoints");
    DIR *d = opendir(cd);
    free(cd);
    int found = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) found |= strstr(de->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return found;
}

void ts_write_random_tokens(const char *path, int n, int32_t vocab, uint64_t seed) {
    int32_t *ids = ow_xmalloc((size_t)n * sizeof(int32_t));
    Rng r;
    rng_init(&r, seed, 2);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)rng_below(&r, (uint64_t)vocab);
    OwError err;
    cr_assert_eq(tokfile_write(path, ids, NULL, n, vocab, NULL, 0, 0, 0, &err), 0, "%s", err.msg);
    free(ids);
}

void ts_corrupt_byte(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    cr_assert(f != NULL, "%s", path);
    fseek(f, off, off < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

int ts_run(const char *cmd, char **output) {
    char *full = NULL;
    if (asprintf(&full, "( %s ) 2>&1", cmd) < 0) cr_assert_fail("asprintf");
    FILE *p = popen(full, "r");
    free(full);
    cr_assert(p != NULL, "popen failed");
    size_t cap = 4096, n = 0;
    char *buf = ow_xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            buf = ow_xrealloc(buf, cap);
        }
    }
    buf[n] = '\0';
    int st = pclose(p);
    if (output)
        *output = buf;
    else
        free(buf);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

double ts_max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

double ts_rel_err(const float *a, const float *ref, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - (double)ref[i]);
        if (isnan(x)) return INFINITY;
        d = fmax(d, x);
    }
    double r = ts_max_abs(ref, n);
    return r > 0 ? d / r : d;
}

void ts_read_metric(const char *run_dir, const char *key, double *out, int n) {
    char *p = ow_path_join(run_dir, "metrics.jsonl");
    char *text;
    size_t len;
    OwError err;
    cr_assert_eq(ow_read_file(p, &text, &len, &err), 0, "%s", err.msg);
    int k = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && k < n; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        cr_assert(j != NULL, "%s: a line is not JSON: %s", p, line);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
        if (cJSON_GetObjectItemCaseSensitive(j, "loss") && v) out[k++] = v->valuedouble;
        cJSON_Delete(j);
    }
    cr_assert_eq(k, n, "%s has %d step records with %s, expected %d", p, k, key, n);
    free(text);
    free(p);
}

void ts_gram_schmidt(double *A, int64_t m, int64_t k, int64_t rs, int64_t cs) {
    for (int64_t j = 0; j < k; j++) {
        double *cj = A + j * cs;
        for (int64_t p = 0; p < j; p++) {
            const double *cp = A + p * cs;
            double d = 0;
            for (int64_t i = 0; i < m; i++) d += cj[i * rs] * cp[i * rs];
            for (int64_t i = 0; i < m; i++) cj[i * rs] -= d * cp[i * rs];
        }
        double nrm = 0;
        for (int64_t i = 0; i < m; i++) nrm += cj[i * rs] * cj[i * rs];
        nrm = sqrt(nrm);
        for (int64_t i = 0; i < m; i++) cj[i * rs] /= nrm;
    }
}

char *ts_smollm2_gguf(void) {
    char *script = ts_source_path("scripts/get-smollm2.sh"), cmd[4200], *out;
    snprintf(cmd, sizeof cmd, "'%s' --path 2>/dev/null", script);
    free(script);
    if (ts_run(cmd, &out) != 0) {
        free(out);
        return NULL;
    }
    out[strcspn(out, "\n")] = '\0';
    return out;
}

// ctest-labels: cpu
/* test_torture.c: a run directory under abuse (issue 16's acceptance).
 *
 * A short run is killed with SIGKILL at seeded random moments (half of them
 * while a checkpoint is being written, OWLORE_TEST_SLOW_SAVE_MS stretching
 * the save) and resumed until it finishes; while each resume runs, a second
 * writer is started on the same directory and must fail naming the first's
 * pid. After every kill the directory must be whole: every checkpoint opens
 * and verifies, config.json parses, no lock is held. The finished run's
 * metrics (every loss, bit for bit) equal an uninterrupted run's. Then a
 * tmpfs too small for a checkpoint as the run directory, and a read-only
 * run directory (both in a user and mount namespace, `unshare -rm`; skipped
 * with a message where that is not allowed): each ends with a clear error
 * (exit status below 128, the cause named) and no half-written checkpoint,
 * and the read-only run resumes once writable again. */
#define _GNU_SOURCE /* memmem */
#include "core/fileio.h"
#include "core/rng.h"
#include "test_support.h"
#include "train/checkpoint.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEPS 12

typedef struct {
    char *dir, *data;
} Env;

static void env_open(Env *e) {
    e->dir = ts_tmpdir();
    e->data = ow_path_join(e->dir, "data.bin");
    ts_write_random_tokens(e->data, 420, 97, 11);
}

static void env_close(Env *e) {
    ts_rmtree(e->dir);
    free(e->dir);
    free(e->data);
}

/* The shell command of a fresh run into run ("exec": a spawned one's pid is owlore's). */
static void train_cmd(const Env *e, const char *run, char *cmd, size_t cap) {
    char *model = ts_fixture_path("trajectory/model");
    snprintf(cmd, cap,
             "exec %s train --model '%s' --data '%s' --out '%s' --steps %d --save-every 2 --keep 2 --device cpu "
             "--threads 1 --batch-size 2 --block-size 16 --gamma 2 --interval 2 --rank 4 --update-gap 2 "
             "--projector randomized --sampling uniform --val-split 0.1 --eval-every 5",
             ts_owlore_binary(), model, e->data, run, STEPS);
    free(model);
}

static void resume_cmd(const char *run, char *cmd, size_t cap) {
    snprintf(cmd, cap, "exec %s train --resume '%s'", ts_owlore_binary(), run);
}

/* Every checkpoint opens and verifies, config.json parses, and nobody holds the lock. */
static void expect_whole(const char *run) {
    char **names;
    int n;
    OwError err;
    cr_assert_eq(ckpt_list(run, &names, &n, &err), 0, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        char *cd = ow_path_join(run, "checkpoints"), *d = ow_path_join(cd, names[i]);
        Checkpoint ck;
        cr_assert_eq(ckpt_open(d, &ck, &err), 0, "a torn checkpoint after a kill: %s", err.msg);
        ckpt_close(&ck);
        free(d);
        free(cd);
    }
    ckpt_names_free(names, n);
    char *cp = ow_path_join(run, "config.json"), *text;
    size_t len;
    if (ow_path_exists(cp)) {
        cr_assert_eq(ow_read_file(cp, &text, &len, &err), 0, "%s", err.msg);
        cJSON *j = cJSON_Parse(text);
        cr_assert(j != NULL, "config.json is torn:\n%s", text);
        cJSON_Delete(j);
        free(text);
    }
    free(cp);
    char *lp = ow_path_join(run, ".lock");
    int fd = open(lp, O_RDONLY);
    if (fd >= 0) {
        cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0, "the lock of a killed run is still held");
        close(fd);
    }
    free(lp);
}

/* "step loss" of every training record, as printed (so equal strings are equal bits). */
static char *losses(const char *run) {
    char *p = ow_path_join(run, "metrics.jsonl"), *text;
    size_t len;
    OwError err;
    cr_assert_eq(ow_read_file(p, &text, &len, &err), 0, "%s", err.msg);
    free(p);
    size_t cap = 64 * STEPS + 64, n = 0;
    char *out = calloc(1, cap), *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        cr_assert(o != NULL, "%s: a torn metrics line: %s", run, line);
        const cJSON *s = cJSON_GetObjectItem(o, "step"), *l = cJSON_GetObjectItem(o, "loss");
        if (l) n += (size_t)snprintf(out + n, cap - n, "%g %.17g\n", s->valuedouble, l->valuedouble);
        cJSON_Delete(o);
    }
    free(text);
    return out;
}

static int finished(pid_t pid, int *status) { return waitpid(pid, status, WNOHANG) == pid; }

Test(torture, sigkills_and_a_second_writer_then_resume_is_bit_exact, .timeout = 300) {
    Env e;
    env_open(&e);
    char *ref = ow_path_join(e.dir, "ref"), *run = ow_path_join(e.dir, "run"), *log = ow_path_join(e.dir, "log");
    char cmd[8192], rcmd[8192], *out;
    train_cmd(&e, ref, cmd, sizeof cmd);
    cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
    free(out);
    char *want = losses(ref);
    train_cmd(&e, run, cmd, sizeof cmd);
    resume_cmd(run, rcmd, sizeof rcmd);
    Rng r;
    rng_init(&r, 16, 3);
    int kills = 0, kills_in_save = 0, refused = 0, done = 0;
    for (int attempt = 0; attempt < 40 && !done; attempt++) {
        char *cfg = ow_path_join(run, "config.json");
        int fresh = !ow_path_exists(cfg); /* nothing to resume yet */
        free(cfg);
        int mode = kills >= 6 ? -1 : attempt % 2; /* 0: a random moment; 1: during a save; -1: to the end */
        pid_t pid = ts_spawn(fresh ? cmd : rcmd, log, mode >= 0 ? "150" : NULL);
        int delay = 100 + (int)rng_below(&r, 900), waited = 0, status = 0, second = 0;
        for (;;) {
            if (finished(pid, &status)) break;
            if (!second && waited >= 300 && ow_path_exists(run)) {
                /* a second writer while the first holds the directory */
                char *o2;
                int rc2 = ts_run(rcmd, &o2);
                int still = kill(pid, 0) == 0 && waitpid(pid, &status, WNOHANG) == 0;
                if (still) {
                    cr_assert(rc2 != 0 && rc2 < 128 && strstr(o2, "is locked by process"),
                              "a second writer must fail naming the holder (rc %d):\n%s", rc2, o2);
                    refused++;
                }
                free(o2);
                second = 1;
                if (!still) break; /* the first ended meanwhile (status collected) */
            }
            if ((mode == 0 && waited >= delay) || (mode == 1 && ts_save_in_progress(run))) {
                kill(pid, SIGKILL);
                cr_assert_eq(waitpid(pid, &status, 0), pid);
                break;
            }
            ts_sleep_ms(10);
            waited += 10;
        }
        if (WIFSIGNALED(status)) {
            cr_assert_eq(WTERMSIG(status), SIGKILL, "died by signal %d", WTERMSIG(status));
            kills++;
            kills_in_save += mode == 1;
            expect_whole(run);
            continue;
        }
        char *text = NULL;
        size_t len;
        OwError err;
        if (ow_read_file(log, &text, &len, &err) != 0) text = strdup("");
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit %d:\n%s", status, text);
        free(text);
        done = 1;
    }
    cr_assert(done, "the run did not finish");
    cr_log_info("%d kills (%d during a save), %d second writers refused", kills, kills_in_save, refused);
    cr_assert_geq(kills, 4);
    cr_assert_geq(kills_in_save, 1, "some kills land during a save");
    cr_assert_geq(refused, 2, "second writers met a running first one");
    char *got = losses(run);
    cr_assert_str_eq(got, want, "the resumed run's losses differ from the uninterrupted run's");
    free(got);
    free(want);
    free(log);
    free(ref);
    free(run);
    env_close(&e);
}

/* Runs script in a user and mount namespace; skips the test when that is not allowed here. */
static int in_namespace(const char *script, char **out) {
    if (system("unshare -rm true > /dev/null 2>&1") != 0)
        cr_skip_test("unshare -rm is not allowed here: no private mounts for the tmpfs and read-only cases");
    char *path = NULL;
    char *dir = ts_tmpdir();
    path = ow_path_join(dir, "script.sh");
    ts_write_file(path, script, strlen(script));
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "unshare -rm sh -e '%s'", path);
    int rc = ts_run(cmd, out);
    ts_rmtree(dir);
    free(dir);
    free(path);
    return rc;
}

Test(torture, tiny_tmpfs_run_directory_ends_with_a_clear_error, .timeout = 300) {
    Env e;
    env_open(&e);
    char *mnt = ow_path_join(e.dir, "mnt"), *run = ow_path_join(mnt, "run"), cmd[8192], rcmd[8192], script[20000];
    cr_assert_eq(mkdir(mnt, 0755), 0);
    train_cmd(&e, run, cmd, sizeof cmd);
    resume_cmd(run, rcmd, sizeof rcmd);
    snprintf(script, sizeof script,
             "mount -t tmpfs -o size=64k none '%s'\n"
             "set +e\n"
             "(%s); echo \"RC1=$?\"\n"
             "ls '%s/checkpoints' 2>/dev/null | sed 's/^/CKPT /'\n"
             "(%s); echo \"RC2=$?\"\n"
             "ls '%s/checkpoints' 2>/dev/null | sed 's/^/CKPT /'\n",
             mnt, cmd, run, rcmd, run);
    char *out;
    in_namespace(script, &out);
    cr_assert(strstr(out, "RC1=") && strstr(out, "RC2="), "%s", out);
    int rc1 = atoi(strstr(out, "RC1=") + 4), rc2 = atoi(strstr(out, "RC2=") + 4);
    cr_assert(rc1 != 0 && rc1 < 128, "a full disk ends the run with an error, not a crash (rc %d):\n%s", rc1, out);
    cr_assert(strstr(out, "No space left on device") != NULL, "names the cause:\n%s", out);
    cr_assert(rc2 < 128, "the resume ends cleanly (rc %d):\n%s", rc2, out);
    for (const char *l = strstr(out, "CKPT "); l; l = strstr(l + 1, "CKPT ")) {
        const char *end = strchr(l, '\n');
        cr_assert(!memmem(l, end ? (size_t)(end - l) : strlen(l), ".", 1), "a half-written checkpoint is left:\n%s",
                  out);
    }
    free(out);
    free(mnt);
    free(run);
    env_close(&e);
}

Test(torture, read_only_run_directory_refused_then_resumes, .timeout = 300) {
    Env e;
    env_open(&e);
    char *run = ow_path_join(e.dir, "run"), cmd[8192], rcmd[8192], script[20000], *out;
    train_cmd(&e, run, cmd, sizeof cmd);
    /* a run stopped after its first checkpoint */
    char *log = ow_path_join(e.dir, "log");
    pid_t pid = ts_spawn(cmd, log, "30");
    char *ck = ow_path_join(run, "checkpoints/step-000002");
    for (int i = 0; i < 6000 && !ow_path_exists(ck); i++) ts_sleep_ms(5);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(ow_path_exists(ck), "the first checkpoint was not written");
    resume_cmd(run, rcmd, sizeof rcmd);
    snprintf(script, sizeof script,
             "mount --bind '%s' '%s'\nmount -o remount,ro,bind '%s'\n"
             "set +e\n"
             "(%s); echo \"RC1=$?\"\n"
             "%s report '%s'; echo \"RC2=$?\"\n"
             "%s export '%s' --out '%s/exp'; echo \"RC3=$?\"\n",
             run, run, run, rcmd, ts_owlore_binary(), run, ts_owlore_binary(), run, e.dir);
    in_namespace(script, &out);
    cr_assert(strstr(out, "RC1=") && strstr(out, "RC2=") && strstr(out, "RC3="), "%s", out);
    int rc1 = atoi(strstr(out, "RC1=") + 4), rc2 = atoi(strstr(out, "RC2=") + 4), rc3 = atoi(strstr(out, "RC3=") + 4);
    cr_assert(rc1 != 0 && rc1 < 128 && strstr(out, "Read-only file system"),
              "resume refuses a read-only directory naming why (rc %d):\n%s", rc1, out);
    cr_assert(rc2 != 0 && rc2 < 128, "report cannot write its page (rc %d):\n%s", rc2, out);
    cr_assert_eq(rc3, 0, "export reads a read-only run:\n%s", out);
    free(out);
    expect_whole(run);
    cr_assert_eq(ts_run(rcmd, &out), 0, "once writable, the run resumes:\n%s", out);
    free(out);
    free(ck);
    free(log);
    free(run);
    env_close(&e);
}

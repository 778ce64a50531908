// ctest-labels: cpu
/* test_run_files.c: the files of a run when things go wrong, through the
 * owlore binary: a write to metrics.jsonl that fails (a real file size limit,
 * RLIMIT_FSIZE with SIGXFSZ ignored, in a forked child) stops the run with
 * the file and the errno text named and no torn record, and the run resumes
 * to the uninterrupted losses; resume refuses a deleted or edited
 * metrics.jsonl with a clear message; SIGTERM during long setup work (a
 * randomized projector with a million subspace iterations) ends the process
 * within two seconds and leaves nothing; export removes the temporary
 * directories of killed exports and names its own flag in hints; report
 * counts lines that are not metric records and names the first. */
#define _GNU_SOURCE /* asprintf */
#include "core/fileio.h"
#include "test_support.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEPS 12

/* A test's temporary directory, its run directory and the run's metrics.jsonl. */
typedef struct {
    char *dir, *run, *met;
} Case;

static void case_open(Case *c) {
    c->dir = ts_tmpdir();
    c->run = ow_path_join(c->dir, "run");
    c->met = ow_path_join(c->run, "metrics.jsonl");
}

static void case_close(Case *c) {
    ts_rmtree(c->dir);
    free(c->dir);
    free(c->run);
    free(c->met);
}

/* Runs the command that fmt makes; its output in *out, the exit status returned. */
static int run_fmt(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_fmt(char **out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    cr_assert(n > 0);
    int rc = ts_run(cmd, out);
    free(cmd);
    return rc;
}

/* A short GaLore run on the 2-block fixture model with synthetic tokens: deterministic, well under a second. */
static char *train_cmd(const char *run, int steps, const char *extra) {
    char *model = ts_fixture_path("models/mha_untied"), *cmd = NULL;
    if (asprintf(&cmd,
                 "%s train --model %s --data synthetic --out %s --device cpu --threads 1 --batch-size 2 "
                 "--block-size 16 --steps %d --method galore --rank 4 --save-every 2 --keep 10 %s",
                 ts_owlore_binary(), model, run, steps, extra) < 0)
        cr_assert_fail("asprintf");
    free(model);
    return cmd;
}

static char *resume_cmd(const char *run, const char *extra) {
    char *cmd = NULL;
    if (asprintf(&cmd, "%s train --resume %s --device cpu --threads 1 %s", ts_owlore_binary(), run, extra) < 0)
        cr_assert_fail("asprintf");
    return cmd;
}

static void run_ok(char *cmd) {
    char *out;
    int rc = ts_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s\n%s", cmd, out);
    free(out);
    free(cmd);
}

/* Runs `sh -c cmd` in a child whose files may not grow past fsize bytes (SIGXFSZ ignored, so a write past
 * the limit fails with EFBIG as on a full disk); returns the exit status, the output in *out. */
static int run_with_file_limit(const char *cmd, rlim_t fsize, const char *log, char **out) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {fsize, fsize};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(125);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    size_t len;
    OwError err;
    cr_assert_eq(ow_read_file(log, out, &len, &err), 0, "%s", err.msg);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The byte just past the record of step `step` in metrics.jsonl (0 when absent). */
static long end_of_step(const char *metrics, int step) {
    char *text = ts_read_text(metrics);
    long end = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        if (cJSON_GetObjectItem(o, "loss") && cJSON_GetObjectItem(o, "step")->valueint == step)
            end = (long)(nl + 1 - text);
        cJSON_Delete(o);
    }
    free(text);
    return end;
}

/* case_open, then a finished run of `steps` steps (checkpoints every 2). */
static void case_train(Case *c, int steps) {
    case_open(c);
    run_ok(train_cmd(c->run, steps, ""));
}

static void remove_checkpoints_after(const char *run, int step) {
    for (int s = step + 2; s <= STEPS; s += 2) {
        char name[64];
        snprintf(name, sizeof name, "checkpoints/step-%06d", s);
        char *d = ow_path_join(run, name);
        ts_rmtree(d);
        free(d);
    }
}

Test(run_files, metrics_write_failure_stops_the_run_and_resume_repairs_it) {
    Case c;
    case_train(&c, STEPS);
    char *log = ow_path_join(c.dir, "log");
    double want[STEPS];
    ts_read_metric(c.run, "loss", want, STEPS);
    /* back to the checkpoint of step 6; the resumed session may write step 7's record but not step 8's */
    remove_checkpoints_after(c.run, 6);
    long limit = end_of_step(c.met, 7) + 100;
    cr_assert_gt(limit, 100);
    char *cmd = resume_cmd(c.run, "--save-every -1"), *out;
    int rc = run_with_file_limit(cmd, (rlim_t)limit, log, &out);
    free(cmd);
    cr_assert(rc != 0 && rc < 128, "a failed metrics write stops the run with an error (status %d):\n%s", rc, out);
    cr_assert(strstr(out, "metrics.jsonl: write failed: File too large") != NULL, "names the file and errno:\n%s", out);
    cr_assert(strstr(out, "the run stopped") != NULL, "%s", out);
    /* no torn record: the file ends on a complete line, after step 7 */
    char *text = ts_read_text(c.met);
    size_t n = strlen(text);
    cr_assert(n > 0 && text[n - 1] == '\n', "metrics.jsonl ends with a complete record:\n%s", text);
    free(text);
    cr_assert_eq(end_of_step(c.met, 8), 0, "the run stopped at the failed step");
    cr_assert_gt(end_of_step(c.met, 7), 0);
    /* a torn record after the checkpoint's part (as a kill mid-write leaves) is cut by the resume */
    FILE *f = fopen(c.met, "ab");
    fputs("{\"step\":8,\"lo", f);
    fclose(f);
    run_ok(resume_cmd(c.run, ""));
    double got[STEPS];
    ts_read_metric(c.run, "loss", got, STEPS);
    for (int i = 0; i < STEPS; i++)
        cr_assert_eq(got[i], want[i], "step %d: loss %.17g, uninterrupted %.17g", i + 1, got[i], want[i]);
    free(out);
    free(log);
    case_close(&c);
}

/* A run stopped at step 6 (its checkpoint kept), with metrics.jsonl damaged by `damage`; resume must refuse. */
static void damaged_metrics_case(void (*damage)(const char *metrics), const char *needle) {
    Case c;
    case_train(&c, STEPS);
    remove_checkpoints_after(c.run, 6);
    damage(c.met);
    char *cmd = resume_cmd(c.run, ""), *out;
    int rc = ts_run(cmd, &out);
    cr_assert(rc != 0 && rc < 128, "status %d:\n%s", rc, out);
    cr_assert(strstr(out, needle) != NULL, "the message has \"%s\":\n%s", needle, out);
    cr_assert(strstr(out, "-1 bytes") == NULL, "%s", out);
    free(out);
    free(cmd);
    case_close(&c);
}

static void delete_file(const char *metrics) { cr_assert_eq(unlink(metrics), 0); }

/* The newline that ends step 6's record becomes a letter: the checkpoint's length ends inside a record. */
static void join_records(const char *metrics) {
    long end = end_of_step(metrics, 6);
    FILE *f = fopen(metrics, "r+b");
    fseek(f, end - 1, SEEK_SET);
    fputc('x', f);
    fclose(f);
}

Test(run_files, resume_names_a_deleted_metrics_file) {
    damaged_metrics_case(delete_file, "metrics.jsonl: No such file or directory, but the checkpoint recorded");
}

Test(run_files, resume_refuses_metrics_changed_inside_the_checkpoints_part) {
    damaged_metrics_case(join_records, "does not end a complete record");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

Test(run_files, sigterm_during_long_setup_work_stops_within_two_seconds) {
    Case c;
    case_open(&c);
    char *log = ow_path_join(c.dir, "log"), *model = ts_fixture_path("models/mha_untied");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        /* a million subspace iterations make the first projector refresh take hours */
        execl(ts_owlore_binary(), "owlore", "train", "--model", model, "--data", "synthetic", "--out", c.run,
              "--device", "cpu", "--threads", "1", "--batch-size", "2", "--block-size", "16", "--steps", "12",
              "--method", "galore", "--rank", "4", "--projector", "randomized", "--rf-oversample", "2", "--rf-iters",
              "1000000", (char *)NULL);
        _exit(127);
    }
    usleep(1500 * 1000);
    double t0 = now_s();
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int status = 0;
    pid_t got = 0;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && now_s() - t0 < 10) usleep(10 * 1000);
    double waited = now_s() - t0;
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    char *out = ts_read_text(log);
    cr_assert_lt(waited, 2.0, "the process ended %.1f s after SIGTERM:\n%s", waited, out);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM, "exit status 143 (status %d):\n%s", status,
              out);
    cr_assert(strstr(out, "interrupted by SIGTERM before the first step finished") != NULL, "%s", out);
    cr_assert(strstr(out, "nothing was saved") != NULL, "%s", out);
    cr_assert(!ow_path_exists(c.run), "the run directory it made is gone:\n%s", out);
    free(out);
    free(model);
    free(log);
    case_close(&c);
}

Test(run_files, export_removes_temporaries_of_killed_exports) {
    Case c;
    case_train(&c, 2);
    char *hf = ow_path_join(c.dir, "hf");
    /* a process that is gone, and one that is alive (this test) */
    pid_t dead = fork();
    cr_assert(dead >= 0);
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char stale[4096], live[4096];
    snprintf(stale, sizeof stale, "%s.tmp-%ld", hf, (long)dead);
    snprintf(live, sizeof live, "%s.tmp-%ld", hf, (long)getpid());
    OwError err;
    cr_assert_eq(ow_mkdir_p(stale, &err), 0);
    cr_assert_eq(ow_mkdir_p(live, &err), 0);
    char *junk = ow_path_join(stale, "model.safetensors"), *out;
    ts_write_file(junk, "partial", 7);
    free(junk);
    cr_assert_eq(run_fmt(&out, "%s export %s --out %s", ts_owlore_binary(), c.run, hf), 0, "%s", out);
    cr_assert(!ow_path_exists(stale), "the killed export's directory is removed");
    cr_assert(ow_path_exists(live), "a live export's directory stays");
    free(out);
    free(hf);
    case_close(&c);
}

Test(run_files, export_and_eval_hints_name_their_checkpoint_flag) {
    Case c;
    case_train(&c, 4);
    char *owt = ow_path_join(c.run, "checkpoints/step-000004/tensors.owt");
    ts_write_file(owt, "damaged", 7);
    free(owt);
    for (int k = 0; k < 2; k++) {
        char *out;
        int rc = k == 0 ? run_fmt(&out, "%s export %s --out %s/hf", ts_owlore_binary(), c.run, c.dir)
                        : run_fmt(&out, "%s eval --model %s --data synthetic --device cpu", ts_owlore_binary(), c.run);
        cr_assert(rc != 0 && rc < 128, "%s", out);
        cr_assert(strstr(out, "--checkpoint step-000002") != NULL, "the hint names --checkpoint:\n%s", out);
        cr_assert(strstr(out, "--resume-fallback") == NULL, "no flag the command does not take:\n%s", out);
        free(out);
    }
    case_close(&c);
}

Test(run_files, report_counts_lines_that_are_not_records) {
    Case c;
    case_train(&c, 2);
    FILE *f = fopen(c.met, "ab");
    fputs("garbage\n{\"step\": \"three\", \"loss\": 1}\n{\"note\": 1}\n", f);
    fclose(f);
    char *out;
    cr_assert_eq(run_fmt(&out, "%s report %s", ts_owlore_binary(), c.run), 0, "%s", out);
    /* the file had the evaluations before and after two steps: the garbage starts at line 5 */
    cr_assert(strstr(out, "3 line(s) did not parse as metric records and were skipped (the first: line 5)") != NULL,
              "%s", out);
    char *rep = ow_path_join(c.run, "report.html"), *html = ts_read_text(rep);
    cr_assert(strstr(html, "3 line(s) of metrics.jsonl did not parse as metric records") != NULL);
    free(html);
    free(rep);
    free(out);
    case_close(&c);
}

// ctest-labels: cpu
/* test_run_dir.c: the run directory through the owlore binary (run_dir.h,
 * provenance.h): `train --out` refuses the base model's directory, a
 * directory inside it and a non-empty directory that is not a run (unless
 * --overwrite-out); a second writer of a run directory, and a reader while a
 * writer holds it, fail at once naming the writer's pid and write nothing;
 * resume, export and eval refuse a changed base model or data, naming which
 * and its path; a run without recorded digests is accepted with a warning. */
#include "core/fileio.h"
#include "test_support.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *dir, *model, *data;
} Env;

/* A copy of the fixture model (so tests may damage it) and a token file. */
static void env_open(Env *e) {
    e->dir = ts_tmpdir();
    e->model = ow_path_join(e->dir, "m");
    e->data = ow_path_join(e->dir, "data.bin");
    char *fx = ts_fixture_path("trajectory/model"), cmd[4096];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", fx, e->model);
    cr_assert_eq(system(cmd), 0);
    free(fx);
    ts_write_random_tokens(e->data, 420, 97, 7);
}

static void env_close(Env *e) {
    ts_rmtree(e->dir);
    free(e->dir);
    free(e->model);
    free(e->data);
}

/* The shell command of a short run into out (relative to the test's directory when not absolute). */
static void train_cmd(const Env *e, const char *out, const char *extra, char *cmd, size_t cap) {
    snprintf(cmd, cap,
             "cd '%s' && %s train --model '%s' --data '%s' --out '%s' --device cpu --threads 1 --batch-size 2 "
             "--block-size 16 --steps 4 --save-every 2 --gamma 2 --rank 4 --sampling uniform %s",
             e->dir, ts_owlore_binary(), e->model, e->data, out, extra);
}

static int train(const Env *e, const char *out, const char *extra, char **output) {
    char cmd[8192];
    train_cmd(e, out, extra, cmd, sizeof cmd);
    return ts_run(cmd, output);
}

static char *file_text(const char *dir, const char *name) {
    char *p = ow_path_join(dir, name), *text = NULL;
    size_t len;
    OwError err;
    if (ow_read_file(p, &text, &len, &err) != 0) text = NULL;
    free(p);
    return text;
}

static void expect_refused(int rc, const char *out, const char *needle) {
    cr_assert(rc != 0 && rc < 128, "expected a clean refusal (rc %d):\n%s", rc, out);
    cr_assert(strstr(out, needle) != NULL, "the message lacks \"%s\":\n%s", needle, out);
}

Test(run_dir, out_refuses_the_model_directory_and_inside_it) {
    Env e;
    env_open(&e);
    char *before = file_text(e.model, "config.json"), *out;
    int rc = train(&e, "m", "", &out);
    expect_refused(rc, out, "is the base model's directory");
    free(out);
    rc = train(&e, "m/runs/a", "--overwrite-out", &out);
    expect_refused(rc, out, "lies inside it");
    free(out);
    char *after = file_text(e.model, "config.json");
    cr_assert_str_eq(after, before, "the model's config.json is untouched");
    char *sub = ow_path_join(e.model, "runs");
    cr_assert(!ow_path_exists(sub), "nothing is created inside the model");
    free(sub);
    free(before);
    free(after);
    env_close(&e);
}

Test(run_dir, out_refuses_a_foreign_directory_unless_overwrite_out) {
    Env e;
    env_open(&e);
    char *u = ow_path_join(e.dir, "u"), *notes = ow_path_join(u, "config.json");
    cr_assert_eq(mkdir(u, 0755), 0);
    ts_write_file(notes, "{\"mine\": 1}\n", 12);
    char *out;
    int rc = train(&e, "u", "", &out);
    expect_refused(rc, out, "is not empty and is not an owlore run directory");
    cr_assert(strstr(out, "--overwrite-out") != NULL, "hints at the flag:\n%s", out);
    free(out);
    char *kept = file_text(u, "config.json");
    cr_assert_str_eq(kept, "{\"mine\": 1}\n");
    free(kept);
    rc = train(&e, "u", "--overwrite-out", &out);
    cr_assert_eq(rc, 0, "--overwrite-out writes into it:\n%s", out);
    free(out);
    /* an empty directory is fine; a run directory with checkpoints asks for --resume */
    char *empty = ow_path_join(e.dir, "empty");
    cr_assert_eq(mkdir(empty, 0755), 0);
    rc = train(&e, "empty", "", &out);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = train(&e, "empty", "", &out);
    expect_refused(rc, out, "owlore train --resume");
    free(out);
    free(empty);
    free(u);
    free(notes);
    env_close(&e);
}

/* Waits until the writer of run has written its config.json (so it holds the lock). */
static void wait_for_config(const char *run) {
    char *p = ow_path_join(run, "config.json");
    for (int i = 0; i < 600 && !ow_path_exists(p); i++) ts_sleep_ms(50);
    cr_assert(ow_path_exists(p), "the first run did not start");
    free(p);
}

Test(run_dir, second_writer_and_readers_fail_naming_the_holder, .timeout = 300) {
    Env e;
    env_open(&e);
    char *run = ow_path_join(e.dir, "run"), cmd[8192], *out;
    train_cmd(&e, "run", "> first.log 2>&1", cmd, sizeof cmd);
    pid_t pid = ts_spawn(cmd, NULL, "400");
    wait_for_config(run);
    char *cfg = file_text(run, "config.json");
    char holder[64];
    char *lock = file_text(run, ".lock");
    cr_assert(lock != NULL);
    snprintf(holder, sizeof holder, "locked by process %ld", strtol(lock, NULL, 10));
    int rc = train(&e, "run", "--lr 0.5", &out);
    expect_refused(rc, out, holder);
    free(out);
    snprintf(cmd, sizeof cmd, "%s train --resume '%s'", ts_owlore_binary(), run);
    rc = ts_run(cmd, &out);
    expect_refused(rc, out, holder);
    free(out);
    snprintf(cmd, sizeof cmd, "%s report '%s'", ts_owlore_binary(), run);
    rc = ts_run(cmd, &out);
    expect_refused(rc, out, holder);
    free(out);
    snprintf(cmd, sizeof cmd, "%s export '%s' --out '%s/exp'", ts_owlore_binary(), run, e.dir);
    rc = ts_run(cmd, &out);
    expect_refused(rc, out, holder);
    free(out);
    char *cfg2 = file_text(run, "config.json");
    cr_assert_str_eq(cfg2, cfg, "the refused runs wrote nothing");
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    char *log = file_text(e.dir, "first.log");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the first run finishes:\n%s", log);
    free(log);
    /* once it has finished, readers and a resume go ahead */
    rc = ts_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    free(cfg);
    free(cfg2);
    free(lock);
    free(run);
    env_close(&e);
}

Test(run_dir, resume_export_eval_refuse_a_changed_base_or_data, .timeout = 300) {
    Env e;
    env_open(&e);
    char *run = ow_path_join(e.dir, "run"), *out, cmd[8192];
    int rc = train(&e, "run", "", &out);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    char *resume_cmd = NULL;
    snprintf(cmd, sizeof cmd, "%s train --resume '%s'", ts_owlore_binary(), run);
    resume_cmd = strdup(cmd);
    rc = ts_run(resume_cmd, &out);
    cr_assert_eq(rc, 0, "an unchanged run resumes:\n%s", out);
    free(out);
    /* the data changes */
    char *saved = ow_path_join(e.dir, "data.orig");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", e.data, saved);
    cr_assert_eq(system(cmd), 0);
    ts_corrupt_byte(e.data, -1);
    rc = ts_run(resume_cmd, &out);
    expect_refused(rc, out, "the data ");
    cr_assert(strstr(out, e.data) != NULL, "names the data file:\n%s", out);
    free(out);
    cr_assert_eq(rename(saved, e.data), 0);
    /* one tensor of the base changes */
    char *st = ow_path_join(e.model, "model.safetensors");
    ts_corrupt_byte(st, -1);
    rc = ts_run(resume_cmd, &out);
    expect_refused(rc, out, "the base model ");
    cr_assert(strstr(out, e.model) != NULL, "names the base model:\n%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s export '%s' --out '%s/exp'", ts_owlore_binary(), run, e.dir);
    rc = ts_run(cmd, &out);
    expect_refused(rc, out, "the base model ");
    free(out);
    snprintf(cmd, sizeof cmd, "%s eval --model '%s' --data '%s' --device cpu", ts_owlore_binary(), run, e.data);
    rc = ts_run(cmd, &out);
    expect_refused(rc, out, "the base model ");
    free(out);
    ts_corrupt_byte(st, -1);
    /* a run written before digests were recorded: accepted with a warning */
    char *cp = ow_path_join(run, "config.json"), *text = file_text(run, "config.json");
    cJSON *c = cJSON_Parse(text);
    cJSON_DeleteItemFromObject(c, "base_digest");
    cJSON_DeleteItemFromObject(c, "data_digest");
    char *j = cJSON_Print(c);
    ts_write_file(cp, j, strlen(j));
    cJSON_free(j);
    cJSON_Delete(c);
    snprintf(cmd, sizeof cmd, "%s export '%s' --out '%s/exp'", ts_owlore_binary(), run, e.dir);
    rc = ts_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "records no digest") != NULL, "warns:\n%s", out);
    free(out);
    free(text);
    free(cp);
    free(st);
    free(saved);
    free(resume_cmd);
    free(run);
    env_close(&e);
}

// ctest-labels: cpu
/* test_checkpoint.c: checkpoints and exact resume through the owlore binary.
 *
 * A short OwLore run (4-block fixture model, OWL sampling from a ratios file
 * with gamma 2, randomized projector refreshed every 2 steps, parked
 * optimizer state, shuffled data crossing an epoch, validation every 5
 * steps, a checkpoint every 2 steps) runs once uninterrupted. The same run
 * is then killed with SIGKILL at seeded random moments, several of them
 * while a checkpoint is being written (OWLORE_TEST_SLOW_SAVE_MS stretches
 * the save), and resumed until it finishes: metrics.jsonl (every
 * deterministic field of every line) and the final weights must equal the
 * uninterrupted run's bit for bit. Also: SIGINT saves a checkpoint and says
 * how to resume, a second signal ends the process at once; damaged
 * checkpoints are named and only --resume-fallback goes back to an older
 * one, also for checkpoints edited with valid checksums (metrics_bytes 0,
 * state.json version 2, a tensor dropped from tensors.owt); --resume refuses
 * flags that would change the run, and an edited RUN_DIR/config.json; the
 * tensor pack rejects damaged files. */
#include "core/fileio.h"
#include "core/hash.h"
#include "core/rng.h"
#include "test_support.h"
#include "train/tensor_pack.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEPS 16

typedef struct {
    char *dir, *model, *data, *ratios;
    const char *extra; /* one more flag for the runs (NULL: none) */
} Env;

static void env_open(Env *e) {
    e->extra = NULL;
    e->dir = ts_tmpdir();
    e->model = ts_fixture_path("trajectory/model");
    e->data = ow_path_join(e->dir, "data.bin");
    e->ratios = ow_path_join(e->dir, "ratios.json");
    ts_write_random_tokens(e->data, 420, 97, 7);
    const char *rat = "{\"ratios\": [1.0, 3.0, 0.5, 2.0]}";
    ts_write_file(e->ratios, rat, strlen(rat));
}

static void env_close(Env *e) {
    ts_rmtree(e->dir);
    free(e->dir);
    free(e->model);
    free(e->data);
    free(e->ratios);
}

/* argv of a fresh run into RUN (steps, save_every given). */
static int run_args(const Env *e, const char *run, int steps, int save_every, int keep, char **argv,
                    char store[][600]) {
    char tmp[24][600];
    int n = 0;
#define A(...) snprintf(tmp[n++], 600, __VA_ARGS__)
    A("%s", ts_owlore_binary());
    A("train");
    A("--model=%s", e->model);
    A("--data=%s", e->data);
    A("--out=%s", run);
    A("--ratios=%s", e->ratios);
    A("--steps=%d", steps);
    A("--save-every=%d", save_every);
    A("--keep=%d", keep);
    A("--device=cpu");
    A("--threads=1");
    A("--batch-size=2");
    A("--block-size=16");
    A("--gamma=2");
    A("--interval=2");
    A("--rank=4");
    A("--update-gap=2");
    A("--projector=randomized");
    A("--val-split=0.1");
    A("--eval-every=5");
    A("--log-every=4");
    if (e->extra) A("%s", e->extra);
#undef A
    for (int i = 0; i < n; i++) {
        memcpy(store[i], tmp[i], 600);
        argv[i] = store[i];
    }
    argv[n] = NULL;
    return n;
}

static char *join_cmd(char **argv) {
    size_t cap = 16;
    for (int i = 0; argv[i]; i++) cap += strlen(argv[i]) + 3;
    char *s = calloc(1, cap);
    for (int i = 0; argv[i]; i++) {
        strcat(s, i ? " '" : "'");
        strcat(s, argv[i]);
        strcat(s, "'");
    }
    return s;
}

static pid_t spawn_argv(char **argv, const char *log, const char *slow_ms) {
    char *cmd = join_cmd(argv), *full = malloc(strlen(cmd) + 8);
    sprintf(full, "exec %s", cmd);
    pid_t pid = ts_spawn(full, log, slow_ms);
    free(full);
    free(cmd);
    return pid;
}

static int count_checkpoints(const char *run) {
    char *cd = ow_path_join(run, "checkpoints");
    DIR *d = opendir(cd);
    free(cd);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += strncmp(de->d_name, "step-", 5) == 0 && !strchr(de->d_name, '.');
    closedir(d);
    return n;
}

static char *read_text(const char *path) {
    char *text;
    size_t len;
    OwError err;
    cr_assert_eq(ow_read_file(path, &text, &len, &err), 0, "%s", err.msg);
    return text;
}

/* The deterministic fields of every metrics line, one string per line. */
static int metric_lines(const char *run, char ***out) {
    char *p = ow_path_join(run, "metrics.jsonl");
    char *text = read_text(p);
    free(p);
    static const char *keys[] = {"step", "loss", "lr", "grad_norm", "tokens", "active_blocks", "eval_loss", "eval_ppl"};
    int n = 0, cap = 64;
    char **v = malloc((size_t)cap * sizeof *v);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        cr_assert(o != NULL, "%s: metrics line is not JSON: %s", run, line);
        cJSON *k = cJSON_CreateObject();
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            cJSON *it = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
            if (it) cJSON_AddItemToObject(k, keys[i], cJSON_Duplicate(it, 1));
        }
        if (n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[n++] = cJSON_PrintUnformatted(k);
        cJSON_Delete(k);
        cJSON_Delete(o);
    }
    free(text);
    *out = v;
    return n;
}

static void free_lines(char **v, int n) {
    for (int i = 0; i < n; i++) cJSON_free(v[i]);
    free(v);
}

static void expect_same_run(const char *ref, const char *run) {
    char **a, **b;
    int na = metric_lines(ref, &a), nb = metric_lines(run, &b);
    cr_assert_eq(na, nb, "metrics.jsonl: %d lines uninterrupted, %d resumed", na, nb);
    int losses = 0;
    for (int i = 0; i < na; i++) {
        cr_assert_str_eq(b[i], a[i], "metrics line %d differs:\n  uninterrupted %s\n  resumed       %s", i + 1, a[i],
                         b[i]);
        losses += strstr(a[i], "\"loss\"") != NULL;
    }
    cr_assert_eq(losses, STEPS);
    free_lines(a, na);
    free_lines(b, nb);
    char *ma = ow_path_join(ref, "model/model.safetensors"), *mb = ow_path_join(run, "model/model.safetensors");
    MappedFile fa, fb;
    OwError err;
    cr_assert_eq(ow_map_file(ma, &fa, &err), 0, "%s", err.msg);
    cr_assert_eq(ow_map_file(mb, &fb, &err), 0, "%s", err.msg);
    cr_assert(fa.size == fb.size && memcmp(fa.data, fb.data, fa.size) == 0, "the final weights differ");
    ow_unmap_file(&fa);
    ow_unmap_file(&fb);
    free(ma);
    free(mb);
}

static int resume(const char *run, const char *extra, char **out);

static void reference_run(const Env *e, const char *ref, int keep) {
    char *argv[32], store[32][600];
    run_args(e, ref, STEPS, 2, keep, argv, store);
    char *cmd = join_cmd(argv), *out;
    int rc = ts_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s\n%s", cmd, out);
    free(out);
    free(cmd);
}

Test(checkpoint, kill9_at_random_moments_then_resume_is_bit_exact, .timeout = 600) {
    Env e;
    env_open(&e);
    char *ref = ow_path_join(e.dir, "ref"), *run = ow_path_join(e.dir, "run"), *log = ow_path_join(e.dir, "log.txt");
    reference_run(&e, ref, 2);
    Rng r;
    rng_init(&r, 2024, 99);
    /* Kill modes alternate: a random moment, then while a checkpoint is being written. After 8 kills
     * the run goes to the end. A series that finishes before 8 kills (resumed past its last save) is
     * checked like the final one, and a new series starts. */
    int kills = 0, kills_in_save = 0, resumes = 0, finished = 0, series = 1;
    for (int attempt = 0; !finished; attempt++) {
        cr_assert_lt(attempt, 80, "too many attempts");
        char *argv[32], store[32][600];
        char *cfg = ow_path_join(run, "config.json");
        int fresh = !ow_path_exists(cfg);
        free(cfg);
        if (fresh) {
            ts_rmtree(run);
            run_args(&e, run, STEPS, 2, 2, argv, store);
        } else {
            snprintf(store[0], 600, "%s", ts_owlore_binary());
            snprintf(store[1], 600, "train");
            snprintf(store[2], 600, "--resume=%s", run);
            for (int i = 0; i < 3; i++) argv[i] = store[i];
            argv[3] = NULL;
            resumes++;
        }
        int mode = kills >= 8 ? -1 : attempt % 2;
        int delay = 20 + (int)rng_below(&r, 400), in_save_delay = (int)rng_below(&r, 25);
        pid_t pid = spawn_argv(argv, log, "4");
        int status = 0, waited = 0, killed = 0;
        for (;;) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            cr_assert_neq(w, -1);
            if (w == pid) break;
            int now_saving = mode == 1 && ts_save_in_progress(run);
            if (!killed && ((mode == 0 && waited >= delay) || now_saving)) {
                if (now_saving) ts_sleep_ms(in_save_delay);
                kill(pid, SIGKILL);
                killed = 1;
            }
            ts_sleep_ms(2);
            waited += 2;
            cr_assert_lt(waited, 120000, "the run did not finish");
        }
        if (WIFSIGNALED(status)) {
            cr_assert_eq(WTERMSIG(status), SIGKILL, "died by signal %d", WTERMSIG(status));
            kills++;
            kills_in_save += mode == 1;
            continue;
        }
        char *text = read_text(log);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d; log:\n%s", WEXITSTATUS(status), text);
        free(text);
        expect_same_run(ref, run);
        if (kills >= 8) {
            finished = 1;
        } else {
            ts_rmtree(run);
            series++;
        }
    }
    cr_assert(finished, "the run never finished");
    cr_log_info("%d kills (%d during a save), %d resumes, %d series", kills, kills_in_save, resumes, series);
    cr_assert_geq(kills, 4);
    cr_assert_geq(kills_in_save, 2, "some kills must land during a save");
    cr_assert_geq(resumes, 3);
    cr_assert_leq(count_checkpoints(run), 2, "keep = 2");
    char *rep = ow_path_join(run, "report.html");
    cr_assert(ow_path_exists(rep), "the finished run has its report");
    free(rep);
    free(ref);
    free(run);
    free(log);
    env_close(&e);
}

Test(checkpoint, resume_from_every_checkpoint_is_bit_exact, .timeout = 600) {
    Env e;
    env_open(&e);
    char *ref = ow_path_join(e.dir, "ref"), *run = ow_path_join(e.dir, "run");
    reference_run(&e, ref, 100);
    cr_assert_eq(count_checkpoints(ref), STEPS / 2, "every checkpoint kept");
    int parked = 0;
    for (int k = 2; k < STEPS; k += 2) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && rm -rf '%s/model' '%s/summary.json'", run, ref,
                 run, run, run);
        cr_assert_eq(system(cmd), 0);
        for (int j = k + 2; j <= STEPS; j += 2) {
            snprintf(cmd, sizeof cmd, "%s/checkpoints/step-%06d", run, j);
            ts_rmtree(cmd);
        }
        snprintf(cmd, sizeof cmd, "%s/checkpoints/step-%06d/state.json", run, k);
        char *st = read_text(cmd);
        parked += strstr(st, "\"host\"") != NULL;
        free(st);
        char *out;
        int rc = resume(run, "", &out);
        cr_assert_eq(rc, 0, "resume from step %d:\n%s", k, out);
        free(out);
        expect_same_run(ref, run);
    }
    cr_assert_geq(parked, 3, "checkpoints with optimizer state parked in host memory are exercised");
    free(ref);
    free(run);
    env_close(&e);
}

/* RUN as REF was at its step-8 checkpoint, resumed with the flags `mode` to the end: equal to REF. Returns
 * the resume's output. */
static char *resume_from_step_8(const char *ref, const char *run, const char *mode) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && rm -rf '%s/model' '%s/summary.json'", run, ref, run,
             run, run);
    cr_assert_eq(system(cmd), 0);
    for (int j = 10; j <= STEPS; j += 2) {
        snprintf(cmd, sizeof cmd, "%s/checkpoints/step-%06d", run, j);
        ts_rmtree(cmd);
    }
    char *out;
    int rc = resume(run, mode, &out);
    cr_assert_eq(rc, 0, "resume from step 8 with %s:\n%s", mode, out);
    expect_same_run(ref, run);
    return out;
}

/* The embedding's and lm_head's moments in host memory (--offload-optimizer on, the GPU
 * default; on the CPU the same arithmetic through adam_update_host) are saved and restored
 * exactly, and a resume may move them between host and device: resumed from a middle
 * checkpoint with either setting, the run equals the uninterrupted one. */
Test(checkpoint, resume_with_host_optimizer_state_is_bit_exact, .timeout = 600) {
    Env e;
    env_open(&e);
    e.extra = "--offload-optimizer=on";
    char *ref = ow_path_join(e.dir, "ref"), *run = ow_path_join(e.dir, "run");
    reference_run(&e, ref, 100);
    const char *modes[] = {"--offload-optimizer on", "--offload-optimizer off"};
    for (int k = 0; k < 2; k++) free(resume_from_step_8(ref, run, modes[k]));
    free(ref);
    free(run);
    env_close(&e);
}

/* Frozen blocks streamed from their homes (--offload host, the store file of --offload nvme) are
 * saved and resumed exactly, and a checkpoint does not depend on where the blocks lived: a run
 * streamed from host memory, resumed from a middle checkpoint with its blocks in host memory, in a
 * store file or all on the device, equals the uninterrupted run. */
Test(checkpoint, resume_with_streamed_blocks_is_bit_exact, .timeout = 600) {
    Env e;
    env_open(&e);
    e.extra = "--offload=host";
    char *ref = ow_path_join(e.dir, "ref"), *run = ow_path_join(e.dir, "run"), *nv = ow_path_join(e.dir, "nv");
    cr_assert_eq(ow_mkdir_p(nv, NULL), 0);
    reference_run(&e, ref, 100);
    char nvme[700];
    snprintf(nvme, sizeof nvme, "--offload nvme --nvme-dir '%s'", nv);
    const char *modes[] = {"--offload host", nvme, "--offload none"};
    for (int k = 0; k < 3; k++) {
        char *out = resume_from_step_8(ref, run, modes[k]);
        cr_assert(k == 2 || strstr(out, "streamed") != NULL, "the blocks streamed with %s:\n%s", modes[k], out);
        free(out);
    }
    free(nv);
    free(ref);
    free(run);
    env_close(&e);
}

/* Starts a long run, waits for training to start, sends `sig` (again after gap_ms when gap_ms >= 0). */
static int interrupt_run(const Env *e, const char *run, int sig, int gap_ms, const char *slow, char **log_text) {
    char *argv[32], store[32][600];
    run_args(e, run, 400, 0, 2, argv, store);
    char *log = ow_path_join(e->dir, "int.log");
    pid_t pid = spawn_argv(argv, log, slow);
    char *met = ow_path_join(run, "metrics.jsonl");
    int waited = 0, status = 0;
    for (;;) {
        struct stat st;
        if (stat(met, &st) == 0 && st.st_size > 200) break; /* a few steps done: the handlers are in place */
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "the run ended before the signal");
        ts_sleep_ms(1);
        cr_assert_lt(waited++, 60000);
    }
    kill(pid, sig);
    if (gap_ms >= 0) {
        ts_sleep_ms(gap_ms);
        kill(pid, sig);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    *log_text = read_text(log);
    free(log);
    free(met);
    return status;
}

Test(checkpoint, sigint_saves_and_says_how_to_resume, .timeout = 300) {
    Env e;
    env_open(&e);
    char *run = ow_path_join(e.dir, "run");
    char *text;
    int status = interrupt_run(&e, run, SIGINT, -1, NULL, &text);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "exit status 130 after SIGINT; log:\n%s", text);
    cr_assert(strstr(text, "interrupted by SIGINT after step") != NULL, "%s", text);
    cr_assert(strstr(text, "resume with: owlore train --resume") != NULL, "%s", text);
    cr_assert_eq(count_checkpoints(run), 1, "%s", text);
    char *rep = ow_path_join(run, "report.html");
    cr_assert(ow_path_exists(rep), "an interrupted run writes its report");
    free(rep);
    /* the checkpoint's step is the last step in metrics.jsonl */
    char **lines;
    int n = metric_lines(run, &lines), last = 0;
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_Parse(lines[i]);
        if (cJSON_GetObjectItem(o, "loss")) last = (int)cJSON_GetObjectItem(o, "step")->valuedouble;
        cJSON_Delete(o);
    }
    free_lines(lines, n);
    char name[64];
    snprintf(name, sizeof name, "checkpoints/step-%06d/manifest.json", last);
    char *man = ow_path_join(run, name);
    cr_assert(ow_path_exists(man), "the checkpoint of step %d exists; log:\n%s", last, text);
    cr_assert_lt(last, 400);
    free(man);
    free(text);
    /* a fresh run into the same directory is refused */
    char *argv[32], store[32][600];
    run_args(&e, run, 400, 0, 2, argv, store);
    char *cmd = join_cmd(argv), *out;
    cr_assert_neq(ts_run(cmd, &out), 0);
    cr_assert(strstr(out, "already holds checkpoints") != NULL, "%s", out);
    free(out);
    free(cmd);
    free(run);
    env_close(&e);
}

Test(checkpoint, second_signal_exits_at_once, .timeout = 300) {
    Env e;
    env_open(&e);
    char *run = ow_path_join(e.dir, "run");
    char *text;
    /* the save after the first SIGTERM is slow, the second SIGTERM lands during it */
    int status = interrupt_run(&e, run, SIGTERM, 150, "200", &text);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
              "the second SIGTERM ends the process; status %d, log:\n%s", status, text);
    free(text);
    free(run);
    env_close(&e);
}

/* timeout(1) sends its signal to the process and then to its process group: the run sees it twice within
 * microseconds. That is one request: the step finishes and the checkpoint is saved. */
Test(checkpoint, a_signal_delivered_twice_at_once_is_one_request, .timeout = 300) {
    Env e;
    env_open(&e);
    char *run = ow_path_join(e.dir, "run");
    char *text;
    int status = interrupt_run(&e, run, SIGINT, 5, NULL, &text);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "exit status 130, not killed; status %d, log:\n%s",
              status, text);
    cr_assert(strstr(text, "interrupted by SIGINT after step") != NULL, "%s", text);
    cr_assert_eq(count_checkpoints(run), 1, "%s", text);
    free(text);
    free(run);
    env_close(&e);
}

static int resume(const char *run, const char *extra, char **out) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s train --resume %s %s", ts_owlore_binary(), run, extra);
    return ts_run(cmd, out);
}

static void damaged_case(void (*damage)(const char *ckdir), const char *needle) {
    Env e;
    env_open(&e);
    char *ref = ow_path_join(e.dir, "ref"), *run = ow_path_join(e.dir, "run");
    reference_run(&e, ref, 3);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", ref, run);
    cr_assert_eq(system(cmd), 0);
    char *ck = ow_path_join(run, "checkpoints/step-000016");
    damage(ck);
    char *out;
    int rc = resume(run, "", &out);
    cr_assert_neq(rc, 0, "a damaged checkpoint is refused:\n%s", out);
    cr_assert_lt(rc, 128, "%s", out);
    cr_assert(strstr(out, "step-000016") != NULL && strstr(out, needle) != NULL, "names the checkpoint and \"%s\":\n%s",
              needle, out);
    cr_assert(strstr(out, "--resume-fallback") != NULL, "hints at the fallback:\n%s", out);
    free(out);
    rc = resume(run, "--resume-fallback", &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "previous good checkpoint step-000014") != NULL, "says which one it used:\n%s", out);
    free(out);
    expect_same_run(ref, run);
    free(ck);
    free(ref);
    free(run);
    env_close(&e);
}

static void flip_tensor_byte(const char *ck) {
    char *p = ow_path_join(ck, "tensors.owt");
    ts_corrupt_byte(p, 1000);
    free(p);
}
static void truncate_state(const char *ck) {
    char *p = ow_path_join(ck, "state.json");
    cr_assert_eq(truncate(p, 100), 0);
    free(p);
}
static void drop_manifest(const char *ck) {
    char *p = ow_path_join(ck, "manifest.json");
    cr_assert_eq(unlink(p), 0);
    free(p);
}

Test(checkpoint, corrupted_tensors_named_and_fallback_only_when_asked, .timeout = 300) {
    damaged_case(flip_tensor_byte, "tensors.owt: checksum mismatch");
}
Test(checkpoint, truncated_state_named, .timeout = 300) { damaged_case(truncate_state, "state.json has 100 bytes"); }
Test(checkpoint, missing_manifest_named, .timeout = 300) { damaged_case(drop_manifest, "manifest.json is missing"); }

/* Edits with valid checksums: the file is rewritten and its manifest entry updated, so only the meaning is wrong. */
static void reseal(const char *ck, const char *file) {
    char *mp = ow_path_join(ck, "manifest.json"), *fp = ow_path_join(ck, file);
    char *text = read_text(mp);
    cJSON *man = cJSON_Parse(text);
    free(text);
    MappedFile mf;
    OwError err;
    cr_assert_eq(ow_map_file(fp, &mf, &err), 0, "%s", err.msg);
    char hx[17];
    snprintf(hx, sizeof hx, "%016llx", (unsigned long long)xxh64(mf.data, mf.size, 0));
    cJSON *f;
    int found = 0;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(man, "files")) {
        if (strcmp(cJSON_GetObjectItem(f, "name")->valuestring, file) != 0) continue;
        cJSON_ReplaceItemInObject(f, "bytes", cJSON_CreateNumber((double)mf.size));
        cJSON_ReplaceItemInObject(f, "xxh64", cJSON_CreateString(hx));
        found = 1;
    }
    cr_assert(found, "%s is in the manifest", file);
    ow_unmap_file(&mf);
    char *out = cJSON_Print(man);
    ts_write_file(mp, out, strlen(out));
    cJSON_free(out);
    cJSON_Delete(man);
    free(mp);
    free(fp);
}

static void edit_state(const char *ck, const char *key, double value) {
    char *sp = ow_path_join(ck, "state.json");
    char *text = read_text(sp);
    cJSON *st = cJSON_Parse(text);
    free(text);
    cr_assert(cJSON_GetObjectItem(st, key) != NULL, "state.json has %s", key);
    cJSON_ReplaceItemInObject(st, key, cJSON_CreateNumber(value));
    char *out = cJSON_Print(st);
    ts_write_file(sp, out, strlen(out));
    cJSON_free(out);
    cJSON_Delete(st);
    free(sp);
    reseal(ck, "state.json");
}

static void zero_metrics_bytes(const char *ck) { edit_state(ck, "metrics_bytes", 0); }
static void state_version_2(const char *ck) { edit_state(ck, "version", 2); }

/* tensors.owt again without the first changed weight it holds (the base's would be used in its place). */
static void drop_weight_tensor(const char *ck) {
    char *tp = ow_path_join(ck, "tensors.owt"), *np = ow_path_join(ck, "tensors.new");
    TensorPack pk;
    PackWriter w;
    OwError err;
    cr_assert_eq(pack_open(tp, &pk, &err), 0, "%s", err.msg);
    cr_assert_eq(pack_writer_open(&w, np, 1, &err), 0, "%s", err.msg);
    int dropped = 0;
    for (int i = 0; i < pk.n; i++) {
        const PackEntry *e = &pk.e[i];
        if (!dropped && strncmp(e->name, "weights/", 8) == 0) {
            dropped = 1;
            continue;
        }
        void *buf = malloc(e->nbytes ? e->nbytes : 1);
        cr_assert_eq(pack_read(&pk, e, buf, &err), 0, "%s", err.msg);
        cr_assert_eq(pack_writer_add(&w, e->name, e->dtype, e->ndim, e->shape, buf, &err), 0, "%s", err.msg);
        free(buf);
    }
    cr_assert(dropped);
    uint64_t size, hash;
    cr_assert_eq(pack_writer_commit(&w, &size, &hash, &err), 0, "%s", err.msg);
    pack_close(&pk);
    cr_assert_eq(rename(np, tp), 0);
    reseal(ck, "tensors.owt");
    free(tp);
    free(np);
}

Test(checkpoint, zero_metrics_bytes_refused_and_fallback_keeps_history, .timeout = 300) {
    damaged_case(zero_metrics_bytes, "end with the record of step 0, not 16");
}
Test(checkpoint, state_version_2_refused, .timeout = 300) {
    damaged_case(state_version_2, "state.json: format \"owlore-checkpoint-state\" version 2");
}
Test(checkpoint, missing_weight_tensor_refused, .timeout = 300) { damaged_case(drop_weight_tensor, "is missing"); }

Test(checkpoint, edited_run_config_refused_naming_the_field, .timeout = 300) {
    Env e;
    env_open(&e);
    char *run = ow_path_join(e.dir, "run");
    reference_run(&e, run, 2);
    char *cp = ow_path_join(run, "config.json");
    char *text = read_text(cp);
    cJSON *c = cJSON_Parse(text);
    free(text);
    cJSON_ReplaceItemInObject(c, "lr", cJSON_CreateNumber(0.5));
    char *out = cJSON_Print(c);
    ts_write_file(cp, out, strlen(out));
    cJSON_free(out);
    cJSON_Delete(c);
    int rc = resume(run, "--resume-fallback", &out);
    cr_assert_neq(rc, 0, "an edited lr is refused:\n%s", out);
    cr_assert_lt(rc, 128, "%s", out);
    cr_assert(strstr(out, "config.json: lr is 0.5") != NULL && strstr(out, "step-000016 was saved with") != NULL,
              "names the field and the checkpoint:\n%s", out);
    free(out);
    free(cp);
    free(run);
    env_close(&e);
}

Test(checkpoint, resume_refuses_flags_that_change_the_run, .timeout = 300) {
    Env e;
    env_open(&e);
    char *run = ow_path_join(e.dir, "run");
    char *argv[32], store[32][600];
    run_args(&e, run, 4, 2, 2, argv, store);
    char *cmd = join_cmd(argv), *out;
    cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
    free(out);
    free(cmd);
    int rc = resume(run, "--lr 0.5", &out);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--lr 0.5 would change the run") != NULL, "%s", out);
    free(out);
    rc = resume(run, "--recipe x.json", &out);
    cr_assert_eq(rc, 2, "%s", out);
    free(out);
    rc = resume(run, "--log-every 2 --save-every 1 --keep 3 --gamma 2", &out);
    cr_assert_eq(rc, 0, "harmless flags and unchanged values are accepted:\n%s", out);
    free(out);
    rc = resume("/nonexistent/run", "", &out);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "/nonexistent/run/config.json") != NULL, "%s", out);
    free(out);
    free(run);
    env_close(&e);
}

Test(checkpoint, tensor_pack_round_trip_and_damage) {
    char *dir = ts_tmpdir();
    char *p = ow_path_join(dir, "t.owt");
    OwError err;
    PackWriter w;
    float a[300];
    uint16_t b[7];
    for (int i = 0; i < 300; i++) a[i] = (float)i * 0.25f - 3.0f;
    for (int i = 0; i < 7; i++) b[i] = (uint16_t)(i * 1000);
    cr_assert_eq(pack_writer_open(&w, p, 3, &err), 0, "%s", err.msg);
    int64_t sa[2] = {20, 15}, sb[1] = {7};
    cr_assert_eq(pack_writer_add(&w, "a", OW_F32, 2, sa, a, &err), 0, "%s", err.msg);
    cr_assert_eq(pack_writer_add(&w, "b/x", OW_BF16, 1, sb, b, &err), 0, "%s", err.msg);
    cr_assert_eq(pack_writer_add(&w, "empty", OW_F64, 1, (int64_t[]){0}, NULL, &err), 0, "%s", err.msg);
    uint64_t size, hash;
    cr_assert_eq(pack_writer_commit(&w, &size, &hash, &err), 0, "%s", err.msg);
    MappedFile mf;
    cr_assert_eq(ow_map_file(p, &mf, &err), 0);
    cr_assert_eq(mf.size, size);
    cr_assert_eq(xxh64(mf.data, mf.size, 0), hash, "the writer's checksum is the file's");
    ow_unmap_file(&mf);
    TensorPack tp;
    cr_assert_eq(pack_open(p, &tp, &err), 0, "%s", err.msg);
    cr_assert_eq(tp.n, 3);
    const PackEntry *ea = pack_find(&tp, "a"), *eb = pack_find(&tp, "b/x");
    cr_assert(ea && eb && !pack_find(&tp, "c"));
    cr_assert_eq(ea->shape[1], 15);
    float ra[300];
    uint16_t rb[7];
    cr_assert_eq(pack_read(&tp, ea, ra, &err), 0, "%s", err.msg);
    cr_assert_eq(pack_read(&tp, eb, rb, &err), 0, "%s", err.msg);
    cr_assert_arr_eq(ra, a, sizeof a);
    cr_assert_arr_eq(rb, b, sizeof b);
    /* a damaged frame: its zstd checksum fails on read */
    char *bad = ow_path_join(dir, "bad.owt");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", p, bad);
    cr_assert_eq(system(cmd), 0);
    ts_corrupt_byte(bad, (long)(ea->offset + ea->csize / 2));
    pack_close(&tp);
    cr_assert_eq(pack_open(bad, &tp, &err), 0, "%s", err.msg);
    cr_assert_neq(pack_read(&tp, pack_find(&tp, "a"), ra, &err), 0);
    cr_assert(strstr(err.msg, "tensor a") != NULL, "%s", err.msg);
    pack_close(&tp);
    /* truncated: the end marker is gone */
    cr_assert_eq(truncate(bad, (off_t)size - 5), 0);
    cr_assert_neq(pack_open(bad, &tp, &err), 0);
    cr_assert(strstr(err.msg, "truncated") != NULL, "%s", err.msg);
    /* garbage */
    ts_write_file(bad, "OWTPACK1 not really", 19);
    cr_assert_neq(pack_open(bad, &tp, &err), 0);
    free(bad);
    free(p);
    ts_rmtree(dir);
    free(dir);
}

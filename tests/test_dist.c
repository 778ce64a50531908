// ctest-labels: cpu
/* test_dist.c: data-parallel ranks under mpirun (dist/comm.h, trainer.h) on
 * the CPU backend. Two ranks of batch B against one process of batch 2B (the
 * same global batch): 30 owlore steps with resamples every 5 steps and a
 * projector refresh every 4 of a tensor's steps, validation every 10, on the
 * real TinyStories-656K (tied) and on the untied trajectory fixture (compact
 * embedding gradient: the ranks must register every rank's tokens). With
 * --dp-reduce full the ranks sum G (the single process's semantics); with
 * projected they sum R, the single process's --accum-mode projected. Losses
 * within 1e-6 relative (the sums' order differs, nothing else). Also: a rank
 * killed with SIGKILL ends every rank with a message and the run resumes
 * from rank 0's checkpoint to the uninterrupted run's bits; ranks whose
 * weights differ stop the run (check_every); ranks streaming their blocks
 * from host memory and from store files of their own give the resident
 * ranks' bits. Built only when MPI is
 * (tests/CMakeLists.txt); mpirun comes with scripts/install-deps.sh. */
#define _GNU_SOURCE /* asprintf */
#include "core/fileio.h"
#include "core/json.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The runs' scale: 30 steps of batch 4 per rank (interval 5, refresh every 4); under the CUDA emulator
 * (scripts/cuda_emu/run.sh dist, OWLORE_EMU=1: a step of 8 x 32 tokens takes ~95 s there) 4 steps of one
 * 16-token sequence per rank, with a resample and a refresh all the same. */
typedef struct {
    int steps, batch, block, interval, update_gap;
} DistScale;

static DistScale scale(void) {
    const char *e = getenv("OWLORE_EMU");
    return e && e[0] == '1' ? (DistScale){4, 1, 16, 2, 2} : (DistScale){30, 4, 32, 5, 4};
}

#define STEPS (scale().steps)

/* mpirun as root (CI runs as root), more ranks than cores allowed, no leak reports from MPI's own
 * allocations under AddressSanitizer (the sanitizer pass runs this binary too). */
static const char *mpirun(void) {
    return "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 "
           "mpirun --oversubscribe --bind-to none";
}

/* The flags of every run: the model (TinyStories-656K, or the trajectory fixture on synthetic tokens), on
 * the CPU, or on OWLORE_TEST_DIST_DEVICE (scripts/cuda_emu/run.sh dist: the CUDA backend, emulated, in
 * fp32, the ranks summing over NCCL's emulated stand-in). */
static char *common_flags(int untied, int steps) {
    const char *dev = getenv("OWLORE_TEST_DIST_DEVICE");
    if (!dev || !*dev) dev = "cpu";
    char *model, *data;
    if (untied) {
        model = ts_fixture_path("trajectory/model");
        data = strdup("synthetic");
    } else {
        model = ts_shared_path("data/real/hf/TinyStories-656K");
        data = ts_shared_path("data/real/text/tinystories_train_sample_2MiB.txt");
    }
    char *s = NULL;
    DistScale sc = scale();
    cr_assert(asprintf(&s,
                       "--model %s --data %s --method owlore --steps %d --block-size %d --gamma 1 --interval %d "
                       "--update-gap %d --rank 4 --eval-every 10 --val-split %s --eval-batches 4 --nsamples 4 "
                       "--seqlen 32 --device %s%s --threads 1 --save-model=false --log-every 10 --seed 7%s",
                       model, data, steps, sc.block, sc.interval, sc.update_gap, untied ? "0" : "0.05", dev,
                       strcmp(dev, "cpu") ? " --precision fp32" : "", untied ? " --sampling uniform" : "") > 0);
    free(model);
    free(data);
    return s;
}

/* Runs `owlore train FLAGS --out DIR/NAME EXTRA` with `ranks` processes (0: no mpirun; negative: -ranks started
 * by owlore itself, --ranks); returns its output. */
static char *train(const char *dir, const char *name, int ranks, const char *flags, const char *extra) {
    char *out = ow_path_join(dir, name), *cmd = NULL, *log = NULL;
    char launch[256] = "", own[32] = "";
    if (ranks > 0) snprintf(launch, sizeof launch, "%s -np %d ", mpirun(), ranks);
    if (ranks < 0) {
        snprintf(launch, sizeof launch, "env ASAN_OPTIONS=detect_leaks=0 ");
        snprintf(own, sizeof own, "--ranks %d ", -ranks);
    }
    cr_assert(asprintf(&cmd, "%s%s train %s%s --out %s %s 2>&1", launch, ts_owlore_binary(), own, flags, out, extra) >
              0);
    int rc = ts_run(cmd, &log);
    cr_assert_eq(rc, 0, "%s failed (%d):\n%s", cmd, rc, log ? log : "");
    free(cmd);
    free(out);
    return log;
}

/* Every loss of DIR/A/metrics.jsonl (training and validation, in order) against DIR/B's: the same
 * records, each within tol relative (0: identical). */
static void same_losses(const char *dir, const char *a, const char *b, double tol) {
    char *pa = ow_path_join(dir, a), *pb = ow_path_join(dir, b);
    char *fa = ow_path_join(pa, "metrics.jsonl"), *fb = ow_path_join(pb, "metrics.jsonl");
    char *ta = ts_read_text(fa), *tb = ts_read_text(fb);
    char *sa = NULL, *sb = NULL;
    char *la = strtok_r(ta, "\n", &sa), *lb = strtok_r(tb, "\n", &sb);
    int n = 0;
    for (; la && lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
        cJSON *ja = cJSON_Parse(la), *jb = cJSON_Parse(lb);
        cr_assert(ja && jb);
        static const char *const keys[] = {"loss", "eval_loss"};
        for (int k = 0; k < 2; k++) {
            const cJSON *va = cJSON_GetObjectItemCaseSensitive(ja, keys[k]),
                        *vb = cJSON_GetObjectItemCaseSensitive(jb, keys[k]);
            cr_assert_eq(va != NULL, vb != NULL, "%s and %s: record %d differs in kind", fa, fb, n);
            if (!va) continue;
            double x = va->valuedouble, y = vb->valuedouble, rel = fabs(x - y) / fabs(x);
            cr_assert(tol > 0 ? rel <= tol : x == y, "%s record %d: %s %.17g vs %.17g (relative %.3g, tolerance %g)",
                      keys[k], n, a, x, y, rel, tol);
            n++;
        }
        cJSON_Delete(ja);
        cJSON_Delete(jb);
    }
    cr_assert(la == NULL && lb == NULL, "%s and %s have different numbers of records", fa, fb);
    cr_assert_geq(n, STEPS, "only %d losses compared", n);
    free(ta);
    free(tb);
    free(fa);
    free(fb);
    free(pa);
    free(pb);
}

/* A number of DIR/NAME/summary.json. */
static double summary_number(const char *dir, const char *name, const char *key) {
    char *run = ow_path_join(dir, name), *p = ow_path_join(run, "summary.json");
    cJSON *j = json_parse_file(p, NULL);
    cr_assert(j != NULL, "no %s", p);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsNumber(v), "%s: no number %s", p, key);
    double x = v->valuedouble;
    cJSON_Delete(j);
    free(p);
    free(run);
    return x;
}

static void two_ranks_equal_one_process(int untied) {
    char *dir = ts_tmpdir(), *flags = common_flags(untied, STEPS), one[96], two[96];
    int b = scale().batch;
    snprintf(one, sizeof one, "--batch-size %d", 2 * b);
    snprintf(two, sizeof two, "--batch-size %d --dp-reduce full", b);
    /* --dp-reduce full: the ranks sum G, as the single process's one backward does */
    free(train(dir, "one", 0, flags, one));
    char *log = train(dir, "two-full", 2, flags, two);
    cr_assert(strstr(log, "RESULT ") && !strstr(strstr(log, "RESULT ") + 1, "RESULT "), "not one RESULT line:\n%s",
              log);
    free(log);
    same_losses(dir, "one", "two-full", 1e-6);
    /* the same ranks started without MPI: the local launcher, joined by shared memory */
    snprintf(two, sizeof two, "--batch-size %d --dp-reduce full --ranks 2 --launcher local", b);
    free(train(dir, "two-local", 0, flags, two));
    same_losses(dir, "one", "two-local", 1e-6);
    /* --dp-reduce projected: the ranks sum R = P^T G, which is projected accumulation over the ranks */
    snprintf(one, sizeof one, "--batch-size %d --accum-mode projected --grad-accum 2", 2 * b);
    snprintf(two, sizeof two, "--batch-size %d --grad-accum 2", b);
    free(train(dir, "one-proj", 0, flags, one));
    free(train(dir, "two-proj", -2, flags, two)); /* owlore starts mpirun */
    same_losses(dir, "one-proj", "two-proj", 1e-6);
    cr_assert_eq(summary_number(dir, "two-proj", "ranks"), 2);
    cr_assert_eq(summary_number(dir, "two-proj", "global_batch_size"), 2 * b);
    double r = summary_number(dir, "two-proj", "dp_bytes_per_step"),
           g = summary_number(dir, "two-full", "dp_bytes_per_step"),
           ddp = summary_number(dir, "two-full", "ddp_bytes_per_step");
    cr_assert(r > 0 && r < g && g <= ddp, "bytes a step: projected %g, full %g, DDP %g", r, g, ddp);
    free(flags);
    ts_rmtree(dir);
    free(dir);
}

Test(dist, two_ranks_equal_one_process) { two_ranks_equal_one_process(0); }

Test(dist, two_ranks_equal_one_process_untied) { two_ranks_equal_one_process(1); }

/* The pid of the process with VAR=rank in its environment (OMPI_COMM_WORLD_RANK, or OWLORE_LOCAL_RANK)
 * whose command line names `out` (a rank of the job writing there), or 0. */
static pid_t rank_pid(const char *var, int rank, const char *out) {
    DIR *d = opendir("/proc");
    cr_assert(d != NULL);
    struct dirent *e;
    pid_t found = 0;
    char want[32];
    snprintf(want, sizeof want, "%s=%d", var, rank);
    while (!found && (e = readdir(d)) != NULL) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0) continue;
        char path[64], buf[65536];
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        int names_out = 0;
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
            if (strcmp(buf + i, out) == 0) names_out = 1;
        if (!names_out || strstr(buf, "mpirun")) continue;
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        f = fopen(path, "rb");
        if (!f) continue;
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
            if (strcmp(buf + i, want) == 0) found = pid;
    }
    closedir(d);
    return found;
}

/* Whether pid runs (a zombie, which nobody may reap in a container, does not). */
static int running(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *end = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return end && end[1] == ' ' && end[2] != 'Z' && end[2] != 'X';
}

/* Lines of RUN/metrics.jsonl (0 while it does not exist). */
static int metric_lines(const char *run) {
    char *p = ow_path_join(run, "metrics.jsonl");
    FILE *f = fopen(p, "r");
    free(p);
    if (!f) return 0;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

/* Frees a job's strings and removes its directory. */
static void free_job(char *cmd, char *log, char *out, char *flags, char *dir) {
    free(cmd);
    free(log);
    free(out);
    free(flags);
    ts_rmtree(dir);
    free(dir);
}

/* Two ranks (mpirun's, or the local launcher's) of a 150-step run; rank 1 is killed past the second
 * checkpoint: the job ends with word of it, nothing keeps running, and the run resumes on the whole run's
 * bits (and with one process). */
static void killed_rank(int local) {
    char *dir = ts_tmpdir(), *flags = common_flags(0, 150);
    const char *var = local ? "OWLORE_LOCAL_RANK" : "OMPI_COMM_WORLD_RANK";
    char *out = ow_path_join(dir, "cut"), *log = ow_path_join(dir, "cut.log"), *cmd = NULL;
    if (local) {
        free(train(dir, "whole", 0, flags, "--batch-size 4 --save-every 10 --ranks 2 --launcher local"));
        cr_assert(asprintf(&cmd, "exec %s train %s --out %s --batch-size 4 --save-every 10 --ranks 2 --launcher local",
                           ts_owlore_binary(), flags, out) > 0);
    } else {
        free(train(dir, "whole", 2, flags, "--batch-size 4 --save-every 10"));
        cr_assert(asprintf(&cmd, "exec %s -np 2 %s train %s --out %s --batch-size 4 --save-every 10", mpirun(),
                           ts_owlore_binary(), flags, out) > 0);
    }
    pid_t job = ts_spawn(cmd, log, "100"); /* each save takes 100 ms more: the run lasts long enough to be cut */
    pid_t victim = 0;
    for (int i = 0; i < 3000 && !victim; i++) { /* past the second checkpoint (metrics: a line a step) */
        if (metric_lines(out) >= 25) victim = rank_pid(var, 1, out);
        if (!victim) ts_sleep_ms(10);
    }
    cr_assert(victim > 0, "rank 1 of the job was not found running");
    pid_t rank0 = rank_pid(var, 0, out);
    cr_assert(rank0 > 0);
    cr_assert_eq(kill(victim, SIGKILL), 0);
    int status = 0;
    for (int i = 0; i < 600 && waitpid(job, &status, WNOHANG) == 0; i++) ts_sleep_ms(50);
    cr_assert(WIFEXITED(status) || WIFSIGNALED(status), "the job still runs 30 s after a rank was killed");
    cr_assert(!(WIFEXITED(status) && WEXITSTATUS(status) == 0), "the job exited 0 after a rank was killed");
    for (int i = 0; i < 200 && running(rank0); i++) ts_sleep_ms(50);
    cr_assert(!running(rank0), "rank 0 still runs 10 s after the job ended");
    char *text = ts_read_text(log);
    cr_assert(local ? strstr(text, "rank 1 of 2 was killed by signal 9") != NULL
                    : strstr(text, "signal 9") || strstr(text, "Killed"),
              "no word of the killed rank:\n%s", text);
    free(text);
    /* rank 0's checkpoints are whole; the resumed run ends on the uninterrupted run's bits */
    free(cmd);
    if (local)
        cr_assert(asprintf(&cmd, "%s train --resume %s --ranks 2 --launcher local 2>&1", ts_owlore_binary(), out) > 0);
    else
        cr_assert(asprintf(&cmd, "%s -np 2 %s train --resume %s 2>&1", mpirun(), ts_owlore_binary(), out) > 0);
    char *resumed = NULL;
    int rc = ts_run(cmd, &resumed);
    cr_assert_eq(rc, 0, "%s failed (%d):\n%s", cmd, rc, resumed);
    free(resumed);
    same_losses(dir, "whole", "cut", 0);
    /* another number of ranks resumes too (a global batch of 4 now: its own trajectory from there) */
    free(cmd);
    char *cut1 = ow_path_join(dir, "cut1");
    cr_assert(asprintf(&cmd,
                       "cp -a %s/checkpoints %s/metrics.jsonl %s/config.json %s/ 2>&1 && "
                       "rm -rf %s/checkpoints/step-000150 && %s train --resume %s 2>&1",
                       out, out, out, cut1, cut1, ts_owlore_binary(), cut1) > 0);
    cr_assert_eq(ow_mkdir_p(cut1, NULL), 0);
    resumed = NULL;
    rc = ts_run(cmd, &resumed);
    cr_assert_eq(rc, 0, "%s failed (%d):\n%s", cmd, rc, resumed);
    cr_assert_eq(summary_number(dir, "cut1", "steps"), 150);
    free(resumed);
    free(cut1);
    free_job(cmd, log, out, flags, dir);
}

Test(dist, a_killed_rank_stops_every_rank_and_the_run_resumes) { killed_rank(0); }

/* The same with `--ranks 2 --launcher local` (no MPI): the launcher ends rank 0 and names rank 1. */
Test(dist, a_killed_local_rank_stops_every_rank_and_the_run_resumes) { killed_rank(1); }

/* The local launcher killed with SIGKILL (it can neither stop its ranks nor clean up): its ranks die with it
 * (PR_SET_PDEATHSIG), and no shared memory is left behind (/dev/shm), as it has no name there. */
Test(dist, a_killed_local_launcher_takes_its_ranks_and_leaves_no_shared_memory) {
    char *dir = ts_tmpdir(), *flags = common_flags(0, 150), *out = ow_path_join(dir, "cut"),
         *log = ow_path_join(dir, "cut.log"), *cmd = NULL;
    cr_assert(asprintf(&cmd, "exec %s train %s --out %s --batch-size 4 --save-every 10 --ranks 2 --launcher local",
                       ts_owlore_binary(), flags, out) > 0);
    pid_t launcher = ts_spawn(cmd, log, "100");
    pid_t r0 = 0, r1 = 0;
    for (int i = 0; i < 3000 && !(r0 && r1); i++) { /* training: both ranks past their setup */
        if (metric_lines(out) >= 3) {
            r0 = rank_pid("OWLORE_LOCAL_RANK", 0, out);
            r1 = rank_pid("OWLORE_LOCAL_RANK", 1, out);
        }
        if (!(r0 && r1)) ts_sleep_ms(10);
    }
    cr_assert(r0 > 0 && r1 > 0, "the ranks were not found training");
    cr_assert_eq(kill(launcher, SIGKILL), 0);
    int status = 0;
    cr_assert_eq(waitpid(launcher, &status, 0), launcher);
    for (int i = 0; i < 200 && (running(r0) || running(r1)); i++) ts_sleep_ms(50);
    cr_assert(!running(r0) && !running(r1), "a rank still runs 10 s after its launcher was killed");
    DIR *d = opendir("/dev/shm");
    if (d) {
        char mine[64];
        snprintf(mine, sizeof mine, "owlore-ranks-%d", (int)launcher);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) cr_assert(strcmp(e->d_name, mine) != 0, "/dev/shm/%s was left behind", mine);
        closedir(d);
    }
    free_job(cmd, log, out, flags, dir);
}

Test(dist, ranks_with_different_weights_stop_the_run) {
    char *dir = ts_tmpdir(), *flags = common_flags(0, STEPS), *out = ow_path_join(dir, "astray"), *cmd = NULL,
         *log = NULL;
    cr_assert(asprintf(&cmd,
                       "OWLORE_TEST_PERTURB_RANK=1:3 %s -np 2 %s train %s --out %s --batch-size 4 "
                       "--check-every 5 2>&1",
                       mpirun(), ts_owlore_binary(), flags, out) > 0);
    int rc = ts_run(cmd, &log);
    cr_assert_neq(rc, 0, "the run went on with ranks that differ:\n%s", log);
    cr_assert(strstr(log, "after step 5 the trained weights of rank 1 differ from rank 0's"), "%s", log);
    cr_assert_eq(metric_lines(out), 6, "the run did not stop at the check (a validation line, then 5 steps)");
    /* the local launcher: both ranks' errors, and the launcher's word on the rank that failed first */
    free(log);
    free(cmd);
    ts_rmtree(out);
    cr_assert(asprintf(&cmd,
                       "OWLORE_TEST_PERTURB_RANK=1:3 %s train %s --out %s --batch-size 4 --check-every 5 --ranks 2 "
                       "--launcher local 2>&1",
                       ts_owlore_binary(), flags, out) > 0);
    rc = ts_run(cmd, &log);
    cr_assert_neq(rc, 0, "the run went on with ranks that differ:\n%s", log);
    cr_assert(strstr(log, "after step 5 the trained weights of rank 1 differ from rank 0's"), "%s", log);
    cr_assert(strstr(log, "exited with status 1, so the other ranks were stopped"), "%s", log);
    free(log);
    free(cmd);
    free(out);
    free(flags);
    ts_rmtree(dir);
    free(dir);
}

/* Streamed blocks on each rank (host memory, or a store file of its own under --nvme-dir/rank-R) give the bits
 * of resident ranks. */
Test(dist, ranks_stream_blocks_from_host_memory_and_their_own_store_files) {
    char *dir = ts_tmpdir(), *flags = common_flags(0, STEPS), *nv = ow_path_join(dir, "nv"), *extra = NULL;
    cr_assert_eq(ow_mkdir_p(nv, NULL), 0);
    free(train(dir, "resident", 2, flags, "--batch-size 4 --offload none"));
    free(train(dir, "host", 2, flags, "--batch-size 4 --offload host"));
    cr_assert(asprintf(&extra, "--batch-size 4 --offload nvme --nvme-dir %s", nv) > 0);
    free(train(dir, "nvme", 2, flags, extra));
    same_losses(dir, "resident", "host", 0);
    same_losses(dir, "resident", "nvme", 0);
    for (int r = 0; r < 2; r++) {
        char sub[64];
        snprintf(sub, sizeof sub, "rank-%d/TinyStories-656K.owstore", r);
        char *store = ow_path_join(nv, sub);
        cr_assert_eq(access(store, R_OK), 0, "no %s", store);
        free(store);
    }
    free(extra);
    free(nv);
    free(flags);
    ts_rmtree(dir);
    free(dir);
}

/* `[env] owlore train ARGS` fails, saying `needle`. */
static void refused(const char *env, const char *args, const char *needle) {
    char *cmd = NULL, *log = NULL;
    cr_assert(asprintf(&cmd, "%s%s train %s --model llama2-7b --data synthetic --steps 1 --out /nonexistent 2>&1", env,
                       ts_owlore_binary(), args) > 0);
    cr_assert_neq(ts_run(cmd, &log), 0, "%s", log);
    cr_assert(strstr(log, needle), "%s", log);
    free(cmd);
    free(log);
}

/* --ranks: a count out of range, no mpirun for --launcher mpirun, and an unknown launcher are refused with
 * the reason. */
Test(dist, the_ranks_launcher_refuses_what_it_cannot_start) {
    refused("", "--ranks 0", "--ranks / --gpus 0: a number of processes from 1 to 4096");
    refused("env PATH=/nonexistent ", "--ranks 2 --launcher mpirun", "--ranks 2 needs mpirun to start the ranks");
    refused("", "--ranks 2 --launcher ssh", "--launcher ssh: one of auto, mpirun, local");
}

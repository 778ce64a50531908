/* cmd_train.c: `owlore train`: runs train_run with SIGINT/SIGTERM caught
 * (interrupt.h): on the first signal the run finishes its step, saves a
 * checkpoint and the command exits with 128 + the signal number and says
 * how to resume; during setup and the first step the signal stops the work
 * within a second and nothing is saved (same exit status); a second signal
 * ends the process at once.
 *
 * Under mpirun, or the local launcher of `--ranks N` (dist/comm.h), each
 * process is one rank of a data-parallel run: rank 0 writes and prints
 * everything, the others only warnings and errors; a rank that fails ends
 * every rank (an error names its rank). */
#include "cmd/commands.h"
#include "core/log.h"
#include "dist/comm.h"
#include "train/interrupt.h"
#include "train/trainer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* --ranks N (or --gpus N): the value of argv[*i] (and moves past it), or -1 when it is not that option. */
static int ranks_option(int argc, char **argv, int *i, OwError *err) {
    const char *a = argv[*i], *v = NULL;
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "--gpus" : "--ranks";
        size_t n = strlen(name);
        if (strcmp(a, name) == 0 && *i + 1 < argc)
            v = argv[++*i];
        else if (strncmp(a, name, n) == 0 && a[n] == '=')
            v = a + n + 1;
    }
    if (!v) return -1;
    char *end;
    long r = strtol(v, &end, 10);
    if (*end || r < 1 || r > 4096) {
        ow_fail(err, "--ranks / --gpus %s: a number of processes from 1 to 4096 (hint: --ranks 2)", v);
        return -2;
    }
    return (int)r;
}

/* --launcher auto|mpirun|local: how --ranks starts its ranks (argv[*i], moving past its value); NULL when
 * argv[*i] is not that option. */
static const char *launcher_option(int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (strcmp(a, "--launcher") == 0 && *i + 1 < argc) return argv[++*i];
    return strncmp(a, "--launcher=", 11) == 0 ? a + 11 : NULL;
}

/* Whether an executable `name` is on PATH. */
static int on_path(const char *name) {
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    for (const char *p = path; p && *p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, name) < (int)sizeof buf && access(buf, X_OK) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* `mpirun -np N <exe> train <rest>`: replaces this process; returns only on failure. */
static int exec_mpirun(int n, const char *exe, int argc, char **argv, OwError *err) {
    char np[16];
    snprintf(np, sizeof np, "%d", n);
    char **av = ow_xcalloc((size_t)argc + 16, sizeof(char *));
    int k = 0;
    av[k++] = "mpirun";
    if (geteuid() == 0) av[k++] = "--allow-run-as-root"; /* asked for by this command: no second confirmation */
    av[k++] = "--oversubscribe";
    av[k++] = "--bind-to"; /* each rank's threads on every core (a rank per core would be mpirun's default) */
    av[k++] = "none";
    av[k++] = "-np";
    av[k++] = np;
    av[k++] = (char *)exe;
    av[k++] = "train";
    for (int i = 1; i < argc; i++) av[k++] = argv[i];
    fflush(NULL);
    execvp("mpirun", av);
    free(av);
    return ow_fail(
        err,
        "--ranks %d needs mpirun to start the ranks, and it could not be run (hint: "
        "scripts/install-deps.sh installs openmpi-bin; --launcher local starts them on this machine without it)",
        n);
}

/* The local launcher's children, for the signal forwarder (the only state a handler can reach). */
static pid_t *g_ranks;
static int g_nranks;

static void forward_signal(int sig) {
    for (int r = 0; r < g_nranks; r++)
        if (g_ranks[r] > 0) kill(g_ranks[r], sig);
}

/* Rank r's exit status in words, and whether it is a normal end (done, or stopped by a signal's request). */
static int rank_ended_well(int status, char *what, size_t cap) {
    if (WIFSIGNALED(status)) {
        snprintf(what, cap, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        return 0;
    }
    int code = WEXITSTATUS(status);
    snprintf(what, cap, "exited with status %d", code);
    return code == 0 || code == 128 + SIGINT || code == 128 + SIGTERM;
}

/* Starts ranks 0..n-1 as copies of this program joined by the local transport (dist/comm.h). */
static int start_local_ranks(int n, const char *exe, char **av, int shm, OwError *err) {
    char size[16], rank[16], fd[16];
    snprintf(size, sizeof size, "%d", n);
    snprintf(fd, sizeof fd, "%d", shm);
    pid_t parent = getpid();
    fflush(NULL);
    for (int r = 0; r < n; r++) {
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* the launcher gone: so are the ranks */
            if (getppid() != parent) _exit(1);
            snprintf(rank, sizeof rank, "%d", r);
            setenv(COMM_LOCAL_RANK_ENV, rank, 1);
            setenv(COMM_LOCAL_SIZE_ENV, size, 1);
            setenv(COMM_LOCAL_FD_ENV, fd, 1);
            execv(exe, av);
            fprintf(stderr, "owlore train: rank %d: cannot run %s: %s\n", r, exe, strerror(errno));
            _exit(127);
        }
        if (pid < 0) {
            forward_signal(SIGKILL);
            return ow_fail(err, "--ranks %d: starting rank %d: %s", n, r, strerror(errno));
        }
        g_ranks[r] = pid;
    }
    return 0;
}

/* Waits for every rank; the first that ends badly ends the others. Returns the command's exit status. */
static int wait_local_ranks(int n) {
    int bad = -1, code = 0;
    char what[128] = "";
    for (int left = n; left > 0;) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;
        }
        int r = 0;
        while (r < n && g_ranks[r] != pid) r++;
        if (r == n) continue;
        g_ranks[r] = 0;
        left--;
        char w[128];
        if (!rank_ended_well(status, w, sizeof w) && bad < 0) {
            bad = r;
            snprintf(what, sizeof what, "%s", w);
            forward_signal(SIGKILL);
        }
        if (r == 0) code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (bad < 0) return code;
    fprintf(stderr, "owlore train: rank %d of %d %s, so the other ranks were stopped\n", bad, n, what);
    return code ? code : 1;
}

/* `owlore train --ranks N` on this machine without mpirun: N copies of this program, joined by shared
 * memory (dist/comm.h's local transport); this process forwards SIGINT/SIGTERM to them, waits, and ends
 * them all when one fails. Returns the exit status. */
static int run_local_ranks(int n, const char *exe, int argc, char **argv, OwError *err) {
    int shm = comm_local_create(n, err);
    if (shm < 0) return -1;
    char **av = ow_xcalloc((size_t)argc + 2, sizeof(char *));
    av[0] = (char *)exe;
    av[1] = "train";
    for (int i = 1; i < argc; i++) av[i + 1] = argv[i];
    g_ranks = ow_xcalloc((size_t)n, sizeof(pid_t));
    g_nranks = n;
    struct sigaction sa = {.sa_handler = forward_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int started = start_local_ranks(n, exe, av, shm, err);
    close(shm); /* the ranks hold it now */
    int code = started == 0 ? wait_local_ranks(n) : -1;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(g_ranks);
    g_ranks = NULL;
    g_nranks = 0;
    free(av);
    return code;
}

/* `owlore train --ranks N [--launcher auto|mpirun|local] ...` with N > 1 and no launcher around: starts the
 * ranks on this machine, through mpirun (auto: when it is on PATH) or the local launcher. Removes the
 * options from argv (*argc). Returns 0 when there is nothing to launch (this process trains), 1 when the
 * ranks ran (*code: the exit status), -1 on an error. */
static int launch_ranks(int *argc, char **argv, int *code, OwError *err) {
    int n = 1, out = 1;
    const char *launcher = "auto";
    for (int i = 1; i < *argc; i++) {
        const char *l = launcher_option(*argc, argv, &i);
        int r = l ? 0 : ranks_option(*argc, argv, &i, err);
        if (r == -2) return -1;
        if (l)
            launcher = l;
        else if (r > 0)
            n = r;
        else
            argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
    if (strcmp(launcher, "auto") != 0 && strcmp(launcher, "mpirun") != 0 && strcmp(launcher, "local") != 0)
        return ow_fail(err, "--launcher %s: one of auto, mpirun, local (hint: local needs no MPI)", launcher);
    if (n <= 1 || comm_launched()) return 0;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return ow_fail(err, "--ranks %d: cannot find this program (/proc/self/exe)", n);
    exe[len] = '\0';
    int mpi = strcmp(launcher, "mpirun") == 0 || (strcmp(launcher, "auto") == 0 && on_path("mpirun"));
    if (mpi) return exec_mpirun(n, exe, out, argv, err);
    *code = run_local_ranks(n, exe, out, argv, err);
    return *code < 0 ? -1 : 1;
}

int cmd_train(int argc, char **argv) {
    TrainConfig cfg;
    OwError err;
    int rc = 0;
    int launched = launch_ranks(&argc, argv, &rc, &err);
    if (launched < 0) return cmd_report_error("train", &err);
    if (launched) return rc;
    rc = train_config_from_args(&cfg, argc, argv, &err);
    if (rc == 1) {
        train_config_help(
            stdout,
            "owlore train --model DIR --data FILE --out RUN_DIR [--method owlore] [--recipe FILE] [--KEY VALUE ...]",
            "Fine-tunes a LLaMA-family model. The method's recipe (configs/recipes/<method>.json) sets the defaults;\n"
            "a --recipe file and then flags override any key (flags use dashes, recipe keys underscores).\n"
            "Data parallel: `--ranks N` (or `--gpus N`: one GPU each) runs N processes on this machine, through\n"
            "mpirun when it is on PATH, else joined by shared memory (--launcher auto|mpirun|local); and\n"
            "`mpirun -np N owlore train ...` across machines. Each rank trains on its batch_size of a global batch\n"
            "of N x batch_size; GPU ranks sum over NCCL (see --dp-reduce and --check-every).");
        return 0;
    }
    if (rc != 0) {
        cmd_report_error("train", &err);
        return 2;
    }
    Comm *comm = comm_world();
    if (comm_init(comm, &err) != 0) return cmd_report_error("train", &err);
    if (comm->rank != 0 && ow_log_get_level() < OW_LOG_WARN) ow_log_set_level(OW_LOG_WARN);
    if (comm->size > 1 && comm->rank == 0)
        OW_INFO("data parallel: %d ranks (this is rank 0), global batch %d x %lld sequences", comm->size, comm->size,
                (long long)cfg.batch_size);
    TrainSummary s;
    TrainInterrupt saved;
    train_interrupt_install(&saved);
    rc = train_run(&cfg, &s, &err);
    train_interrupt_restore(&saved);
    if (rc < 0 && comm->size > 1) { /* the other ranks would wait for this one: the job ends */
        char what[32];
        snprintf(what, sizeof what, "train (rank %d of %d)", comm->rank, comm->size);
        cmd_report_error(what, &err);
        comm_abort(comm, 1);
    }
    if (rc < 0) return cmd_report_error("train", &err);
    int quiet = comm->rank != 0;
    comm_finalize(comm);
    if (quiet) return rc == TRAIN_INTERRUPTED ? 128 + s.interrupted : 0;
    if (rc == TRAIN_INTERRUPTED) {
        fflush(stdout);
        if (s.before_first_step && cfg.resume[0])
            fprintf(stderr,
                    "owlore train: interrupted by %s before the first step of this session finished (%s); the run is "
                    "as it was\nresume with: owlore train --resume %s\n",
                    train_signal_name(s.interrupted), err.msg, cfg.out);
        else if (s.before_first_step)
            fprintf(stderr,
                    "owlore train: interrupted by %s before the first step finished (%s); nothing was saved (start "
                    "the run again)\n",
                    train_signal_name(s.interrupted), err.msg);
        else if (s.checkpoint[0])
            fprintf(stderr,
                    "owlore train: interrupted by %s after step %lld of %lld; saved the checkpoint %s\n"
                    "resume with: owlore train --resume %s\n",
                    train_signal_name(s.interrupted), (long long)s.steps, (long long)s.total_steps, s.checkpoint,
                    cfg.out);
        else
            fprintf(stderr,
                    "owlore train: interrupted by %s after step %lld of %lld; no checkpoint (--save-every -1)\n",
                    train_signal_name(s.interrupted), (long long)s.steps, (long long)s.total_steps);
        return 128 + s.interrupted;
    }
    printf("RESULT %s\n", s.result);
    printf("trained %lld steps in %.1f s (%.0f tokens/s): loss %.4f -> %.4f", (long long)s.steps, s.seconds,
           s.tokens_per_s, s.first_loss, s.last_loss);
    if (!isnan(s.first_val)) printf(", validation loss %.4f -> %.4f", s.first_val, s.last_val);
    printf("\n");
    return 0;
}

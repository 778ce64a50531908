/* cmd_train.c: `owlore train`: runs train_run with SIGINT/SIGTERM caught
 * (interrupt.h): on the first signal the run finishes its step, saves a
 * checkpoint and the command exits with 128 + the signal number and says
 * how to resume; during setup and the first step the signal stops the work
 * within a second and nothing is saved (same exit status); a second signal
 * ends the process at once.
 *
 * Under mpirun (dist/comm.h) each process is one rank of a data-parallel
 * run: rank 0 writes and prints everything, the others only warnings and
 * errors; a rank that fails ends every rank (an error names its rank). */
#include "cmd/commands.h"
#include "core/log.h"
#include "dist/comm.h"
#include "train/interrupt.h"
#include "train/trainer.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* `owlore train --ranks N ...` with N > 1 and no launcher around: this process becomes
 * `mpirun -np N owlore train ...` (the rest of the command line), which starts the ranks on this machine.
 * Removes the option from argv (*argc) in any case; returns only when there is nothing to launch (0) or
 * on an error (-1). */
static int launch_ranks(int *argc, char **argv, OwError *err) {
    int n = 1, out = 1;
    for (int i = 1; i < *argc; i++) {
        int r = ranks_option(*argc, argv, &i, err);
        if (r == -2) return -1;
        if (r > 0)
            n = r;
        else
            argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
    if (n <= 1 || comm_launched()) return 0;
    char exe[PATH_MAX], np[16];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return ow_fail(err, "--ranks %d: cannot find this program (/proc/self/exe)", n);
    exe[len] = '\0';
    snprintf(np, sizeof np, "%d", n);
    char **av = calloc((size_t)out + 16, sizeof(char *));
    if (!av) return ow_fail(err, "--ranks %d: out of memory", n);
    int k = 0;
    av[k++] = "mpirun";
    if (geteuid() == 0) av[k++] = "--allow-run-as-root"; /* asked for by this command: no second confirmation */
    av[k++] = "--oversubscribe";
    av[k++] = "--bind-to"; /* each rank's threads on every core (a rank per core would be mpirun's default) */
    av[k++] = "none";
    av[k++] = "-np";
    av[k++] = np;
    av[k++] = exe;
    av[k++] = "train";
    for (int i = 1; i < out; i++) av[k++] = argv[i];
    fflush(NULL);
    execvp("mpirun", av);
    free(av);
    return ow_fail(
        err,
        "--ranks %d needs mpirun to start the ranks, and it could not be run (hint: "
        "scripts/install-deps.sh installs openmpi-bin; or start them yourself: mpirun -np %d owlore train ...)",
        n, n);
}

int cmd_train(int argc, char **argv) {
    TrainConfig cfg;
    OwError err;
    if (launch_ranks(&argc, argv, &err) != 0) return cmd_report_error("train", &err);
    int rc = train_config_from_args(&cfg, argc, argv, &err);
    if (rc == 1) {
        train_config_help(
            stdout,
            "owlore train --model DIR --data FILE --out RUN_DIR [--method owlore] [--recipe FILE] [--KEY VALUE ...]",
            "Fine-tunes a LLaMA-family model. The method's recipe (configs/recipes/<method>.json) sets the defaults;\n"
            "a --recipe file and then flags override any key (flags use dashes, recipe keys underscores).\n"
            "Data parallel: `--ranks N` (or `--gpus N`) runs N processes on this machine through mpirun, and\n"
            "`mpirun -np N owlore train ...` across machines; each rank trains on its batch_size of a global batch\n"
            "of N x batch_size (CPU backend so far; see --dp-reduce and --check-every).");
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

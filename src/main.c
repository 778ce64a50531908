/* main.c: the `owlore` command line: dispatches to the subcommands. */
#include "cmd/commands.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command k_commands[] = {
    {"train", cmd_train, "fine-tune a model (owlore, owlore-fullrank, lisa, galore, full)"},
    {"outliers", cmd_outliers, "compute OWL outlier ratios and layer-sampling probabilities"},
    {"demo", cmd_demo, "end-to-end demo: pre-train a tiny model, find its outliers, fine-tune it with OwLore"},
    {"version", cmd_version, "print the version and the backends this build has"},
    {"info", cmd_info, "describe a model (architecture, sizes, parameters, memory)"},
};

static void usage(FILE *out) {
    fputs("owlore: OwLore fine-tuning (outlier-weighted layerwise sampling + GaLore) for LLaMA-family models\n\n"
          "usage: owlore COMMAND [flags]    (owlore COMMAND --help for the flags of one command)\n\ncommands:\n",
          out);
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(out, "  %-10s %s\n", k_commands[i].name, k_commands[i].summary);
}

/* OpenMP threads that spin after a parallel region starve OpenBLAS's own
 * threads on small machines (measured: 2x slower training on 2 cores). The
 * wait policy is read when libgomp loads, before main, so when the user has
 * not chosen one we set "passive" and re-execute ourselves once. */
static void prefer_passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the active policy */
}

int main(int argc, char **argv) {
    prefer_passive_openmp(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (strcmp(argv[1], k_commands[i].name) == 0) return k_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "owlore: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}

/* main.c: the `owlore` command line: dispatches to the subcommands. */
#include "cmd/commands.h"
#include "core/log.h"
#include "core/runtime.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command k_commands[] = {
    {"train", cmd_train, "fine-tune a model (owlore, owlore-fullrank, lisa, galore, full)"},
    {"outliers", cmd_outliers, "compute OWL outlier ratios and layer-sampling probabilities"},
    {"eval", cmd_eval, "loss and perplexity, or multiple-choice accuracy, of a model or a run"},
    {"generate", cmd_generate, "text from a model or a run (a completion, or a chat), with a key/value cache"},
    {"export", cmd_export, "write a run's fine-tuned model as a Hugging Face directory"},
    {"convert", cmd_convert, "convert a LLaMA-family GGUF file (llama.cpp) into a Hugging Face directory"},
    {"report", cmd_report, "write RUN_DIR/report.html (curves, sampling, trainable blocks)"},
    {"plan", cmd_plan, "predict a run's device memory by kind and the largest batch that fits --gpu-mem"},
    {"probe", cmd_probe, "measure host<->device copy, store-disk read and GEMM rates for offload placement (cached)"},
    {"demo", cmd_demo, "end-to-end demo: pre-train a tiny model, find its outliers, fine-tune it with OwLore"},
    {"version", cmd_version, "print the version and the backends this build has"},
    {"info", cmd_info, "describe a model (architecture, sizes, parameters, memory)"},
    {"encode", cmd_encode, "print the token ids of text read from stdin (tokenizer debugging)"},
    {"decode", cmd_decode, "print the text of token ids read from stdin"},
    {"tokenize", cmd_tokenize, "tokenize a dataset (.txt, JSON lines: text, alpaca, chat) into an owlore token file"},
};

static void usage(FILE *out) {
    fputs("owlore: OwLore fine-tuning (outlier-weighted layerwise sampling + GaLore) for LLaMA-family models\n\n"
          "usage: owlore COMMAND [flags]    (owlore COMMAND --help for the flags of one command)\n\ncommands:\n",
          out);
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(out, "  %-10s %s\n", k_commands[i].name, k_commands[i].summary);
}

int main(int argc, char **argv) {
    ow_runtime_setup(argv);
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

/* tokenizer_bench.c: encode throughput of the tokenizer on one core: each
 * tokenizer (LLaMA-2, Mistral, TinyStories-656K, LLaMA-3 built from its GPT-2
 * style files) on each real text file encoded whole, best of N runs.
 * "cold": a fresh TokenizerWork (empty word cache) per run, as
 * tokenizer_encode does; "warm": one work reused across runs (HF's word
 * cache is warm after its first run in a process).
 * Compare with bench/tokenizer_bench_hf.py (HF tokenizers, one thread). */
#include "core/args.h"
#include "core/fileio.h"
#include "core/log.h"
#include "data/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NSPECS 3

int main(int argc, char **argv) {
    const char *source = OWLORE_SOURCE_DIR, *shared = OWLORE_SHARED_DIR;
    int64_t reps = 3;
    const ArgSpec specs[NSPECS] = {
        {"source", ARG_STR, &source, "DIR", "owlore source tree (for tests/fixtures)", NULL},
        {"shared", ARG_STR, &shared, "DIR", "the shared data folder (../shared)", NULL},
        {"reps", ARG_INT, &reps, "N", "runs per measurement (the best is kept)", NULL},
    };
    ArgsResult res;
    OwError err;
    if (args_parse(argc, argv, specs, NSPECS, &res, &err) != 0) {
        fprintf(stderr, "tokenizer_bench: %s\n", err.msg);
        return 2;
    }
    if (res.help) {
        args_print_help(stdout, "tokenizer_bench [--reps N]", "Encode MB/s per tokenizer and text file, one thread.",
                        specs, NSPECS);
        return 0;
    }
    char dir[] = "/tmp/owlore-bench-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char l3[4096], a[4096], b[4096], c[4096];
    snprintf(l3, sizeof l3, "%s/tokenizer.json", dir);
    snprintf(a, sizeof a, "%s/tests/fixtures/tokenizer/llama3_template.json", source);
    snprintf(b, sizeof b, "%s/data/real/tokenizers/llama3.2/encoder.json", shared);
    snprintf(c, sizeof c, "%s/data/real/tokenizers/llama3.2/vocab.bpe", shared);
    if (tokenizer_build_json(a, b, c, l3, &err) != 0) {
        fprintf(stderr, "tokenizer_bench: %s\n", err.msg);
        rmdir(dir);
        return 1;
    }
    static const struct {
        const char *name, *rel;
    } toks[] = {
        {"llama2", "data/real/tokenizers/llama2-tinyllama/tokenizer.json"},
        {"mistral", "data/real/tokenizers/mistral-minueza/tokenizer.json"},
        {"tinystories", "data/real/hf/TinyStories-656K/tokenizer.json"},
        {"llama3", NULL},
    };
    static const char *const texts[] = {"data/real/text/tinyshakespeare.txt",
                                        "data/real/text/tinystories_train_sample_2MiB.txt"};
    printf("%-12s %-36s %8s %9s %10s %10s\n", "tokenizer", "text", "MB", "tokens", "cold MB/s", "warm MB/s");
    int rc = 0;
    for (size_t t = 0; t < sizeof toks / sizeof toks[0] && rc == 0; t++) {
        char *tp = toks[t].rel ? ow_path_join(shared, toks[t].rel) : ow_xstrdup(l3);
        Tokenizer *tok;
        double t0 = ow_now();
        if (tokenizer_load(tp, &tok, &err) != 0) {
            fprintf(stderr, "tokenizer_bench: %s\n", err.msg);
            free(tp);
            rc = 1;
            break;
        }
        double load = ow_now() - t0;
        free(tp);
        for (size_t x = 0; x < sizeof texts / sizeof texts[0] && rc == 0; x++) {
            char xp[4096], *text;
            size_t len;
            snprintf(xp, sizeof xp, "%s/%s", shared, texts[x]);
            if (ow_read_file(xp, &text, &len, &err) != 0) {
                fprintf(stderr, "tokenizer_bench: %s\n", err.msg);
                rc = 1;
                break;
            }
            IdVec ids = {0};
            double cold = 1e30, warm = 1e30;
            TokenizerWork *w = tokenizer_work_new();
            for (int64_t r = 0; r < reps && rc == 0; r++) {
                double s = ow_now();
                if (tokenizer_encode(tok, text, len, 0, &ids, &err) != 0) rc = 1;
                double d = ow_now() - s;
                if (d < cold) cold = d;
                s = ow_now();
                if (tokenizer_encode_with(tok, w, text, len, 0, &ids, &err) != 0) rc = 1;
                d = ow_now() - s;
                if (d < warm) warm = d;
            }
            if (rc) fprintf(stderr, "tokenizer_bench: %s\n", err.msg);
            printf("%-12s %-36s %8.2f %9zu %10.1f %10.1f\n", toks[t].name, strrchr(texts[x], '/') + 1, len / 1e6,
                   ids.len, len / 1e6 / cold, len / 1e6 / warm);
            tokenizer_work_free(w);
            idvec_free(&ids);
            free(text);
        }
        printf("%-12s (tokenizer.json load: %.2f s)\n", toks[t].name, load);
        tokenizer_free(tok);
    }
    unlink(l3);
    rmdir(dir);
    return rc;
}

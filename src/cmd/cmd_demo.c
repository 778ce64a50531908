/* cmd_demo.c: `owlore demo`: an end-to-end run that needs nothing from
 * outside. It creates a small byte-level LLaMA (seeded init), pre-trains it
 * on a generated corpus (random words, and words copied after '='),
 * computes its OWL outlier ratios, then fine-tunes it with OwLore on a second
 * generated task (after '=', the two letters that follow the word's last letter) with the loss on the
 * answers only, and reports held-out loss and exact-match accuracy of greedy
 * answers before and after fine-tuning. */
#include "cmd/commands.h"
#include "core/args.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/model_save.h"
#include "owl/outliers.h"
#include "train/trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORD 4
#define ANS 2
#define LINE (WORD + ANS + 2) /* "abcd=ef\n": the two letters that follow the word's last letter */

static void random_word(Rng *r, char *w) {
    for (int i = 0; i < WORD; i++) w[i] = (char)('a' + rng_below(r, 26));
}

/* Pre-training corpus: lines of random words, and copy lines "abcd=abcd". */
static int32_t *make_pretrain(int64_t nlines, uint64_t seed, int64_t *count) {
    Rng r;
    rng_init(&r, seed, RNG_STREAM_DEMO);
    int32_t *ids = ow_xmalloc((size_t)nlines * 32 * sizeof(int32_t));
    int64_t n = 0;
    char w[WORD];
    for (int64_t l = 0; l < nlines; l++) {
        random_word(&r, w);
        if (rng_below(&r, 8) != 0) {
            for (int i = 0; i < WORD; i++) ids[n++] = w[i];
            ids[n++] = '=';
            for (int i = 0; i < WORD; i++) ids[n++] = w[i];
        } else {
            int words = 2 + (int)rng_below(&r, 3);
            for (int k = 0; k < words; k++) {
                if (k) ids[n++] = ' ';
                random_word(&r, w);
                for (int i = 0; i < WORD; i++) ids[n++] = w[i];
            }
        }
        ids[n++] = '\n';
    }
    *count = n;
    return ids;
}

/* Task lines "abcd=ef\n" (the two letters after the word's last letter in
 * the alphabet, wrapping) with the loss mask on the answer and newline. */
static void make_task(int64_t nlines, Rng *r, int32_t *ids, uint8_t *mask) {
    char w[WORD];
    for (int64_t l = 0; l < nlines; l++) {
        int32_t *p = ids + l * LINE;
        uint8_t *mk = mask + l * LINE;
        random_word(r, w);
        for (int i = 0; i < WORD; i++) p[i] = w[i];
        p[WORD] = '=';
        for (int i = 0; i < ANS; i++) p[WORD + 1 + i] = 'a' + (w[WORD - 1] - 'a' + 1 + i) % 26;
        p[LINE - 1] = '\n';
        for (int i = 0; i < LINE; i++) mk[i] = i > WORD;
    }
}

/* Greedy answers for n held-out words; returns the fraction exactly right. */
static int exact_match(const char *model_dir, const int32_t *task, int64_t n, const char *device, int64_t threads,
                       double *acc, OwError *err) {
    Backend *be = backend_create(device, &(BackendOptions){.threads = (int)threads}, err);
    if (!be) return -1;
    Model *m;
    if (model_load_hf(be, model_dir, &m, err) != 0) {
        be->ops->destroy(be);
        return -1;
    }
    int rc = -1;
    int64_t T = LINE - 1, V = m->cfg.vocab_size;
    int32_t *ids = ow_xcalloc((size_t)(n * T), sizeof(int32_t));
    float *logits = ow_xmalloc((size_t)(n * T * V) * sizeof(float));
    if (model_prepare(m, n, T, 1, err) != 0) goto done;
    for (int64_t i = 0; i < n; i++)
        for (int64_t t = 0; t <= WORD; t++) ids[i * T + t] = task[i * LINE + t];
    for (int k = 0; k < ANS; k++) {
        if (model_forward_logits(m, ids, logits, err) != 0) goto done;
        for (int64_t i = 0; i < n; i++) {
            const float *row = logits + (i * T + WORD + k) * V;
            int64_t best = 0;
            for (int64_t v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            ids[i * T + WORD + 1 + k] = (int32_t)best;
        }
    }
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        int ok = 1;
        for (int k = 0; k < ANS; k++) ok &= ids[i * T + WORD + 1 + k] == task[i * LINE + WORD + 1 + k];
        right += ok;
    }
    *acc = (double)right / (double)n;
    rc = 0;
done:
    free(ids);
    free(logits);
    model_free(m);
    be->ops->destroy(be);
    return rc;
}

static void base_config(TrainConfig *c, const char *method, const char *model, const char *data, const char *out,
                        const char *device, int64_t threads) {
    OwError ignored;
    train_config_defaults(c);
    train_config_apply_method(c, method, &ignored);
    snprintf(c->model, sizeof c->model, "%s", model);
    snprintf(c->data, sizeof c->data, "%s", data);
    snprintf(c->out, sizeof c->out, "%s", out);
    snprintf(c->device, sizeof c->device, "%s", device);
    c->threads = threads;
    c->batch_size = 16;
    c->block_size = 60;
    c->val_split = 0.1;
    c->eval_batches = 8;
    c->log_every = 25;
}

int cmd_demo(int argc, char **argv) {
    const char *out = "owlore-demo", *device = "auto";
    int64_t threads = 0, pre_steps = 300, ft_steps = 450, seed = 1234;
    ArgSpec specs[] = {
        {"out", ARG_STR, &out, "DIR", "where the demo writes its models and runs (default owlore-demo)", NULL},
        {"pretrain-steps", ARG_INT, &pre_steps, "N", "pre-training steps (default 300)", NULL},
        {"finetune-steps", ARG_INT, &ft_steps, "N", "OwLore fine-tuning steps (default 450)", NULL},
        {"seed", ARG_INT, &seed, "N", "seed (default 1234)", NULL},
        {"device", ARG_STR, &device, "DEV", "cuda | cuda:N | cpu | auto (default)", NULL},
        {"threads", ARG_INT, &threads, "N", "CPU threads (0: all)", NULL},
    };
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    ArgsResult res;
    OwError err;
    int parsed = cmd_args(
        "demo", argc, argv, specs, nspecs, "owlore demo [--out DIR] [flags]",
        "Builds a small byte-level LLaMA, pre-trains it on a generated corpus, computes its OWL\n"
        "outlier ratios, fine-tunes it with OwLore on a new generated task (continue the alphabet after a word), and\n"
        "prints held-out loss and exact-match accuracy before and after. Needs no downloads.",
        &res);
    if (parsed >= 0) return parsed;
    double t0 = ow_now();
    char *base = ow_path_join(out, "base"), *pre_run = ow_path_join(out, "pretrain"),
         *ft_run = ow_path_join(out, "finetune");
    char *pre_data = ow_path_join(out, "pretrain.bin"), *ft_data = ow_path_join(out, "task.bin");
    char *ratios = ow_path_join(out, "ratios.json");
    char *pre_model = ow_path_join(pre_run, "model"), *ft_model = ow_path_join(ft_run, "model");
    int rc = 1;
    Backend *be = NULL;
    Model *m = NULL;
    int32_t *task = NULL;
    uint8_t *mask = NULL;
    if (ow_mkdir_p(out, &err) != 0) goto done;
    /* the demo's runs start afresh (a run directory with checkpoints only resumes) */
    if (ow_remove_tree(pre_run, &err) != 0 || ow_remove_tree(ft_run, &err) != 0) goto done;

    /* 1. a small byte-level LLaMA */
    ModelConfig mc = {.architecture = "LlamaForCausalLM",
                      .model_type = "llama",
                      .vocab_size = 256,
                      .hidden_size = 96,
                      .intermediate_size = 256,
                      .num_layers = 4,
                      .num_heads = 4,
                      .num_kv_heads = 2,
                      .head_dim = 24,
                      .max_position_embeddings = 256,
                      .rms_norm_eps = 1e-5,
                      .rope_theta = 10000.0,
                      .bos_token_id = -1,
                      .eos_token_id = -1,
                      .torch_dtype = "float32"};
    be = backend_create(device, &(BackendOptions){.threads = (int)threads}, &err);
    if (!be || model_create(be, &mc, &m, &err) != 0) goto done;
    model_init_random(m, (uint64_t)seed, 0.02, NULL);
    if (model_save_hf(m, base, OW_F32, 0, NULL, &err) != 0) goto done;
    printf("[1/5] created a byte-level LLaMA (%d blocks, hidden %lld, %lld parameters) in %s\n", (int)mc.num_layers,
           (long long)mc.hidden_size, (long long)model_config_param_count(&mc), base);
    model_free(m);
    m = NULL;
    be->ops->destroy(be);
    be = NULL;

    /* 2. pre-training on the generated corpus */
    int64_t n;
    int32_t *pre = make_pretrain(12000, (uint64_t)seed, &n);
    rc = tokfile_write(pre_data, pre, NULL, n, 256, NULL, 0, 0, 0, &err);
    free(pre);
    rc = rc ? 1 : 0;
    if (rc) goto done;
    rc = 1;
    TrainConfig c;
    TrainSummary s;
    base_config(&c, "full", base, pre_data, pre_run, device, threads);
    c.steps = pre_steps;
    c.lr = 2e-3;
    c.schedule = LR_COSINE;
    c.warmup = 20;
    printf("[2/5] pre-training (full AdamW, %lld steps) on a generated corpus of %lld bytes\n", (long long)pre_steps,
           (long long)n);
    if (train_run(&c, &s, &err) != 0) goto done;
    printf("      loss %.3f -> %.3f, validation %.3f -> %.3f\n", s.first_loss, s.last_loss, s.first_val, s.last_val);

    /* 3. outlier ratios of the pre-trained model */
    {
        OutlierResult r;
        TokData d;
        be = backend_create(device, &(BackendOptions){.threads = (int)threads}, &err);
        if (!be || model_load_hf(be, pre_model, &m, &err) != 0) goto done;
        if (tokfile_read(pre_data, &d, &err) != 0) goto done;
        int orc = owl_compute(m, &d, 32, 120, 13.0, 8, (uint64_t)seed, &r, &err);
        tokdata_free(&d);
        if (orc != 0) goto done;
        orc = owl_write_json(&r, pre_model, ratios, &err);
        printf("[3/5] OWL outlier ratios (M = 13):");
        for (int l = 0; l < r.num_layers; l++) printf(" %.3f%%", r.ratios[l]);
        printf("  -> sampling probabilities");
        for (int l = 0; l < r.num_layers; l++) printf(" %.2f", r.probs[l]);
        printf("\n");
        owl_result_free(&r);
        model_free(m);
        m = NULL;
        be->ops->destroy(be);
        be = NULL;
        if (orc != 0) goto done;
    }

    /* 4. the fine-tuning task; held-out words for exact match */
    {
        int64_t ntrain = 6000, nheld = 256;
        Rng r;
        rng_init(&r, (uint64_t)seed + 1, RNG_STREAM_DEMO);
        task = ow_xmalloc((size_t)(ntrain + nheld) * LINE * sizeof(int32_t));
        mask = ow_xmalloc((size_t)(ntrain + nheld) * LINE);
        make_task(ntrain + nheld, &r, task, mask);
        if (tokfile_write(ft_data, task, mask, ntrain * LINE, 256, NULL, 0, 0, 0, &err) != 0) goto done;
        double acc0, acc1;
        const int32_t *held = task + ntrain * LINE;
        if (exact_match(pre_model, held, nheld, device, threads, &acc0, &err) != 0) goto done;
        base_config(&c, "owlore", pre_model, ft_data, ft_run, device, threads);
        c.steps = ft_steps;
        c.gamma = 2;
        c.interval = 25;
        c.rank = 32;
        c.update_gap = 50;
        c.lr = 5e-3;
        c.projector = PROJ_RANDOMIZED;
        snprintf(c.ratios, sizeof c.ratios, "%s", ratios);
        printf(
            "[4/5] fine-tuning with OwLore (gamma 2 of 4 blocks, resampled every 25 steps, GaLore rank 32, %lld steps) "
            "to continue the alphabet after a word (abcd=ef)\n",
            (long long)ft_steps);
        if (train_run(&c, &s, &err) != 0) goto done;
        if (exact_match(ft_model, held, nheld, device, threads, &acc1, &err) != 0) goto done;
        printf("[5/5] held-out results (%lld words never seen in training):\n", (long long)nheld);
        printf("      validation loss on the answers: %.4f before -> %.4f after\n", s.first_val, s.last_val);
        printf("      exact-match accuracy:           %5.1f%% before -> %5.1f%% after\n", 100 * acc0, 100 * acc1);
        printf("demo finished in %.0f s; runs, metrics.jsonl and models are in %s\n", ow_now() - t0, out);
    }
    rc = 0;
done:
    if (rc) cmd_report_error("demo", &err);
    model_free(m);
    if (be) be->ops->destroy(be);
    free(task);
    free(mask);
    free(base);
    free(pre_run);
    free(ft_run);
    free(pre_data);
    free(ft_data);
    free(ratios);
    free(pre_model);
    free(ft_model);
    return rc;
}

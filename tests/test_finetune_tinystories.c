// ctest-labels: cpu slow
/* test_finetune_tinystories.c: the real TinyStories-656K model fine-tuned on
 * tinyshakespeare (token ids made by transformers' tokenizer, fixture
 * tests/fixtures/tinyshakespeare; the last part held out) for 200 steps with
 * every method: the validation loss must go down for each. Prints the table
 * (method, validation loss before and after, wall time). And OwLore with the
 * randomized projector follows the exact projector's loss curve. */
#include "core/fileio.h"
#include "data/tokenizer_mode.h"
#include "data/tokfile.h"
#include "model/safetensors.h"
#include "test_support.h"
#include "train_fixture.h"
#include "train/trainer.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int32_t *load_ids(const char *rel, int64_t *n) {
    char *p = ts_fixture_path(rel);
    SafeTensors st;
    OwError err;
    cr_assert_eq(safetensors_open(p, &st, &err), 0, "%s", err.msg);
    const StTensor *t = safetensors_find(&st, "ids");
    cr_assert(t && t->dtype == OW_U16, "%s: ids must be U16", p);
    *n = t->shape[0];
    int32_t *ids = malloc((size_t)*n * sizeof(int32_t));
    const uint16_t *u = t->data;
    for (int64_t i = 0; i < *n; i++) ids[i] = u[i];
    safetensors_close(&st);
    free(p);
    return ids;
}

/* tinyshakespeare's token ids as a token file in dir (the last *split of it held out). */
static char *shakespeare_tokens(const char *dir, double *split) {
    int64_t ntr, nva;
    int32_t *tr = load_ids("tinyshakespeare/train.safetensors", &ntr);
    int32_t *va = load_ids("tinyshakespeare/val.safetensors", &nva);
    int32_t *all = malloc((size_t)(ntr + nva) * sizeof(int32_t));
    memcpy(all, tr, (size_t)ntr * sizeof(int32_t));
    memcpy(all + ntr, va, (size_t)nva * sizeof(int32_t));
    char *data = ow_path_join(dir, "shakespeare.bin");
    OwError err;
    /* made by transformers' tokenizer: the file names it (a token file without a tokenizer hash is refused) */
    char *model = ts_shared_path("data/real/hf/TinyStories-656K");
    Tokenizer *tok;
    cr_assert_eq(tokenizer_load_mode(model, TOKENIZER_MODE_TRANSFORMERS, &tok, NULL, &err), 0, "%s", err.msg);
    uint64_t th = tokenizer_hash(tok);
    tokenizer_free(tok);
    free(model);
    cr_assert_eq(tokfile_write(data, all, NULL, ntr + nva, 2048, NULL, 0, th, 0, &err), 0, "%s", err.msg);
    *split = (double)nva / (double)(ntr + nva);
    free(tr);
    free(va);
    free(all);
    return data;
}

/* 200 steps of `method` on TinyStories-656K with the settings of these tests. */
static void finetune_config(TrainConfig *c, const char *method, const char *model, const char *data, const char *out,
                            double split) {
    ts_train_config(c, method, model, data, out, "cpu");
    c->threads = 0; /* all cores */
    c->steps = 200;
    c->batch_size = 4;
    c->block_size = 128;
    c->val_split = split;
    c->eval_batches = 16;
    c->log_every = 50;
    c->gamma = 1;     /* the model has 2 blocks */
    c->rank = 32;     /* k/v projections are [64, 128] */
    c->nsamples = 16; /* OWL calibration for owl sampling */
    c->seqlen = 256;
}

Test(finetune, tinystories_on_tinyshakespeare_every_method, .timeout = 1500) {
    char *dir = ts_tmpdir();
    double split;
    char *data = shakespeare_tokens(dir, &split);
    OwError err;
    char *model = ts_shared_path("data/real/hf/TinyStories-656K");
    const char *methods[] = {"owlore", "owlore-fullrank", "lisa", "galore", "full"};
    fprintf(stderr, "\n| method | validation loss before | after | wall time s |\n|---|---|---|---|\n");
    for (int i = 0; i < 5; i++) {
        TrainConfig c;
        char *out = ow_path_join(dir, methods[i]);
        finetune_config(&c, methods[i], model, data, out, split);
        TrainSummary s;
        cr_assert_eq(train_run(&c, &s, &err), 0, "%s: %s", methods[i], err.msg);
        fprintf(stderr, "| %s | %.4f | %.4f | %.1f |\n", methods[i], s.first_val, s.last_val, s.seconds);
        cr_assert(isfinite(s.first_val) && isfinite(s.last_val));
        cr_assert_lt(s.last_val, s.first_val, "%s: validation loss did not go down (%.4f -> %.4f)", methods[i],
                     s.first_val, s.last_val);
        free(out);
    }
    free(model);
    free(data);
    ts_rmtree(dir);
    free(dir);
}

/* The randomized range finder (the fast mode) against the exact SVD (the reference
 * mode) in OwLore: the same data, the same sampled blocks, 200 steps with projector
 * refreshes every 20 of a tensor's steps. The two loss curves agree step for step far
 * inside the step-to-step noise of the curve itself (the spread of the loss between
 * neighbouring steps), and the validation losses at the end agree. */
Test(finetune, randomized_projector_follows_the_exact_loss_curve, .timeout = 900) {
    char *dir = ts_tmpdir();
    double split;
    char *data = shakespeare_tokens(dir, &split);
    char *model = ts_shared_path("data/real/hf/TinyStories-656K");
    enum { STEPS = 200 };
    const char *kinds[] = {"exact", "randomized"};
    double loss[2][STEPS], val[2];
    for (int k = 0; k < 2; k++) {
        TrainConfig c;
        char *out = ow_path_join(dir, kinds[k]);
        finetune_config(&c, "owlore", model, data, out, split);
        c.rank = 24; /* rank + oversample 32 < 64, the smallest side: every projector is randomized */
        c.update_gap = 20;
        OwError err;
        cr_assert_eq(train_config_set_string(&c, "projector", kinds[k], "test", &err), 0, "%s", err.msg);
        TrainSummary s;
        cr_assert_eq(train_run(&c, &s, &err), 0, "%s: %s", kinds[k], err.msg);
        ts_read_metric(out, "loss", loss[k], STEPS);
        val[k] = s.last_val;
        free(out);
    }
    double worst = 0, mean = 0, noise = 0;
    for (int i = 0; i < STEPS; i++) {
        double d = fabs(loss[1][i] - loss[0][i]);
        worst = fmax(worst, d);
        mean += d / STEPS;
        if (i) noise += fabs(loss[0][i] - loss[0][i - 1]) / (STEPS - 1);
    }
    fprintf(stderr,
            "randomized vs exact projector, 200 steps: mean |loss difference| %.2e, largest %.2e; mean "
            "step-to-step change of the exact curve %.2e; validation %.5f vs %.5f\n",
            mean, worst, noise, val[1], val[0]);
    cr_expect_lt(mean, 0.02 * noise, "the curves differ by %.3e on average, the curve's own noise is %.3e", mean,
                 noise);
    cr_expect_lt(fabs(val[1] - val[0]), 0.01 * val[0], "validation loss %.5f (randomized) vs %.5f (exact)", val[1],
                 val[0]);
    free(model);
    free(data);
    ts_rmtree(dir);
    free(dir);
}

// ctest-labels: cpu slow
/* test_finetune_tinystories.c: the real TinyStories-656K model fine-tuned on
 * tinyshakespeare (token ids made by transformers' tokenizer, fixture
 * tests/fixtures/tinyshakespeare; the last part held out) for 200 steps with
 * every method: the validation loss must go down for each. Prints the table
 * (method, validation loss before and after, wall time). */
#include "core/fileio.h"
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

Test(finetune, tinystories_on_tinyshakespeare_every_method, .timeout = 1500) {
    int64_t ntr, nva;
    int32_t *tr = load_ids("tinyshakespeare/train.safetensors", &ntr);
    int32_t *va = load_ids("tinyshakespeare/val.safetensors", &nva);
    int32_t *all = malloc((size_t)(ntr + nva) * sizeof(int32_t));
    memcpy(all, tr, (size_t)ntr * sizeof(int32_t));
    memcpy(all + ntr, va, (size_t)nva * sizeof(int32_t));
    char *dir = ts_tmpdir();
    char *data = ow_path_join(dir, "shakespeare.bin");
    OwError err;
    cr_assert_eq(tokfile_write(data, all, NULL, ntr + nva, 2048, NULL, 0, 0, 0, &err), 0, "%s", err.msg);
    char *model = ts_shared_path("data/real/hf/TinyStories-656K");
    const char *methods[] = {"owlore", "owlore-fullrank", "lisa", "galore", "full"};
    double split = (double)nva / (double)(ntr + nva);
    fprintf(stderr, "\n| method | validation loss before | after | wall time s |\n|---|---|---|---|\n");
    for (int i = 0; i < 5; i++) {
        TrainConfig c;
        char *out = ow_path_join(dir, methods[i]);
        ts_train_config(&c, methods[i], model, data, out, "cpu");
        c.threads = 0; /* all cores */
        c.steps = 200;
        c.batch_size = 4;
        c.block_size = 128;
        c.val_split = split;
        c.eval_batches = 16;
        c.log_every = 50;
        c.gamma = 1;       /* the model has 2 blocks */
        c.rank = 32;       /* k/v projections are [64, 128] */
        c.nsamples = 16;   /* OWL calibration for owl sampling */
        c.seqlen = 256;
        TrainSummary s;
        cr_assert_eq(train_run(&c, &s, &err), 0, "%s: %s", methods[i], err.msg);
        fprintf(stderr, "| %s | %.4f | %.4f | %.1f |\n", methods[i], s.first_val, s.last_val, s.seconds);
        cr_assert(isfinite(s.first_val) && isfinite(s.last_val));
        cr_assert_lt(s.last_val, s.first_val, "%s: validation loss did not go down (%.4f -> %.4f)", methods[i], s.first_val,
                     s.last_val);
        free(out);
    }
    free(model);
    free(data);
    free(tr);
    free(va);
    free(all);
    ts_rmtree(dir);
    free(dir);
}

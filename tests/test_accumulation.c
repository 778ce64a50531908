// ctest-labels: cpu
/* test_accumulation.c: gradient accumulation semantics.
 * - full mode: k micro-batches of B sequences give the same step as one batch
 *   of k*B sequences (the loss is the mean over all the step's targets);
 * - projected mode: the projector of a refresh step comes from the first
 *   micro-batch, R accumulates P^T G_k, and the clipping norm uses ||R||. */
#include "backend/backend.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "data/tokfile.h"
#include "model/safetensors.h"
#include "optim/optimizer.h"
#include "test_support.h"
#include "train_fixture.h"
#include "train/trainer.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void run(const char *model, const char *data, const char *out, int64_t B, int64_t accum, const char *mode) {
    TrainConfig c;
    OwError err;
    ts_train_config(&c, "galore", model, data, out, "cpu");
    c.rank = 8;
    c.update_gap = 2;
    c.lr = 1e-2;
    c.batch_size = B;
    c.block_size = 16;
    c.grad_accum = accum;
    c.steps = 5;
    c.val_split = 0;
    c.shuffle = 0;
    c.threads = 1;
    cr_assert_eq(train_config_set_string(&c, "accum_mode", mode, "test", &err), 0);
    TrainSummary s;
    cr_assert_eq(train_run(&c, &s, &err), 0, "%s", err.msg);
}

Test(accumulation, full_mode_equals_the_large_batch) {
    char *dir = ts_tmpdir();
    char *model = ts_fixture_path("models/mha_untied");
    char *data = ow_path_join(dir, "d.bin");
    int32_t ids[5 * 4 * 16 + 1];
    Rng r;
    rng_init(&r, 3, 9);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) ids[i] = (int32_t)rng_below(&r, 97);
    OwError err;
    cr_assert_eq(tokfile_write(data, ids, NULL, (int64_t)(sizeof ids / sizeof ids[0]), 97, NULL, 0, 0, 0, &err), 0);
    char *a = ow_path_join(dir, "a"), *b = ow_path_join(dir, "b");
    run(model, data, a, 4, 1, "full");
    run(model, data, b, 2, 2, "full");
    double la[5], lb[5];
    ts_read_metric(a, "loss", la, 5);
    ts_read_metric(b, "loss", lb, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_float_eq(la[i], lb[i], 1e-5 * fabs(la[i]), "step %d: %.8f vs %.8f", i, la[i], lb[i]);
    /* the final weights agree too, up to rounding: the two runs add the same
     * gradients in a different order, and Adam's normalisation magnifies that
     * for near-zero gradient entries */
    char *ma = ow_path_join(a, "model"), *mb = ow_path_join(b, "model");
    SafeTensors sa, sb;
    cr_assert_eq(safetensors_open(ma, &sa, &err), 0, "%s", err.msg);
    cr_assert_eq(safetensors_open(mb, &sb, &err), 0, "%s", err.msg);
    for (int i = 0; i < sa.ntensors; i++) {
        const StTensor *x = &sa.tensors[i], *y = safetensors_find(&sb, x->name);
        cr_assert(y != NULL);
        double e = ts_rel_err(y->data, x->data, x->nbytes / 4);
        cr_assert_lt(e, 1e-4, "%s differs by %.3g", x->name, e);
    }
    safetensors_close(&sa);
    safetensors_close(&sb);
    /* projected mode runs too, and its first step (same projector source when
     * the step refreshes from micro-batch 0 only) differs from full mode */
    char *c = ow_path_join(dir, "c");
    run(model, data, c, 2, 2, "projected");
    double lc[5];
    ts_read_metric(c, "loss", lc, 5);
    cr_assert_float_eq(lc[0], lb[0], 1e-6 * fabs(lb[0]), "the first loss comes before any update");
    free(c);
    free(ma);
    free(mb);
    free(a);
    free(b);
    free(data);
    free(model);
    ts_rmtree(dir);
    free(dir);
}

/* Optimizer level: feed two micro-batch gradients by hand in projected mode. */
Test(accumulation, projected_mode_semantics) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    ModelConfig mc = {.architecture = "LlamaForCausalLM",
                      .model_type = "llama",
                      .vocab_size = 11,
                      .hidden_size = 16,
                      .intermediate_size = 24,
                      .num_layers = 1,
                      .num_heads = 2,
                      .num_kv_heads = 2,
                      .head_dim = 8,
                      .max_position_embeddings = 32,
                      .rms_norm_eps = 1e-5,
                      .rope_theta = 10000,
                      .bos_token_id = -1,
                      .eos_token_id = -1};
    Model *m;
    cr_assert_eq(model_create(be, &mc, &m, &err), 0, "%s", err.msg);
    model_init_random(m, 1, 0.3, NULL);
    OptimConfig oc = {.kind = OPT_GALORE_ADAMW,
                      .beta1 = 0.9,
                      .beta2 = 0.999,
                      .eps = 1e-6,
                      .rank = 4,
                      .update_gap = 10,
                      .scale = 1.0,
                      .projector = PROJ_EXACT,
                      .inactive = INACTIVE_KEEP,
                      .seed = 1};
    Optimizer o;
    cr_assert_eq(optimizer_init(&o, m, &oc, &err), 0);
    o.accumulate_projected = 1;
    Param *q = model_block_param(m, 0, BW_Q); /* [16, 16]: right side */
    cr_assert_eq(optimizer_activate(&o, q, &err), 0);
    int64_t n = tensor_numel(&q->w);
    float *g0 = malloc((size_t)n * 4), *g1 = malloc((size_t)n * 4);
    Rng r;
    rng_init(&r, 4, 4);
    for (int64_t i = 0; i < n; i++) {
        g0[i] = (float)rng_normal(&r);
        g1[i] = (float)rng_normal(&r);
    }
    /* micro-batch 0 */
    optimizer_begin_micro(&o, 0, 0);
    be->ops->upload(be, &q->g, g0, OW_F32);
    q->g_fresh = 0; /* g holds a gradient (model.h) */
    cr_assert_eq(optimizer_absorb(&o, q, &err), 0);
    cr_assert(q->g_fresh, "the full-rank gradient is released after projecting (the next one overwrites it)");
    /* micro-batch 1 */
    optimizer_begin_micro(&o, 1, 1);
    be->ops->upload(be, &q->g, g1, OW_F32);
    q->g_fresh = 0;
    cr_assert_eq(optimizer_absorb(&o, q, &err), 0);
    ParamState *st = &o.st[q - m->params];
    cr_assert_eq(st->refreshes, 1);
    /* P must be the top-4 right singular vectors of g0 alone */
    Tensor G = tensor_2d(OW_F32, 16, 16), P = tensor_2d(OW_F32, 4, 16), S = tensor_2d(OW_F32, 16, 16);
    cr_assert_eq(be->ops->alloc(be, &G, MEM_OTHER, "t", &err), 0);
    cr_assert_eq(be->ops->alloc(be, &P, MEM_OTHER, "t", &err), 0);
    cr_assert_eq(be->ops->alloc(be, &S, MEM_OTHER, "t", &err), 0);
    be->ops->upload(be, &G, g0, OW_F32);
    cr_assert_eq(be->ops->svd_top(be, &P, &G, 4, 1, &err), 0);
    float pa[64], pb[64];
    be->ops->download(be, pa, OW_F32, &P);
    be->ops->download(be, pb, OW_F32, &st->P);
    cr_assert_lt(ts_rel_err(pb, pa, 64), 1e-6, "projector from micro-batch 0");
    /* R = P^T (g0 + g1) in the right layout: (g0 + g1) P^T */
    for (int64_t i = 0; i < n; i++) g0[i] += g1[i];
    be->ops->upload(be, &S, g0, OW_F32);
    Tensor Rr = tensor_2d(OW_F32, 16, 4);
    cr_assert_eq(be->ops->alloc(be, &Rr, MEM_OTHER, "t", &err), 0);
    be->ops->matmul(be, &Rr, &S, 0, &P, 1, 1.0f, 0.0f);
    float ra[64], rb[64];
    be->ops->download(be, ra, OW_F32, &Rr);
    be->ops->download(be, rb, OW_F32, &st->R);
    cr_assert_lt(ts_rel_err(rb, ra, 64), 1e-5, "R accumulates the projected gradients");
    double want = be->ops->sum_squares(be, &Rr);
    double gn;
    cr_assert_eq(optimizer_step(&o, 0.01, 1.0, &gn, &err), 0);
    cr_assert_float_eq(gn, sqrt(want), 1e-6 * sqrt(want), "clipping uses the projected norm");
    Tensor *ts[] = {&G, &P, &S, &Rr};
    for (int i = 0; i < 4; i++) be->ops->release(be, ts[i], MEM_OTHER);
    free(g0);
    free(g1);
    optimizer_free(&o);
    model_free(m);
    be->ops->destroy(be);
}

// ctest-labels: cpu
/* test_model_reference.c: the CPU model against transformers (fixtures made
 * by tests/reference/make_model_fixtures.py and make_tinystories_fixture.py):
 * logits, loss and every parameter gradient within 1e-4 relative
 * (max |diff| / max |ref|), with and without recomputation, with blocks
 * frozen, and the real TinyStories-656K model on real text. */
#include "backend/backend.h"
#include "core/fileio.h"
#include "model/model.h"
#include "model/model_internal.h"
#include "model/safetensors.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

typedef struct {
    Backend *be;
    Model *m;
    SafeTensors exp;
    int64_t B, T;
    int32_t *ids, *targets;
} Fix;

static const StTensor *need(const SafeTensors *st, const char *name) {
    const StTensor *t = safetensors_find(st, name);
    cr_assert(t != NULL, "fixture tensor %s missing", name);
    return t;
}

static void fix_open(Fix *f, const char *model_dir, const char *expected_path) {
    OwError err;
    f->be = backend_create_cpu(2, 0, &err);
    cr_assert(f->be != NULL, "%s", err.msg);
    cr_assert_eq(model_load_hf(f->be, model_dir, &f->m, &err), 0, "%s", err.msg);
    cr_assert_eq(safetensors_open(expected_path, &f->exp, &err), 0, "%s", err.msg);
    const StTensor *ids = need(&f->exp, "input_ids"), *labels = need(&f->exp, "labels");
    f->B = ids->shape[0];
    f->T = ids->shape[1];
    int64_t N = f->B * f->T;
    f->ids = malloc((size_t)N * sizeof(int32_t));
    f->targets = malloc((size_t)N * sizeof(int32_t));
    memcpy(f->ids, ids->data, (size_t)N * sizeof(int32_t));
    const int32_t *lab = labels->data;
    /* HF shifts labels inside the model: target of position t is label t + 1 */
    for (int64_t b = 0; b < f->B; b++)
        for (int64_t t = 0; t < f->T; t++) f->targets[b * f->T + t] = t + 1 < f->T ? lab[b * f->T + t + 1] : -100;
}

static void fix_close(Fix *f) {
    free(f->ids);
    free(f->targets);
    safetensors_close(&f->exp);
    model_free(f->m);
    f->be->ops->destroy(f->be);
}

static double compare(const float *got, const StTensor *ref, const char *what) {
    int64_t n = (int64_t)(ref->nbytes / 4);
    double e = ts_rel_err(got, ref->data, (size_t)n);
    cr_assert_lt(e, TOL, "%s: relative error %.3g", what, e);
    return e;
}

static void check_logits(Fix *f) {
    OwError err;
    cr_assert_eq(model_prepare(f->m, f->B, f->T, 1, &err), 0, "%s", err.msg);
    int64_t N = f->B * f->T, V = f->m->cfg.vocab_size;
    float *logits = malloc((size_t)(N * V) * sizeof(float));
    cr_assert_eq(model_forward_logits(f->m, f->ids, logits, &err), 0, "%s", err.msg);
    compare(logits, need(&f->exp, "logits"), "logits");
    free(logits);
}

/* Runs forward+backward with the current trainable flags; checks the loss and
 * the gradients of trainable parameters, and that frozen ones have none. */
static void check_grads(Fix *f, int recompute, double *max_err) {
    OwError err;
    cr_assert_eq(model_prepare(f->m, f->B, f->T, recompute, &err), 0, "%s", err.msg);
    model_zero_grads(f->m);
    int64_t N = f->B * f->T, n = 0;
    for (int64_t i = 0; i < N; i++) n += f->targets[i] != -100;
    double sum;
    int64_t cnt;
    cr_assert_eq(model_forward_backward(f->m, f->ids, f->targets, 1.0f / (float)n, NULL, &sum, &cnt, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cnt, n);
    float loss = (float)(sum / (double)n);
    double e = compare(&loss, need(&f->exp, "loss"), "loss");
    if (e > *max_err) *max_err = e;
    for (int i = 0; i < f->m->nparams; i++) {
        Param *p = &f->m->params[i];
        if (!p->trainable) {
            cr_assert(p->g.data == NULL, "%s is frozen but has a gradient", p->name);
            continue;
        }
        char name[160];
        snprintf(name, sizeof name, "grad.%s", p->name);
        const StTensor *ref = need(&f->exp, name);
        cr_assert_eq((int64_t)(ref->nbytes / 4), tensor_numel(&p->g), "%s size", name);
        e = compare(p->g.data, ref, name);
        if (e > *max_err) *max_err = e;
    }
}

static void set_all_trainable(Fix *f, int on) {
    OwError err;
    for (int i = 0; i < f->m->nparams; i++) cr_assert_eq(model_set_trainable(f->m, &f->m->params[i], on, &err), 0);
}

static void set_block(Fix *f, int layer, int on) {
    OwError err;
    for (int b = 0; b < BW_COUNT; b++)
        cr_assert_eq(model_set_trainable(f->m, model_block_param(f->m, layer, (BlockWeight)b), on, &err), 0);
}

static void run_fixture(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    char *dir = ts_fixture_path(rel);
    char *exp = ow_path_join(dir, "expected.safetensors");
    Fix f;
    fix_open(&f, dir, exp);
    check_logits(&f);
    double worst = 0;
    set_all_trainable(&f, 1);
    check_grads(&f, 1, &worst);
    check_grads(&f, 0, &worst);
    /* freeze the top block: its weight gradients are absent, everything below is unchanged */
    int L = (int)f.m->cfg.num_layers;
    set_block(&f, L - 1, 0);
    check_grads(&f, 1, &worst);
    /* only the top block and the head train, embeddings frozen: backward stops early */
    set_all_trainable(&f, 0);
    set_block(&f, L - 1, 1);
    OwError err;
    cr_assert_eq(model_set_trainable(f.m, f.m->final_norm, 1, &err), 0);
    if (f.m->lm_head != f.m->embed) cr_assert_eq(model_set_trainable(f.m, f.m->lm_head, 1, &err), 0);
    cr_assert_eq(model_lowest_trainable_block(f.m), L - 1);
    check_grads(&f, 0, &worst);
    /* the MLP and the logits in uneven row chunks give the same results */
    set_all_trainable(&f, 1);
    f.m->mlp_chunk_rows = 5;
    f.m->logits_chunk_rows = 7;
    check_logits(&f);
    check_grads(&f, 1, &worst);
    check_grads(&f, 0, &worst);
    f.m->mlp_chunk_rows = 0;
    f.m->logits_chunk_rows = 0;
    /* a middle block alone (frozen blocks above still pass gradients down) */
    set_all_trainable(&f, 0);
    set_block(&f, 0, 1);
    check_grads(&f, 1, &worst);
    cr_log_info("%s: worst relative error %.3g over logits, loss and gradients", name, worst);
    fix_close(&f);
    free(exp);
    free(dir);
}

Test(model_reference, mha_untied) { run_fixture("mha_untied"); }
Test(model_reference, gqa_tied) { run_fixture("gqa_tied"); }
Test(model_reference, llama3_rope_scaling) { run_fixture("llama3_rope"); }
Test(model_reference, mistral_explicit_head_dim) { run_fixture("mistral_headdim"); }

Test(model_reference, v4_config_layout_gives_the_same_model) {
    /* the transformers-4 spelling of the same config (real checkpoints use it) */
    char *dir = ts_fixture_path("models/llama3_rope");
    char *tmp = ts_tmpdir();
    const char *files[] = {"model.safetensors", "expected.safetensors"};
    OwError err;
    for (int i = 0; i < 2; i++) {
        char *s = ow_path_join(dir, files[i]), *d = ow_path_join(tmp, files[i]);
        cr_assert_eq(ow_copy_file(s, d, &err), 0, "%s", err.msg);
        free(s);
        free(d);
    }
    char *s = ow_path_join(dir, "config.v4.json"), *d = ow_path_join(tmp, "config.json");
    cr_assert_eq(ow_copy_file(s, d, &err), 0);
    free(s);
    free(d);
    char *exp = ow_path_join(tmp, "expected.safetensors");
    Fix f;
    fix_open(&f, tmp, exp);
    check_logits(&f);
    fix_close(&f);
    free(exp);
    ts_rmtree(tmp);
    free(tmp);
    free(dir);
}

Test(model_reference, tinystories_real_model_on_real_text) {
    char *dir = ts_shared_path("data/real/hf/TinyStories-656K");
    char *exp = ts_fixture_path("tinystories/first8.safetensors");
    Fix f;
    fix_open(&f, dir, exp);
    OwError err;
    cr_assert(f.m->cfg.tie_word_embeddings);
    cr_assert_eq(model_prepare(f.m, f.B, f.T, 1, &err), 0, "%s", err.msg);
    int64_t N = f.B * f.T, n = 0;
    for (int64_t i = 0; i < N; i++) n += f.targets[i] != -100;
    float *losses = malloc((size_t)N * sizeof(float));
    cr_assert_eq(model_forward_losses(f.m, f.ids, f.targets, losses, &err), 0, "%s", err.msg);
    double sum = 0;
    float seq[8];
    for (int64_t b = 0; b < f.B; b++) {
        double s = 0;
        int64_t c = 0;
        for (int64_t t = 0; t < f.T; t++) {
            s += losses[b * f.T + t];
            c += f.targets[b * f.T + t] != -100;
        }
        sum += s;
        seq[b] = (float)(s / (double)c);
    }
    float loss = (float)(sum / (double)n);
    double e = compare(&loss, need(&f.exp, "loss"), "TinyStories loss");
    compare(seq, need(&f.exp, "seq_losses"), "per-story losses");
    cr_log_info("TinyStories-656K on 8 real stories: loss %.7f (relative error %.2g)", loss, e);
    /* logits of the first story's first 16 positions */
    int64_t V = f.m->cfg.vocab_size;
    float *logits = malloc((size_t)(N * V) * sizeof(float));
    cr_assert_eq(model_forward_logits(f.m, f.ids, logits, &err), 0);
    compare(logits, need(&f.exp, "logits_first"), "logits of story 0");
    free(logits);
    free(losses);
    fix_close(&f);
    free(exp);
    free(dir);
}

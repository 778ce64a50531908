// ctest-labels: gpu
/* test_cuda_model.c: the model on the CUDA backend against the fp32
 * transformers fixtures of tests/fixtures/models (logits, loss, every
 * parameter gradient) and the real TinyStories-656K model on real text
 * (losses and logits from transformers, gradients from the CPU backend):
 * - bf16 (the backend's default: bf16 weights and activations, F32 gradients),
 *   with the tensor-core and with the simple attention kernels. Tolerances
 *   (max |diff| / max |ref|): logits 5e-2, gradients 1.5e-1, loss within 1e-2
 *   absolute. bf16 storage alone accounts for errors of this size on these
 *   tiny random models (up to ~9 % on q/k-path gradients, where dS = P (dP - D)
 *   cancels); a real bug gives O(1) errors.
 * - F32 (set_dtypes): the same kernels in fp32 must match like the
 *   CPU backend does: 1e-4 on logits, gradients and loss (3e-4 on TinyStories
 *   gradients against the CPU).
 * Also: bitwise determinism (a step with recomputation equals the step
 * without), and activations over a memory cap failing cleanly. */
#include "backend/backend.h"
#include "core/fileio.h"
#include "cuda/cuda_backend.h"
#include "model/decoder.h"
#include "model/model.h"
#include "model/preset.h"
#include "model/safetensors.h"
#include "test_support.h"
#include "train/trainer.h"
#include "train_fixture.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double logits, grad, loss; /* loss: absolute for bf16, relative for F32 */
    int loss_relative;
} Tol;

static const Tol k_tol_bf16 = {5e-2, 1.5e-1, 1e-2, 0};
static const Tol k_tol_f32 = {1e-4, 1e-4, 1e-4, 1};
/* TinyStories gradients against the CPU: sums over 1,504 tokens whose terms
 * cancel (the final norm's weight) differ by ~5e-5 with the summation order */
static const Tol k_tol_f32_tinystories = {1e-4, 3e-4, 1e-4, 1};

typedef enum { MODE_BF16_TC = 0, MODE_BF16_SIMPLE = 1, MODE_F32 = 2 } Mode;

TestSuite(cuda_model, .timeout = 1200);

static Backend *gpu_backend(Mode mode) {
    OwError err;
    Backend *be = backend_create_cuda(0, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    backend_cuda_set_attention_tensor_cores(be, mode == MODE_BF16_TC);
    if (mode == MODE_F32) cr_assert(be->ops->set_dtypes(be, OW_F32, OW_F32, &err) == 0, "%s", err.msg);
    return be;
}

static const char *mode_name(Backend *be, Mode mode, int64_t head_dim) {
    if (mode == MODE_F32) return "F32";
    return backend_cuda_attention_uses_tensor_cores(be, head_dim) ? "bf16, tc attention" : "bf16, simple attention";
}

typedef struct {
    Backend *be;
    Model *m;
    SafeTensors exp;
    int64_t B, T, N, ntargets;
    int32_t *ids, *targets;
} Fix;

static const StTensor *need(const SafeTensors *st, const char *name) {
    const StTensor *t = safetensors_find(st, name);
    cr_assert(t != NULL, "fixture tensor %s missing", name);
    return t;
}

static void fix_open(Fix *f, Backend *be, const char *model_dir, const char *expected_path) {
    OwError err;
    f->be = be;
    cr_assert_eq(model_load_hf(be, model_dir, &f->m, &err), 0, "%s", err.msg);
    cr_assert_eq(safetensors_open(expected_path, &f->exp, &err), 0, "%s", err.msg);
    const StTensor *ids = need(&f->exp, "input_ids"), *labels = need(&f->exp, "labels");
    cr_assert(ids->dtype == OW_I32 && labels->dtype == OW_I32 && ids->ndim == 2);
    f->B = ids->shape[0];
    f->T = ids->shape[1];
    f->N = f->B * f->T;
    f->ids = malloc((size_t)f->N * sizeof(int32_t));
    f->targets = malloc((size_t)f->N * sizeof(int32_t));
    memcpy(f->ids, ids->data, (size_t)f->N * sizeof(int32_t));
    const int32_t *lab = labels->data;
    /* HF shifts labels inside the model: the target of position t is label t + 1 */
    f->ntargets = 0;
    for (int64_t b = 0; b < f->B; b++)
        for (int64_t t = 0; t < f->T; t++) {
            int32_t y = t + 1 < f->T ? lab[b * f->T + t + 1] : -100;
            f->targets[b * f->T + t] = y;
            f->ntargets += y != -100;
        }
}

static void fix_close(Fix *f) {
    free(f->ids);
    free(f->targets);
    safetensors_close(&f->exp);
    model_free(f->m);
}

static double report(const char *what, const float *got, const float *ref, size_t n, double tol) {
    double e = ts_rel_err(got, ref, n);
    if (e <= tol)
        cr_log_info("%-64s max rel err %.3e (tol %.1e)", what, e, tol);
    else
        cr_log_warn("%-64s max rel err %.3e (tol %.1e)  <-- FAIL", what, e, tol);
    cr_expect(e <= tol, "%s: max rel err %.3e exceeds %.1e", what, e, tol);
    return e;
}

static void check_loss(const char *what, double got, double ref, const Tol *tol) {
    double d = fabs(got - ref);
    if (tol->loss_relative) d /= fabs(ref);
    const char *kind = tol->loss_relative ? "rel" : "abs";
    if (d <= tol->loss)
        cr_log_info("%-64s %.7f vs %.7f (%s diff %.2e, tol %.0e)", what, got, ref, kind, d, tol->loss);
    else
        cr_log_warn("%-64s %.7f vs %.7f (%s diff %.2e, tol %.0e)  <-- FAIL", what, got, ref, kind, d, tol->loss);
    cr_expect(d <= tol->loss, "%s: %.7f vs %.7f", what, got, ref);
}

static float *download_f32(Backend *be, const Tensor *t) {
    float *h = malloc((size_t)tensor_numel(t) * sizeof(float) + 1);
    be->ops->download(be, h, OW_F32, t);
    return h;
}

static void set_all_trainable(Model *m) {
    OwError err;
    for (int i = 0; i < m->nparams; i++) cr_assert_eq(model_set_trainable(m, &m->params[i], 1, &err), 0, "%s", err.msg);
}

/* One forward/backward of the mean loss with all parameters trainable; returns the loss. */
static double train_step(Fix *f, int recompute) {
    OwError err;
    cr_assert_eq(model_prepare(f->m, f->B, f->T, recompute, &err), 0, "%s", err.msg);
    model_zero_grads(f->m);
    double sum;
    int64_t cnt;
    cr_assert_eq(model_forward_backward(f->m, f->ids, f->targets, 1.0f / (float)f->ntargets, NULL, &sum, &cnt, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(cnt, f->ntargets);
    return sum / (double)f->ntargets;
}

static void run_fixture(const char *name, Mode mode) {
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    char *dir = ts_fixture_path(rel);
    char *exp = ow_path_join(dir, "expected.safetensors");
    OwError err;
    Backend *be = gpu_backend(mode);
    const Tol *tol = mode == MODE_F32 ? &k_tol_f32 : &k_tol_bf16;
    Fix f;
    fix_open(&f, be, dir, exp);
    const char *kind = mode_name(be, mode, f.m->cfg.head_dim);
    char what[200];

    cr_assert_eq(model_prepare(f.m, f.B, f.T, 1, &err), 0, "%s", err.msg);
    int64_t V = f.m->cfg.vocab_size;
    float *logits = malloc((size_t)(f.N * V) * sizeof(float));
    cr_assert_eq(model_forward_logits(f.m, f.ids, logits, &err), 0, "%s", err.msg);
    snprintf(what, sizeof what, "%s (%s): logits", name, kind);
    report(what, logits, need(&f.exp, "logits")->data, (size_t)(f.N * V), tol->logits);
    free(logits);

    set_all_trainable(f.m);
    double loss = train_step(&f, 0);
    snprintf(what, sizeof what, "%s (%s): loss", name, kind);
    check_loss(what, loss, *(const float *)need(&f.exp, "loss")->data, tol);
    double worst = 0;
    float **first = calloc((size_t)f.m->nparams, sizeof(float *));
    for (int i = 0; i < f.m->nparams; i++) {
        Param *p = &f.m->params[i];
        char gname[160];
        snprintf(gname, sizeof gname, "grad.%s", p->name);
        const StTensor *ref = need(&f.exp, gname);
        cr_assert_eq((int64_t)(ref->nbytes / 4), tensor_numel(&p->g), "%s size", gname);
        first[i] = download_f32(be, &p->g);
        snprintf(what, sizeof what, "%s (%s): %s", name, kind, gname);
        double e = report(what, first[i], ref->data, (size_t)tensor_numel(&p->g), tol->grad);
        if (e > worst) worst = e;
    }
    cr_log_info("%s (%s): worst gradient error %.3e", name, kind, worst);

    /* the same step with activation recomputation: bitwise the same gradients and loss */
    double loss2 = train_step(&f, 1);
    size_t differ = 0;
    for (int i = 0; i < f.m->nparams; i++) {
        float *g = download_f32(be, &f.m->params[i].g);
        differ += memcmp(g, first[i], (size_t)tensor_numel(&f.m->params[i].g) * sizeof(float)) != 0;
        free(g);
        free(first[i]);
    }
    free(first);
    snprintf(what, sizeof what, "%s (%s): recomputed step bitwise equal", name, kind);
    if (differ == 0 && loss2 == loss)
        cr_log_info("%-64s yes", what);
    else
        cr_log_warn("%-64s NO: %zu gradients differ, loss %.9g vs %.9g  <-- FAIL", what, differ, loss2, loss);
    cr_expect(differ == 0 && loss2 == loss, "%s", what);

    fix_close(&f);
    be->ops->destroy(be);
    free(exp);
    free(dir);
}

Test(cuda_model, mha_untied) { run_fixture("mha_untied", MODE_BF16_TC); }
Test(cuda_model, gqa_tied) { run_fixture("gqa_tied", MODE_BF16_TC); }
Test(cuda_model, llama3_rope_scaling) { run_fixture("llama3_rope", MODE_BF16_TC); }
Test(cuda_model, mistral_explicit_head_dim) { run_fixture("mistral_headdim", MODE_BF16_TC); }
Test(cuda_model, llama3_rope_scaling_simple_attention) { run_fixture("llama3_rope", MODE_BF16_SIMPLE); }
Test(cuda_model, mistral_explicit_head_dim_simple_attention) { run_fixture("mistral_headdim", MODE_BF16_SIMPLE); }
Test(cuda_model, mha_untied_f32) { run_fixture("mha_untied", MODE_F32); }
Test(cuda_model, gqa_tied_f32) { run_fixture("gqa_tied", MODE_F32); }
Test(cuda_model, llama3_rope_scaling_f32) { run_fixture("llama3_rope", MODE_F32); }
Test(cuda_model, mistral_explicit_head_dim_f32) { run_fixture("mistral_headdim", MODE_F32); }

/* The real TinyStories-656K (head dim 16, GQA 8/4, tied) on 8 real stories. */
static void run_tinystories(Mode mode) {
    char *dir = ts_shared_path("data/real/hf/TinyStories-656K");
    char *exp = ts_fixture_path("tinystories/first8.safetensors");
    OwError err;
    Backend *gpu = gpu_backend(mode);
    Backend *cpu = backend_create_cpu(4, 0, &err);
    cr_assert(cpu != NULL, "%s", err.msg);
    const Tol *tol = mode == MODE_F32 ? &k_tol_f32_tinystories : &k_tol_bf16;
    Fix f, c;
    fix_open(&f, gpu, dir, exp);
    fix_open(&c, cpu, dir, exp);
    const char *kind = mode_name(gpu, mode, f.m->cfg.head_dim);
    char what[200];

    /* losses and logits against transformers */
    cr_assert_eq(model_prepare(f.m, f.B, f.T, 1, &err), 0, "%s", err.msg);
    float *losses = malloc((size_t)f.N * sizeof(float));
    cr_assert_eq(model_forward_losses(f.m, f.ids, f.targets, losses, &err), 0, "%s", err.msg);
    double sum = 0;
    const float *seq_ref = need(&f.exp, "seq_losses")->data;
    for (int64_t b = 0; b < f.B; b++) {
        double s = 0;
        int64_t n = 0;
        for (int64_t t = 0; t < f.T; t++) {
            s += losses[b * f.T + t];
            n += f.targets[b * f.T + t] != -100;
        }
        sum += s;
        snprintf(what, sizeof what, "TinyStories (%s): loss of story %lld", kind, (long long)b);
        check_loss(what, s / (double)n, seq_ref[b], tol);
    }
    snprintf(what, sizeof what, "TinyStories (%s): mean loss", kind);
    check_loss(what, sum / (double)f.ntargets, *(const float *)need(&f.exp, "loss")->data, tol);
    int64_t V = f.m->cfg.vocab_size;
    float *logits = malloc((size_t)(f.N * V) * sizeof(float));
    cr_assert_eq(model_forward_logits(f.m, f.ids, logits, &err), 0, "%s", err.msg);
    const StTensor *lf = need(&f.exp, "logits_first");
    snprintf(what, sizeof what, "TinyStories (%s): logits of story 0, first 16 positions", kind);
    report(what, logits, lf->data, (size_t)(lf->nbytes / 4), tol->logits);
    free(logits);
    free(losses);

    /* every gradient against the CPU backend (fp32) */
    set_all_trainable(f.m);
    set_all_trainable(c.m);
    double lg = train_step(&f, 1), lc = train_step(&c, 1);
    snprintf(what, sizeof what, "TinyStories (%s): training-step loss vs cpu", kind);
    check_loss(what, lg, lc, tol);
    double worst = 0;
    for (int i = 0; i < f.m->nparams; i++) {
        float *g = download_f32(gpu, &f.m->params[i].g), *r = download_f32(cpu, &c.m->params[i].g);
        snprintf(what, sizeof what, "TinyStories (%s): grad %s vs cpu", kind, f.m->params[i].name);
        double e = report(what, g, r, (size_t)tensor_numel(&f.m->params[i].g), tol->grad);
        if (e > worst) worst = e;
        free(g);
        free(r);
    }
    cr_log_info("TinyStories (%s): worst gradient error vs cpu %.3e", kind, worst);
    cr_log_info("TinyStories (%s): arena peak %zu bytes allocated, %zu reserved", kind, gpu->mem.peak_total,
                backend_cuda_peak_reserved_bytes(gpu));
    fix_close(&f);
    fix_close(&c);
    gpu->ops->destroy(gpu);
    cpu->ops->destroy(cpu);
    free(exp);
    free(dir);
}

Test(cuda_model, tinystories_real_model) { run_tinystories(MODE_BF16_TC); }
Test(cuda_model, tinystories_real_model_f32) { run_tinystories(MODE_F32); }

/* Incremental decoding (model/decoder.h) on CUDA: a prefill of 5 tokens, then one step at a time to T; at every
 * position the logits equal the CUDA forward's over the whole sequence (the same weights and dtypes: 1e-4 in F32,
 * 5e-2 in bf16, the rounding of other GEMM shapes and attention kernels) and the CPU decoder's (F32: 1e-4; bf16:
 * 8e-2: bf16 weights and activations against fp32; the forward itself is 4.5e-2 from the CPU on gqa_tied's ids
 * here, measured on the emulator). */
static void decode_case(const char *name, Mode mode) {
    char *dir = ts_fixture_path(name);
    OwError err;
    Backend *cpu = backend_create_cpu(2, 0, &err), *gpu = gpu_backend(mode);
    Model *mc, *mg;
    cr_assert_eq(model_load_hf(cpu, dir, &mc, &err), 0, "%s", err.msg);
    cr_assert_eq(model_load_hf(gpu, dir, &mg, &err), 0, "%s", err.msg);
    const int64_t T = 40, V = mc->cfg.vocab_size, P = 5;
    int32_t ids[40];
    for (int64_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 37 + 11) % V);
    float *fwd = malloc((size_t)(T * V) * sizeof(float)), *lc = malloc((size_t)V * sizeof(float));
    float *lg = malloc((size_t)V * sizeof(float));
    cr_assert_eq(model_prepare(mg, 1, T, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(model_forward_logits(mg, ids, fwd, &err), 0, "%s", err.msg);
    Decoder *dc, *dg;
    cr_assert_eq(decoder_create(mc, T, DECODER_DEFAULT_CHUNK, &dc, &err), 0, "%s", err.msg);
    cr_assert_eq(decoder_create(mg, T, DECODER_DEFAULT_CHUNK, &dg, &err), 0, "%s", err.msg);
    double tol = mode == MODE_F32 ? 1e-4 : 5e-2, tol_cpu = mode == MODE_F32 ? 1e-4 : 8e-2, worst_cpu = 0, worst_fwd = 0;
    for (int64_t t = P - 1; t < T; t++) {
        const int32_t *in = t == P - 1 ? ids : ids + t;
        int64_t n = t == P - 1 ? P : 1;
        cr_assert_eq(decoder_feed(dc, in, n, lc, &err), 0, "%s", err.msg);
        cr_assert_eq(decoder_feed(dg, in, n, lg, &err), 0, "%s", err.msg);
        worst_cpu = fmax(worst_cpu, ts_rel_err(lg, lc, (size_t)V));
        worst_fwd = fmax(worst_fwd, ts_rel_err(lg, fwd + t * V, (size_t)V));
    }
    const char *kind = mode_name(gpu, mode, mc->cfg.head_dim);
    cr_log_info("decode %s (%s): worst rel err over the positions %.3e vs the CPU decoder (tol %.1e), %.3e vs the CUDA "
                "forward (tol %.1e)",
                name, kind, worst_cpu, tol_cpu, worst_fwd, tol);
    cr_expect(worst_cpu <= tol_cpu, "decode %s (%s) vs the CPU decoder: %.3e", name, kind, worst_cpu);
    cr_expect(worst_fwd <= tol, "decode %s (%s) vs the CUDA forward: %.3e", name, kind, worst_fwd);
    decoder_free(dc);
    decoder_free(dg);
    free(fwd);
    free(lc);
    free(lg);
    model_free(mc);
    model_free(mg);
    gpu->ops->destroy(gpu);
    cpu->ops->destroy(cpu);
    free(dir);
}

Test(cuda_model, decode_gqa_tied_f32) { decode_case("models/gqa_tied", MODE_F32); }
Test(cuda_model, decode_mha_untied_f32) { decode_case("models/mha_untied", MODE_F32); }
Test(cuda_model, decode_gqa_tied_bf16) { decode_case("models/gqa_tied", MODE_BF16_TC); }
Test(cuda_model, decode_llama3_rope_bf16) { decode_case("models/llama3_rope", MODE_BF16_TC); }

/* Activations over the cap: model_prepare fails with the breakdown and a hint, and the
 * model stays usable at a size that fits. */
Test(cuda_model, activations_over_the_cap_fail_cleanly) {
    char *dir = ts_fixture_path("models/llama3_rope");
    OwError err;
    Backend *be = backend_create_cuda(0, (size_t)64 << 20, &err);
    cr_assert(be != NULL, "%s", err.msg);
    Model *m;
    cr_assert_eq(model_load_hf(be, dir, &m, &err), 0, "%s", err.msg);
    int rc = model_prepare(m, 64, 2048, 0, &err);
    cr_expect_eq(rc, -1, "64 x 2048 tokens of activations cannot fit 64 MiB");
    cr_log_info("over the cap: %s", err.msg);
    cr_expect(strstr(err.msg, "activations") != NULL && strstr(err.msg, "hint") != NULL, "%s", err.msg);
    cr_expect_eq(model_prepare(m, 2, 16, 0, &err), 0, "a small batch still fits: %s", err.msg);
    model_free(m);
    cr_expect_eq(be->mem.current_total, (size_t)0 + be->mem.current[MEM_WORKSPACE],
                 "everything but the library workspaces is released");
    be->ops->destroy(be);
    free(dir);
}

/* Activation offload (block inputs in page-locked host memory, copied on a
 * second stream while the GPU computes) gives the same bits as keeping them on
 * the device: loss and every gradient of a step through all 8 blocks of the
 * `tiny` preset, and with the embedding frozen (backward stops at block 3). */
Test(cuda_model, activation_offload_is_bit_exact) {
    OwError err;
    Backend *be = backend_create_cuda(0, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    ModelConfig mc;
    char *src;
    int is_dir;
    cr_assert_eq(model_preset_resolve("tiny", &mc, &src, &is_dir, &err), 0, "%s", err.msg);
    free(src);
    Model *m;
    cr_assert_eq(model_create(be, &mc, &m, &err), 0, "%s", err.msg);
    model_init_random(m, 5, 0.02, NULL);
    const int64_t B = 4, T = 128, N = B * T;
    int32_t *ids = malloc((size_t)N * sizeof *ids), *tg = malloc((size_t)N * sizeof *tg);
    for (int64_t i = 0; i < N; i++) {
        ids[i] = (int32_t)((i * 7919 + 13) % mc.vocab_size);
        tg[i] = (int32_t)((i * 104729 + 7) % mc.vocab_size);
    }
    for (int freeze = 0; freeze < 2; freeze++) {
        for (int i = 0; i < m->nparams; i++) {
            Param *p = &m->params[i];
            int want = freeze ? (p->layer >= 3 || p == m->final_norm || p == m->lm_head) : 1;
            cr_assert_eq(model_set_trainable(m, p, want, &err), 0, "%s", err.msg);
        }
        float *grads[2] = {NULL, NULL};
        double loss[2];
        size_t total = 0;
        for (int off = 0; off < 2; off++) {
            m->offload_acts = off;
            cr_assert_eq(model_prepare(m, B, T, 1, &err), 0, "%s", err.msg);
            model_zero_grads(m);
            int64_t n;
            cr_assert_eq(model_forward_backward(m, ids, tg, 1.0f / (float)N, NULL, &loss[off], &n, &err), 0, "%s",
                         err.msg);
            total = 0;
            for (int i = 0; i < m->nparams; i++)
                if (m->params[i].trainable) total += (size_t)tensor_numel(&m->params[i].g);
            grads[off] = malloc(total * sizeof(float));
            size_t at = 0;
            for (int i = 0; i < m->nparams; i++) {
                Param *p = &m->params[i];
                if (!p->trainable) continue;
                be->ops->download(be, grads[off] + at, OW_F32, &p->g);
                at += (size_t)tensor_numel(&p->g);
            }
        }
        cr_expect(loss[0] == loss[1], "freeze %d: loss %.9g vs %.9g", freeze, loss[0], loss[1]);
        cr_expect(memcmp(grads[0], grads[1], total * sizeof(float)) == 0, "freeze %d: gradients differ", freeze);
        cr_log_info("activation offload, frozen embedding %d: loss %.9g, %zu gradient values bitwise equal", freeze,
                    loss[0], total);
        free(grads[0]);
        free(grads[1]);
    }
    free(ids);
    free(tg);
    model_free(m);
    be->ops->destroy(be);
}

/* The 20-step owlore trajectory of tests/fixtures/trajectory (forced blocks with
 * one resample, exact SVD projectors with a refresh inside the 20 steps) on the
 * CPU (fp32, equal to PyTorch within 2e-5, see test_trajectory.c) and on the
 * GPU with --precision fp32: every loss within 1e-3 relative. In bf16 the same
 * recipe drifts further (lr 5e-3 on a 32-wide random model: the first Adam
 * steps after each refresh are nearly sign(R), so bf16 rounding flips entries;
 * the emulator shows 6e-2): logged and held to 0.15; the bf16 claim is checked
 * on a real model by owlore_bf16_trajectory_on_tinystories. */
/* key (may be NULL) = value is set on top of the recipe */
static void trajectory_losses_with(const char *device, const char *precision, const char *key, const char *value,
                                   double loss[20]) {
    char *dir = ts_tmpdir();
    TrainConfig c;
    char *out = ts_trajectory_config("owlore", dir, device, &c);
    OwError err;
    cr_assert_eq(train_config_set_string(&c, "precision", precision, "test", &err), 0, "%s", err.msg);
    if (key) cr_assert_eq(train_config_set_string(&c, key, value, "test", &err), 0, "%s", err.msg);
    TrainSummary s;
    cr_assert_eq(train_run(&c, &s, &err), 0, "%s %s: %s", device, precision, err.msg);
    ts_read_metric(out, "loss", loss, 20);
    free(out);
    ts_rmtree(dir);
    free(dir);
}

static void trajectory_losses(const char *device, const char *precision, double loss[20]) {
    trajectory_losses_with(device, precision, NULL, NULL, loss);
}

Test(cuda_model, owlore_trajectory_tracks_the_cpu) {
    double cpu[20], f32[20], bf16[20], w32 = 0, w16 = 0;
    trajectory_losses("cpu", "auto", cpu);
    trajectory_losses("cuda", "fp32", f32);
    trajectory_losses("cuda", "bf16", bf16);
    for (int i = 0; i < 20; i++) {
        double e32 = fabs(f32[i] - cpu[i]) / fabs(cpu[i]), e16 = fabs(bf16[i] - cpu[i]);
        w32 = fmax(w32, e32);
        w16 = fmax(w16, e16);
        cr_log_info("step %2d: cpu %.6f  gpu fp32 %.6f  gpu bf16 %.6f", i, cpu[i], f32[i], bf16[i]);
        cr_expect_lt(e32, 1e-3, "step %d: gpu fp32 loss %.6f, cpu %.6f", i, f32[i], cpu[i]);
        cr_expect_lt(e16, 0.15, "step %d: gpu bf16 loss %.6f, cpu %.6f", i, bf16[i], cpu[i]);
    }
    cr_log_info("owlore trajectory, 20 steps: gpu fp32 within %.2e relative, bf16 within %.2e absolute of the cpu", w32,
                w16);
}

/* bf16 training tracks fp32: 20 steps of owlore (default recipe: lr 3e-4, exact
 * SVD; one block at a time, resampled every 10 steps; projectors refreshed every
 * 8 of a tensor's steps) on the real TinyStories-656K and real text, on the CPU
 * and on the GPU in bf16: every loss within 1e-2. */
static void tinystories_losses(const char *device, double loss[20]) {
    char *dir = ts_tmpdir(), *out = ow_path_join(dir, "run");
    char *model = ts_shared_path("data/real/hf/TinyStories-656K");
    char *data = ts_shared_path("data/real/text/tinyshakespeare.txt");
    char *ratios = ow_path_join(dir, "ratios.json");
    const char *rj = "{\"ratios\": [1.0, 0.6]}";
    ts_write_file(ratios, rj, strlen(rj));
    TrainConfig c;
    OwError err;
    ts_train_config(&c, "owlore", model, data, out, device);
    snprintf(c.ratios, sizeof c.ratios, "%s", ratios);
    snprintf(c.data_cache, sizeof c.data_cache, "run");
    c.gamma = 1;
    c.interval = 10;
    c.update_gap = 8;
    c.rank = 32;
    c.steps = 20;
    c.batch_size = 8;
    c.block_size = 256;
    c.val_split = 0;
    c.save_every = -1;
    c.save_model = 0;
    c.threads = 2;
    TrainSummary s;
    cr_assert_eq(train_run(&c, &s, &err), 0, "%s: %s", device, err.msg);
    ts_read_metric(out, "loss", loss, 20);
    ts_rmtree(dir);
    free(dir);
    free(out);
    free(model);
    free(data);
    free(ratios);
}

Test(cuda_model, owlore_bf16_trajectory_on_tinystories) {
    double cpu[20], gpu[20], worst = 0;
    tinystories_losses("cpu", cpu);
    tinystories_losses("cuda", gpu);
    for (int i = 0; i < 20; i++) {
        double e = fabs(gpu[i] - cpu[i]);
        worst = fmax(worst, e);
        cr_log_info("step %2d: cpu %.6f  gpu bf16 %.6f", i, cpu[i], gpu[i]);
        cr_expect_lt(e, 1e-2, "step %d: gpu bf16 loss %.6f, cpu %.6f", i, gpu[i], cpu[i]);
    }
    cr_log_info("owlore on TinyStories-656K, 20 steps: gpu bf16 within %.2e of the cpu (%.5f -> %.5f)", worst, cpu[0],
                cpu[19]);
}

/* The embedding's and lm_head's AdamW moments in page-locked host memory, updated
 * over the bus on the side stream (--offload-optimizer on, the GPU default) give the
 * same bits as keeping them on the device: the 20 losses of the fixture's owlore
 * recipe in bf16 and in fp32. */
Test(cuda_model, optimizer_offload_is_bit_exact) {
    const char *precisions[] = {"bf16", "fp32"};
    for (int k = 0; k < 2; k++) {
        double on[20], off[20];
        trajectory_losses_with("cuda", precisions[k], "offload_optimizer", "on", on);
        trajectory_losses_with("cuda", precisions[k], "offload_optimizer", "off", off);
        int differ = 0;
        for (int i = 0; i < 20; i++) differ += on[i] != off[i];
        cr_expect_eq(differ, 0, "%s: %d of 20 losses differ between host and device optimizer state", precisions[k],
                     differ);
        cr_log_info("optimizer offload, %s: 20 losses bitwise equal (first %.9g, last %.9g)", precisions[k], on[0],
                    on[19]);
    }
}

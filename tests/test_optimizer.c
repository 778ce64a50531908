/* test_optimizer.c: AdamW and GaLore-AdamW against the reference formulas
 * (written out here in double precision): both side rules, projector refresh
 * timing, canonical signs, scale, bias correction, clipping, parking state of
 * inactive tensors in host memory; and the randomized range finder's subspace
 * against the exact top-r subspace. */
#include "backend/backend.h"
#include "core/rng.h"
#include "model/model.h"
#include "optim/optimizer.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ModelConfig tiny_cfg(void) {
    ModelConfig c = {.architecture = "LlamaForCausalLM",
                     .model_type = "llama",
                     .vocab_size = 11,
                     .hidden_size = 16,
                     .intermediate_size = 24,
                     .num_layers = 2,
                     .num_heads = 2,
                     .num_kv_heads = 1,
                     .head_dim = 8,
                     .max_position_embeddings = 32,
                     .rms_norm_eps = 1e-5,
                     .rope_theta = 10000,
                     .bos_token_id = -1,
                     .eos_token_id = -1};
    return c;
}

typedef struct {
    Backend *be;
    Model *m;
    Optimizer o;
} Env;

static void env_open(Env *e, OptimConfig oc) {
    OwError err;
    e->be = backend_create_cpu(1, 0, &err);
    ModelConfig c = tiny_cfg();
    cr_assert_eq(model_create(e->be, &c, &e->m, &err), 0, "%s", err.msg);
    model_init_random(e->m, 3, 0.5, NULL);
    cr_assert_eq(optimizer_init(&e->o, e->m, &oc, &err), 0, "%s", err.msg);
    for (int i = 0; i < e->m->nparams; i++)
        cr_assert_eq(optimizer_activate(&e->o, &e->m->params[i], &err), 0, "%s", err.msg);
}

static void env_close(Env *e) {
    optimizer_free(&e->o);
    model_free(e->m);
    e->be->ops->destroy(e->be);
}

static OptimConfig galore_cfg(void) {
    OptimConfig o = {.kind = OPT_GALORE_ADAMW,
                     .beta1 = 0.9,
                     .beta2 = 0.999,
                     .eps = 1e-6,
                     .weight_decay = 0,
                     .rank = 4,
                     .update_gap = 3,
                     .scale = 1.0,
                     .projector = PROJ_EXACT,
                     .rf_oversample = 4,
                     .rf_iters = 2,
                     .inactive = INACTIVE_KEEP,
                     .seed = 5};
    return o;
}

/* deterministic "gradient" for parameter i at step s */
static void fill_grads(Env *e, int s) {
    for (int i = 0; i < e->m->nparams; i++) {
        Param *p = &e->m->params[i];
        if (!p->trainable) continue;
        int64_t n = tensor_numel(&p->g);
        float *g = malloc((size_t)n * sizeof(float));
        Rng r;
        rng_init(&r, 1000 + (uint64_t)s, (uint64_t)i);
        for (int64_t k = 0; k < n; k++) g[k] = (float)rng_normal(&r);
        e->be->ops->upload(e->be, &p->g, g, OW_F32);
        p->g_fresh = 0; /* g holds this step's gradient (model.h) */
        free(g);
    }
}

/* ---- a double-precision reference of one tensor's optimizer ---- */
typedef struct {
    int64_t rows, cols, r;
    int galore, right, has_P;
    int64_t step;
    double *m, *v, *P;
} Ref;

static void ref_init(Ref *f, const Param *p, int galore, int rank) {
    memset(f, 0, sizeof *f);
    f->rows = p->w.shape[0];
    f->cols = p->w.ndim > 1 ? p->w.shape[1] : 1;
    f->galore = galore;
    f->right = f->rows >= f->cols;
    f->r = rank;
    int64_t nmv = galore ? (f->right ? f->rows * rank : rank * f->cols) : f->rows * f->cols;
    f->m = calloc((size_t)nmv, sizeof(double));
    f->v = calloc((size_t)nmv, sizeof(double));
    f->P = calloc((size_t)(f->right ? rank * f->cols : f->rows * rank), sizeof(double));
}

static void ref_free(Ref *f) {
    free(f->m);
    free(f->v);
    free(f->P);
}

/* one update of w (double [rows*cols]) with gradient g; P_new is the projector
 * the optimizer should compute at this step (exact SVD of g, canonical), taken
 * from svd_top on the CPU backend, which test_cpu_proj checks independently. */
static void ref_step(Ref *f, Backend *be, double *w, const float *g32, double coef, const OptimConfig *c, double lr,
                     int *refreshed) {
    int64_t R = f->rows, C = f->cols, r = f->r;
    double *g = malloc((size_t)(R * C) * sizeof(double));
    for (int64_t k = 0; k < R * C; k++) g[k] = g32[k];
    *refreshed = 0;
    double *x = g; /* the (projected) gradient */
    int64_t nx = R * C;
    double *proj = NULL;
    if (f->galore) {
        if (!f->has_P || f->step % c->update_gap == 0) {
            Tensor G = tensor_2d(OW_F32, R, C), P = f->right ? tensor_2d(OW_F32, r, C) : tensor_2d(OW_F32, R, r);
            OwError err;
            cr_assert_eq(be->ops->alloc(be, &G, MEM_OTHER, "t", &err), 0);
            cr_assert_eq(be->ops->alloc(be, &P, MEM_OTHER, "t", &err), 0);
            be->ops->upload(be, &G, g32, OW_F32);
            cr_assert_eq(be->ops->svd_top(be, &P, &G, (int)r, f->right, &err), 0);
            float *pp = malloc(tensor_nbytes(&P));
            be->ops->download(be, pp, OW_F32, &P);
            for (int64_t k = 0; k < tensor_numel(&P); k++) f->P[k] = pp[k];
            free(pp);
            be->ops->release(be, &G, MEM_OTHER);
            be->ops->release(be, &P, MEM_OTHER);
            f->has_P = 1;
            *refreshed = 1;
        }
        nx = f->right ? R * r : r * C;
        proj = calloc((size_t)nx, sizeof(double));
        if (f->right) { /* R = G P^T : [R, r] */
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < r; j++)
                    for (int64_t k = 0; k < C; k++) proj[i * r + j] += g[i * C + k] * f->P[j * C + k];
        } else { /* R = P^T G : [r, C] */
            for (int64_t i = 0; i < r; i++)
                for (int64_t j = 0; j < C; j++)
                    for (int64_t k = 0; k < R; k++) proj[i * C + j] += f->P[k * r + i] * g[k * C + j];
        }
        x = proj;
    }
    f->step++;
    double b1 = c->beta1, b2 = c->beta2, bc1 = 1 - pow(b1, (double)f->step), bc2 = 1 - pow(b2, (double)f->step);
    double *n = malloc((size_t)nx * sizeof(double));
    for (int64_t k = 0; k < nx; k++) {
        double gk = x[k] * coef;
        f->m[k] = b1 * f->m[k] + (1 - b1) * gk;
        f->v[k] = b2 * f->v[k] + (1 - b2) * gk * gk;
    }
    if (c->kind == OPT_GALORE_ADAMW) {
        double step = lr * sqrt(bc2) / bc1;
        for (int64_t k = 0; k < nx; k++) n[k] = f->m[k] / (sqrt(f->v[k]) + c->eps);
        double *u = calloc((size_t)(R * C), sizeof(double));
        if (!f->galore) {
            memcpy(u, n, (size_t)(R * C) * sizeof(double));
        } else if (f->right) { /* N P : [R, r] [r, C] */
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < C; j++)
                    for (int64_t k = 0; k < r; k++) u[i * C + j] += n[i * r + k] * f->P[k * C + j];
        } else { /* P N : [R, r] [r, C] */
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < C; j++)
                    for (int64_t k = 0; k < r; k++) u[i * C + j] += f->P[i * r + k] * n[k * C + j];
        }
        double sc = f->galore ? c->scale : 1.0;
        for (int64_t k = 0; k < R * C; k++) {
            w[k] -= step * sc * u[k];
            w[k] -= lr * c->weight_decay * w[k];
        }
        free(u);
    } else {
        for (int64_t k = 0; k < R * C; k++) {
            w[k] *= 1 - lr * c->weight_decay;
            w[k] -= lr / bc1 * f->m[k] / (sqrt(f->v[k]) / sqrt(bc2) + c->eps);
        }
    }
    free(n);
    free(proj);
    free(g);
}

static void run_against_reference(OptimConfig oc, double clip, int steps) {
    Env e;
    env_open(&e, oc);
    Model *m = e.m;
    int np = m->nparams;
    Ref *refs = calloc((size_t)np, sizeof(Ref));
    double **w = calloc((size_t)np, sizeof(double *));
    for (int i = 0; i < np; i++) {
        Param *p = &m->params[i];
        ref_init(&refs[i], p, optimizer_projects(&oc, p), oc.rank);
        int64_t n = tensor_numel(&p->w);
        float *tmp = malloc((size_t)n * sizeof(float));
        e.be->ops->download(e.be, tmp, OW_F32, &p->w);
        w[i] = malloc((size_t)n * sizeof(double));
        for (int64_t k = 0; k < n; k++) w[i][k] = tmp[k];
        free(tmp);
    }
    OwError err;
    int refreshes_seen = 0;
    for (int s = 0; s < steps; s++) {
        fill_grads(&e, s);
        /* reference: the norm of all gradients and the clip coefficient */
        double sq = 0;
        float **g = calloc((size_t)np, sizeof(float *));
        for (int i = 0; i < np; i++) {
            Param *p = &m->params[i];
            int64_t n = tensor_numel(&p->g);
            g[i] = malloc((size_t)n * sizeof(float));
            e.be->ops->download(e.be, g[i], OW_F32, &p->g);
            for (int64_t k = 0; k < n; k++) sq += (double)g[i][k] * g[i][k];
        }
        double norm = sqrt(sq), coef = clip > 0 ? fmin(1.0, clip / (norm + 1e-6)) : 1.0;
        double lr = 0.01 * (1.0 - 0.05 * s);
        double gn;
        cr_assert_eq(optimizer_step(&e.o, lr, clip, &gn, &err), 0, "%s", err.msg);
        cr_assert_float_eq(gn, norm, 1e-9 * norm, "gradient norm %g vs %g", gn, norm);
        for (int i = 0; i < np; i++) {
            int refreshed;
            ref_step(&refs[i], e.be, w[i], g[i], coef, &oc, lr, &refreshed);
            refreshes_seen += refreshed;
            cr_assert_eq(e.o.st[i].step, refs[i].step);
            Param *p = &m->params[i];
            int64_t n = tensor_numel(&p->w);
            float *got = malloc((size_t)n * sizeof(float));
            e.be->ops->download(e.be, got, OW_F32, &p->w);
            double md = 0, mw = 0;
            for (int64_t k = 0; k < n; k++) {
                md = fmax(md, fabs(got[k] - w[i][k]));
                mw = fmax(mw, fabs(w[i][k]));
            }
            cr_assert_lt(md / mw, 2e-5, "step %d, %s: relative difference %.3g from the reference", s, p->name,
                         md / mw);
            /* keep the reference on the same weights to stop float drift compounding */
            for (int64_t k = 0; k < n; k++) w[i][k] = got[k];
            free(got);
            free(g[i]);
        }
        free(g);
        /* the state's projector has canonical signs */
        for (int i = 0; i < np; i++) {
            ParamState *st = &e.o.st[i];
            if (!st->galore) continue;
            int64_t pr = st->P.shape[0], pc = st->P.shape[1];
            float *P = malloc(tensor_nbytes(&st->P));
            e.be->ops->download(e.be, P, OW_F32, &st->P);
            int64_t nvec = st->right ? pr : pc, len = st->right ? pc : pr;
            for (int64_t v = 0; v < nvec; v++) {
                int64_t best = 0;
                for (int64_t k = 1; k < len; k++) {
                    float a = st->right ? P[v * pc + k] : P[k * pc + v],
                          b = st->right ? P[v * pc + best] : P[best * pc + v];
                    if (fabsf(a) > fabsf(b)) best = k;
                }
                float top = st->right ? P[v * pc + best] : P[best * pc + v];
                cr_assert_gt(top, 0, "%s: singular vector %lld has a negative largest entry", m->params[i].name,
                             (long long)v);
            }
            free(P);
        }
    }
    if (oc.kind == OPT_GALORE_ADAMW) {
        /* 14 projected matrices, refreshed at their own steps 0, 3, 6 within 7 steps */
        cr_assert_eq(refreshes_seen, 14 * ((steps + oc.update_gap - 1) / oc.update_gap));
        for (int i = 0; i < np; i++)
            if (e.o.st[i].galore) cr_assert_eq(e.o.st[i].refreshes, (steps + oc.update_gap - 1) / oc.update_gap);
    }
    for (int i = 0; i < np; i++) {
        ref_free(&refs[i]);
        free(w[i]);
    }
    free(refs);
    free(w);
    env_close(&e);
}

Test(optimizer, galore_adamw_matches_reference_both_sides) { run_against_reference(galore_cfg(), 0.0, 7); }

Test(optimizer, galore_with_clipping_scale_and_weight_decay) {
    OptimConfig oc = galore_cfg();
    oc.scale = 0.25;
    oc.weight_decay = 0.1;
    run_against_reference(oc, 1.0, 5); /* gradients of norm ~30 are clipped to 1 */
}

Test(optimizer, torch_adamw_matches_reference) {
    OptimConfig oc = galore_cfg();
    oc.kind = OPT_ADAMW;
    oc.eps = 1e-8;
    oc.weight_decay = 0.05;
    run_against_reference(oc, 1.0, 6);
}

Test(optimizer, side_rule_shapes) {
    Env e;
    env_open(&e, galore_cfg());
    Model *m = e.m;
    /* q: [16,16] right; k: [8,16] left; gate: [24,16] right; down: [16,24] left */
    struct {
        BlockWeight bw;
        int right;
        int64_t pr, pc;
    } want[] = {{BW_Q, 1, 4, 16}, {BW_K, 0, 8, 4}, {BW_GATE, 1, 4, 16}, {BW_DOWN, 0, 16, 4}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        Param *p = model_block_param(m, 1, want[i].bw);
        ParamState *st = &e.o.st[p - m->params];
        cr_assert(st->galore);
        cr_assert_eq(st->right, want[i].right, "%s", p->name);
        cr_assert_eq(st->P.shape[0], want[i].pr, "%s", p->name);
        cr_assert_eq(st->P.shape[1], want[i].pc, "%s", p->name);
    }
    cr_assert(!e.o.st[model_block_param(m, 0, BW_ATTN_NORM) - m->params].galore, "norms are not projected");
    cr_assert(!e.o.st[m->embed - m->params].galore, "embeddings are not projected");
    env_close(&e);
}

Test(optimizer, rank_larger_than_matrix_is_refused) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    ModelConfig c = tiny_cfg();
    Model *m;
    cr_assert_eq(model_create(be, &c, &m, &err), 0);
    OptimConfig oc = galore_cfg();
    oc.rank = 9; /* k_proj is [8, 16] */
    cr_assert_eq(optimizer_check(m, &oc, &err), -1);
    cr_assert(strstr(err.msg, "k_proj") && strstr(err.msg, "--rank 8"), "%s", err.msg);
    model_free(m);
    be->ops->destroy(be);
}

Test(optimizer, inactive_state_is_parked_on_host_and_restored) {
    Env e;
    env_open(&e, galore_cfg());
    OwError err;
    for (int s = 0; s < 2; s++) {
        fill_grads(&e, s);
        double gn;
        cr_assert_eq(optimizer_step(&e.o, 0.01, 0, &gn, &err), 0);
    }
    Param *p = model_block_param(e.m, 0, BW_Q);
    ParamState *st = &e.o.st[p - e.m->params];
    size_t nb = tensor_nbytes(&st->m);
    float *m0 = malloc(nb), *v0 = malloc(nb), *m1 = malloc(nb), *v1 = malloc(nb);
    e.be->ops->download(e.be, m0, OW_F32, &st->m);
    e.be->ops->download(e.be, v0, OW_F32, &st->v);
    size_t dev_before = e.be->mem.current[MEM_OPTIM];
    for (int b = 0; b < BW_COUNT; b++)
        cr_assert_eq(optimizer_deactivate(&e.o, model_block_param(e.m, 0, (BlockWeight)b), &err), 0);
    cr_assert(!p->trainable && p->g.data == NULL, "a parked tensor is frozen");
    cr_assert_lt(e.be->mem.current[MEM_OPTIM], dev_before, "state left the device");
    cr_assert_gt(e.o.host.current_total, 0, "and is counted in host memory");
    size_t parked = 0; /* m, v and P of block 0's tensors, in the model's host accounting as parked state */
    for (int b = 0; b < BW_COUNT; b++) {
        Tensor mv, P;
        optimizer_state_shapes(&e.o, model_block_param(e.m, 0, (BlockWeight)b), &mv, &P);
        parked += 2 * tensor_nbytes(&mv) + tensor_nbytes(&P);
    }
    cr_assert_eq(e.m->host.current[HOST_PARKED], parked);
    cr_assert_eq(e.m->host.locked_total, 0, "parked state is pageable");
    cr_assert_eq(e.o.host.current_total, parked, "the optimizer's figure is the same");
    /* steps while parked do not advance its step count */
    fill_grads(&e, 5);
    double gn;
    cr_assert_eq(optimizer_step(&e.o, 0.01, 0, &gn, &err), 0);
    cr_assert_eq(st->step, 2);
    size_t host_parked = e.o.host.current_total;
    const float *buf = st->host_m;
    for (int b = 0; b < BW_COUNT; b++)
        cr_assert_eq(optimizer_activate(&e.o, model_block_param(e.m, 0, (BlockWeight)b), &err), 0);
    cr_assert(!st->parked && optimizer_state_home(&e.o, p) == OPT_STATE_DEVICE, "the state is on the device again");
    cr_assert_eq(e.o.host.current_total, host_parked, "its host buffers are kept (and counted) for the next park");
    e.be->ops->download(e.be, m1, OW_F32, &st->m);
    e.be->ops->download(e.be, v1, OW_F32, &st->v);
    cr_assert_eq(memcmp(m0, m1, nb), 0, "moments come back unchanged");
    cr_assert_eq(memcmp(v0, v1, nb), 0);
    cr_assert_eq(st->step, 2);
    /* a second park, after one more step, reuses the buffers and brings back the new state */
    fill_grads(&e, 6);
    cr_assert_eq(optimizer_step(&e.o, 0.01, 0, &gn, &err), 0);
    e.be->ops->download(e.be, m0, OW_F32, &st->m);
    e.be->ops->download(e.be, v0, OW_F32, &st->v);
    cr_assert(memcmp(m0, m1, nb) != 0, "the step changed the moments");
    for (int b = 0; b < BW_COUNT; b++)
        cr_assert_eq(optimizer_deactivate(&e.o, model_block_param(e.m, 0, (BlockWeight)b), &err), 0);
    cr_assert(st->parked && st->host_m == buf, "the same host buffers");
    cr_assert_eq(e.o.host.current_total, host_parked, "no more host memory");
    cr_assert_eq(e.m->host.peak[HOST_PARKED], host_parked);
    for (int b = 0; b < BW_COUNT; b++)
        cr_assert_eq(optimizer_activate(&e.o, model_block_param(e.m, 0, (BlockWeight)b), &err), 0);
    e.be->ops->download(e.be, m1, OW_F32, &st->m);
    e.be->ops->download(e.be, v1, OW_F32, &st->v);
    cr_assert(memcmp(m0, m1, nb) == 0 && memcmp(v0, v1, nb) == 0, "the second park brings back the new moments");
    cr_assert_eq(st->step, 3);
    free(m0);
    free(v0);
    free(m1);
    free(v1);
    env_close(&e);
    /* reset drops it */
    OptimConfig oc = galore_cfg();
    oc.inactive = INACTIVE_RESET;
    env_open(&e, oc);
    fill_grads(&e, 0);
    cr_assert_eq(optimizer_step(&e.o, 0.01, 0, &gn, &err), 0);
    p = model_block_param(e.m, 1, BW_UP);
    st = &e.o.st[p - e.m->params];
    cr_assert_eq(optimizer_deactivate(&e.o, p, &err), 0);
    cr_assert_eq(optimizer_activate(&e.o, p, &err), 0);
    cr_assert_eq(st->step, 0);
    cr_assert_eq(st->has_P, 0, "the projector is recomputed after a reset");
    env_close(&e);
}

/* cosines of the principal angles between two r-dim subspaces given by
 * orthonormal rows (right) or columns (left): singular values of A B^T */
static double min_principal_cosine(Backend *be, const Tensor *A, const Tensor *B, int right) {
    OwError err;
    int64_t r = right ? A->shape[0] : A->shape[1];
    Tensor M = tensor_2d(OW_F32, r, r), S = tensor_2d(OW_F32, r, r);
    cr_assert_eq(be->ops->alloc(be, &M, MEM_OTHER, "t", &err), 0);
    cr_assert_eq(be->ops->alloc(be, &S, MEM_OTHER, "t", &err), 0);
    be->ops->matmul(be, &M, A, !right, B, right, 1.0f, 0.0f);
    /* singular values of M via M^T M eigen-free route: sigma_min^2 = min over the
     * unit vectors; use the fact that for orthonormal bases sum sigma_i^2 = ||M||_F^2
     * and every sigma <= 1: sigma_min^2 >= ||M||_F^2 - (r - 1) */
    double fro = be->ops->sum_squares(be, &M);
    be->ops->release(be, &M, MEM_OTHER);
    be->ops->release(be, &S, MEM_OTHER);
    double lower = fro - (double)(r - 1);
    return lower > 0 ? sqrt(lower) : 0.0;
}

static void range_finder_case(int64_t rows, int64_t cols, int rank) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    /* G = U diag(s) V^T with s_i = 0.7^i: decaying spectrum */
    int64_t k = rows < cols ? rows : cols;
    Tensor U = tensor_2d(OW_F32, rows, k), V = tensor_2d(OW_F32, cols, k), G = tensor_2d(OW_F32, rows, cols);
    cr_assert_eq(be->ops->alloc(be, &U, MEM_OTHER, "t", &err), 0);
    cr_assert_eq(be->ops->alloc(be, &V, MEM_OTHER, "t", &err), 0);
    cr_assert_eq(be->ops->alloc(be, &G, MEM_OTHER, "t", &err), 0);
    be->ops->fill_normal(be, &U, 11, 1.0f);
    be->ops->fill_normal(be, &V, 12, 1.0f);
    cr_assert_eq(be->ops->orthonormalize(be, &U, &err), 0);
    cr_assert_eq(be->ops->orthonormalize(be, &V, &err), 0);
    float *u = malloc(tensor_nbytes(&U));
    be->ops->download(be, u, OW_F32, &U);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < k; j++) u[i * k + j] *= (float)pow(0.7, (double)j);
    be->ops->upload(be, &U, u, OW_F32);
    free(u);
    be->ops->matmul(be, &G, &U, 0, &V, 1, 1.0f, 0.0f);
    int right = rows >= cols;
    Tensor Pe = right ? tensor_2d(OW_F32, rank, cols) : tensor_2d(OW_F32, rows, rank), Pr = Pe;
    cr_assert_eq(be->ops->alloc(be, &Pe, MEM_OTHER, "t", &err), 0);
    cr_assert_eq(be->ops->alloc(be, &Pr, MEM_OTHER, "t", &err), 0);
    cr_assert_eq(galore_projector(be, &Pe, &G, rank, right, PROJ_EXACT, 0, 0, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(galore_projector(be, &Pr, &G, rank, right, PROJ_RANDOMIZED, 8, 2, 77, &err), 0, "%s", err.msg);
    double c = min_principal_cosine(be, &Pe, &Pr, right);
    cr_log_info("range finder %lldx%lld rank %d: smallest principal cosine >= %.6f", (long long)rows, (long long)cols,
                rank, c);
    cr_assert_gt(c, 0.999, "randomized subspace is far from the exact one (cosine %.5f)", c);
    /* with this gap the vectors themselves agree, signs included */
    float *a = malloc(tensor_nbytes(&Pe)), *b = malloc(tensor_nbytes(&Pr));
    be->ops->download(be, a, OW_F32, &Pe);
    be->ops->download(be, b, OW_F32, &Pr);
    double md = 0;
    for (int64_t i = 0; i < tensor_numel(&Pe); i++) md = fmax(md, fabs(a[i] - b[i]));
    cr_assert_lt(md, 2e-2, "projector entries differ by %.3g", md);
    free(a);
    free(b);
    Tensor *ts[] = {&U, &V, &G, &Pe, &Pr};
    for (int i = 0; i < 5; i++) be->ops->release(be, ts[i], MEM_OTHER);
    be->ops->destroy(be);
}

Test(optimizer, range_finder_right_side) { range_finder_case(300, 120, 16); }
Test(optimizer, range_finder_left_side) { range_finder_case(90, 260, 12); }

Test(optimizer, shared_gradient_buffers_hold_one_block) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    ModelConfig c = tiny_cfg();
    Model *m;
    cr_assert_eq(model_create(be, &c, &m, &err), 0);
    OptimConfig oc = galore_cfg();
    Optimizer o;
    cr_assert_eq(optimizer_init(&o, m, &oc, &err), 0);
    o.share_grads = 1;
    size_t expect = 0, group[BW_COUNT] = {0};
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        cr_assert_eq(optimizer_activate(&o, p, &err), 0);
        size_t bytes = (size_t)tensor_numel(&p->w) * 4;
        if (!optimizer_projects(&oc, p))
            expect += bytes;
        else if (bytes > group[optimizer_share_group(p->bw)])
            group[optimizer_share_group(p->bw)] = bytes;
    }
    for (int b = 0; b < BW_COUNT; b++) expect += group[b];
    cr_assert_eq(be->mem.current[MEM_GRADS], expect,
                 "gradients: %zu bytes, expected %zu (one buffer for the attention linears, one per MLP linear)",
                 be->mem.current[MEM_GRADS], expect);
    cr_assert_eq(model_block_param(m, 1, BW_Q)->g.data, model_block_param(m, 0, BW_O)->g.data,
                 "the attention linears share a buffer");
    Param *a = model_block_param(m, 0, BW_UP), *b = model_block_param(m, 1, BW_UP);
    cr_assert_eq(a->g.data, b->g.data, "blocks share the buffer");
    cr_assert_eq(optimizer_deactivate(&o, a, &err), 0);
    cr_assert(b->g.data != NULL, "freezing one block leaves the shared buffer to the others");
    optimizer_free(&o);
    model_free(m);
    be->ops->destroy(be);
}

/* ---- the embedding's and lm_head's state: compact gradient, host-resident moments ----
 * Four ways to run the same 4 optimizer steps of a small untied model (vocabulary 40,
 * batches with repeated tokens and tokens absent from the step): the dense embedding
 * gradient with device-resident moments (the reference), the compact gradient, the
 * compact gradient with host-resident moments, and the latter with the absent rows
 * updated early by optimizer_begin_step. Every weight must be bitwise equal. */
typedef struct {
    int compact, offload, early;
} HeadMode;

static float *train_head_mode(HeadMode hm, size_t *nvals) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    ModelConfig c = tiny_cfg();
    c.vocab_size = 40;
    Model *m;
    cr_assert_eq(model_create(be, &c, &m, &err), 0, "%s", err.msg);
    model_init_random(m, 9, 0.3, NULL);
    const int64_t B = 2, T = 6, N = B * T;
    if (hm.compact) m->embed_grad_rows = N;
    OptimConfig oc = galore_cfg();
    oc.offload_head = hm.offload;
    Optimizer o;
    cr_assert_eq(optimizer_init(&o, m, &oc, &err), 0, "%s", err.msg);
    for (int i = 0; i < m->nparams; i++) cr_assert_eq(optimizer_activate(&o, &m->params[i], &err), 0, "%s", err.msg);
    cr_assert_eq(model_grad_is_compact(m, m->embed), hm.compact, "compact embedding gradient");
    cr_assert_eq(model_prepare(m, B, T, 1, &err), 0, "%s", err.msg);
    int32_t ids[12], tg[12];
    for (int step = 0; step < 4; step++) {
        for (int64_t i = 0; i < N; i++) {
            ids[i] = (int32_t)((i * 7 + step * 3) % 9 + (step % 2) * 20); /* 9 distinct of 40, repeats */
            tg[i] = (int32_t)((i * 5 + step) % 40);
        }
        double lr = 1e-2 * (1.0 - 0.1 * step);
        if (hm.early) {
            cr_assert_eq(model_begin_step(m, ids, N, &err), 0, "%s", err.msg);
            optimizer_begin_step(&o, lr);
        }
        double loss, gn;
        int64_t n;
        cr_assert_eq(model_forward_backward(m, ids, tg, 1.0f / (float)N, NULL, &loss, &n, &err), 0, "%s", err.msg);
        if (step == 1 && hm.compact) {
            float *dense = malloc((size_t)tensor_numel(&m->embed->w) * sizeof(float));
            model_grad_download(m, m->embed, dense);
            int nonzero_rows = 0;
            for (int64_t r = 0; r < c.vocab_size; r++) {
                int any = 0;
                for (int64_t k = 0; k < c.hidden_size; k++) any |= dense[r * c.hidden_size + k] != 0.0f;
                nonzero_rows += any;
            }
            cr_assert_leq(nonzero_rows, 9, "the compact gradient has rows of the step's tokens only");
            cr_assert_geq(nonzero_rows, 1);
            free(dense);
        }
        cr_assert_eq(optimizer_step(&o, lr, 0.5, &gn, &err), 0, "%s", err.msg);
    }
    size_t total = 0;
    for (int i = 0; i < m->nparams; i++) total += (size_t)tensor_numel(&m->params[i].w);
    float *w = malloc(total * sizeof(float));
    size_t at = 0;
    for (int i = 0; i < m->nparams; i++) {
        be->ops->download(be, w + at, OW_F32, &m->params[i].w);
        at += (size_t)tensor_numel(&m->params[i].w);
    }
    if (hm.offload)
        cr_assert_gt(o.host.current_total, 0, "host-resident moments are counted in host memory");
    else
        cr_assert_eq(o.host.current_total, 0);
    cr_assert_eq(m->host.current[HOST_MOMENTS], o.host.current_total, "in the model's host accounting");
    cr_assert_eq(m->host.locked[HOST_MOMENTS], o.host.current_total, "page-locked");
    *nvals = total;
    optimizer_free(&o);
    model_free(m);
    be->ops->destroy(be);
    return w;
}

Test(optimizer, compact_embedding_gradient_and_host_moments_are_bit_exact) {
    size_t n0, n;
    float *ref = train_head_mode((HeadMode){0, 0, 0}, &n0);
    HeadMode modes[] = {{1, 0, 0}, {1, 1, 0}, {1, 1, 1}, {1, 0, 1}, {0, 1, 0}};
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        float *w = train_head_mode(modes[k], &n);
        cr_assert_eq(n, n0);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += memcmp(&w[i], &ref[i], sizeof(float)) != 0;
        cr_expect_eq(differ, 0, "compact %d offload %d early %d: %zu of %zu weights differ from the dense run",
                     modes[k].compact, modes[k].offload, modes[k].early, differ, n);
        free(w);
    }
    free(ref);
}

/* The trainer's projector warm-up runs the randomized path on scratch memory
 * it gives back, and a cap too small for it is a clean error. */
Test(optimizer, projector_warm_up_releases_its_scratch) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    OptimConfig oc = {
        .kind = OPT_GALORE_ADAMW, .rank = 6, .projector = PROJ_RANDOMIZED, .rf_oversample = 4, .rf_iters = 2};
    cr_assert_eq(galore_warm_up(be, &oc, &err), 0, "%s", err.msg);
    cr_assert_eq(be->mem.current_total, 0, "the warm-up keeps no memory");
    /* a [20, 20] matrix, its [6, 20] projector and the range finder's sketches */
    cr_assert_geq(be->mem.peak[MEM_WORKSPACE], (20 * 20 + 6 * 20 + 3 * 20 * 10) * sizeof(float),
                  "the warm-up ran the randomized path (workspace peak %zu)", be->mem.peak[MEM_WORKSPACE]);
    be->ops->destroy(be);
    be = backend_create_cpu(1, 1024, &err);
    cr_assert_eq(galore_warm_up(be, &oc, &err), -1, "a 1 KiB cap cannot hold the warm-up");
    cr_assert(strstr(err.msg, "projector workspace") != NULL, "the error names the allocation: %s", err.msg);
    cr_assert_eq(be->mem.current_total, 0, "nothing is left allocated after the failure");
    be->ops->destroy(be);
}

/* The host helpers of parking: a many-threaded copy (sizes that are not a
 * multiple of its pieces, and below the one-thread limit) and zeroed buffers. */
Test(optimizer, parking_host_helpers) {
    OwError err;
    size_t sizes[3] = {((size_t)37 << 20) + 3, 1000, 0};
    for (int k = 0; k < 3; k++) {
        size_t n = sizes[k];
        unsigned char *a = ow_try_malloc_touched(n, "test", &err), *b = malloc(n + 1);
        cr_assert(a && b, "%s", err.msg);
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++) nonzero += a[i] != 0;
        cr_assert_eq(nonzero, 0, "a touched buffer is zeroed");
        for (size_t i = 0; i < n; i++) a[i] = (unsigned char)(i * 131u + (i >> 20));
        ow_parallel_memcpy(b, a, n);
        cr_assert(memcmp(a, b, n) == 0, "%zu bytes copied exactly", n);
        free(a);
        free(b);
    }
}

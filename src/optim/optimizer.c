/* optimizer.c: see optimizer.h. */
#include "optim/optimizer.h"

#include "core/log.h"
#include "core/rng.h"
#include "optim/optim_host.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const optim_kind_names[] = {"adamw", "galore-adamw", NULL};
const char *const inactive_policy_names[] = {"keep", "reset", NULL};

const char *optim_kind_name(OptimizerKind k) { return optim_kind_names[k]; }

int optimizer_projects(const OptimConfig *cfg, const Param *p) {
    return cfg->kind == OPT_GALORE_ADAMW && cfg->rank > 0 && p->kind == PK_BLOCK && p->is_matrix;
}

int optimizer_check(const Model *m, const OptimConfig *cfg, OwError *err) {
    if (cfg->kind != OPT_GALORE_ADAMW) return 0;
    if (cfg->rank <= 0) return ow_fail(err, "rank must be positive for GaLore (got %d)", cfg->rank);
    if (cfg->update_gap <= 0) return ow_fail(err, "update_gap must be positive (got %lld)", (long long)cfg->update_gap);
    for (int i = 0; i < m->nparams; i++) {
        const Param *p = &m->params[i];
        if (!optimizer_projects(cfg, p)) continue;
        int64_t small = p->w.shape[0] < p->w.shape[1] ? p->w.shape[0] : p->w.shape[1];
        if (cfg->rank > small)
            return ow_fail(err,
                           "rank %d is larger than the matrix %s [%lld, %lld] allows (at most %lld) "
                           "(hint: --rank %lld or less)",
                           cfg->rank, p->name, (long long)p->w.shape[0], (long long)p->w.shape[1], (long long)small,
                           (long long)small);
    }
    return 0;
}

int optimizer_init(Optimizer *o, Model *m, const OptimConfig *cfg, OwError *err) {
    memset(o, 0, sizeof *o);
    if (optimizer_check(m, cfg, err) != 0) return -1;
    o->cfg = *cfg;
    o->model = m;
    o->last_micro = 1;
    o->st = ow_xcalloc((size_t)m->nparams, sizeof(ParamState));
    int64_t biggest = 0, widest = 0;
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        ParamState *s = &o->st[i];
        s->galore = optimizer_projects(cfg, p);
        s->right = s->galore && p->w.shape[0] >= p->w.shape[1];
        s->host_state = cfg->offload_head && !s->galore && (p->kind == PK_EMBED || p->kind == PK_LM_HEAD);
        if (s->galore && tensor_numel(&p->w) > biggest) biggest = tensor_numel(&p->w);
        if (s->galore && p->w.shape[1] > widest) widest = p->w.shape[1];
    }
    if (biggest) {
        /* the projected-back update is applied in row chunks of at most OPTIM_DELTA_CHUNK elements */
        int64_t n = biggest < OPTIM_DELTA_CHUNK ? biggest : OPTIM_DELTA_CHUNK;
        o->delta = tensor_1d(OW_F32, n > widest ? n : widest);
        if (m->be->ops->alloc(m->be, &o->delta, MEM_OPTIM, "GaLore update scratch", err) != 0) {
            optimizer_free(o);
            return -1;
        }
    }
    return 0;
}

/* Frees the active state (device tensors, or the host-resident moments). */
static void release_device(Optimizer *o, ParamState *s) {
    Backend *be = o->model->be;
    be->ops->release(be, &s->m, MEM_OPTIM);
    be->ops->release(be, &s->v, MEM_OPTIM);
    be->ops->release(be, &s->P, MEM_OPTIM);
    be->ops->release(be, &s->R, MEM_OPTIM);
    optim_host_moments_free(o, s);
    s->resident = 0;
}

/* The moments of s as float arrays (host-resident or backend memory). */
static float *moment_m(ParamState *s) { return s->host_state ? s->hm : (float *)s->m.data; }
static float *moment_v(ParamState *s) { return s->host_state ? s->hv : (float *)s->v.data; }

void optimizer_free(Optimizer *o) {
    if (!o->model) return;
    Backend *be = o->model->be;
    if (o->st) {
        for (int i = 0; i < o->model->nparams; i++) {
            release_device(o, &o->st[i]);
            optim_host_park_free(o, &o->st[i]);
        }
    }
    be->ops->release(be, &o->delta, MEM_OPTIM);
    for (int b = 0; b < BW_COUNT; b++) be->ops->release(be, &o->shared_g[b], MEM_GRADS);
    free(o->st);
    free(o->norm_later);
    memset(o, 0, sizeof *o);
}

static ParamState *state_of(Optimizer *o, const Param *p) { return &o->st[p - o->model->params]; }

/* Shapes of the state tensors of p. */
static void state_shapes(const Optimizer *o, const ParamState *s, const Param *p, Tensor *mv, Tensor *P) {
    int64_t rows = p->w.shape[0], cols = p->w.ndim > 1 ? p->w.shape[1] : 1;
    if (!s->galore) {
        *mv = tensor_desc(OW_F32, p->w.ndim, p->w.shape);
        *P = tensor_1d(OW_F32, 0);
        return;
    }
    int64_t r = o->cfg.rank;
    *mv = s->right ? tensor_2d(OW_F32, rows, r) : tensor_2d(OW_F32, r, cols);
    *P = s->right ? tensor_2d(OW_F32, r, cols) : tensor_2d(OW_F32, rows, r);
}

BlockWeight optimizer_share_group(BlockWeight bw) {
    return bw == BW_Q || bw == BW_K || bw == BW_V || bw == BW_O ? BW_Q : bw;
}

/* Elements of the largest tensor of a share group (the shapes of block 0). */
static int64_t share_group_numel(Model *m, BlockWeight group) {
    int64_t n = 0;
    for (int b = 0; b < BW_COUNT; b++) {
        Param *q = model_block_param(m, 0, (BlockWeight)b);
        if (optimizer_share_group((BlockWeight)b) == group && tensor_numel(&q->w) > n) n = tensor_numel(&q->w);
    }
    return n;
}

int optimizer_activate(Optimizer *o, Param *p, OwError *err) {
    Model *m = o->model;
    Backend *be = m->be;
    ParamState *s = state_of(o, p);
    if (o->share_grads && s->galore && !p->trainable) {
        BlockWeight group = optimizer_share_group(p->bw);
        Tensor *sh = &o->shared_g[group];
        if (!sh->data) {
            *sh = tensor_1d(OW_F32, share_group_numel(m, group));
            if (be->ops->alloc(be, sh, MEM_GRADS, "gradient buffer shared by the blocks", err) != 0) return -1;
        }
        OW_CHECK(tensor_numel(&p->w) <= tensor_numel(sh));
        Tensor flat = tensor_slice(sh, 0, tensor_numel(&p->w));
        p->g = tensor_reshape(&flat, p->w.ndim, p->w.shape);
        p->g_shared = 1;
        p->g_fresh = 1; /* the buffer holds another block's spent gradient */
        p->trainable = 1;
    } else if (model_set_trainable(m, p, 1, err) != 0) {
        return -1;
    }
    if (s->resident) return 0;
    Tensor mv, P;
    state_shapes(o, s, p, &mv, &P);
    char what[160];
    snprintf(what, sizeof what, "optimizer state of %s", p->name);
    s->m = mv;
    s->v = mv;
    if (s->host_state) {
        if (optim_host_moments_alloc(o, s, p, what, err) != 0) return -1;
    } else if (be->ops->alloc(be, &s->m, MEM_OPTIM, what, err) != 0 ||
               be->ops->alloc(be, &s->v, MEM_OPTIM, what, err) != 0) {
        release_device(o, s);
        return -1;
    }
    if (s->galore) {
        s->P = P;
        s->R = mv;
        if (be->ops->alloc(be, &s->P, MEM_OPTIM, what, err) != 0 ||
            be->ops->alloc(be, &s->R, MEM_OPTIM, what, err) != 0) {
            release_device(o, s);
            return -1;
        }
    }
    s->resident = 1;
    if (s->parked) optim_host_unpark(o, s);
    return 0;
}

int optimizer_deactivate(Optimizer *o, Param *p, OwError *err) {
    Model *m = o->model;
    ParamState *s = state_of(o, p);
    if (s->resident && o->cfg.inactive == INACTIVE_KEEP && s->step > 0) {
        if (optim_host_park(o, s, err) != 0) return -1;
    } else if (o->cfg.inactive == INACTIVE_RESET) {
        s->step = 0;
        s->has_P = 0;
        s->refreshes = 0;
    }
    release_device(o, s);
    return model_set_trainable(m, p, 0, err);
}

/* ---- checkpoints ---- */

OptStateHome optimizer_state_home(const Optimizer *o, const Param *p) {
    const ParamState *s = &o->st[p - o->model->params];
    if (s->resident) return OPT_STATE_DEVICE;
    return s->parked ? OPT_STATE_HOST : OPT_STATE_NONE;
}

void optimizer_state_shapes(const Optimizer *o, const Param *p, Tensor *mv, Tensor *P) {
    state_shapes(o, &o->st[p - o->model->params], p, mv, P);
}

void optimizer_state_read(Optimizer *o, const Param *p, float *m, float *v, float *P) {
    Backend *be = o->model->be;
    ParamState *s = state_of(o, p);
    Tensor mv, Pd;
    state_shapes(o, s, p, &mv, &Pd);
    size_t nb = tensor_nbytes(&mv), pb = s->galore && s->has_P ? tensor_nbytes(&Pd) : 0;
    if (s->resident) {
        optim_moments_to_host(o, s, m, v);
        if (pb) be->ops->download(be, P, OW_F32, &s->P);
        return;
    }
    OW_CHECK(s->parked);
    memcpy(m, s->host_m, nb);
    memcpy(v, s->host_v, nb);
    if (pb) memcpy(P, s->host_P, pb);
}

int optimizer_state_restore(Optimizer *o, Param *p, OptStateHome home, int64_t step, int64_t refreshes, int has_P,
                            const float *m, const float *v, const float *P, OwError *err) {
    Backend *be = o->model->be;
    ParamState *s = state_of(o, p);
    if (has_P && !s->galore)
        return ow_fail(err, "%s: the checkpoint has a GaLore projector, the run's settings do not project this tensor",
                       p->name);
    s->step = step;
    s->refreshes = refreshes;
    s->has_P = has_P;
    if (home == OPT_STATE_NONE) return 0;
    Tensor mv, Pd;
    state_shapes(o, s, p, &mv, &Pd);
    size_t nb = tensor_nbytes(&mv), pb = has_P ? tensor_nbytes(&Pd) : 0;
    if (home == OPT_STATE_DEVICE) {
        if (!p->trainable || !s->resident)
            return ow_fail(err,
                           "%s: the checkpoint has its optimizer state on the device, but the tensor is not "
                           "trainable at this step (the checkpoint does not match the run)",
                           p->name);
        optim_moments_from_host(o, s, m, v);
        if (pb) be->ops->upload(be, &s->P, P, OW_F32);
        return 0;
    }
    if (p->trainable || s->resident || o->cfg.inactive != INACTIVE_KEEP)
        return ow_fail(err,
                       "%s: the checkpoint has parked optimizer state, but the tensor is trainable or the "
                       "inactive-state policy is reset (the checkpoint does not match the run)",
                       p->name);
    if (optim_host_park_buffers(o, s, nb, pb, err) != 0) return -1;
    memcpy(s->host_m, m, nb);
    memcpy(s->host_v, v, nb);
    if (pb) memcpy(s->host_P, P, pb);
    s->parked = 1;
    return 0;
}

/* ---- per-step work ---- */

void optimizer_begin_micro(Optimizer *o, int micro, int last) {
    o->micro = micro;
    o->last_micro = last;
}

/* The precision of p's projection GEMMs: TF32 allowed or not (OptimConfig.projection_precision). */
static MatmulPrecision fast_projection(const Optimizer *o, const Param *p) {
    int pp = o->cfg.projection_precision;
    return pp == 2 || (pp == 0 && p->w.dtype == OW_BF16) ? MATMUL_FAST_F32 : MATMUL_EXACT;
}

/* Completes the ranks' sums started (Optimizer.reduce_wait). */
static int reduce_wait(Optimizer *o, OwError *err) {
    if (!o->reducing) return 0;
    o->reducing = 0;
    return o->reduce_wait(o->reduce_ctx, err);
}

/* Starts the ranks' sum of p's gradient t; `now`: waited for at once (t is read next). */
static int reduce_start(Optimizer *o, Param *p, Tensor *t, int now, OwError *err) {
    if (o->reduce(o->reduce_ctx, t, err) != 0) return ow_fail_prefix(err, "%s", p->name);
    o->reducing = 1;
    return now && reduce_wait(o, err) != 0 ? ow_fail_prefix(err, "%s", p->name) : 0;
}

/* The norms put off (take_norm), in their order, once their sums are complete. */
static int flush_norms(Optimizer *o, OwError *err) {
    if (reduce_wait(o, err) != 0) return -1;
    Backend *be = o->model->be;
    for (int k = 0; k < o->n_norm_later; k++) be->ops->norm_add(be, &o->norm_later[k]);
    o->n_norm_later = 0;
    return 0;
}

/* t's squares into the step's gradient norm: put off to the step (after the sums) when t is being
 * summed and `later` (its buffer lasts until then); else now, after those put off before it, so the
 * norm adds up in the same order as a single process's. */
static int take_norm(Optimizer *o, const Tensor *t, int later, OwError *err) {
    if (o->reduce && later) {
        if (!o->norm_later) o->norm_later = ow_xcalloc((size_t)o->model->nparams, sizeof(Tensor));
        OW_CHECK(o->n_norm_later < o->model->nparams);
        o->norm_later[o->n_norm_later++] = *t;
        return 0;
    }
    if (o->n_norm_later && flush_norms(o, err) != 0) return -1;
    Backend *be = o->model->be;
    be->ops->norm_add(be, t);
    return 0;
}

int optimizer_absorb(Optimizer *o, Param *p, OwError *err) {
    Backend *be = o->model->be;
    ParamState *s = state_of(o, p);
    if (!p->trainable || s->absorbed) return 0;
    OW_CHECK(s->resident);
    if (p->g_fresh && p->g_host) { /* no backward this step: a zero gradient at its home */
        model_zero_grad_host(o->model, p);
        p->g_fresh = 0;
        s->absorbed = 1;
        return 0;
    }
    if (p->g_fresh) { /* no contribution this step (e.g. a step without targets) */
        be->ops->fill(be, &p->g, 0.0f);
        p->g_fresh = 0;
    }
    OW_CHECKF(!p->g_host || o->last_micro, "%s: its gradient in the activation pool does not accumulate", p->name);
    int projected_accum = o->accumulate_projected && s->galore;
    /* full-rank gradients are complete only after the last micro-batch */
    if (!projected_accum && !o->last_micro) return 0;
    int first = !projected_accum || o->micro == 0;
    int refresh = s->galore && first && (!s->has_P || s->step % o->cfg.update_gap == 0);
    /* the ranks' sum: of every full-rank gradient, and of the G a projected-sum refresh projects from */
    /* a buffer the next block reuses, or a view of the activation pool copied out after this hook */
    int transient = p->g_shared || p->g_host;
    if (o->reduce && (!projected_accum || refresh) && reduce_start(o, p, &p->g, s->galore || transient, err) != 0)
        return -1;
    if (!projected_accum && take_norm(o, &p->g, !transient, err) != 0) return ow_fail_prefix(err, "%s", p->name);
    if (!projected_accum || o->last_micro) s->absorbed = 1;
    if (!s->galore) return 0;
    if (refresh) {
        /* timed alone: the compute queued before it (the backward so far) is waited for first */
        be->ops->wait_compute(be);
        double t0 = ow_now();
        uint64_t seed = rng_key_for(o->cfg.seed, RNG_STREAM_RANGEFINDER) ^
                        (0x9E3779B97F4A7C15ull * (uint64_t)((p - o->model->params) + 1)) ^ (uint64_t)s->refreshes;
        if (galore_projector(be, &s->P, &p->g, o->cfg.rank, s->right, o->cfg.projector, o->cfg.rf_oversample,
                             o->cfg.rf_iters, seed, err) != 0)
            return ow_fail_prefix(err, "projector of %s", p->name);
        s->has_P = 1;
        s->refreshes++;
        o->stats.refreshes++;
        be->ops->wait_compute(be);
        o->stats.refresh_seconds += ow_now() - t0;
    }
    float beta = first ? 0.0f : 1.0f;
    MatmulPrecision prec = fast_projection(o, p);
    if (o->reduce && projected_accum && refresh && o->reduce_rank != 0)
        be->ops->fill(be, &s->R, 0.0f); /* the summed G is projected by rank 0 alone */
    else if (s->right)
        be->ops->matmul_prec(be, &s->R, &p->g, 0, &s->P, 1, 1.0f, beta, prec);
    else
        be->ops->matmul_prec(be, &s->R, &s->P, 1, &p->g, 0, 1.0f, beta, prec);
    /* the next micro-batch, or the next block sharing the buffer, starts afresh */
    if (projected_accum || p->g_shared) p->g_fresh = 1;
    if (projected_accum && o->last_micro) {
        if (o->reduce && reduce_start(o, p, &s->R, 0, err) != 0) return -1;
        if (take_norm(o, &s->R, 1, err) != 0) return -1;
    }
    return 0;
}

int optimizer_absorb_part(Optimizer *o, int layer, OwError *err) {
    Model *m = o->model;
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        int hit = layer >= 0    ? (p->kind == PK_BLOCK && p->layer == layer)
                  : layer == -1 ? (p->kind == PK_FINAL_NORM || p->kind == PK_LM_HEAD)
                                : p->kind == PK_EMBED;
        if (hit && optimizer_absorb(o, p, err) != 0) return -1;
    }
    return 0;
}

static AdamHyper hyper_of(const Optimizer *o, int i, int64_t step, double lr, double coef) {
    const OptimConfig *c = &o->cfg;
    return (AdamHyper){.lr = (float)lr,
                       .beta1 = (float)c->beta1,
                       .beta2 = (float)c->beta2,
                       .eps = (float)c->eps,
                       .weight_decay = (float)c->weight_decay,
                       .step = step,
                       .variant = c->kind == OPT_GALORE_ADAMW ? ADAM_VARIANT_HF : ADAM_VARIANT_TORCH,
                       .grad_scale = (float)coef,
                       .sr_seed = rng_key_for(c->seed, RNG_STREAM_SROUND) ^ ((uint64_t)i << 40) ^ (uint64_t)step};
}

void optimizer_begin_step(Optimizer *o, double lr) {
    Model *m = o->model;
    Param *p = m->embed;
    ParamState *s = state_of(o, p);
    if (!p->trainable || !model_grad_is_compact(m, p) || !m->erows.complete || s->early_queued) return;
    /* the rows of tokens absent from the step: zero gradient, so their update needs no clip
     * coefficient; it runs beside the step's compute, which reads only the step's rows */
    AdamHyper h = hyper_of(o, (int)(p - m->params), s->step + 1, lr, 1.0);
    m->be->ops->adam_update_host(m->be, &p->w, NULL, moment_m(s), moment_v(s), &m->erows.sel, ADAM_ROWS_ABSENT,
                                 ADAM_HOST_ASYNC, &h);
    s->early_queued = 1;
    s->early_lr = h.lr;
}

/* The compact embedding gradient's parameter: the absent rows (unless optimizer_begin_step
 * queued them), then the rows of the step's tokens, beside the rest of the optimizer step;
 * the ticket of the latter (queued after the former) gates the next forward's lookup. */
static void step_compact_embedding(Optimizer *o, Param *p, ParamState *s, const AdamHyper *h) {
    Backend *be = o->model->be;
    Model *m = o->model;
    if (!s->early_queued) {
        AdamHyper h0 = *h;
        h0.grad_scale = 1.0f;
        be->ops->adam_update_host(be, &p->w, NULL, moment_m(s), moment_v(s), &m->erows.sel, ADAM_ROWS_ABSENT,
                                  ADAM_HOST_ASYNC, &h0);
    } else {
        OW_CHECKF(s->early_lr == h->lr, "optimizer_begin_step got lr %g, optimizer_step %g", (double)s->early_lr,
                  (double)h->lr);
    }
    p->ready_ticket = be->ops->adam_update_host(be, &p->w, &p->g, moment_m(s), moment_v(s), &m->erows.sel,
                                                ADAM_ROWS_PRESENT, ADAM_HOST_ZERO_GRAD | ADAM_HOST_ASYNC, h);
    s->early_queued = 0;
}

/* GaLore: N = m / (sqrt(v) + eps) in the projected space, then back (delta = R P or P R, R now
 * holding N) and applied, in row chunks of the scratch. */
static void step_galore(Optimizer *o, Param *p, ParamState *s, const AdamHyper *h, double lr) {
    Backend *be = o->model->be;
    const OptimConfig *c = &o->cfg;
    be->ops->adam_moments(be, &s->R, &s->R, &s->m, &s->v, h);
    double bc1 = 1.0 - pow(c->beta1, (double)s->step), bc2 = 1.0 - pow(c->beta2, (double)s->step);
    double step_size = lr * sqrt(bc2) / bc1;
    int64_t rows = p->w.shape[0], cols = p->w.shape[1];
    int64_t chunk = tensor_numel(&o->delta) / cols;
    OW_CHECK(chunk >= 1);
    MatmulPrecision prec = fast_projection(o, p);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        Tensor flat = tensor_slice(&o->delta, 0, n * cols);
        Tensor delta = tensor_reshape(&flat, 2, (int64_t[]){n, cols});
        if (s->right) {
            Tensor Rr = tensor_row_slice(&s->R, r0, n);
            be->ops->matmul_prec(be, &delta, &Rr, 0, &s->P, 0, 1.0f, 0.0f, prec);
        } else {
            Tensor Pr = tensor_row_slice(&s->P, r0, n);
            be->ops->matmul_prec(be, &delta, &Pr, 0, &s->R, 0, 1.0f, 0.0f, prec);
        }
        Tensor w = tensor_row_slice(&p->w, r0, n);
        be->ops->apply_update(be, &w, &delta, (float)(-step_size * c->scale), (float)(lr * c->weight_decay), h->sr_seed,
                              r0 * cols);
    }
}

int optimizer_step(Optimizer *o, double lr, double clip, double *grad_norm, OwError *err) {
    Model *m = o->model;
    Backend *be = m->be;
    /* anything not absorbed through hooks yet (the step's micro-batches are over) */
    o->last_micro = 1;
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        /* a gradient in the activation pool is read by the head_done hook of its backward,
         * before the pool is reused: here it is absorbed already, or there was no backward */
        OW_CHECKF(!p->g_host || !p->trainable || o->st[i].absorbed || p->g_fresh,
                  "%s: its gradient lives in the activation pool and must be absorbed in the head_done hook", p->name);
        if (optimizer_absorb(o, p, err) != 0) return -1;
    }
    if (flush_norms(o, err) != 0) return ow_fail_prefix(err, "the gradients' sums over the ranks");
    double norm = sqrt(be->ops->norm_take(be));
    *grad_norm = norm;
    double coef = 1.0;
    if (clip > 0) {
        coef = clip / (norm + 1e-6);
        if (coef > 1.0) coef = 1.0;
    }
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        ParamState *s = &o->st[i];
        if (!p->trainable) continue;
        s->step++;
        AdamHyper h = hyper_of(o, i, s->step, lr, coef);
        if (s->galore)
            step_galore(o, p, s, &h, lr);
        else if (model_grad_is_compact(m, p))
            step_compact_embedding(o, p, s, &h);
        else if (s->host_state) { /* beside the next forward, which waits before using p (Param.ready_ticket) */
            Tensor g = p->g;      /* or its copy in host memory (Param.g_host) */
            if (p->g_host) g.data = p->g_host;
            p->ready_ticket = be->ops->adam_update_host(be, &p->w, &g, s->hm, s->hv, NULL, ADAM_ROWS_PRESENT,
                                                        (p->g_host ? 0 : ADAM_HOST_ZERO_GRAD) | ADAM_HOST_ASYNC, &h);
        } else
            be->ops->adam_update(be, &p->w, &p->g, &s->m, &s->v, &h);
    }
    /* gradients for the next step: block linears start afresh (Param.g_fresh; shared buffers were
     * marked when absorbed), adam_update_host zeroed the rows it read, the rest is zeroed */
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        o->st[i].absorbed = 0;
        if (p->g_host) p->g_fresh = 1; /* the next backward writes it */
        if (!p->g.data || p->g_shared || o->st[i].host_state || model_grad_is_compact(m, p)) continue;
        if (p->kind == PK_BLOCK && p->is_matrix)
            p->g_fresh = 1;
        else
            be->ops->fill(be, &p->g, 0.0f);
    }
    model_embed_rows_reset(m);
    o->micro = 0;
    return 0;
}

/* trainer.c: see trainer.h. */
#define _GNU_SOURCE /* realpath */
#include "train/trainer.h"

#include "backend/profile.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/batcher.h"
#include "model/model_save.h"
#include "model/preset.h"
#include "train/memplan.h"
#include "owl/outliers.h"
#include "train/checkpoint.h"
#include "train/eval.h"
#include "train/interrupt.h"
#include "train/report.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct Trainer {
    TrainConfig cfg;
    Backend *be;
    Model *model;
    TokData data;
    char *data_tokens; /* the token file the data came from (NULL: in memory) */
    Batcher batcher;
    Sampler sampler;
    int sampling; /* the method trains a sample of blocks */
    Optimizer opt;
    int opt_ready;
    LrSchedule sched;
    FILE *metrics;
    int32_t *ids, *targets; /* grad_accum * B * T */
    int64_t total_steps;
    double ratios[SAMPLER_MAX_LAYERS];
    int uses_ratios;   /* the sampler samples with `ratios` */
    uint8_t *changed;  /* per parameter: updated in some step (checkpoints save these) */
    CkptProgress prog; /* steps done, tokens, times (prog.step_seconds owned here) */
    Checkpoint ck;     /* the checkpoint being resumed from, open during setup */
    int from_ckpt;     /* setup restored a checkpoint */
    double t_start;    /* ow_now() at step 0 of the run, counting earlier sessions' time */
    double step_lr;    /* the learning rate of the step in progress */
    int made_out;      /* setup created the output directory (a failed run that wrote nothing removes it) */
} Trainer;

/* ---- hooks: the optimizer absorbs gradients as soon as they are complete ---- */

static int hook_head(void *ctx, OwError *err) { return optimizer_absorb_part(&((Trainer *)ctx)->opt, -1, err); }
static int hook_block(void *ctx, int l, OwError *err) { return optimizer_absorb_part(&((Trainer *)ctx)->opt, l, err); }
static int hook_embed(void *ctx, OwError *err) { return optimizer_absorb_part(&((Trainer *)ctx)->opt, -2, err); }
static int hook_param(void *ctx, Param *p, OwError *err) { return optimizer_absorb(&((Trainer *)ctx)->opt, p, err); }
static void hook_forward_started(void *ctx) {
    Trainer *t = ctx;
    optimizer_begin_step(&t->opt, t->step_lr);
}

/* ---- trainable sets ---- */

static int set_block_trainable(Trainer *t, int layer, int on, OwError *err) {
    for (int b = 0; b < BW_COUNT; b++) {
        Param *p = model_block_param(t->model, layer, (BlockWeight)b);
        if (on && !p->trainable && optimizer_activate(&t->opt, p, err) != 0) return -1;
        if (!on && p->trainable && optimizer_deactivate(&t->opt, p, err) != 0) return -1;
    }
    return 0;
}

static int resample(Trainer *t, OwError *err) {
    sampler_draw(&t->sampler);
    int L = (int)t->model->cfg.num_layers;
    for (int pass = 0; pass < 2; pass++) /* free state first, then allocate */
        for (int l = 0; l < L; l++) {
            int on = sampler_is_active(&t->sampler, l);
            if (on == pass && set_block_trainable(t, l, on, err) != 0) return -1;
        }
    return 0;
}

static void active_string(const Trainer *t, char *buf, size_t cap) {
    const Sampler *s = &t->sampler;
    if (s->nactive == s->num_layers) {
        snprintf(buf, cap, "all");
        return;
    }
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->nactive && off + 8 < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%d", i ? "," : "", s->active[i]);
}

/* ---- evaluation ---- */

static int evaluate(Trainer *t, double *val_loss, OwError *err) {
    EvalValidation v;
    EvalBatches src = eval_batches_validation(&v, &t->batcher, t->cfg.eval_batches);
    EvalLoss r;
    if (eval_loss(t->model, &src, t->ids, t->targets, &r, err) != 0) return -1;
    *val_loss = r.loss;
    return 0;
}

static void write_metric(Trainer *t, cJSON *o) {
    char *line = cJSON_PrintUnformatted(o);
    fprintf(t->metrics, "%s\n", line);
    fflush(t->metrics);
    cJSON_free(line);
    cJSON_Delete(o);
}

static void log_eval(Trainer *t, int64_t step, double val) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)step);
    cJSON_AddNumberToObject(o, "eval_loss", val);
    cJSON_AddNumberToObject(o, "eval_ppl", exp(val));
    write_metric(t, o);
    OW_INFO("eval at step %lld: loss %.4f, perplexity %.3f", (long long)step, val, exp(val));
}

static const char *fmt_eta(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) s = 0;
    int h = (int)(s / 3600), m = (int)(fmod(s, 3600) / 60), sec = (int)fmod(s, 60);
    if (h)
        snprintf(buf, cap, "%dh%02dm", h, m);
    else
        snprintf(buf, cap, "%dm%02ds", m, sec);
    return buf;
}

/* ---- setup ---- */

/* Predicts the device memory of the run and refuses it before anything is
 * allocated when it cannot fit the cap (--gpu-mem). */
static int check_memory_plan(Trainer *t, const ModelConfig *mc, OwError *err) {
    const TrainConfig *c = &t->cfg;
    Backend *be = t->be;
    int gpu = be->caps.device_memory;
    MemPlan p;
    train_memory_plan(c, mc, be->param_dtype, be->act_dtype, gpu, &p);
    char line[512], tot[32], cap[32];
    memplan_format(&p, line, sizeof line);
    OW_INFO("memory plan (%s): %s", be->name, line);
    /* the plan counts the backend's fixed workspaces, which it allocated when it was made */
    if (!be->mem.cap || p.total <= be->mem.cap) {
        size_t more = p.total > be->mem.current_total ? p.total - be->mem.current_total : 0;
        return be->ops->reserve && more ? be->ops->reserve(be, more, err) : 0;
    }
    int64_t fit = train_memory_largest_batch(c, mc, be->param_dtype, be->act_dtype, gpu, be->mem.cap, c->batch_size);
    char hint[256];
    if (fit > 0)
        snprintf(hint, sizeof hint, "--batch-size %lld fits (with --grad-accum to keep the tokens per step)",
                 (long long)fit);
    else if (p.bytes[MEM_WEIGHTS] + be->mem.current_total > be->mem.cap)
        snprintf(hint, sizeof hint,
                 "the weights alone need %.2f GiB; use a larger card, or a smaller model (streaming "
                 "frozen blocks from host memory is not available yet)",
                 (double)p.bytes[MEM_WEIGHTS] / (1024.0 * 1024 * 1024));
    else
        snprintf(hint, sizeof hint,
                 "even --batch-size 1 does not fit; train fewer blocks at once (--gamma), a lower --rank, "
                 "or --freeze-embeddings");
    return ow_fail(err,
                   "the run needs %s of %s memory but the cap (--gpu-mem) is %s\n  plan: %s\n  hint: %s; or lower "
                   "--block-size, --gamma or --rank",
                   format_size(p.total, tot, sizeof tot), be->name, format_size(be->mem.cap, cap, sizeof cap), line,
                   hint);
}

/* Absolute form of an existing path (kept as given otherwise). */
static void make_absolute(char *path, size_t cap) {
    char buf[PATH_MAX];
    if (path[0] && ow_path_exists(path) && realpath(path, buf) && strlen(buf) < cap) snprintf(path, cap, "%s", buf);
}

/* Which checkpoint to continue from (resume), or that a fresh run has a clean RUN_DIR. */
static int choose_start(Trainer *t, OwError *err) {
    TrainConfig *c = &t->cfg;
    if (!c->resume[0]) {
        char **names;
        int n;
        if (ckpt_list(c->out, &names, &n, err) != 0) return -1;
        ckpt_names_free(names, n);
        if (n > 0)
            return ow_fail(err,
                           "%s already holds checkpoints of a run (hint: `owlore train --resume %s` continues it; "
                           "choose another --out for a new run)",
                           c->out, c->out);
        make_absolute(c->model, sizeof c->model);
        make_absolute(c->data, sizeof c->data);
        make_absolute(c->ratios, sizeof c->ratios);
        return 0;
    }
    int rc = ckpt_open_latest(c->out, c->resume_fallback, &t->ck, err);
    if (rc < 0) return -1;
    if (rc == 1) {
        OW_INFO("%s has no checkpoint yet: starting the run again from step 0", c->out);
        return 0;
    }
    t->from_ckpt = 1;
    OW_INFO("resuming %s from %s (step %lld)", c->out, t->ck.name, (long long)t->ck.step);
    return 0;
}

/* metrics.jsonl: new, or cut back to its length at the checkpoint. */
static int open_metrics(Trainer *t, OwError *err) {
    char *mp = ow_path_join(t->cfg.out, "metrics.jsonl");
    int rc = 0;
    if (t->from_ckpt) {
        FILE *fp = fopen(mp, "rb");
        long size = -1;
        if (fp && fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
        if (fp) fclose(fp);
        if (size < t->prog.metrics_bytes)
            rc = ow_fail(err,
                         "%s: %ld bytes, shorter than the %lld the checkpoint recorded (the file was changed or "
                         "lost; the run cannot continue it)",
                         mp, size, (long long)t->prog.metrics_bytes);
        else if (truncate(mp, (off_t)t->prog.metrics_bytes) != 0)
            rc = ow_fail(err, "%s: cannot cut back to the checkpoint: %s", mp, strerror(errno));
        if (rc == 0) t->metrics = fopen(mp, "ab");
    } else {
        t->metrics = fopen(mp, "w");
    }
    if (rc == 0 && !t->metrics) rc = ow_fail(err, "%s: cannot open: %s", mp, strerror(errno));
    free(mp);
    return rc;
}

static int setup(Trainer *t, OwError *err) {
    TrainConfig *c = &t->cfg;
    t->made_out = !ow_is_dir(c->out);
    if (ow_mkdir_p(c->out, err) != 0) return -1;
    if (choose_start(t, err) != 0) return -1;
    t->be = backend_create(c->device, &(BackendOptions){.threads = (int)c->threads, .mem_cap = c->gpu_mem}, err);
    if (!t->be) return -1;
    if (c->precision == PRECISION_BF16 && !t->be->caps.bf16)
        return ow_fail(err,
                       "--precision bf16 needs a backend that computes in bf16 (CUDA): the %s backend computes "
                       "in fp32 (hint: --precision auto or fp32)",
                       t->be->name);
    if (c->precision == PRECISION_FP32 && t->be->ops->set_dtypes(t->be, OW_F32, OW_F32, err) != 0) return -1;
    OW_INFO("device: %s", t->be->name);
    if (getenv("OWLORE_PROFILE") && *getenv("OWLORE_PROFILE") && strcmp(getenv("OWLORE_PROFILE"), "0") != 0) {
        backend_profile_enable(t->be);
        OW_INFO("OWLORE_PROFILE: timing every backend op (synchronised); the table is printed at the end");
    }
    {
        ModelConfig mc;
        char *src;
        int is_dir;
        if (model_preset_resolve(c->model, &mc, &src, &is_dir, err) != 0) return -1;
        free(src);
        if (check_memory_plan(t, &mc, err) != 0) return -1;
        if (is_dir) {
            if (model_load_hf(t->be, c->model, &t->model, err) != 0) return -1;
        } else {
            OW_WARN("%s: no weights: training from a random initialisation (std %g)", c->model, c->init_std);
            if (model_create(t->be, &mc, &t->model, err) != 0) return -1;
            model_init_random(t->model, (uint64_t)c->seed, c->init_std);
        }
    }
    Model *m = t->model;
    t->changed = ow_xcalloc((size_t)m->nparams, 1);
    if (t->from_ckpt && ckpt_apply_weights(&t->ck, m, t->changed, err) != 0) return -1;
    int L = (int)m->cfg.num_layers;
    if (strcmp(c->data, "synthetic") == 0) {
        if (c->steps <= 0) return ow_fail(err, "--data synthetic needs --steps");
        int64_t n = c->steps * c->grad_accum * c->batch_size * c->block_size;
        n += (int64_t)ceil(n * c->val_split / (1 - c->val_split)) + c->block_size + 1;
        int32_t *ids = ow_try_malloc((size_t)n * sizeof(int32_t), "synthetic tokens", err);
        if (!ids) return -1;
        Rng r;
        rng_init(&r, (uint64_t)c->seed, RNG_STREAM_DATA);
        for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)rng_below(&r, (uint64_t)m->cfg.vocab_size);
        tokdata_from_ids(&t->data, ids, n, m->cfg.vocab_size);
    } else if (train_load_data_with(c->data, ow_is_dir(c->model) ? c->model : NULL, m->cfg.vocab_size, &c->data_opt,
                                    c->data_cache, c->out, &t->data, &t->data_tokens, err) != 0) {
        return -1;
    }
    if (batcher_init_packing(&t->batcher, &t->data, c->packing, c->batch_size, c->block_size, c->val_split, c->shuffle,
                             (uint64_t)c->seed, c->data, err) != 0)
        return -1;
    if (t->batcher.n_long > 0)
        OW_INFO("%s: %lld of %lld samples are longer than block_size + 1 = %lld tokens: %s", c->data,
                (long long)t->batcher.n_long, (long long)t->data.ndocs, (long long)c->block_size + 1,
                c->packing == PACKING_PAD ? "truncated (packing pad)" : "split across windows (packing concat)");
    /* sampling */
    t->sampling = strcmp(c->method, "galore") != 0 && strcmp(c->method, "full") != 0 && c->sampling != SAMPLING_ALL;
    SamplingMode mode = t->sampling ? c->sampling : SAMPLING_ALL;
    if (t->sampling && c->gamma > L)
        return ow_fail(err, "gamma = %lld blocks, but the model has only %d (hint: --gamma %d or less)",
                       (long long)c->gamma, L, L);
    int needs_ratios = t->sampling && !c->forced_blocks[0] && (mode == SAMPLING_OWL || mode == SAMPLING_OWL_REVERSE);
    int saved = needs_ratios && t->from_ckpt ? ckpt_ratios(&t->ck, L, t->ratios, err) : 0;
    if (saved < 0) return -1;
    if (needs_ratios && saved) {
        /* the ratios the run sampled with, kept in the checkpoint */
    } else if (needs_ratios && c->ratios[0]) {
        if (owl_read_ratios(c->ratios, L, t->ratios, err) != 0) return -1;
    } else if (needs_ratios) {
        int64_t seqlen = c->seqlen < m->cfg.max_position_embeddings ? c->seqlen : m->cfg.max_position_embeddings;
        if (seqlen > t->data.count - 1) seqlen = t->data.count - 1;
        OW_INFO("computing OWL outlier ratios (%lld sequences of %lld tokens, M = %g); pass --ratios to reuse them",
                (long long)c->nsamples, (long long)seqlen, c->M);
        OutlierResult r;
        if (owl_compute(m, &t->data, c->nsamples, seqlen, c->M, 8, (uint64_t)c->seed, &r, err) != 0) return -1;
        memcpy(t->ratios, r.ratios, sizeof(double) * (size_t)L);
        char *rp = ow_path_join(c->out, "ratios.json");
        int rc = owl_write_json(&r, c->model, rp, err);
        snprintf(c->ratios, sizeof c->ratios, "%s", rp);
        make_absolute(c->ratios, sizeof c->ratios);
        free(rp);
        owl_result_free(&r);
        if (rc != 0) return -1;
    }
    t->uses_ratios = needs_ratios;
    if (c->forced_blocks[0] && t->sampling) mode = SAMPLING_UNIFORM; /* the schedule replaces the draws */
    if (sampler_init(&t->sampler, L, (int)c->gamma, mode, needs_ratios ? t->ratios : NULL, (uint64_t)c->seed, err) != 0)
        return -1;
    if (c->forced_blocks[0] && sampler_force(&t->sampler, c->forced_blocks, err) != 0) return -1;
    /* optimizer */
    int gpu = t->be->caps.device_memory;
    OptimConfig oc = train_config_optim(c);
    oc.offload_head = train_config_offload_optimizer(c, gpu);
    if (optimizer_init(&t->opt, m, &oc, err) != 0) return -1;
    t->opt_ready = 1;
    t->opt.accumulate_projected = c->accum_mode == ACCUM_PROJECTED;
    t->opt.share_grads = c->grad_accum == 1 || c->accum_mode == ACCUM_PROJECTED;
    /* the embedding's gradient: rows of the step's distinct tokens only (untied) */
    if (m->lm_head != m->embed) m->embed_grad_rows = c->grad_accum * c->batch_size * c->block_size;
    /* activations first: lm_head's gradient may live in their pool (Model.head_grad_host) */
    m->offload_acts = train_config_offload_acts(c, gpu);
    m->head_grad_host = train_config_head_grad_host(c, gpu, m->lm_head == m->embed);
    if (model_prepare(m, c->batch_size, c->block_size, c->recompute, err) != 0) return -1;
    if (!c->freeze_embeddings && optimizer_activate(&t->opt, m->embed, err) != 0) return -1;
    if (optimizer_activate(&t->opt, m->final_norm, err) != 0) return -1;
    if (m->lm_head != m->embed && optimizer_activate(&t->opt, m->lm_head, err) != 0) return -1;
    if (gpu && oc.kind == OPT_GALORE_ADAMW) {
        double t0 = ow_now();
        if (galore_warm_up(t->be, &oc, err) != 0) return ow_fail_prefix(err, "projector warm-up");
        OW_INFO("projector warm-up (first use of the GPU solvers): %.2f s", ow_now() - t0);
    }
    /* schedule and step count */
    int64_t per_step = c->batch_size * c->grad_accum;
    t->total_steps = c->steps > 0 ? c->steps : (int64_t)ceil(c->epochs * (double)t->batcher.ntrain / (double)per_step);
    if (t->total_steps < 1) t->total_steps = 1;
    t->sched = (LrSchedule){c->schedule, c->lr, c->warmup, t->total_steps};
    t->prog.total_steps = t->total_steps;
    t->prog.step_seconds = ow_xcalloc((size_t)t->total_steps, sizeof(double));
    /* the checkpoint's sampler, trainable blocks, optimizer state, data position and counters */
    if (t->from_ckpt) {
        if (ckpt_restore_progress(&t->ck, &t->sampler, &t->batcher, &t->prog, err) != 0) return -1;
        for (int i = 0; i < t->sampler.nactive; i++)
            if (set_block_trainable(t, t->sampler.active[i], 1, err) != 0) return -1;
        if (ckpt_restore_optimizer(&t->ck, &t->opt, err) != 0) return -1;
        ckpt_close(&t->ck);
    }
    size_t nb = (size_t)(c->grad_accum * c->batch_size * c->block_size);
    t->ids = ow_xmalloc(nb * sizeof(int32_t));
    t->targets = ow_xmalloc(nb * sizeof(int32_t));
    /* the resolved config (resume settings are per invocation) */
    TrainConfig saved_cfg = *c;
    saved_cfg.resume[0] = '\0';
    saved_cfg.resume_fallback = 0;
    cJSON *cj = train_config_to_json(&saved_cfg);
    cJSON_AddNumberToObject(cj, "total_steps", (double)t->total_steps);
    cJSON_AddStringToObject(cj, "backend", t->be->name);
    if (t->data_tokens) cJSON_AddStringToObject(cj, "data_tokens", t->data_tokens);
    char *cp = ow_path_join(c->out, "config.json");
    int rc = json_write_file(cp, cj, err);
    free(cp);
    cJSON_Delete(cj);
    if (rc != 0 || open_metrics(t, err) != 0) return -1;
    OW_INFO(
        "training %s: %lld steps of %lld x %lld tokens (x%lld accumulation), %lld training windows, %lld validation",
        c->method, (long long)t->total_steps, (long long)c->batch_size, (long long)c->block_size,
        (long long)c->grad_accum, (long long)t->batcher.ntrain, (long long)t->batcher.nval);
    return 0;
}

static void teardown(Trainer *t) {
    if (t->metrics) fclose(t->metrics);
    ckpt_close(&t->ck);
    free(t->changed);
    free(t->prog.step_seconds);
    free(t->ids);
    free(t->targets);
    if (t->opt_ready) optimizer_free(&t->opt);
    sampler_free(&t->sampler);
    batcher_free(&t->batcher);
    tokdata_free(&t->data);
    free(t->data_tokens);
    model_free(t->model);
    if (t->be && t->be->profile) {
        backend_profile_report(t->be, stderr);
        backend_profile_disable(t->be);
    }
    if (t->be) t->be->ops->destroy(t->be);
}

/* ---- the loop ---- */

static int train_step(Trainer *t, int64_t step, double *loss, double *gnorm, OwError *err) {
    TrainConfig *c = &t->cfg;
    int64_t bt = c->batch_size * c->block_size;
    int64_t total = 0;
    for (int64_t k = 0; k < c->grad_accum; k++) {
        batcher_next(&t->batcher, t->ids + k * bt, t->targets + k * bt);
        for (int64_t i = 0; i < bt; i++) total += t->targets[k * bt + i] != -100;
    }
    float scale = total ? 1.0f / (float)total : 0.0f;
    double lr = lr_at(&t->sched, step);
    /* the step's tokens, so the optimizer can update the embedding rows without a gradient beside
     * the step (queued once the first block's forward is, hook_forward_started) */
    if (model_begin_step(t->model, t->ids, c->grad_accum * bt, err) != 0) return -1;
    t->step_lr = lr;
    double sum = 0;
    GradHooks hooks = {t, hook_head, hook_block, hook_embed, hook_param, hook_forward_started};
    for (int64_t k = 0; k < c->grad_accum; k++) {
        double s;
        int64_t n;
        if (total == 0) break; /* nothing to learn from: a step with no targets only advances the schedule */
        optimizer_begin_micro(&t->opt, (int)k, k == c->grad_accum - 1);
        if (model_forward_backward(t->model, t->ids + k * bt, t->targets + k * bt, scale, &hooks, &s, &n, err) != 0)
            return -1;
        sum += s;
    }
    *loss = total ? sum / (double)total : NAN;
    return optimizer_step(&t->opt, lr, c->clip, gnorm, err);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* RUN_DIR/summary.json: the figures a benchmark reports. */
static int write_summary(Trainer *t, const double *step_secs, double tokens, double refresh_s, int64_t refreshes,
                         TrainSummary *summary, OwError *err) {
    const TrainConfig *c = &t->cfg;
    int64_t n = t->total_steps, skip = n > 4 ? 2 : 0;
    double *sorted = ow_xmalloc((size_t)n * sizeof(double));
    memcpy(sorted, step_secs, (size_t)n * sizeof(double));
    qsort(sorted + skip, (size_t)(n - skip), sizeof(double), cmp_double);
    int64_t k = n - skip;
    double median = k % 2 ? sorted[skip + k / 2] : 0.5 * (sorted[skip + k / 2 - 1] + sorted[skip + k / 2]);
    free(sorted);
    double tok_step = (double)(c->batch_size * c->block_size * c->grad_accum);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", c->method);
    cJSON_AddStringToObject(o, "backend", t->be->name);
    cJSON_AddStringToObject(o, "model", c->model);
    cJSON_AddNumberToObject(o, "batch_size", (double)c->batch_size);
    cJSON_AddNumberToObject(o, "block_size", (double)c->block_size);
    cJSON_AddNumberToObject(o, "steps", (double)n);
    cJSON_AddNumberToObject(o, "first_step_s", step_secs[0]);
    cJSON_AddNumberToObject(o, "steady_step_s", median);
    cJSON_AddNumberToObject(o, "tokens_per_s", tok_step / median);
    double train_s = 0;
    for (int64_t i = 0; i < n; i++) train_s += step_secs[i];
    /* over all steps, resampling and projector refreshes included; evaluations and checkpoint saves excluded */
    cJSON_AddNumberToObject(o, "avg_tokens_per_s", tokens / train_s);
    cJSON_AddNumberToObject(o, "train_seconds", train_s);
    cJSON_AddNumberToObject(o, "seconds", summary->seconds);
    cJSON_AddNumberToObject(o, "projector_refreshes", (double)refreshes);
    cJSON_AddNumberToObject(o, "projector_refresh_s_per_matrix", refreshes ? refresh_s / (double)refreshes : 0);
    cJSON_AddNumberToObject(o, "projector_refresh_s_per_block", refreshes ? 7.0 * refresh_s / (double)refreshes : 0);
    cJSON_AddNumberToObject(o, "peak_bytes", (double)t->be->mem.peak_total);
    cJSON_AddNumberToObject(o, "peak_gib", (double)t->be->mem.peak_total / (1024.0 * 1024 * 1024));
    cJSON *bd = cJSON_AddObjectToObject(o, "peak_breakdown_bytes");
    for (int kind = 0; kind < MEM_KIND_COUNT; kind++)
        cJSON_AddNumberToObject(bd, mem_kind_name((MemKind)kind), (double)t->be->mem.peak_breakdown[kind]);
    if (t->be->caps.device_memory) {
        /* the allocator's segments, the context and libraries outside it, and all device memory in use */
        BackendMemReport mr;
        t->be->ops->mem_report(t->be, &mr);
        cJSON_AddNumberToObject(o, "arena_peak_reserved_bytes", (double)mr.peak_reserved);
        cJSON_AddNumberToObject(o, "device_context_bytes", (double)mr.context);
        cJSON_AddNumberToObject(o, "device_used_peak_bytes", (double)mr.used_peak);
    }
    cJSON_AddNumberToObject(o, "host_optimizer_bytes_peak", (double)t->opt.host.peak_total);
    cJSON_AddNumberToObject(o, "host_activation_bytes",
                            (double)model_offload_host_bytes(&t->model->cfg, t->be->act_dtype, c->batch_size,
                                                             c->block_size, c->recompute, t->model->offload_acts));
    cJSON_AddNumberToObject(o, "first_loss", summary->first_loss);
    cJSON_AddNumberToObject(o, "last_loss", summary->last_loss);
    char *p = ow_path_join(c->out, "summary.json");
    int rc = json_write_file(p, o, err);
    char *line = cJSON_PrintUnformatted(o);
    snprintf(summary->result, sizeof summary->result, "%s", line);
    cJSON_free(line);
    free(p);
    cJSON_Delete(o);
    return rc;
}

/* Saves a checkpoint of the state after `step` steps. */
static int save_checkpoint(Trainer *t, int64_t step, TrainSummary *summary, OwError *err) {
    ow_progress_end();
    if (fflush(t->metrics) != 0 || fsync(fileno(t->metrics)) != 0)
        return ow_fail(err, "%s/metrics.jsonl: cannot flush: %s", t->cfg.out, strerror(errno));
    struct stat sb;
    if (fstat(fileno(t->metrics), &sb) != 0)
        return ow_fail(err, "%s/metrics.jsonl: cannot stat: %s", t->cfg.out, strerror(errno));
    int64_t len = (int64_t)sb.st_size;
    t->prog.step = step;
    t->prog.metrics_bytes = len;
    t->prog.elapsed = ow_now() - t->t_start;
    CkptParts parts = {t->model, &t->opt, &t->sampler, &t->batcher, t->changed, t->uses_ratios ? t->ratios : NULL};
    double t0 = ow_now();
    if (ckpt_save(t->cfg.out, &parts, &t->prog, t->cfg.keep, summary->checkpoint, sizeof summary->checkpoint, err) != 0)
        return -1;
    OW_INFO("saved checkpoint %s (%.1f s)", summary->checkpoint, ow_now() - t0);
    return 0;
}

/* The first and last training and validation losses of a resumed run so far, from metrics.jsonl. */
static void losses_so_far(const char *out, TrainSummary *summary) {
    char *p = ow_path_join(out, "metrics.jsonl"), *text;
    size_t len;
    OwError e;
    if (ow_read_file(p, &text, &len, &e) == 0) {
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            cJSON *o = cJSON_Parse(line);
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "loss"),
                        *v = cJSON_GetObjectItemCaseSensitive(o, "eval_loss");
            if (cJSON_IsNumber(l)) {
                if (isnan(summary->first_loss)) summary->first_loss = l->valuedouble;
                summary->last_loss = l->valuedouble;
            }
            if (cJSON_IsNumber(v)) {
                if (isnan(summary->first_val)) summary->first_val = v->valuedouble;
                summary->last_val = v->valuedouble;
            }
            cJSON_Delete(o);
        }
        free(text);
    }
    free(p);
}

int train_run(const TrainConfig *cfg, TrainSummary *summary, OwError *err) {
    Trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = *cfg;
    memset(summary, 0, sizeof *summary);
    summary->first_loss = summary->last_loss = NAN;
    summary->first_val = summary->last_val = NAN;
    int rc = -1;
    if (train_config_validate(&t.cfg, err) != 0 || setup(&t, err) != 0) goto done;
    TrainConfig *c = &t.cfg;
    CkptProgress *pg = &t.prog;
    int64_t start = pg->step;
    summary->total_steps = t.total_steps;
    summary->steps = start;
    if (start > 0) losses_so_far(c->out, summary);
    double val;
    if (t.batcher.nval > 0 && start == 0) {
        if (evaluate(&t, &val, err) != 0) goto done;
        log_eval(&t, 0, val);
        summary->first_val = summary->last_val = val;
    }
    double session_start = ow_now();
    t.t_start = session_start - pg->elapsed;
    int64_t tok_per_step = c->batch_size * c->block_size * c->grad_accum;
    int sig = 0;
    for (int64_t step = start; step < t.total_steps; step++) {
        double t0 = ow_now(), resample_s = 0;
        if (step % c->interval == 0 && (t.sampling || step == 0)) {
            if (resample(&t, err) != 0) goto done;
            resample_s = ow_now() - t0; /* parking and restoring optimizer state */
        }
        double loss, gnorm;
        t.opt.stats.refreshes = 0;
        t.opt.stats.refresh_seconds = 0;
        if (train_step(&t, step, &loss, &gnorm, err) != 0) goto done;
        t.be->ops->wait_compute(t.be); /* the step's compute; side work (optimizer state copies) may run on */
        t.be->ops->sample_used(t.be);
        for (int i = 0; i < t.model->nparams; i++) t.changed[i] |= (uint8_t)t.model->params[i].trainable;
        double dt = ow_now() - t0;
        pg->step_seconds[step] = dt;
        pg->refresh_seconds += t.opt.stats.refresh_seconds;
        pg->refreshes += t.opt.stats.refreshes;
        pg->tokens += (double)tok_per_step;
        double elapsed = ow_now() - t.t_start;
        if (step == 0) summary->first_loss = loss;
        summary->last_loss = loss;
        summary->steps = step + 1;
        if (!isfinite(loss)) {
            ow_fail(err, "the loss became %g at step %lld (hint: lower --lr, or check the data)", loss,
                    (long long)step + 1);
            goto done;
        }
        char act[1024];
        active_string(&t, act, sizeof act);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)(step + 1));
        cJSON_AddNumberToObject(o, "loss", loss);
        cJSON_AddNumberToObject(o, "lr", lr_at(&t.sched, step));
        cJSON_AddNumberToObject(o, "grad_norm", gnorm);
        cJSON_AddNumberToObject(o, "tokens", pg->tokens);
        cJSON *ab = cJSON_AddArrayToObject(o, "active_blocks");
        for (int i = 0; i < t.sampler.nactive; i++) cJSON_AddItemToArray(ab, cJSON_CreateNumber(t.sampler.active[i]));
        cJSON_AddNumberToObject(o, "seconds", elapsed);
        cJSON_AddNumberToObject(o, "step_seconds", dt);
        cJSON_AddNumberToObject(o, "tokens_per_s", (double)tok_per_step / dt);
        cJSON_AddNumberToObject(o, "mem_bytes", (double)t.be->mem.current_total);
        cJSON_AddNumberToObject(o, "mem_peak_bytes", (double)t.be->mem.peak_total);
        cJSON_AddNumberToObject(o, "host_optimizer_bytes", (double)t.opt.host.current_total);
        cJSON_AddNumberToObject(o, "projector_refreshes", t.opt.stats.refreshes);
        cJSON_AddNumberToObject(o, "projector_seconds", t.opt.stats.refresh_seconds);
        cJSON_AddNumberToObject(o, "resample_seconds", resample_s);
        write_metric(&t, o);
        if ((step + 1) % c->log_every == 0 || step + 1 == t.total_steps) {
            char mem[32], eta[32];
            double done_here = (double)(step + 1 - start);
            ow_progress(
                "step %lld/%lld | loss %.4f | lr %.2e | gnorm %.3f | %.0f tok/s | mem %s | blocks %s | ETA %s",
                (long long)step + 1, (long long)t.total_steps, loss, lr_at(&t.sched, step), gnorm, pg->tokens / elapsed,
                format_size(t.be->mem.peak_total, mem, sizeof mem), act,
                fmt_eta((ow_now() - session_start) / done_here * (double)(t.total_steps - step - 1), eta, sizeof eta));
        }
        if (t.batcher.nval > 0 && c->eval_every > 0 && (step + 1) % c->eval_every == 0 && step + 1 < t.total_steps) {
            if (evaluate(&t, &val, err) != 0) goto done;
            ow_progress_end();
            log_eval(&t, step + 1, val);
            summary->last_val = val;
        }
        sig = train_interrupt_pending();
        if (c->save_every >= 0 &&
            (step + 1 == t.total_steps || sig || (c->save_every > 0 && (step + 1) % c->save_every == 0)))
            if (save_checkpoint(&t, step + 1, summary, err) != 0) goto done;
        if (sig) break;
    }
    ow_progress_end();
    pg->elapsed = ow_now() - t.t_start;
    summary->seconds = pg->elapsed;
    summary->tokens_per_s = pg->tokens / summary->seconds;
    summary->peak_mem = t.be->mem.peak_total;
    if (sig) {
        summary->interrupted = sig;
        OwError e2;
        if (report_write(c->out, &e2) != 0) OW_WARN("could not write the report: %s", e2.msg);
        rc = TRAIN_INTERRUPTED;
        goto done;
    }
    if (write_summary(&t, pg->step_seconds, pg->tokens, pg->refresh_seconds, pg->refreshes, summary, err) != 0)
        goto done;
    if (t.batcher.nval > 0) {
        if (evaluate(&t, &val, err) != 0) goto done;
        log_eval(&t, t.total_steps, val);
        summary->last_val = val;
    }
    if (c->save_model) {
        char *md = ow_path_join(c->out, "model");
        rc = ow_is_dir(c->model) ? model_save_hf(t.model, md, OW_F32, 0, c->model, err)
                                 : model_save_hf(t.model, md, OW_F32, 0, NULL, err);
        if (rc == 0) OW_INFO("saved the fine-tuned model to %s", md);
        free(md);
        if (rc != 0) goto done;
    }
    fflush(t.metrics);
    {
        OwError e2;
        if (report_write(c->out, &e2) != 0) OW_WARN("could not write the report: %s", e2.msg);
    }
    rc = 0;
done:
    teardown(&t);
    /* no partial output: a run refused at setup (e.g. over the --gpu-mem cap) leaves no empty directory */
    if (rc != 0 && t.made_out) (void)rmdir(t.cfg.out);
    return rc;
}

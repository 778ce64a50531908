/* trainer.c: see trainer.h. */
#include "train/trainer.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "data/batcher.h"
#include "model/model_save.h"
#include "owl/outliers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Trainer {
    TrainConfig cfg;
    Backend *be;
    Model *model;
    TokData data;
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
} Trainer;

Backend *train_create_backend(const char *device, size_t gpu_mem, int64_t threads, OwError *err) {
    if (strcmp(device, "cpu") == 0) return backend_create_cpu((int)threads, gpu_mem, err);
    if (strcmp(device, "cuda") == 0) return backend_create_cuda(0, gpu_mem, err);
    if (backend_cuda_available()) {
        OwError e2;
        Backend *be = backend_create_cuda(0, gpu_mem, &e2);
        if (be) return be;
        OW_INFO("no usable CUDA device (%s); training on the CPU", e2.msg);
    }
    return backend_create_cpu((int)threads, gpu_mem, err);
}

static int has_magic(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    char b[8] = {0};
    size_t n = fread(b, 1, 8, fp);
    fclose(fp);
    return n == 8 && memcmp(b, "OWLTOKS", 8) == 0;
}

int train_load_data(const char *path, const char *model_dir, int64_t vocab_size, TokData *out, OwError *err) {
    if (has_magic(path)) {
        if (tokfile_read(path, out, err) != 0) return -1;
        if (out->vocab_size > vocab_size) {
            for (int64_t i = 0; i < out->count; i++) {
                int32_t id = tokdata_id(out, i);
                if (id >= vocab_size) {
                    ow_fail(err, "%s: token %lld has id %d, but the model's vocabulary has %lld entries (hint: the data "
                            "was tokenized for another model)", path, (long long)i, id, (long long)vocab_size);
                    tokdata_free(out);
                    return -1;
                }
            }
        }
        return 0;
    }
    if (!ow_path_exists(path)) return ow_fail(err, "%s: no such file", path);
    char *tok = model_dir ? ow_path_join(model_dir, "tokenizer.json") : NULL;
    int has_tok = tok && ow_path_exists(tok);
    free(tok);
    if (has_tok)
        return ow_fail(err, "%s: not an owlore token file, and the model has a tokenizer.json; tokenize the text first "
                       "(hint: an owlore token file made with the model's tokenizer)", path);
    OW_INFO("%s: reading text as bytes (the model has no tokenizer.json: byte-level vocabulary)", path);
    return tokdata_from_bytes_file(path, vocab_size, out, err);
}

/* ---- hooks: the optimizer absorbs gradients as soon as they are complete ---- */

static int hook_head(void *ctx, OwError *err) { return optimizer_absorb_part(&((Trainer *)ctx)->opt, -1, err); }
static int hook_block(void *ctx, int l, OwError *err) { return optimizer_absorb_part(&((Trainer *)ctx)->opt, l, err); }
static int hook_embed(void *ctx, OwError *err) { return optimizer_absorb_part(&((Trainer *)ctx)->opt, -2, err); }

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
    for (int i = 0; i < s->nactive && off + 8 < cap; i++) off += (size_t)snprintf(buf + off, cap - off, "%s%d", i ? "," : "", s->active[i]);
}

/* ---- evaluation ---- */

static int evaluate(Trainer *t, double *val_loss, OwError *err) {
    int64_t nb = batcher_val_batches(&t->batcher);
    if (t->cfg.eval_batches > 0 && nb > t->cfg.eval_batches) nb = t->cfg.eval_batches;
    double sum = 0;
    int64_t count = 0;
    for (int64_t k = 0; k < nb; k++) {
        batcher_val_batch(&t->batcher, k, t->ids, t->targets);
        double s;
        int64_t n;
        if (model_forward_backward(t->model, t->ids, t->targets, 0.0f, NULL, &s, &n, err) != 0) return -1;
        sum += s;
        count += n;
    }
    *val_loss = count ? sum / (double)count : NAN;
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

static int setup(Trainer *t, OwError *err) {
    TrainConfig *c = &t->cfg;
    if (ow_mkdir_p(c->out, err) != 0) return -1;
    t->be = train_create_backend(c->device, c->gpu_mem, c->threads, err);
    if (!t->be) return -1;
    OW_INFO("device: %s", t->be->name);
    if (model_load_hf(t->be, c->model, &t->model, err) != 0) return -1;
    Model *m = t->model;
    int L = (int)m->cfg.num_layers;
    if (train_load_data(c->data, c->model, m->cfg.vocab_size, &t->data, err) != 0) return -1;
    if (batcher_init(&t->batcher, &t->data, c->batch_size, c->block_size, c->val_split, c->shuffle, (uint64_t)c->seed,
                     c->data, err) != 0)
        return -1;
    /* sampling */
    t->sampling = strcmp(c->method, "galore") != 0 && strcmp(c->method, "full") != 0 && c->sampling != SAMPLING_ALL;
    SamplingMode mode = t->sampling ? c->sampling : SAMPLING_ALL;
    if (t->sampling && c->gamma > L)
        return ow_fail(err, "gamma = %lld blocks, but the model has only %d (hint: --gamma %d or less)", (long long)c->gamma, L, L);
    int needs_ratios = t->sampling && !c->forced_blocks[0] && (mode == SAMPLING_OWL || mode == SAMPLING_OWL_REVERSE);
    if (needs_ratios && c->ratios[0]) {
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
        free(rp);
        owl_result_free(&r);
        if (rc != 0) return -1;
    }
    if (sampler_init(&t->sampler, L, (int)c->gamma, mode, needs_ratios ? t->ratios : NULL, (uint64_t)c->seed, err) != 0)
        return -1;
    if (c->forced_blocks[0] && sampler_force(&t->sampler, c->forced_blocks, err) != 0) return -1;
    /* optimizer */
    OptimConfig oc = train_config_optim(c);
    if (optimizer_init(&t->opt, m, &oc, err) != 0) return -1;
    t->opt_ready = 1;
    t->opt.accumulate_projected = c->accum_mode == ACCUM_PROJECTED;
    if (!c->freeze_embeddings && optimizer_activate(&t->opt, m->embed, err) != 0) return -1;
    if (optimizer_activate(&t->opt, m->final_norm, err) != 0) return -1;
    if (m->lm_head != m->embed && optimizer_activate(&t->opt, m->lm_head, err) != 0) return -1;
    if (model_prepare(m, c->batch_size, c->block_size, c->recompute, err) != 0) return -1;
    /* schedule and step count */
    int64_t per_step = c->batch_size * c->grad_accum;
    t->total_steps = c->steps > 0 ? c->steps : (int64_t)ceil(c->epochs * (double)t->batcher.ntrain / (double)per_step);
    if (t->total_steps < 1) t->total_steps = 1;
    t->sched = (LrSchedule){c->schedule, c->lr, c->warmup, t->total_steps};
    size_t nb = (size_t)(c->grad_accum * c->batch_size * c->block_size);
    t->ids = ow_xmalloc(nb * sizeof(int32_t));
    t->targets = ow_xmalloc(nb * sizeof(int32_t));
    /* the resolved config */
    cJSON *cj = train_config_to_json(c);
    cJSON_AddNumberToObject(cj, "total_steps", (double)t->total_steps);
    cJSON_AddStringToObject(cj, "backend", t->be->name);
    char *cp = ow_path_join(c->out, "config.json");
    int rc = json_write_file(cp, cj, err);
    free(cp);
    cJSON_Delete(cj);
    if (rc != 0) return -1;
    char *mp = ow_path_join(c->out, "metrics.jsonl");
    t->metrics = fopen(mp, "w");
    free(mp);
    if (!t->metrics) return ow_fail(err, "%s: cannot create metrics.jsonl", c->out);
    OW_INFO("training %s: %lld steps of %lld x %lld tokens (x%lld accumulation), %lld training windows, %lld validation",
            c->method, (long long)t->total_steps, (long long)c->batch_size, (long long)c->block_size,
            (long long)c->grad_accum, (long long)t->batcher.ntrain, (long long)t->batcher.nval);
    return 0;
}

static void teardown(Trainer *t) {
    if (t->metrics) fclose(t->metrics);
    free(t->ids);
    free(t->targets);
    if (t->opt_ready) optimizer_free(&t->opt);
    sampler_free(&t->sampler);
    batcher_free(&t->batcher);
    tokdata_free(&t->data);
    model_free(t->model);
    if (t->be) t->be->destroy(t->be);
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
    double sum = 0;
    GradHooks hooks = {t, hook_head, hook_block, hook_embed};
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
    double lr = lr_at(&t->sched, step);
    return optimizer_step(&t->opt, lr, c->clip, gnorm, err);
}

int train_run(const TrainConfig *cfg, TrainSummary *summary, OwError *err) {
    Trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = *cfg;
    memset(summary, 0, sizeof *summary);
    summary->first_val = summary->last_val = NAN;
    int rc = -1;
    if (train_config_validate(&t.cfg, err) != 0 || setup(&t, err) != 0) goto done;
    TrainConfig *c = &t.cfg;
    double val;
    if (t.batcher.nval > 0) {
        if (evaluate(&t, &val, err) != 0) goto done;
        log_eval(&t, 0, val);
        summary->first_val = summary->last_val = val;
    }
    double t_start = ow_now(), tokens = 0;
    int64_t tok_per_step = c->batch_size * c->block_size * c->grad_accum;
    for (int64_t step = 0; step < t.total_steps; step++) {
        double t0 = ow_now();
        if (step % c->interval == 0 && (t.sampling || step == 0)) {
            if (resample(&t, err) != 0) goto done;
        }
        double loss, gnorm;
        t.opt.stats.refreshes = 0;
        t.opt.stats.refresh_seconds = 0;
        if (train_step(&t, step, &loss, &gnorm, err) != 0) goto done;
        t.be->sync(t.be);
        double dt = ow_now() - t0;
        tokens += (double)tok_per_step;
        double elapsed = ow_now() - t_start;
        if (step == 0) summary->first_loss = loss;
        summary->last_loss = loss;
        if (!isfinite(loss)) {
            ow_fail(err, "the loss became %g at step %lld (hint: lower --lr, or check the data)", loss, (long long)step + 1);
            goto done;
        }
        char act[1024];
        active_string(&t, act, sizeof act);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)(step + 1));
        cJSON_AddNumberToObject(o, "loss", loss);
        cJSON_AddNumberToObject(o, "lr", lr_at(&t.sched, step));
        cJSON_AddNumberToObject(o, "grad_norm", gnorm);
        cJSON_AddNumberToObject(o, "tokens", tokens);
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
        write_metric(&t, o);
        if ((step + 1) % c->log_every == 0 || step + 1 == t.total_steps) {
            char mem[32], eta[32];
            ow_progress("step %lld/%lld | loss %.4f | lr %.2e | gnorm %.3f | %.0f tok/s | mem %s | blocks %s | ETA %s",
                        (long long)step + 1, (long long)t.total_steps, loss, lr_at(&t.sched, step), gnorm, tokens / elapsed,
                        format_size(t.be->mem.peak_total, mem, sizeof mem), act,
                        fmt_eta(elapsed / (double)(step + 1) * (double)(t.total_steps - step - 1), eta, sizeof eta));
        }
        if (t.batcher.nval > 0 && c->eval_every > 0 && (step + 1) % c->eval_every == 0 && step + 1 < t.total_steps) {
            if (evaluate(&t, &val, err) != 0) goto done;
            ow_progress_end();
            log_eval(&t, step + 1, val);
            summary->last_val = val;
        }
    }
    ow_progress_end();
    summary->steps = t.total_steps;
    summary->seconds = ow_now() - t_start;
    summary->tokens_per_s = tokens / summary->seconds;
    summary->peak_mem = t.be->mem.peak_total;
    if (t.batcher.nval > 0) {
        if (evaluate(&t, &val, err) != 0) goto done;
        log_eval(&t, t.total_steps, val);
        summary->last_val = val;
    }
    {
        char *md = ow_path_join(c->out, "model");
        rc = model_save_hf(t.model, md, OW_F32, 0, c->model, err);
        if (rc == 0) OW_INFO("saved the fine-tuned model to %s", md);
        free(md);
    }
done:
    teardown(&t);
    return rc;
}

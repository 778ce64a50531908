/* trainer.c: see trainer.h. `setup` runs the named steps that make a run
 * (output, backend, model, data, sampler, optimizer, schedule, checkpoint,
 * run config) in that order; `train_run` is the loop (schedule, batch,
 * forward/backward, step, log, evaluate, checkpoint). What the run reports
 * (metrics.jsonl, progress, summary.json) is run_log.c's. */
#define _GNU_SOURCE /* realpath */
#include "train/trainer.h"

#include "backend/profile.h"
#include "core/cancel.h"
#include "core/fileio.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/runtime.h"
#include "data/batcher.h"
#include "dist/comm.h"
#include "model/model_save.h"
#include "model/preset.h"
#include "owl/outliers.h"
#include "train/checkpoint.h"
#include "train/eval.h"
#include "train/interrupt.h"
#include "train/costmodel.h"
#include "train/memplan.h"
#include "train/provenance.h"
#include "train/report.h"
#include "train/run_dir.h"
#include "train/run_log.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct Trainer {
    TrainConfig cfg;
    Backend *be;
    int gpu;          /* the backend computes in device memory of its own (Backend.caps.device_memory) */
    int device_group; /* the ranks sum gradients in device memory over the backend's group (NCCL) */
    Model *model;
    TokData data;
    char *data_tokens; /* the token file the data came from (NULL: in memory) */
    Batcher batcher;
    Sampler sampler;
    int sampling; /* the method trains a sample of blocks */
    Optimizer opt;
    int opt_ready;
    LrSchedule sched;
    RunLog log;                 /* metrics.jsonl and the progress lines */
    int32_t *ids, *targets;     /* grad_accum * B * T: this rank's micro-batches */
    Comm *comm;                 /* the ranks of a data-parallel run (a world of one without mpirun) */
    int writer;                 /* this rank writes the run's files (rank 0) */
    int64_t gb;                 /* the global batch: ranks x batch_size sequences per micro-batch */
    int32_t *gids, *gtargets;   /* grad_accum * gb * T: every rank's micro-batches (ids, targets when one rank) */
    double dp_bytes, ddp_bytes; /* several ranks: gradient bytes summed this session; what DDP would have summed */
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
    RunLock lock;      /* RUN_DIR/.lock, held from before the first write to the end (run_dir.h) */
    Provenance prov;   /* digests of the base model and data, checked on resume (provenance.h) */
    MemPlan plan;      /* the device plan with the blocks' placement (memplan.h) */
    int layered;       /* micro-batches run layer-major (model_forward_backward_layers) */
    BlockHome *homes;  /* per block (plan.place.streaming) */
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
static void hook_micro_begin(void *ctx, int micro, int last) {
    optimizer_begin_micro(&((Trainer *)ctx)->opt, micro, last);
}

/* ---- trainable sets ---- */

/* A trained block stays on the device (pinned) while it trains; leaving, it goes back to its home. */
static int set_block_trainable(Trainer *t, int layer, int on, OwError *err) {
    if (on && model_block_pin(t->model, layer, err) != 0) return -1;
    for (int b = 0; b < BW_COUNT; b++) {
        Param *p = model_block_param(t->model, layer, (BlockWeight)b);
        if (on && !p->trainable && optimizer_activate(&t->opt, p, err) != 0) return -1;
        if (!on && p->trainable && optimizer_deactivate(&t->opt, p, err) != 0) return -1;
    }
    return on ? 0 : model_block_unpin(t->model, layer, err);
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

/* ---- setup: the output directory ---- */

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
    int rc = ckpt_open_latest(c->out, c->resume_fallback, 1, &t->ck, err);
    if (rc < 0) return -1;
    if (rc == 1) {
        OW_INFO("%s has no checkpoint yet: starting the run again from step 0", c->out);
        return 0;
    }
    t->from_ckpt = 1;
    OW_INFO("resuming %s from %s (step %lld)", c->out, t->ck.name, (long long)t->ck.step);
    return 0;
}

/* RUN_DIR, made when new (a failed run that wrote nothing removes it again) and locked (run_dir.h), where
 * the run starts, and the digests of its base model and data (checked against the run's on resume). */
static int setup_output(Trainer *t, OwError *err) {
    const TrainConfig *c = &t->cfg;
    if (t->writer) {
        t->made_out = !ow_is_dir(c->out);
        if (!c->resume[0] && run_dir_check_out(c->out, c->model, c->overwrite_out, err) != 0) return -1;
        if (ow_mkdir_p(c->out, err) != 0 || run_lock_exclusive(c->out, &t->lock, err) != 0) return -1;
        if (choose_start(t, err) != 0) return -1;
    }
    /* the other ranks read RUN_DIR (the checkpoint to resume) once rank 0 has made, locked and chosen it */
    if (comm_barrier(t->comm, err) != 0 || (!t->writer && choose_start(t, err) != 0)) return -1;
    return provenance_for_run(c->out, c->model, c->data, t->from_ckpt, &t->prov, err);
}

/* ---- setup: the backend ---- */

/* Ranks whose gradients live in device memory sum them over the backend's group: rank 0 makes the
 * group's id, MPI brings it to the others, and every rank joins. */
static int join_group(Trainer *t, OwError *err) {
    Backend *be = t->be;
    if (!be->ops->group_sum)
        return ow_fail(err, "%d ranks on %s: this backend cannot sum gradients across ranks (hint: --device cpu)",
                       t->comm->size, be->name);
    unsigned char id[BACKEND_GROUP_ID_BYTES] = {0};
    if (t->comm->rank == 0 && be->ops->group_id(be, id, err) != 0) return -1;
    if (comm_bcast(t->comm, id, sizeof id, 0, err) != 0) return -1;
    if (be->ops->group_join(be, id, t->comm->rank, t->comm->size, err) != 0) return -1;
    t->device_group = 1;
    OW_INFO("rank %d of %d on %s %s: gradients summed over the ranks' GPUs (NCCL)", t->comm->rank, t->comm->size,
            be->name, be->device_name);
    return 0;
}

/* The backend --device names, in the dtypes --precision asks for, profiled under OWLORE_PROFILE. */
static int setup_backend(Trainer *t, OwError *err) {
    const TrainConfig *c = &t->cfg;
    int64_t threads = c->threads;
    if (threads == 0 && t->comm->local_size > 1) { /* all cores: shared by this machine's ranks */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores / t->comm->local_size > 1 ? cores / t->comm->local_size : 1;
    }
    /* one GPU per rank: a rank's device number is --device's plus its rank on this machine */
    BackendOptions bo = {.threads = threads, .mem_cap = c->gpu_mem, .device_offset = t->comm->local_rank};
    t->be = backend_create(c->device, &bo, err);
    if (!t->be) return -1;
    if (c->precision == PRECISION_BF16 && !t->be->caps.bf16)
        return ow_fail(err,
                       "--precision bf16 needs a backend that computes in bf16 (CUDA): the %s backend computes "
                       "in fp32 (hint: --precision auto or fp32)",
                       t->be->name);
    if (c->precision == PRECISION_FP32 && t->be->ops->set_dtypes(t->be, OW_F32, OW_F32, err) != 0) return -1;
    t->gpu = t->be->caps.device_memory;
    const char *one = getenv("OWLORE_TEST_GROUP_OF_ONE"); /* test hook (trainer.h) */
    if ((t->comm->size > 1 || (one && strcmp(one, "1") == 0)) && t->gpu && join_group(t, err) != 0) return -1;
    OW_INFO("device: %s", t->be->name);
    if (getenv("OWLORE_PROFILE") && *getenv("OWLORE_PROFILE") && strcmp(getenv("OWLORE_PROFILE"), "0") != 0) {
        backend_profile_enable(t->be);
        OW_INFO("OWLORE_PROFILE: timing every backend op (synchronised); the table is printed at the end");
    }
    return 0;
}

/* ---- setup: the model ---- */

/* The machine's rates for the cost model: `owlore probe`'s (measured on first use on a GPU, then cached) when
 * the run has a cap to place under, else the assumed ones. The probe's buffers come and go before the run's
 * memory plan is reserved; the peak figures start after it. */
static void train_rates(Trainer *t, CostRates *r) {
    cost_rates_default(r);
    if (!t->gpu || !t->cfg.gpu_mem) return;
    ProbeResult pr;
    OwError e;
    if (probe_get(t->be, t->cfg.nvme_dir[0] ? t->cfg.nvme_dir : NULL, 0, &pr, &e) != 0) {
        OW_WARN("no measured rates for the placement (%s): assuming an H200's", e.msg);
        return;
    }
    memstats_reset_peak(&t->be->mem);
    if (!pr.cached) OW_INFO("probe: measured the rates the placement weighs (cached for the next runs)");
    cost_rates_from_probe(r, &pr);
}

/* Predicts the device memory of the run and refuses it before anything is
 * allocated when it cannot fit the cap (--gpu-mem). */
static int check_memory_plan(Trainer *t, const ModelConfig *mc, OwError *err) {
    const TrainConfig *c = &t->cfg;
    Backend *be = t->be;
    MemPlan *p = &t->plan;
    char line[512], tot[32], cap[32], where[256];
    t->homes = ow_xcalloc((size_t)mc->num_layers, sizeof *t->homes);
    if (c->offload_optimizer == OFFLOAD_AUTO) {
        train_resolve_optimizer_home(&t->cfg, mc, be->param_dtype, be->act_dtype, t->gpu, be->mem.cap);
        if (c->offload_optimizer == OFFLOAD_OFF)
            OW_INFO("the embedding's and lm_head's AdamW moments stay on the device: the run fits --gpu-mem with them");
    }
    int moments_auto = c->offload_optimizer == OFFLOAD_AUTO;
    CostRates rates;
    train_rates(t, &rates);
    CostPrediction pred;
    if (cost_choose_plan(&t->cfg, mc, be->param_dtype, be->act_dtype, t->gpu, be->name, be->mem.cap, train_host_room(c),
                         &rates, p, t->homes, &pred, err) != 0)
        return -1;
    if (moments_auto && c->offload_optimizer == OFFLOAD_OFF)
        OW_INFO("the embedding's and lm_head's AdamW moments stay on the device: predicted faster than in host memory");
    memplan_format(p, line, sizeof line);
    OW_INFO("memory plan (%s): %s", be->name, line);
    if (p->place.streaming) {
        offload_placement_format(&p->place, where, sizeof where);
        OW_INFO("blocks: %s; page-locked host %s, store file %s", where,
                format_size(p->place.host_bytes, tot, sizeof tot), format_size(p->disk_bytes, cap, sizeof cap));
        OW_INFO("predicted: %.3f s a step, %.0f tokens/s (%s rates: GEMM %.0f TFLOP/s, host to device %.1f GB/s, "
                "disk %.1f GB/s)",
                pred.step_s, pred.tokens_per_s, rates.source, rates.gemm_tflops, rates.h2d_gbps, rates.disk_gbps);
    }
    /* the plan counts the backend's fixed workspaces, which it allocated when it was made */
    size_t more = p->total > be->mem.current_total ? p->total - be->mem.current_total : 0;
    return be->ops->reserve && more ? be->ops->reserve(be, more, err) : 0;
}

/* The store's placement of the blocks, or NULL when every block stays on the device as a buffer of its own. */
static const BlockStoreConfig *block_placement(Trainer *t, const ModelConfig *mc, BlockStoreConfig *bc, char *path,
                                               size_t cap) {
    const TrainConfig *c = &t->cfg;
    if (!t->plan.place.streaming) return NULL;
    /* the store file is named after the model; its header names the weights it holds (reused while equal) */
    const char *base = strrchr(c->model, '/');
    base = base && base[1] ? base + 1 : c->model;
    char rank[32] = ""; /* several ranks: a store file each (they write trained blocks back), DIR/rank-R */
    if (t->comm->size > 1) snprintf(rank, sizeof rank, "/rank-%d", t->comm->rank);
    if (snprintf(path, cap, "%s%s/%s.owstore", c->nvme_dir, rank, base) >= (int)cap) path[cap - 1] = '\0';
    Xxh64 h;
    xxh64_init(&h, 0x6f776c6f7265ULL);
    xxh64_update(&h, t->prov.base, strlen(t->prov.base));
    xxh64_update(&h, c->model, strlen(c->model));
    int64_t facts[4] = {c->seed, (int64_t)t->be->param_dtype, mc->num_layers,
                        (int64_t)model_block_bytes(mc, t->be->param_dtype)};
    xxh64_update(&h, facts, sizeof facts);
    xxh64_update(&h, &c->init_std, sizeof c->init_std);
    *bc = (BlockStoreConfig){
        .homes = t->homes,
        .stream_slots = t->plan.place.stream_slots,
        .pin_slots = t->plan.place.pin_slots,
        .store_path = t->plan.place.n_disk ? path : NULL,
        .source_hash = xxh64_final(&h),
    };
    return bc;
}

/* The model --model names (weights, or a preset from a random initialisation), once its memory
 * plan fits, with the checkpoint's changed tensors over it when resuming. */
static int setup_model(Trainer *t, OwError *err) {
    const TrainConfig *c = &t->cfg;
    ModelConfig mc;
    char *src;
    int is_dir;
    if (model_preset_resolve(c->model, &mc, &src, &is_dir, err) != 0) return -1;
    free(src);
    if (train_config_check_accum_order(c, mc.tie_word_embeddings, err) != 0 || check_memory_plan(t, &mc, err) != 0)
        return -1;
    if (t->plan.place.n_disk && !ow_is_dir(c->nvme_dir))
        return ow_fail(err, "--nvme-dir %s is not a directory (hint: a directory on a local disk, made beforehand)",
                       c->nvme_dir);
    BlockStoreConfig bc;
    char store_path[2 * TC_STR + 48];
    const BlockStoreConfig *placed = block_placement(t, &mc, &bc, store_path, sizeof store_path);
    if (placed && placed->store_path && t->comm->size > 1) { /* the rank's own folder */
        char *dir = ow_path_dirname(store_path);
        int rc = ow_mkdir_p(dir, err);
        free(dir);
        if (rc != 0) return -1;
    }
    if (is_dir) {
        if (model_load_hf_placed(t->be, c->model, placed, &t->model, err) != 0) return -1;
    } else {
        OW_WARN("%s: no weights: training from a random initialisation (std %g)", c->model, c->init_std);
        if (model_create_placed(t->be, &mc, placed, &t->model, err) != 0 ||
            model_init_random(t->model, (uint64_t)c->seed, c->init_std, err) != 0)
            return -1;
    }
    /* page-locked host memory under --host-mem from here on (the block homes were placed within it) */
    if (host_mem_set_cap(&t->model->host, c->host_mem, err) != 0 || model_seal(t->model, err) != 0) return -1;
    t->changed = ow_xcalloc((size_t)t->model->nparams, 1);
    if (t->from_ckpt && ckpt_apply_weights(&t->ck, t->model, t->changed, err) != 0) return -1;
    return 0;
}

/* ---- setup: the data ---- */

/* --data synthetic: uniform random tokens (seeded), enough for --steps and the validation split. */
static int synthetic_data(Trainer *t, OwError *err) {
    const TrainConfig *c = &t->cfg;
    int64_t vocab = t->model->cfg.vocab_size;
    if (c->steps <= 0) return ow_fail(err, "--data synthetic needs --steps");
    int64_t n = c->steps * c->grad_accum * t->gb * c->block_size;
    n += (int64_t)ceil(n * c->val_split / (1 - c->val_split)) + c->block_size + 1;
    int32_t *ids = ow_try_malloc((size_t)n * sizeof(int32_t), "synthetic tokens", err);
    if (!ids) return -1;
    Rng r;
    rng_init(&r, (uint64_t)c->seed, RNG_STREAM_DATA);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)rng_below(&r, (uint64_t)vocab);
    tokdata_from_ids(&t->data, ids, n, vocab);
    return 0;
}

/* The tokens (--data, tokenized with the model's tokenizer and cached) and the batcher over them. */
static int setup_data(Trainer *t, OwError *err) {
    TrainConfig *c = &t->cfg;
    if (strcmp(c->data, "synthetic") == 0) {
        if (synthetic_data(t, err) != 0) return -1;
    } else if (train_load_data_with(c->data, ow_is_dir(c->model) ? c->model : NULL, t->model->cfg.vocab_size,
                                    &c->data_opt, c->data_cache, c->out, &t->data, &t->data_tokens, err) != 0) {
        return -1;
    }
    if (batcher_init_packing(&t->batcher, &t->data, c->packing, t->gb, c->block_size, c->val_split, c->shuffle,
                             (uint64_t)c->seed, c->data, err) != 0)
        return -1;
    if (t->batcher.n_long > 0)
        OW_INFO("%s: %lld of %lld samples are longer than block_size + 1 = %lld tokens: %s", c->data,
                (long long)t->batcher.n_long, (long long)t->data.ndocs, (long long)c->block_size + 1,
                c->packing == PACKING_PAD ? "truncated (packing pad)" : "split across windows (packing concat)");
    return 0;
}

/* ---- setup: the sampler ---- */

/* OWL outlier ratios computed on the run's data, written to RUN_DIR/ratios.json (--ratios then names it). */
static int compute_ratios(Trainer *t, OwError *err) {
    TrainConfig *c = &t->cfg;
    const Model *m = t->model;
    int64_t seqlen = c->seqlen < m->cfg.max_position_embeddings ? c->seqlen : m->cfg.max_position_embeddings;
    if (seqlen > t->data.count - 1) seqlen = t->data.count - 1;
    OW_INFO("computing OWL outlier ratios (%lld sequences of %lld tokens, M = %g); pass --ratios to reuse them",
            (long long)c->nsamples, (long long)seqlen, c->M);
    OutlierResult r;
    if (owl_compute(t->model, &t->data, c->nsamples, seqlen, c->M, 8, (uint64_t)c->seed, &r, err) != 0) return -1;
    memcpy(t->ratios, r.ratios, sizeof(double) * (size_t)m->cfg.num_layers);
    char *rp = ow_path_join(c->out, "ratios.json");
    int rc = t->writer ? owl_write_json(&r, c->model, rp, err) : 0;
    snprintf(c->ratios, sizeof c->ratios, "%s", rp);
    make_absolute(c->ratios, sizeof c->ratios);
    free(rp);
    owl_result_free(&r);
    return rc != 0 ? -1 : 0;
}

/* The ratios the sampler draws with: the checkpoint's (the ones the run sampled with), the --ratios
 * file's, or computed now. */
static int setup_ratios(Trainer *t, OwError *err) {
    const TrainConfig *c = &t->cfg;
    int L = (int)t->model->cfg.num_layers;
    int saved = t->from_ckpt ? ckpt_ratios(&t->ck, L, t->ratios, err) : 0;
    if (saved < 0) return -1;
    if (saved) return 0;
    if (c->ratios[0]) return owl_read_ratios(c->ratios, L, t->ratios, err) != 0 ? -1 : 0;
    return compute_ratios(t, err);
}

/* Which blocks train: gamma of them drawn every `interval` steps, or all (galore, full, --sampling all). */
static int setup_sampler(Trainer *t, OwError *err) {
    const TrainConfig *c = &t->cfg;
    int L = (int)t->model->cfg.num_layers;
    t->sampling = train_config_samples_blocks(c);
    SamplingMode mode = t->sampling ? c->sampling : SAMPLING_ALL;
    if (t->sampling && c->gamma > L)
        return ow_fail(err, "gamma = %lld blocks, but the model has only %d (hint: --gamma %d or less)",
                       (long long)c->gamma, L, L);
    t->uses_ratios = t->sampling && !c->forced_blocks[0] && (mode == SAMPLING_OWL || mode == SAMPLING_OWL_REVERSE);
    if (t->uses_ratios && setup_ratios(t, err) != 0) return -1;
    if (c->forced_blocks[0] && t->sampling) mode = SAMPLING_UNIFORM; /* the schedule replaces the draws */
    if (sampler_init(&t->sampler, L, (int)c->gamma, mode, t->uses_ratios ? t->ratios : NULL, (uint64_t)c->seed, err) !=
        0)
        return -1;
    if (c->forced_blocks[0] && sampler_force(&t->sampler, c->forced_blocks, err) != 0) return -1;
    return 0;
}

/* ---- setup: the optimizer ---- */

/* Starts the ranks' sum of a gradient (Optimizer.reduce): over the backend's group where gradients live in
 * device memory, else in host memory through MPI. */
static int reduce_grad(void *ctx, Tensor *g, OwError *err) {
    Trainer *t = ctx;
    OW_CHECKF(g->dtype == OW_F32 && (t->device_group || !t->gpu), "data-parallel sum of a %s gradient on %s",
              dtype_name(g->dtype), t->be->name);
    int64_t n = tensor_numel(g);
    const Param *e = t->model->embed;
    if (g->data == e->g.data && model_grad_is_compact(t->model, e)) /* the rows of the step's tokens */
        n = t->model->erows.count * tensor_cols(g);
    t->dp_bytes += (double)n * sizeof(float);
    if (t->device_group) return t->be->ops->group_sum(t->be, g, n, err);
    return comm_sum_f32_start(t->comm, (float *)g->data, n, err);
}

/* Completes the sums started (Optimizer.reduce_wait): for the work queued next, on a device. */
static int reduce_wait(void *ctx, OwError *err) {
    Trainer *t = ctx;
    if (!t->device_group) return comm_wait(t->comm, err);
    t->be->ops->group_wait(t->be);
    return 0;
}

/* The optimizer, the model's step buffers (prepared after it: where gradients and activations live
 * depends on the optimizer's offload), the always-trainable tensors, and the GPU solvers warmed up. */
static int setup_optimizer(Trainer *t, OwError *err) {
    const TrainConfig *c = &t->cfg;
    Model *m = t->model;
    OptimConfig oc = train_config_optim(c);
    oc.offload_head = train_config_offload_optimizer(c, t->gpu);
    if (optimizer_init(&t->opt, m, &oc, err) != 0) return -1;
    t->opt_ready = 1;
    /* several ranks summing projected gradients: projected accumulation over the ranks' micro-batches */
    t->opt.accumulate_projected =
        c->accum_mode == ACCUM_PROJECTED || (t->comm->size > 1 && c->dp_reduce == ACCUM_PROJECTED);
    t->opt.share_grads = c->grad_accum == 1 || t->opt.accumulate_projected;
    if (t->comm->size > 1 || t->device_group) {
        t->opt.reduce = reduce_grad;
        t->opt.reduce_wait = reduce_wait;
        t->opt.reduce_ctx = t;
        t->opt.reduce_rank = t->comm->rank;
    }
    /* the embedding's gradient: rows of the step's distinct tokens only (untied; every rank's tokens) */
    if (m->lm_head != m->embed) m->embed_grad_rows = c->grad_accum * t->gb * c->block_size;
    /* activations first: lm_head's gradient may live in their pool (Model.head_grad_host) */
    m->offload_acts = train_config_offload_acts(c, t->gpu);
    m->head_grad_host = train_config_head_grad_host(c, t->gpu, m->lm_head == m->embed);
    t->layered = train_config_accum_layered(c, m->lm_head == m->embed, t->plan.place.streaming);
    m->accum_micro = t->layered ? c->grad_accum : 0;
    m->keep_acts = t->layered ? 0 : t->plan.keep_acts;
    if (m->keep_acts > 0)
        OW_INFO("the top %lld blocks keep their activations for the backward (--keep-acts)", (long long)m->keep_acts);
    if (t->layered)
        OW_INFO("gradient accumulation: layer-major (%lld micro-batches per block visit)", (long long)c->grad_accum);
    if (model_prepare(m, c->batch_size, c->block_size, c->recompute, err) != 0) return -1;
    if (!c->freeze_embeddings && optimizer_activate(&t->opt, m->embed, err) != 0) return -1;
    if (optimizer_activate(&t->opt, m->final_norm, err) != 0) return -1;
    if (m->lm_head != m->embed && optimizer_activate(&t->opt, m->lm_head, err) != 0) return -1;
    if (t->gpu && oc.kind == OPT_GALORE_ADAMW) {
        double t0 = ow_now();
        if (galore_warm_up(t->be, &oc, err) != 0) return ow_fail_prefix(err, "projector warm-up");
        OW_INFO("projector warm-up (first use of the GPU solvers): %.2f s", ow_now() - t0);
    }
    return 0;
}

/* ---- setup: schedule, checkpoint and run config ---- */

/* The step count (--steps, or --epochs over the training windows), the learning-rate schedule,
 * the step-time record and the batch buffers. */
static void setup_schedule(Trainer *t) {
    const TrainConfig *c = &t->cfg;
    int64_t per_step = t->gb * c->grad_accum;
    t->total_steps = c->steps > 0 ? c->steps : (int64_t)ceil(c->epochs * (double)t->batcher.ntrain / (double)per_step);
    if (t->total_steps < 1) t->total_steps = 1;
    t->sched = (LrSchedule){c->schedule, c->lr, c->warmup, t->total_steps};
    t->prog.total_steps = t->total_steps;
    t->prog.step_seconds = ow_xcalloc((size_t)t->total_steps, sizeof(double));
    size_t nb = (size_t)(c->grad_accum * c->batch_size * c->block_size);
    t->ids = ow_xmalloc(nb * sizeof(int32_t));
    t->targets = ow_xmalloc(nb * sizeof(int32_t));
    t->gids = t->ids;
    t->gtargets = t->targets;
    if (t->comm->size > 1) {
        t->gids = ow_xmalloc(nb * (size_t)t->comm->size * sizeof(int32_t));
        t->gtargets = ow_xmalloc(nb * (size_t)t->comm->size * sizeof(int32_t));
    }
}

/* The checkpoint's sampler, trainable blocks, optimizer state, data position and counters. */
static int restore_checkpoint(Trainer *t, OwError *err) {
    if (!t->from_ckpt) return 0;
    if (ckpt_restore_progress(&t->ck, &t->sampler, &t->batcher, &t->prog, err) != 0) return -1;
    for (int i = 0; i < t->sampler.nactive; i++)
        if (set_block_trainable(t, t->sampler.active[i], 1, err) != 0) return -1;
    if (ckpt_restore_optimizer(&t->ck, &t->opt, err) != 0) return -1;
    ckpt_close(&t->ck);
    return 0;
}

/* RUN_DIR/config.json: the resolved config (resume settings are per invocation) and facts of the run. */
static int write_run_config(Trainer *t, OwError *err) {
    TrainConfig saved_cfg = t->cfg;
    saved_cfg.resume[0] = '\0';
    saved_cfg.resume_fallback = 0;
    saved_cfg.overwrite_out = 0;
    cJSON *cj = train_config_to_json(&saved_cfg);
    cJSON_AddNumberToObject(cj, "total_steps", (double)t->total_steps);
    cJSON_AddStringToObject(cj, "backend", t->be->name);
    if (t->data_tokens) cJSON_AddStringToObject(cj, "data_tokens", t->data_tokens);
    provenance_to_json(&t->prov, cj);
    char *cp = ow_path_join(t->cfg.out, "config.json");
    int rc = json_write_file(cp, cj, err);
    free(cp);
    cJSON_Delete(cj);
    return rc;
}

/* Setup stops between its steps when a signal asked to (cancel.h). */
static int setup_go_on(const char *next, OwError *err) { return ow_cancelled() ? ow_fail_cancelled(err, next) : 0; }

static int setup(Trainer *t, OwError *err) {
    const TrainConfig *c = &t->cfg;
    t->gb = c->batch_size * t->comm->size;
    if (setup_output(t, err) != 0 || setup_backend(t, err) != 0 || setup_go_on("model loading", err) != 0 ||
        setup_model(t, err) != 0 || setup_go_on("data loading", err) != 0 || setup_data(t, err) != 0 ||
        setup_sampler(t, err) != 0 || setup_go_on("optimizer setup", err) != 0 || setup_optimizer(t, err) != 0 ||
        setup_go_on("the checkpoint", err) != 0)
        return -1;
    setup_schedule(t);
    if (restore_checkpoint(t, err) != 0 ||
        (t->writer && (write_run_config(t, err) != 0 ||
                       run_log_open(&t->log, c->out, t->from_ckpt ? t->prog.metrics_bytes : -1, err) != 0)))
        return -1;
    OW_INFO(
        "training %s: %lld steps of %lld x %lld tokens (x%lld accumulation), %lld training windows, %lld validation",
        c->method, (long long)t->total_steps, (long long)c->batch_size, (long long)c->block_size,
        (long long)c->grad_accum, (long long)t->batcher.ntrain, (long long)t->batcher.nval);
    return 0;
}

static void teardown(Trainer *t) {
    run_log_close(&t->log);
    ckpt_close(&t->ck);
    free(t->changed);
    free(t->homes);
    free(t->prog.step_seconds);
    if (t->gids != t->ids) free(t->gids);
    if (t->gtargets != t->targets) free(t->gtargets);
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

/* ---- one step ---- */

/* The step's grad_accum global micro-batches into gids/gtargets and this rank's share of each (the
 * rank-th batch_size sequences) into ids/targets; returns the targets of every rank (ignored ones not
 * counted): the loss is the mean over the global batch. */
static int64_t next_batch(Trainer *t) {
    const TrainConfig *c = &t->cfg;
    int64_t bt = c->batch_size * c->block_size, gbt = t->gb * c->block_size, total = 0;
    for (int64_t k = 0; k < c->grad_accum; k++) {
        batcher_next(&t->batcher, t->gids + k * gbt, t->gtargets + k * gbt);
        for (int64_t i = 0; i < gbt; i++) total += t->gtargets[k * gbt + i] != -100;
        if (t->gids == t->ids) continue;
        memcpy(t->ids + k * bt, t->gids + k * gbt + t->comm->rank * bt, (size_t)bt * sizeof(int32_t));
        memcpy(t->targets + k * bt, t->gtargets + k * gbt + t->comm->rank * bt, (size_t)bt * sizeof(int32_t));
    }
    return total;
}

/* Forward and backward over the micro-batches (the optimizer absorbs each gradient as it completes),
 * then the update; the step's compute is finished on return. */
static int train_step(Trainer *t, int64_t step, double *loss, double *gnorm, OwError *err) {
    const TrainConfig *c = &t->cfg;
    int64_t bt = c->batch_size * c->block_size;
    t->opt.stats.refreshes = 0;
    t->opt.stats.refresh_seconds = 0;
    int64_t total = next_batch(t);
    float scale = total ? 1.0f / (float)total : 0.0f;
    double lr = lr_at(&t->sched, step);
    /* the step's tokens, so the optimizer can update the embedding rows without a gradient beside
     * the step (queued once the first block's forward is, hook_forward_started) */
    if (model_begin_step(t->model, t->gids, c->grad_accum * t->gb * c->block_size, err) != 0) return -1;
    t->step_lr = lr;
    double sum = 0;
    GradHooks hooks = {t, hook_head, hook_block, hook_embed, hook_param, hook_forward_started, hook_micro_begin};
    if (t->layered && total > 0) {
        int64_t n;
        if (model_forward_backward_layers(t->model, (int)c->grad_accum, t->ids, t->targets, scale, &hooks, &sum, &n,
                                          err) != 0)
            return -1;
    }
    for (int64_t k = 0; k < c->grad_accum && !t->layered; k++) {
        double s;
        int64_t n;
        if (total == 0) break; /* nothing to learn from: a step with no targets only advances the schedule */
        optimizer_begin_micro(&t->opt, (int)k, k == c->grad_accum - 1);
        if (model_forward_backward(t->model, t->ids + k * bt, t->targets + k * bt, scale, &hooks, &s, &n, err) != 0)
            return -1;
        sum += s;
    }
    if (total && comm_sum_f64(t->comm, &sum, 1, err) != 0) return -1;
    *loss = total ? sum / (double)total : NAN;
    if (optimizer_step(&t->opt, lr, c->clip, gnorm, err) != 0) return -1;
    t->be->ops->wait_compute(t->be); /* the step's compute; side work (optimizer state copies) may run on */
    run_log_sample_memory(t->be);
    return 0;
}

/* Counts the finished step (changed tensors, times, tokens, losses) and logs it; a loss that is
 * not finite stops the run. t0: when the step began; resample_s: its resampling time. */
static int record_step(Trainer *t, int64_t step, double loss, double gnorm, double t0, double resample_s,
                       TrainSummary *summary, OwError *err) {
    const TrainConfig *c = &t->cfg;
    CkptProgress *pg = &t->prog;
    int64_t tok_per_step = t->gb * c->block_size * c->grad_accum;
    for (int i = 0; i < t->model->nparams; i++) {
        const Param *p = &t->model->params[i];
        t->changed[i] |= (uint8_t)p->trainable;
        if (p->trainable) t->ddp_bytes += (double)tensor_numel(&p->w) * sizeof(float);
    }
    double dt = ow_now() - t0;
    pg->step_seconds[step] = dt;
    pg->refresh_seconds += t->opt.stats.refresh_seconds;
    pg->refreshes += t->opt.stats.refreshes;
    pg->tokens += (double)tok_per_step;
    double elapsed = ow_now() - t->t_start;
    if (step == 0) summary->first_loss = loss;
    summary->last_loss = loss;
    summary->steps = step + 1;
    if (!isfinite(loss))
        return ow_fail(err, "the loss became %g at step %lld (hint: lower --lr, or check the data)", loss,
                       (long long)step + 1);
    StepLog s = {.step = step + 1,
                 .total_steps = t->total_steps,
                 .loss = loss,
                 .lr = t->step_lr,
                 .gnorm = gnorm,
                 .tokens = pg->tokens,
                 .seconds = elapsed,
                 .step_seconds = dt,
                 .resample_seconds = resample_s,
                 .tokens_per_step = tok_per_step,
                 .sampler = &t->sampler,
                 .be = t->be,
                 .host_optimizer_bytes = t->opt.host.current_total,
                 .optim = t->opt.stats,
                 .progress = (step + 1) % c->log_every == 0 || step + 1 == t->total_steps};
    return t->writer ? run_log_step(&t->log, &s, err) : 0;
}

/* Validation on several ranks: each scores its share of every global batch (next_batch's split). */
typedef struct RankShare {
    EvalBatches all;
    Trainer *t;
} RankShare;

static void fill_share(void *ctx, int64_t k, int32_t *ids, int32_t *targets) {
    RankShare *r = ctx;
    Trainer *t = r->t;
    int64_t bt = t->cfg.batch_size * t->cfg.block_size;
    r->all.fill(r->all.ctx, k, t->gids, t->gtargets);
    memcpy(ids, t->gids + t->comm->rank * bt, (size_t)bt * sizeof(int32_t));
    memcpy(targets, t->gtargets + t->comm->rank * bt, (size_t)bt * sizeof(int32_t));
}

/* The validation loss after `step` steps (the ranks' sums added), logged (the first one before training is
 * summary's first). */
static int evaluate(Trainer *t, int64_t step, TrainSummary *summary, OwError *err) {
    EvalValidation v;
    EvalBatches src = eval_batches_validation(&v, &t->batcher, t->cfg.eval_batches);
    RankShare share = {src, t};
    if (t->gids != t->ids) src = (EvalBatches){src.count, &share, fill_share};
    EvalLoss r;
    if (eval_loss(t->model, &src, t->ids, t->targets, &r, err) != 0) return -1;
    double sums[2] = {r.loss_sum, (double)r.tokens};
    if (comm_sum_f64(t->comm, sums, 2, err) != 0) return -1;
    r.loss = sums[1] > 0 ? sums[0] / sums[1] : NAN;
    if (t->writer && run_log_eval(&t->log, step, r.loss, err) != 0) return -1;
    if (step == 0) summary->first_val = r.loss;
    summary->last_val = r.loss;
    return 0;
}

/* Saves a checkpoint of the state after `step` steps. */
static int save_checkpoint(Trainer *t, int64_t step, TrainSummary *summary, OwError *err) {
    if (!t->writer) return 0; /* the ranks hold the same state: rank 0's checkpoint resumes every rank */
    ow_progress_end();
    if (run_log_sync(&t->log, &t->prog.metrics_bytes, err) != 0) return -1;
    t->prog.step = step;
    t->prog.elapsed = ow_now() - t->t_start;
    CkptParts parts = {t->model, &t->opt, &t->sampler, &t->batcher, t->changed, t->uses_ratios ? t->ratios : NULL};
    double t0 = ow_now();
    if (ckpt_save(t->cfg.out, &parts, &t->prog, t->cfg.keep, summary->checkpoint, sizeof summary->checkpoint, err) != 0)
        return -1;
    OW_INFO("saved checkpoint %s (%.1f s)", summary->checkpoint, ow_now() - t0);
    return 0;
}

/* ---- the run ---- */

/* Where this session starts: the losses so far (resume), or the validation loss before training. */
static int begin_session(Trainer *t, TrainSummary *summary, OwError *err) {
    int64_t start = t->prog.step;
    summary->total_steps = t->total_steps;
    summary->steps = start;
    if (start > 0) run_log_losses_so_far(t->cfg.out, summary);
    if (t->batcher.nval > 0 && start == 0 &&
        (setup_go_on("the first evaluation", err) != 0 || evaluate(t, 0, summary, err) != 0))
        return -1;
    t->log.start = start;
    t->log.session_start = ow_now();
    t->t_start = t->log.session_start - t->prog.elapsed;
    return 0;
}

/* Several ranks: stop together when a signal reached any of them (each waits for the others' next step). */
static int agree_stop(Trainer *t, int *sig, OwError *err) {
    int64_t s = *sig;
    if (comm_max_i64(t->comm, &s, err) != 0) return -1;
    *sig = (int)s;
    return 0;
}

/* Several ranks: every rank's trainable weights the same (their hashes compared), else the run stops. */
static int check_ranks(Trainer *t, int64_t done, OwError *err) {
    Model *m = t->model;
    Xxh64 h;
    xxh64_init(&h, 0);
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        if (!p->trainable) continue;
        void *w = ow_xmalloc(tensor_nbytes(&p->w)); /* the weights' bytes, wherever they live */
        int rc = model_param_download(m, p, w, p->w.dtype, err);
        if (rc == 0) xxh64_update(&h, w, tensor_nbytes(&p->w));
        free(w);
        if (rc != 0) return -1;
    }
    uint64_t *all = ow_xcalloc((size_t)t->comm->size, sizeof(uint64_t));
    int rc = comm_gather_u64(t->comm, xxh64_final(&h), all, err);
    for (int r = 1; rc == 0 && r < t->comm->size; r++)
        if (all[r] != all[0])
            rc = ow_fail(err,
                         "after step %lld the trained weights of rank %d differ from rank 0's (hash %016llx, rank 0 "
                         "%016llx): the ranks no longer train one model, so the run stops (the last checkpoint is "
                         "rank 0's; hint: report this with the run's config.json)",
                         (long long)done, r, (unsigned long long)all[r], (unsigned long long)all[0]);
    free(all);
    return rc;
}

/* OWLORE_TEST_PERTURB_RANK=R:S, a test hook (trainer.h): rank R flips a bit of its first trainable weight
 * after step S, as a rank whose arithmetic went astray would, for check_ranks to notice. */
static void test_perturb(Trainer *t, int64_t done) {
    const char *e = getenv("OWLORE_TEST_PERTURB_RANK");
    int r;
    long long s;
    if (t->gpu || !e || sscanf(e, "%d:%lld", &r, &s) != 2 || r != t->comm->rank || s != done) return;
    for (int i = 0; i < t->model->nparams; i++) {
        Param *p = &t->model->params[i];
        if (!p->trainable || !p->w.data) continue;
        ((uint8_t *)p->w.data)[0] ^= 1;
        return;
    }
}

/* The steps of this session; *sig: the signal that stopped it after a checkpoint, else 0. */
static int run_steps(Trainer *t, TrainSummary *summary, int *sig, OwError *err) {
    const TrainConfig *c = &t->cfg;
    for (int64_t step = t->prog.step; step < t->total_steps; step++) {
        int64_t done = step + 1;
        double t0 = ow_now(), resample_s = 0;
        if (step % c->interval == 0 && (t->sampling || step == 0)) { /* draw the blocks that train */
            if (resample(t, err) != 0) return -1;
            resample_s = ow_now() - t0; /* parking and restoring optimizer state */
        }
        double loss, gnorm;
        if (train_step(t, step, &loss, &gnorm, err) != 0) return -1;
        ow_cancel_arm(0); /* a step is done: from here a signal lets the step finish and saves a checkpoint */
        if (record_step(t, step, loss, gnorm, t0, resample_s, summary, err) != 0) return -1;
        int eval_due = t->batcher.nval > 0 && c->eval_every > 0 && done % c->eval_every == 0 && done < t->total_steps;
        if (eval_due && evaluate(t, done, summary, err) != 0) return -1;
        *sig = train_interrupt_pending();
        test_perturb(t, done);
        if (t->comm->size > 1 && agree_stop(t, sig, err) != 0) return -1;
        int check_due = c->check_every > 0 && (done % c->check_every == 0 || done == t->total_steps || *sig);
        if (t->comm->size > 1 && check_due && check_ranks(t, done, err) != 0) return -1;
        int save_due = done == t->total_steps || *sig || (c->save_every > 0 && done % c->save_every == 0);
        if (c->save_every >= 0 && save_due && save_checkpoint(t, done, summary, err) != 0) return -1;
        if (*sig) break;
    }
    return 0;
}

static void write_report(const char *out) {
    OwError e2;
    if (report_write(out, &e2) != 0) OW_WARN("could not write the report: %s", e2.msg);
}

/* RUN_DIR/model: the fine-tuned weights (with the base model's tokenizer and config files). */
static int save_model(Trainer *t, OwError *err) {
    const TrainConfig *c = &t->cfg;
    char *md = ow_path_join(c->out, "model");
    int rc = model_save_hf(t->model, md, OW_F32, 0, ow_is_dir(c->model) ? c->model : NULL, err);
    if (rc == 0) OW_INFO("saved the fine-tuned model to %s", md);
    free(md);
    return rc;
}

/* The end of the session: summary.json, the last evaluation and the model when the run finished,
 * and the report. Returns 0, or TRAIN_INTERRUPTED after a signal. */
static int finish(Trainer *t, int sig, TrainSummary *summary, OwError *err) {
    const TrainConfig *c = &t->cfg;
    ow_progress_end();
    t->prog.elapsed = ow_now() - t->t_start;
    summary->seconds = t->prog.elapsed;
    summary->tokens_per_s = t->prog.tokens / summary->seconds;
    summary->peak_mem = t->be->mem.peak_total;
    if (sig) {
        summary->interrupted = sig;
        if (t->writer) write_report(c->out);
        return TRAIN_INTERRUPTED;
    }
    int64_t session_steps = summary->steps - t->log.start;
    double n = session_steps > 0 ? (double)session_steps : 1.0;
    int projected = t->comm->size > 1 && c->dp_reduce == ACCUM_PROJECTED; /* a group of one sums G */
    RunDpFigures dp = {t->comm->size, projected ? "projected" : "full", t->dp_bytes / n, t->ddp_bytes / n};
    if (t->writer && run_log_summary(c, &dp, t->be, t->model, t->opt.host.peak_total, &t->prog, summary, err) != 0)
        return -1;
    if (t->batcher.nval > 0 && evaluate(t, t->total_steps, summary, err) != 0) return -1;
    if (!t->writer) return 0;
    if (c->save_model && save_model(t, err) != 0) return -1;
    if (run_log_sync(&t->log, NULL, err) != 0 || report_write(c->out, err) != 0)
        return ow_fail_prefix(err, "the run finished, but");
    return 0;
}

int train_run(const TrainConfig *cfg, TrainSummary *summary, OwError *err) {
    Trainer t;
    memset(&t, 0, sizeof t);
    t.log.metrics.fd = -1;
    t.lock.fd = -1;
    t.cfg = *cfg;
    t.comm = comm_world();
    t.writer = t.comm->rank == 0;
    ow_cancel_arm(1); /* until the first step is done, a signal stops the work at once (cancel.h) */
    memset(summary, 0, sizeof *summary);
    summary->first_loss = summary->last_loss = NAN;
    summary->first_val = summary->last_val = NAN;
    int sig = 0, rc = -1;
    if (train_config_validate(&t.cfg, err) == 0 && setup(&t, err) == 0 && begin_session(&t, summary, err) == 0 &&
        run_steps(&t, summary, &sig, err) == 0)
        rc = finish(&t, sig, summary, err);
    if (rc < 0 && ow_cancelled()) { /* a signal stopped setup or the first step: nothing of it is kept */
        summary->interrupted = ow_cancel_signal();
        summary->before_first_step = 1;
        rc = TRAIN_INTERRUPTED;
    }
    ow_cancel_arm(0);
    teardown(&t);
    /* no partial output: a run refused at setup (e.g. over the --gpu-mem cap) or stopped before its first step
     * leaves no directory it made */
    if (rc == TRAIN_INTERRUPTED && summary->before_first_step && t.made_out && !t.from_ckpt) {
        OwError ignored;
        (void)ow_remove_tree(t.cfg.out, &ignored);
    } else if (rc != 0 && t.made_out) {
        run_dir_remove_unused(t.cfg.out, &t.lock);
    }
    run_lock_release(&t.lock);
    return rc;
}

/* costmodel.c: see costmodel.h.
 *
 * Calibration (COST_COMPUTE_EFFICIENCY): ../shared/TARGETS.md, "Where owlore
 * stands" (2026-12-05, one H200): LLaMA-2-7B shape, owlore gamma 5, rank 256,
 * batch 16 x 512, every block resident, recomputation and the activation and
 * optimizer offloads on (the defaults on a GPU): steady 13,698 tokens/s
 * (13,404 over 100 steps with the resamples and projector refreshes), i.e.
 * 0.5980 s a step. This model counts 348.35 TFLOP of GEMMs in that step,
 * 10.5 ms waiting for lm_head's gradient to reach host memory (500 MiB at
 * the 50 GB/s assumed below) and 4.5 ms of the optimizer's elementwise
 * passes (16.2 GB at the 3,600 GB/s assumed below), so the GEMMs ran at
 * 348.35 / 0.5831 = 597.5 TFLOP/s: 0.8535 of the 700 TFLOP/s assumed below
 * for an H200's bf16 GEMMs. With the default rates the model predicted
 * 13,698 tokens/s for that run; since the head's host-resident moments hold
 * a share of the link (COST_MOMENTS_LINK_SHARE, 2026-12-05) it predicts
 * 12,894 (-5.9 %; test_costmodel checks it within 10 %). When
 * `owlore probe` measures the GEMM rate, derive the efficiency again from its
 * figure on the H200: 597.5 / probe_tflops.
 * Cross-checks against the other resident runs measured on the H200
 * (README, "On a GPU"), steady tokens/s predicted / measured: lisa 14,219 /
 * 14,032 (+1.3 %), full 10,461 / 9,905 (+5.6 %), galore 10,358 / 9,604
 * (+7.9 %), LLaMA-3-8B owlore under 24 GiB 11,329 / 10,008 (+13.2 %: its
 * 10.5 GB of host-resident head state a step cross the bus slower than the
 * 50 GB/s assumed, it seems). */
#include "train/costmodel.h"

#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#define COST_ASSUMED_GEMM_TFLOPS 700.0 /* an H200's sustained bf16 cuBLASLt rate at 4096-wide shapes (~71 % of peak) */
#define COST_ASSUMED_H2D_GBPS 50.0     /* page-locked copies over PCIe Gen5 x16 */
#define COST_ASSUMED_DISK_GBPS 3.0     /* one local NVMe disk, O_DIRECT */
#define COST_ASSUMED_HBM_GBPS 3600.0   /* an H200's device memory in elementwise kernels (~75 % of 4.8 TB/s) */
#define COST_ACT_SLOTS 3               /* llama.c's ACT_SLOTS: the ring of offloaded block inputs */
#define COST_MAX_SLOTS 64              /* train_config's bound on stream_slots */

void cost_rates_default(CostRates *r) {
    *r = (CostRates){COST_ASSUMED_GEMM_TFLOPS, COST_ASSUMED_H2D_GBPS, COST_ASSUMED_DISK_GBPS, "assumed"};
}

/* ---- the step's work ---- */

/* Seconds of each piece of compute at the calibrated rate; bytes of the copies. */
typedef struct {
    int L, lowest;                   /* blocks; the lowest one the backward reaches */
    unsigned char *trained;          /* per block */
    double fwd;                      /* a block's forward */
    double bwd;                      /* a block's backward, its recomputation included */
    double recomp;                   /* of which the recomputation (none for blocks from keep_from up) */
    int keep_from;                   /* blocks that keep their activations (MemPlan.keep_acts) start here */
    double trained_bwd;              /* the extra of a trained block's backward: weight gradients, GaLore projections */
    double head;                     /* the head's forward and backward */
    double optim;                    /* the optimizer's elementwise passes after the last micro-batch */
    double x_bytes;                  /* one offloaded block input (0: not offloaded) */
    double head_grad_bytes;          /* lm_head's gradient copied to host memory after the head (0: none) */
    double moments_up, moments_down; /* host-resident AdamW state (and lm_head's gradient) through the optimizer */
} Work;

/* The trained blocks: all, or the expected order statistics of gamma of L drawn uniformly without
 * replacement (the k-th smallest at k (L + 1) / (gamma + 1) - 1, 0-based; distinct after rounding, as
 * they lie at least 1 apart). */
static void trained_blocks(const TrainConfig *c, int L, unsigned char *trained) {
    int g = train_config_samples_blocks(c) ? (int)(c->gamma < L ? c->gamma : L) : L;
    memset(trained, 0, (size_t)L);
    for (int k = 1; k <= g; k++) {
        int b = (int)((double)k * (L + 1) / (g + 1) - 1 + 0.5);
        trained[b < 0 ? 0 : b >= L ? L - 1 : b] = 1;
    }
}

static void step_work(const TrainConfig *c, const ModelConfig *mc, const MemPlan *p, const CostRates *r, Work *w) {
    int L = (int)mc->num_layers;
    double rate = r->gemm_tflops * 1e12 * COST_COMPUTE_EFFICIENCY;
    double B = (double)c->batch_size, T = (double)c->block_size, N = B * T, C = (double)mc->hidden_size;
    double V = (double)mc->vocab_size, P = (double)(model_config_block_param_count(mc) - 2 * mc->hidden_size);
    double lin = 2 * N * P, attn = 2 * B * T * T * (double)(mc->num_heads * mc->head_dim);
    int galore = c->optimizer == OPT_GALORE_ADAMW && c->rank > 0;
    w->L = L;
    trained_blocks(c, L, w->trained);
    w->lowest = 0;
    if (c->freeze_embeddings)
        while (w->lowest < L - 1 && !w->trained[w->lowest]) w->lowest++;
    w->fwd = (lin + attn) / rate;
    w->bwd = ((c->recompute ? lin + attn : 0) + lin + 2.5 * attn) / rate;
    w->recomp = (c->recompute ? lin + attn : 0) / rate;
    w->keep_from = L - (int)(p->keep_acts < L ? p->keep_acts : L);
    /* GaLore's R = G P^T and its update N P: 2 m n r FLOPs each per matrix, in TF32 (half the bf16 rate) */
    w->trained_bwd = (lin + (galore ? 2 * 4 * (double)c->rank * P : 0)) / rate;
    int head_trained = !mc->tie_word_embeddings || !c->freeze_embeddings;
    w->head = (2 + head_trained) * 2 * N * V * C / rate;
    /* the optimizer's passes over device memory: AdamW reads g, m, v, w and writes m, v, w (24 bytes a
     * parameter); GaLore's update reads G for the norm, writes and reads the projected-back delta and updates w
     * (16); the embedding's and lm_head's moments in host memory go over the bus instead (moments_up) */
    double nb = 0, head_params = C + (c->freeze_embeddings ? 0 : V * C) + (mc->tie_word_embeddings ? 0 : V * C);
    for (int l = 0; l < L; l++) nb += w->trained[l];
    double opt_bytes = nb * (P * (galore ? 16 : 24) + 2 * C * 24) + (p->host_optimizer ? 24 * C : 24 * head_params);
    w->optim = opt_bytes / (COST_ASSUMED_HBM_GBPS * 1e9);
    w->x_bytes = p->host_activations ? (double)p->host_activations / L : 0;
    w->head_grad_bytes = (double)p->host_gradients;
    w->moments_up = (double)(p->host_optimizer + p->host_gradients);
    w->moments_down = (double)p->host_optimizer;
}

/* ---- the replay ---- */

typedef struct {
    int block, busy, wanted;
    unsigned long clock;  /* its last release */
    double ready, staged; /* its last copy has landed; its staging buffer's last copy has left it */
} SimSlot;

typedef struct {
    const Work *w;
    const BlockHome *homes;
    int nslots;
    double bb, h2d, disk;   /* block bytes; bytes per second */
    double host, gpu, copy; /* the three clocks */
    SimSlot slot[COST_MAX_SLOTS];
    unsigned long clock;
    double *act_ready; /* per block: its input back on the device */
    double up_bytes, down_bytes, disk_bytes;
} Sim;

static double dmax(double a, double b) { return a > b ? a : b; }

static int sim_streams(const Sim *s, int b) {
    return s->homes && s->homes[b] != BLOCK_HOME_DEVICE && !s->w->trained[b];
}

/* A copy on the copy queue after the compute queued so far; returns when it lands. */
static double sim_copy(Sim *s, double bytes) {
    s->copy = dmax(dmax(s->copy, s->gpu), s->host) + bytes / s->h2d;
    return s->copy;
}

/* A copy up (to the device) or down, counted; none (0) for no bytes. */
static double sim_up(Sim *s, double bytes) {
    if (bytes <= 0) return 0;
    s->up_bytes += bytes;
    return sim_copy(s, bytes);
}

static double sim_down(Sim *s, double bytes) {
    if (bytes <= 0) return 0;
    s->down_bytes += bytes;
    return sim_copy(s, bytes);
}

static void sim_compute(Sim *s, double seconds, double after) { s->gpu = dmax(dmax(s->gpu, after), s->host) + seconds; }

static int sim_slot_of(const Sim *s, int b) {
    for (int k = 0; k < s->nslots; k++)
        if (s->slot[k].block == b) return k;
    return -1;
}

/* block_store.c's choice of a slot to overwrite: an empty one, else the least recently released of
 * those neither acquired nor prefetched since the last acquire. */
static int sim_victim(const Sim *s) {
    int best = -1;
    for (int k = 0; k < s->nslots; k++) {
        const SimSlot *t = &s->slot[k];
        if (t->busy || t->wanted) continue;
        if (t->block < 0) return k;
        if (best < 0 || t->clock < s->slot[best].clock) best = k;
    }
    return best;
}

static void sim_fill(Sim *s, int k, int b) {
    SimSlot *t = &s->slot[k];
    if (s->homes[b] == BLOCK_HOME_DISK) { /* the host reads into the slot's staging buffer, then queues the copy */
        s->host = dmax(s->host, t->staged) + s->bb / s->disk;
        s->disk_bytes += s->bb;
    }
    t->ready = sim_up(s, s->bb);
    if (s->homes[b] == BLOCK_HOME_DISK) t->staged = t->ready;
    t->block = b;
}

static void sim_prefetch(Sim *s, int b) {
    int k = sim_slot_of(s, b);
    if (k < 0) {
        k = sim_victim(s);
        if (k < 0) return;
        sim_fill(s, k, b);
    }
    s->slot[k].wanted = 1;
}

/* When block b may be computed on (acquired: its slot stays until released). */
static double sim_acquire(Sim *s, int b) {
    if (!sim_streams(s, b)) return 0;
    for (int k = 0; k < s->nslots; k++) s->slot[k].wanted = 0;
    int k = sim_slot_of(s, b);
    if (k < 0) {
        k = sim_victim(s);
        sim_fill(s, k, b);
    }
    s->slot[k].busy = 1;
    return s->slot[k].ready;
}

static void sim_release(Sim *s, int b) {
    int k = sim_streams(s, b) ? sim_slot_of(s, b) : -1;
    if (k < 0) return;
    s->slot[k].busy = 0;
    s->slot[k].clock = ++s->clock;
}

/* llama.c's step order: the forward 0..L-1, the backward L-1..lowest, then the next micro-batch. */
static int order_block(const Work *w, int pos) { return model_step_order_block(w->L, w->lowest, 1, pos); }

/* llama.c's block_enter: block order_block(pos) acquired, the streamed blocks after it prefetched. */
static double sim_enter(Sim *s, int pos) {
    const Work *w = s->w;
    double ready = sim_acquire(s, order_block(w, pos));
    int ahead = s->nslots - 1, len = 2 * w->L - w->lowest;
    for (int q = pos + 1; s->homes && ahead > 0 && q <= pos + len; q++) {
        int b = order_block(w, q);
        if (!sim_streams(s, b)) continue;
        sim_prefetch(s, b);
        ahead--;
    }
    return ready;
}

/* Block l's backward: its recomputation unless it keeps its activations, its weight gradients if trained. */
static double block_bwd(const Work *w, int l) {
    return w->bwd - (l >= w->keep_from ? w->recomp : 0) + (w->trained[l] ? w->trained_bwd : 0);
}

/* A step of G micro-batches layer-major (model_forward_backward_layers): each block comes up once for all of
 * them; every (block, micro-batch) input goes through host memory and back (down in the forward, up before
 * each forward but block 0's and each backward). */
static void sim_layered_step(Sim *s, double head_after, int G) {
    const Work *w = s->w;
    int L = w->L;
    double x = w->x_bytes > 0 ? w->x_bytes : 0;
    for (int l = 0; l < L; l++) {
        double after = sim_enter(s, l);
        for (int k = 0; k < G; k++) {
            double in = l > 0 ? sim_up(s, x) : 0;
            sim_compute(s, w->fwd, dmax(after, in));
            (void)sim_down(s, x);
        }
        sim_release(s, l);
    }
    for (int k = 0; k < G; k++) {
        double in = sim_up(s, x);
        sim_compute(s, w->head, dmax(head_after, in));
        s->host = dmax(s->host, s->gpu); /* each micro-batch's loss is read */
    }
    for (int l = L - 1; l >= w->lowest; l--) {
        double after = sim_enter(s, L + (L - 1 - l));
        for (int k = 0; k < G; k++) {
            double in = sim_up(s, x);
            sim_compute(s, block_bwd(w, l), dmax(after, in));
        }
        sim_release(s, l);
    }
    s->host = dmax(s->host, s->gpu);
}

/* One micro-batch; head_after: when the host-resident head state is updated. */
static void sim_micro_batch(Sim *s, double head_after) {
    const Work *w = s->w;
    int L = w->L, offload = w->x_bytes > 0 && L > COST_ACT_SLOTS;
    double ring[COST_ACT_SLOTS] = {0}; /* the last copy into or out of each slot of the input ring */
    for (int l = 0; l < L; l++) {
        if (offload) ring[l % COST_ACT_SLOTS] = sim_down(s, w->x_bytes);
        double after = sim_enter(s, l);
        if (offload && l + 1 < L) after = dmax(after, ring[(l + 1) % COST_ACT_SLOTS]);
        sim_compute(s, w->fwd, after);
        sim_release(s, l);
    }
    sim_compute(s, w->head, head_after);
    double after_head = sim_down(s, w->head_grad_bytes);
    for (int l = L - 1; l >= w->lowest; l--) {
        double after = dmax(sim_enter(s, L + (L - 1 - l)), after_head);
        if (offload && l < L - COST_ACT_SLOTS) after = dmax(after, s->act_ready[l]);
        sim_compute(s, block_bwd(w, l), after);
        sim_release(s, l);
        if (offload && l - COST_ACT_SLOTS >= w->lowest) {
            s->act_ready[l - COST_ACT_SLOTS] = sim_up(s, w->x_bytes);
        }
    }
    s->host = dmax(s->host, s->gpu); /* the loss is read: the host waits for the micro-batch */
}

void cost_rates_from_probe(CostRates *r, const ProbeResult *pr) {
    r->gemm_tflops = pr->gemm_tflops;
    r->h2d_gbps = pr->h2d_gbps;
    if (pr->disk_gbps > 0) r->disk_gbps = pr->disk_gbps;
    r->source = "probe";
}

void cost_predict(const TrainConfig *c, const ModelConfig *mc, const MemPlan *p, const BlockHome *homes,
                  const CostRates *r, CostPrediction *out) {
    memset(out, 0, sizeof *out);
    int L = (int)mc->num_layers;
    Work w;
    w.trained = malloc((size_t)L);
    step_work(c, mc, p, r, &w);
    const OffloadPlacement *pl = &p->place;
    int blocks_placed = pl->n_device + pl->stream_slots + pl->pin_slots;
    Sim s;
    memset(&s, 0, sizeof s);
    s.w = &w;
    s.homes = pl->streaming ? homes : NULL;
    s.nslots = pl->streaming ? pl->stream_slots : 0;
    OW_CHECK(s.nslots <= COST_MAX_SLOTS);
    s.bb = blocks_placed ? (double)pl->device_bytes / blocks_placed : 0;
    s.h2d = r->h2d_gbps * 1e9;
    s.disk = r->disk_gbps * 1e9;
    s.act_ready = calloc((size_t)L, sizeof *s.act_ready);
    for (int k = 0; k < COST_MAX_SLOTS; k++) s.slot[k] = (SimSlot){.block = -1};
    /* steady state: the fourth step of a replay (slots and queues carry over from step to step) */
    enum { STEPS = 4 };
    int layered = train_config_accum_layered(c, mc->tie_word_embeddings, pl->streaming);
    if (layered) w.x_bytes = (double)(c->batch_size * c->block_size * mc->hidden_size) * 2.0; /* bf16 boundaries */
    /* the moments' copies take their share of the link the blocks stream over (costmodel.h) */
    double end[STEPS], head_after = 0, up0 = 0, down0 = 0, disk0 = 0,
                       moments = COST_MOMENTS_LINK_SHARE * (w.moments_up + w.moments_down);
    for (int step = 0; step < STEPS; step++) {
        if (step == STEPS - 1) up0 = s.up_bytes, down0 = s.down_bytes, disk0 = s.disk_bytes;
        if (layered)
            sim_layered_step(&s, head_after, (int)c->grad_accum);
        else
            for (int64_t a = 0; a < c->grad_accum; a++) sim_micro_batch(&s, head_after);
        end[step] = s.host;
        sim_compute(&s, w.optim, 0);
        if (moments > 0) head_after = sim_copy(&s, moments);
    }
    double up = s.up_bytes - up0 + w.moments_up, down = s.down_bytes - down0 + w.moments_down;
    /* the bus carries every byte, up and down, at the one rate (as the copy queue does; see costmodel.h) */
    double step_s = dmax(end[STEPS - 1] - end[STEPS - 2], (up + down) / s.h2d);
    double compute = (double)c->grad_accum * (L * w.fwd + w.head) + w.optim;
    for (int l = w.lowest; l < L; l++) compute += (double)c->grad_accum * block_bwd(&w, l);
    out->step_s = step_s;
    out->tokens_per_s = (double)(c->grad_accum * c->batch_size * c->block_size) / step_s;
    out->compute_s = compute;
    out->exposed_transfer_s = step_s - compute > 1e-9 * compute ? step_s - compute : 0; /* not the sums' rounding */
    out->h2d_bytes_per_step = up;
    out->d2h_bytes_per_step = down;
    out->disk_bytes_per_step = s.disk_bytes - disk0;
    free(s.act_ready);
    free(w.trained);
}

/* cost_choose_plan's slot count (the keep_acts of c as given). */
static int choose_slots(TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                        const char *device, size_t cap, size_t host_room, const CostRates *r, MemPlan *out,
                        BlockHome *homes, CostPrediction *pred, OwError *err) {
    int auto_slots = c->stream_slots == 0;
    if (auto_slots) c->stream_slots = COST_DEFAULT_SLOTS;
    OwError first = {0};
    int rc = train_memory_check(c, mc, param, act, device_workspace, device, cap, host_room, out, homes, &first);
    if (!auto_slots || !device_workspace || (rc == 0 && !out->place.streaming)) {
        if (rc != 0 && err) *err = first;
        if (rc == 0 && pred) cost_predict(c, mc, out, homes, r, pred);
        return rc;
    }
    /* auto: the slot count whose placement is predicted fastest (the default's error if none fits) */
    int best = 0, L = (int)mc->num_layers;
    double best_s = 0;
    CostPrediction q;
    if (rc == 0) {
        cost_predict(c, mc, out, homes, r, &q);
        best = COST_DEFAULT_SLOTS, best_s = q.step_s;
    }
    BlockHome *h = ow_xmalloc((size_t)L * sizeof *h);
    for (int k = 2; k <= COST_AUTO_MAX_SLOTS; k++) {
        TrainConfig t = *c;
        t.stream_slots = k;
        MemPlan p;
        OwError e;
        if (k == COST_DEFAULT_SLOTS ||
            train_memory_check(&t, mc, param, act, device_workspace, device, cap, host_room, &p, h, &e) != 0 ||
            !p.place.streaming)
            continue;
        cost_predict(&t, mc, &p, h, r, &q);
        if (best == 0 || q.step_s < best_s * 0.995) best = k, best_s = q.step_s;
    }
    free(h);
    if (best == 0) {
        if (err) *err = first;
        return -1;
    }
    c->stream_slots = best;
    if (best != COST_DEFAULT_SLOTS &&
        train_memory_check(c, mc, param, act, device_workspace, device, cap, host_room, out, homes, err) != 0)
        return -1;
    if (pred) cost_predict(c, mc, out, homes, r, pred);
    return 0;
}

static int choose_plan(TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                       const char *device, size_t cap, size_t host_room, const CostRates *r, MemPlan *out,
                       BlockHome *homes, CostPrediction *pred, OwError *err) {
    TrainConfig given = *c;
    CostPrediction q;
    if (choose_slots(c, mc, param, act, device_workspace, device, cap, host_room, r, out, homes, &q, err) != 0)
        return -1;
    if (pred) *pred = q;
    /* keep_acts auto under a cap the user gave: more kept blocks than the room allows, their room taken from
     * blocks that then stream, when that is predicted faster by COST_KEEP_GAIN */
    if (given.keep_acts >= 0 || !device_workspace || !given.gpu_mem || !given.recompute ||
        train_config_accum_layered(&given, mc->tie_word_embeddings, 1))
        return 0;
    int L = (int)mc->num_layers, L_best = -1;
    double best_s = q.step_s;
    TrainConfig best = *c;
    BlockHome *h = ow_xmalloc((size_t)L * sizeof *h);
    for (int k = 4; k < L + 4; k += 4) {
        TrainConfig t = given;
        t.keep_acts = k < L ? k : L;
        if (t.keep_acts <= out->keep_acts) continue;
        MemPlan p;
        OwError e;
        if (choose_slots(&t, mc, param, act, device_workspace, device, cap, host_room, r, &p, h, &q, &e) != 0) continue;
        if (q.step_s < best_s * (1.0 - COST_KEEP_GAIN)) best_s = q.step_s, best = t, L_best = (int)t.keep_acts;
    }
    free(h);
    if (L_best < 0) return 0;
    *c = best;
    return choose_slots(c, mc, param, act, device_workspace, device, cap, host_room, r, out, homes, pred, err);
}

int cost_choose_plan(TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                     const char *device, size_t cap, size_t host_room, const CostRates *r, MemPlan *out,
                     BlockHome *homes, CostPrediction *pred, OwError *err) {
    CostPrediction q;
    TrainConfig given = *c; /* choose_plan settles slots and kept blocks for the moments in host memory */
    int rc = choose_plan(c, mc, param, act, device_workspace, device, cap, host_room, r, out, homes, &q, err);
    if (c->offload_optimizer != OFFLOAD_AUTO || !device_workspace || !c->gpu_mem) { /* auto: in host memory */
        if (rc == 0 && pred) *pred = q;
        return rc;
    }
    /* the embedding's and lm_head's moments in host memory (auto's home for them on a device that cannot hold the
     * whole run) or on the device, whichever placement is predicted faster */
    int L = (int)mc->num_layers;
    TrainConfig dev = given;
    dev.offload_optimizer = OFFLOAD_OFF;
    MemPlan p;
    BlockHome *h = ow_xmalloc((size_t)L * sizeof *h);
    CostPrediction dq;
    OwError e;
    if (choose_plan(&dev, mc, param, act, device_workspace, device, cap, host_room, r, &p, h, &dq, &e) == 0 &&
        (rc != 0 || dq.step_s < q.step_s * (1.0 - COST_MOMENTS_GAIN))) {
        *c = dev;
        *out = p;
        memcpy(homes, h, (size_t)L * sizeof *h);
        q = dq;
        rc = 0;
    }
    free(h);
    if (rc == 0 && pred) *pred = q;
    return rc;
}

/* optimizer.h: AdamW and GaLore-AdamW over the model's trainable parameters,
 * with per-tensor state, gradient clipping on the full-rank gradients, and
 * moving the state of inactive blocks off the device.
 *
 * Protocol for one optimizer step:
 *   1. backward runs; as each part of the model finishes (GradHooks), the
 *      trainer calls optimizer_absorb for its parameters: the squared norm of
 *      each full-rank gradient is added to the step's total (the backend's norm
 *      accumulator, Backend.norm_add: backward never waits for it); for a GaLore
 *      tensor the projector is refreshed when due (first use, then every
 *      update_gap of the tensor's own steps) and the gradient is projected
 *      (R = G P^T when m >= n, else R = P^T G) so the full-rank gradient is no
 *      longer needed;
 *   2. optimizer_step computes the clip coefficient
 *      min(1, clip / (norm + 1e-6)) (torch's clip_grad_norm_) and applies it
 *      to the gradients it updates with: projection is linear, so clipping R
 *      equals projecting the clipped G, and the projector of a scaled
 *      gradient is the same (canonical signs), so this is exact;
 *   3. gradients are zeroed for the next step.
 * Gradient accumulation over k micro-batches (optimizer_begin_micro before
 * each): in the default mode the model accumulates full-rank gradients and
 * they are absorbed after the last micro-batch, which is exact. In projected
 * mode (accumulate_projected) a GaLore tensor's gradient is projected and
 * added to R after every micro-batch, so its full-rank gradient lives for
 * one micro-batch only (less memory). The price, by design: on a refresh
 * step the projector comes from the first micro-batch's gradient, and the
 * clipping norm of a GaLore tensor is that of the accumulated projected
 * gradient ||sum_k P^T G_k|| (never more than the full-rank norm, so clipping
 * triggers less often); other tensors still use their full-rank norm.
 * GaLore-AdamW uses the update of the GaLore optimizer (ADAM_VARIANT_HF); the
 * plain AdamW recipe uses torch.optim.AdamW (ADAM_VARIANT_TORCH). */
#ifndef OWLORE_OPTIM_OPTIMIZER_H
#define OWLORE_OPTIM_OPTIMIZER_H

#include "core/memstats.h"
#include "model/model.h"
#include "optim/projector.h"

typedef enum { OPT_ADAMW = 0, OPT_GALORE_ADAMW = 1 } OptimizerKind;

/* GaLore's projected-back update is applied in row chunks through an F32
 * scratch of min(largest projected tensor, max(this, widest row)) elements. */
#define OPTIM_DELTA_CHUNK ((int64_t)8 << 20)
typedef enum { INACTIVE_KEEP = 0, INACTIVE_RESET = 1 } InactivePolicy;

typedef struct OptimConfig {
    OptimizerKind kind;
    double beta1, beta2, eps, weight_decay;
    int rank;
    int64_t update_gap;
    double scale;
    ProjectorKind projector;
    int rf_oversample; /* extra columns of the range finder */
    int rf_iters;      /* subspace iterations */
    InactivePolicy inactive;
    uint64_t seed;
    /* The AdamW moments of the embedding and lm_head (the large always-trainable
     * tensors) live in page-locked host memory and are updated over the bus:
     * lm_head's beside the next step's forward (the model waits before its
     * first use), the embedding rows without a gradient this step beside the
     * step's compute (optimizer_begin_step), the rows of the step's tokens
     * after clipping. Same arithmetic, same bits as on the device. */
    int offload_head;
    /* GaLore's projection GEMMs (R = G P^T or P^T G, the update R P or P R): 0 auto = TF32
     * tensor cores (MATMUL_FAST_F32) when the parameters are bf16 (their gradients
     * come from bf16 activations: TF32's 10-bit mantissa is finer than that; the PyTorch
     * recipe projects in bf16), true fp32 otherwise; 1 always fp32; 2 always tf32. */
    int projection_precision;
} OptimConfig;

typedef struct ParamState {
    int64_t step; /* this tensor's update count */
    int galore;   /* gradient projected to rank r */
    int right;    /* m >= n: R = G P^T, P is [r, n]; else R = P^T G, P is [m, r] */
    int64_t refreshes;
    int resident; /* m, v (and P, R) are allocated on the backend */
    int absorbed; /* gradient absorbed in this step */
    Tensor m, v, P, R;
    /* Parked copies (INACTIVE_KEEP), valid while `parked`. The buffers outlive a
     * return to the device: the next park reuses them (no fresh pages to fault in
     * and no unmapping, 0.1-0.2 s per 7B block), for at most the active blocks'
     * state in extra host memory. */
    float *host_m, *host_v, *host_P;
    int parked;
    int has_P;
    int host_state;   /* m, v in host memory (hm, hv), OptimConfig.offload_head */
    float *hm, *hv;   /* page-locked (Model.host), the parameter's shape */
    int early_queued; /* the rows without a gradient were queued by optimizer_begin_step */
    float early_lr;   /* the learning rate they were updated with */
} ParamState;

typedef struct OptimStats {
    double refresh_seconds; /* time in projector refreshes during the last step */
    int refreshes;          /* projector refreshes during the last step */
} OptimStats;

typedef struct Optimizer {
    OptimConfig cfg;
    Model *model;
    ParamState *st; /* one per model parameter */
    MemStats host;  /* its host state (parked, host-resident moments): Model.host's HOST_PARKED + HOST_MOMENTS */
    OptimStats stats;
    Tensor delta;             /* F32 scratch for projected-back updates */
    int accumulate_projected; /* projected gradient accumulation (see above) */
    /* Share one full-rank gradient buffer per block tensor kind between the
     * GaLore tensors of all blocks: each block's gradient is projected as soon
     * as its backward ends, so the next block can reuse the buffer. Valid when
     * nothing needs a full-rank gradient after its block (one micro-batch per
     * step, or projected accumulation); set before activating parameters. */
    int share_grads;
    Tensor shared_g[BW_COUNT]; /* by share group: BW_Q for the attention linears, else the kind */
    int micro, last_micro;     /* position within the step's micro-batches */
    /* Data parallel (set by the trainer; NULL: one process): reduce starts the ranks' in-place
     * sum of a gradient-shaped F32 tensor, and reduce_wait completes every sum started, for the
     * work queued after it; in between, the tensor is neither read nor written, and the backward
     * of the blocks below runs beside the sums. A gradient is summed once complete: the full-rank
     * G, or (accumulate_projected, GaLore tensors) the projected R after the last micro-batch; a
     * refresh sums the G it projects from, and then only rank 0 (reduce_rank) adds its
     * projection, as the ranks' R are summed afterwards. A sum read at once (a GaLore G, which is
     * projected; a shared buffer, which the next block reuses) is waited for at once; the others
     * at the step, and their norms are put off until their sums are waited for, always in the
     * order they were absorbed (the norm adds up as a single process's does). */
    int (*reduce)(void *ctx, Tensor *t, OwError *err);
    int (*reduce_wait)(void *ctx, OwError *err);
    void *reduce_ctx;
    int reduce_rank;
    int reducing;       /* sums started and not waited for */
    Tensor *norm_later; /* gradients whose norms wait for their sums (n_norm_later of nparams) */
    int n_norm_later;
} Optimizer;

/* The names of each enum, indexed by its value and ending in NULL: the one
 * name <-> value table (train_config parses recipe and flag values with it). */
extern const char *const optim_kind_names[];
extern const char *const inactive_policy_names[];
const char *optim_kind_name(OptimizerKind k);

int optimizer_init(Optimizer *o, Model *m, const OptimConfig *cfg, OwError *err);
void optimizer_free(Optimizer *o);
/* Checks that GaLore's rank fits every projected matrix (before training). */
int optimizer_check(const Model *m, const OptimConfig *cfg, OwError *err);
/* The buffer group of a block tensor kind when gradients are shared (share_grads):
 * the attention linears (q, k, v, o) share one buffer, since backward completes
 * and absorbs them one at a time (GradHooks.param_done); the others one each. */
BlockWeight optimizer_share_group(BlockWeight bw);
/* Whether parameter p gets GaLore projection under this config. */
int optimizer_projects(const OptimConfig *cfg, const Param *p);

/* Makes p trainable and its state resident (restoring parked state). */
int optimizer_activate(Optimizer *o, Param *p, OwError *err);
/* Makes p frozen; its state is parked in host memory (keep) or dropped (reset). */
int optimizer_deactivate(Optimizer *o, Param *p, OwError *err);

/* Before a step's first micro-batch, once the model knows the step's tokens
 * (model_begin_step): queues the update of the compact embedding's rows that
 * get no gradient this step (their update does not depend on clipping) beside
 * the step's compute. lr must be the lr optimizer_step gets. Optional: without
 * it optimizer_step does the same work itself. */
void optimizer_begin_step(Optimizer *o, double lr);
/* Marks the start of micro-batch `micro` of a step (last: it is the final one). */
void optimizer_begin_micro(Optimizer *o, int micro, int last);
int optimizer_absorb(Optimizer *o, Param *p, OwError *err);
/* Absorbs every trainable parameter of block `layer` (or, layer == -1, the
 * final norm and an untied lm_head; layer == -2, the embedding). */
int optimizer_absorb_part(Optimizer *o, int layer, OwError *err);
/* Applies the updates with learning rate lr; clip <= 0 disables clipping.
 * *grad_norm gets the full-rank gradient norm before clipping. */
int optimizer_step(Optimizer *o, double lr, double clip, double *grad_norm, OwError *err);

/* ---- checkpoints ----
 * Where a parameter's state lives: nowhere (never updated, or dropped by the
 * reset policy), on the backend (trainable), or parked in host memory. */
typedef enum { OPT_STATE_NONE = 0, OPT_STATE_DEVICE = 1, OPT_STATE_HOST = 2 } OptStateHome;
OptStateHome optimizer_state_home(const Optimizer *o, const Param *p);
/* Shapes of p's moments (m, v) and projector P (0 elements without GaLore). */
void optimizer_state_shapes(const Optimizer *o, const Param *p, Tensor *mv, Tensor *P);
/* Copies p's m, v and (when has_P) P to host F32 buffers; home must not be NONE. */
void optimizer_state_read(Optimizer *o, const Param *p, float *m, float *v, float *P);
/* Restores saved state: the counters, and m, v, P (NULL unless has_P) into
 * `home`: DEVICE needs p trainable, HOST needs p frozen and the keep policy. */
int optimizer_state_restore(Optimizer *o, Param *p, OptStateHome home, int64_t step, int64_t refreshes, int has_P,
                            const float *m, const float *v, const float *P, OwError *err);

#endif

/* optimizer.h: AdamW and GaLore-AdamW over the model's trainable parameters,
 * with per-tensor state, gradient clipping on the full-rank gradients, and
 * moving the state of inactive blocks off the device.
 *
 * Protocol for one optimizer step:
 *   1. backward runs; as each part of the model finishes (GradHooks), the
 *      trainer calls optimizer_absorb for its parameters: the squared norm of
 *      each full-rank gradient is added to the step's total; for a GaLore
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

typedef enum { OPT_ADAMW = 0, OPT_GALORE_ADAMW = 1 } OptimizerKind;
typedef enum { PROJ_EXACT = 0, PROJ_RANDOMIZED = 1 } ProjectorKind;
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
} OptimConfig;

typedef struct ParamState {
    int64_t step;     /* this tensor's update count */
    int galore;       /* gradient projected to rank r */
    int right;        /* m >= n: R = G P^T, P is [r, n]; else R = P^T G, P is [m, r] */
    int64_t refreshes;
    int resident;     /* m, v (and P, R) are allocated on the backend */
    int absorbed;     /* gradient absorbed in this step */
    Tensor m, v, P, R;
    float *host_m, *host_v, *host_P; /* parked copies (INACTIVE_KEEP) */
    size_t host_bytes;               /* their total size */
    int has_P;
} ParamState;

typedef struct OptimStats {
    double refresh_seconds; /* time in projector refreshes during the last step */
    int refreshes;          /* projector refreshes during the last step */
} OptimStats;

typedef struct Optimizer {
    OptimConfig cfg;
    Model *model;
    ParamState *st; /* one per model parameter */
    double sq_norm; /* sum of squared full-rank gradient norms absorbed this step */
    MemStats host;  /* parked state in host memory */
    OptimStats stats;
    Tensor delta;   /* F32 scratch for projected-back updates */
    int accumulate_projected; /* projected gradient accumulation (see above) */
    int micro, last_micro;    /* position within the step's micro-batches */
} Optimizer;

int optim_kind_parse(const char *name, OptimizerKind *out, OwError *err);
const char *optim_kind_name(OptimizerKind k);
int projector_kind_parse(const char *name, ProjectorKind *out, OwError *err);
const char *projector_kind_name(ProjectorKind k);
int inactive_policy_parse(const char *name, InactivePolicy *out, OwError *err);
const char *inactive_policy_name(InactivePolicy p);

int optimizer_init(Optimizer *o, Model *m, const OptimConfig *cfg, OwError *err);
void optimizer_free(Optimizer *o);
/* Checks that GaLore's rank fits every projected matrix (before training). */
int optimizer_check(const Model *m, const OptimConfig *cfg, OwError *err);
/* Whether parameter p gets GaLore projection under this config. */
int optimizer_projects(const OptimConfig *cfg, const Param *p);

/* Makes p trainable and its state resident (restoring parked state). */
int optimizer_activate(Optimizer *o, Param *p, OwError *err);
/* Makes p frozen; its state is parked in host memory (keep) or dropped (reset). */
int optimizer_deactivate(Optimizer *o, Param *p, OwError *err);

/* Marks the start of micro-batch `micro` of a step (last: it is the final one). */
void optimizer_begin_micro(Optimizer *o, int micro, int last);
int optimizer_absorb(Optimizer *o, Param *p, OwError *err);
/* Absorbs every trainable parameter of block `layer` (or, layer == -1, the
 * final norm and an untied lm_head; layer == -2, the embedding). */
int optimizer_absorb_part(Optimizer *o, int layer, OwError *err);
/* Applies the updates with learning rate lr; clip <= 0 disables clipping.
 * *grad_norm gets the full-rank gradient norm before clipping. */
int optimizer_step(Optimizer *o, double lr, double clip, double *grad_norm, OwError *err);

/* The projector of a gradient (exposed for tests): exact SVD or randomized
 * range finder, canonical signs. P must be allocated with the right shape. */
int galore_projector(Backend *be, Tensor *P, const Tensor *G, int rank, int right, ProjectorKind kind, int oversample,
                     int iters, uint64_t seed, OwError *err);

#endif

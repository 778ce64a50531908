/* costmodel.h: the predicted time of one optimizer step of a training run
 * (`owlore plan`), from the settings, the model's shape, the placed memory
 * plan (train_memory_place: where each block lives, the streaming slots, the
 * page-locked figures) and three rates of the machine.
 *
 * The step is replayed the way the engine runs it (src/model/llama.c and
 * offload/block_store.c) on four clocks: the host, which issues the work in
 * program order and waits only for store-file reads (block_store's disk reads
 * are synchronous, into a slot's staging buffer once its last copy has left)
 * and for the loss at the end of each micro-batch; one compute queue; the
 * copy queue (the backend's copy stream: both directions, in order); and the
 * queues of the host-resident optimizer state. Per micro-batch: the forward
 * over blocks 0..L-1, the head (logits forward and backward), the backward
 * from L-1 down to 0 (the embedding is trained) or to the lowest trained
 * block, each block's forward recomputed in its backward under --recompute;
 * after the last micro-batch the optimizer. A streamed block (home not the
 * device, not trained) is acquired from, and prefetched stream_slots-1
 * streamed blocks ahead into, the store's slots with the store's own policy
 * (a block still in a slot is not fetched again: the turns of the forward
 * into the backward and back); a copy starts after the compute queued before
 * it was issued (so after the slot it overwrites is released) and after the
 * copies before it, and a block's compute waits for its copy. The copy queue
 * also carries the offloaded block inputs (out in the forward, waited for
 * before their ring slot is reused; back in the backward) and lm_head's
 * gradient on its way to host memory after the head (the backward waits for
 * it). The embedding's and lm_head's host-resident moments (and lm_head's
 * gradient) cross the bus through the optimizer beside the next forward,
 * whose head waits for them: their own streams, up and down at once, but over
 * the link the blocks stream on, so the copy queue is held for
 * COST_MOMENTS_LINK_SHARE of their bytes' time (fitted on the five measured
 * H100 runs with host-resident moments, bench/plan_replay.sh: 0 (streams of
 * their own, the model until 2026-12-05) predicted them 3 to 20 % fast, 1
 * (queued with the blocks) 5 to 22 % slow, 0.5 within 7 %). Every byte
 * crossing the bus, up and down, bounds the step from below at the one rate
 * h2d_gbps: the copy queue already carries both directions in turn, and the
 * measured steps of runs whose moments' copies ran beside it (LLaMA-3-8B
 * under 24 GiB on an H100: 0.810 s and 0.788 s measured, 0.70 and 0.60 s
 * predicted when only the bytes going up bounded the step, 0.77 s (by hand
 * from the first run's byte counts) and 0.71 s with both) show the two
 * directions did not add up to twice the rate.
 *
 * Compute: bf16 GEMM FLOPs at gemm_tflops x COST_COMPUTE_EFFICIENCY (the
 * step's other kernels, calibrated on a measured run: costmodel.c): per
 * block 2 N P forward (N tokens, P the linears' parameters) plus causal
 * attention (2 B T^2 Hq D forward, 2.5x that backward), 2 N P for the input
 * gradients of every backpropagated block, 2 N P for the weight gradients
 * of the trained ones, GaLore's projections (4 r P per trained block, at
 * TF32's half rate); the head 2 N V C forward, as much for its input
 * gradient and for lm_head's weight gradient when trained; the optimizer's
 * elementwise passes over device memory (AdamW 24 bytes a parameter,
 * GaLore's update 16) at an assumed device-memory rate. The trained blocks
 * of a sampling method are the expected order statistics of gamma of L
 * blocks drawn uniformly (the lowest at (L - gamma) / (gamma + 1)). Not
 * modelled: the resample's pinning and write-back, projector refreshes,
 * sliding-window attention, --precision fp32 (counted at the bf16 rate). */
#ifndef OWLORE_TRAIN_COSTMODEL_H
#define OWLORE_TRAIN_COSTMODEL_H

#include "model/config.h"
#include "offload/block_store.h"
#include "offload/probe.h"
#include "train/memplan.h"
#include "train/train_config.h"

typedef struct CostRates {
    double gemm_tflops; /* sustained bf16 GEMM rate at the step's shapes, 1e12 FLOP/s */
    double h2d_gbps;    /* page-locked host -> device copies, 1e9 bytes/s */
    double disk_gbps;   /* the store file's O_DIRECT reads, 1e9 bytes/s */
    const char *source; /* "assumed" (cost_rates_default), "probe" or "flags" */
} CostRates;

typedef struct CostPrediction {
    double step_s, tokens_per_s; /* one optimizer step (grad_accum micro-batches), steady state */
    double compute_s;            /* the step's compute alone: step_s with every copy free */
    double exposed_transfer_s;   /* step_s - compute_s: the compute waiting for copies and reads */
    double h2d_bytes_per_step;   /* host -> device: streamed blocks, block inputs, host moments */
    double d2h_bytes_per_step;   /* device -> host: block inputs, lm_head's gradient, host moments */
    double disk_bytes_per_step;  /* blocks read from the store file */
} CostPrediction;

/* The fraction of gemm_tflops the step's FLOPs run at (calibration: costmodel.c). */
#define COST_COMPUTE_EFFICIENCY 0.8535

/* The rates assumed for an H200 with a PCIe Gen5 bus and a local NVMe disk (source "assumed").
 * A reader of `owlore probe`'s cache fills the same struct (source "probe"); flags override either. */
void cost_rates_default(CostRates *r);
/* r's rates from `owlore probe`'s figures (source "probe"; the disk rate only when one was measured). */
void cost_rates_from_probe(CostRates *r, const ProbeResult *pr);
/* The predicted step of the run c of model mc placed as p (train_memory_place) with homes (num_layers
 * entries; NULL: every block on the device). */
void cost_predict(const TrainConfig *c, const ModelConfig *mc, const MemPlan *p, const BlockHome *homes,
                  const CostRates *r, CostPrediction *out);

/* The slot count of stream_slots 0 (auto) when there are several placements to choose from: */
#define COST_DEFAULT_SLOTS MEMPLAN_DEFAULT_SLOTS
#define COST_AUTO_MAX_SLOTS 6
/* The share of the link the host-resident moments' copies hold while they run (see above). */
#define COST_MOMENTS_LINK_SHARE 0.5
/* How much faster a plan that streams blocks to keep more activations must be predicted to be chosen. */
#define COST_KEEP_GAIN 0.03
/* How much faster a plan with the head's moments on the device must be predicted to be chosen over auto's host
 * home for them. */
#define COST_MOMENTS_GAIN 0.01
/* train_memory_check with stream_slots resolved: kept when given (> 0); auto (0) on a device with memory of its
 * own tries 2 .. COST_AUTO_MAX_SLOTS slots (each slot is a block less on the device) and keeps the count whose
 * placed plan cost_predict finds fastest (COST_DEFAULT_SLOTS unless another is faster by more than 0.5 %);
 * elsewhere, or when nothing streams, COST_DEFAULT_SLOTS. With keep_acts auto under a cap the user gave
 * (--gpu-mem) on such a device, also the number of blocks that keep their activations: beyond what the room
 * allows (memplan), 4, 8, ... of them, whose room is taken from blocks that then stream, when that is
 * predicted faster by COST_KEEP_GAIN. With offload_optimizer auto under such a cap, where auto would keep the
 * embedding's and lm_head's moments in host memory, also their home: on the device instead when that plan
 * (its own slots and kept blocks) is predicted faster by COST_MOMENTS_GAIN. c->stream_slots (and keep_acts,
 * offload_optimizer) are set to what is chosen; pred (may be NULL) gets the chosen plan's prediction. */
int cost_choose_plan(TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                     const char *device, size_t cap, size_t host_room, const CostRates *r, MemPlan *out,
                     BlockHome *homes, CostPrediction *pred, OwError *err);

#endif

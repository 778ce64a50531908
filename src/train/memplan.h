/* memplan.h: the device memory a training run will allocate, predicted from
 * the settings and the model configuration with the same layouts the code
 * allocates (model_activation_bytes shares its layout with model_prepare;
 * the optimizer's state shapes follow optimizer.c). `owlore plan` prints it,
 * and `owlore train` checks it against --gpu-mem before allocating anything,
 * so a run that cannot fit stops at once with the breakdown and a hint. */
#ifndef OWLORE_TRAIN_MEMPLAN_H
#define OWLORE_TRAIN_MEMPLAN_H

#include "core/memstats.h"
#include "model/config.h"
#include "train/train_config.h"

/* Streaming slots when stream_slots is 0 (auto) and nothing chooses (costmodel.h's cost_choose_plan does). */
#define MEMPLAN_DEFAULT_SLOTS 3

typedef struct MemPlan {
    size_t bytes[MEM_KIND_COUNT];
    size_t total;
    size_t host_activations; /* offloaded block inputs (host memory, page-locked on a GPU) */
    size_t host_optimizer;   /* offloaded AdamW moments of the embedding and lm_head (page-locked) */
    size_t host_gradients;   /* lm_head's gradient between backward and optimizer (page-locked) */
    OffloadPlacement place;  /* where the blocks live (train_memory_place; else every block on the device) */
    size_t disk_bytes;       /* the block store file */
    int64_t keep_acts;       /* top blocks that keep their activations (Model.keep_acts; train_memory_place resolves
                                auto) */
} MemPlan;

/* param/act: the backend's dtypes; device_workspace: the CUDA backend's fixed
 * workspaces (cuBLASLt, reductions) are counted. */
void train_memory_plan(const TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                       MemPlan *out);
/* The plan with the blocks placed (offload/block_store.h) under a device cap (0: none) and a page-locked
 * host room: --offload none keeps train_memory_plan's, and so does auto where the device has no memory of
 * its own (device_workspace 0); otherwise blocks that do not fit beside everything else stream through
 * slots, their weights counted where they live, their host homes in what the room leaves beside the plan's
 * other page-locked figures (host_activations, host_optimizer, host_gradients). homes (num_layers entries)
 * may be NULL. -1 with a message naming what to change when no placement fits. */
int train_memory_place(const TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                       size_t cap, size_t host_room, MemPlan *out, BlockHome *homes, OwError *err);
/* offload_optimizer auto under a cap the user gave (--gpu-mem): the embedding's and lm_head's moments stay on
 * the device (off) when the run fits beside them without streaming a block, else auto as before (host memory
 * on a GPU). Call before train_memory_place; plan and train both do. */
void train_resolve_optimizer_home(TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                                  size_t cap);
/* train's check of a run before anything is allocated: train_memory_place, or -1 with the message a run
 * stops with: the placement's error, or the plan over the cap (device names its memory, e.g. "cuda") with
 * its breakdown and what to change. `owlore plan` prints the same. */
int train_memory_check(const TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                       const char *device, size_t cap, size_t host_room, MemPlan *out, BlockHome *homes, OwError *err);
/* The host room of a run: --host-mem, else what offload_default_host_room gives. */
size_t train_host_room(const TrainConfig *c);
/* The largest batch size <= max_batch whose plan fits in cap bytes (0 if none). */
int64_t train_memory_largest_batch(const TrainConfig *c, const ModelConfig *mc, DType param, DType act,
                                   int device_workspace, size_t cap, int64_t max_batch);
/* The same for the placed plan (train_memory_place under cap and host_room): streamed blocks make room. */
int64_t train_memory_largest_placed_batch(const TrainConfig *c, const ModelConfig *mc, DType param, DType act,
                                          int device_workspace, size_t cap, size_t host_room, int64_t max_batch);
/* "weights 12.55 GiB, grads ...; total ..." */
void memplan_format(const MemPlan *p, char *buf, size_t cap);

#endif

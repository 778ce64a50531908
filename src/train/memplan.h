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

typedef struct MemPlan {
    size_t bytes[MEM_KIND_COUNT];
    size_t total;
    size_t host_activations; /* offloaded block inputs (host memory, page-locked on a GPU) */
    size_t host_optimizer;   /* offloaded AdamW moments of the embedding and lm_head (page-locked) */
    size_t host_gradients;   /* lm_head's gradient between backward and optimizer (page-locked) */
    OffloadPlacement place;  /* where the blocks live (train_memory_place; else every block on the device) */
    size_t disk_bytes;       /* the block store file */
} MemPlan;

/* param/act: the backend's dtypes; device_workspace: the CUDA backend's fixed
 * workspaces (cuBLASLt, reductions) are counted. */
void train_memory_plan(const TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                       MemPlan *out);
/* The plan with the blocks placed (offload/block_store.h) under a device cap (0: none) and a page-locked
 * host room (the homes get what the offloaded activations, moments and lm_head's gradient leave of it):
 * --offload none keeps train_memory_plan's; otherwise blocks that do not fit beside everything else
 * stream through slots, their weights counted where they live. homes (num_layers entries) may be NULL.
 * -1 with a message naming what to change when no placement fits. */
int train_memory_place(const TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                       size_t cap, size_t host_room, MemPlan *out, BlockHome *homes, OwError *err);
/* The host room of a run: --host-mem, else what offload_default_host_room gives. */
size_t train_host_room(const TrainConfig *c);
/* The largest batch size <= max_batch whose plan fits in cap bytes (0 if none). */
int64_t train_memory_largest_batch(const TrainConfig *c, const ModelConfig *mc, DType param, DType act,
                                   int device_workspace, size_t cap, int64_t max_batch);
/* "weights 12.55 GiB, grads ...; total ..." */
void memplan_format(const MemPlan *p, char *buf, size_t cap);

#endif

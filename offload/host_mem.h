/* host_mem.h: the one accounting of a run's host memory by kind, with a cap
 * on its page-locked part, as core/memstats.h is for the device.
 *
 * Every large host buffer of a run is allocated and freed here: the block
 * store's host homes and staging buffers, the offloaded block inputs (the
 * activation ring's host side), lm_head's gradient home, the host-resident
 * AdamW moments and the parked optimizer state of inactive tensors. A run has
 * one HostMem (Model.host: the model owns it, since the store, the activation
 * ring and lm_head's gradient are the model's and the optimizer reaches it
 * through its model); the trainer caps it with --host-mem.
 *
 * Page-locked buffers come from the backend (be->ops->host_alloc: pinned on
 * CUDA, plain memory on the CPU backend, counted the same on both so a cap
 * behaves alike); pageable ones from malloc with their pages touched (a device
 * copy into them then runs at full speed). Both are zeroed.
 *
 * Invariants: current[k] is the sum of the live buffers of kind k, locked[k]
 * that of its page-locked ones; locked_total never passes cap (when cap > 0);
 * a buffer is freed through the HostMem that allocated it, once. */
#ifndef OWLORE_OFFLOAD_HOST_MEM_H
#define OWLORE_OFFLOAD_HOST_MEM_H

#include "backend/backend.h"
#include "core/error.h"

#include <stddef.h>

typedef enum {
    HOST_BLOCK_HOMES = 0,   /* frozen blocks homed in host memory (page-locked) */
    HOST_BLOCK_STAGING = 1, /* the store file's reads on their way up (page-locked), and its write scratch */
    HOST_ACTIVATIONS = 2,   /* offloaded block inputs (page-locked) */
    HOST_MOMENTS = 3,       /* host-resident AdamW moments of the embedding and lm_head (page-locked) */
    HOST_PARKED = 4,        /* parked optimizer state of inactive tensors (pageable) */
    HOST_GRADIENTS = 5,     /* lm_head's gradient between its backward and the optimizer (page-locked) */
    HOST_KIND_COUNT
} HostKind;

/* The kinds' names ("block_homes", ...), indexed by HostKind, ending in NULL (summary.json's keys). */
extern const char *const host_kind_names[];

typedef struct HostMemBuf HostMemBuf; /* a live buffer (private) */

typedef struct HostMem {
    size_t cap;                             /* on locked_total; 0: none */
    size_t current[HOST_KIND_COUNT];        /* live bytes by kind */
    size_t peak[HOST_KIND_COUNT];           /* per-kind peak */
    size_t current_total, peak_total;       /* every kind */
    size_t peak_breakdown[HOST_KIND_COUNT]; /* by kind, at the moment of peak_total */
    size_t locked[HOST_KIND_COUNT];         /* live page-locked bytes by kind */
    size_t locked_total, locked_peak;       /* page-locked bytes (what the cap limits) */
    HostMemBuf *bufs;                       /* the live buffers */
    int nbufs, bufs_cap;
} HostMem;

/* An empty accounting with a cap on the page-locked total (0: none). */
void host_mem_init(HostMem *hm, size_t cap);
/* Forgets the accounting; every buffer must have been freed (checked). */
void host_mem_release(HostMem *hm);
/* Sets the cap (0: none); -1 with the breakdown when the page-locked memory in use passes it already. */
int host_mem_set_cap(HostMem *hm, size_t cap, OwError *err);

/* A zeroed buffer of `bytes` counted as `kind`: page-locked (be->ops->host_alloc) or pageable. NULL with
 * a message when the cap would be passed (the breakdown and what to change) or memory cannot be had;
 * `what` names the buffer. */
void *host_mem_alloc(HostMem *hm, Backend *be, size_t bytes, HostKind kind, int page_locked, const char *what,
                     OwError *err);
/* Frees a buffer of host_mem_alloc (after any copy that uses it); returns its size. NULL is fine (0). */
size_t host_mem_free(HostMem *hm, Backend *be, void *p);

/* "block_homes 1.20 GiB, activations 64.0 MiB; total 1.26 GiB" (kinds of 0 bytes left out; "none" when
 * all are): for the log, and for `owlore plan` with predicted bytes. */
void host_mem_format(const size_t bytes[HOST_KIND_COUNT], char *buf, size_t cap);

#endif

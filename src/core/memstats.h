/* memstats.h: accounting of a backend's memory by kind, with a hard cap.
 *
 * Both backends count every allocation here, so the cap (--gpu-mem) and the
 * breakdown printed when it is exceeded behave the same on CPU and GPU, and
 * `owlore plan` can use the same numbers. */
#ifndef OWLORE_CORE_MEMSTATS_H
#define OWLORE_CORE_MEMSTATS_H

#include "core/error.h"

#include <stddef.h>

typedef enum {
    MEM_WEIGHTS = 0,     /* model parameters */
    MEM_GRADS = 1,       /* parameter gradients */
    MEM_OPTIM = 2,       /* optimizer moments, projectors */
    MEM_ACTIVATIONS = 3, /* forward activations and their gradients */
    MEM_WORKSPACE = 4,   /* library workspaces, scratch */
    MEM_OTHER = 5,
    MEM_KIND_COUNT
} MemKind;

typedef struct MemStats {
    size_t cap; /* 0: no cap */
    size_t current[MEM_KIND_COUNT];
    size_t peak[MEM_KIND_COUNT]; /* per-kind peak */
    size_t current_total;
    size_t peak_total;
    size_t peak_breakdown[MEM_KIND_COUNT]; /* per kind, at the moment of peak_total */
} MemStats;

const char *mem_kind_name(MemKind k);
/* Records an allocation; fails (without recording) when the cap would be exceeded,
 * with a message giving the breakdown and a hint. `what` names the buffer. */
int memstats_add(MemStats *ms, MemKind kind, size_t bytes, const char *what, const char *device, OwError *err);
void memstats_sub(MemStats *ms, MemKind kind, size_t bytes);
/* The peaks start again from what is allocated now. */
void memstats_reset_peak(MemStats *ms);
/* "weights 12.6 GiB, grads ..., total ..." */
void memstats_format(const size_t bytes[MEM_KIND_COUNT], char *buf, size_t cap);

/* Parses "24GiB", "24GB", "512MiB", "1.5G", plain bytes. 0 and -1 on error. */
int parse_size(const char *s, size_t *out);
/* "12.6 GiB" */
const char *format_size(size_t bytes, char *buf, size_t cap);

#endif

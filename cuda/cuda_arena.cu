/* cuda_arena.cu: the capped device arena. The only place that calls
 * cudaMalloc / cudaFree.
 *
 * Memory is obtained from CUDA in segments of max(request, min_segment)
 * bytes (rounded to 2 MiB) while the cap allows (the last segment is cut to
 * what is left under the cap). Inside the segments, blocks are handed out
 * best-fit (the smallest free block that fits; the first such block on
 * ties), split when larger, and merged with free neighbours when released.
 * Every block starts and ends on an ARENA_ALIGN boundary.
 *
 * Invariants: reserved == sum of segment sizes <= cap; each segment's blocks
 * tile it exactly in address order; no two neighbouring blocks are both free.
 * Segments are returned to CUDA only when a new segment would not fit under the
 * cap (entirely free ones then go first) and when the arena is destroyed.
 * arena_reserve takes a known total up front in one segment (a training run's
 * memory plan), so the arena holds no unused segment tails. */
#include "cuda/cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_SEGMENT_GRANULE ((size_t)2 << 20)

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

void arena_init(CudaArena *a, size_t cap, size_t min_segment) {
    memset(a, 0, sizeof *a);
    a->cap = cap;
    a->min_segment = min_segment;
}

static void segment_free(ArenaSegment *s) {
    ArenaBlock *b = s->first;
    while (b) {
        ArenaBlock *n = b->next;
        free(b);
        b = n;
    }
    CUDA_CHECK(cudaFree(s->base));
    free(s);
}

void arena_destroy(CudaArena *a) {
    for (int i = 0; i < a->nsegs; i++) segment_free(a->segs[i]);
    free(a->segs);
    a->segs = NULL;
    a->nsegs = a->segs_cap = 0;
    a->reserved = a->allocated = 0;
}

size_t arena_largest_free(const CudaArena *a) {
    size_t best = 0;
    for (int i = 0; i < a->nsegs; i++)
        for (ArenaBlock *b = a->segs[i]->first; b; b = b->next)
            if (b->free && b->size > best) best = b->size;
    return best;
}

/* Takes `size` bytes from the front of free block b (splitting off the rest). */
static void *block_take(CudaArena *a, ArenaBlock *b, size_t size) {
    OW_CHECK(b->free && b->size >= size);
    if (b->size > size) {
        ArenaBlock *rest = (ArenaBlock *)ow_xcalloc(1, sizeof *rest);
        rest->addr = b->addr + size;
        rest->size = b->size - size;
        rest->free = 1;
        rest->prev = b;
        rest->next = b->next;
        if (b->next) b->next->prev = rest;
        b->next = rest;
        b->size = size;
    }
    b->free = 0;
    a->allocated += size;
    return (void *)b->addr;
}

static ArenaBlock *best_fit(CudaArena *a, size_t size) {
    ArenaBlock *best = NULL;
    for (int i = 0; i < a->nsegs; i++)
        for (ArenaBlock *b = a->segs[i]->first; b; b = b->next)
            if (b->free && b->size >= size && (!best || b->size < best->size)) best = b;
    return best;
}

/* Returns the segments with no used block to CUDA. */
static void release_free_segments(CudaArena *a) {
    int k = 0;
    for (int i = 0; i < a->nsegs; i++) {
        ArenaSegment *s = a->segs[i];
        if (s->first && s->first->free && !s->first->next) {
            a->reserved -= s->size;
            segment_free(s);
        } else {
            a->segs[k++] = s;
        }
    }
    a->nsegs = k;
}

static int add_segment(CudaArena *a, size_t seg_size, OwError *err, const char *what) {
    void *base = NULL;
    cudaError_t e = cudaMalloc(&base, seg_size);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* out-of-memory is not sticky; clear it */
        size_t free_b = 0, total_b = 0;
        (void)cudaMemGetInfo(&free_b, &total_b);
        (void)cudaGetLastError();
        char s1[32], s2[32], s3[32];
        return ow_fail(err,
                       "GPU: cudaMalloc of a %s arena segment for %s failed (%s); the device has %s free of %s "
                       "(hint: another process may be using the GPU; lower --gpu-mem to what is really free)",
                       format_size(seg_size, s1, sizeof s1), what, cudaGetErrorString(e),
                       format_size(free_b, s2, sizeof s2), format_size(total_b, s3, sizeof s3));
    }
    ArenaSegment *s = (ArenaSegment *)ow_xcalloc(1, sizeof *s);
    s->base = base;
    s->size = seg_size;
    ArenaBlock *b = (ArenaBlock *)ow_xcalloc(1, sizeof *b);
    b->addr = (uintptr_t)base;
    b->size = seg_size;
    b->free = 1;
    s->first = b;
    if (a->nsegs == a->segs_cap) {
        a->segs_cap = a->segs_cap ? 2 * a->segs_cap : 16;
        a->segs = (ArenaSegment **)ow_xrealloc(a->segs, (size_t)a->segs_cap * sizeof *a->segs);
    }
    a->segs[a->nsegs++] = s;
    a->reserved += seg_size;
    if (a->reserved > a->peak_reserved) a->peak_reserved = a->reserved;
    return 0;
}

int arena_alloc(CudaArena *a, size_t bytes, void **out, size_t *size_out, const char *what, OwError *err) {
    *out = NULL;
    size_t size = round_up(bytes ? bytes : 1, ARENA_ALIGN);
    ArenaBlock *b = best_fit(a, size);
    if (!b) {
        if (a->reserved + size > a->cap) release_free_segments(a);
        size_t room = a->cap > a->reserved ? a->cap - a->reserved : 0;
        if (room < size) {
            char s1[32], s2[32], s3[32], s4[32];
            return ow_fail(err,
                           "GPU arena: cannot place %s for %s: the arena holds %s of its cap %s and its largest free "
                           "block is %s (fragmentation) (hint: raise --gpu-mem or lower the batch size)",
                           format_size(size, s1, sizeof s1), what, format_size(a->reserved, s2, sizeof s2),
                           format_size(a->cap, s3, sizeof s3), format_size(arena_largest_free(a), s4, sizeof s4));
        }
        size_t seg = round_up(size > a->min_segment ? size : a->min_segment, ARENA_SEGMENT_GRANULE);
        if (seg > room) seg = room; /* room >= size, and both are multiples of ARENA_ALIGN */
        seg = seg / ARENA_ALIGN * ARENA_ALIGN;
        if (add_segment(a, seg, err, what) != 0) {
            if (seg == size) return -1;
            /* maybe the device cannot give the whole segment: try the exact size */
            if (add_segment(a, size, err, what) != 0) return -1;
        }
        b = a->segs[a->nsegs - 1]->first;
        OW_CHECK(b->free && b->size >= size);
    }
    *out = block_take(a, b, size);
    *size_out = size;
    return 0;
}

int arena_reserve(CudaArena *a, size_t bytes, OwError *err) {
    size_t have = a->reserved - a->allocated, room = a->cap > a->reserved ? a->cap - a->reserved : 0;
    if (bytes > have) {
        size_t seg = round_up(bytes - have, ARENA_SEGMENT_GRANULE);
        if (seg > room) seg = room / ARENA_ALIGN * ARENA_ALIGN;
        if (seg > 0 && add_segment(a, seg, err, "the run's planned memory") != 0) return -1;
    }
    a->min_segment = 0;
    return 0;
}

size_t arena_free(CudaArena *a, void *p) {
    uintptr_t addr = (uintptr_t)p;
    for (int i = 0; i < a->nsegs; i++) {
        ArenaSegment *s = a->segs[i];
        if (addr < (uintptr_t)s->base || addr >= (uintptr_t)s->base + s->size) continue;
        for (ArenaBlock *b = s->first; b; b = b->next) {
            if (b->addr != addr) continue;
            OW_CHECKF(!b->free, "arena: double free of %p", p);
            size_t size = b->size;
            b->free = 1;
            a->allocated -= size;
            ArenaBlock *n = b->next;
            if (n && n->free) { /* merge the next block into b */
                b->size += n->size;
                b->next = n->next;
                if (n->next) n->next->prev = b;
                free(n);
            }
            ArenaBlock *pv = b->prev;
            if (pv && pv->free) { /* merge b into the previous block */
                pv->size += b->size;
                pv->next = b->next;
                if (b->next) b->next->prev = pv;
                free(b);
            }
            return size;
        }
        break;
    }
    ow_check_failed(__FILE__, __LINE__, "arena_free", "pointer %p was not allocated by the arena", p);
}

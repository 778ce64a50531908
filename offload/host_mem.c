/* host_mem.c: see host_mem.h. */
#include "offload/host_mem.h"

#include "core/memstats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct HostMemBuf {
    void *p;
    size_t bytes;
    HostKind kind;
    int locked;
};

const char *const host_kind_names[] = {"block_homes", "block_staging", "activations", "moments",
                                       "parked",      "gradients",     NULL};

/* What frees page-locked memory of each kind (the cap's hint); kinds sharing a hint share its pointer. */
static const char k_optimizer_hint[] =
    "--offload-optimizer off keeps the embedding's and lm_head's moments and lm_head's gradient on the device";
static const char *const k_hints[HOST_KIND_COUNT] = {
    [HOST_BLOCK_HOMES] = "--nvme-dir DIR keeps frozen blocks in a store file instead",
    [HOST_BLOCK_STAGING] = "fewer --stream-slots (a staging buffer each)",
    [HOST_ACTIVATIONS] = "--offload-activations off keeps the block inputs on the device",
    [HOST_MOMENTS] = k_optimizer_hint,
    [HOST_GRADIENTS] = k_optimizer_hint,
};

void host_mem_init(HostMem *hm, size_t cap) {
    memset(hm, 0, sizeof *hm);
    hm->cap = cap;
}

void host_mem_release(HostMem *hm) {
    OW_CHECKF(hm->nbufs == 0, "%d host buffers (%zu bytes) outlive their accounting", hm->nbufs, hm->current_total);
    free(hm->bufs);
    memset(hm, 0, sizeof *hm);
}

void host_mem_format(const size_t bytes[HOST_KIND_COUNT], char *buf, size_t cap) {
    size_t off = 0, total = 0;
    char tmp[32];
    buf[0] = '\0';
    for (int k = 0; k < HOST_KIND_COUNT && off < cap; k++) {
        if (!bytes[k]) continue;
        off += (size_t)snprintf(buf + off, cap - off, "%s%s %s", total ? ", " : "", host_kind_names[k],
                                format_size(bytes[k], tmp, sizeof tmp));
        total += bytes[k];
    }
    if (!total)
        snprintf(buf, cap, "none");
    else if (off < cap)
        snprintf(buf + off, cap - off, "; total %s", format_size(total, tmp, sizeof tmp));
}

/* The cap's refusal: `head` says what would pass it; the breakdown of the page-locked memory in use and a
 * hint for each kind in use or asked for (kind < 0: none asked for). */
static int cap_fail(const HostMem *hm, size_t cap, int kind, const char *head, OwError *err) {
    char cur[512], c[32], hint[1024];
    host_mem_format(hm->locked, cur, sizeof cur);
    size_t off = (size_t)snprintf(hint, sizeof hint, "raise --host-mem if the host has more");
    for (int k = 0; k < HOST_KIND_COUNT; k++) {
        if (!k_hints[k] || (!hm->locked[k] && k != kind)) continue;
        int said = 0; /* kinds sharing a hint give it once */
        for (int j = 0; j < k; j++) said |= k_hints[j] == k_hints[k] && (hm->locked[j] || j == kind);
        if (!said && off < sizeof hint) off += (size_t)snprintf(hint + off, sizeof hint - off, "; %s", k_hints[k]);
    }
    return ow_fail(err,
                   "%s the page-locked host memory cap of %s (--host-mem).\n"
                   "  page-locked in use now: %s\n"
                   "  hint: %s",
                   head, format_size(cap, c, sizeof c), cur, hint);
}

int host_mem_set_cap(HostMem *hm, size_t cap, OwError *err) {
    if (cap && hm->locked_total > cap) {
        char a[32], head[96];
        snprintf(head, sizeof head, "%s in use passes", format_size(hm->locked_total, a, sizeof a));
        return cap_fail(hm, cap, -1, head, err);
    }
    hm->cap = cap;
    return 0;
}

void *host_mem_alloc(HostMem *hm, Backend *be, size_t bytes, HostKind kind, int page_locked, const char *what,
                     OwError *err) {
    OW_CHECK(kind >= 0 && kind < HOST_KIND_COUNT);
    if (page_locked && hm->cap && hm->locked_total + bytes > hm->cap) {
        char a[32], head[512];
        snprintf(head, sizeof head, "allocating %s for %s (%s) would pass", format_size(bytes, a, sizeof a), what,
                 host_kind_names[kind]);
        cap_fail(hm, hm->cap, (int)kind, head, err);
        return NULL;
    }
    void *p = page_locked ? be->ops->host_alloc(be, bytes, err) : ow_try_malloc_touched(bytes, what, err);
    if (!p) return NULL;
    if (hm->nbufs == hm->bufs_cap) {
        hm->bufs_cap = hm->bufs_cap ? 2 * hm->bufs_cap : 16;
        hm->bufs = ow_xrealloc(hm->bufs, (size_t)hm->bufs_cap * sizeof *hm->bufs);
    }
    hm->bufs[hm->nbufs++] = (HostMemBuf){.p = p, .bytes = bytes, .kind = kind, .locked = page_locked != 0};
    hm->current[kind] += bytes;
    hm->current_total += bytes;
    if (hm->current[kind] > hm->peak[kind]) hm->peak[kind] = hm->current[kind];
    if (hm->current_total > hm->peak_total) {
        hm->peak_total = hm->current_total;
        memcpy(hm->peak_breakdown, hm->current, sizeof hm->current);
    }
    if (page_locked) {
        hm->locked[kind] += bytes;
        hm->locked_total += bytes;
        if (hm->locked_total > hm->locked_peak) hm->locked_peak = hm->locked_total;
    }
    return p;
}

size_t host_mem_free(HostMem *hm, Backend *be, void *p) {
    if (!p) return 0;
    int i = hm->nbufs - 1; /* the latest first: buffers tend to go in the reverse order of their making */
    while (i >= 0 && hm->bufs[i].p != p) i--;
    OW_CHECKF(i >= 0, "a host buffer freed that this accounting did not allocate (or freed twice)");
    HostMemBuf b = hm->bufs[i];
    hm->bufs[i] = hm->bufs[--hm->nbufs];
    hm->current[b.kind] -= b.bytes;
    hm->current_total -= b.bytes;
    if (b.locked) {
        hm->locked[b.kind] -= b.bytes;
        hm->locked_total -= b.bytes;
        be->ops->host_free(be, p);
    } else {
        free(p);
    }
    return b.bytes;
}

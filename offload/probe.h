/* probe.h: `owlore probe`, the measured bandwidths the offload engine's cost
 * model needs (issue 14), in a few seconds, cached per device and store disk.
 *
 *   h2d_gbps, d2h_gbps  page-locked host <-> device copies: be->ops->host_alloc
 *                       buffers, copy_from_host / copy_to_host, timed around
 *                       be->ops->sync (on the CPU backend: memcpy)
 *   disk_gbps           a store file's blocks read through block_io.h, the path
 *                       training uses (O_DIRECT and io_uring where they are
 *                       allowed), several reads in flight, each block copied out
 *                       and checked against its xxh64 as training does
 *   gemm_tflops         C = A B^T at n x n x n through be->ops->matmul, in bf16
 *                       (F32 on a backend without caps.bf16)
 * GB/s are 1e9 bytes per second; TFLOP/s count 2 n^3 per GEMM. A copy or GEMM
 * figure is the rate of one timed batch after a warm-up (batches double until one
 * lasts 0.1 s, 0.02 s on the CPU), what the device sustains, not a first touch;
 * the disk's is one pass over a file that is not in the page cache.
 *
 * The disk is measured with a temporary store file ".owlore-probe-<pid>.store"
 * of random bytes (nothing compresses) written in the directory, dropped from
 * the page cache after its fsync, unlinked once its readers have it open, and
 * read once; it is removed on every path, and a probe's file left by a killed
 * process (a dead pid) is removed by the next probe of that directory.
 *
 * The cache: probe_cache_path's JSON file holds one entry per (device,
 * disk_dir), with the figures of probe_run; probe_get answers from it, and
 * measures and saves (atomically, other entries kept) when asked to refresh or
 * when no entry matches. A cache it cannot read is ignored with a warning and
 * rewritten. Two processes saving at once may drop one of their new entries
 * (the last rename wins): a lost entry is measured again on next use. */
#ifndef OWLORE_OFFLOAD_PROBE_H
#define OWLORE_OFFLOAD_PROBE_H

#include "backend/backend.h"
#include "core/error.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ProbeResult {
    char device[96];           /* what was measured: "cuda: NVIDIA H200", "cpu" (probe_device_label) */
    double h2d_gbps, d2h_gbps; /* page-locked host <-> device copies */
    double disk_gbps;          /* store-file reads through block_io.h; 0 when no directory */
    int disk_direct;           /* 1 if those reads were O_DIRECT */
    char disk_path[16];        /* "io_uring" or "threads" (block_io_path_name); "" when no directory */
    char disk_dir[512];        /* the directory measured, resolved (realpath); "" when none */
    double gemm_tflops;        /* GEMM throughput in gemm_dtype */
    char gemm_dtype[8];        /* "BF16" or "F32" (dtype_name) */
    int64_t gemm_n;            /* the GEMM's n */
    double seconds;            /* the probe's own duration */
    int cached;                /* set by probe_get: 1 when the figures came from the cache */
} ProbeResult;

/* Sizes of the measurements; 0 takes the default of the backend: with
 * caps.device_memory 512 MiB copies, a 2 GiB store file and n = 8192; without
 * (the CPU) 32 MiB, 64 MiB and n = 256, so a CPU probe is quick. */
typedef struct ProbeOptions {
    size_t copy_bytes;
    size_t disk_bytes;
    int64_t gemm_n;
} ProbeOptions;

/* Measures everything on be (opt may be NULL: defaults); disk_dir NULL or "" skips the disk.
 * Its device buffers (copy_bytes, and three n x n GEMM operands: 896 MiB by default on a GPU)
 * are released, but count in be's peak memory figures, and the CUDA arena keeps their segments
 * until it needs the room: probe on a backend of its own, or before a run's reserve.
 * A missing, non-directory or unwritable disk_dir, or one too full for the store file, fails
 * before anything else is measured, naming the directory with a hint. */
int probe_run(Backend *be, const char *disk_dir, const ProbeOptions *opt, ProbeResult *out, OwError *err);

/* The cached figures of be's device and disk_dir (resolved as probe_run does), or, when
 * refresh != 0 or none are cached, probe_run's with default options, saved in the cache.
 * out->cached says which. A cache that cannot be written is a warning, not an error. */
int probe_get(Backend *be, const char *disk_dir, int refresh, ProbeResult *out, OwError *err);

/* $XDG_CACHE_HOME/owlore/probe.json (when set to an absolute path), else
 * $HOME/.cache/owlore/probe.json; -1 with a message when neither is set. */
int probe_cache_path(char *buf, size_t cap, OwError *err);

/* be's device as a cache key: "<backend>: <device name>", or the backend name alone
 * where the device name is the same (the CPU: "cpu"). */
void probe_device_label(const Backend *be, char *buf, size_t cap);

/* The result as one JSON object (plain cJSON numbers, strings, bools), keys as the field
 * names, cached included. */
cJSON *probe_result_json(const ProbeResult *r);
/* Cached figures without measuring (for `owlore plan`, which has no device): the entry of the first device
 * whose label starts with device_prefix (e.g. "cuda:"), the one measured with disk_dir preferred; an entry
 * of another directory comes with disk_gbps 0. 1 found, 0 none. */
int probe_cached(const char *device_prefix, const char *disk_dir, ProbeResult *out);

#endif

/* block_store.h: the homes of a model's blocks and their trips to the device
 * (issue 14's offload engine). The store takes bytes and device tensors; it
 * never knows what a block holds (the model lays its tensors out in a block's
 * bytes).
 *
 * Every block has one home, chosen before training (offload_place below):
 *   device  a device buffer of its own for the whole run;
 *   host    page-locked host memory (host_mem_alloc), copied up on the
 *           backend's copy queue;
 *   disk    a record of the store file (store_file.h) read with block_io.h
 *           into a page-locked staging buffer, then copied up.
 * Blocks that are not on the device reach it in one of two ways:
 *   streamed  into one of `stream_slots` device slots, by block_store_acquire
 *             (the compute waits for the copy) or ahead of time by
 *             block_store_prefetch (the copy runs beside the compute). A slot
 *             keeps its block until another one needs it, so a block used at
 *             the end of the forward is not fetched again at the start of the
 *             backward.
 *   pinned    (block_store_pin: a trained block) into one of `pin_slots`
 *             device buffers until block_store_unpin copies its bytes back to
 *             its home (download, or a checksummed write to the store file).
 * Streamed blocks are read-only: a slot is never copied back.
 *
 * Ordering: a copy into a slot is queued after the compute work queued so
 * far (copy_from_host's rule), so a block released before a prefetch is no
 * longer read when its slot is overwritten; acquire makes the compute wait
 * for the slot's copy. A staging buffer is reused only after the host has
 * waited for its last copy (copy_sync).
 *
 * Filling (setup): block_store_stage(i) gives a device buffer for block i
 * (its own, or a slot), the caller writes the block there (upload, random
 * init, a checkpoint's tensors), and block_store_commit(i) copies it home. The
 * disk home is written as a new store file during setup (block_store_seal
 * commits it) unless an identical one can be reused (block_store_disk_valid);
 * a new store file takes every block, whatever its home (each block is
 * committed once during setup).
 *
 * Test hook: OWLORE_TEST_FAIL_DISK_READ=N makes the Nth read of a block from the store file fail as an
 * I/O error would (a run's reaction to a failing disk is tested with it).
 *
 * Invariants: at most one acquired (busy) slot per block; a block is pinned in
 * at most one pin buffer; bytes of a block are identical in every home and
 * slot (commit/unpin are the only writers of homes). */
#ifndef OWLORE_OFFLOAD_BLOCK_STORE_H
#define OWLORE_OFFLOAD_BLOCK_STORE_H

#include "backend/backend.h"
#include "core/error.h"
#include "offload/host_mem.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { BLOCK_HOME_DEVICE = 0, BLOCK_HOME_HOST = 1, BLOCK_HOME_DISK = 2 } BlockHome;
extern const char *const block_home_names[]; /* "device", "host", "disk", NULL */

typedef enum {
    OFFLOAD_MODE_AUTO = 0,
    OFFLOAD_MODE_NONE = 1,
    OFFLOAD_MODE_HOST = 2,
    OFFLOAD_MODE_NVME = 3
} OffloadPlaceMode;
extern const char *const offload_mode_names[]; /* "auto", "none", "host", "nvme", NULL */

typedef struct BlockStoreConfig {
    int n_blocks;
    size_t block_bytes;     /* every block's size (a multiple of 256) */
    const BlockHome *homes; /* n_blocks entries */
    int stream_slots;       /* device slots of streamed blocks (>= 2 when a block is not on the device) */
    int pin_slots;          /* device buffers of pinned blocks whose home is not the device */
    const char *store_path; /* the store file when a home is disk, else NULL */
    uint64_t source_hash;   /* names the weights the store file holds (store_file.h) */
    int io_refuse_uring;    /* tests: block_io's refuse_uring_errno */
    HostMem *host;          /* counts (and caps) the host homes, staging buffers and write scratch */
} BlockStoreConfig;

typedef struct BlockStore BlockStore;

/* Counters of a run, for the log and summary.json. */
typedef struct BlockStoreStats {
    int64_t fetches;          /* copies of a block into a slot */
    int64_t hits;             /* acquires that found the block in a slot already */
    int64_t disk_reads;       /* blocks read from the store file */
    int64_t writebacks;       /* pinned blocks copied back to their home */
    int64_t store_writes;     /* setup: blocks written into the store file (all when it is new; those a training
                                 run wrote back when it is reused) */
    double disk_read_seconds; /* host time spent waiting for store reads */
    size_t bytes_up;          /* bytes copied host -> device */
    size_t bytes_disk;        /* bytes read from the store file */
} BlockStoreStats;

/* Allocates the device buffers (MEM_WEIGHTS) and host homes (in cfg->host, which must outlive the store);
 * opens the store file when it can be reused. */
int block_store_create(Backend *be, const BlockStoreConfig *cfg, BlockStore **out, OwError *err);
/* Waits for every copy, frees everything, closes the store file. NULL is fine. */
void block_store_free(BlockStore *bs);

BlockHome block_store_home(const BlockStore *bs, int i);
/* Whether block i comes through a slot (not on the device, not pinned). */
int block_store_streams(const BlockStore *bs, int i);
int block_store_stream_slots(const BlockStore *bs);
/* Whether block i's home is the disk and already holds its bytes (a reused store file): staging it reads
 * them. A reused store also holds the blocks of other homes, but those homes are filled by the caller. */
int block_store_disk_valid(const BlockStore *bs, int i);
/* The store file's reader's path ("io_uring (O_DIRECT)", ...), or "" without a disk home. */
const char *block_store_io_describe(const BlockStore *bs);
void block_store_stats(const BlockStore *bs, BlockStoreStats *out);
/* Host bytes of the host homes, staging buffers included. */
size_t block_store_host_bytes(const BlockStore *bs);

/* ---- setup ---- */
/* A device buffer (U8 [block_bytes]) holding block i for writing: its own, its pin buffer, or a slot
 * (filled from its home when the disk home is valid, else left as it is). Commit or release it next. */
int block_store_stage(BlockStore *bs, int i, Tensor *out, OwError *err);
/* Copies staged (or pinned) block i's device bytes to its home (a no-op for the device home). */
int block_store_commit(BlockStore *bs, int i, OwError *err);
/* Every block committed: the store file being written is finished and opened for reads. */
int block_store_seal(BlockStore *bs, OwError *err);

/* ---- training ---- */
/* Block i on the device for the compute queued next: *out is its buffer. Until block_store_release,
 * its slot is not reused. */
int block_store_acquire(BlockStore *bs, int i, Tensor *out, OwError *err);
void block_store_release(BlockStore *bs, int i);
/* Starts copying block i into a free slot (not busy, not holding a block prefetched since the last
 * acquire); nothing when it is on the device already or no slot is free. */
int block_store_prefetch(BlockStore *bs, int i, OwError *err);
/* Block i stays on the device (a trained block) until unpinned: *out is its buffer. */
int block_store_pin(BlockStore *bs, int i, Tensor *out, OwError *err);
/* Copies pinned block i back to its home (waits for the compute queued so far) and frees its buffer. */
int block_store_unpin(BlockStore *bs, int i, OwError *err);

/* ---- placement ---- */
typedef struct OffloadRequest {
    OffloadPlaceMode mode;
    int n_blocks;
    size_t block_bytes;
    int pinned;         /* blocks trained at once (pin buffers needed when streaming) */
    int stream_slots;   /* slots when streaming (>= 2) */
    size_t device_room; /* device bytes left for blocks after everything else (SIZE_MAX: no cap) */
    size_t host_room;   /* page-locked host bytes the homes may take */
    int have_disk;      /* a store directory was given */
} OffloadRequest;

typedef struct OffloadPlacement {
    int streaming; /* some block is not on the device */
    int n_device, n_host, n_disk;
    int stream_slots, pin_slots;
    size_t device_bytes; /* device bytes of blocks: own buffers, slots, pin buffers */
    size_t host_bytes;   /* page-locked host homes and staging buffers */
    size_t disk_bytes;   /* the store file (every block, when any is on disk) */
} OffloadPlacement;

/* Chooses the homes (homes[n_blocks]): device while room lasts (none: all), then host up to host_room,
 * the rest on disk; the device-resident blocks spread evenly over the depth. -1 with a message naming
 * what to change when the blocks cannot fit (device too small even streaming, no --nvme-dir, ...). */
int offload_place(const OffloadRequest *r, BlockHome *homes, OffloadPlacement *out, OwError *err);
/* "27 streamed (3 slots): 24 host, 3 disk; 5 device" style summary. */
void offload_placement_format(const OffloadPlacement *p, char *buf, size_t cap);
/* Page-locked host memory a run may take by default: MemAvailable minus a margin (0 when unknown). */
size_t offload_default_host_room(void);

#endif

/* block_store.c: see block_store.h. */
#include "offload/block_store.h"

#include "core/fileio.h"
#include "core/log.h"
#include "offload/block_io.h"
#include "offload/store_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const block_home_names[] = {"device", "host", "disk", NULL};
const char *const offload_mode_names[] = {"auto", "none", "host", "nvme", NULL};

typedef struct {
    Tensor buf;        /* U8 [block_bytes] on the device */
    int block;         /* the block it holds, -1 none */
    int busy;          /* acquired, not released */
    int wanted;        /* prefetched since the last acquire */
    int ticket;        /* the last copy into it */
    int stage_ticket;  /* the last copy out of its staging buffer (disk homes) */
    uint64_t last_use; /* release clock, for the least recently used choice */
} Slot;

struct BlockStore {
    Backend *be;
    BlockStoreConfig cfg;
    BlockHome *homes;
    Tensor *own;             /* device-home blocks' buffers (data NULL for others) */
    unsigned char **host;    /* host-home blocks' page-locked bytes (NULL for others) */
    unsigned char *host_mem; /* one buffer (HOST_BLOCK_HOMES) holding every host home */
    Slot *slots;
    unsigned char **staging; /* disk homes: a page-locked staging buffer per slot */
    Tensor *pins;            /* pin_slots buffers */
    int *pin_of;             /* per block: its pin buffer, -1 none (device-home blocks pin in place: -2) */
    int *pin_used;           /* per pin buffer: the block, -1 free */
    int staged;              /* block_store_stage's slot holds a block for writing: its index, else -1 */
    uint64_t clock;
    /* disk */
    StoreWriter writer;
    int writing;   /* the store file is being written (setup) */
    int restoring; /* setup of a reused store: disk homes committed now take the source's bytes back */
    StoreFile sf;
    int sf_open;
    BlockIo *io;
    unsigned char *disk_valid; /* per block: the disk home holds it */
    unsigned char *scratch;    /* host bytes of a commit to disk */
    int64_t fail_read_at;      /* tests: the disk read that fails (OWLORE_TEST_FAIL_DISK_READ), 0 none */
    BlockStoreStats stats;
};

/* ---- small helpers ---- */

static int any_home(const BlockStoreConfig *c, const BlockHome *homes, BlockHome h) {
    for (int i = 0; i < c->n_blocks; i++)
        if (homes[i] == h) return 1;
    return 0;
}

BlockHome block_store_home(const BlockStore *bs, int i) {
    OW_CHECK(i >= 0 && i < bs->cfg.n_blocks);
    return bs->homes[i];
}

int block_store_streams(const BlockStore *bs, int i) {
    return block_store_home(bs, i) != BLOCK_HOME_DEVICE && bs->pin_of[i] < 0;
}

int block_store_stream_slots(const BlockStore *bs) { return bs->cfg.stream_slots; }
int block_store_disk_valid(const BlockStore *bs, int i) {
    return bs->homes[i] == BLOCK_HOME_DISK && bs->disk_valid && bs->disk_valid[i];
}
const char *block_store_io_describe(const BlockStore *bs) { return bs->io ? block_io_describe(bs->io) : ""; }
void block_store_stats(const BlockStore *bs, BlockStoreStats *out) { *out = bs->stats; }

size_t block_store_host_bytes(const BlockStore *bs) {
    size_t n = 0;
    for (int i = 0; i < bs->cfg.n_blocks; i++) n += bs->homes[i] == BLOCK_HOME_HOST;
    return (n + (bs->staging ? (size_t)bs->cfg.stream_slots : 0)) * bs->cfg.block_bytes;
}

static Tensor block_desc(const BlockStore *bs) { return tensor_1d(OW_U8, (int64_t)bs->cfg.block_bytes); }

static int alloc_dev(BlockStore *bs, Tensor *t, const char *what, OwError *err) {
    *t = block_desc(bs);
    return be_alloc(bs->be, t, MEM_WEIGHTS, what, err);
}

/* ---- lifetime ---- */

static uint64_t *block_sizes(const BlockStore *bs) {
    uint64_t *sizes = ow_xmalloc((size_t)bs->cfg.n_blocks * sizeof *sizes);
    for (int i = 0; i < bs->cfg.n_blocks; i++) sizes[i] = bs->cfg.block_bytes;
    return sizes;
}

/* The store file: reused when it holds these blocks for this source, else written anew during setup. */
static int disk_open(BlockStore *bs, OwError *err) {
    const BlockStoreConfig *c = &bs->cfg;
    int n = c->n_blocks;
    bs->disk_valid = ow_xcalloc((size_t)n, 1);
    bs->scratch =
        host_mem_alloc(c->host, bs->be, c->block_bytes, HOST_BLOCK_STAGING, 0, "the block store's write scratch", err);
    if (!bs->scratch) return -1;
    uint64_t *sizes = block_sizes(bs);
    OwError why = {0};
    int reuse = store_file_reusable(c->store_path, c->source_hash, n, sizes, bs->disk_valid, &why);
    int rc = 0;
    if (reuse == 1) {
        int back = 0; /* blocks a training run wrote back: the loader writes the source's bytes into those */
        for (int i = 0; i < n; i++) back += bs->homes[i] == BLOCK_HOME_DISK && !bs->disk_valid[i];
        if (back)
            OW_INFO("%s: reusing the block store (same source weights); writing again the %d block%s a training run "
                    "wrote back",
                    c->store_path, back, back == 1 ? "" : "s");
        else
            OW_INFO("%s: reusing the block store (same source weights)", c->store_path);
        rc = store_file_open_rw(&bs->sf, c->store_path, c->source_hash, err);
        bs->sf_open = rc == 0;
        bs->restoring = rc == 0;
    } else {
        memset(bs->disk_valid, 0, (size_t)n);
        if (ow_path_exists(c->store_path))
            OW_INFO("writing the block store again (%s)", why.msg);
        else
            OW_INFO("%s: writing the block store (none there yet)", c->store_path);
        rc = store_writer_begin(&bs->writer, c->store_path, c->source_hash, n, sizes, err);
        bs->writing = rc == 0;
    }
    free(sizes);
    if (rc != 0) return -1;
    BlockIoOptions o = {.slots = c->stream_slots, .refuse_uring_errno = c->io_refuse_uring};
    if (bs->sf_open && block_io_open(&bs->io, &bs->sf, &o, err) != 0) return -1;
    return 0;
}

static int alloc_homes(BlockStore *bs, OwError *err) {
    const BlockStoreConfig *c = &bs->cfg;
    Backend *be = bs->be;
    size_t nhost = 0;
    for (int i = 0; i < c->n_blocks; i++) {
        if (bs->homes[i] == BLOCK_HOME_DEVICE) {
            char what[64];
            snprintf(what, sizeof what, "block %d (device home)", i);
            if (alloc_dev(bs, &bs->own[i], what, err) != 0) return -1;
        }
        nhost += bs->homes[i] == BLOCK_HOME_HOST;
    }
    if (nhost) {
        bs->host_mem = host_mem_alloc(c->host, be, nhost * c->block_bytes, HOST_BLOCK_HOMES, 1,
                                      "the host homes of frozen blocks", err);
        if (!bs->host_mem) return ow_fail_prefix(err, "the host homes of %zu blocks (hint: --host-mem)", nhost);
        size_t k = 0;
        for (int i = 0; i < c->n_blocks; i++)
            if (bs->homes[i] == BLOCK_HOME_HOST) bs->host[i] = bs->host_mem + k++ * c->block_bytes;
    }
    for (int s = 0; s < c->stream_slots; s++) {
        bs->slots[s] = (Slot){.block = -1, .ticket = -1, .stage_ticket = -1};
        if (alloc_dev(bs, &bs->slots[s].buf, "streaming slot of a frozen block", err) != 0) return -1;
        if (bs->staging) {
            bs->staging[s] = host_mem_alloc(c->host, be, c->block_bytes, HOST_BLOCK_STAGING, 1,
                                            "a staging buffer of the block store", err);
            if (!bs->staging[s]) return ow_fail_prefix(err, "a staging buffer of the block store");
        }
    }
    for (int p = 0; p < c->pin_slots; p++) {
        bs->pin_used[p] = -1;
        if (alloc_dev(bs, &bs->pins[p], "trained block (pinned)", err) != 0) return -1;
    }
    return 0;
}

int block_store_create(Backend *be, const BlockStoreConfig *cfg, BlockStore **out, OwError *err) {
    *out = NULL;
    OW_CHECK(cfg->n_blocks > 0 && cfg->block_bytes > 0 && cfg->block_bytes % 256 == 0 && cfg->host);
    BlockStore *bs = ow_xcalloc(1, sizeof *bs);
    bs->be = be;
    bs->cfg = *cfg;
    int n = cfg->n_blocks;
    bs->homes = ow_xmalloc((size_t)n * sizeof *bs->homes);
    memcpy(bs->homes, cfg->homes, (size_t)n * sizeof *bs->homes);
    bs->cfg.homes = bs->homes;
    int streaming = !(any_home(cfg, bs->homes, BLOCK_HOME_HOST) == 0 && any_home(cfg, bs->homes, BLOCK_HOME_DISK) == 0);
    if (!streaming) bs->cfg.stream_slots = bs->cfg.pin_slots = 0;
    OW_CHECK(!streaming || bs->cfg.stream_slots >= 1);
    int disk = any_home(cfg, bs->homes, BLOCK_HOME_DISK);
    OW_CHECK(!disk || cfg->store_path);
    bs->cfg.store_path = disk ? ow_xstrdup(cfg->store_path) : NULL;
    bs->own = ow_xcalloc((size_t)n, sizeof(Tensor));
    bs->host = ow_xcalloc((size_t)n, sizeof(unsigned char *));
    bs->slots = ow_xcalloc((size_t)bs->cfg.stream_slots + 1, sizeof(Slot));
    if (disk) bs->staging = ow_xcalloc((size_t)bs->cfg.stream_slots, sizeof(unsigned char *));
    bs->pins = ow_xcalloc((size_t)bs->cfg.pin_slots + 1, sizeof(Tensor));
    bs->pin_used = ow_xcalloc((size_t)bs->cfg.pin_slots + 1, sizeof(int));
    bs->pin_of = ow_xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) bs->pin_of[i] = -1;
    bs->staged = -1;
    const char *fail = getenv("OWLORE_TEST_FAIL_DISK_READ"); /* test hook, see block_store.h */
    bs->fail_read_at = fail ? atoll(fail) : 0;
    if (alloc_homes(bs, err) != 0 || (disk && disk_open(bs, err) != 0)) {
        block_store_free(bs);
        return -1;
    }
    *out = bs;
    return 0;
}

void block_store_free(BlockStore *bs) {
    if (!bs) return;
    Backend *be = bs->be;
    be->ops->sync(be);
    block_io_close(bs->io);
    if (bs->sf_open) store_file_close(&bs->sf);
    if (bs->writing) store_writer_abort(&bs->writer);
    for (int i = 0; i < bs->cfg.n_blocks; i++) be_release(be, &bs->own[i], MEM_WEIGHTS);
    for (int s = 0; s < bs->cfg.stream_slots; s++) {
        be_release(be, &bs->slots[s].buf, MEM_WEIGHTS);
        if (bs->staging) host_mem_free(bs->cfg.host, be, bs->staging[s]);
    }
    for (int p = 0; p < bs->cfg.pin_slots; p++) be_release(be, &bs->pins[p], MEM_WEIGHTS);
    host_mem_free(bs->cfg.host, be, bs->host_mem);
    free((char *)bs->cfg.store_path);
    free(bs->homes);
    free(bs->own);
    free(bs->host);
    free(bs->slots);
    free(bs->staging);
    free(bs->pins);
    free(bs->pin_used);
    free(bs->pin_of);
    free(bs->disk_valid);
    host_mem_free(bs->cfg.host, be, bs->scratch);
    free(bs);
}

/* ---- copies into the device ---- */

/* Reads block i from the store file into host memory dst (page-locked for a copy up). */
static int disk_read(BlockStore *bs, int i, void *dst, OwError *err) {
    OW_CHECKF(bs->io && bs->disk_valid[i], "block %d is read from a store file that does not hold it", i);
    if (bs->fail_read_at && bs->stats.disk_reads + 1 == bs->fail_read_at)
        return ow_fail(err, "%s: block %d: read error (injected by OWLORE_TEST_FAIL_DISK_READ)", bs->cfg.store_path, i);
    double t0 = ow_now();
    BlockIoTicket t = block_io_submit(bs->io, i, dst);
    int rc = block_io_wait(bs->io, t, err);
    bs->stats.disk_read_seconds += ow_now() - t0;
    if (rc != 0) return ow_fail_prefix(err, "reading frozen block %d from the block store", i);
    bs->stats.disk_reads++;
    bs->stats.bytes_disk += bs->cfg.block_bytes;
    return 0;
}

/* Queues the copy of block i from its home into slot s (after the compute queued so far). */
static int fill_slot(BlockStore *bs, int s, int i, OwError *err) {
    Backend *be = bs->be;
    Slot *sl = &bs->slots[s];
    const void *src = bs->host[i];
    if (bs->homes[i] == BLOCK_HOME_DISK) {
        be->ops->copy_sync(be, sl->stage_ticket); /* the staging buffer's last copy has left it */
        sl->stage_ticket = -1;
        if (disk_read(bs, i, bs->staging[s], err) != 0) return -1;
        src = bs->staging[s];
    }
    sl->ticket = be->ops->copy_from_host(be, &sl->buf, src);
    if (bs->homes[i] == BLOCK_HOME_DISK) sl->stage_ticket = sl->ticket;
    sl->block = i;
    bs->stats.fetches++;
    bs->stats.bytes_up += bs->cfg.block_bytes;
    return 0;
}

/* The compute queued next waits for the slot's copy; once it has, later work is ordered after it too, so
 * the ticket is dropped (an old ticket would make a later wait stricter than needed: the backend's events
 * form a ring, copy_wait). */
static void slot_wait(BlockStore *bs, Slot *sl) {
    bs->be->ops->copy_wait(bs->be, sl->ticket);
    sl->ticket = -1;
}

static int slot_of(const BlockStore *bs, int i) {
    for (int s = 0; s < bs->cfg.stream_slots; s++)
        if (bs->slots[s].block == i) return s;
    return -1;
}

/* A slot to overwrite: not busy, not wanted, least recently used; -1 when none. */
static int victim(const BlockStore *bs) {
    int best = -1;
    for (int s = 0; s < bs->cfg.stream_slots; s++) {
        const Slot *sl = &bs->slots[s];
        if (sl->busy || sl->wanted) continue;
        if (best < 0 || sl->block < 0 || (bs->slots[best].block >= 0 && sl->last_use < bs->slots[best].last_use))
            best = s;
        if (sl->block < 0) break;
    }
    return best;
}

int block_store_prefetch(BlockStore *bs, int i, OwError *err) {
    if (!block_store_streams(bs, i)) return 0;
    int s = slot_of(bs, i);
    if (s < 0) {
        s = victim(bs);
        if (s < 0) return 0;
        if (fill_slot(bs, s, i, err) != 0) return -1;
    }
    bs->slots[s].wanted = 1;
    return 0;
}

/* A block that stays on the device (device home, pinned): 1 with its buffer in *out, else 0. */
static int resident(const BlockStore *bs, int i, Tensor *out) {
    OW_CHECK(i >= 0 && i < bs->cfg.n_blocks);
    if (bs->homes[i] == BLOCK_HOME_DEVICE)
        *out = bs->own[i];
    else if (bs->pin_of[i] >= 0)
        *out = bs->pins[bs->pin_of[i]];
    else
        return 0;
    return 1;
}

int block_store_acquire(BlockStore *bs, int i, Tensor *out, OwError *err) {
    if (resident(bs, i, out)) return 0;
    for (int s = 0; s < bs->cfg.stream_slots; s++) bs->slots[s].wanted = 0;
    int s = slot_of(bs, i);
    if (s >= 0) {
        OW_CHECKF(!bs->slots[s].busy, "block %d acquired twice", i);
        bs->stats.hits++;
    } else {
        s = victim(bs);
        OW_CHECKF(s >= 0, "every streaming slot is busy (block %d)", i);
        if (fill_slot(bs, s, i, err) != 0) return -1;
    }
    Slot *sl = &bs->slots[s];
    slot_wait(bs, sl);
    sl->busy = 1;
    *out = sl->buf;
    return 0;
}

void block_store_release(BlockStore *bs, int i) {
    int s = block_store_streams(bs, i) ? slot_of(bs, i) : -1;
    if (s < 0) return;
    bs->slots[s].busy = 0;
    bs->slots[s].last_use = ++bs->clock;
}

/* ---- pinning and homes ---- */

/* Forgets block i's slot copy (its bytes are about to change). */
static void drop_slot(BlockStore *bs, int i) {
    int s = slot_of(bs, i);
    if (s < 0) return;
    OW_CHECKF(!bs->slots[s].busy, "block %d changes while acquired", i);
    bs->slots[s].block = -1;
    bs->slots[s].wanted = 0;
}

int block_store_pin(BlockStore *bs, int i, Tensor *out, OwError *err) {
    OW_CHECK(i >= 0 && i < bs->cfg.n_blocks);
    if (bs->homes[i] == BLOCK_HOME_DEVICE || bs->pin_of[i] >= 0) return block_store_acquire(bs, i, out, err);
    int p = 0;
    while (p < bs->cfg.pin_slots && bs->pin_used[p] >= 0) p++;
    OW_CHECKF(p < bs->cfg.pin_slots, "more blocks pinned than the %d pin buffers (block %d)", bs->cfg.pin_slots, i);
    Backend *be = bs->be;
    int s = slot_of(bs, i);
    if (s >= 0) { /* already up: a device copy */
        slot_wait(bs, &bs->slots[s]);
        be->ops->copy(be, &bs->pins[p], &bs->slots[s].buf);
    } else if (bs->homes[i] == BLOCK_HOME_HOST) {
        be->ops->upload(be, &bs->pins[p], bs->host[i], OW_U8);
    } else {
        if (disk_read(bs, i, bs->scratch, err) != 0) return -1;
        be->ops->upload(be, &bs->pins[p], bs->scratch, OW_U8);
    }
    drop_slot(bs, i);
    bs->pin_used[p] = i;
    bs->pin_of[i] = p;
    *out = bs->pins[p];
    return 0;
}

/* Block i's device bytes (buf) to its home. */
static int write_home(BlockStore *bs, int i, const Tensor *buf, OwError *err) {
    Backend *be = bs->be;
    switch (bs->homes[i]) {
    case BLOCK_HOME_DEVICE: return 0;
    case BLOCK_HOME_HOST:
        be->ops->sync(be); /* a queued copy up may still read the home */
        be->ops->download(be, bs->host[i], OW_U8, buf);
        return 0;
    case BLOCK_HOME_DISK:
        if (bs->restoring && bs->disk_valid[i]) return 0; /* the reused store holds the source's bytes */
        be->ops->download(be, bs->scratch, OW_U8, buf);
        if (bs->writing) {
            if (store_writer_put(&bs->writer, i, bs->scratch, err) != 0) return -1;
            bs->stats.store_writes++;
        } else if (bs->restoring) { /* the loader's source bytes into a block a training run wrote back */
            if (store_file_restore_block(&bs->sf, i, bs->scratch, err) != 0)
                return ow_fail_prefix(err, "restoring block %d of the block store", i);
            bs->stats.store_writes++;
        } else if (store_file_write_block(&bs->sf, i, bs->scratch, err) != 0) {
            return ow_fail_prefix(err, "writing trained block %d back to the block store", i);
        }
        bs->disk_valid[i] = 1;
        return 0;
    }
    return 0;
}

int block_store_unpin(BlockStore *bs, int i, OwError *err) {
    OW_CHECK(i >= 0 && i < bs->cfg.n_blocks);
    int p = bs->pin_of[i];
    if (bs->homes[i] == BLOCK_HOME_DEVICE || p < 0) return 0;
    if (write_home(bs, i, &bs->pins[p], err) != 0) return -1;
    bs->pin_used[p] = -1;
    bs->pin_of[i] = -1;
    bs->stats.writebacks++;
    return 0;
}

int block_store_stage(BlockStore *bs, int i, Tensor *out, OwError *err) {
    if (resident(bs, i, out)) return 0;
    int valid = bs->homes[i] == BLOCK_HOME_HOST || block_store_disk_valid(bs, i);
    if (valid) {
        if (block_store_acquire(bs, i, out, err) != 0) return -1;
    } else { /* nothing to read: any free slot, written by the caller */
        for (int s = 0; s < bs->cfg.stream_slots; s++) bs->slots[s].wanted = 0;
        int s = victim(bs);
        OW_CHECKF(s >= 0, "every streaming slot is busy (staging block %d)", i);
        slot_wait(bs, &bs->slots[s]);
        bs->slots[s].block = i;
        bs->slots[s].busy = 1;
        *out = bs->slots[s].buf;
    }
    bs->staged = i;
    return 0;
}

/* While the store file is written (setup) it takes every block, whatever its home, so that it holds the
 * whole model (a later run under other caps reuses it); disk homes are put by write_home. */
static int put_in_new_store(BlockStore *bs, int i, const Tensor *buf, OwError *err) {
    if (!bs->writing || bs->homes[i] == BLOCK_HOME_DISK) return 0;
    bs->be->ops->download(bs->be, bs->scratch, OW_U8, buf);
    bs->stats.store_writes++;
    return store_writer_put(&bs->writer, i, bs->scratch, err);
}

int block_store_commit(BlockStore *bs, int i, OwError *err) {
    OW_CHECK(i >= 0 && i < bs->cfg.n_blocks);
    if (bs->homes[i] == BLOCK_HOME_DEVICE) return put_in_new_store(bs, i, &bs->own[i], err);
    int p = bs->pin_of[i];
    if (p >= 0) return write_home(bs, i, &bs->pins[p], err) || put_in_new_store(bs, i, &bs->pins[p], err) ? -1 : 0;
    int s = slot_of(bs, i);
    OW_CHECKF(s >= 0 && bs->staged == i, "block %d committed without being staged", i);
    int rc = write_home(bs, i, &bs->slots[s].buf, err);
    if (rc == 0) rc = put_in_new_store(bs, i, &bs->slots[s].buf, err);
    block_store_release(bs, i);
    bs->staged = -1;
    return rc;
}

int block_store_seal(BlockStore *bs, OwError *err) {
    bs->restoring = 0;
    if (!bs->writing) return 0;
    bs->writing = 0;
    if (store_writer_commit(&bs->writer, err) != 0) return -1;
    if (store_file_open_rw(&bs->sf, bs->cfg.store_path, bs->cfg.source_hash, err) != 0) return -1;
    bs->sf_open = 1;
    BlockIoOptions o = {.slots = bs->cfg.stream_slots, .refuse_uring_errno = bs->cfg.io_refuse_uring};
    return block_io_open(&bs->io, &bs->sf, &o, err);
}

/* ---- placement ---- */

static size_t blocks_in(size_t room, size_t block_bytes) { return room == SIZE_MAX ? SIZE_MAX : room / block_bytes; }

int offload_place(const OffloadRequest *r, BlockHome *homes, OffloadPlacement *out, OwError *err) {
    memset(out, 0, sizeof *out);
    int n = r->n_blocks;
    size_t bb = r->block_bytes, fit = blocks_in(r->device_room, bb);
    int all_fit = fit >= (size_t)n;
    if (r->mode == OFFLOAD_MODE_NONE || (r->mode == OFFLOAD_MODE_AUTO && all_fit)) {
        for (int i = 0; i < n; i++) homes[i] = BLOCK_HOME_DEVICE;
        out->n_device = n;
        out->device_bytes = (size_t)n * bb;
        return 0;
    }
    int slots = r->stream_slots < 2 ? 2 : r->stream_slots, pins = r->pinned;
    size_t fixed = (size_t)(slots + pins);
    if (fit != SIZE_MAX && fit < fixed)
        return ow_fail(err,
                       "streaming frozen blocks needs room for %zu blocks on the device (%d streaming slots and %d "
                       "trained blocks of %.1f MiB) but only %zu fit (hint: a larger --gpu-mem, a smaller --gamma or "
                       "--batch-size)",
                       fixed, slots, pins, (double)bb / (1 << 20), fit);
    /* the device keeps as many as fit beside the slots and pin buffers; host/nvme modes stream every block */
    size_t keep = r->mode == OFFLOAD_MODE_AUTO ? fit - fixed : 0;
    int n_dev = keep > (size_t)n ? n : (int)keep;
    int rest = n - n_dev;
    size_t host_fit = blocks_in(r->host_room, bb);
    int n_host;
    if (r->mode == OFFLOAD_MODE_NVME) {
        n_host = 0;
    } else if (r->mode == OFFLOAD_MODE_HOST || host_fit >= (size_t)rest) {
        n_host = rest;
    } else { /* auto: host memory while it lasts (less the disk reads' staging buffers), the rest on disk */
        n_host = host_fit > (size_t)slots ? (int)(host_fit - (size_t)slots) : 0;
    }
    if (n_host > (int)(host_fit > (size_t)n ? (size_t)n : host_fit))
        return ow_fail(err,
                       "%d frozen blocks of %.1f MiB stream from page-locked host memory, but --host-mem holds %zu "
                       "of them (hint: raise --host-mem, or --nvme-dir DIR to keep the rest in a store file)",
                       rest, (double)bb / (1 << 20), host_fit);
    if (n_host < rest && !r->have_disk)
        return ow_fail(err,
                       "%d frozen blocks of %.1f MiB must stream but page-locked host memory (--host-mem) holds %d%s "
                       "(hint: --nvme-dir DIR, a directory on a local disk for the block store)",
                       rest, (double)bb / (1 << 20), n_host,
                       r->mode == OFFLOAD_MODE_NVME ? " with --offload nvme" : "");
    /* device homes spread over the depth; of the others the lower ones in host memory */
    for (int i = 0; i < n; i++) homes[i] = BLOCK_HOME_DISK;
    for (int k = 0; k < n_dev; k++) homes[(int)(((double)k + 0.5) * n / n_dev)] = BLOCK_HOME_DEVICE;
    int h = 0;
    for (int i = 0; i < n && h < n_host; i++)
        if (homes[i] != BLOCK_HOME_DEVICE) homes[i] = BLOCK_HOME_HOST, h++;
    out->streaming = 1;
    out->n_device = n_dev;
    out->n_host = n_host;
    out->n_disk = n - n_dev - n_host;
    out->stream_slots = slots;
    out->pin_slots = pins;
    out->device_bytes = (size_t)(n_dev + slots + pins) * bb;
    out->host_bytes = (size_t)(n_host + (out->n_disk ? slots : 0)) * bb;
    out->disk_bytes = out->n_disk ? (size_t)n * store_file_record_bytes(bb) : 0;
    return 0;
}

void offload_placement_format(const OffloadPlacement *p, char *buf, size_t cap) {
    if (!p->streaming) {
        snprintf(buf, cap, "every block on the device (%d)", p->n_device);
        return;
    }
    snprintf(buf, cap,
             "%d blocks on the device, %d streamed from host memory, %d from the store file (%d slots, %d "
             "trained-block buffers)",
             p->n_device, p->n_host, p->n_disk, p->stream_slots, p->pin_slots);
}

size_t offload_default_host_room(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    size_t avail = (size_t)kb * 1024, margin = avail / 8 > ((size_t)4 << 30) ? avail / 8 : ((size_t)4 << 30);
    return avail > margin ? avail - margin : 0;
}

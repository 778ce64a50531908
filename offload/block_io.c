/* block_io.c: see block_io.h. */
#define _GNU_SOURCE /* O_DIRECT */
#include "offload/block_io.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct {
    uint8_t *buf; /* staging, STORE_FILE_ALIGN-aligned, slot_bytes */
    int block;    /* -1: free */
    void *dst;
    uint64_t seq;  /* the ticket's generation */
    int pending;   /* chunk reads not yet complete */
    int err_errno; /* first failed chunk's errno, 0 if none */
    int short_read;
    uint64_t err_offset; /* file offset of the first failed chunk */
} Slot;

typedef struct {
    int slot, chunk;
} Job;

struct BlockIo {
    const StoreFile *sf;
    int fd, direct;
    BlockIoPath path;
    char describe[512];
    int nslots;
    Slot *slots;
    uint64_t slot_bytes, chunk_bytes, next_seq;
    int chunks_out, peak_chunks; /* chunk reads submitted and not complete: now, at most */
    /* io_uring */
    struct io_uring ring;
    int queue_depth, ring_inflight, registered;
    /* threads */
    pthread_t *workers;
    int nthreads, stop;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    Job *jobs;
    int job_cap, job_head, job_count;
};

const char *block_io_path_name(BlockIoPath p) { return p == BLOCK_IO_URING ? "io_uring" : "threads"; }
BlockIoPath block_io_path(const BlockIo *io) { return io->path; }
int block_io_direct(const BlockIo *io) { return io->direct; }
const char *block_io_describe(const BlockIo *io) { return io->describe; }
int block_io_slots(const BlockIo *io) { return io->nslots; }
int block_io_peak_chunk_reads(const BlockIo *io) { return io->peak_chunks; }
int block_io_in_flight(const BlockIo *io) {
    int n = 0;
    for (int i = 0; i < io->nslots; i++) n += io->slots[i].block >= 0;
    return n;
}

static uint64_t record_bytes(const BlockIo *io, int block) {
    return store_file_record_bytes(io->sf->blocks[block].size);
}

static int chunk_count(const BlockIo *io, int block) {
    return (int)((record_bytes(io, block) + io->chunk_bytes - 1) / io->chunk_bytes);
}

/* Chunk c of slot s's block: its length, and where it lies in the file and the staging buffer. */
static uint64_t chunk_span(const BlockIo *io, int s, int c, uint64_t *file_off, uint8_t **buf) {
    const Slot *sl = &io->slots[s];
    uint64_t at = (uint64_t)c * io->chunk_bytes, rec = record_bytes(io, sl->block);
    *file_off = io->sf->blocks[sl->block].offset + at;
    *buf = sl->buf + at;
    return rec - at < io->chunk_bytes ? rec - at : io->chunk_bytes;
}

/* Records chunk c's outcome in its slot: got bytes of want, or -errno. */
static void chunk_done(BlockIo *io, int s, int c, int64_t got, uint64_t want) {
    Slot *sl = &io->slots[s];
    if ((got < 0 || (uint64_t)got < want) && !sl->err_errno && !sl->short_read) {
        sl->err_errno = got < 0 ? (int)-got : 0;
        sl->short_read = got >= 0;
        sl->err_offset = io->sf->blocks[sl->block].offset + (uint64_t)c * io->chunk_bytes;
    }
    sl->pending--;
    io->chunks_out--;
}

static void count_chunks(BlockIo *io, int n) {
    io->chunks_out += n;
    io->peak_chunks = io->chunks_out > io->peak_chunks ? io->chunks_out : io->peak_chunks;
}

/* ---- io_uring path ---- */

/* Waits for one completion (submitting what is queued first). */
static void ring_reap_one(BlockIo *io) {
    struct io_uring_cqe *cqe;
    int rc;
    io_uring_submit(&io->ring);
    while ((rc = io_uring_wait_cqe(&io->ring, &cqe)) == -EINTR) {}
    OW_CHECKF(rc == 0, "io_uring_wait_cqe: %s", strerror(-rc));
    int s = (int)(io_uring_cqe_get_data64(cqe) >> 32), c = (int)(io_uring_cqe_get_data64(cqe) & 0xffffffffu);
    uint64_t off;
    uint8_t *buf;
    uint64_t want = chunk_span(io, s, c, &off, &buf);
    chunk_done(io, s, c, cqe->res, want);
    io_uring_cqe_seen(&io->ring, cqe);
    io->ring_inflight--;
}

static void ring_submit(BlockIo *io, int s) {
    int n = chunk_count(io, io->slots[s].block);
    for (int c = 0; c < n; c++) {
        while (io->ring_inflight >= io->queue_depth) ring_reap_one(io);
        struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
        if (!sqe) {
            io_uring_submit(&io->ring);
            sqe = io_uring_get_sqe(&io->ring);
        }
        OW_CHECK(sqe != NULL);
        uint64_t off;
        uint8_t *buf;
        unsigned len = (unsigned)chunk_span(io, s, c, &off, &buf);
        if (io->registered)
            io_uring_prep_read_fixed(sqe, io->fd, buf, len, off, s);
        else
            io_uring_prep_read(sqe, io->fd, buf, len, off);
        io_uring_sqe_set_data64(sqe, ((uint64_t)s << 32) | (uint64_t)c);
        io->ring_inflight++;
        count_chunks(io, 1);
    }
    io_uring_submit(&io->ring);
}

/* Sets up the ring and registers the staging buffers; -errno when io_uring is refused. */
static int ring_open(BlockIo *io, int refuse_errno) {
    int rc = refuse_errno ? -refuse_errno : io_uring_queue_init((unsigned)io->queue_depth, &io->ring, 0);
    if (rc < 0) return rc;
    struct iovec *iov = ow_xcalloc((size_t)io->nslots, sizeof *iov);
    for (int s = 0; s < io->nslots; s++) iov[s] = (struct iovec){io->slots[s].buf, (size_t)io->slot_bytes};
    rc = io_uring_register_buffers(&io->ring, iov, (unsigned)io->nslots);
    free(iov);
    io->registered = rc == 0;
    if (rc != 0)
        OW_WARN("%s: io_uring could not register its buffers (%s); reading without", io->sf->path, strerror(-rc));
    return 0;
}

/* ---- thread pool path ---- */

/* Reads len bytes at off whole: bytes read (fewer only at end of file) or -errno. */
static int64_t pread_full(int fd, uint8_t *buf, uint64_t len, uint64_t off) {
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, (size_t)(len - done), (off_t)(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -(int64_t)errno;
        if (n == 0) break;
        done += (uint64_t)n;
    }
    return (int64_t)done;
}

static void *worker_main(void *arg) {
    BlockIo *io = arg;
    pthread_mutex_lock(&io->mu);
    for (;;) {
        while (!io->stop && io->job_count == 0) pthread_cond_wait(&io->work_cv, &io->mu);
        if (io->job_count == 0) break;
        Job j = io->jobs[io->job_head];
        io->job_head = (io->job_head + 1) % io->job_cap;
        io->job_count--;
        uint64_t off;
        uint8_t *buf;
        uint64_t want = chunk_span(io, j.slot, j.chunk, &off, &buf);
        pthread_mutex_unlock(&io->mu);
        int64_t got = pread_full(io->fd, buf, want, off);
        pthread_mutex_lock(&io->mu);
        chunk_done(io, j.slot, j.chunk, got, want);
        pthread_cond_broadcast(&io->done_cv);
    }
    pthread_mutex_unlock(&io->mu);
    return NULL;
}

static void pool_submit(BlockIo *io, int s) {
    int n = chunk_count(io, io->slots[s].block);
    pthread_mutex_lock(&io->mu);
    OW_CHECK(io->job_count + n <= io->job_cap);
    for (int c = 0; c < n; c++) io->jobs[(io->job_head + io->job_count++) % io->job_cap] = (Job){s, c};
    count_chunks(io, n);
    pthread_cond_broadcast(&io->work_cv);
    pthread_mutex_unlock(&io->mu);
}

static void pool_open(BlockIo *io) {
    int max_chunks = 0;
    for (int b = 0; b < io->sf->n_blocks; b++)
        max_chunks = chunk_count(io, b) > max_chunks ? chunk_count(io, b) : max_chunks;
    io->job_cap = io->nslots * max_chunks;
    io->jobs = ow_xcalloc((size_t)io->job_cap, sizeof(Job));
    io->workers = ow_xcalloc((size_t)io->nthreads, sizeof(pthread_t));
    for (int t = 0; t < io->nthreads; t++) {
        int rc = pthread_create(&io->workers[t], NULL, worker_main, io);
        OW_CHECKF(rc == 0, "pthread_create: %s", strerror(rc));
    }
}

/* Waits until slot s has no chunk in flight. */
static void slot_settle(BlockIo *io, int s) {
    if (io->path == BLOCK_IO_URING) {
        while (io->slots[s].pending > 0) ring_reap_one(io);
        return;
    }
    pthread_mutex_lock(&io->mu);
    while (io->slots[s].pending > 0) pthread_cond_wait(&io->done_cv, &io->mu);
    pthread_mutex_unlock(&io->mu);
}

/* ---- the interface ---- */

/* Opens the store for reading with O_DIRECT, or through the page cache where the filesystem refuses it. */
static int open_fd(BlockIo *io, int refuse_direct, char *why, size_t cap, OwError *err) {
    io->fd = refuse_direct ? (errno = EINVAL, -1) : open(io->sf->path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    io->direct = io->fd >= 0;
    if (io->fd < 0 && errno == EINVAL) {
        snprintf(why, cap, ", buffered (O_DIRECT refused by the filesystem)");
        io->fd = open(io->sf->path, O_RDONLY | O_CLOEXEC);
    }
    if (io->fd < 0)
        return ow_fail(err, "%s: cannot open the store file for reading: %s", io->sf->path, strerror(errno));
    return 0;
}

static int alloc_slots(BlockIo *io, OwError *err) {
    for (int b = 0; b < io->sf->n_blocks; b++)
        io->slot_bytes = record_bytes(io, b) > io->slot_bytes ? record_bytes(io, b) : io->slot_bytes;
    io->slots = ow_xcalloc((size_t)io->nslots, sizeof(Slot));
    for (int s = 0; s < io->nslots; s++) {
        io->slots[s].block = -1;
        void *p = NULL;
        if (posix_memalign(&p, STORE_FILE_ALIGN, (size_t)io->slot_bytes) != 0)
            return ow_fail(err, "%s: out of host memory for %d read buffers of %llu bytes", io->sf->path, io->nslots,
                           (unsigned long long)io->slot_bytes);
        io->slots[s].buf = p;
    }
    return 0;
}

static void apply_options(BlockIo *io, const BlockIoOptions *opt) {
    BlockIoOptions o = opt ? *opt : (BlockIoOptions){0};
    io->nslots = o.slots > 0 ? o.slots : 4;
    io->queue_depth = o.queue_depth > 0 ? o.queue_depth : 32;
    io->nthreads = o.threads > 0 ? o.threads : 2;
    io->chunk_bytes = o.chunk_bytes > 0 ? o.chunk_bytes : (uint64_t)256 << 10;
    OW_CHECKF(io->nslots <= 0xffff, "%d read slots (a ticket holds 16 bits of slot)", io->nslots);
    OW_CHECKF(io->queue_depth >= 8, "queue depth %d below 8", io->queue_depth);
    OW_CHECKF(io->chunk_bytes % STORE_FILE_ALIGN == 0, "chunk of %llu bytes", (unsigned long long)io->chunk_bytes);
}

int block_io_open(BlockIo **out, const StoreFile *sf, const BlockIoOptions *opt, OwError *err) {
    BlockIo *io = ow_xcalloc(1, sizeof *io);
    io->sf = sf;
    io->fd = -1;
    io->path = BLOCK_IO_THREADS; /* until the ring is up: close must not touch it */
    apply_options(io, opt);
    char why[160] = "";
    if (open_fd(io, opt ? opt->refuse_direct : 0, why, sizeof why, err) != 0 || alloc_slots(io, err) != 0)
        return block_io_close(io), -1;
    int rc = ring_open(io, opt ? opt->refuse_uring_errno : 0);
    if (rc == 0) {
        io->path = BLOCK_IO_URING;
        snprintf(io->describe, sizeof io->describe, "io_uring (queue depth %d%s)%s%s", io->queue_depth,
                 io->registered ? ", registered buffers" : "", io->direct ? ", O_DIRECT" : "", why);
    } else {
        pthread_mutex_init(&io->mu, NULL);
        pthread_cond_init(&io->work_cv, NULL);
        pthread_cond_init(&io->done_cv, NULL);
        pool_open(io);
        snprintf(io->describe, sizeof io->describe, "threads (%d pread workers; io_uring refused: %s)%s%s",
                 io->nthreads, strerror(-rc), io->direct ? ", O_DIRECT" : "", why);
    }
    OW_INFO("%s: block reads via %s", sf->path, io->describe);
    *out = io;
    return 0;
}

void block_io_close(BlockIo *io) {
    if (!io) return;
    for (int s = 0; s < io->nslots && io->slots; s++)
        if (io->slots[s].block >= 0) slot_settle(io, s);
    if (io->path == BLOCK_IO_URING) io_uring_queue_exit(&io->ring);
    if (io->workers) {
        pthread_mutex_lock(&io->mu);
        io->stop = 1;
        pthread_cond_broadcast(&io->work_cv);
        pthread_mutex_unlock(&io->mu);
        for (int t = 0; t < io->nthreads; t++) pthread_join(io->workers[t], NULL);
        pthread_mutex_destroy(&io->mu);
        pthread_cond_destroy(&io->work_cv);
        pthread_cond_destroy(&io->done_cv);
    }
    for (int s = 0; s < io->nslots && io->slots; s++) free(io->slots[s].buf);
    if (io->fd >= 0) close(io->fd);
    free(io->slots);
    free(io->workers);
    free(io->jobs);
    free(io);
}

BlockIoTicket block_io_submit(BlockIo *io, int block, void *dst) {
    OW_CHECKF(block >= 0 && block < io->sf->n_blocks, "block %d of %d", block, io->sf->n_blocks);
    int s = 0;
    while (s < io->nslots && io->slots[s].block >= 0) s++;
    OW_CHECKF(s < io->nslots, "all %d read slots are in flight; wait for one first", io->nslots);
    Slot *sl = &io->slots[s];
    *sl = (Slot){.buf = sl->buf, .block = block, .dst = dst, .seq = ++io->next_seq};
    sl->pending = chunk_count(io, block);
    if (io->path == BLOCK_IO_URING)
        ring_submit(io, s);
    else
        pool_submit(io, s);
    return (sl->seq << 16) | (BlockIoTicket)s;
}

int block_io_wait(BlockIo *io, BlockIoTicket ticket, OwError *err) {
    int s = (int)(ticket & 0xffffu);
    OW_CHECKF(s < io->nslots && io->slots[s].block >= 0 && io->slots[s].seq == ticket >> 16,
              "ticket %llu is not in flight", (unsigned long long)ticket);
    slot_settle(io, s);
    Slot *sl = &io->slots[s];
    int block = sl->block, rc = 0;
    if (sl->err_errno)
        rc = ow_fail(err, "%s: reading block %d (at offset %llu): %s", io->sf->path, block,
                     (unsigned long long)sl->err_offset, strerror(sl->err_errno));
    else if (sl->short_read)
        rc = ow_fail(err,
                     "%s: reading block %d: short read at offset %llu (the file ends early: cut after it was "
                     "opened?)",
                     io->sf->path, block, (unsigned long long)sl->err_offset);
    else {
        memcpy(sl->dst, sl->buf, (size_t)io->sf->blocks[block].size);
        rc = store_file_verify_block(io->sf, block, sl->dst, err);
    }
    sl->block = -1;
    return rc;
}

/* block_io.h: asynchronous reads of a store file's blocks (store_file.h),
 * one interface over two paths. Not yet used by training.
 *
 *   io_uring  O_DIRECT when the filesystem allows it, staging buffers of
 *             4 KiB-aligned memory registered with the ring (read_fixed), a
 *             queue depth of at least 8, each block read as several chunk
 *             reads in flight at once.
 *   threads   a small pool of pread workers over the same staging buffers and
 *             chunks, used when io_uring_queue_init is refused (ENOSYS, EPERM:
 *             sandboxes do this) or when forced by an option.
 * A filesystem that refuses O_DIRECT (EINVAL on open: tmpfs before Linux 6.6)
 * is read through the page cache on either path. Which path runs is logged once at open and
 * given by block_io_path / block_io_describe (for a run's summary).
 *
 * A read is block_io_submit(block, dst) -> ticket, then block_io_wait(ticket):
 * the record lands in a staging slot, is copied to dst (any alignment, the
 * block's size) and checked against the block's xxh64. At most
 * block_io_slots() reads are in flight; a wait frees its slot. Read errors
 * (EIO, a short read: the file cut after it was opened) and checksum
 * mismatches come back from wait naming the file and the block.
 *
 * Invariants: one thread drives a BlockIo (submit, wait, close); every chunk
 * read is aligned to and a multiple of STORE_FILE_ALIGN. */
#ifndef OWLORE_OFFLOAD_BLOCK_IO_H
#define OWLORE_OFFLOAD_BLOCK_IO_H

#include "core/error.h"
#include "offload/store_file.h"

#include <stdint.h>

typedef enum { BLOCK_IO_URING = 0, BLOCK_IO_THREADS = 1 } BlockIoPath;

typedef struct BlockIoOptions {
    int slots;            /* reads in flight at most (0: 4) */
    int queue_depth;      /* io_uring queue depth, at least 8 (0: 32) */
    int threads;          /* pread workers of the fallback (0: 2) */
    uint64_t chunk_bytes; /* one read's size, a multiple of 4 KiB (0: 256 KiB) */
    /* Tests: nonzero makes io_uring setup fail as if the kernel returned
     * -refuse_uring_errno (e.g. EPERM), taking the real fallback route. */
    int refuse_uring_errno;
    /* Tests: nonzero makes the O_DIRECT open fail as a filesystem that refuses it does (EINVAL). */
    int refuse_direct;
} BlockIoOptions;

typedef struct BlockIo BlockIo;
typedef uint64_t BlockIoTicket;

/* Opens a reader of sf (which must outlive it); opt may be NULL. */
int block_io_open(BlockIo **out, const StoreFile *sf, const BlockIoOptions *opt, OwError *err);
/* Waits for every read in flight (their results dropped), then frees. NULL is fine. */
void block_io_close(BlockIo *io);

BlockIoPath block_io_path(const BlockIo *io);
/* Whether reads bypass the page cache (O_DIRECT). */
int block_io_direct(const BlockIo *io);
/* "io_uring" or "threads". */
const char *block_io_path_name(BlockIoPath p);
/* One line: the path, O_DIRECT or not, and why a fallback was taken. */
const char *block_io_describe(const BlockIo *io);
int block_io_slots(const BlockIo *io);
/* Reads in flight now (submitted, not yet waited). */
int block_io_in_flight(const BlockIo *io);
/* The most chunk reads outstanding at once so far (submitted to the ring or
 * queued for the workers, not yet complete): how deep the queue really ran. */
int block_io_peak_chunk_reads(const BlockIo *io);

/* Starts reading block into dst; a free slot must exist (block_io_in_flight < block_io_slots). */
BlockIoTicket block_io_submit(BlockIo *io, int block, void *dst);
/* Waits for ticket's read, copies and verifies it; frees its slot. */
int block_io_wait(BlockIo *io, BlockIoTicket ticket, OwError *err);

#endif

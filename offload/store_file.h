/* store_file.h: the NVMe block store file of one model (issue 14's offload
 * engine, the on-disk home of frozen blocks).
 *
 * A store file holds n blocks of opaque bytes, each in its own record:
 *
 *   header   StoreFileHeader (64 bytes, little-endian fields)
 *   table    n StoreBlock entries (offset, size, xxh64 of the block's bytes, flags)
 *   padding  to the first 4 KiB boundary
 *   records  block i's bytes at table[i].offset (a multiple of 4 KiB), zero
 *            padded to the next 4 KiB boundary; the file ends after the last
 *
 * header_hash is the xxh64 of the header (with header_hash zero) and the
 * table. The caller names the model the blocks came from by a 64-bit source
 * hash; opening checks it, so a store written for another model is refused.
 *
 * Invariants: a store file at its final path is whole (written under a
 * temporary name, its full size reserved with posix_fallocate before any
 * block is written, fsynced, renamed, the directory fsynced); every record
 * offset and the file size are multiples of STORE_FILE_ALIGN, so records can
 * be read with O_DIRECT; a block read through this API has been checked
 * against its xxh64. The store never knows what the bytes mean.
 *
 * Write-back: a training run may replace blocks in place (store_file_open_rw,
 * store_file_write_block). Before a block's record first changes, its table
 * entry is marked STORE_BLOCK_WRITTEN_BACK (and the header STORE_FILE_MODIFIED),
 * written and fdatasynced: from then on that block no longer counts as the
 * source's (store_file_reusable says which blocks do), and a crash part-way
 * through a write leaves a block marked so, never a silently wrong one. A
 * later setup writes the source's bytes back into the marked blocks only
 * (store_file_restore_block: the record made durable first, then the mark
 * cleared), which makes the store the source's again.
 *
 * Exclusive use: a StoreFile (read-only or not) and a StoreWriter hold an
 * exclusive flock(2) on "<path>.lock" (created if absent, the holder's pid as
 * its text) from open/begin to close/commit/abort; a second opener, in this
 * process or another, fails at once naming the holder's pid. The kernel drops
 * the lock when the holder dies (kill -9 included), so a stale lock file never
 * blocks. The lock file stays after close (removing it would let two processes
 * lock two files); an aborted writer that leaves no store removes it, still
 * holding it (an opener checks that the file it locked is still the one at the
 * path). Commit releases the lock and a later open takes it again: another
 * process can take it in between, and then that open fails naming its pid; no
 * process ever reads or writes the store without holding the lock, so the
 * window costs a clear error, never a store changed under a reader. */
#ifndef OWLORE_OFFLOAD_STORE_FILE_H
#define OWLORE_OFFLOAD_STORE_FILE_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_FILE_MAGIC "OWSTORE1"
#define STORE_FILE_VERSION 2u /* 2: a flags word per table entry */
#define STORE_FILE_ALIGN 4096u
#define STORE_FILE_MAX_BLOCKS (1 << 20)
/* StoreFileHeader.flags: some block was written back (exactly when a table entry has STORE_BLOCK_WRITTEN_BACK). */
#define STORE_FILE_MODIFIED 1ull
/* StoreBlock.flags: the record no longer holds the source's bytes (trained bytes, or a write in progress). */
#define STORE_BLOCK_WRITTEN_BACK 1ull

typedef struct StoreFileHeader {
    char magic[8];        /* STORE_FILE_MAGIC, no NUL */
    uint32_t version;     /* STORE_FILE_VERSION */
    uint32_t align;       /* record alignment: STORE_FILE_ALIGN */
    uint64_t block_count; /* entries in the table */
    uint64_t source_hash; /* the caller's hash of the source model */
    uint64_t data_offset; /* first record: header + table rounded up to align */
    uint64_t file_size;   /* bytes of the whole file */
    uint64_t header_hash; /* xxh64 of header (this field zero) + table */
    uint64_t flags;       /* STORE_FILE_MODIFIED or zero (other bits: refused as corrupt) */
} StoreFileHeader;

typedef struct StoreBlock {
    uint64_t offset; /* of the record, a multiple of STORE_FILE_ALIGN */
    uint64_t size;   /* bytes of the block (the record is this rounded up to STORE_FILE_ALIGN) */
    uint64_t hash;   /* xxh64 (seed 0) of the block's bytes */
    uint64_t flags;  /* STORE_BLOCK_WRITTEN_BACK or zero (other bits: refused as corrupt) */
} StoreBlock;

/* An opened, validated store file. */
typedef struct StoreFile {
    char *path;
    int fd;       /* O_RDONLY, or O_RDWR when writable */
    int lock_fd;  /* holds "<path>.lock" (flock LOCK_EX) until close */
    int writable; /* opened by store_file_open_rw */
    int n_blocks;
    uint64_t source_hash;
    uint64_t file_size;
    StoreFileHeader header; /* as on disk; flags and header_hash follow write-back */
    StoreBlock *blocks;     /* the table; a block's hash follows write-back */
} StoreFile;

/* A store file being written. */
typedef struct StoreWriter {
    char *path;
    char *tmp_path;
    int fd;
    int n_blocks;
    StoreFileHeader header;
    StoreBlock *blocks;
    uint8_t *written; /* per block: put already */
    int lock_fd;      /* holds "<path>.lock" from begin to commit or abort */
} StoreWriter;

/* The bytes a record of size bytes takes in the file. */
uint64_t store_file_record_bytes(uint64_t size);

/* Takes the store's lock, starts "<path>.tmp-<pid>" for n blocks of the given
 * sizes and reserves the whole file with posix_fallocate: a disk too small (or
 * a file size limit) fails here, naming the path, the bytes needed and the
 * errno text, and leaves nothing behind. */
int store_writer_begin(StoreWriter *w, const char *path, uint64_t source_hash, int n, const uint64_t *sizes,
                       OwError *err);
/* Writes block i (sizes[i] bytes) and records its xxh64; each block once, in any order.
 * On failure (an I/O error, the file's errno named) the caller calls store_writer_abort. */
int store_writer_put(StoreWriter *w, int i, const void *data, OwError *err);
/* Every block put: writes the header, fsyncs, renames over path, fsyncs the
 * directory, releases the lock. Frees w either way; on failure the temporary is removed. */
int store_writer_commit(StoreWriter *w, OwError *err);
/* Removes the temporary (and the lock file when no store is at the path),
 * releases the lock and frees w; safe on a committed or zeroed w. */
void store_writer_abort(StoreWriter *w);

/* Takes the store's lock (another holder: an error naming its pid), then opens
 * and validates path: it exists, its magic, version, header checksum,
 * alignment, table and flags are right, it was written for source_hash and it
 * holds every record (a truncated file is refused). Block contents are checked
 * when read; which blocks were written back is in sf->blocks[i].flags. */
int store_file_open(StoreFile *sf, const char *path, uint64_t source_hash, OwError *err);
/* Opens like store_file_open, read-write, holding the store's exclusive lock. */
int store_file_open_rw(StoreFile *sf, const char *path, uint64_t source_hash, OwError *err);
/* Closes the file and releases the lock; safe on a zeroed or closed sf. */
void store_file_close(StoreFile *sf);

/* Whether path is a valid store for source_hash with exactly these n block
 * sizes, so it need not be written anew: 1 yes, and source[i] says whether
 * block i holds the source's bytes (0: written back since, for
 * store_file_restore_block); 0 no (why in err: also a store in use by another
 * process). */
int store_file_reusable(const char *path, uint64_t source_hash, int n, const uint64_t *sizes, uint8_t *source,
                        OwError *err);

/* Checks data (block i's size) against block i's xxh64; the error names the file and block. */
int store_file_verify_block(const StoreFile *sf, int i, const void *data, OwError *err);
/* Reads block i into dst (its size bytes, any alignment) with pread and verifies it. */
int store_file_read_block(const StoreFile *sf, int i, void *dst, OwError *err);

/* Replaces block i's bytes (same size) and its xxh64 in the table of sf (opened
 * by store_file_open_rw). The first write to a block marks it written back
 * (STORE_BLOCK_WRITTEN_BACK, and the header STORE_FILE_MODIFIED), written and
 * fdatasynced before its record changes. Record, table entry and header hash
 * are rewritten and fdatasynced before it returns, so a crash leaves either the
 * old or the new checksum consistent with the record, or a record whose
 * checksum mismatch names the block when read, never a silently wrong block,
 * and the block marked. On a failed write (the file and block named) the record
 * may be part new: reading block i then fails its checksum. Reads through sf or
 * a BlockIo of sf (which reads sf's table) return the new bytes after it
 * returns; no read of block i may be in flight while it runs. */
int store_file_write_block(StoreFile *sf, int i, const void *data, OwError *err);
/* Writes the source's bytes back into block i, which was written back (marked): the record is made durable
 * (fdatasync), then its checksum and the cleared mark (and the header's flag once no block is marked). A crash
 * in between leaves the block marked: the next setup writes it again. */
int store_file_restore_block(StoreFile *sf, int i, const void *data, OwError *err);

#endif

/* store_file.c: see store_file.h. */
#define _GNU_SOURCE
#include "offload/store_file.h"

#include "core/fileio.h"
#include "core/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(StoreFileHeader) == 64, "the store header is 64 bytes on disk");
_Static_assert(sizeof(StoreBlock) == 32, "a table entry is 32 bytes on disk");

uint64_t store_file_record_bytes(uint64_t size) {
    return (size + STORE_FILE_ALIGN - 1) / STORE_FILE_ALIGN * STORE_FILE_ALIGN;
}

static uint64_t table_end(uint64_t n) { return sizeof(StoreFileHeader) + n * sizeof(StoreBlock); }

static uint64_t header_checksum(const StoreFileHeader *h, const StoreBlock *blocks) {
    StoreFileHeader copy = *h;
    copy.header_hash = 0;
    Xxh64 s;
    xxh64_init(&s, 0);
    xxh64_update(&s, &copy, sizeof copy);
    xxh64_update(&s, blocks, (size_t)h->block_count * sizeof(StoreBlock));
    return xxh64_final(&s);
}

/* Writes len bytes at off whole; the error names the file and errno. */
static int pwrite_all(int fd, const char *path, const void *data, size_t len, uint64_t off, OwError *err) {
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return ow_fail(err, "%s: writing %zu bytes at offset %llu: %s", path, len, (unsigned long long)off,
                           n < 0 ? strerror(errno) : "no progress");
        p += n, len -= (size_t)n, off += (uint64_t)n;
    }
    return 0;
}

/* Reads len bytes at off whole: 1 read, 0 end of file first, -1 error (errno). */
static int pread_all(int fd, void *dst, size_t len, uint64_t off) {
    uint8_t *p = dst;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) return 0;
        p += n, len -= (size_t)n, off += (uint64_t)n;
    }
    return 1;
}

/* ---- the store's lock: "<path>.lock" ---- */

static char *lock_path(const char *path) {
    char *p = ow_xmalloc(strlen(path) + sizeof ".lock");
    return strcat(strcpy(p, path), ".lock");
}

/* The error for a store whose lock another holder has, naming the pid written in the lock file. */
static int store_busy(const char *path, int fd, OwError *err) {
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
    char who[96];
    if (pid <= 0)
        snprintf(who, sizeof who, "another owlore process (pid not yet written)");
    else if (pid == (long)getpid())
        snprintf(who, sizeof who, "this process (pid %ld), which has it open already", pid);
    else
        snprintf(who, sizeof who, "another owlore process (pid %ld)", pid);
    return ow_fail(err,
                   "%s is in use by %s; two runs cannot share a store file (hint: give this run another "
                   "--nvme-dir, or wait for that run to finish; the lock goes with the process)",
                   path, who);
}

/* One try at locking lp: 1 held (*fd), 0 the file was removed while we locked it (try again), -1 error. */
static int lock_once(const char *path, const char *lp, int *fd, OwError *err) {
    *fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return ow_fail(err, "%s: cannot open the store's lock file: %s (hint: the directory must be writable)", lp,
                       strerror(errno));
    int rc = 1;
    struct stat a, b;
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0)
        rc = errno == EWOULDBLOCK ? store_busy(path, *fd, err)
                                  : ow_fail(err, "%s: cannot lock: %s", lp, strerror(errno));
    else if (fstat(*fd, &a) != 0 || stat(lp, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
        rc = 0;
    if (rc != 1) close(*fd), *fd = -1;
    return rc;
}

/* Takes the exclusive lock of path's store without waiting and writes our pid into it. An
 * aborted writer may remove the lock file while holding it: a lock taken on a file no longer
 * at the lock path is dropped and taken again on the file there now. */
static int store_lock(const char *path, int *lock_fd, OwError *err) {
    char *lp = lock_path(path);
    int rc = 0;
    for (int attempt = 0; rc == 0; attempt++)
        rc = attempt < 8 ? lock_once(path, lp, lock_fd, err) : ow_fail(err, "%s: the lock file keeps changing", lp);
    if (rc == 1) {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        rc = 0;
        if (ftruncate(*lock_fd, 0) != 0 || pwrite(*lock_fd, pid, (size_t)n, 0) != n) {
            rc = ow_fail(err, "%s: cannot write: %s", lp, strerror(errno));
            close(*lock_fd), *lock_fd = -1;
        }
    }
    free(lp);
    return rc;
}

static void store_unlock(int *lock_fd) {
    if (*lock_fd >= 0) close(*lock_fd); /* closing the only descriptor drops the flock */
    *lock_fd = -1;
}

static void writer_free(StoreWriter *w) {
    if (w->path && w->fd >= 0) close(w->fd); /* a zeroed w holds no descriptor: fd 0 is not ours */
    if (w->path) store_unlock(&w->lock_fd);
    free(w->path);
    free(w->tmp_path);
    free(w->blocks);
    free(w->written);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->lock_fd = -1;
}

void store_writer_abort(StoreWriter *w) {
    if (w->tmp_path) unlink(w->tmp_path);
    if (w->path && w->lock_fd >= 0 && !ow_path_exists(w->path)) { /* no store here: leave the directory as it was */
        char *lp = lock_path(w->path);
        unlink(lp); /* still held: an opener that locked it sees it gone and locks the new one */
        free(lp);
    }
    writer_free(w);
}

/* The table of n blocks of these sizes, laid out one record after another. */
static int plan_layout(StoreWriter *w, const uint64_t *sizes, OwError *err) {
    uint64_t off = store_file_record_bytes(table_end((uint64_t)w->n_blocks));
    w->header.data_offset = off;
    for (int i = 0; i < w->n_blocks; i++) {
        if (sizes[i] == 0)
            return ow_fail(err, "%s: block %d is empty; a store holds blocks of at least 1 byte", w->path, i);
        if (sizes[i] > ((uint64_t)1 << 48)) return ow_fail(err, "%s: block %d is implausibly large", w->path, i);
        w->blocks[i] = (StoreBlock){.offset = off, .size = sizes[i], .hash = 0, .flags = 0};
        off += store_file_record_bytes(sizes[i]);
    }
    w->header.file_size = off;
    return 0;
}

int store_writer_begin(StoreWriter *w, const char *path, uint64_t source_hash, int n, const uint64_t *sizes,
                       OwError *err) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->lock_fd = -1;
    if (n <= 0 || n > STORE_FILE_MAX_BLOCKS)
        return ow_fail(err, "%s: a store holds 1 to %d blocks, not %d", path, STORE_FILE_MAX_BLOCKS, n);
    w->path = ow_xstrdup(path);
    w->n_blocks = n;
    w->blocks = ow_xcalloc((size_t)n, sizeof(StoreBlock));
    w->written = ow_xcalloc((size_t)n, 1);
    memcpy(w->header.magic, STORE_FILE_MAGIC, sizeof w->header.magic);
    w->header.version = STORE_FILE_VERSION;
    w->header.align = STORE_FILE_ALIGN;
    w->header.block_count = (uint64_t)n;
    w->header.source_hash = source_hash;
    if (plan_layout(w, sizes, err) != 0 || store_lock(path, &w->lock_fd, err) != 0) return writer_free(w), -1;
    char tmp[64];
    snprintf(tmp, sizeof tmp, ".tmp-%ld", (long)getpid());
    w->tmp_path = ow_xmalloc(strlen(path) + strlen(tmp) + 1);
    strcat(strcpy(w->tmp_path, path), tmp);
    ow_remove_stale_tmp(path);
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        ow_fail(err, "%s: cannot create the store file: %s", w->tmp_path, strerror(errno));
        free(w->tmp_path), w->tmp_path = NULL; /* nothing to remove */
        return store_writer_abort(w), -1;
    }
    int rc = posix_fallocate(w->fd, 0, (off_t)w->header.file_size);
    if (rc != 0) {
        ow_fail(err, "%s: cannot reserve %llu bytes (%.2f GiB) for the store file: %s", path,
                (unsigned long long)w->header.file_size, (double)w->header.file_size / (1u << 30), strerror(rc));
        if (rc == ENOSPC) ow_fail_suffix(err, "free space on that disk or choose another directory");
        if (rc == EFBIG)
            ow_fail_suffix(err, "the file size limit (ulimit -f) or the filesystem's largest file is smaller; raise "
                                "it or choose another directory");
        return store_writer_abort(w), -1;
    }
    return 0;
}

int store_writer_put(StoreWriter *w, int i, const void *data, OwError *err) {
    OW_CHECKF(i >= 0 && i < w->n_blocks, "block %d of %d", i, w->n_blocks);
    OW_CHECKF(!w->written[i], "block %d put twice", i);
    const StoreBlock *b = &w->blocks[i];
    if (pwrite_all(w->fd, w->tmp_path, data, (size_t)b->size, b->offset, err) != 0)
        return ow_fail_prefix(err, "store block %d", i);
    w->blocks[i].hash = xxh64(data, (size_t)b->size, 0);
    w->written[i] = 1;
    return 0;
}

int store_writer_commit(StoreWriter *w, OwError *err) {
    for (int i = 0; i < w->n_blocks; i++) OW_CHECKF(w->written[i], "store block %d never put", i);
    w->header.header_hash = header_checksum(&w->header, w->blocks);
    size_t table = (size_t)w->n_blocks * sizeof(StoreBlock);
    if (pwrite_all(w->fd, w->tmp_path, &w->header, sizeof w->header, 0, err) != 0 ||
        pwrite_all(w->fd, w->tmp_path, w->blocks, table, sizeof w->header, err) != 0)
        return store_writer_abort(w), -1;
    if (fsync(w->fd) != 0) {
        ow_fail(err, "%s: fsync: %s", w->tmp_path, strerror(errno));
        return store_writer_abort(w), -1;
    }
    if (rename(w->tmp_path, w->path) != 0) {
        ow_fail(err, "%s: cannot rename into place: %s", w->path, strerror(errno));
        return store_writer_abort(w), -1;
    }
    char *dir = ow_path_dirname(w->path);
    int rc = ow_fsync_dir(dir, err);
    free(dir);
    writer_free(w);
    return rc;
}

/* Checks the header fields that need nothing but the header itself. */
static int check_header(const StoreFileHeader *h, const char *path, OwError *err) {
    if (memcmp(h->magic, STORE_FILE_MAGIC, sizeof h->magic) != 0)
        return ow_fail(err, "%s: not an owlore store file (wrong magic)", path);
    if (h->version != STORE_FILE_VERSION)
        return ow_fail(err, "%s: store format version %u, this build reads version %u", path, h->version,
                       STORE_FILE_VERSION);
    if (h->align != STORE_FILE_ALIGN || h->block_count == 0 || h->block_count > STORE_FILE_MAX_BLOCKS ||
        (h->flags & ~STORE_FILE_MODIFIED) != 0)
        return ow_fail(err, "%s: corrupt store header (alignment %u, %llu blocks, flags %llx)", path, h->align,
                       (unsigned long long)h->block_count, (unsigned long long)h->flags);
    return 0;
}

/* Table entries marked written back. */
static int marked_blocks(const StoreBlock *blocks, int n) {
    int marked = 0;
    for (int i = 0; i < n; i++) marked += (blocks[i].flags & STORE_BLOCK_WRITTEN_BACK) != 0;
    return marked;
}

/* Checks every table entry is aligned, in order and inside the file size the header states, and its flags
 * agree with the header's (STORE_FILE_MODIFIED exactly when a block is marked written back). */
static int check_table(const StoreFile *sf, const StoreFileHeader *h, OwError *err) {
    uint64_t next = h->data_offset;
    if (next != store_file_record_bytes(table_end(h->block_count)))
        return ow_fail(err, "%s: corrupt store header (data offset %llu)", sf->path, (unsigned long long)next);
    for (int i = 0; i < sf->n_blocks; i++) {
        const StoreBlock *b = &sf->blocks[i];
        if (b->offset != next || b->size == 0 || b->size > h->file_size || (b->flags & ~STORE_BLOCK_WRITTEN_BACK))
            return ow_fail(err, "%s: corrupt store table at block %d", sf->path, i);
        next += store_file_record_bytes(b->size);
    }
    if (next != h->file_size)
        return ow_fail(err, "%s: corrupt store table (records end at %llu)", sf->path, (unsigned long long)next);
    int marked = marked_blocks(sf->blocks, sf->n_blocks);
    if (!marked != !(h->flags & STORE_FILE_MODIFIED))
        return ow_fail(err, "%s: corrupt store header (flags %llx, %d blocks written back)", sf->path,
                       (unsigned long long)h->flags, marked);
    return 0;
}

static int read_header(StoreFile *sf, uint64_t source_hash, OwError *err) {
    StoreFileHeader h;
    struct stat st;
    if (fstat(sf->fd, &st) != 0) return ow_fail(err, "%s: fstat: %s", sf->path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ow_fail(err, "%s: not a regular file", sf->path);
    int rc = pread_all(sf->fd, &h, sizeof h, 0);
    if (rc < 0) return ow_fail(err, "%s: reading the header: %s", sf->path, strerror(errno));
    if (rc == 0)
        return ow_fail(err, "%s: truncated store file (%lld bytes, no whole header)", sf->path, (long long)st.st_size);
    if (check_header(&h, sf->path, err) != 0) return -1;
    sf->n_blocks = (int)h.block_count;
    sf->blocks = ow_xcalloc((size_t)sf->n_blocks, sizeof(StoreBlock));
    rc = pread_all(sf->fd, sf->blocks, (size_t)h.block_count * sizeof(StoreBlock), sizeof h);
    if (rc < 0) return ow_fail(err, "%s: reading the block table: %s", sf->path, strerror(errno));
    if (rc == 0) return ow_fail(err, "%s: truncated store file (the block table is cut)", sf->path);
    if (header_checksum(&h, sf->blocks) != h.header_hash)
        return ow_fail(err, "%s: store header checksum mismatch (corrupt header)", sf->path);
    if (check_table(sf, &h, err) != 0) return -1;
    if (h.source_hash != source_hash)
        return ow_fail(err, "%s: written for another model (source hash %016llx, this model's %016llx)", sf->path,
                       (unsigned long long)h.source_hash, (unsigned long long)source_hash);
    if ((uint64_t)st.st_size != h.file_size)
        return ow_fail(err, "%s: truncated store file (%lld bytes, the header says %llu)", sf->path,
                       (long long)st.st_size, (unsigned long long)h.file_size);
    sf->source_hash = h.source_hash;
    sf->file_size = h.file_size;
    sf->header = h;
    return 0;
}

/* The lock first (so nobody replaces or writes the file while we validate it), then the file; a
 * missing store is named before any lock file is created beside it. hint: a header that is refused
 * says what to do about it (not for store_file_reusable, whose caller writes the store again). */
static int store_open(StoreFile *sf, const char *path, uint64_t source_hash, int writable, int hint, OwError *err) {
    memset(sf, 0, sizeof *sf);
    sf->fd = sf->lock_fd = -1;
    sf->path = ow_xstrdup(path);
    struct stat st;
    int missing = stat(path, &st) != 0 && errno == ENOENT;
    if (!missing && store_lock(path, &sf->lock_fd, err) != 0) return store_file_close(sf), -1;
    sf->fd = missing ? (errno = ENOENT, -1) : open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (sf->fd < 0) {
        int e = errno;
        ow_fail(err, "%s: cannot open the store file: %s", path, strerror(e));
        if (e == ENOENT) ow_fail_suffix(err, "it is written at setup; write it first");
        return store_file_close(sf), -1;
    }
    if (read_header(sf, source_hash, err) != 0) {
        if (hint) ow_fail_suffix(err, "delete it to have it written again, or use another directory");
        return store_file_close(sf), -1;
    }
    sf->writable = writable;
    return 0;
}

int store_file_open(StoreFile *sf, const char *path, uint64_t source_hash, OwError *err) {
    return store_open(sf, path, source_hash, 0, 1, err);
}

int store_file_open_rw(StoreFile *sf, const char *path, uint64_t source_hash, OwError *err) {
    return store_open(sf, path, source_hash, 1, 1, err);
}

void store_file_close(StoreFile *sf) {
    if (sf->path && sf->fd >= 0) close(sf->fd);
    if (sf->path) store_unlock(&sf->lock_fd);
    free(sf->path);
    free(sf->blocks);
    memset(sf, 0, sizeof *sf);
    sf->fd = sf->lock_fd = -1;
}

int store_file_reusable(const char *path, uint64_t source_hash, int n, const uint64_t *sizes, uint8_t *source,
                        OwError *err) {
    StoreFile sf;
    if (store_open(&sf, path, source_hash, 0, 0, err) != 0) return 0;
    int same = sf.n_blocks == n;
    for (int i = 0; same && i < n; i++) same = sf.blocks[i].size == sizes[i];
    if (!same) ow_fail(err, "%s: a store of another block layout (%d blocks)", path, sf.n_blocks);
    for (int i = 0; same && i < n; i++) source[i] = !(sf.blocks[i].flags & STORE_BLOCK_WRITTEN_BACK);
    store_file_close(&sf);
    return same;
}

int store_file_verify_block(const StoreFile *sf, int i, const void *data, OwError *err) {
    OW_CHECKF(i >= 0 && i < sf->n_blocks, "block %d of %d", i, sf->n_blocks);
    const StoreBlock *b = &sf->blocks[i];
    uint64_t h = xxh64(data, (size_t)b->size, 0);
    if (h != b->hash)
        return ow_fail(err,
                       "%s: block %d (%llu bytes at offset %llu) fails its checksum (xxh64 %016llx, expected "
                       "%016llx): the store file is corrupt; delete it to rewrite it",
                       sf->path, i, (unsigned long long)b->size, (unsigned long long)b->offset, (unsigned long long)h,
                       (unsigned long long)b->hash);
    return 0;
}

int store_file_read_block(const StoreFile *sf, int i, void *dst, OwError *err) {
    OW_CHECKF(i >= 0 && i < sf->n_blocks, "block %d of %d", i, sf->n_blocks);
    const StoreBlock *b = &sf->blocks[i];
    int rc = pread_all(sf->fd, dst, (size_t)b->size, b->offset);
    if (rc < 0) return ow_fail(err, "%s: reading block %d: %s", sf->path, i, strerror(errno));
    if (rc == 0)
        return ow_fail(err, "%s: reading block %d: short read (the file was cut after it was opened)", sf->path, i);
    return store_file_verify_block(sf, i, dst, err);
}

/* Rewrites sf's header (header_hash recomputed) and, for i >= 0, block i's table entry, then
 * fdatasyncs (the file's size never changes here, so that makes all of it durable). */
static int write_header(StoreFile *sf, int i, OwError *err) {
    sf->header.header_hash = header_checksum(&sf->header, sf->blocks);
    uint64_t entry = sizeof(StoreFileHeader) + (uint64_t)i * sizeof(StoreBlock);
    if ((i >= 0 && pwrite_all(sf->fd, sf->path, &sf->blocks[i], sizeof(StoreBlock), entry, err) != 0) ||
        pwrite_all(sf->fd, sf->path, &sf->header, sizeof sf->header, 0, err) != 0)
        return -1;
    if (fdatasync(sf->fd) != 0) return ow_fail(err, "%s: fdatasync: %s", sf->path, strerror(errno));
    return 0;
}

int store_file_write_block(StoreFile *sf, int i, const void *data, OwError *err) {
    OW_CHECKF(sf->writable, "%s: a write-back to a store opened read-only", sf->path);
    OW_CHECKF(i >= 0 && i < sf->n_blocks, "block %d of %d", i, sf->n_blocks);
    StoreBlock *b = &sf->blocks[i];
    if (!(b->flags & STORE_BLOCK_WRITTEN_BACK)) {
        /* durable before the record changes: from here on block i is not the source's for any later open */
        uint64_t was = sf->header.flags;
        b->flags |= STORE_BLOCK_WRITTEN_BACK;
        sf->header.flags |= STORE_FILE_MODIFIED;
        if (write_header(sf, i, err) != 0) {
            b->flags &= ~STORE_BLOCK_WRITTEN_BACK; /* not known durable: the next write marks it again */
            sf->header.flags = was;
            return ow_fail_prefix(err, "marking block %d written back before writing it", i);
        }
    }
    if (pwrite_all(sf->fd, sf->path, data, (size_t)b->size, b->offset, err) != 0)
        return ow_fail_prefix(err, "writing block %d back", i),
               ow_fail_suffix(err, "its record may be part written: reading it fails its checksum");
    b->hash = xxh64(data, (size_t)b->size, 0);
    if (write_header(sf, i, err) != 0) return ow_fail_prefix(err, "writing block %d's checksum back", i);
    return 0;
}

int store_file_restore_block(StoreFile *sf, int i, const void *data, OwError *err) {
    OW_CHECKF(sf->writable, "%s: a restore to a store opened read-only", sf->path);
    OW_CHECKF(i >= 0 && i < sf->n_blocks, "block %d of %d", i, sf->n_blocks);
    StoreBlock *b = &sf->blocks[i];
    OW_CHECKF(b->flags & STORE_BLOCK_WRITTEN_BACK, "%s: block %d restored but never written back", sf->path, i);
    if (pwrite_all(sf->fd, sf->path, data, (size_t)b->size, b->offset, err) != 0)
        return ow_fail_prefix(err, "writing block %d's source bytes back", i);
    if (fdatasync(sf->fd) != 0) /* the record before the mark goes: never a cleared mark on old bytes */
        return ow_fail(err, "%s: fdatasync after block %d: %s", sf->path, i, strerror(errno));
    b->hash = xxh64(data, (size_t)b->size, 0);
    b->flags &= ~STORE_BLOCK_WRITTEN_BACK;
    uint64_t was = sf->header.flags;
    if (!marked_blocks(sf->blocks, sf->n_blocks)) sf->header.flags &= ~STORE_FILE_MODIFIED;
    if (write_header(sf, i, err) != 0) {
        b->flags |= STORE_BLOCK_WRITTEN_BACK; /* not known durable: still counts as written back */
        sf->header.flags = was;
        return ow_fail_prefix(err, "clearing block %d's written-back mark", i);
    }
    return 0;
}

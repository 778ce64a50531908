// ctest-labels: cpu
/* test_offload_store.c: the NVMe block store file and its reader
 * (offload/store_file.h, block_io.h; issue 14's store). Blocks of odd sizes go through a store file and back, bit for
 * bit, by pread, by io_uring (where the kernel allows it; skipped with a
 * message otherwise) and by the pread thread pool (forced by a pretend
 * refusal of io_uring), many reads in flight. Then every fault on its own:
 * the file missing, truncated (before and after opening), a flipped byte in
 * a block (the error names the block), written for another model, another
 * format version, wrong magic, a corrupt header, a disk too small (a 64 KiB
 * tmpfs in a user and mount namespace; skipped where not allowed), and
 * O_DIRECT refused by the filesystem (pretended; read through the page
 * cache), and a store on tmpfs read the same whether it takes O_DIRECT or
 * not (Linux 6.6 and later do); a file size limit in place of a full disk
 * (works unprivileged). Write-back of trained blocks: the new bytes read back
 * on every path, the table on disk follows, a block is marked written back
 * before its record changes and no longer counts as the source's, and the
 * source's bytes restored into it make the store the source's again; a
 * write-back that fails part-way names the block. Exclusive use: a second open, writer or reuse
 * check fails naming the holder's pid; close, commit, abort and a killed
 * holder release the lock. */
#include "core/fileio.h"
#include "core/hash.h"
#include "offload/block_io.h"
#include "offload/store_file.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NBLOCKS 7
#define SOURCE 0x0123456789abcdefull

/* Odd sizes: one byte, around a 4 KiB record, several chunks with a ragged tail. */
static const uint64_t SIZES[NBLOCKS] = {1, 4095, 4096, 4097, 300001, (1u << 20) + 3, 77777};

typedef struct {
    char *dir, *path;
    uint8_t *blocks[NBLOCKS];
} Store;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Writes the random blocks to dir/store.bin, last block first (puts come in any order).
 * No Criterion assertion: a namespace child (below) calls it too. */
static int store_build(Store *st, const char *dir, OwError *err) {
    st->dir = ow_xstrdup(dir);
    st->path = ow_path_join(dir, "store.bin");
    uint64_t seed = 42;
    for (int i = 0; i < NBLOCKS; i++) {
        st->blocks[i] = ow_xmalloc(SIZES[i]);
        for (uint64_t k = 0; k < SIZES[i]; k++) st->blocks[i][k] = (uint8_t)splitmix(&seed);
    }
    StoreWriter w;
    if (store_writer_begin(&w, st->path, SOURCE, NBLOCKS, SIZES, err) != 0) return -1;
    for (int i = NBLOCKS - 1; i >= 0; i--)
        if (store_writer_put(&w, i, st->blocks[i], err) != 0) return store_writer_abort(&w), -1;
    return store_writer_commit(&w, err);
}

static void store_new(Store *st) {
    char *dir = ts_tmpdir();
    OwError err;
    cr_assert_eq(store_build(st, dir, &err), 0, "%s", err.msg);
    free(dir);
}

static void store_free(Store *st, int remove_dir) {
    for (int i = 0; i < NBLOCKS; i++) free(st->blocks[i]);
    if (remove_dir) ts_rmtree(st->dir);
    free(st->dir);
    free(st->path);
}

/* A fresh store, opened. */
static void store_open_new(Store *st, StoreFile *sf) {
    store_new(st);
    OwError err;
    cr_assert_eq(store_file_open(sf, st->path, SOURCE, &err), 0, "%s", err.msg);
}

static void store_close_free(Store *st, StoreFile *sf) {
    store_file_close(sf);
    store_free(st, 1);
}

static uint64_t block_offset(const Store *st, int i) {
    StoreFile sf;
    OwError err;
    cr_assert_eq(store_file_open(&sf, st->path, SOURCE, &err), 0, "%s", err.msg);
    uint64_t off = sf.blocks[i].offset;
    store_file_close(&sf);
    return off;
}

/* Opening fails with a message holding want. */
static void expect_open_fails(const char *path, uint64_t source, const char *want) {
    StoreFile sf;
    OwError err;
    cr_assert_neq(store_file_open(&sf, path, source, &err), 0, "opened a bad store file (expected \"%s\")", want);
    cr_assert(strstr(err.msg, want) != NULL, "expected \"%s\" in: %s", want, err.msg);
    cr_assert(strstr(err.msg, path) != NULL, "the message names the file: %s", err.msg);
}

/* Entries of dir, "." and ".." not counted (-1: unreadable). No Criterion assertion: a namespace child calls it. */
static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static BlockIo *io_open(const StoreFile *sf, BlockIoOptions opt) {
    BlockIo *io;
    OwError err;
    cr_assert_eq(block_io_open(&io, sf, &opt, &err), 0, "%s", err.msg);
    return io;
}

/* Makes `reads` reads through io (blocks 0, 1, ... over and over), as many in flight as io
 * has slots, each into its own malloc'd (not 4 KiB-aligned) buffer, waited for in reverse
 * order of submission; each must equal what was written. No Criterion assertion: a
 * namespace child (below) calls it too; -1 with why in err. */
static int reads_match(BlockIo *io, const Store *st, int reads, OwError *err) {
    int slots = block_io_slots(io), rc = 0;
    uint8_t **dst = ow_xcalloc((size_t)slots, sizeof *dst);
    BlockIoTicket *t = ow_xcalloc((size_t)slots, sizeof *t);
    for (int k = 0; k < slots; k++) dst[k] = ow_xmalloc(SIZES[5]);
    for (int first = 0; rc == 0 && first < reads; first += slots) {
        int n = reads - first < slots ? reads - first : slots;
        for (int k = 0; k < n; k++) {
            memset(dst[k], 0xee, SIZES[(first + k) % NBLOCKS]);
            t[k] = block_io_submit(io, (first + k) % NBLOCKS, dst[k]);
        }
        if (block_io_in_flight(io) != n) rc = ow_fail(err, "%d reads in flight, not %d", block_io_in_flight(io), n);
        for (int k = n - 1; k >= 0; k--)
            if (block_io_wait(io, t[k], rc ? NULL : err) != 0) rc = -1;
        for (int k = 0; rc == 0 && k < n; k++) {
            int b = (first + k) % NBLOCKS;
            if (memcmp(dst[k], st->blocks[b], SIZES[b]) != 0) rc = ow_fail(err, "block %d differs after a read", b);
        }
    }
    for (int k = 0; k < slots; k++) free(dst[k]);
    free(dst);
    free(t);
    if (rc == 0 && block_io_in_flight(io) != 0) rc = ow_fail(err, "reads left in flight");
    return rc ? ow_fail_suffix(err, "%s", block_io_describe(io)) : 0;
}

static void read_all_async(BlockIo *io, const Store *st, int reads) {
    OwError err;
    cr_assert_eq(reads_match(io, st, reads, &err), 0, "%s", err.msg);
}

Test(store_file, round_trip_by_pread) {
    Store st;
    StoreFile sf;
    OwError err;
    store_open_new(&st, &sf);
    cr_assert_eq(sf.n_blocks, NBLOCKS);
    cr_assert_eq(sf.file_size % STORE_FILE_ALIGN, 0);
    for (int i = 0; i < NBLOCKS; i++) {
        cr_assert_eq(sf.blocks[i].offset % STORE_FILE_ALIGN, 0, "block %d's record is aligned", i);
        cr_assert_eq(sf.blocks[i].size, SIZES[i]);
        uint8_t *dst = ow_xmalloc(SIZES[i]);
        cr_assert_eq(store_file_read_block(&sf, i, dst, &err), 0, "%s", err.msg);
        cr_assert(memcmp(dst, st.blocks[i], SIZES[i]) == 0, "block %d", i);
        free(dst);
    }
    store_file_close(&sf);
    char *tmp = ow_xmalloc(strlen(st.path) + 64);
    sprintf(tmp, "%s.tmp-%ld", st.path, (long)getpid());
    cr_assert(!ow_path_exists(tmp), "the temporary is gone after the commit");
    free(tmp);
    store_free(&st, 1);
}

Test(block_io, round_trip_by_io_uring) {
    Store st;
    StoreFile sf;
    store_open_new(&st, &sf);
    BlockIo *io = io_open(&sf, (BlockIoOptions){.chunk_bytes = 64 << 10});
    if (block_io_path(io) != BLOCK_IO_URING) {
        char msg[600];
        snprintf(msg, sizeof msg, "io_uring is refused here: %s", block_io_describe(io));
        block_io_close(io);
        store_file_close(&sf);
        store_free(&st, 1);
        cr_skip_test("%s", msg);
    }
    cr_assert_str_eq(block_io_path_name(block_io_path(io)), "io_uring");
    cr_log_info("path: %s", block_io_describe(io));
    read_all_async(io, &st, 3 * NBLOCKS);
    block_io_close(io);
    store_close_free(&st, &sf);
}

/* A pretend refusal of io_uring by the kernel takes the fallback, with the same bytes. */
static void refused_uring_falls_back(int refuse, const char *why) {
    Store st;
    StoreFile sf;
    store_open_new(&st, &sf);
    BlockIo *io = io_open(&sf, (BlockIoOptions){.refuse_uring_errno = refuse, .chunk_bytes = 64 << 10, .threads = 3});
    cr_assert_eq(block_io_path(io), BLOCK_IO_THREADS, "%s", block_io_describe(io));
    cr_assert_str_eq(block_io_path_name(block_io_path(io)), "threads");
    cr_assert(strstr(block_io_describe(io), why) != NULL, "the reason is given: %s", block_io_describe(io));
    read_all_async(io, &st, 3 * NBLOCKS);
    block_io_close(io);
    store_close_free(&st, &sf);
}

Test(block_io, io_uring_refused_eperm_reads_the_same_by_threads) { refused_uring_falls_back(EPERM, strerror(EPERM)); }

Test(block_io, io_uring_refused_enosys_reads_the_same_by_threads) {
    refused_uring_falls_back(ENOSYS, strerror(ENOSYS));
}

/* Eight reads in flight at once (blocks repeat), each in 4 KiB chunks (up to 257 per block) through a
 * queue of depth 8, both paths; closing with a read in flight drains it. */
Test(block_io, many_reads_in_flight) {
    Store st;
    StoreFile sf;
    store_open_new(&st, &sf);
    for (int refuse = 0; refuse <= 1; refuse++) {
        BlockIo *io = io_open(
            &sf, (BlockIoOptions){
                     .slots = 8, .queue_depth = 8, .chunk_bytes = 4096, .refuse_uring_errno = refuse ? EPERM : 0});
        cr_assert_eq(block_io_slots(io), 8);
        cr_log_info("path: %s", block_io_describe(io));
        read_all_async(io, &st, 8 * NBLOCKS);
        cr_assert_eq(block_io_in_flight(io), 0);
        /* io_uring fills its queue of 8; the workers' queue holds every chunk submitted */
        cr_assert_geq(block_io_peak_chunk_reads(io), 8, "peak %d chunk reads outstanding (%s)",
                      block_io_peak_chunk_reads(io), block_io_describe(io));
        /* closing with reads in flight drains them */
        uint8_t *dst = ow_xmalloc(SIZES[5]);
        block_io_submit(io, 5, dst);
        block_io_close(io);
        free(dst);
    }
    store_close_free(&st, &sf);
}

Test(store_file, an_existing_valid_store_is_reused) {
    Store st;
    store_new(&st);
    OwError err;
    uint8_t src[NBLOCKS];
    cr_assert_eq(store_file_reusable(st.path, SOURCE, NBLOCKS, SIZES, src, &err), 1, "%s", err.msg);
    for (int i = 0; i < NBLOCKS; i++) cr_assert_eq(src[i], 1, "block %d of a fresh store is not the source's", i);
    cr_assert_eq(store_file_reusable(st.path, SOURCE + 1, NBLOCKS, SIZES, src, &err), 0);
    cr_assert(strstr(err.msg, "written for another model"), "%s", err.msg);
    uint64_t other[NBLOCKS];
    memcpy(other, SIZES, sizeof other);
    other[3]++;
    cr_assert_eq(store_file_reusable(st.path, SOURCE, NBLOCKS, other, src, &err), 0);
    cr_assert(strstr(err.msg, "another block layout"), "%s", err.msg);
    cr_assert_eq(store_file_reusable(st.path, SOURCE, NBLOCKS - 1, SIZES, src, &err), 0);
    char *missing = ow_path_join(st.dir, "none.bin");
    cr_assert_eq(store_file_reusable(missing, SOURCE, NBLOCKS, SIZES, src, &err), 0);
    free(missing);
    store_free(&st, 1);
}

Test(store_file, an_abandoned_write_leaves_nothing) {
    char *dir = ts_tmpdir(), *path = ow_path_join(dir, "store.bin");
    StoreWriter w;
    OwError err;
    cr_assert_eq(store_writer_begin(&w, path, SOURCE, NBLOCKS, SIZES, &err), 0, "%s", err.msg);
    uint8_t one = 7;
    cr_assert_eq(store_writer_put(&w, 0, &one, &err), 0, "%s", err.msg);
    store_writer_abort(&w);
    cr_assert(!ow_path_exists(path));
    cr_assert_eq(dir_entries(dir), 0, "no temporary or lock file is left");
    ts_rmtree(dir);
    free(dir);
    free(path);
}

/* Aborting a zeroed writer (one never begun) touches no descriptor: fd 0 and 1 stay open. */
Test(store_file, aborting_a_zeroed_writer_touches_nothing) {
    StoreWriter w;
    memset(&w, 0, sizeof w);
    if (fcntl(0, F_GETFD) == -1) cr_assert_eq(open("/dev/null", O_RDONLY), 0); /* fd 0 open, whatever the runner gave */
    store_writer_abort(&w);
    store_writer_abort(&w);
    cr_assert_neq(fcntl(0, F_GETFD), -1, "fd 0 was closed");
}

Test(store_file, missing_file_is_refused) {
    char *dir = ts_tmpdir(), *path = ow_path_join(dir, "store.bin");
    expect_open_fails(path, SOURCE, "No such file");
    expect_open_fails(path, SOURCE, "write it first");
    cr_assert_eq(dir_entries(dir), 0, "a missing store is named before a lock file is made beside it");
    ts_rmtree(dir);
    free(dir);
    free(path);
}

Test(store_file, truncated_file_is_refused) {
    Store st;
    store_new(&st);
    struct stat s;
    cr_assert_eq(stat(st.path, &s), 0);
    cr_assert_eq(truncate(st.path, s.st_size - STORE_FILE_ALIGN), 0);
    expect_open_fails(st.path, SOURCE, "truncated store file");
    cr_assert_eq(truncate(st.path, 100), 0); /* the table cut */
    expect_open_fails(st.path, SOURCE, "truncated store file");
    cr_assert_eq(truncate(st.path, 10), 0); /* the header cut */
    expect_open_fails(st.path, SOURCE, "truncated store file");
    store_free(&st, 1);
}

Test(store_file, written_for_another_model_is_refused) {
    Store st;
    store_new(&st);
    expect_open_fails(st.path, SOURCE ^ 1, "written for another model");
    store_free(&st, 1);
}

Test(store_file, another_format_version_is_refused) {
    Store st;
    store_new(&st);
    ts_corrupt_byte(st.path, 8); /* the version's low byte */
    expect_open_fails(st.path, SOURCE, "store format version");
    store_free(&st, 1);
}

Test(store_file, wrong_magic_is_refused) {
    Store st;
    store_new(&st);
    ts_corrupt_byte(st.path, 0);
    expect_open_fails(st.path, SOURCE, "wrong magic");
    store_free(&st, 1);
}

Test(store_file, corrupt_header_or_table_is_refused) {
    Store st;
    store_new(&st);
    ts_corrupt_byte(st.path, 64 + 3 * 24 + 16); /* block 3's checksum in the table */
    expect_open_fails(st.path, SOURCE, "header checksum mismatch");
    store_free(&st, 1);
    store_new(&st);
    ts_corrupt_byte(st.path, 16); /* block_count's low byte */
    expect_open_fails(st.path, SOURCE, "header checksum mismatch");
    store_free(&st, 1);
}

/* A flipped byte inside block 4's record: the store opens, other blocks read, block 4 is named. */
Test(store_file, flipped_byte_names_the_block) {
    Store st;
    store_new(&st);
    ts_corrupt_byte(st.path, (long)(block_offset(&st, 4) + 12345));
    StoreFile sf;
    OwError err;
    cr_assert_eq(store_file_open(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    uint8_t *dst = ow_xmalloc(SIZES[4]);
    cr_assert_eq(store_file_read_block(&sf, 3, dst, &err), 0, "%s", err.msg);
    cr_assert_neq(store_file_read_block(&sf, 4, dst, &err), 0, "a flipped byte went unnoticed");
    cr_assert(strstr(err.msg, "block 4 ") && strstr(err.msg, "checksum") && strstr(err.msg, st.path), "%s", err.msg);
    for (int refuse = 0; refuse <= 1; refuse++) {
        BlockIo *io = io_open(&sf, (BlockIoOptions){.refuse_uring_errno = refuse ? EPERM : 0});
        BlockIoTicket t3 = block_io_submit(io, 3, dst), t4;
        cr_assert_eq(block_io_wait(io, t3, &err), 0, "%s", err.msg);
        t4 = block_io_submit(io, 4, dst);
        cr_assert_neq(block_io_wait(io, t4, &err), 0, "a flipped byte went unnoticed (%s)", block_io_describe(io));
        cr_assert(strstr(err.msg, "block 4 ") && strstr(err.msg, "checksum"), "%s", err.msg);
        block_io_close(io);
    }
    free(dst);
    store_close_free(&st, &sf);
}

/* The file cut after it was opened: a read of the lost block fails naming it, on both paths. */
Test(block_io, read_past_the_end_names_the_block) {
    Store st;
    StoreFile sf;
    OwError err;
    store_open_new(&st, &sf);
    cr_assert_eq(truncate(st.path, (off_t)sf.blocks[5].offset + STORE_FILE_ALIGN), 0);
    uint8_t *dst = ow_xmalloc(SIZES[5]);
    for (int refuse = 0; refuse <= 1; refuse++) {
        BlockIo *io = io_open(&sf, (BlockIoOptions){.refuse_uring_errno = refuse ? EPERM : 0});
        BlockIoTicket t = block_io_submit(io, 5, dst);
        cr_assert_neq(block_io_wait(io, t, &err), 0, "a short read went unnoticed (%s)", block_io_describe(io));
        cr_assert(strstr(err.msg, "block 5") && strstr(err.msg, "short read") && strstr(err.msg, st.path), "%s: %s",
                  block_io_describe(io), err.msg);
        t = block_io_submit(io, 2, dst); /* blocks before the cut still read */
        cr_assert_eq(block_io_wait(io, t, &err), 0, "%s", err.msg);
        cr_assert(memcmp(dst, st.blocks[2], SIZES[2]) == 0);
        block_io_close(io);
    }
    cr_assert_eq(store_file_read_block(&sf, 6, dst, &err), -1);
    cr_assert(strstr(err.msg, "block 6") && strstr(err.msg, "short read"), "%s", err.msg);
    free(dst);
    store_close_free(&st, &sf);
}

/* 1 MiB+ of blocks into dir, which has room for 64 KiB: 0 when refused naming why (the errno text)
 * with nothing left behind (no temporary, no lock file) and nothing a later run would reuse. */
static int too_small_in(const char *dir, const char *why) {
    char *path = ow_path_join(dir, "store.bin");
    StoreWriter w;
    OwError err;
    if (store_writer_begin(&w, path, SOURCE, NBLOCKS, SIZES, &err) == 0) return fprintf(stderr, "began\n"), 1;
    fprintf(stderr, "%s\n", err.msg);
    if (!strstr(err.msg, why) || !strstr(err.msg, path)) return 2;
    if (dir_entries(dir) != 0) return fprintf(stderr, "a file is left behind\n"), 3;
    StoreFile sf;
    uint8_t src[NBLOCKS];
    if (store_file_open(&sf, path, SOURCE, &err) == 0) return 4;
    if (store_file_reusable(path, SOURCE, NBLOCKS, SIZES, src, &err) != 0) return 5;
    free(path);
    return 0;
}

static int too_small_body(const char *mnt) { return too_small_in(mnt, "No space left on device"); }

Test(store_file, disk_too_small_fails_clearly_and_leaves_nothing) {
    int rc = ts_on_private_tmpfs("64k", 0, too_small_body);
    cr_assert_eq(rc, 0, "the full disk was not reported as expected (child status %d; its stderr above)", rc);
}

/* Makes this process's writes past `bytes` of a file fail with EFBIG (ulimit -f, SIGXFSZ ignored);
 * returns the limit it had. Each Criterion test runs in its own process; the tests put it back. */
static struct rlimit limit_file_size(rlim_t bytes) {
    struct rlimit old, rl;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    rl = old;
    rl.rlim_cur = bytes;
    cr_assert_neq(signal(SIGXFSZ, SIG_IGN), SIG_ERR);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0, "%s", strerror(errno));
    return old;
}

/* The same with a file size limit of 64 KiB in place of a full disk: works unprivileged anywhere. */
Test(store_file, file_size_limit_fails_clearly_and_leaves_nothing) {
    char *dir = ts_tmpdir();
    struct rlimit old = limit_file_size(64 << 10);
    int rc = too_small_in(dir, strerror(EFBIG));
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(rc, 0, "the file size limit was not reported as expected (status %d; stderr above)", rc);
    ts_rmtree(dir);
    free(dir);
}

/* A pretend refusal of O_DIRECT by the filesystem: reads go through the page cache, same bytes, both paths. */
Test(block_io, o_direct_refused_reads_buffered) {
    Store st;
    StoreFile sf;
    store_open_new(&st, &sf);
    for (int refuse = 0; refuse <= 1; refuse++) {
        BlockIo *io = io_open(&sf, (BlockIoOptions){.refuse_direct = 1, .refuse_uring_errno = refuse ? EPERM : 0});
        cr_assert(!block_io_direct(io), "%s", block_io_describe(io));
        cr_assert(strstr(block_io_describe(io), "O_DIRECT refused by the filesystem"), "%s", block_io_describe(io));
        read_all_async(io, &st, 2 * NBLOCKS);
        block_io_close(io);
    }
    store_close_free(&st, &sf);
}

/* On tmpfs (O_DIRECT refused before Linux 6.6, taken since): same bytes, both paths, and a
 * read without O_DIRECT says why. */
static int tmpfs_body(const char *mnt) {
    Store st;
    StoreFile sf;
    OwError err;
    if (store_build(&st, mnt, &err) != 0 || store_file_open(&sf, st.path, SOURCE, &err) != 0)
        return fprintf(stderr, "%s\n", err.msg), 1;
    for (int refuse = 0; refuse <= 1; refuse++) {
        BlockIo *io;
        BlockIoOptions opt = {.refuse_uring_errno = refuse ? EPERM : 0};
        if (block_io_open(&io, &sf, &opt, &err) != 0) return fprintf(stderr, "%s\n", err.msg), 2;
        fprintf(stderr, "tmpfs: %s\n", block_io_describe(io));
        if (!block_io_direct(io) && !strstr(block_io_describe(io), "O_DIRECT refused")) return 3;
        if (reads_match(io, &st, 2 * NBLOCKS, &err) != 0) return fprintf(stderr, "%s\n", err.msg), 4;
        block_io_close(io);
    }
    store_file_close(&sf);
    store_free(&st, 0);
    return 0;
}

Test(block_io, store_on_tmpfs_reads_the_same) {
    int rc = ts_on_private_tmpfs("8m", 0, tmpfs_body);
    cr_assert_eq(rc, 0, "child status %d (its stderr above)", rc);
}

/* ---- write-back of trained blocks ---- */

/* New random bytes for block i in st (what the store should hold once written back). */
static void new_bytes(Store *st, int i, uint64_t seed) {
    for (uint64_t k = 0; k < SIZES[i]; k++) st->blocks[i][k] = (uint8_t)splitmix(&seed);
}

/* The header and table as on disk, read raw; *table is malloc'd. */
static StoreFileHeader disk_header(const char *path, StoreBlock **table) {
    StoreFileHeader h;
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(pread(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
    size_t bytes = (size_t)h.block_count * sizeof(StoreBlock);
    *table = ow_xmalloc(bytes);
    cr_assert_eq(pread(fd, *table, bytes, sizeof h), (ssize_t)bytes);
    close(fd);
    return h;
}

static uint64_t disk_header_hash(StoreFileHeader h, const StoreBlock *table) {
    h.header_hash = 0;
    Xxh64 s;
    xxh64_init(&s, 0);
    xxh64_update(&s, &h, sizeof h);
    xxh64_update(&s, table, (size_t)h.block_count * sizeof(StoreBlock));
    return xxh64_final(&s);
}

static uint64_t disk_flags(const char *path) {
    StoreBlock *table;
    uint64_t flags = disk_header(path, &table).flags;
    free(table);
    return flags;
}

/* Sets the header's flags on disk, its checksum made right again: only the flags differ. */
static void set_disk_flags(const char *path, uint64_t flags) {
    StoreBlock *table;
    StoreFileHeader h = disk_header(path, &table);
    h.flags = flags;
    h.header_hash = disk_header_hash(h, table);
    int fd = open(path, O_WRONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
    close(fd);
    free(table);
}

/* What is on disk is whole: the header checksum holds and every table entry is the xxh64 of st's block. */
static uint64_t expect_disk_table_matches(const Store *st) {
    StoreBlock *table;
    StoreFileHeader h = disk_header(st->path, &table);
    cr_assert_eq(h.header_hash, disk_header_hash(h, table), "the header checksum on disk is stale");
    for (int i = 0; i < NBLOCKS; i++)
        cr_assert_eq(table[i].hash, xxh64(st->blocks[i], SIZES[i], 0), "block %d's checksum on disk is stale", i);
    free(table);
    return h.flags;
}

static void expect_block_reads(const StoreFile *sf, const Store *st, int i) {
    uint8_t *dst = ow_xmalloc(SIZES[i]);
    OwError err;
    cr_assert_eq(store_file_read_block(sf, i, dst, &err), 0, "%s", err.msg);
    cr_assert(memcmp(dst, st->blocks[i], SIZES[i]) == 0, "block %d", i);
    free(dst);
}

/* Blocks written back read as the new bytes, by pread and through readers (O_DIRECT where the
 * filesystem allows, io_uring and threads) opened before the write; the record, table entry and
 * header checksum on disk follow; the header says modified from the first write on. */
Test(store_file, write_back_reads_the_new_bytes) {
    Store st;
    StoreFile sf;
    OwError err;
    store_new(&st);
    cr_assert_eq(store_file_open_rw(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    BlockIo *io[2] = {io_open(&sf, (BlockIoOptions){.chunk_bytes = 64 << 10}),
                      io_open(&sf, (BlockIoOptions){.refuse_uring_errno = EPERM})};
    for (int p = 0; p < 2; p++) read_all_async(io[p], &st, NBLOCKS); /* the old records, read once */
    cr_assert_eq(expect_disk_table_matches(&st), 0, "a fresh store is not modified");
    const int back[] = {5, 0, 3, 5};
    for (int k = 0; k < 4; k++) {
        new_bytes(&st, back[k], 1000 + (uint64_t)k);
        cr_assert_eq(store_file_write_block(&sf, back[k], st.blocks[back[k]], &err), 0, "%s", err.msg);
        cr_assert_eq(expect_disk_table_matches(&st), STORE_FILE_MODIFIED);
    }
    for (int i = 0; i < NBLOCKS; i++) expect_block_reads(&sf, &st, i);
    for (int p = 0; p < 2; p++) {
        cr_log_info("path: %s", block_io_describe(io[p]));
        read_all_async(io[p], &st, 2 * NBLOCKS);
        block_io_close(io[p]);
    }
    store_close_free(&st, &sf);
}

/* Which blocks the reuse check calls the source's: 1 for all but those in `back` (a -1 ended list). */
static void expect_source_blocks(const Store *st, const int *back) {
    uint8_t src[NBLOCKS];
    OwError err;
    cr_assert_eq(store_file_reusable(st->path, SOURCE, NBLOCKS, SIZES, src, &err), 1, "%s", err.msg);
    for (int i = 0; i < NBLOCKS; i++) {
        int was_back = 0;
        for (int k = 0; back[k] >= 0; k++) was_back |= back[k] == i;
        cr_assert_eq(src[i], !was_back, "block %d: source %d, written back %d", i, src[i], was_back);
    }
}

/* Blocks written back (even with the bytes they held) no longer count as the source's; the others do, and
 * the store opens again. Restoring the source's bytes into them makes the whole store the source's again,
 * unmarked on disk (header and table), and it reads the source's bytes on every path. */
Test(store_file, written_back_blocks_are_restored_and_the_rest_reused) {
    Store st;
    StoreFile sf;
    OwError err;
    store_new(&st);
    uint8_t *orig[NBLOCKS];
    for (int i = 0; i < NBLOCKS; i++) orig[i] = ow_xmalloc(SIZES[i]), memcpy(orig[i], st.blocks[i], SIZES[i]);
    cr_assert_eq(store_file_open_rw(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    cr_assert_eq(store_file_write_block(&sf, 2, st.blocks[2], &err), 0, "%s", err.msg); /* the same bytes */
    new_bytes(&st, 5, 7);
    cr_assert_eq(store_file_write_block(&sf, 5, st.blocks[5], &err), 0, "%s", err.msg);
    expect_block_reads(&sf, &st, 2);
    expect_block_reads(&sf, &st, 5);
    store_file_close(&sf);
    expect_source_blocks(&st, (const int[]){2, 5, -1});
    cr_assert_eq(disk_flags(st.path), STORE_FILE_MODIFIED);
    cr_assert_eq(store_file_open_rw(&sf, st.path, SOURCE, &err), 0, "a store with blocks written back: %s", err.msg);
    expect_block_reads(&sf, &st, 5); /* the trained bytes, until restored */
    cr_assert_eq(store_file_restore_block(&sf, 5, orig[5], &err), 0, "%s", err.msg);
    memcpy(st.blocks[5], orig[5], SIZES[5]);
    store_file_close(&sf);
    expect_source_blocks(&st, (const int[]){2, -1});
    cr_assert_eq(disk_flags(st.path), STORE_FILE_MODIFIED, "block 2 is still marked");
    cr_assert_eq(store_file_open_rw(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    cr_assert_eq(store_file_restore_block(&sf, 2, orig[2], &err), 0, "%s", err.msg);
    store_file_close(&sf);
    expect_source_blocks(&st, (const int[]){-1});
    cr_assert_eq(expect_disk_table_matches(&st), 0, "no block marked: the header is not modified either");
    cr_assert_eq(store_file_open(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    for (int i = 0; i < NBLOCKS; i++) expect_block_reads(&sf, &st, i);
    for (int refuse = 0; refuse <= 1; refuse++) {
        BlockIo *io = io_open(&sf, (BlockIoOptions){.refuse_uring_errno = refuse ? EPERM : 0});
        read_all_async(io, &st, NBLOCKS);
        block_io_close(io);
    }
    for (int i = 0; i < NBLOCKS; i++) free(orig[i]);
    store_close_free(&st, &sf);
}

static uint64_t disk_block_flags(const char *path, int i) {
    StoreBlock *table;
    (void)disk_header(path, &table);
    uint64_t f = table[i].flags;
    free(table);
    return f;
}

/* Sets block i's table flags on disk (the header checksum recomputed). */
static void set_disk_block_flags(const char *path, int i, uint64_t flags) {
    StoreBlock *table;
    StoreFileHeader h = disk_header(path, &table);
    table[i].flags = flags;
    h.header_hash = disk_header_hash(h, table);
    int fd = open(path, O_WRONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
    cr_assert_eq(pwrite(fd, table, NBLOCKS * sizeof *table, sizeof h), (ssize_t)(NBLOCKS * sizeof *table));
    close(fd);
    free(table);
}

/* The flags words: the header's STORE_FILE_MODIFIED must agree with the table's marks, and an unknown bit
 * in either is corruption. */
Test(store_file, header_and_block_flags_are_checked) {
    Store st;
    store_new(&st);
    set_disk_flags(st.path, STORE_FILE_MODIFIED);
    expect_open_fails(st.path, SOURCE, "corrupt store header");
    set_disk_block_flags(st.path, 3, STORE_BLOCK_WRITTEN_BACK);
    StoreFile sf;
    OwError err;
    cr_assert_eq(store_file_open(&sf, st.path, SOURCE, &err), 0, "header and table agree: %s", err.msg);
    store_file_close(&sf);
    set_disk_flags(st.path, 0);
    expect_open_fails(st.path, SOURCE, "corrupt store header");
    set_disk_block_flags(st.path, 3, 2);
    expect_open_fails(st.path, SOURCE, "corrupt store table at block 3");
    set_disk_block_flags(st.path, 3, 0);
    set_disk_flags(st.path, 2);
    expect_open_fails(st.path, SOURCE, "corrupt store header");
    set_disk_flags(st.path, 0);
    cr_assert_eq(store_file_open(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    store_close_free(&st, &sf);
}

/* A write-back that fails part-way through block 5's record (a file size limit inside it): the error
 * names the file and the block, the part-new record fails its checksum naming block 5 on every read
 * path, other blocks still read and write, and block 5 was marked written back on disk before the record
 * changed (also after a first attempt whose marking failed), so the next setup writes it again. */
Test(store_file, a_failed_write_back_names_the_block) {
    Store st;
    StoreFile sf;
    OwError err;
    store_new(&st);
    cr_assert_eq(store_file_open_rw(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    uint8_t *fresh = ow_xmalloc(SIZES[5]), *dst = ow_xmalloc(SIZES[5]);
    memset(fresh, 0x5a, SIZES[5]);
    int rw = sf.fd; /* a first write that cannot even mark the block (EBADF) changes nothing */
    sf.fd = open(st.path, O_RDONLY);
    cr_assert_neq(store_file_write_block(&sf, 5, fresh, &err), 0, "wrote through a read-only descriptor");
    cr_assert(strstr(err.msg, "marking block 5 written back before writing it"), "%s", err.msg);
    close(sf.fd);
    sf.fd = rw;
    cr_assert_eq(disk_flags(st.path), 0);
    cr_assert_eq(disk_block_flags(st.path, 5), 0);
    struct rlimit old = limit_file_size(sf.blocks[5].offset + 2 * STORE_FILE_ALIGN);
    int rc = store_file_write_block(&sf, 5, fresh, &err);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_neq(rc, 0, "a write-back past the file size limit succeeded");
    cr_assert(strstr(err.msg, "block 5") && strstr(err.msg, st.path) && strstr(err.msg, strerror(EFBIG)), "%s",
              err.msg);
    cr_assert_eq(disk_flags(st.path), STORE_FILE_MODIFIED, "the record changed before the mark");
    cr_assert_eq(disk_block_flags(st.path, 5), STORE_BLOCK_WRITTEN_BACK, "the record changed before the mark");
    cr_assert_neq(store_file_read_block(&sf, 5, dst, &err), 0, "a part-written block read as whole");
    cr_assert(strstr(err.msg, "block 5 ") && strstr(err.msg, "checksum"), "%s", err.msg);
    for (int refuse = 0; refuse <= 1; refuse++) {
        BlockIo *io = io_open(&sf, (BlockIoOptions){.refuse_uring_errno = refuse ? EPERM : 0});
        cr_assert_neq(block_io_wait(io, block_io_submit(io, 5, dst), &err), 0, "%s", block_io_describe(io));
        cr_assert(strstr(err.msg, "block 5 ") && strstr(err.msg, "checksum"), "%s", err.msg);
        block_io_close(io);
    }
    new_bytes(&st, 1, 99);
    cr_assert_eq(store_file_write_block(&sf, 1, st.blocks[1], &err), 0, "%s", err.msg);
    expect_block_reads(&sf, &st, 1);
    expect_block_reads(&sf, &st, 4);
    free(fresh);
    free(dst);
    store_file_close(&sf);
    expect_source_blocks(&st, (const int[]){1, 5, -1});
    store_free(&st, 1);
}

/* Restoring block 5's source bytes fails part-way through its record (a file size limit inside it): the
 * error names the file and the block, and the block stays marked written back on disk, so the next setup
 * writes it again; the next restore, whole, makes the store the source's again. */
Test(store_file, a_failed_restore_leaves_the_block_marked) {
    Store st;
    StoreFile sf;
    OwError err;
    store_new(&st);
    uint8_t *orig = ow_xmalloc(SIZES[5]);
    memcpy(orig, st.blocks[5], SIZES[5]);
    cr_assert_eq(store_file_open_rw(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    new_bytes(&st, 5, 3);
    cr_assert_eq(store_file_write_block(&sf, 5, st.blocks[5], &err), 0, "%s", err.msg);
    store_file_close(&sf);
    cr_assert_eq(store_file_open_rw(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    struct rlimit old = limit_file_size(sf.blocks[5].offset + 2 * STORE_FILE_ALIGN);
    int rc = store_file_restore_block(&sf, 5, orig, &err);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_neq(rc, 0, "a restore past the file size limit succeeded");
    cr_assert(strstr(err.msg, "block 5") && strstr(err.msg, st.path) && strstr(err.msg, strerror(EFBIG)), "%s",
              err.msg);
    store_file_close(&sf);
    cr_assert_eq(disk_block_flags(st.path, 5), STORE_BLOCK_WRITTEN_BACK);
    expect_source_blocks(&st, (const int[]){5, -1});
    cr_assert_eq(store_file_open_rw(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    cr_assert_eq(store_file_restore_block(&sf, 5, orig, &err), 0, "%s", err.msg);
    store_file_close(&sf);
    memcpy(st.blocks[5], orig, SIZES[5]);
    expect_source_blocks(&st, (const int[]){-1});
    cr_assert_eq(expect_disk_table_matches(&st), 0);
    free(orig);
    store_free(&st, 1);
}

/* ---- exclusive use: "<path>.lock" ---- */

/* A child process holding a store open read-write until told to close it, then until told to exit. */
typedef struct {
    pid_t pid;
    int to, from; /* pipes to and from it */
} Holder;

static Holder holder_start(const char *path) {
    int down[2], up[2];
    cr_assert(pipe(down) == 0 && pipe(up) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(down[1]), close(up[0]);
        StoreFile sf;
        OwError err;
        char c;
        int ok = store_file_open_rw(&sf, path, SOURCE, &err) == 0;
        if (!ok) fprintf(stderr, "holder: %s\n", err.msg);
        if (write(up[1], ok ? "o" : "x", 1) != 1 || read(down[0], &c, 1) != 1) _exit(1);
        store_file_close(&sf);
        if (write(up[1], "c", 1) != 1) _exit(1);
        _exit(read(down[0], &c, 1) == 0 ? 0 : 1); /* until the parent closes its end */
    }
    close(down[0]), close(up[1]);
    Holder h = {pid, down[1], up[0]};
    char c = 0;
    cr_assert_eq(read(h.from, &c, 1), 1);
    cr_assert_eq(c, 'o', "the holder could not open the store (its stderr above)");
    return h;
}

/* Tells the holder to close its store and waits until it has. */
static void holder_close_store(Holder *h) {
    char c = 0;
    cr_assert_eq(write(h->to, "n", 1), 1);
    cr_assert_eq(read(h->from, &c, 1), 1);
    cr_assert_eq(c, 'c');
}

static void holder_end(Holder *h, int kill_it) {
    if (kill_it) kill(h->pid, SIGKILL);
    close(h->to), close(h->from);
    int status;
    cr_assert_eq(waitpid(h->pid, &status, 0), h->pid);
    cr_assert(kill_it || (WIFEXITED(status) && WEXITSTATUS(status) == 0), "holder status %d", status);
}

/* While another process holds the store, every open, a writer and the reuse check fail at once
 * naming its pid and the hint; the lock is released when it closes the store (still running). */
Test(store_file, a_second_open_fails_naming_the_holder) {
    Store st;
    StoreFile sf;
    StoreWriter w;
    OwError err;
    store_new(&st);
    Holder h = holder_start(st.path);
    char want[96];
    snprintf(want, sizeof want, "is in use by another owlore process (pid %ld)", (long)h.pid);
    expect_open_fails(st.path, SOURCE, want);
    expect_open_fails(st.path, SOURCE, "another --nvme-dir, or wait");
    cr_assert_neq(store_file_open_rw(&sf, st.path, SOURCE, &err), 0);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    uint8_t src[NBLOCKS];
    cr_assert_eq(store_file_reusable(st.path, SOURCE, NBLOCKS, SIZES, src, &err), 0);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    cr_assert_neq(store_writer_begin(&w, st.path, SOURCE, NBLOCKS, SIZES, &err), 0, "a writer began on a held store");
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    cr_assert_eq(dir_entries(st.dir), 2, "only the store and its lock: no temporary");
    expect_open_fails(st.path, SOURCE, want); /* the failed writer left the holder's lock alone */
    holder_close_store(&h);
    cr_assert_eq(store_file_open(&sf, st.path, SOURCE, &err), 0, "the lock outlived close: %s", err.msg);
    store_file_close(&sf);
    holder_end(&h, 0);
    store_free(&st, 1);
}

/* A holder killed with SIGKILL leaves its lock file behind, which blocks nobody. */
Test(store_file, the_lock_goes_with_a_killed_holder) {
    Store st;
    StoreFile sf;
    OwError err;
    store_new(&st);
    Holder h = holder_start(st.path);
    holder_end(&h, 1);
    cr_assert_eq(store_file_open(&sf, st.path, SOURCE, &err), 0, "%s", err.msg);
    char *lp = ow_xmalloc(strlen(st.path) + 8);
    sprintf(lp, "%s.lock", st.path);
    char *text = ts_read_text(lp);
    cr_assert_eq(atol(text), (long)getpid(), "the lock file names its holder: %s", text);
    free(text);
    free(lp);
    store_close_free(&st, &sf);
}

/* A writer holds the lock from begin to commit or abort; in this process too, a second open is refused. */
Test(store_file, a_writer_holds_the_lock_until_commit_or_abort) {
    Store st;
    StoreFile sf;
    StoreWriter w, w2;
    OwError err;
    store_new(&st);
    cr_assert_eq(store_writer_begin(&w, st.path, SOURCE, NBLOCKS, SIZES, &err), 0, "%s", err.msg);
    expect_open_fails(st.path, SOURCE, "which has it open already");
    cr_assert_neq(store_writer_begin(&w2, st.path, SOURCE, NBLOCKS, SIZES, &err), 0, "two writers of one store");
    for (int i = 0; i < NBLOCKS; i++) cr_assert_eq(store_writer_put(&w, i, st.blocks[i], &err), 0, "%s", err.msg);
    cr_assert_eq(store_writer_commit(&w, &err), 0, "%s", err.msg);
    cr_assert_eq(store_file_open(&sf, st.path, SOURCE, &err), 0, "the lock outlived commit: %s", err.msg);
    cr_assert_neq(store_writer_begin(&w2, st.path, SOURCE, NBLOCKS, SIZES, &err), 0, "a writer under an open store");
    cr_assert(strstr(err.msg, "in use"), "%s", err.msg);
    store_file_close(&sf);
    cr_assert_eq(store_writer_begin(&w, st.path, SOURCE, NBLOCKS, SIZES, &err), 0, "%s", err.msg);
    store_writer_abort(&w);
    cr_assert_eq(dir_entries(st.dir), 2, "an aborted rewrite keeps the store and its lock file");
    cr_assert_eq(store_file_open(&sf, st.path, SOURCE, &err), 0, "the lock outlived abort: %s", err.msg);
    store_close_free(&st, &sf);
}

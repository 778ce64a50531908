// ctest-labels: cpu
/* test_offload_store.c: the NVMe block store file and its reader
 * (offload/store_file.h, block_io.h; issue 14's store, not yet used by
 * training). Blocks of odd sizes go through a store file and back, bit for
 * bit, by pread, by io_uring (where the kernel allows it; skipped with a
 * message otherwise) and by the pread thread pool (forced by a pretend
 * refusal of io_uring), many reads in flight. Then every fault on its own:
 * the file missing, truncated (before and after opening), a flipped byte in
 * a block (the error names the block), written for another model, another
 * format version, wrong magic, a corrupt header, a disk too small (a 64 KiB
 * tmpfs in a user and mount namespace; skipped where not allowed), and
 * O_DIRECT refused by the filesystem (pretended; read through the page
 * cache), and a store on tmpfs read the same whether it takes O_DIRECT or
 * not (Linux 6.6 and later do). */
#include "core/fileio.h"
#include "offload/block_io.h"
#include "offload/store_file.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    cr_assert_eq(store_file_reusable(st.path, SOURCE, NBLOCKS, SIZES, &err), 1, "%s", err.msg);
    cr_assert_eq(store_file_reusable(st.path, SOURCE + 1, NBLOCKS, SIZES, &err), 0);
    cr_assert(strstr(err.msg, "written for another model"), "%s", err.msg);
    uint64_t other[NBLOCKS];
    memcpy(other, SIZES, sizeof other);
    other[3]++;
    cr_assert_eq(store_file_reusable(st.path, SOURCE, NBLOCKS, other, &err), 0);
    cr_assert(strstr(err.msg, "another block layout"), "%s", err.msg);
    cr_assert_eq(store_file_reusable(st.path, SOURCE, NBLOCKS - 1, SIZES, &err), 0);
    char *missing = ow_path_join(st.dir, "none.bin");
    cr_assert_eq(store_file_reusable(missing, SOURCE, NBLOCKS, SIZES, &err), 0);
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
    char cmd[4200], *out;
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    cr_assert_eq(ts_run(cmd, &out), 0);
    cr_assert_eq(atoi(out), 0, "no temporary is left: %s", out);
    free(out);
    ts_rmtree(dir);
    free(dir);
    free(path);
}

Test(store_file, missing_file_is_refused) {
    char *dir = ts_tmpdir(), *path = ow_path_join(dir, "store.bin");
    expect_open_fails(path, SOURCE, "No such file");
    expect_open_fails(path, SOURCE, "write it first");
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

/* 1 MiB+ of blocks into a 64 KiB tmpfs: 0 when refused naming ENOSPC with nothing left behind. */
static int too_small_body(const char *mnt) {
    char *path = ow_path_join(mnt, "store.bin");
    StoreWriter w;
    OwError err;
    if (store_writer_begin(&w, path, SOURCE, NBLOCKS, SIZES, &err) == 0) return fprintf(stderr, "began\n"), 1;
    fprintf(stderr, "%s\n", err.msg);
    if (!strstr(err.msg, "No space left on device") || !strstr(err.msg, path)) return 2;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", mnt);
    if (system(cmd) != 0) return fprintf(stderr, "a file is left behind\n"), 3;
    StoreFile sf;
    if (store_file_open(&sf, path, SOURCE, &err) == 0) return 4;
    free(path);
    return 0;
}

Test(store_file, disk_too_small_fails_clearly_and_leaves_nothing) {
    int rc = ts_on_private_tmpfs("64k", 0, too_small_body);
    cr_assert_eq(rc, 0, "the full disk was not reported as expected (child status %d; its stderr above)", rc);
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

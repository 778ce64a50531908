/* test_data_tokens.c: the binary token file (round trip, corruption,
 * truncation, ids outside the vocabulary) and the packing batcher. */
#include "core/fileio.h"
#include "core/hash.h"
#include "data/batcher.h"
#include "data/tokfile.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static char *write_sample(const char *dir, int with_mask, int64_t vocab) {
    char *path = ow_path_join(dir, "t.bin");
    int32_t ids[50];
    uint8_t mask[50];
    for (int i = 0; i < 50; i++) {
        ids[i] = (i * 7) % 40;
        mask[i] = (uint8_t)(i % 3 != 0);
    }
    uint64_t offs[3] = {0, 20, 50};
    OwError err;
    cr_assert_eq(tokfile_write(path, ids, with_mask ? mask : NULL, 50, vocab, offs, 2, 0x1234, 0x5678, &err), 0, "%s",
                 err.msg);
    return path;
}

Test(tokfile, round_trip) {
    char *dir = ts_tmpdir();
    for (int w = 0; w < 2; w++) {
        char *p = write_sample(dir, 1, w ? 100000 : 40);
        TokData d;
        OwError err;
        cr_assert_eq(tokfile_read(p, &d, &err), 0, "%s", err.msg);
        cr_assert_eq(d.count, 50);
        cr_assert_eq(d.width, w ? 4 : 2);
        cr_assert_eq(d.ndocs, 2);
        cr_assert_eq(d.doc_offsets[1], 20);
        cr_assert_eq(d.tokenizer_hash, 0x1234);
        for (int i = 0; i < 50; i++) {
            cr_assert_eq(tokdata_id(&d, i), (i * 7) % 40);
            cr_assert_eq(d.mask[i], i % 3 != 0);
        }
        tokdata_free(&d);
        free(p);
    }
    ts_rmtree(dir);
    free(dir);
}

static void expect_read_error(const char *path, const char *needle) {
    TokData d;
    OwError err;
    cr_assert_eq(tokfile_read(path, &d, &err), -1, "reading %s should fail", path);
    cr_assert(strstr(err.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", err.msg, needle);
    cr_assert(strstr(err.msg, path) != NULL, "message names the file: %s", err.msg);
}

Test(tokfile, corrupt_and_truncated_files_are_refused) {
    char *dir = ts_tmpdir();
    char *p = write_sample(dir, 1, 40);
    char *buf;
    size_t len;
    OwError err;
    cr_assert_eq(ow_read_file(p, &buf, &len, &err), 0);
    char *q = ow_path_join(dir, "bad.bin");
    /* a flipped payload byte */
    buf[200] ^= 1;
    ts_write_file(q, buf, len);
    expect_read_error(q, "payload checksum");
    buf[200] ^= 1;
    /* a flipped header byte */
    buf[30] ^= 1;
    ts_write_file(q, buf, len);
    expect_read_error(q, "header checksum");
    buf[30] ^= 1;
    /* truncations */
    size_t cuts[] = {0, 7, 100, 128, 129, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        ts_write_file(q, buf, cuts[i]);
        TokData d;
        cr_assert_eq(tokfile_read(q, &d, &err), -1, "a file cut at %zu bytes is refused", cuts[i]);
    }
    /* not a token file */
    ts_write_file(q,
                  "hello world, plain text and more than a header of "
                  "bytes......................................................................................",
                  140);
    expect_read_error(q, "not an owlore token file");
    /* an id past the vocabulary with valid checksums: rewrite the header's vocab to 10 */
    uint64_t vocab = 10;
    memcpy(buf + 16, &vocab, 8);
    uint64_t hh = xxh64(buf, 120, 0);
    memcpy(buf + 120, &hh, 8);
    ts_write_file(q, buf, len);
    expect_read_error(q, "outside the vocabulary");
    free(buf);
    free(q);
    free(p);
    ts_rmtree(dir);
    free(dir);
}

Test(tokfile, writer_refuses_bad_ids) {
    char *dir = ts_tmpdir();
    char *p = ow_path_join(dir, "x.bin");
    int32_t ids[3] = {1, 2, 300};
    OwError err;
    cr_assert_eq(tokfile_write(p, ids, NULL, 3, 256, NULL, 0, 0, 0, &err), -1);
    cr_assert(!ow_path_exists(p), "no partial output");
    free(p);
    ts_rmtree(dir);
    free(dir);
}

Test(batcher, windows_targets_masks_and_validation) {
    int32_t *ids = malloc(101 * sizeof(int32_t));
    for (int i = 0; i < 101; i++) ids[i] = i;
    TokData d;
    tokdata_from_ids(&d, ids, 101, 200);
    uint8_t mask[101];
    for (int i = 0; i < 101; i++) mask[i] = (uint8_t)(i % 2);
    d.mask = mask;
    Batcher b;
    OwError err;
    /* 100 / 10 = 10 windows, 2 held out */
    cr_assert_eq(batcher_init(&b, &d, 2, 10, 0.2, 0, 1, "test", &err), 0, "%s", err.msg);
    cr_assert_eq(b.ntrain, 8);
    cr_assert_eq(b.nval, 2);
    int32_t x[20], y[20];
    batcher_next(&b, x, y);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(x[i], i);
        cr_assert_eq(y[i], (i + 1) % 2 ? i + 1 : -100, "targets shift by one and honour the mask");
        cr_assert_eq(x[10 + i], 10 + i, "second row is the second window");
    }
    int64_t real = batcher_val_batch(&b, 0, x, y);
    cr_assert_eq(real, 2);
    cr_assert_eq(x[0], 80, "validation windows are the last ones");
    real = batcher_val_batch(&b, 1, x, y);
    cr_assert_eq(real, 0);
    for (int i = 0; i < 20; i++) cr_assert_eq(y[i], -100, "padding rows carry no targets");
    batcher_free(&b);
    tokdata_free(&d);
}

Test(batcher, shuffled_epochs_resume_exactly) {
    int32_t *ids = malloc(1001 * sizeof(int32_t));
    for (int i = 0; i < 1001; i++) ids[i] = i % 97;
    TokData d;
    tokdata_from_ids(&d, ids, 1001, 97);
    Batcher a, b;
    OwError err;
    cr_assert_eq(batcher_init(&a, &d, 3, 10, 0.0, 1, 5, "test", &err), 0);
    cr_assert_eq(batcher_init(&b, &d, 3, 10, 0.0, 1, 5, "test", &err), 0);
    int32_t xa[30], ya[30], xb[30], yb[30];
    for (int s = 0; s < 45; s++) batcher_next(&a, xa, ya); /* crosses an epoch boundary (100 windows) */
    batcher_seek(&b, a.epoch, a.index);
    for (int s = 0; s < 80; s++) {
        batcher_next(&a, xa, ya);
        batcher_next(&b, xb, yb);
        cr_assert_eq(memcmp(xa, xb, sizeof xa), 0, "batch %d after seek differs", s);
    }
    /* each epoch is a permutation of all windows */
    Batcher c;
    cr_assert_eq(batcher_init(&c, &d, 1, 10, 0.0, 1, 5, "test", &err), 0);
    int seen[100] = {0};
    for (int s = 0; s < 100; s++) {
        int32_t x[10], y[10];
        batcher_next(&c, x, y);
        seen[c.order[c.index - 1]]++;
    }
    for (int w = 0; w < 100; w++) cr_assert_eq(seen[w], 1);
    batcher_free(&a);
    batcher_free(&b);
    batcher_free(&c);
    tokdata_free(&d);
}

Test(batcher, too_little_data) {
    int32_t *ids = malloc(5 * sizeof(int32_t));
    for (int i = 0; i < 5; i++) ids[i] = i;
    TokData d;
    tokdata_from_ids(&d, ids, 5, 10);
    Batcher b;
    OwError err;
    cr_assert_eq(batcher_init(&b, &d, 1, 10, 0.0, 0, 1, "tiny.bin", &err), -1);
    cr_assert(strstr(err.msg, "tiny.bin") != NULL, "%s", err.msg);
    tokdata_free(&d);
}

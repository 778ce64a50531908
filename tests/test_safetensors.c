/* test_safetensors.c: the safetensors reader and writer: the real
 * TinyStories-656K file (alias, byte-exact round trip), byte compatibility
 * with files the HF safetensors library and transformers wrote
 * (tests/reference/make_io_fixtures.py), sharded round trips, and strict
 * rejection of corrupted, truncated and hostile files (plus a seeded fuzz
 * loop). */
#include "core/fileio.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/tensor_names.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

typedef struct Bytes {
    char *p;
    size_t n;
} Bytes;

static Bytes read_bytes(const char *path) {
    Bytes b;
    OwError err;
    cr_assert(ow_read_file(path, &b.p, &b.n, &err) == 0, "%s", err.msg);
    return b;
}

static void assert_same_file(const char *a, const char *b) {
    Bytes x = read_bytes(a), y = read_bytes(b);
    cr_assert_eq(x.n, y.n, "%s has %zu bytes, %s has %zu", a, x.n, b, y.n);
    size_t i = 0;
    while (i < x.n && x.p[i] == y.p[i]) i++;
    cr_assert_eq(i, x.n, "%s and %s differ at byte %zu", a, b, i);
    free(x.p);
    free(y.p);
}

static char *tmp_file(const char *dir, const char *name) { return ow_path_join(dir, name); }

/* A valid small file with three tensors of three dtypes:
 *   a: F32 [2,2] = {1,2,3,4}   b: BF16 [3]   c: F16 [2,1]
 * data section: a [0,16), b [16,22), c [22,26). */
static float k_a[4] = {1, 2, 3, 4};
static uint16_t k_b[3], k_c[2];

static void small_tensors(StWriteTensor t[3]) {
    for (int i = 0; i < 3; i++) k_b[i] = f32_to_bf16(0.5f * (float)i - 1.0f);
    for (int i = 0; i < 2; i++) k_c[i] = f32_to_f16(3.25f * (float)i + 0.125f);
    memset(t, 0, 3 * sizeof *t);
    t[0] = (StWriteTensor){.name = "a", .dtype = OW_F32, .ndim = 2, .shape = {2, 2}, .data = k_a};
    t[1] = (StWriteTensor){.name = "b", .dtype = OW_BF16, .ndim = 1, .shape = {3}, .data = k_b};
    t[2] = (StWriteTensor){.name = "c", .dtype = OW_F16, .ndim = 2, .shape = {2, 1}, .data = k_c};
}

static char *write_small(const char *dir) {
    StWriteTensor t[3];
    small_tensors(t);
    char *p = tmp_file(dir, "small.safetensors");
    OwError err;
    cJSON *md = cJSON_CreateObject();
    cJSON_AddStringToObject(md, "format", "pt");
    cr_assert(safetensors_write(p, t, 3, md, &err) == 0, "%s", err.msg);
    cJSON_Delete(md);
    return p;
}

/* Rewrites `src` into `dst` with its header text edited (first occurrence of
 * `from` replaced by `to`); the length prefix is updated, data kept. */
static void edit_header(const char *src, const char *dst, const char *from, const char *to) {
    Bytes b = read_bytes(src);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)(unsigned char)b.p[i] << (8 * i);
    char *hdr = strndup(b.p + 8, hlen);
    char *hit = strstr(hdr, from);
    cr_assert(hit != NULL, "\"%s\" not in header %s", from, hdr);
    size_t nf = strlen(from), nt = strlen(to), nh = strlen(hdr);
    size_t newlen = nh - nf + nt;
    char *out = malloc(8 + newlen + (b.n - 8 - hlen));
    for (int i = 0; i < 8; i++) out[i] = (char)((uint64_t)newlen >> (8 * i));
    size_t pre = (size_t)(hit - hdr);
    memcpy(out + 8, hdr, pre);
    memcpy(out + 8 + pre, to, nt);
    memcpy(out + 8 + pre + nt, hit + nf, nh - pre - nf);
    memcpy(out + 8 + newlen, b.p + 8 + hlen, b.n - 8 - hlen);
    ts_write_file(dst, out, 8 + newlen + (b.n - 8 - hlen));
    free(out);
    free(hdr);
    free(b.p);
}

/* Opens `path` expecting failure; checks the message names the file and
 * contains every given fragment. */
static void expect_open_fails(const char *path, const char *frag1, const char *frag2) {
    SafeTensors st;
    OwError err;
    err.msg[0] = '\0';
    int rc = safetensors_open(path, &st, &err);
    cr_assert_eq(rc, -1, "opening %s should fail", path);
    cr_assert(strstr(err.msg, path) != NULL, "message does not name the file %s: %s", path, err.msg);
    if (frag1) cr_assert(strstr(err.msg, frag1) != NULL, "message lacks \"%s\": %s", frag1, err.msg);
    if (frag2) cr_assert(strstr(err.msg, frag2) != NULL, "message lacks \"%s\": %s", frag2, err.msg);
    cr_assert_eq(st.ntensors, 0);
    cr_assert_null(st.files);
}

static void edit_and_expect(const char *from, const char *to, const char *frag1, const char *frag2) {
    char *dir = ts_tmpdir();
    char *good = write_small(dir);
    char *bad = tmp_file(dir, "bad.safetensors");
    edit_header(good, bad, from, to);
    expect_open_fails(bad, frag1, frag2);
    free(good);
    free(bad);
    ts_rmtree(dir);
    free(dir);
}

/* Writes the first `n` bytes of the small file to bad.safetensors and expects failure. */
static void truncate_and_expect(long cut, const char *frag) {
    char *dir = ts_tmpdir();
    char *good = write_small(dir);
    char *bad = tmp_file(dir, "bad.safetensors");
    Bytes b = read_bytes(good);
    size_t n = cut >= 0 ? (size_t)cut : b.n - (size_t)(-cut);
    cr_assert(n < b.n);
    ts_write_file(bad, b.p, n);
    expect_open_fails(bad, frag, NULL);
    free(b.p);
    free(good);
    free(bad);
    ts_rmtree(dir);
    free(dir);
}

static uint64_t header_len_of(const char *path) {
    Bytes b = read_bytes(path);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)(unsigned char)b.p[i] << (8 * i);
    free(b.p);
    return hlen;
}

/* ------------------------------------------------------------ real model */

Test(safetensors, tinystories_opens_with_alias) {
    char *path = ts_shared_path("data/real/hf/TinyStories-656K/model.safetensors");
    SafeTensors st;
    OwError err;
    cr_assert(safetensors_open(path, &st, &err) == 0, "%s", err.msg);
    cr_assert_eq(st.nfiles, 1);
    cr_assert_eq(st.ntensors, 20); /* lm_head + 2 * 9 + norm; the embedding is an alias */
    cr_assert_eq(st.naliases, 1);
    cr_assert_str_eq(st.alias_names[0], "model.embed_tokens.weight");
    cr_assert_str_eq(st.alias_targets[0], "lm_head.weight");
    const StTensor *emb = safetensors_find(&st, "model.embed_tokens.weight");
    const StTensor *head = safetensors_find(&st, "lm_head.weight");
    cr_assert_not_null(emb);
    cr_assert_eq(emb, head);
    cr_assert_eq(emb->dtype, OW_F32);
    cr_assert_eq(emb->ndim, 2);
    cr_assert_eq(emb->shape[0], 2048);
    cr_assert_eq(emb->shape[1], 128);
    cr_assert_null(safetensors_find(&st, "model.layers.2.mlp.up_proj.weight"));
    const StTensor *k = safetensors_find(&st, "model.layers.1.self_attn.k_proj.weight");
    cr_assert_not_null(k);
    cr_assert_eq(k->shape[0], 64);
    cr_assert_eq(k->nbytes, (size_t)64 * 128 * 4);
    /* the data pointer is into the mapping, at the header's offset */
    const char *base = (const char *)st.files[0].data;
    cr_assert(k->data > (const void *)base && (const char *)k->data + k->nbytes <= base + st.files[0].size);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(st.metadata, "format");
    cr_assert(cJSON_IsString(fmt) && strcmp(fmt->valuestring, "pt") == 0);
    /* the directory form finds the same file */
    SafeTensors st2;
    char *dir = ts_shared_path("data/real/hf/TinyStories-656K");
    cr_assert(safetensors_open(dir, &st2, &err) == 0, "%s", err.msg);
    cr_assert_eq(st2.ntensors, 20);
    safetensors_close(&st2);
    safetensors_close(&st);
    free(dir);
    free(path);
}

Test(safetensors, tinystories_round_trip_is_byte_exact) {
    char *path = ts_shared_path("data/real/hf/TinyStories-656K/model.safetensors");
    char *dir = ts_tmpdir();
    char *out1 = tmp_file(dir, "one.safetensors"), *out2 = tmp_file(dir, "two.safetensors");
    SafeTensors st;
    OwError err;
    cr_assert(safetensors_open(path, &st, &err) == 0, "%s", err.msg);
    StWriteTensor *w = safetensors_write_list(&st);
    cr_assert(safetensors_write(out1, w, st.ntensors, st.metadata, &err) == 0, "%s", err.msg);
    free(w);
    /* the HF library wrote the original: same format, same bytes */
    assert_same_file(out1, path);
    /* and the HF ordering rule reproduces its tensor order from any order */
    w = safetensors_write_list(&st);
    for (int i = 0; i < st.ntensors / 2; i++) {
        StWriteTensor tmp = w[i];
        w[i] = w[st.ntensors - 1 - i];
        w[st.ntensors - 1 - i] = tmp;
    }
    safetensors_sort_hf(w, st.ntensors);
    cr_assert(safetensors_write(out2, w, st.ntensors, st.metadata, &err) == 0, "%s", err.msg);
    assert_same_file(out2, path);
    free(w);
    safetensors_close(&st);
    ts_rmtree(dir);
    free(dir);
    free(out1);
    free(out2);
    free(path);
}

/* ------------------------------------------------------------ HF-written fixtures */

static void hf_fixture_round_trip(const char *fixture) {
    char *path = ts_fixture_path(fixture);
    char *dir = ts_tmpdir();
    char *out = tmp_file(dir, "out.safetensors");
    SafeTensors st;
    OwError err;
    cr_assert(safetensors_open(path, &st, &err) == 0, "%s", err.msg);
    StWriteTensor *w = safetensors_write_list(&st);
    /* reverse, then let the HF rule restore the library's order */
    for (int i = 0; i < st.ntensors / 2; i++) {
        StWriteTensor tmp = w[i];
        w[i] = w[st.ntensors - 1 - i];
        w[st.ntensors - 1 - i] = tmp;
    }
    safetensors_sort_hf(w, st.ntensors);
    cr_assert(safetensors_write(out, w, st.ntensors, st.metadata, &err) == 0, "%s", err.msg);
    assert_same_file(out, path);
    free(w);
    safetensors_close(&st);
    ts_rmtree(dir);
    free(dir);
    free(out);
    free(path);
}

Test(safetensors, hf_torch_save_file_bytes_reproduced) {
    hf_fixture_round_trip("safetensors/hf_mixed.safetensors");
    /* the values the reference script stored */
    char *path = ts_fixture_path("safetensors/hf_mixed.safetensors");
    SafeTensors st;
    OwError err;
    cr_assert(safetensors_open(path, &st, &err) == 0, "%s", err.msg);
    const StTensor *z = safetensors_find(&st, "zeta"), *c = safetensors_find(&st, "count"),
                   *i = safetensors_find(&st, "idx");
    const StTensor *m = safetensors_find(&st, "mask"), *w = safetensors_find(&st, "model.layers.0.w");
    cr_assert(z && c && i && m && w);
    cr_assert_eq(z->dtype, OW_BF16);
    cr_assert_eq(c->dtype, OW_I32);
    cr_assert_eq(i->dtype, OW_I64);
    cr_assert_eq(m->dtype, OW_U8);
    cr_assert_eq(w->ndim, 3);
    for (int k = 0; k < 6; k++) cr_assert_eq(bf16_to_f32(((const uint16_t *)z->data)[k]), (float)k);
    int32_t cv[4];
    memcpy(cv, c->data, sizeof cv);
    for (int k = 0; k < 4; k++) cr_assert_eq(cv[k], k - 2);
    int64_t iv[4];
    memcpy(iv, i->data, sizeof iv);
    cr_assert_eq(iv[3], 3 * 1000003);
    cr_assert_eq(((const uint8_t *)m->data)[2], 255);
    /* the library's order: I64, F32 by name, I32, BF16 by name, F16, U8 */
    const char *order[] = {"idx", "alpha", "model.layers.0.w", "count", "aa.bf16", "zeta", "beta", "mask"};
    cr_assert_eq(st.ntensors, 8);
    for (int k = 0; k < 8; k++) cr_assert_str_eq(st.tensors[k].name, order[k]);
    safetensors_close(&st);
    free(path);
}

Test(safetensors, hf_numpy_empty_and_scalar_tensors) {
    hf_fixture_round_trip("safetensors/hf_numpy.safetensors");
    char *path = ts_fixture_path("safetensors/hf_numpy.safetensors");
    SafeTensors st;
    OwError err;
    cr_assert(safetensors_open(path, &st, &err) == 0, "%s", err.msg);
    cr_assert_null(st.metadata);
    const StTensor *e = safetensors_find(&st, "empty"), *s = safetensors_find(&st, "scalar");
    cr_assert(e && s);
    cr_assert_eq(e->nbytes, 0);
    cr_assert_eq(e->shape[0], 0);
    cr_assert_eq(s->ndim, 0);
    cr_assert_eq(st_tensor_numel(s), 1);
    float v;
    memcpy(&v, s->data, 4);
    cr_assert_eq(v, 2.5f);
    safetensors_close(&st);
    free(path);
}

/* transformers save_pretrained(max_shard_size) output: read it, write it back
 * with the same shard size in state_dict order: same index bytes, same shard
 * assignment, same tensor data; each shard re-written in its stored order is
 * byte-identical. */
Test(safetensors, hf_sharded_checkpoint_reproduced) {
    char *fx = ts_fixture_path("hf_sharded");
    char *cfgp = ts_fixture_path("hf_sharded/config.json");
    char *sbp = ts_fixture_path("hf_sharded/SHARD_BYTES");
    Bytes sb = read_bytes(sbp);
    size_t shard_bytes = (size_t)strtoull(sb.p, NULL, 10);
    cr_assert(shard_bytes > 0);
    ModelConfig cfg;
    OwError err;
    cr_assert(model_config_load(cfgp, &cfg, &err) == 0, "%s", err.msg);
    SafeTensors st;
    cr_assert(safetensors_open(fx, &st, &err) == 0, "%s", err.msg);
    cr_assert_eq(st.nfiles, 3);
    cr_assert(model_check_tensors(&cfg, &st, fx, &err) == 0, "%s", err.msg);
    int n;
    ModelTensorSpec *spec = model_expected_tensors(&cfg, &n);
    StWriteTensor *w = calloc((size_t)n, sizeof *w);
    for (int i = 0; i < n; i++) {
        const StTensor *t = safetensors_find(&st, spec[i].name);
        cr_assert_not_null(t, "%s", spec[i].name);
        w[i] = (StWriteTensor){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
        memcpy(w[i].shape, t->shape, sizeof w[i].shape);
    }
    char *dir = ts_tmpdir();
    cr_assert(safetensors_write_sharded(dir, w, n, shard_bytes, st.metadata, &err) == 0, "%s", err.msg);
    char *idx_ours = ow_path_join(dir, "model.safetensors.index.json");
    char *idx_hf = ow_path_join(fx, "model.safetensors.index.json");
    assert_same_file(idx_ours, idx_hf);
    SafeTensors back;
    cr_assert(safetensors_open(dir, &back, &err) == 0, "%s", err.msg);
    cr_assert_eq(back.nfiles, 3);
    for (int i = 0; i < n; i++) {
        const StTensor *a = safetensors_find(&st, spec[i].name), *b = safetensors_find(&back, spec[i].name);
        cr_assert(a && b);
        cr_assert_eq(a->nbytes, b->nbytes);
        cr_assert(memcmp(a->data, b->data, a->nbytes) == 0, "%s differs", spec[i].name);
        const char *fa = strrchr(st.files[a->file].path, '/'), *fb = strrchr(back.files[b->file].path, '/');
        cr_assert_str_eq(fa, fb, "%s is in %s, HF put it in %s", spec[i].name, fb, fa);
    }
    /* each HF shard, re-written in its stored order, is byte-identical */
    for (int f = 0; f < st.nfiles; f++) {
        StWriteTensor *sub = calloc((size_t)st.ntensors, sizeof *sub);
        int k = 0;
        for (int i = 0; i < st.ntensors; i++) {
            const StTensor *t = &st.tensors[i];
            if (t->file != f) continue;
            sub[k] = (StWriteTensor){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
            memcpy(sub[k].shape, t->shape, sizeof sub[k].shape);
            k++;
        }
        safetensors_sort_hf(sub, k);
        char *out = ow_path_join(dir, "shard_copy.safetensors");
        cr_assert(safetensors_write(out, sub, k, st.metadata, &err) == 0, "%s", err.msg);
        assert_same_file(out, st.files[f].path);
        free(out);
        free(sub);
    }
    safetensors_close(&back);
    safetensors_close(&st);
    free(w);
    free(spec);
    ts_rmtree(dir);
    free(dir);
    free(idx_ours);
    free(idx_hf);
    free(sb.p);
    free(sbp);
    free(cfgp);
    free(fx);
}

/* ------------------------------------------------------------ our own round trips */

Test(safetensors, f32_bf16_f16_round_trip) {
    char *dir = ts_tmpdir();
    char *p1 = write_small(dir);
    char *p2 = tmp_file(dir, "again.safetensors");
    StWriteTensor t[3];
    small_tensors(t);
    SafeTensors st;
    OwError err;
    cr_assert(safetensors_open(p1, &st, &err) == 0, "%s", err.msg);
    cr_assert_eq(st.ntensors, 3);
    for (int i = 0; i < 3; i++) {
        const StTensor *r = safetensors_find(&st, t[i].name);
        cr_assert_not_null(r);
        cr_assert_eq(r->dtype, t[i].dtype);
        cr_assert_eq(r->ndim, t[i].ndim);
        for (int d = 0; d < r->ndim; d++) cr_assert_eq(r->shape[d], t[i].shape[d]);
        cr_assert_eq(r->nbytes, (size_t)st_tensor_numel(r) * dtype_size(r->dtype));
        cr_assert(memcmp(r->data, t[i].data, r->nbytes) == 0);
    }
    cr_assert_eq(bf16_to_f32(((const uint16_t *)safetensors_find(&st, "b")->data)[2]), 0.0f);
    cr_assert_eq(f16_to_f32(((const uint16_t *)safetensors_find(&st, "c")->data)[1]), 3.375f);
    /* the header length keeps the data 8-byte aligned */
    cr_assert_eq(header_len_of(p1) % 8, 0);
    StWriteTensor *w = safetensors_write_list(&st);
    cr_assert(safetensors_write(p2, w, st.ntensors, st.metadata, &err) == 0, "%s", err.msg);
    assert_same_file(p1, p2);
    free(w);
    safetensors_close(&st);
    ts_rmtree(dir);
    free(dir);
    free(p1);
    free(p2);
}

Test(safetensors, sharded_round_trip_small_shards) {
    enum { N = 7 };
    float data[N][40];
    StWriteTensor t[N];
    char names[N][32];
    memset(t, 0, sizeof t);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 40; k++) data[i][k] = (float)(i * 100 + k);
        snprintf(names[i], sizeof names[i], "w.%d", N - i); /* names not in write order */
        int64_t cols = i == 3 ? 40 : 10;                    /* tensor 3 (160 B) exceeds the shard size */
        t[i] = (StWriteTensor){.name = names[i], .dtype = OW_F32, .ndim = 1, .shape = {cols}, .data = data[i]};
    }
    char *dir = ts_tmpdir();
    char *dir2 = ow_path_join(dir, "again");
    OwError err;
    cr_assert(ow_mkdir_p(dir2, &err) == 0);
    /* 100-byte shards: [w.7 w.6] closes at w.5; w.4 (160 B) gets its own
     * shard at once, so the order is {w.7,w.6} {w.4} {w.5,w.3} {w.2,w.1}. */
    cr_assert(safetensors_write_sharded(dir, t, N, 100, NULL, &err) == 0, "%s", err.msg);
    char *idx = ow_path_join(dir, "model.safetensors.index.json");
    cr_assert(ow_path_exists(idx));
    SafeTensors st;
    cr_assert(safetensors_open(idx, &st, &err) == 0, "%s", err.msg);
    cr_assert_eq(st.nfiles, 4);
    const char *expect_shard[N] = {"model-00001-of-00004.safetensors", "model-00001-of-00004.safetensors",
                                   "model-00003-of-00004.safetensors", "model-00002-of-00004.safetensors",
                                   "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
                                   "model-00004-of-00004.safetensors"};
    for (int i = 0; i < N; i++) {
        const StTensor *r = safetensors_find(&st, names[i]);
        cr_assert_not_null(r);
        cr_assert(memcmp(r->data, data[i], r->nbytes) == 0);
        cr_assert_str_eq(strrchr(st.files[r->file].path, '/') + 1, expect_shard[i], "%s", names[i]);
    }
    /* the index as transformers writes it */
    Bytes ib = read_bytes(idx);
    const char *head = "{\n  \"metadata\": {\n    \"total_parameters\": 100,\n    \"total_size\": 400\n  },\n"
                       "  \"weight_map\": {\n    \"w.1\": \"model-00004-of-00004.safetensors\",\n";
    cr_assert(strncmp(ib.p, head, strlen(head)) == 0, "%s", ib.p);
    cr_assert(ib.n > 2 && ib.p[ib.n - 1] == '\n' && ib.p[ib.n - 2] == '}');
    free(ib.p);
    /* writing is deterministic: a second write gives the same bytes, shard by shard */
    cr_assert(safetensors_write_sharded(dir2, t, N, 100, NULL, &err) == 0, "%s", err.msg);
    for (int f = 1; f <= 4; f++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-00004.safetensors", f);
        char *a = ow_path_join(dir, name), *b = ow_path_join(dir2, name);
        assert_same_file(a, b);
        free(a);
        free(b);
    }
    char *idx2 = ow_path_join(dir2, "model.safetensors.index.json");
    assert_same_file(idx, idx2);
    safetensors_close(&st);
    /* one shard: a plain model.safetensors, no index */
    char *dir3 = ow_path_join(dir, "one");
    cr_assert(ow_mkdir_p(dir3, &err) == 0);
    cr_assert(safetensors_write_sharded(dir3, t, N, 1 << 20, NULL, &err) == 0, "%s", err.msg);
    char *single = ow_path_join(dir3, "model.safetensors"), *noidx = ow_path_join(dir3, "model.safetensors.index.json");
    cr_assert(ow_path_exists(single));
    cr_assert(!ow_path_exists(noidx));
    cr_assert(safetensors_open(dir3, &st, &err) == 0, "%s", err.msg);
    cr_assert_eq(st.ntensors, N);
    safetensors_close(&st);
    ts_rmtree(dir);
    free(single);
    free(noidx);
    free(dir3);
    free(idx2);
    free(idx);
    free(dir2);
    free(dir);
}

Test(safetensors, writer_refuses_bad_lists) {
    char *dir = ts_tmpdir();
    char *p = tmp_file(dir, "x.safetensors");
    StWriteTensor t[3];
    small_tensors(t);
    OwError err;
    t[1].name = "a";
    cr_assert_eq(safetensors_write(p, t, 3, NULL, &err), -1);
    cr_assert(strstr(err.msg, "given twice") != NULL, "%s", err.msg);
    small_tensors(t);
    t[0].shape[0] = -1;
    cr_assert_eq(safetensors_write(p, t, 3, NULL, &err), -1);
    t[0].shape[0] = 2;
    t[2].name = "__metadata__";
    cr_assert_eq(safetensors_write(p, t, 3, NULL, &err), -1);
    small_tensors(t);
    cJSON *md = cJSON_CreateObject();
    cJSON_AddNumberToObject(md, "n", 3);
    cr_assert_eq(safetensors_write(p, t, 3, md, &err), -1);
    cr_assert(strstr(err.msg, "\"n\"") != NULL, "%s", err.msg);
    cJSON_Delete(md);
    cr_assert(!ow_path_exists(p), "a refused write left a file");
    ts_rmtree(dir);
    free(dir);
    free(p);
}

/* ------------------------------------------------------------ bad files */

Test(safetensors_bad, empty_file) { truncate_and_expect(0, "shorter than the 8-byte header length"); }
Test(safetensors_bad, truncated_inside_length_prefix) { truncate_and_expect(5, "shorter than the 8-byte"); }
Test(safetensors_bad, truncated_inside_header) { truncate_and_expect(8 + 20, "runs past the end of the file"); }
Test(safetensors_bad, truncated_at_end_of_header) {
    char *dir = ts_tmpdir();
    char *good = write_small(dir);
    long cut = (long)(8 + header_len_of(good));
    free(good);
    ts_rmtree(dir);
    free(dir);
    truncate_and_expect(cut, "reach past the data section");
}
Test(safetensors_bad, truncated_inside_data) { truncate_and_expect(-3, "reach past the data section"); }
Test(safetensors_bad, truncated_by_one_byte) { truncate_and_expect(-1, "\"c\""); }

Test(safetensors_bad, header_length_past_end) {
    char *dir = ts_tmpdir();
    char *good = write_small(dir);
    char *bad = tmp_file(dir, "bad.safetensors");
    Bytes b = read_bytes(good);
    uint64_t len = b.n; /* > file size - 8 */
    for (int i = 0; i < 8; i++) b.p[i] = (char)(len >> (8 * i));
    ts_write_file(bad, b.p, b.n);
    expect_open_fails(bad, "runs past the end of the file", NULL);
    len = 1ull << 40; /* absurd */
    for (int i = 0; i < 8; i++) b.p[i] = (char)(len >> (8 * i));
    ts_write_file(bad, b.p, b.n);
    expect_open_fails(bad, "absurd", NULL);
    free(b.p);
    free(good);
    free(bad);
    ts_rmtree(dir);
    free(dir);
}

Test(safetensors_bad, malformed_header_json) { edit_and_expect("\"a\":{", "\"a\":{{", "malformed JSON", "header"); }
Test(safetensors_bad, header_not_an_object) {
    edit_and_expect("{\"__metadata__\"", "[{\"__metadata__\"", "malformed JSON", NULL);
}
Test(safetensors_bad, header_is_an_array) {
    char *dir = ts_tmpdir();
    char *good = write_small(dir);
    char *bad = tmp_file(dir, "bad.safetensors");
    /* replace the whole header by an array of the same length */
    Bytes b = read_bytes(good);
    uint64_t hlen = header_len_of(good);
    memset(b.p + 8, ' ', hlen);
    memcpy(b.p + 8, "[1,2]", 5);
    ts_write_file(bad, b.p, b.n);
    expect_open_fails(bad, "not a JSON object", NULL);
    free(b.p);
    free(good);
    free(bad);
    ts_rmtree(dir);
    free(dir);
}
Test(safetensors_bad, entry_not_an_object) {
    edit_and_expect("\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]}", "\"b\":[16,22]", "\"b\"",
                    "not an object");
}
Test(safetensors_bad, unknown_dtype) {
    edit_and_expect("\"BF16\"", "\"F8_E4M3\"", "unknown dtype \"F8_E4M3\"", "\"b\"");
}
Test(safetensors_bad, dtype_not_a_string) { edit_and_expect("\"BF16\"", "7", "dtype", "\"b\""); }
Test(safetensors_bad, shape_nbytes_mismatch) { edit_and_expect("\"shape\":[3]", "\"shape\":[4]", "\"b\"", "needs 8"); }
Test(safetensors_bad, dtype_nbytes_mismatch) { edit_and_expect("\"BF16\"", "\"F32\"", "\"b\"", "needs 12"); }
Test(safetensors_bad, shape_negative) {
    edit_and_expect("\"shape\":[3]", "\"shape\":[-3]", "\"b\"", "not a non-negative integer");
}
Test(safetensors_bad, shape_fractional) {
    edit_and_expect("\"shape\":[3]", "\"shape\":[3.5]", "\"b\"", "shape entry 0");
}
Test(safetensors_bad, shape_not_array) { edit_and_expect("\"shape\":[3]", "\"shape\":3", "\"b\"", "shape"); }
Test(safetensors_bad, shape_too_many_dims) {
    edit_and_expect("\"shape\":[3]", "\"shape\":[3,1,1,1,1]", "\"b\"", "5 dimensions");
}
Test(safetensors_bad, shape_overflow) {
    edit_and_expect("\"shape\":[3]", "\"shape\":[4294967296,4294967296,4294967296]", "\"b\"", "too large");
}
Test(safetensors_bad, offsets_out_of_range) {
    edit_and_expect("\"data_offsets\":[22,26]", "\"data_offsets\":[1000,1004]", "\"c\"", "past the data section");
}
Test(safetensors_bad, offsets_begin_after_end) { edit_and_expect("[22,26]", "[26,22]", "\"c\"", "begin after end"); }
Test(safetensors_bad, offsets_not_a_pair) { edit_and_expect("[22,26]", "[22,26,30]", "\"c\"", "data_offsets"); }
Test(safetensors_bad, offsets_missing) { edit_and_expect(",\"data_offsets\":[22,26]", "", "\"c\"", "data_offsets"); }
Test(safetensors_bad, offsets_overlapping) {
    /* c claims [12,16) inside a's [0,16), same length: only the overlap is wrong */
    edit_and_expect("[22,26]", "[12,16]", "overlap", "\"a\"");
}
Test(safetensors_bad, offsets_leave_a_gap) {
    /* b shifted by 2 leaves [16,18) uncovered (and c then overlaps b) */
    edit_and_expect("[16,22]", "[18,24]", "\"b\"", "belong to no tensor");
}
Test(safetensors_bad, data_section_not_covered) {
    char *dir = ts_tmpdir();
    char *good = write_small(dir);
    char *bad = tmp_file(dir, "bad.safetensors");
    Bytes b = read_bytes(good);
    char *big = malloc(b.n + 8);
    memcpy(big, b.p, b.n);
    memset(big + b.n, 0, 8);
    ts_write_file(bad, big, b.n + 8); /* 8 stray bytes after the last tensor */
    expect_open_fails(bad, "the tensors cover 26", NULL);
    free(big);
    free(b.p);
    free(good);
    free(bad);
    ts_rmtree(dir);
    free(dir);
}
Test(safetensors_bad, duplicate_tensor_name) { edit_and_expect("\"c\":{", "\"a\":{", "\"a\"", "appears twice"); }
Test(safetensors_bad, metadata_not_strings) {
    edit_and_expect("\"format\":\"pt\"", "\"format\":1", "__metadata__", "not a string");
}
Test(safetensors_bad, metadata_not_object) {
    edit_and_expect("{\"format\":\"pt\"}", "[\"pt\"]", "__metadata__", "not an object");
}

Test(safetensors_bad, directory_without_weights) {
    char *dir = ts_tmpdir();
    expect_open_fails(dir, "no model.safetensors", NULL);
    ts_rmtree(dir);
    free(dir);
}

Test(safetensors_bad, missing_file) {
    char *dir = ts_tmpdir();
    char *p = tmp_file(dir, "nothere.safetensors");
    expect_open_fails(p, "cannot open", NULL);
    free(p);
    ts_rmtree(dir);
    free(dir);
}

/* Sharded inputs: a valid 2-shard directory ({x, y} and {z, w}, 32 bytes
 * each, 64-byte shards), then the index or a shard is corrupted. */
static char *write_two_shards(void) {
    static float d[4][8];
    StWriteTensor t[4];
    memset(t, 0, sizeof t);
    const char *names[4] = {"x", "y", "z", "w"};
    for (int i = 0; i < 4; i++)
        t[i] = (StWriteTensor){.name = names[i], .dtype = OW_F32, .ndim = 1, .shape = {8}, .data = d[i]};
    char *dir = ts_tmpdir();
    OwError err;
    cr_assert(safetensors_write_sharded(dir, t, 4, 64, NULL, &err) == 0, "%s", err.msg);
    return dir;
}

static void index_edit_and_expect(const char *from, const char *to, const char *frag1, const char *frag2) {
    char *dir = write_two_shards();
    char *idx = ow_path_join(dir, "model.safetensors.index.json");
    Bytes b = read_bytes(idx);
    char *hit = strstr(b.p, from);
    cr_assert(hit != NULL, "%s not in %s", from, b.p);
    size_t nf = strlen(from), nt = strlen(to);
    char *out = malloc(b.n - nf + nt + 1);
    size_t pre = (size_t)(hit - b.p);
    memcpy(out, b.p, pre);
    memcpy(out + pre, to, nt);
    memcpy(out + pre + nt, hit + nf, b.n - pre - nf);
    ts_write_file(idx, out, b.n - nf + nt);
    expect_open_fails(dir, frag1, frag2);
    free(out);
    free(b.p);
    free(idx);
    ts_rmtree(dir);
    free(dir);
}

Test(safetensors_sharded, two_shards_open) {
    char *dir = write_two_shards();
    SafeTensors st;
    OwError err;
    cr_assert(safetensors_open(dir, &st, &err) == 0, "%s", err.msg);
    cr_assert_eq(st.nfiles, 2);
    cr_assert_eq(st.ntensors, 4);
    cr_assert_eq(safetensors_find(&st, "x")->file, 0);
    cr_assert_eq(safetensors_find(&st, "w")->file, 1);
    safetensors_close(&st);
    char *idx = ow_path_join(dir, "model.safetensors.index.json");
    Bytes b = read_bytes(idx);
    cr_assert_str_eq(
        b.p, "{\n  \"metadata\": {\n    \"total_parameters\": 32,\n    \"total_size\": 128\n  },\n"
             "  \"weight_map\": {\n    \"w\": \"model-00002-of-00002.safetensors\",\n"
             "    \"x\": \"model-00001-of-00002.safetensors\",\n    \"y\": \"model-00001-of-00002.safetensors\",\n"
             "    \"z\": \"model-00002-of-00002.safetensors\"\n  }\n}\n");
    free(b.p);
    free(idx);
    ts_rmtree(dir);
    free(dir);
}

Test(safetensors_bad, index_names_missing_shard) {
    index_edit_and_expect("\"z\": \"model-00002-of-00002.safetensors\"", "\"z\": \"model-00009-of-00002.safetensors\"",
                          "model-00009-of-00002.safetensors", "does not exist");
}
Test(safetensors_bad, index_maps_to_wrong_shard) {
    index_edit_and_expect("\"z\": \"model-00002", "\"z\": \"model-00001", "\"z\"", "stored in");
}
Test(safetensors_bad, index_lists_absent_tensor) {
    index_edit_and_expect("\"x\": \"model", "\"q\": \"model-00001-of-00002.safetensors\", \"x\": \"model", "\"q\"",
                          "does not contain it");
}
Test(safetensors_bad, index_omits_tensor) {
    index_edit_and_expect(",\n    \"z\": \"model-00002-of-00002.safetensors\"", "", "\"z\"",
                          "not listed in weight_map");
}
Test(safetensors_bad, index_shard_outside_dir) {
    index_edit_and_expect("\"z\": \"model-00002", "\"z\": \"../model-00002", "\"z\"", "same directory");
}
Test(safetensors_bad, index_malformed) {
    index_edit_and_expect("\"weight_map\": {", "\"weight_map\": {{", "malformed JSON", NULL);
}
Test(safetensors_bad, index_without_weight_map) {
    index_edit_and_expect("\"weight_map\"", "\"weights\"", "weight_map", NULL);
}
Test(safetensors_bad, tensor_in_two_shards) {
    /* shard 2 re-written to hold x as well as z and w */
    char *dir = write_two_shards();
    static float d[3][8];
    StWriteTensor t[3];
    memset(t, 0, sizeof t);
    const char *names[3] = {"z", "w", "x"};
    for (int i = 0; i < 3; i++)
        t[i] = (StWriteTensor){.name = names[i], .dtype = OW_F32, .ndim = 1, .shape = {8}, .data = d[i]};
    char *s2 = ow_path_join(dir, "model-00002-of-00002.safetensors");
    OwError err;
    cr_assert(safetensors_write(s2, t, 3, NULL, &err) == 0, "%s", err.msg);
    SafeTensors st;
    cr_assert_eq(safetensors_open(dir, &st, &err), -1);
    cr_assert(strstr(err.msg, "\"x\" is stored in two shards") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "model-00001-of-00002.safetensors") &&
                  strstr(err.msg, "model-00002-of-00002.safetensors"),
              "%s", err.msg);
    free(s2);
    ts_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------ fuzz */

/* 2000 seeded mutations of a valid file (byte flips, mostly in the header,
 * and truncations): open must never crash, and when it succeeds every tensor
 * must lie inside its mapping with a consistent size. */
Test(safetensors_fuzz, mutations_never_crash) {
    char *dir = ts_tmpdir();
    char *good = write_small(dir);
    char *bad = tmp_file(dir, "fuzz.safetensors");
    Bytes b = read_bytes(good);
    uint64_t hlen = header_len_of(good);
    char *buf = malloc(b.n);
    Rng r;
    rng_init(&r, 20240601, 99);
    int opened = 0;
    for (int it = 0; it < 2000; it++) {
        memcpy(buf, b.p, b.n);
        size_t n = b.n;
        int kind = (int)rng_below(&r, 4);
        if (kind == 0) {
            n = (size_t)rng_below(&r, b.n);
        } else {
            int flips = 1 + (int)rng_below(&r, 4);
            for (int f = 0; f < flips; f++) {
                size_t pos = kind == 3 ? (size_t)rng_below(&r, b.n) : (size_t)rng_below(&r, 8 + hlen);
                if (kind == 2)
                    buf[pos] = "{}[]\",:0123456789-e. "[rng_below(&r, 21)];
                else
                    buf[pos] ^= (char)(1u << rng_below(&r, 8));
            }
        }
        unlink(bad); /* a fresh file each time: rewriting in place makes ext4 flush on close */
        ts_write_file(bad, buf, n);
        SafeTensors st;
        OwError err;
        if (safetensors_open(bad, &st, &err) == 0) {
            opened++;
            const char *base = st.files[0].data;
            for (int i = 0; i < st.ntensors; i++) {
                const StTensor *t = &st.tensors[i];
                cr_assert_eq(t->nbytes, (size_t)st_tensor_numel(t) * dtype_size(t->dtype));
                cr_assert(t->nbytes == 0 || ((const char *)t->data >= base &&
                                             (const char *)t->data + t->nbytes <= base + st.files[0].size));
            }
            safetensors_close(&st);
        } else {
            cr_assert(strstr(err.msg, bad) != NULL, "message does not name the file: %s", err.msg);
        }
    }
    cr_assert(opened > 0 && opened < 2000, "opened %d of 2000 mutations", opened);
    free(buf);
    free(b.p);
    free(good);
    free(bad);
    ts_rmtree(dir);
    free(dir);
}

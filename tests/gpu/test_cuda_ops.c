// ctest-labels: gpu
/* test_cuda_ops.c: every CUDA Backend op against the CPU backend on the same
 * seeded inputs (inputs are rounded to bf16 first, so both backends see the
 * same values), plus checks against independent host references where a rule
 * is exact (stochastic rounding, AdamW, normal fills, sign canonicalisation,
 * SVD of a matrix with a known decomposition, QR against Gram-Schmidt), the
 * arena (best fit, coalescing, zeroing, the cap), and bitwise run-to-run
 * determinism. Each comparison logs "op: max rel err X (tol Y)" so a failing
 * run names the op. Errors are max |gpu - ref| / max |ref|. */
#include "backend/backend.h"
#include "core/dtype.h"
#include "core/philox.h"
#include "core/rng.h"
#include "cuda/cuda_backend.h"
#include "optim/optimizer.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Backend *g_cpu, *g_gpu;

static void setup(void) {
    OwError err;
    g_cpu = backend_create_cpu(2, 0, &err);
    cr_assert(g_cpu != NULL, "CPU backend: %s", err.msg);
    g_gpu = backend_create_cuda(0, 0, &err);
    cr_assert(g_gpu != NULL, "CUDA backend: %s", err.msg);
}

static void teardown(void) {
    if (g_gpu) g_gpu->ops->destroy(g_gpu);
    if (g_cpu) g_cpu->ops->destroy(g_cpu);
    g_gpu = g_cpu = NULL;
}

TestSuite(cuda_ops, .init = setup, .fini = teardown, .timeout = 1200);

/* ---- helpers ---- */

/* n normals with standard deviation sd; rounded to bf16 values when round16. */
static float *randn(uint64_t seed, size_t n, float sd, int round16) {
    Rng r;
    rng_init(&r, seed, 77);
    float *x = malloc(n * sizeof *x + 1);
    for (size_t i = 0; i < n; i++) {
        float v = (float)(rng_normal(&r) * sd);
        x[i] = round16 ? bf16_to_f32(f32_to_bf16(v)) : v;
    }
    return x;
}

static float *dl(Backend *be, const Tensor *t) {
    size_t n = (size_t)tensor_numel(t);
    float *h = malloc(n * sizeof *h + 1);
    be->ops->download(be, h, OW_F32, t);
    return h;
}

/* A tensor of a backend, uploaded from F32 host values (zeroed when host is NULL). */
static Tensor mk(Backend *be, DType dt, int ndim, const int64_t *shape, const float *host) {
    Tensor t = tensor_desc(dt, ndim, shape);
    OwError err;
    cr_assert(be->ops->alloc(be, &t, MEM_OTHER, "test tensor", &err) == 0, "%s", err.msg);
    if (host) be->ops->upload(be, &t, host, OW_F32);
    return t;
}

static Tensor mk_i32(Backend *be, int64_t n, const int32_t *host) {
    Tensor t = tensor_1d(OW_I32, n);
    OwError err;
    cr_assert(be->ops->alloc(be, &t, MEM_OTHER, "test ids", &err) == 0, "%s", err.msg);
    be->ops->upload(be, &t, host, OW_I32);
    return t;
}

static void rel(Backend *be, Tensor *t) { be->ops->release(be, t, MEM_OTHER); }

static double report(const char *what, const float *got, const float *ref, size_t n, double tol) {
    double e = ts_rel_err(got, ref, n);
    if (e <= tol)
        cr_log_info("%-58s max rel err %.3e (tol %.1e)", what, e, tol);
    else
        cr_log_warn("%-58s max rel err %.3e (tol %.1e)  <-- FAIL", what, e, tol);
    cr_expect(e <= tol, "%s: max rel err %.3e exceeds %.1e", what, e, tol);
    return e;
}

/* Compares a GPU tensor with a CPU tensor. */
static double cmp(const char *what, const Tensor *g, const Tensor *c, double tol) {
    size_t n = (size_t)tensor_numel(g);
    cr_assert_eq(n, (size_t)tensor_numel(c));
    float *a = dl(g_gpu, g), *b = dl(g_cpu, c);
    double e = report(what, a, b, n, tol);
    free(a);
    free(b);
    return e;
}

static void bitwise_same(const char *what, const void *a, const void *b, size_t bytes) {
    int same = memcmp(a, b, bytes) == 0;
    if (same)
        cr_log_info("%-58s bitwise identical", what);
    else
        cr_log_warn("%-58s DIFFERS  <-- FAIL", what);
    cr_expect(same, "%s: two runs differ", what);
}

static void *dl_raw(Backend *be, const Tensor *t) {
    size_t bytes = tensor_nbytes(t);
    void *h = malloc(bytes + 1);
    be->ops->download(be, h, t->dtype, t);
    return h;
}

/* Two GPU tensors hold the same bits. */
static void gpu_bitwise_same(const char *what, const Tensor *a, const Tensor *b) {
    cr_assert_eq(tensor_nbytes(a), tensor_nbytes(b));
    void *x = dl_raw(g_gpu, a), *y = dl_raw(g_gpu, b);
    bitwise_same(what, x, y, tensor_nbytes(a));
    free(x);
    free(y);
}

/* ---- arena and memory ---- */

Test(cuda_ops, arena_best_fit_coalescing_zeroing) {
    OwError err;
    Backend *be = backend_create_cuda(0, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    /* blocks larger than the room the fixed workspaces leave in the first segment (under 2 MiB),
     * so all of them come from the next segment */
    size_t blk = 4 << 20;
    Tensor a = tensor_1d(OW_U8, (int64_t)blk), b = a, c = a, d = a, e = tensor_1d(OW_U8, (int64_t)(3 * blk));
    cr_assert(be->ops->alloc(be, &a, MEM_OTHER, "a", &err) == 0, "%s", err.msg);
    cr_assert(be->ops->alloc(be, &b, MEM_OTHER, "b", &err) == 0, "%s", err.msg);
    cr_assert(be->ops->alloc(be, &c, MEM_OTHER, "c", &err) == 0, "%s", err.msg);
    cr_expect((uintptr_t)a.data % 256 == 0 && (uintptr_t)b.data % 256 == 0, "256-byte alignment");
    cr_expect((char *)b.data == (char *)a.data + blk && (char *)c.data == (char *)b.data + blk,
              "consecutive blocks carved from one free block");
    size_t reserved = backend_cuda_reserved_bytes(be);
    cr_expect(reserved >= be->mem.current_total, "reserved %zu >= allocated %zu", reserved, be->mem.current_total);
    /* fill b, free it, take it again: best fit returns the hole, zeroed */
    Tensor bf = tensor_1d(OW_F32, (int64_t)(blk / 4));
    bf.data = b.data;
    be->ops->fill(be, &bf, 3.0f);
    void *bp = b.data;
    be->ops->release(be, &b, MEM_OTHER);
    cr_expect(b.data == NULL);
    cr_assert(be->ops->alloc(be, &d, MEM_OTHER, "d", &err) == 0, "%s", err.msg);
    cr_expect(d.data == bp, "best fit reuses the hole");
    unsigned char *h = dl_raw(be, &d);
    size_t nonzero = 0;
    for (size_t i = 0; i < blk; i++) nonzero += h[i] != 0;
    free(h);
    cr_expect(nonzero == 0, "alloc zeroes memory (%zu nonzero bytes)", nonzero);
    /* free all three: they merge with each other and the rest of the segment */
    void *ap = a.data;
    be->ops->release(be, &a, MEM_OTHER);
    be->ops->release(be, &d, MEM_OTHER);
    be->ops->release(be, &c, MEM_OTHER);
    cr_assert(be->ops->alloc(be, &e, MEM_OTHER, "e", &err) == 0, "%s", err.msg);
    cr_expect(e.data == ap, "coalesced free blocks give back the 3-block range");
    cr_expect(backend_cuda_reserved_bytes(be) == reserved, "no new segment was needed");
    be->ops->release(be, &e, MEM_OTHER);
    cr_log_info("arena: reserved %zu bytes, peak reserved %zu, cap %zu", backend_cuda_reserved_bytes(be),
                backend_cuda_peak_reserved_bytes(be), backend_cuda_arena_cap(be));
    be->ops->destroy(be);
}

/* reserve takes what a run will need in one segment (the free room the arena already has
 * counts), the allocations then come from it without new segments, and one beyond it gets
 * a segment of its own size only (no unused tail). */
Test(cuda_ops, arena_reserve_takes_the_plan_at_once) {
    OwError err;
    Backend *be = backend_create_cuda(0, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    size_t mib = (size_t)1 << 20, before = backend_cuda_reserved_bytes(be);
    size_t room = before - be->mem.current_total;
    cr_assert(be->ops->reserve(be, 100 * mib, &err) == 0, "%s", err.msg);
    size_t after = backend_cuda_reserved_bytes(be);
    cr_expect(after - be->mem.current_total >= 100 * mib && after - before <= 100 * mib - room + 2 * mib,
              "reserved %zu -> %zu bytes for 100 MiB with %zu free already", before, after, room);
    Tensor t[10];
    for (int i = 0; i < 10; i++) {
        t[i] = tensor_1d(OW_U8, (int64_t)(9 * mib));
        cr_assert(be->ops->alloc(be, &t[i], MEM_OTHER, "planned", &err) == 0, "%s", err.msg);
    }
    cr_expect(backend_cuda_reserved_bytes(be) == after, "the planned allocations needed no new segment");
    Tensor x = tensor_1d(OW_U8, (int64_t)(30 * mib));
    cr_assert(be->ops->alloc(be, &x, MEM_OTHER, "beyond the plan", &err) == 0, "%s", err.msg);
    cr_expect(backend_cuda_reserved_bytes(be) - after == 30 * mib, "a segment of the allocation's size: %zu bytes",
              backend_cuda_reserved_bytes(be) - after);
    be->ops->release(be, &x, MEM_OTHER);
    for (int i = 0; i < 10; i++) be->ops->release(be, &t[i], MEM_OTHER);
    be->ops->destroy(be);
}

Test(cuda_ops, arena_cap_is_a_clean_error) {
    OwError err;
    Backend *small = backend_create_cuda(0, (size_t)16 << 20, &err);
    cr_expect(small == NULL, "16 MiB cannot hold the library workspaces");
    cr_log_info("create with a 16 MiB cap: %s", err.msg);
    cr_expect(strstr(err.msg, "cap") != NULL, "message names the cap: %s", err.msg);
    Backend *be = backend_create_cuda(0, (size_t)64 << 20, &err);
    cr_assert(be != NULL, "%s", err.msg);
    Tensor a = tensor_1d(OW_F32, (int64_t)(4 << 20)); /* 16 MiB */
    cr_assert(be->ops->alloc(be, &a, MEM_ACTIVATIONS, "first", &err) == 0, "%s", err.msg);
    size_t before = be->mem.current_total;
    Tensor b = tensor_1d(OW_F32, (int64_t)(4 << 20));
    int rc = be->ops->alloc(be, &b, MEM_ACTIVATIONS, "second", &err);
    cr_expect(rc == -1 && b.data == NULL, "over the cap fails cleanly");
    cr_log_info("over the cap: %s", err.msg);
    cr_expect(strstr(err.msg, "second") != NULL && strstr(err.msg, "workspace") != NULL,
              "message names the buffer and gives the breakdown: %s", err.msg);
    cr_expect(be->mem.current_total == before, "a failed alloc is not counted");
    cr_expect(backend_cuda_reserved_bytes(be) <= ((size_t)64 << 20), "reserved stays under the cap");
    be->ops->release(be, &a, MEM_ACTIVATIONS);
    cr_expect(be->ops->alloc(be, &b, MEM_ACTIVATIONS, "second", &err) == 0, "fits after the release: %s", err.msg);
    be->ops->release(be, &b, MEM_ACTIVATIONS);
    be->ops->destroy(be);
}

/* Large same-type copies to and from pageable memory (parked optimizer state)
 * go through two page-locked chunks (cuda_backend.cu). Two uploads back to back
 * (the second refills the chunks while the first may still be on the bus), and
 * downloads into pageable and page-locked memory, are exact; so is a size that
 * is not a multiple of the chunk. */
Test(cuda_ops, large_pageable_copies_are_exact) {
    size_t n = ((size_t)300 << 20) / 4 + 12345; /* 300 MiB and a bit: above the staging threshold, 10 chunks */
    uint32_t *x = malloc(n * 4), *y = malloc(n * 4), *back = malloc(n * 4);
    cr_assert(x && y && back);
    for (size_t i = 0; i < n; i++) {
        x[i] = (uint32_t)(i * 2654435761u);
        y[i] = (uint32_t)(~i * 40503u + 7u);
    }
    int64_t sh[1] = {(int64_t)n};
    Tensor a = mk(g_gpu, OW_F32, 1, sh, NULL), b = mk(g_gpu, OW_F32, 1, sh, NULL);
    g_gpu->ops->upload(g_gpu, &a, x, OW_F32);
    for (size_t i = 0; i < n; i++) x[i] = ~x[i]; /* the source is free once upload returns */
    g_gpu->ops->upload(g_gpu, &b, y, OW_F32);
    g_gpu->ops->download(g_gpu, back, OW_F32, &a);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += back[i] != ~x[i];
    cr_expect(bad == 0, "the first upload and its download are exact (%zu of %zu words differ)", bad, n);
    for (size_t i = 0; i < n; i++) x[i] = ~x[i];
    g_gpu->ops->download(g_gpu, back, OW_F32, &b);
    cr_expect(memcmp(back, y, n * 4) == 0, "the second upload, right behind the first, is exact");
    OwError err;
    uint32_t *pinned = g_gpu->ops->host_alloc(g_gpu, n * 4, &err);
    cr_assert(pinned != NULL, "%s", err.msg);
    g_gpu->ops->download(g_gpu, pinned, OW_F32, &a);
    cr_expect(memcmp(pinned, x, n * 4) == 0, "a download into page-locked memory is exact");
    g_gpu->ops->host_free(g_gpu, pinned);
    g_gpu->ops->release(g_gpu, &a, MEM_OTHER);
    g_gpu->ops->release(g_gpu, &b, MEM_OTHER);
    free(x);
    free(y);
    free(back);
}

Test(cuda_ops, upload_download_copy_fill) {
    size_t n = 1000;
    float *x = randn(1, n, 3.0f, 0);
    int64_t sh[1] = {(int64_t)n};
    Tensor b = mk(g_gpu, OW_BF16, 1, sh, x), f = mk(g_gpu, OW_F32, 1, sh, x), h = mk(g_gpu, OW_F16, 1, sh, x);
    uint16_t *raw = dl_raw(g_gpu, &b);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += raw[i] != f32_to_bf16(x[i]);
    cr_expect(bad == 0, "upload F32 -> BF16 rounds to nearest even as the host (%zu differ)", bad);
    free(raw);
    float *back = dl(g_gpu, &f);
    cr_expect(memcmp(back, x, n * 4) == 0, "F32 round trip is exact");
    free(back);
    /* device conversions: F32 -> BF16 and F32 -> F16 must equal the host conversions */
    Tensor b2 = mk(g_gpu, OW_BF16, 1, sh, NULL), h2 = mk(g_gpu, OW_F16, 1, sh, NULL),
           f2 = mk(g_gpu, OW_F32, 1, sh, NULL);
    g_gpu->ops->copy(g_gpu, &b2, &f);
    g_gpu->ops->copy(g_gpu, &h2, &f);
    uint16_t *rb = dl_raw(g_gpu, &b2), *rh = dl_raw(g_gpu, &h2), *rh0 = dl_raw(g_gpu, &h);
    size_t badb = 0, badh = 0;
    for (size_t i = 0; i < n; i++) {
        badb += rb[i] != f32_to_bf16(x[i]);
        badh += rh[i] != rh0[i];
    }
    cr_expect(badb == 0 && badh == 0, "copy F32 -> BF16 / F16 matches host conversion (%zu, %zu differ)", badb, badh);
    g_gpu->ops->copy(g_gpu, &f2, &b2); /* BF16 -> F32 is exact */
    float *fb = dl(g_gpu, &f2);
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += fb[i] != bf16_to_f32(f32_to_bf16(x[i]));
    cr_expect(bad == 0, "copy BF16 -> F32 is exact (%zu differ)", bad);
    free(fb);
    free(rb);
    free(rh);
    free(rh0);
    /* fills */
    g_gpu->ops->fill(g_gpu, &b2, -2.5f);
    g_gpu->ops->fill(g_gpu, &f2, 0.25f);
    float *vb = dl(g_gpu, &b2), *vf = dl(g_gpu, &f2);
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += vb[i] != -2.5f || vf[i] != 0.25f;
    cr_expect(bad == 0, "fill BF16 / F32");
    free(vb);
    free(vf);
    int32_t ids[5] = {1, 2, 3, 4, 5}, got[5];
    Tensor it = mk_i32(g_gpu, 5, ids);
    g_gpu->ops->fill(g_gpu, &it, 7.0f);
    g_gpu->ops->download(g_gpu, got, OW_I32, &it);
    for (int i = 0; i < 5; i++) cr_expect(got[i] == 7, "fill I32");
    /* views: a row slice uploads and downloads in place */
    int64_t sh2[2] = {10, 100};
    Tensor m = mk(g_gpu, OW_BF16, 2, sh2, x);
    Tensor v = tensor_row_slice(&m, 3, 4);
    g_gpu->ops->fill(g_gpu, &v, 1.0f);
    float *mm = dl(g_gpu, &m);
    bad = 0;
    for (size_t i = 0; i < 1000; i++) {
        float want = (i >= 300 && i < 700) ? 1.0f : bf16_to_f32(f32_to_bf16(x[i]));
        bad += mm[i] != want;
    }
    cr_expect(bad == 0, "fill of a row slice touches exactly its rows (%zu differ)", bad);
    free(mm);
    Tensor *ts[] = {&b, &f, &h, &b2, &h2, &f2, &it, &m};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) rel(g_gpu, ts[i]);
    free(x);
}

/* ---- dense algebra ---- */

/* C = alpha op(A) op(B) + beta C on both backends; GPU dtypes ab (A, B) and cdt (C). */
static void matmul_case(int64_t M, int64_t N, int64_t K, int ta, int tb, DType ab, DType cdt, float alpha, float beta,
                        int view, double tol, uint64_t seed) {
    int64_t ra = ta ? K : M, ca = ta ? M : K, rb = tb ? N : K, cb = tb ? K : N;
    int64_t off = view ? 3 : 0; /* A and C as row slices at an offset */
    int round16 = ab == OW_BF16;
    float *ha = randn(seed, (size_t)((ra + off) * ca), 1.0f, round16);
    float *hb = randn(seed + 1, (size_t)(rb * cb), 1.0f, round16);
    float *hc = randn(seed + 2, (size_t)((M + off) * N), 1.0f, cdt == OW_BF16);
    DType cd = g_cpu->act_dtype;
    int64_t sa[2] = {ra + off, ca}, sb[2] = {rb, cb}, sc[2] = {M + off, N};
    Tensor gA = mk(g_gpu, ab, 2, sa, ha), gB = mk(g_gpu, ab, 2, sb, hb), gC = mk(g_gpu, cdt, 2, sc, hc);
    Tensor cA = mk(g_cpu, cd, 2, sa, ha), cB = mk(g_cpu, cd, 2, sb, hb), cC = mk(g_cpu, cd, 2, sc, hc);
    Tensor gAv = tensor_row_slice(&gA, off, ra), gCv = tensor_row_slice(&gC, off, M);
    Tensor cAv = tensor_row_slice(&cA, off, ra), cCv = tensor_row_slice(&cC, off, M);
    g_gpu->ops->matmul(g_gpu, &gCv, &gAv, ta, &gB, tb, alpha, beta);
    g_cpu->ops->matmul(g_cpu, &cCv, &cAv, ta, &cB, tb, alpha, beta);
    char what[160];
    snprintf(what, sizeof what, "matmul %s%s->%s %lldx%lldx%lld tA%d tB%d a%.2g b%.2g%s", dtype_name(ab),
             dtype_name(ab), dtype_name(cdt), (long long)M, (long long)N, (long long)K, ta, tb, alpha, beta,
             view ? " view" : "");
    cmp(what, &gC, &cC, tol); /* the whole C: rows outside the view must be untouched */
    rel(g_gpu, &gA);
    rel(g_gpu, &gB);
    rel(g_gpu, &gC);
    rel(g_cpu, &cA);
    rel(g_cpu, &cB);
    rel(g_cpu, &cC);
    free(ha);
    free(hb);
    free(hc);
}

Test(cuda_ops, matmul_bf16_out_bf16) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            matmul_case(37, 29, 53, ta, tb, OW_BF16, OW_BF16, 1.0f, 0.0f, 0, 1e-2, 10);
            matmul_case(128, 96, 64, ta, tb, OW_BF16, OW_BF16, 1.0f, 0.0f, 0, 1e-2, 11);
        }
}

Test(cuda_ops, matmul_bf16_accumulate_f32) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            matmul_case(37, 29, 53, ta, tb, OW_BF16, OW_F32, 1.0f, 1.0f, 0, 1e-5, 20);
            matmul_case(256, 64, 300, ta, tb, OW_BF16, OW_F32, 1.0f, 1.0f, 0, 1e-5, 21);
        }
}

Test(cuda_ops, matmul_bf16_residual_add_bf16) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) matmul_case(64, 48, 80, ta, tb, OW_BF16, OW_BF16, 1.0f, 1.0f, 0, 1e-2, 30);
}

Test(cuda_ops, matmul_f32) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            matmul_case(37, 29, 53, ta, tb, OW_F32, OW_F32, 0.5f, 0.0f, 0, 1e-5, 40);
            matmul_case(70, 256, 40, ta, tb, OW_F32, OW_F32, 1.0f, 1.0f, 0, 1e-5, 41);
        }
}

Test(cuda_ops, matmul_views) {
    matmul_case(21, 30, 17, 0, 1, OW_BF16, OW_BF16, 1.0f, 0.0f, 1, 1e-2, 50);
    matmul_case(21, 30, 17, 1, 0, OW_BF16, OW_F32, 1.0f, 1.0f, 1, 1e-5, 51);
    matmul_case(21, 30, 17, 1, 1, OW_F32, OW_F32, 1.0f, 0.0f, 1, 1e-5, 52);
}

/* matmul_add (D = op(A) op(B) + Cin, Cin apart from D) on row views: the CPU's result within
 * bf16 / fp32 tolerances, and in fp32 the bits of copying Cin into D and accumulating with
 * matmul (beta 1). (In bf16 cuBLASLt may pick another kernel for C != D: other roundings.) */
Test(cuda_ops, matmul_add_equals_copy_then_accumulate) {
    const int64_t M = 70, N = 96, K = 64, off = 5;
    DType dts[2] = {OW_BF16, OW_F32};
    for (int k = 0; k < 2; k++) {
        DType cdt = dts[k], ab = cdt == OW_F32 ? OW_F32 : OW_BF16;
        float *ha = randn(70 + k, (size_t)(M * K), 1.0f, 1), *hb = randn(72 + k, (size_t)(N * K), 1.0f, 1);
        float *hc = randn(74 + k, (size_t)((M + off) * N), 1.0f, 1);
        int64_t sa[2] = {M, K}, sb[2] = {N, K}, sc[2] = {M + off, N};
        Tensor A = mk(g_gpu, ab, 2, sa, ha), B = mk(g_gpu, ab, 2, sb, hb), C = mk(g_gpu, cdt, 2, sc, hc);
        Tensor D1 = mk(g_gpu, cdt, 2, sc, NULL), D2 = mk(g_gpu, cdt, 2, sc, NULL);
        Tensor Cv = tensor_row_slice(&C, off, M), D1v = tensor_row_slice(&D1, off, M),
               D2v = tensor_row_slice(&D2, off, M);
        g_gpu->ops->matmul_add(g_gpu, &D1v, &A, 0, &B, 1, 1.0f, &Cv);
        g_gpu->ops->copy(g_gpu, &D2v, &Cv);
        g_gpu->ops->matmul(g_gpu, &D2v, &A, 0, &B, 1, 1.0f, 1.0f);
        char what[80];
        DType cd = g_cpu->act_dtype;
        Tensor cA = mk(g_cpu, cd, 2, sa, ha), cB = mk(g_cpu, cd, 2, sb, hb), cC = mk(g_cpu, cd, 2, sc, hc);
        Tensor cD = mk(g_cpu, cd, 2, sc, NULL), cCv = tensor_row_slice(&cC, off, M),
               cDv = tensor_row_slice(&cD, off, M);
        g_cpu->ops->matmul_add(g_cpu, &cDv, &cA, 0, &cB, 1, 1.0f, &cCv);
        snprintf(what, sizeof what, "matmul_add %s vs cpu", dtype_name(cdt));
        cmp(what, &D1, &cD, cdt == OW_F32 ? 1e-5 : 1e-2);
        if (cdt == OW_F32) {
            snprintf(what, sizeof what, "matmul_add %s vs copy + matmul beta 1", dtype_name(cdt));
            gpu_bitwise_same(what, &D1, &D2);
        }
        Tensor *ts[] = {&A, &B, &C, &D1, &D2}, *cs[] = {&cA, &cB, &cC, &cD};
        for (int i = 0; i < 5; i++) rel(g_gpu, ts[i]);
        for (int i = 0; i < 4; i++) rel(g_cpu, cs[i]);
        free(ha);
        free(hb);
        free(hc);
    }
}

/* norm_add / norm_take: the same double as adding sum_squares on the host, in order; taking resets. */
Test(cuda_ops, norm_accumulator_equals_host_sum) {
    double host = 0.0;
    for (int k = 0; k < 4; k++) {
        int64_t n = 1000 + 777 * k, sh[1] = {n};
        float *x = randn(80 + (uint64_t)k, (size_t)n, 1.0f + (float)k, 0);
        Tensor t = mk(g_gpu, k % 2 ? OW_BF16 : OW_F32, 1, sh, x);
        host += g_gpu->ops->sum_squares(g_gpu, &t);
        g_gpu->ops->norm_add(g_gpu, &t);
        rel(g_gpu, &t);
        free(x);
    }
    double dev = g_gpu->ops->norm_take(g_gpu);
    cr_log_info("norm accumulator %.17g, host sum %.17g", dev, host);
    cr_expect(dev == host, "norm accumulator %.17g vs host sum of sum_squares %.17g", dev, host);
    cr_expect(g_gpu->ops->norm_take(g_gpu) == 0.0, "norm_take resets the accumulator");
}

Test(cuda_ops, axpy_scale_sum) {
    size_t n = 5000;
    int64_t sh[1] = {(int64_t)n};
    float *x = randn(60, n, 1.0f, 1), *y = randn(61, n, 1.0f, 1);
    DType cd = g_cpu->act_dtype;
    /* y (BF16 and F32) += 0.3 x (F32) */
    Tensor gx = mk(g_gpu, OW_F32, 1, sh, x), gyb = mk(g_gpu, OW_BF16, 1, sh, y), gyf = mk(g_gpu, OW_F32, 1, sh, y);
    Tensor cx = mk(g_cpu, cd, 1, sh, x), cy = mk(g_cpu, cd, 1, sh, y);
    g_gpu->ops->axpy(g_gpu, &gyb, 0.3f, &gx);
    g_gpu->ops->axpy(g_gpu, &gyf, 0.3f, &gx);
    g_cpu->ops->axpy(g_cpu, &cy, 0.3f, &cx);
    cmp("axpy BF16 y += 0.3 F32 x", &gyb, &cy, 1e-2);
    cmp("axpy F32 y += 0.3 F32 x", &gyf, &cy, 1e-6);
    g_gpu->ops->scale(g_gpu, &gyf, -1.5f);
    g_cpu->ops->scale(g_cpu, &cy, -1.5f);
    cmp("scale F32 by -1.5", &gyf, &cy, 1e-6);
    g_gpu->ops->scale(g_gpu, &gyb, -1.5f);
    cmp("scale BF16 by -1.5", &gyb, &cy, 1e-2);
    /* sums (double) of identical values */
    Tensor gxb = mk(g_gpu, OW_BF16, 1, sh, x);
    double s_ref = g_cpu->ops->sum(g_cpu, &cx), q_ref = g_cpu->ops->sum_squares(g_cpu, &cx);
    double s1 = g_gpu->ops->sum(g_gpu, &gx), s2 = g_gpu->ops->sum(g_gpu, &gxb);
    double q1 = g_gpu->ops->sum_squares(g_gpu, &gx), q2 = g_gpu->ops->sum_squares(g_gpu, &gxb);
    double ex = 0.0, eq = 0.0;
    for (size_t i = 0; i < n; i++) {
        ex += fabs(x[i]);
        eq += (double)x[i] * x[i];
    }
    double es = fmax(fabs(s1 - s_ref), fabs(s2 - s_ref)) / ex, eqq = fmax(fabs(q1 - q_ref), fabs(q2 - q_ref)) / eq;
    cr_log_info("%-58s err %.3e / %.3e (tol 1e-12)", "sum / sum_squares (F32, BF16) vs cpu", es, eqq);
    cr_expect(es < 1e-12 && eqq < 1e-12, "sum %.17g %.17g vs %.17g, sum_squares %.17g %.17g vs %.17g", s1, s2, s_ref,
              q1, q2, q_ref);
    double again = g_gpu->ops->sum(g_gpu, &gx);
    bitwise_same("sum run twice", &s1, &again, sizeof again);
    Tensor *gs[] = {&gx, &gyb, &gyf, &gxb};
    for (int i = 0; i < 4; i++) rel(g_gpu, gs[i]);
    rel(g_cpu, &cx);
    rel(g_cpu, &cy);
    free(x);
    free(y);
}

/* ---- model ops ---- */

Test(cuda_ops, embedding_forward_backward) {
    int64_t V = 50, C = 40, N = 300;
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    Rng r;
    rng_init(&r, 70, 1);
    for (int64_t i = 0; i < N; i++) ids[i] = (int32_t)(i % 3 == 0 ? rng_below(&r, 4) : rng_below(&r, (uint64_t)V));
    float *table = randn(71, (size_t)(V * C), 1.0f, 1), *dout = randn(72, (size_t)(N * C), 1.0f, 1);
    float *dt0 = randn(73, (size_t)(V * C), 1.0f, 0);
    int64_t st[2] = {V, C}, so[2] = {N, C};
    Tensor gt = mk(g_gpu, g_gpu->param_dtype, 2, st, table), ct = mk(g_cpu, g_cpu->param_dtype, 2, st, table);
    Tensor gi = mk_i32(g_gpu, N, ids), ci = mk_i32(g_cpu, N, ids);
    Tensor go = mk(g_gpu, OW_BF16, 2, so, NULL), co = mk(g_cpu, g_cpu->act_dtype, 2, so, NULL);
    g_gpu->ops->embedding_forward(g_gpu, &go, &gi, &gt);
    g_cpu->ops->embedding_forward(g_cpu, &co, &ci, &ct);
    cmp("embedding_forward", &go, &co, 0.0);
    Tensor gd = mk(g_gpu, OW_BF16, 2, so, dout), cdo = mk(g_cpu, g_cpu->act_dtype, 2, so, dout);
    Tensor gdt = mk(g_gpu, OW_F32, 2, st, dt0), cdt = mk(g_cpu, OW_F32, 2, st, dt0);
    g_gpu->ops->embedding_backward(g_gpu, &gdt, &gi, &gd);
    g_cpu->ops->embedding_backward(g_cpu, &cdt, &ci, &cdo);
    cmp("embedding_backward (accumulates, repeated ids)", &gdt, &cdt, 1e-6);
    /* determinism: the same accumulation twice from the same start */
    float *first = dl(g_gpu, &gdt);
    g_gpu->ops->upload(g_gpu, &gdt, dt0, OW_F32);
    g_gpu->ops->embedding_backward(g_gpu, &gdt, &gi, &gd);
    float *second = dl(g_gpu, &gdt);
    bitwise_same("embedding_backward run twice", first, second, (size_t)(V * C) * 4);
    free(first);
    free(second);
    Tensor *gs[] = {&gt, &gi, &go, &gd, &gdt}, *cs[] = {&ct, &ci, &co, &cdo, &cdt};
    for (int i = 0; i < 5; i++) {
        rel(g_gpu, gs[i]);
        rel(g_cpu, cs[i]);
    }
    free(ids);
    free(table);
    free(dout);
    free(dt0);
}

static void rmsnorm_case(int64_t N, int64_t C, uint64_t seed) {
    float *x = randn(seed, (size_t)(N * C), 2.0f, 1), *w = randn(seed + 1, (size_t)C, 1.0f, 1);
    float *dout = randn(seed + 2, (size_t)(N * C), 1.0f, 1), *dx0 = randn(seed + 3, (size_t)(N * C), 1.0f, 1);
    float *dw0 = randn(seed + 4, (size_t)C, 1.0f, 0);
    int64_t sx[2] = {N, C}, sw[1] = {C}, sr[1] = {N};
    DType ca = g_cpu->act_dtype, cp = g_cpu->param_dtype;
    Tensor gx = mk(g_gpu, OW_BF16, 2, sx, x), cx = mk(g_cpu, ca, 2, sx, x);
    Tensor gw = mk(g_gpu, g_gpu->param_dtype, 1, sw, w), cw = mk(g_cpu, cp, 1, sw, w);
    Tensor go = mk(g_gpu, OW_BF16, 2, sx, NULL), co = mk(g_cpu, ca, 2, sx, NULL);
    Tensor grs = mk(g_gpu, OW_F32, 1, sr, NULL), crs = mk(g_cpu, OW_F32, 1, sr, NULL);
    g_gpu->ops->rmsnorm_forward(g_gpu, &go, &grs, &gx, &gw, 1e-5f);
    g_cpu->ops->rmsnorm_forward(g_cpu, &co, &crs, &cx, &cw, 1e-5f);
    char what[128];
    snprintf(what, sizeof what, "rmsnorm_forward out %lldx%lld", (long long)N, (long long)C);
    cmp(what, &go, &co, 1e-2);
    snprintf(what, sizeof what, "rmsnorm_forward rstd %lldx%lld", (long long)N, (long long)C);
    cmp(what, &grs, &crs, 1e-5);
    Tensor gd = mk(g_gpu, OW_BF16, 2, sx, dout), cd = mk(g_cpu, ca, 2, sx, dout);
    Tensor gdx = mk(g_gpu, OW_BF16, 2, sx, dx0), cdx = mk(g_cpu, ca, 2, sx, dx0);
    Tensor gdw = mk(g_gpu, OW_F32, 1, sw, dw0), cdw = mk(g_cpu, OW_F32, 1, sw, dw0);
    g_gpu->ops->rmsnorm_backward(g_gpu, &gdx, &gdw, &gd, &gx, &gw, &grs);
    g_cpu->ops->rmsnorm_backward(g_cpu, &cdx, &cdw, &cd, &cx, &cw, &crs);
    snprintf(what, sizeof what, "rmsnorm_backward dx (accumulates) %lldx%lld", (long long)N, (long long)C);
    cmp(what, &gdx, &cdx, 1e-2);
    snprintf(what, sizeof what, "rmsnorm_backward dw (accumulates) %lldx%lld", (long long)N, (long long)C);
    cmp(what, &gdw, &cdw, 1e-4);
    /* dw == NULL leaves weights alone and still accumulates dx */
    g_gpu->ops->rmsnorm_backward(g_gpu, &gdx, NULL, &gd, &gx, &gw, &grs);
    g_cpu->ops->rmsnorm_backward(g_cpu, &cdx, NULL, &cd, &cx, &cw, &crs);
    snprintf(what, sizeof what, "rmsnorm_backward dx, dw NULL %lldx%lld", (long long)N, (long long)C);
    cmp(what, &gdx, &cdx, 1e-2);
    /* determinism of the two-stage dw reduction */
    float *a = dl(g_gpu, &gdw);
    g_gpu->ops->upload(g_gpu, &gdw, dw0, OW_F32);
    g_gpu->ops->rmsnorm_backward(g_gpu, &gdx, &gdw, &gd, &gx, &gw, &grs);
    float *b = dl(g_gpu, &gdw);
    bitwise_same("rmsnorm_backward dw run twice", a, b, (size_t)C * 4);
    free(a);
    free(b);
    Tensor *gs[] = {&gx, &gw, &go, &grs, &gd, &gdx, &gdw}, *cs[] = {&cx, &cw, &co, &crs, &cd, &cdx, &cdw};
    for (int i = 0; i < 7; i++) {
        rel(g_gpu, gs[i]);
        rel(g_cpu, cs[i]);
    }
    free(x);
    free(w);
    free(dout);
    free(dx0);
    free(dw0);
}

Test(cuda_ops, rmsnorm) {
    rmsnorm_case(33, 96, 80);
    rmsnorm_case(7, 1000, 81);
    rmsnorm_case(600, 64, 82); /* more rows than dw row groups */
    rmsnorm_case(5, 100, 83);  /* not a multiple of 8: the generic kernels */
    rmsnorm_case(4, 4096, 84);
    rmsnorm_case(3, 8200, 85); /* wider than the register-resident path */
}

/* D / 2 a multiple of 8 takes the vectorised path; others the generic one */
static void rope_case(int64_t B, int64_t T, int64_t H, int64_t D, DType dt, uint64_t seed) {
    int64_t Tmax = T + 2, half = D / 2;
    float *x = randn(seed, (size_t)(B * T * H * D), 1.0f, 1);
    float *cs = malloc((size_t)(Tmax * half) * 4), *sn = malloc((size_t)(Tmax * half) * 4);
    for (int64_t t = 0; t < Tmax; t++)
        for (int64_t i = 0; i < half; i++) {
            double ang = (double)t * pow(10000.0, -2.0 * (double)i / (double)D);
            cs[t * half + i] = (float)cos(ang);
            sn[t * half + i] = (float)sin(ang);
        }
    int64_t sx[4] = {B, T, H, D}, st[2] = {Tmax, half};
    Tensor gx = mk(g_gpu, dt, 4, sx, x), cx = mk(g_cpu, dt == OW_F32 ? OW_F32 : g_cpu->act_dtype, 4, sx, x);
    Tensor gc = mk(g_gpu, OW_F32, 2, st, cs), gs = mk(g_gpu, OW_F32, 2, st, sn);
    Tensor cc = mk(g_cpu, OW_F32, 2, st, cs), csn = mk(g_cpu, OW_F32, 2, st, sn);
    g_gpu->ops->rope(g_gpu, &gx, &gc, &gs, 0);
    g_cpu->ops->rope(g_cpu, &cx, &cc, &csn, 0);
    char what[128];
    double tol = dt == OW_F32 ? 1e-5 : 1e-2;
    snprintf(what, sizeof what, "rope forward %s B%lld T%lld H%lld D%lld", dtype_name(dt), (long long)B, (long long)T,
             (long long)H, (long long)D);
    cmp(what, &gx, &cx, tol);
    g_gpu->ops->rope(g_gpu, &gx, &gc, &gs, 1);
    g_cpu->ops->rope(g_cpu, &cx, &cc, &csn, 1);
    snprintf(what, sizeof what, "rope inverse %s D%lld", dtype_name(dt), (long long)D);
    cmp(what, &gx, &cx, tol);
    float *back = dl(g_gpu, &gx);
    snprintf(what, sizeof what, "rope inverse(forward(x)) vs x %s D%lld", dtype_name(dt), (long long)D);
    report(what, back, x, (size_t)(B * T * H * D), tol);
    free(back);
    Tensor *g[] = {&gx, &gc, &gs}, *c[] = {&cx, &cc, &csn};
    for (int i = 0; i < 3; i++) {
        rel(g_gpu, g[i]);
        rel(g_cpu, c[i]);
    }
    free(x);
    free(cs);
    free(sn);
}

Test(cuda_ops, rope) {
    rope_case(2, 7, 3, 16, OW_BF16, 90);
    rope_case(2, 5, 3, 12, OW_BF16, 91); /* generic path */
    rope_case(1, 9, 4, 128, OW_BF16, 92);
    rope_case(2, 6, 2, 64, OW_F32, 93);
}

static void attention_case(int B, int T, int Hq, int Hkv, int D, float sd, uint64_t seed) {
    int64_t sq[4] = {B, T, Hq, D}, skv[4] = {B, T, Hkv, D}, sl[3] = {B, Hq, T};
    size_t nq = (size_t)B * T * Hq * D, nkv = (size_t)B * T * Hkv * D;
    float *q = randn(seed, nq, sd, 1), *k = randn(seed + 1, nkv, sd, 1), *v = randn(seed + 2, nkv, 1.0f, 1);
    float *dout = randn(seed + 3, nq, 1.0f, 1);
    DType ca = g_cpu->act_dtype;
    Tensor cq = mk(g_cpu, ca, 4, sq, q), ck = mk(g_cpu, ca, 4, skv, k), cv = mk(g_cpu, ca, 4, skv, v);
    Tensor co = mk(g_cpu, ca, 4, sq, NULL), cl = mk(g_cpu, OW_F32, 3, sl, NULL), cd = mk(g_cpu, ca, 4, sq, dout);
    Tensor cdq = mk(g_cpu, ca, 4, sq, NULL), cdk = mk(g_cpu, ca, 4, skv, NULL), cdv = mk(g_cpu, ca, 4, skv, NULL);
    g_cpu->ops->attention_forward(g_cpu, &co, &cl, &cq, &ck, &cv);
    g_cpu->ops->attention_backward(g_cpu, &cdq, &cdk, &cdv, &cd, &cq, &ck, &cv, &co, &cl);
    for (int tc = 0; tc < 2; tc++) {
        backend_cuda_set_attention_tensor_cores(g_gpu, tc);
        if (tc && !backend_cuda_attention_uses_tensor_cores(g_gpu, D)) continue;
        Tensor gq = mk(g_gpu, OW_BF16, 4, sq, q), gk = mk(g_gpu, OW_BF16, 4, skv, k),
               gv = mk(g_gpu, OW_BF16, 4, skv, v);
        Tensor go = mk(g_gpu, OW_BF16, 4, sq, NULL), gl = mk(g_gpu, OW_F32, 3, sl, NULL);
        Tensor gd = mk(g_gpu, OW_BF16, 4, sq, dout);
        Tensor gdq = mk(g_gpu, OW_BF16, 4, sq, NULL), gdk = mk(g_gpu, OW_BF16, 4, skv, NULL);
        Tensor gdv = mk(g_gpu, OW_BF16, 4, skv, NULL);
        g_gpu->ops->attention_forward(g_gpu, &go, &gl, &gq, &gk, &gv);
        g_gpu->ops->attention_backward(g_gpu, &gdq, &gdk, &gdv, &gd, &gq, &gk, &gv, &go, &gl);
        char what[160];
        const char *kind = tc ? "tensor-core" : "simple";
        snprintf(what, sizeof what, "attention %s B%d T%d Hq%d Hkv%d D%d: out", kind, B, T, Hq, Hkv, D);
        cmp(what, &go, &co, 2e-2);
        snprintf(what, sizeof what, "attention %s B%d T%d Hq%d Hkv%d D%d: lse", kind, B, T, Hq, Hkv, D);
        cmp(what, &gl, &cl, 5e-3);
        snprintf(what, sizeof what, "attention %s B%d T%d Hq%d Hkv%d D%d: dq", kind, B, T, Hq, Hkv, D);
        cmp(what, &gdq, &cdq, 3e-2);
        snprintf(what, sizeof what, "attention %s B%d T%d Hq%d Hkv%d D%d: dk", kind, B, T, Hq, Hkv, D);
        cmp(what, &gdk, &cdk, 3e-2);
        snprintf(what, sizeof what, "attention %s B%d T%d Hq%d Hkv%d D%d: dv", kind, B, T, Hq, Hkv, D);
        cmp(what, &gdv, &cdv, 3e-2);
        /* determinism: the backward again gives the same bits */
        void *a[3] = {dl_raw(g_gpu, &gdq), dl_raw(g_gpu, &gdk), dl_raw(g_gpu, &gdv)};
        g_gpu->ops->attention_backward(g_gpu, &gdq, &gdk, &gdv, &gd, &gq, &gk, &gv, &go, &gl);
        void *b[3] = {dl_raw(g_gpu, &gdq), dl_raw(g_gpu, &gdk), dl_raw(g_gpu, &gdv)};
        snprintf(what, sizeof what, "attention %s B%d T%d D%d backward run twice", kind, B, T, D);
        bitwise_same(what, a[0], b[0], nq * 2);
        bitwise_same(what, a[1], b[1], nkv * 2);
        bitwise_same(what, a[2], b[2], nkv * 2);
        for (int i = 0; i < 3; i++) {
            free(a[i]);
            free(b[i]);
        }
        Tensor *gs[] = {&gq, &gk, &gv, &go, &gl, &gd, &gdq, &gdk, &gdv};
        for (int i = 0; i < 9; i++) rel(g_gpu, gs[i]);
    }
    backend_cuda_set_attention_tensor_cores(g_gpu, 1);
    Tensor *cs[] = {&cq, &ck, &cv, &co, &cl, &cd, &cdq, &cdk, &cdv};
    for (int i = 0; i < 9; i++) rel(g_cpu, cs[i]);
    free(q);
    free(k);
    free(v);
    free(dout);
}

Test(cuda_ops, attention_small_head_dims) {
    attention_case(2, 37, 4, 2, 4, 1.0f, 100);
    attention_case(1, 64, 2, 2, 8, 1.0f, 110);
    attention_case(2, 50, 4, 1, 16, 1.0f, 120);
    attention_case(1, 130, 4, 2, 32, 2.0f, 130);
}

Test(cuda_ops, attention_head_dim_64_128) {
    attention_case(2, 77, 2, 1, 64, 1.0f, 140);
    attention_case(1, 200, 4, 2, 128, 1.0f, 150);
    attention_case(1, 1, 2, 1, 64, 1.0f, 160);   /* one token */
    attention_case(1, 33, 2, 2, 128, 3.0f, 170); /* peaky softmax, partial tiles */
}

/* Shapes of the tensor-core kernels' edges: GQA 4:1 (the dK/dV block loops over
 * 4 query heads), T not a multiple of the 64-row tiles, exactly one tile, one
 * past it, T = 1, several query tiles per key tile, many (batch, kv head) pairs
 * (the backward row statistics are processed in chunks of them when the scratch
 * is small: scripts/cuda_emu/README.md shows how to force that). */
Test(cuda_ops, attention_gqa_and_partial_tiles) {
    attention_case(1, 130, 8, 2, 128, 1.0f, 190);
    attention_case(2, 64, 4, 1, 64, 1.0f, 200);
    attention_case(1, 1, 4, 1, 128, 1.0f, 210);
    attention_case(1, 65, 4, 4, 64, 2.0f, 220);
    attention_case(1, 257, 4, 1, 64, 1.0f, 230);
    attention_case(3, 40, 6, 3, 32, 1.0f, 240);
}

Test(cuda_ops, attention_long_sequence) { attention_case(1, 4096, 2, 1, 128, 1.0f, 180); }

/* attention_decode: the last n queries against Tk cached keys, bf16 and F32 against the CPU. */
static void decode_case(int n, int Tk, int Hq, int Hkv, int D, DType dt, float sd, uint64_t seed) {
    int64_t sq[3] = {n, Hq, D}, skv[3] = {Tk, Hkv, D};
    size_t nq = (size_t)n * Hq * D, nkv = (size_t)Tk * Hkv * D;
    float *q = randn(seed, nq, sd, 1), *k = randn(seed + 1, nkv, sd, 1), *v = randn(seed + 2, nkv, 1.0f, 1);
    DType ca = g_cpu->act_dtype;
    Tensor cq = mk(g_cpu, ca, 3, sq, q), ck = mk(g_cpu, ca, 3, skv, k), cv = mk(g_cpu, ca, 3, skv, v);
    Tensor co = mk(g_cpu, ca, 3, sq, NULL);
    Tensor gq = mk(g_gpu, dt, 3, sq, q), gk = mk(g_gpu, dt, 3, skv, k), gv = mk(g_gpu, dt, 3, skv, v);
    Tensor go = mk(g_gpu, dt, 3, sq, NULL);
    g_cpu->ops->attention_decode(g_cpu, &co, &cq, &ck, &cv);
    g_gpu->ops->attention_decode(g_gpu, &go, &gq, &gk, &gv);
    char what[160];
    snprintf(what, sizeof what, "attention_decode %s n%d Tk%d Hq%d Hkv%d D%d", dtype_name(dt), n, Tk, Hq, Hkv, D);
    cmp(what, &go, &co, dt == OW_F32 ? 1e-5 : 2e-2);
    void *a = dl_raw(g_gpu, &go);
    g_gpu->ops->attention_decode(g_gpu, &go, &gq, &gk, &gv);
    void *b = dl_raw(g_gpu, &go);
    bitwise_same(what, a, b, tensor_nbytes(&go));
    free(a);
    free(b);
    Tensor *gs[] = {&gq, &gk, &gv, &go}, *cs[] = {&cq, &ck, &cv, &co};
    for (int i = 0; i < 4; i++) {
        rel(g_gpu, gs[i]);
        rel(g_cpu, cs[i]);
    }
    free(q);
    free(k);
    free(v);
}

/* One query (a step) and several (a prefill after earlier positions): GQA, key counts around the 128-key tile,
 * head dims below, at and above the 32 lanes and the 128 threads of a block, a peaky softmax. */
Test(cuda_ops, attention_decode) {
    decode_case(1, 1, 4, 2, 64, OW_BF16, 1.0f, 300);
    decode_case(1, 129, 9, 3, 64, OW_BF16, 1.0f, 310);
    decode_case(1, 300, 8, 8, 128, OW_F32, 1.0f, 320);
    decode_case(5, 5, 4, 1, 16, OW_F32, 1.0f, 330);
    decode_case(7, 140, 6, 2, 256, OW_BF16, 3.0f, 340);
    decode_case(3, 128, 4, 2, 8, OW_BF16, 1.0f, 350);
}

/* rows x cols elements: a multiple of 8 takes the vectorised bf16 path, others the generic one */
static void swiglu_case(int64_t rows, int64_t cols, uint64_t seed) {
    size_t n = (size_t)(rows * cols);
    int64_t sh[2] = {rows, cols};
    float *g = randn(seed, n, 2.0f, 1), *u = randn(seed + 1, n, 1.0f, 1), *d = randn(seed + 2, n, 1.0f, 1);
    DType ca = g_cpu->act_dtype;
    Tensor gg = mk(g_gpu, OW_BF16, 2, sh, g), gu = mk(g_gpu, OW_BF16, 2, sh, u), gd = mk(g_gpu, OW_BF16, 2, sh, d);
    Tensor cg = mk(g_cpu, ca, 2, sh, g), cu = mk(g_cpu, ca, 2, sh, u), cd = mk(g_cpu, ca, 2, sh, d);
    Tensor go = mk(g_gpu, OW_BF16, 2, sh, NULL), co = mk(g_cpu, ca, 2, sh, NULL);
    Tensor gdg = mk(g_gpu, OW_BF16, 2, sh, NULL), gdu = mk(g_gpu, OW_BF16, 2, sh, NULL);
    Tensor cdg = mk(g_cpu, ca, 2, sh, NULL), cdu = mk(g_cpu, ca, 2, sh, NULL);
    g_gpu->ops->swiglu_forward(g_gpu, &go, &gg, &gu);
    g_cpu->ops->swiglu_forward(g_cpu, &co, &cg, &cu);
    cmp("swiglu_forward", &go, &co, 1e-2);
    g_gpu->ops->swiglu_backward(g_gpu, &gdg, &gdu, &gd, &gg, &gu);
    g_cpu->ops->swiglu_backward(g_cpu, &cdg, &cdu, &cd, &cg, &cu);
    cmp("swiglu_backward dgate", &gdg, &cdg, 1e-2);
    cmp("swiglu_backward dup", &gdu, &cdu, 1e-2);
    Tensor *gs[] = {&gg, &gu, &gd, &go, &gdg, &gdu}, *cs[] = {&cg, &cu, &cd, &co, &cdg, &cdu};
    for (int i = 0; i < 6; i++) {
        rel(g_gpu, gs[i]);
        rel(g_cpu, cs[i]);
    }
    free(g);
    free(u);
    free(d);
}

Test(cuda_ops, swiglu) {
    swiglu_case(30, 100, 200);
    swiglu_case(7, 13, 210);
    swiglu_case(64, 1376, 220);
}

static void cross_entropy_case(int64_t N, int64_t V, DType gdt, int want_grad, float sd, uint64_t seed) {
    float *x = randn(seed, (size_t)(N * V), sd, gdt == OW_BF16);
    int32_t *tg = malloc((size_t)N * sizeof *tg);
    Rng r;
    rng_init(&r, seed, 2);
    for (int64_t i = 0; i < N; i++) tg[i] = (i % 4 == 1) ? -100 : (int32_t)rng_below(&r, (uint64_t)V);
    int64_t sx[2] = {N, V}, sn[1] = {N};
    DType cdt = gdt == OW_F32 ? OW_F32 : g_cpu->act_dtype;
    Tensor gx = mk(g_gpu, gdt, 2, sx, x), cx = mk(g_cpu, cdt, 2, sx, x);
    Tensor gt = mk_i32(g_gpu, N, tg), ct = mk_i32(g_cpu, N, tg);
    Tensor gl = mk(g_gpu, OW_F32, 1, sn, NULL), cl = mk(g_cpu, OW_F32, 1, sn, NULL);
    g_gpu->ops->cross_entropy(g_gpu, &gx, &gl, &gt, 0.25f, want_grad);
    g_cpu->ops->cross_entropy(g_cpu, &cx, &cl, &ct, 0.25f, want_grad);
    char what[128];
    snprintf(what, sizeof what, "cross_entropy %s N%lld V%lld grad%d: losses", dtype_name(gdt), (long long)N,
             (long long)V, want_grad);
    cmp(what, &gl, &cl, 1e-5);
    if (want_grad) {
        snprintf(what, sizeof what, "cross_entropy %s N%lld V%lld: dlogits", dtype_name(gdt), (long long)N,
                 (long long)V);
        cmp(what, &gx, &cx, gdt == OW_F32 ? 1e-5 : 1e-2);
    }
    float *losses = dl(g_gpu, &gl), *grads = dl(g_gpu, &gx);
    for (int64_t i = 0; i < N; i++) {
        if (tg[i] != -100) continue;
        cr_expect(losses[i] == 0.0f, "ignored row %lld has loss %g", (long long)i, losses[i]);
        if (want_grad)
            for (int64_t j = 0; j < V; j++)
                if (grads[i * V + j] != 0.0f) {
                    cr_expect(0, "ignored row %lld has a nonzero gradient", (long long)i);
                    break;
                }
    }
    free(losses);
    free(grads);
    rel(g_gpu, &gx);
    rel(g_gpu, &gt);
    rel(g_gpu, &gl);
    rel(g_cpu, &cx);
    rel(g_cpu, &ct);
    rel(g_cpu, &cl);
    free(x);
    free(tg);
}

Test(cuda_ops, cross_entropy) {
    cross_entropy_case(9, 1000, OW_F32, 1, 3.0f, 210);
    cross_entropy_case(9, 1000, OW_BF16, 1, 3.0f, 211);
    cross_entropy_case(9, 1000, OW_BF16, 0, 3.0f, 212);
    cross_entropy_case(5, 128256, OW_BF16, 1, 2.0f, 213);
    cross_entropy_case(3, 7, OW_F32, 1, 10.0f, 214);
}

/* ---- OWL statistics ---- */

Test(cuda_ops, col_sumsq_and_scores) {
    int64_t N = 1000, C = 70;
    float *x = randn(300, (size_t)(N * C), 1.0f, 1), *acc0 = randn(301, (size_t)C, 1.0f, 0);
    for (int64_t c = 0; c < C; c++) acc0[c] = fabsf(acc0[c]);
    int64_t sx[2] = {N, C}, sc[1] = {C};
    Tensor gx = mk(g_gpu, OW_BF16, 2, sx, x), cx = mk(g_cpu, g_cpu->act_dtype, 2, sx, x);
    Tensor ga = mk(g_gpu, OW_F32, 1, sc, acc0), ca = mk(g_cpu, OW_F32, 1, sc, acc0);
    g_gpu->ops->col_sumsq(g_gpu, &ga, &gx);
    g_cpu->ops->col_sumsq(g_cpu, &ca, &cx);
    cmp("col_sumsq (accumulates)", &ga, &ca, 1e-5);
    /* scores of W [40, 60] with column scales */
    int64_t m = 40, n = 60, sw[2] = {m, n}, scs[1] = {n};
    float *W = randn(302, (size_t)(m * n), 1.0f, 1), *cs = randn(303, (size_t)n, 1.0f, 0);
    for (int64_t j = 0; j < n; j++) cs[j] = fabsf(cs[j]) + 0.1f;
    Tensor gW = mk(g_gpu, g_gpu->param_dtype, 2, sw, W), cW = mk(g_cpu, g_cpu->param_dtype, 2, sw, W);
    Tensor gcs = mk(g_gpu, OW_F32, 1, scs, cs), ccs = mk(g_cpu, OW_F32, 1, scs, cs);
    double s_gpu = g_gpu->ops->score_sum(g_gpu, &gW, &gcs), s_cpu = g_cpu->ops->score_sum(g_cpu, &cW, &ccs);
    double e = fabs(s_gpu - s_cpu) / fabs(s_cpu);
    cr_log_info("%-58s rel err %.3e (tol 1e-6)", "score_sum", e);
    cr_expect(e < 1e-6, "score_sum %.10g vs cpu %.10g", s_gpu, s_cpu);
    double thr = 2.0 * s_cpu / (double)(m * n);
    int64_t k_gpu = g_gpu->ops->score_count(g_gpu, &gW, &gcs, thr),
            k_cpu = g_cpu->ops->score_count(g_cpu, &cW, &ccs, thr);
    cr_log_info("%-58s gpu %lld cpu %lld", "score_count (threshold 2x mean)", (long long)k_gpu, (long long)k_cpu);
    cr_expect(llabs(k_gpu - k_cpu) <= 1 && k_cpu > 0, "score_count gpu %lld vs cpu %lld", (long long)k_gpu,
              (long long)k_cpu);
    Tensor *gs[] = {&gx, &ga, &gW, &gcs}, *c[] = {&cx, &ca, &cW, &ccs};
    for (int i = 0; i < 4; i++) {
        rel(g_gpu, gs[i]);
        rel(g_cpu, c[i]);
    }
    free(x);
    free(acc0);
    free(W);
    free(cs);
}

/* ---- optimizer ---- */

/* The documented stochastic rounding rule, on the host. */
static uint16_t host_sr(float f, uint64_t seed, uint64_t i) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return f32_to_bf16(f);
    u += philox4x32_10(seed, i, 0).v[0] & 0xffffu;
    return (uint16_t)(u >> 16);
}

/* The AdamW formulas of backend.h with the CPU backend's operation order and
 * scalar rounding (cpu_optim.c), one rounding per operation, on the host. */
static float host_adam(float p, float g, float *m, float *v, const AdamHyper *h) {
    double bc1 = 1.0 - pow((double)h->beta1, (double)h->step), bc2 = 1.0 - pow((double)h->beta2, (double)h->step);
    float omb1 = (float)(1.0 - (double)h->beta1), omb2 = (float)(1.0 - (double)h->beta2);
    g = g * h->grad_scale;
    *m = h->beta1 * *m + omb1 * g;
    *v = h->beta2 * *v + omb2 * g * g;
    if (h->variant == ADAM_VARIANT_HF) {
        float step = (float)((double)h->lr * sqrt(bc2) / bc1);
        float lr_wd = (float)((double)h->lr * (double)h->weight_decay);
        p = p - step * (*m / (sqrtf(*v) + h->eps));
        if (lr_wd != 0.0f) p = p - lr_wd * p;
    } else {
        float step = (float)((double)h->lr / bc1), bc2s = (float)sqrt(bc2);
        float keep = (float)(1.0 - (double)h->lr * (double)h->weight_decay);
        p = p * keep;
        p = p - step * (*m / (sqrtf(*v) / bc2s + h->eps));
    }
    return p;
}

static void adam_case(AdamVariant variant, DType pdt, uint64_t seed) {
    int64_t n = 4099, sh[1] = {n};
    float *p0 = randn(seed, (size_t)n, 0.1f, pdt == OW_BF16), *g = randn(seed + 1, (size_t)n, 1e-2f, 0);
    float *m0 = randn(seed + 2, (size_t)n, 1e-3f, 0), *v0 = randn(seed + 3, (size_t)n, 1e-4f, 0);
    for (int64_t i = 0; i < n; i++) v0[i] = v0[i] * v0[i];
    AdamHyper h = {.lr = 1e-3f,
                   .beta1 = 0.9f,
                   .beta2 = 0.999f,
                   .eps = 1e-6f,
                   .weight_decay = 0.01f,
                   .step = 3,
                   .variant = variant,
                   .grad_scale = 0.5f,
                   .sr_seed = 1234 + seed};
    Tensor gp = mk(g_gpu, pdt, 1, sh, p0), gg = mk(g_gpu, OW_F32, 1, sh, g);
    Tensor gm = mk(g_gpu, OW_F32, 1, sh, m0), gv = mk(g_gpu, OW_F32, 1, sh, v0);
    Tensor cp = mk(g_cpu, g_cpu->param_dtype, 1, sh, p0), cg = mk(g_cpu, OW_F32, 1, sh, g);
    Tensor cm = mk(g_cpu, OW_F32, 1, sh, m0), cv = mk(g_cpu, OW_F32, 1, sh, v0);
    g_gpu->ops->adam_update(g_gpu, &gp, &gg, &gm, &gv, &h);
    g_cpu->ops->adam_update(g_cpu, &cp, &cg, &cm, &cv, &h);
    const char *vn = variant == ADAM_VARIANT_HF ? "HF" : "torch";
    char what[128];
    snprintf(what, sizeof what, "adam_update %s %s param vs cpu", vn, dtype_name(pdt));
    cmp(what, &gp, &cp, pdt == OW_BF16 ? 1e-2 : 0.0); /* F32: the same float operations as the CPU */
    snprintf(what, sizeof what, "adam_update %s %s m vs cpu", vn, dtype_name(pdt));
    cmp(what, &gm, &cm, 0.0);
    snprintf(what, sizeof what, "adam_update %s %s v vs cpu", vn, dtype_name(pdt));
    cmp(what, &gv, &cv, 0.0);
    /* exactly the documented formula (and rounding rule) */
    float *gpv = dl(g_gpu, &gp), *gmv = dl(g_gpu, &gm), *gvv = dl(g_gpu, &gv);
    size_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float m = m0[i], v = v0[i];
        float p = host_adam(p0[i], g[i], &m, &v, &h);
        float want = pdt == OW_BF16 ? bf16_to_f32(host_sr(p, h.sr_seed, (uint64_t)i)) : p;
        bad += gpv[i] != want || gmv[i] != m || gvv[i] != v;
    }
    snprintf(what, sizeof what, "adam_update %s %s vs the host formula", vn, dtype_name(pdt));
    cr_log_info("%-58s %zu of %lld elements differ", what, bad, (long long)n);
    cr_expect(bad == 0, "adam_update %s %s: %zu elements differ from the host formula", vn, dtype_name(pdt), bad);
    free(gpv);
    free(gmv);
    free(gvv);
    Tensor *gs[] = {&gp, &gg, &gm, &gv}, *cs[] = {&cp, &cg, &cm, &cv};
    for (int i = 0; i < 4; i++) {
        rel(g_gpu, gs[i]);
        rel(g_cpu, cs[i]);
    }
    free(p0);
    free(g);
    free(m0);
    free(v0);
}

Test(cuda_ops, adam_update) {
    adam_case(ADAM_VARIANT_HF, OW_F32, 400);
    adam_case(ADAM_VARIANT_TORCH, OW_F32, 410);
    adam_case(ADAM_VARIANT_HF, OW_BF16, 420);
    adam_case(ADAM_VARIANT_TORCH, OW_BF16, 430);
}

/* adam_update_host: AdamW over rows of a [V, C] parameter whose moments live in
 * page-locked host memory (and, the same op, in device memory) gives exactly the
 * bits of a whole-tensor adam_update: for every row with a dense gradient
 * (asynchronously on the side stream, then waited for), and split into the rows
 * absent from a row map (zero gradient, queued early on the side stream) and the
 * present rows with a compact gradient. The gradient rows read are zeroed. A dense
 * gradient in page-locked host memory (lm_head's, Model.head_grad_host) is staged
 * with host moments and gives the same bits, and is left as it was. */
static void adam_rows_case(DType pdt, int64_t V, int64_t C, uint64_t seed) {
    const int64_t n = V * C, sh[2] = {V, C};
    float *p0 = randn(seed, (size_t)n, 0.1f, pdt == OW_BF16), *g = randn(seed + 1, (size_t)n, 1e-2f, 0);
    float *m0 = randn(seed + 2, (size_t)n, 1e-3f, 0), *v0 = randn(seed + 3, (size_t)n, 1e-4f, 0);
    for (int64_t i = 0; i < n; i++) v0[i] = v0[i] * v0[i];
    /* rows r % 3 == 1 are present, in slot order reversed */
    int64_t slots = 0;
    int32_t *sel = malloc((size_t)V * sizeof(int32_t));
    for (int64_t r = V - 1; r >= 0; r--) sel[r] = r % 3 == 1 ? (int32_t)slots++ : -1;
    float *gc = calloc((size_t)(slots * C), sizeof(float)), *gd = calloc((size_t)n, sizeof(float));
    for (int64_t r = 0; r < V; r++) {
        if (sel[r] >= 0) {
            memcpy(gc + sel[r] * C, g + r * C, (size_t)C * sizeof(float));
            memcpy(gd + r * C, g + r * C, (size_t)C * sizeof(float));
        }
    }
    AdamHyper h = {.lr = 1e-3f,
                   .beta1 = 0.9f,
                   .beta2 = 0.999f,
                   .eps = 1e-6f,
                   .weight_decay = 0.01f,
                   .step = 4,
                   .variant = ADAM_VARIANT_TORCH,
                   .grad_scale = 0.5f,
                   .sr_seed = 77 + seed};
    OwError err;
    cr_assert_eq(g_gpu->ops->host_state_reserve(g_gpu, &err), 0, "%s", err.msg);
    /* 0: every row, dense gradient; 1: absent + present rows; 2: every row, gradient in host memory */
    for (int mode = 0; mode < 3; mode++) {
        const float *grad = mode == 1 ? gd : g;
        Tensor rp = mk(g_gpu, pdt, 2, sh, p0), rg = mk(g_gpu, OW_F32, 2, sh, grad);
        Tensor rm = mk(g_gpu, OW_F32, 2, sh, m0), rv = mk(g_gpu, OW_F32, 2, sh, v0);
        g_gpu->ops->adam_update(g_gpu, &rp, &rg, &rm, &rv, &h);
        for (int host = mode == 2; host < 2; host++) {
            float *hm = host ? g_gpu->ops->host_alloc(g_gpu, (size_t)n * 4, &err) : NULL;
            float *hv = host ? g_gpu->ops->host_alloc(g_gpu, (size_t)n * 4, &err) : NULL;
            Tensor dm = mk(g_gpu, OW_F32, 2, sh, m0), dv = mk(g_gpu, OW_F32, 2, sh, v0);
            if (host) {
                cr_assert(hm && hv, "%s", err.msg);
                memcpy(hm, m0, (size_t)n * 4);
                memcpy(hv, v0, (size_t)n * 4);
            }
            float *M = host ? hm : (float *)dm.data, *Vv = host ? hv : (float *)dv.data;
            Tensor tp = mk(g_gpu, pdt, 2, sh, p0), tsel = mk_i32(g_gpu, V, sel);
            Tensor tg = mode == 1 ? mk(g_gpu, OW_F32, 2, (int64_t[]){slots, C}, gc) : mk(g_gpu, OW_F32, 2, sh, g);
            float *hg = NULL;
            if (mode == 0) {
                int t = g_gpu->ops->adam_update_host(g_gpu, &tp, &tg, M, Vv, NULL, ADAM_ROWS_PRESENT,
                                                     ADAM_HOST_ZERO_GRAD | ADAM_HOST_ASYNC, &h);
                cr_expect_geq(t, 0, "async update returns a ticket");
                g_gpu->ops->copy_wait(g_gpu, t);
            } else if (mode == 2) {
                hg = g_gpu->ops->host_alloc(g_gpu, (size_t)n * 4, &err);
                cr_assert(hg, "%s", err.msg);
                memcpy(hg, g, (size_t)n * 4);
                Tensor th = tg;
                th.data = hg;
                g_gpu->ops->copy_wait(g_gpu, g_gpu->ops->adam_update_host(g_gpu, &tp, &th, M, Vv, NULL,
                                                                          ADAM_ROWS_PRESENT, ADAM_HOST_ASYNC, &h));
                g_gpu->ops->fill(g_gpu, &tg, 0.0f); /* the device copy is not read: zero, as the check below expects */
            } else {
                AdamHyper h1 = h;
                h1.grad_scale = 1.0f; /* unused for zero gradients */
                int t = g_gpu->ops->adam_update_host(g_gpu, &tp, NULL, M, Vv, &tsel, ADAM_ROWS_ABSENT, ADAM_HOST_ASYNC,
                                                     &h1);
                g_gpu->ops->adam_update_host(g_gpu, &tp, &tg, M, Vv, &tsel, ADAM_ROWS_PRESENT, ADAM_HOST_ZERO_GRAD, &h);
                g_gpu->ops->copy_wait(g_gpu, t);
            }
            char what[96];
            snprintf(what, sizeof what, "adam_update_host %s %s moments, %s", dtype_name(pdt), host ? "host" : "device",
                     mode == 1   ? "absent + present rows"
                     : mode == 2 ? "all rows, gradient in host memory"
                                 : "all rows");
            gpu_bitwise_same(what, &tp, &rp);
            g_gpu->ops->sync(g_gpu);
            float *wm = host ? hm : dl(g_gpu, &dm), *wv = host ? hv : dl(g_gpu, &dv);
            float *rmh = dl(g_gpu, &rm), *rvh = dl(g_gpu, &rv), *zg = dl(g_gpu, &tg);
            size_t bad = 0, nz = 0;
            for (int64_t i = 0; i < n; i++) bad += wm[i] != rmh[i] || wv[i] != rvh[i];
            for (int64_t i = 0; i < tensor_numel(&tg); i++) nz += zg[i] != 0.0f;
            cr_expect_eq(bad, 0, "%s: %zu moments differ", what, bad);
            cr_expect_eq(nz, 0, "%s: %zu gradient values not zeroed", what, nz);
            if (hg) {
                cr_expect_eq(memcmp(hg, g, (size_t)n * 4), 0, "%s: the host gradient was changed", what);
                g_gpu->ops->host_free(g_gpu, hg);
            }
            if (!host) {
                free(wm);
                free(wv);
            }
            free(rmh);
            free(rvh);
            free(zg);
            g_gpu->ops->host_free(g_gpu, hm);
            g_gpu->ops->host_free(g_gpu, hv);
            Tensor *ts[] = {&dm, &dv, &tp, &tsel, &tg};
            for (int i = 0; i < 5; i++) rel(g_gpu, ts[i]);
        }
        Tensor *ts[] = {&rp, &rg, &rm, &rv};
        for (int i = 0; i < 4; i++) rel(g_gpu, ts[i]);
    }
    free(p0);
    free(g);
    free(m0);
    free(v0);
    free(sel);
    free(gc);
    free(gd);
}

Test(cuda_ops, adam_update_host_rows) {
    adam_rows_case(OW_F32, 97, 40, 600);
    adam_rows_case(OW_BF16, 97, 40, 610);
    /* moments of ~5 staging chunks: the slots are reused (BACKEND_CUDA_HOST_STATE_STAGING holds 3 of m and v) */
    int64_t C = 256, V = (int64_t)(5 * (BACKEND_CUDA_HOST_STATE_STAGING / 6) / (size_t)(C * 4)) + 37;
    adam_rows_case(OW_BF16, V, C, 620);
}

Test(cuda_ops, adam_moments) {
    int64_t n = 3001, sh[1] = {n};
    float *g = randn(500, (size_t)n, 1e-2f, 0), *m0 = randn(501, (size_t)n, 1e-3f, 0);
    float *v0 = randn(502, (size_t)n, 1e-2f, 0);
    for (int64_t i = 0; i < n; i++) v0[i] = v0[i] * v0[i];
    AdamHyper h = {.lr = 1e-3f,
                   .beta1 = 0.9f,
                   .beta2 = 0.999f,
                   .eps = 1e-6f,
                   .weight_decay = 0.0f,
                   .step = 1,
                   .variant = ADAM_VARIANT_HF,
                   .grad_scale = 2.0f,
                   .sr_seed = 0};
    Tensor gg = mk(g_gpu, OW_F32, 1, sh, g), gm = mk(g_gpu, OW_F32, 1, sh, m0), gv = mk(g_gpu, OW_F32, 1, sh, v0);
    Tensor go = mk(g_gpu, OW_F32, 1, sh, NULL);
    Tensor cg = mk(g_cpu, OW_F32, 1, sh, g), cm = mk(g_cpu, OW_F32, 1, sh, m0), cv = mk(g_cpu, OW_F32, 1, sh, v0);
    Tensor co = mk(g_cpu, OW_F32, 1, sh, NULL);
    g_gpu->ops->adam_moments(g_gpu, &go, &gg, &gm, &gv, &h);
    g_cpu->ops->adam_moments(g_cpu, &co, &cg, &cm, &cv, &h);
    cmp("adam_moments out vs cpu", &go, &co, 0.0);
    cmp("adam_moments m vs cpu", &gm, &cm, 0.0);
    cmp("adam_moments v vs cpu", &gv, &cv, 0.0);
    float *o = dl(g_gpu, &go);
    size_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * h.grad_scale;
        float m = h.beta1 * m0[i] + (float)(1.0 - (double)h.beta1) * gi;
        float v = h.beta2 * v0[i] + (float)(1.0 - (double)h.beta2) * gi * gi;
        bad += o[i] != m / (sqrtf(v) + h.eps);
    }
    cr_log_info("%-58s %zu of %lld elements differ from the host formula", "adam_moments", bad, (long long)n);
    cr_expect(bad == 0, "adam_moments: %zu elements differ from the host formula", bad);
    free(o);
    Tensor *gs[] = {&gg, &gm, &gv, &go}, *cs[] = {&cg, &cm, &cv, &co};
    for (int i = 0; i < 4; i++) {
        rel(g_gpu, gs[i]);
        rel(g_cpu, cs[i]);
    }
    free(g);
    free(m0);
    free(v0);
}

Test(cuda_ops, apply_update_and_stochastic_rounding) {
    int64_t n = 5003, sh[1] = {n};
    float *p0 = randn(600, (size_t)n, 0.1f, 1), *d = randn(601, (size_t)n, 1e-3f, 0);
    for (int decay_on = 0; decay_on < 2; decay_on++) {
        float alpha = -0.7f, decay = decay_on ? 0.01f : 0.0f;
        uint64_t seed = 77 + (uint64_t)decay_on;
        /* F32: vs the CPU and vs the formula */
        Tensor gp = mk(g_gpu, OW_F32, 1, sh, p0), gd = mk(g_gpu, OW_F32, 1, sh, d);
        Tensor cp = mk(g_cpu, g_cpu->param_dtype, 1, sh, p0), cd = mk(g_cpu, OW_F32, 1, sh, d);
        g_gpu->ops->apply_update(g_gpu, &gp, &gd, alpha, decay, seed, 0);
        g_cpu->ops->apply_update(g_cpu, &cp, &cd, alpha, decay, seed, 0);
        char what[128];
        snprintf(what, sizeof what, "apply_update F32 decay %g vs cpu", decay);
        cmp(what, &gp, &cp, 0.0);
        /* BF16: exactly the stochastic rounding rule */
        Tensor gb = mk(g_gpu, OW_BF16, 1, sh, p0);
        g_gpu->ops->apply_update(g_gpu, &gb, &gd, alpha, decay, seed, 0);
        uint16_t *bits = dl_raw(g_gpu, &gb);
        size_t bad = 0;
        for (int64_t i = 0; i < n; i++) {
            float p = p0[i] + alpha * d[i];
            if (decay_on) p = p - decay * p;
            bad += bits[i] != host_sr(p, seed, (uint64_t)i);
        }
        snprintf(what, sizeof what, "apply_update BF16 decay %g: stochastic rounding rule", decay);
        cr_log_info("%-58s %zu of %lld elements differ", what, bad, (long long)n);
        cr_expect(bad == 0, "%s: %zu elements differ from the host rule", what, bad);
        snprintf(what, sizeof what, "apply_update BF16 decay %g vs cpu", decay);
        cmp(what, &gb, &cp, 1e-2);
        free(bits);
        rel(g_gpu, &gp);
        rel(g_gpu, &gd);
        rel(g_gpu, &gb);
        rel(g_cpu, &cp);
        rel(g_cpu, &cd);
    }
    /* unbiased: 1 + 0.3 ulp rounds up in ~30 % of the elements; seeds matter, deterministically */
    int64_t big = 100000, sb[1] = {big};
    float *ones = malloc((size_t)big * 4), *tiny = malloc((size_t)big * 4);
    for (int64_t i = 0; i < big; i++) {
        ones[i] = 1.0f;
        tiny[i] = 0.3f * 0.0078125f; /* bf16 ulp at 1.0 is 2^-7 */
    }
    Tensor a = mk(g_gpu, OW_BF16, 1, sb, ones), b = mk(g_gpu, OW_BF16, 1, sb, ones),
           c = mk(g_gpu, OW_BF16, 1, sb, ones);
    Tensor dt = mk(g_gpu, OW_F32, 1, sb, tiny);
    g_gpu->ops->apply_update(g_gpu, &a, &dt, 1.0f, 0.0f, 5, 0);
    g_gpu->ops->apply_update(g_gpu, &b, &dt, 1.0f, 0.0f, 5, 0);
    g_gpu->ops->apply_update(g_gpu, &c, &dt, 1.0f, 0.0f, 6, 0);
    float *va = dl(g_gpu, &a);
    uint16_t *ra = dl_raw(g_gpu, &a), *rb = dl_raw(g_gpu, &b), *rc = dl_raw(g_gpu, &c);
    size_t up = 0;
    for (int64_t i = 0; i < big; i++) up += va[i] > 1.0f;
    double frac = (double)up / (double)big;
    cr_log_info("%-58s %.4f (expect 0.30 +- 0.01)", "stochastic rounding: fraction rounded up", frac);
    cr_expect(fabs(frac - 0.3) < 0.01, "fraction rounded up %.4f", frac);
    bitwise_same("stochastic rounding, same seed twice", ra, rb, (size_t)big * 2);
    cr_expect(memcmp(ra, rc, (size_t)big * 2) != 0, "another seed rounds differently");
    free(va);
    free(ra);
    free(rb);
    free(rc);
    free(ones);
    free(tiny);
    rel(g_gpu, &a);
    rel(g_gpu, &b);
    rel(g_gpu, &c);
    rel(g_gpu, &dt);
    free(p0);
    free(d);
}

/* ---- projectors ---- */

/* Makes the first entry of largest magnitude of vector x (n entries, stride s) positive. */
static void host_canon(float *x, int64_t n, int64_t s) {
    int64_t bi = 0;
    for (int64_t j = 1; j < n; j++)
        if (fabsf(x[j * s]) > fabsf(x[bi * s])) bi = j;
    if (x[bi * s] < 0)
        for (int64_t j = 0; j < n; j++) x[j * s] = -x[j * s];
}

/* Orthonormal columns of a random m x k matrix (modified Gram-Schmidt in double), column-major. */
static double *random_orthonormal(int64_t m, int64_t k, uint64_t seed) {
    float *r = randn(seed, (size_t)(m * k), 1.0f, 0);
    double *Q = malloc((size_t)(m * k) * sizeof *Q);
    for (int64_t i = 0; i < m * k; i++) Q[i] = r[i];
    ts_gram_schmidt(Q, m, k, 1, m);
    free(r);
    return Q;
}

/* G = U diag(10 decay^k) V^T [m, n] from random orthonormal U, V (column-major
 * m x np and n x np, returned through *Uo, *Vo). */
static float *known_spectrum(int64_t m, int64_t n, double decay, uint64_t seed, double **Uo, double **Vo) {
    int64_t np = m < n ? m : n;
    double *U = random_orthonormal(m, np, seed), *V = random_orthonormal(n, np, seed + 1);
    float *G = calloc((size_t)(m * n), sizeof *G);
    double *sv = malloc((size_t)np * sizeof *sv);
    for (int64_t k = 0; k < np; k++) sv[k] = 10.0 * pow(decay, (double)k);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t k = 0; k < np; k++) s += U[k * m + i] * sv[k] * V[k * n + j];
            G[i * n + j] = (float)s;
        }
    free(sv);
    *Uo = U;
    *Vo = V;
    return G;
}

static void svd_case_decay(int64_t m, int64_t n, int rank, double decay, uint64_t seed) {
    double *U, *V;
    float *G = known_spectrum(m, n, decay, seed, &U, &V);
    int64_t sg[2] = {m, n};
    Tensor gG = mk(g_gpu, OW_F32, 2, sg, G), cG = mk(g_cpu, OW_F32, 2, sg, G);
    for (int right = 0; right < 2; right++) {
        int64_t so[2] = {right ? rank : m, right ? n : rank};
        Tensor go = mk(g_gpu, OW_F32, 2, so, NULL), co = mk(g_cpu, OW_F32, 2, so, NULL);
        OwError err;
        cr_assert(g_gpu->ops->svd_top(g_gpu, &go, &gG, rank, right, &err) == 0, "gpu svd: %s", err.msg);
        cr_assert(g_cpu->ops->svd_top(g_cpu, &co, &cG, rank, right, &err) == 0, "cpu svd: %s", err.msg);
        /* the known vectors, canonical signs */
        float *want = malloc((size_t)(so[0] * so[1]) * sizeof *want);
        for (int k = 0; k < rank; k++) {
            if (right) {
                for (int64_t j = 0; j < n; j++) want[k * n + j] = (float)V[k * n + j];
                host_canon(want + k * n, n, 1);
            } else {
                for (int64_t i = 0; i < m; i++) want[i * rank + k] = (float)U[k * m + i];
                host_canon(want + k, m, rank);
            }
        }
        char what[128];
        float *got = dl(g_gpu, &go);
        snprintf(what, sizeof what, "svd_top %lldx%lld rank %d %s vs known vectors", (long long)m, (long long)n, rank,
                 right ? "right" : "left");
        report(what, got, want, (size_t)(so[0] * so[1]), 1e-4);
        snprintf(what, sizeof what, "svd_top %lldx%lld rank %d %s vs cpu", (long long)m, (long long)n, rank,
                 right ? "right" : "left");
        cmp(what, &go, &co, 1e-4);
        free(got);
        free(want);
        rel(g_gpu, &go);
        rel(g_cpu, &co);
    }
    rel(g_gpu, &gG);
    rel(g_cpu, &cG);
    free(U);
    free(V);
    free(G);
}

static void svd_case(int64_t m, int64_t n, int rank, uint64_t seed) { svd_case_decay(m, n, rank, 0.7, seed); }

Test(cuda_ops, svd_top) {
    svd_case(40, 24, 5, 700);
    svd_case(24, 40, 5, 710);
    svd_case(32, 32, 6, 720);
    svd_case(12, 8, 8, 730); /* every vector */
}

/* The shapes the randomized projector and the exact projector meet: the small
 * square [k, k] of the range finder (fp64 Gram + syevd on the GPU) and a side
 * longer than that path takes (gesvd). */
Test(cuda_ops, svd_top_projector_shapes, .timeout = 600) {
    svd_case_decay(72, 72, 64, 0.97, 740);
    svd_case_decay(1040, 24, 6, 0.7, 750);
}

/* Rank-deficient input: Cholesky QR cannot factor it, the Householder fallback
 * must still return orthonormal columns spanning A's columns. */
Test(cuda_ops, orthonormalize_rank_deficient) {
    int64_t m = 40, k = 6, sa[2] = {m, k};
    float *A = randn(810, (size_t)(m * k), 1.0f, 0);
    for (int64_t i = 0; i < m; i++) A[i * k + 5] = A[i * k + 1]; /* a repeated column */
    Tensor gA = mk(g_gpu, OW_F32, 2, sa, A);
    OwError err;
    cr_assert(g_gpu->ops->orthonormalize(g_gpu, &gA, &err) == 0, "gpu: %s", err.msg);
    float *q = dl(g_gpu, &gA);
    double worst = 0, resid = 0;
    for (int64_t a = 0; a < k; a++)
        for (int64_t b = 0; b < k; b++) {
            double dot = 0;
            for (int64_t i = 0; i < m; i++) dot += (double)q[i * k + a] * q[i * k + b];
            worst = fmax(worst, fabs(dot - (a == b ? 1.0 : 0.0)));
        }
    for (int64_t c = 0; c < k; c++) { /* |a_c - Q Q^T a_c| */
        double proj[6] = {0};
        for (int64_t a = 0; a < k; a++)
            for (int64_t i = 0; i < m; i++) proj[a] += (double)q[i * k + a] * A[i * k + c];
        for (int64_t i = 0; i < m; i++) {
            double r = A[i * k + c];
            for (int64_t a = 0; a < k; a++) r -= proj[a] * q[i * k + a];
            resid = fmax(resid, fabs(r));
        }
    }
    cr_log_info("%-58s %.3e / %.3e", "orthonormalize rank-deficient: |Q^T Q - I|, residual", worst, resid);
    cr_expect(worst < 1e-5, "Q^T Q - I = %.3e", worst);
    cr_expect(resid < 1e-4, "columns of A outside span(Q): %.3e", resid);
    free(q);
    free(A);
    rel(g_gpu, &gA);
}

/* The randomized range finder as the optimizer runs it, on both backends from
 * the same seed (the same sketch): the top-r vectors agree with each other and
 * with the known ones (a spectrum decaying fast enough for 2 subspace
 * iterations to capture them to fp32 precision). */
Test(cuda_ops, randomized_projector_matches_cpu_and_exact, .timeout = 600) {
    const int64_t m = 300, n = 200;
    const int rank = 12;
    double *U, *V;
    float *G = known_spectrum(m, n, 0.7, 760, &U, &V);
    int64_t sg[2] = {m, n}, sgt[2] = {n, m};
    float *Gt = malloc((size_t)(m * n) * sizeof *Gt);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) Gt[j * m + i] = G[i * n + j];
    for (int right = 0; right < 2; right++) {
        /* right: G [300, 200], vectors V; left: G^T [200, 300], vectors V again (as its left vectors) */
        const float *src = right ? G : Gt;
        const int64_t *shape = right ? sg : sgt;
        Tensor gG = mk(g_gpu, OW_F32, 2, shape, src), cG = mk(g_cpu, OW_F32, 2, shape, src);
        int64_t so[2] = {right ? rank : n, right ? n : rank};
        Tensor gP = mk(g_gpu, OW_F32, 2, so, NULL), cP = mk(g_cpu, OW_F32, 2, so, NULL);
        OwError err;
        cr_assert(galore_projector(g_gpu, &gP, &gG, rank, right, PROJ_RANDOMIZED, 8, 2, 99, &err) == 0, "gpu: %s",
                  err.msg);
        cr_assert(galore_projector(g_cpu, &cP, &cG, rank, right, PROJ_RANDOMIZED, 8, 2, 99, &err) == 0, "cpu: %s",
                  err.msg);
        float *want = malloc((size_t)(n * rank) * sizeof *want);
        for (int k = 0; k < rank; k++)
            for (int64_t j = 0; j < n; j++) {
                if (right)
                    want[k * n + j] = (float)V[k * n + j];
                else
                    want[j * rank + k] = (float)V[k * n + j];
            }
        for (int k = 0; k < rank; k++) {
            if (right)
                host_canon(want + k * n, n, 1);
            else
                host_canon(want + k, n, rank);
        }
        float *got = dl(g_gpu, &gP);
        char what[128];
        snprintf(what, sizeof what, "randomized projector %s vs known vectors", right ? "right" : "left");
        report(what, got, want, (size_t)(n * rank), 1e-3);
        snprintf(what, sizeof what, "randomized projector %s vs cpu", right ? "right" : "left");
        cmp(what, &gP, &cP, 1e-3);
        free(got);
        free(want);
        rel(g_gpu, &gP);
        rel(g_cpu, &cP);
        rel(g_gpu, &gG);
        rel(g_cpu, &cG);
    }
    free(G);
    free(Gt);
    free(U);
    free(V);
}

Test(cuda_ops, orthonormalize) {
    int64_t m = 50, k = 8, sa[2] = {m, k};
    float *A = randn(800, (size_t)(m * k), 1.0f, 0);
    /* reference: Gram-Schmidt on the columns (the thin QR's Q up to column signs) */
    double *colA = malloc((size_t)(m * k) * sizeof *colA);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < k; j++) colA[j * m + i] = A[i * k + j];
    ts_gram_schmidt(colA, m, k, 1, m);
    float *want = malloc((size_t)(m * k) * sizeof *want);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < k; j++) want[i * k + j] = (float)colA[j * m + i];
    for (int64_t j = 0; j < k; j++) host_canon(want + j, m, k);
    Tensor gA = mk(g_gpu, OW_F32, 2, sa, A), cA = mk(g_cpu, OW_F32, 2, sa, A);
    OwError err;
    cr_assert(g_gpu->ops->orthonormalize(g_gpu, &gA, &err) == 0, "gpu: %s", err.msg);
    cr_assert(g_cpu->ops->orthonormalize(g_cpu, &cA, &err) == 0, "cpu: %s", err.msg);
    float *q = dl(g_gpu, &gA);
    double worst = 0;
    for (int64_t a = 0; a < k; a++)
        for (int64_t b = 0; b < k; b++) {
            double dot = 0;
            for (int64_t i = 0; i < m; i++) dot += (double)q[i * k + a] * q[i * k + b];
            worst = fmax(worst, fabs(dot - (a == b ? 1.0 : 0.0)));
        }
    cr_log_info("%-58s %.3e (tol 1e-5)", "orthonormalize: max |Q^T Q - I|", worst);
    cr_expect(worst < 1e-5, "Q^T Q - I = %.3e", worst);
    free(q);
    g_gpu->ops->canonicalize_signs(g_gpu, &gA, 0);
    g_cpu->ops->canonicalize_signs(g_cpu, &cA, 0);
    float *got = dl(g_gpu, &gA);
    report("orthonormalize (canonical signs) vs Gram-Schmidt", got, want, (size_t)(m * k), 1e-4);
    cmp("orthonormalize (canonical signs) vs cpu", &gA, &cA, 1e-4);
    free(got);
    rel(g_gpu, &gA);
    rel(g_cpu, &cA);
    free(A);
    free(colA);
    free(want);
}

Test(cuda_ops, canonicalize_signs) {
    int64_t R = 7, C = 300, sp[2] = {R, C};
    float *P = randn(900, (size_t)(R * C), 2.0f, 0);
    for (int64_t i = 0; i < R * C; i++) P[i] = roundf(P[i] * 2.0f) / 2.0f; /* many ties */
    for (int rows = 0; rows < 2; rows++) {
        float *want = malloc((size_t)(R * C) * sizeof *want);
        memcpy(want, P, (size_t)(R * C) * sizeof *want);
        if (rows)
            for (int64_t r = 0; r < R; r++) host_canon(want + r * C, C, 1);
        else
            for (int64_t c = 0; c < C; c++) host_canon(want + c, R, C);
        Tensor gP = mk(g_gpu, OW_F32, 2, sp, P), cP = mk(g_cpu, OW_F32, 2, sp, P);
        g_gpu->ops->canonicalize_signs(g_gpu, &gP, rows);
        g_cpu->ops->canonicalize_signs(g_cpu, &cP, rows);
        float *got = dl(g_gpu, &gP);
        report(rows ? "canonicalize_signs rows (ties: first index)" : "canonicalize_signs columns (ties: first index)",
               got, want, (size_t)(R * C), 0.0);
        cmp(rows ? "canonicalize_signs rows vs cpu" : "canonicalize_signs columns vs cpu", &gP, &cP, 0.0);
        free(got);
        free(want);
        rel(g_gpu, &gP);
        rel(g_cpu, &cP);
    }
    free(P);
}

Test(cuda_ops, fill_normal) {
    int64_t n = 20000, sh[1] = {n};
    float sd = 0.02f;
    uint64_t seed = 4242;
    float *want = malloc((size_t)n * sizeof *want);
    for (int64_t i = 0; i < n; i++) {
        Philox4 r = philox4x32_10(seed, (uint64_t)i, 0);
        float u1 = ((float)(r.v[0] >> 8) + 1.0f) * (1.0f / 16777216.0f), u2 = philox_u01f(r.v[1]);
        want[i] = sd * (sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2));
    }
    Tensor gf = mk(g_gpu, OW_F32, 1, sh, NULL), gb = mk(g_gpu, OW_BF16, 1, sh, NULL),
           cf = mk(g_cpu, OW_F32, 1, sh, NULL);
    g_gpu->ops->fill_normal(g_gpu, &gf, seed, sd);
    g_gpu->ops->fill_normal(g_gpu, &gb, seed, sd);
    g_cpu->ops->fill_normal(g_cpu, &cf, seed, sd);
    float *got = dl(g_gpu, &gf), *gotb = dl(g_gpu, &gb);
    report("fill_normal F32 vs the host formula", got, want, (size_t)n, 1e-5);
    report("fill_normal BF16 vs the host formula", gotb, want, (size_t)n, 5e-3);
    cmp("fill_normal F32 vs cpu", &gf, &cf, 1e-5);
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; i++) mean += got[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) var += (got[i] - mean) * (got[i] - mean);
    double sdev = sqrt(var / (double)n);
    cr_log_info("%-58s mean %.2e sd %.5f (want 0, %.5f)", "fill_normal statistics", mean, sdev, sd);
    cr_expect(fabs(mean) < 5.0 * sd / sqrt((double)n) && fabs(sdev / sd - 1.0) < 0.03, "mean %g sd %g", mean, sdev);
    free(got);
    free(gotb);
    free(want);
    rel(g_gpu, &gf);
    rel(g_gpu, &gb);
    rel(g_cpu, &cf);
}

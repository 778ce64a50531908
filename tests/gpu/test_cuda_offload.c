// ctest-labels: gpu
/* test_cuda_offload.c: the offload engine (offload/block_store.h) on the CUDA
 * backend, where block copies run on the copy stream beside the compute.
 * - The block store alone, under load: blocks of known bytes in device, host
 *   and store-file homes, walked forward and backward like a training step
 *   (each acquired block is read by a chain of kernels while the next ones are
 *   prefetched into the other slots), one block pinned per pass, changed on the
 *   device and written back to its home. The sums the kernels make must equal
 *   the host's exactly (small integers in fp32), so a slot overwritten before
 *   the compute that reads it finished, a read before its copy landed, a
 *   staging buffer reused before its copy left it, or a lost write-back shows.
 * - copy_sync: the host may reuse (or read) a copy's host buffer as soon as
 *   copy_sync returns, even when the copy was queued behind long compute.
 * - Training: 30 owlore steps on the GPU (bf16, the GPU defaults: activation
 *   and head-moment offload on) of a random 8-block model, 2 blocks trained at
 *   a time and 2 streaming slots, resamples every 5 steps and projector
 *   refreshes every 4 of a tensor's steps: the host and nvme homes give the
 *   resident run's bits (losses, gradient norms, final weights), one
 *   micro-batch and three.
 * Under the emulator (scripts/cuda_emu/run.sh offload sets OWLORE_EMU=1) the
 * blocks, chains and runs are smaller: every GPU thread is a host thread
 * there (train_scale). */
#include "backend/backend.h"
#include "backend/backend_cuda.h"
#include "core/fileio.h"
#include "core/json.h"
#include "offload/block_store.h"
#include "offload/host_mem.h"
#include "test_support.h"
#include "train/trainer.h"
#include "train_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(cuda_offload, .timeout = 1800);

static int emulated(void) {
    const char *e = getenv("OWLORE_EMU");
    return e && e[0] == '1';
}

static Backend *gpu(void) {
    OwError err;
    Backend *be = backend_create_cuda(0, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    return be;
}

/* ---- the block store under load ---- */

#define NB 8 /* blocks */
#define PASSES 3

typedef struct {
    const char *name;
    BlockHome homes[NB];
    int slots;
    int pinned[PASSES]; /* the block pinned (trained) during each pass: streamed ones */
} StoreCase;

typedef struct {
    Backend *be;
    BlockStore *bs;
    HostMem host; /* the store's host memory (offload/host_mem.h) */
    const StoreCase *sc;
    int64_t n;          /* floats per block */
    int reads;          /* kernels reading an acquired block */
    float *content[NB]; /* each block's bytes as the host knows them */
    Tensor acc;         /* F32 [n] on the device: the kernels' sum */
    float *ref;         /* the host's sum */
} Walk;

/* Small integers: every sum of the test is exact in fp32. */
static float pattern(int block, int64_t k) { return (float)((block * 37 + k * 11) % 29) - 14.0f; }

/* An F32 view of a block's device buffer. */
static Tensor f32_view(const Tensor *buf, int64_t n) {
    Tensor v = tensor_1d(OW_F32, n);
    v.data = buf->data;
    return v;
}

/* The store made and filled through stage/commit/seal (the store file written at setup). */
static void walk_open(Walk *w, const StoreCase *sc, const char *dir) {
    OwError err;
    memset(w, 0, sizeof *w);
    w->be = gpu();
    w->sc = sc;
    w->n = emulated() ? 4096 : (int64_t)1 << 20; /* 16 KiB or 4 MiB blocks */
    w->reads = emulated() ? 4 : 512;             /* ~3 ms of kernels per use on an H200: the host runs ahead */
    char *path = ow_path_join(dir, "blocks.owstore");
    host_mem_init(&w->host, 0);
    BlockStoreConfig cfg = {.n_blocks = NB,
                            .host = &w->host,
                            .block_bytes = (size_t)w->n * sizeof(float),
                            .homes = sc->homes,
                            .stream_slots = sc->slots,
                            .pin_slots = 1,
                            .store_path = path,
                            .source_hash = 0x0ff10adULL};
    cr_assert_eq(block_store_create(w->be, &cfg, &w->bs, &err), 0, "%s: %s", sc->name, err.msg);
    free(path);
    for (int b = 0; b < NB; b++) {
        w->content[b] = malloc((size_t)w->n * sizeof(float));
        for (int64_t k = 0; k < w->n; k++) w->content[b][k] = pattern(b, k);
        Tensor buf;
        cr_assert_eq(block_store_stage(w->bs, b, &buf, &err), 0, "%s", err.msg);
        w->be->ops->upload(w->be, &buf, w->content[b], OW_U8);
        cr_assert_eq(block_store_commit(w->bs, b, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(block_store_seal(w->bs, &err), 0, "%s", err.msg);
    w->acc = tensor_1d(OW_F32, w->n);
    cr_assert_eq(be_alloc(w->be, &w->acc, MEM_OTHER, "test sum", &err), 0, "%s", err.msg);
    w->ref = calloc((size_t)w->n, sizeof(float));
}

static void walk_close(Walk *w) {
    for (int b = 0; b < NB; b++) free(w->content[b]);
    free(w->ref);
    be_release(w->be, &w->acc, MEM_OTHER);
    block_store_free(w->bs);
    host_mem_release(&w->host);
    w->be->ops->destroy(w->be);
}

/* The block at position pos of the walk: forward 0 .. NB-1, then backward NB-1 .. 0, then again. */
static int order_at(int pos) {
    pos %= 2 * NB;
    return pos < NB ? pos : 2 * NB - 1 - pos;
}

/* llama.c's block_enter: the block on the device, the streamed ones that follow on their way up. */
static void enter(Walk *w, int pos, Tensor *buf) {
    OwError err;
    cr_assert_eq(block_store_acquire(w->bs, order_at(pos), buf, &err), 0, "%s", err.msg);
    int ahead = block_store_stream_slots(w->bs) - 1;
    for (int q = pos + 1; ahead > 0 && q <= pos + 2 * NB; q++) {
        int b = order_at(q);
        if (!block_store_streams(w->bs, b)) continue;
        cr_assert_eq(block_store_prefetch(w->bs, b, &err), 0, "%s", err.msg);
        ahead--;
    }
}

/* Reads block b's buffer `reads` times into the sum (a chain of kernels on the compute queue). */
static void read_block(Walk *w, const Tensor *buf, int b) {
    Tensor v = f32_view(buf, w->n);
    for (int r = 0; r < w->reads; r++) w->be->ops->axpy(w->be, &w->acc, 1.0f, &v);
    for (int64_t k = 0; k < w->n; k++) w->ref[k] += (float)w->reads * w->content[b][k];
}

/* The device sum against the host's, exactly; the first difference names the block it looks like. */
static void expect_sum(Walk *w, const char *when) {
    float *got = malloc((size_t)w->n * sizeof(float));
    w->be->ops->download(w->be, got, OW_F32, &w->acc);
    int64_t bad = -1, nbad = 0;
    for (int64_t k = 0; k < w->n; k++)
        if (got[k] != w->ref[k]) nbad++, bad = bad < 0 ? k : bad;
    cr_expect_eq(nbad, 0, "%s, %s: %lld of %lld sums differ (first at %lld: %g, expected %g)", w->sc->name, when,
                 (long long)nbad, (long long)w->n, (long long)bad, bad >= 0 ? got[bad] : 0.0,
                 bad >= 0 ? w->ref[bad] : 0.0);
    free(got);
}

/* One pass: block p pinned (a trained block), every block read in the step's order, p changed on the
 * device (its optimizer update) and unpinned (written back to its home). */
static void walk_pass(Walk *w, int pass) {
    OwError err;
    int p = w->sc->pinned[pass];
    Tensor pin;
    cr_assert_eq(block_store_pin(w->bs, p, &pin, &err), 0, "%s", err.msg);
    cr_assert(!block_store_streams(w->bs, p));
    for (int pos = 0; pos < 2 * NB; pos++) {
        Tensor buf;
        enter(w, pos, &buf);
        int b = order_at(pos);
        if (b == p) cr_assert_eq(buf.data, pin.data, "a pinned block is read from its pin buffer");
        read_block(w, &buf, b);
        block_store_release(w->bs, b);
    }
    Tensor delta = tensor_1d(OW_F32, w->n), view = f32_view(&pin, w->n);
    cr_assert_eq(be_alloc(w->be, &delta, MEM_OTHER, "test update", &err), 0, "%s", err.msg);
    w->be->ops->fill(w->be, &delta, (float)(pass + 1));
    w->be->ops->axpy(w->be, &view, 1.0f, &delta);
    for (int64_t k = 0; k < w->n; k++) w->content[p][k] += (float)(pass + 1);
    be_release(w->be, &delta, MEM_OTHER);
    cr_assert_eq(block_store_unpin(w->bs, p, &err), 0, "%s", err.msg);
    cr_assert(block_store_streams(w->bs, p));
}

/* Every block, from its home, holds what the host knows (write-backs landed, nothing else changed). */
static void expect_homes(Walk *w) {
    OwError err;
    float *got = malloc((size_t)w->n * sizeof(float));
    for (int b = 0; b < NB; b++) {
        Tensor buf;
        cr_assert_eq(block_store_acquire(w->bs, b, &buf, &err), 0, "%s", err.msg);
        Tensor v = f32_view(&buf, w->n);
        w->be->ops->download(w->be, got, OW_F32, &v);
        block_store_release(w->bs, b);
        cr_expect(memcmp(got, w->content[b], (size_t)w->n * sizeof(float)) == 0, "%s: block %d (%s home) differs",
                  w->sc->name, b, block_home_names[block_store_home(w->bs, b)]);
    }
    free(got);
}

static void store_walk(const StoreCase *sc) {
    char *dir = ts_tmpdir();
    Walk w;
    walk_open(&w, sc, dir);
    BlockStoreStats s0, s1;
    block_store_stats(w.bs, &s0);
    for (int pass = 0; pass < PASSES; pass++) {
        walk_pass(&w, pass);
        char when[32];
        snprintf(when, sizeof when, "after pass %d", pass);
        expect_sum(&w, when);
    }
    block_store_stats(w.bs, &s1);
    expect_homes(&w);
    int64_t fetches = s1.fetches - s0.fetches, hits = s1.hits - s0.hits;
    cr_log_info("%s: %d passes of %d blocks, %lld fetches, %lld slot hits, %lld disk reads (%s), %lld write-backs",
                sc->name, PASSES, 2 * NB, (long long)fetches, (long long)hits,
                (long long)(s1.disk_reads - s0.disk_reads),
                block_store_io_describe(w.bs)[0] ? block_store_io_describe(w.bs) : "no store file",
                (long long)(s1.writebacks - s0.writebacks));
    /* the block at the turn of each pass is read twice in a row: the second time from its slot */
    cr_expect_geq(hits, PASSES, "%s: %lld slot hits", sc->name, (long long)hits);
    cr_expect_gt(fetches, 0);
    cr_expect_eq(s1.bytes_up, (size_t)s1.fetches * (size_t)w.n * sizeof(float), "%s: bytes up", sc->name);
    cr_expect_eq(s1.writebacks - s0.writebacks, PASSES, "%s: one write-back per pass", sc->name);
    walk_close(&w);
    ts_rmtree(dir);
    free(dir);
}

#define H BLOCK_HOME_HOST
#define D BLOCK_HOME_DISK
#define V BLOCK_HOME_DEVICE

Test(cuda_offload, host_homes_two_slots) {
    static const StoreCase sc = {"host homes, 2 slots", {H, H, H, H, H, H, H, H}, 2, {5, 1, 6}};
    store_walk(&sc);
}

Test(cuda_offload, store_file_homes_two_slots) {
    static const StoreCase sc = {"store-file homes, 2 slots", {D, D, D, D, D, D, D, D}, 2, {5, 1, 6}};
    store_walk(&sc);
}

Test(cuda_offload, mixed_homes_three_slots) {
    static const StoreCase sc = {"device/host/store-file homes, 3 slots", {V, H, D, H, D, V, D, H}, 3, {4, 1, 7}};
    store_walk(&sc);
}

#undef H
#undef D
#undef V

/* ---- copy_sync ---- */

/* Queues `n` kernels on the compute queue (a copy queued next waits for them). */
static void busy(Backend *be, Tensor *t, int n) {
    for (int i = 0; i < n; i++) be->ops->scale(be, t, 1.0f);
}

Test(cuda_offload, copy_sync_lets_the_host_reuse_its_buffer) {
    OwError err;
    Backend *be = gpu();
    const int64_t n = emulated() ? 4096 : (int64_t)1 << 22;
    const int chain = emulated() ? 4 : 1000; /* ~10 ms of kernels ahead of the copy on an H200 */
    size_t bytes = (size_t)n * sizeof(float);
    float *host = be->ops->host_alloc(be, bytes, &err), *want = malloc(bytes);
    cr_assert(host != NULL, "%s", err.msg);
    Tensor dev = tensor_1d(OW_F32, n), load = tensor_1d(OW_F32, n);
    cr_assert_eq(be_alloc(be, &dev, MEM_OTHER, "test", &err), 0, "%s", err.msg);
    cr_assert_eq(be_alloc(be, &load, MEM_OTHER, "test load", &err), 0, "%s", err.msg);
    for (int64_t k = 0; k < n; k++) want[k] = host[k] = pattern(3, k);

    /* host -> device behind a chain of kernels: after copy_sync the host buffer is free */
    busy(be, &load, chain);
    int t = be->ops->copy_from_host(be, &dev, host);
    be->ops->copy_sync(be, t);
    memset(host, 0xff, bytes);
    be->ops->copy_wait(be, t);
    float *got = malloc(bytes);
    be->ops->download(be, got, OW_F32, &dev);
    cr_expect(memcmp(got, want, bytes) == 0, "the copy up read the host buffer after copy_sync returned");

    /* device -> host behind a chain of kernels that writes the source: after copy_sync the host reads it */
    be->ops->fill(be, &dev, 7.0f);
    busy(be, &dev, chain);
    t = be->ops->copy_to_host(be, host, &dev);
    be->ops->copy_sync(be, t);
    int64_t bad = 0;
    for (int64_t k = 0; k < n; k++) bad += host[k] != 7.0f;
    cr_expect_eq(bad, 0, "%lld of %lld values had not come down when copy_sync returned", (long long)bad, (long long)n);

    free(got);
    free(want);
    be->ops->host_free(be, host);
    be_release(be, &dev, MEM_OTHER);
    be_release(be, &load, MEM_OTHER);
    be->ops->destroy(be);
}

/* ---- training: streamed blocks give the resident bits ---- */

#define MAX_STEPS 30

/* The runs' length and batch: 30 steps on a GPU; under the emulator, where a step of this model takes
 * ~25 s (its norm kernels run 1024 host threads per row), 4 steps of one 16-token sequence with a
 * resample every 2 steps and a projector refresh at every step of a tensor. */
typedef struct {
    int steps, interval, update_gap;
    int64_t batch, block;
} TrainScale;

static TrainScale train_scale(void) {
    return emulated() ? (TrainScale){4, 2, 1, 1, 16} : (TrainScale){MAX_STEPS, 5, 4, 2, 32};
}

/* An 8-block model of its own (GQA, untied): more blocks than gamma 2 + 2 slots. */
static const char k_model_json[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_act\": \"silu\", "
    "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 8, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 2, \"vocab_size\": 256, \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-05, "
    "\"rope_theta\": 10000.0, \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2}";
static const char k_ratios_json[] = "{\"ratios\": [1.0, 0.5, 0.8, 0.3, 0.9, 0.4, 0.7, 0.6]}";

static void offload_config(TrainConfig *c, const char *dir, const char *name, OffloadPlaceMode mode, int accum) {
    char *model = ow_path_join(dir, "model.json"), *ratios = ow_path_join(dir, "ratios.json");
    char *out = ow_path_join(dir, name), *nv = ow_path_join(dir, "nvme");
    if (!ow_path_exists(model)) ts_write_file(model, k_model_json, strlen(k_model_json));
    if (!ow_path_exists(ratios)) ts_write_file(ratios, k_ratios_json, strlen(k_ratios_json));
    (void)ow_mkdir_p(nv, NULL);
    ts_train_config(c, "owlore", model, "synthetic", out, "cuda");
    snprintf(c->ratios, sizeof c->ratios, "%s", ratios);
    snprintf(c->nvme_dir, sizeof c->nvme_dir, "%s", nv);
    TrainScale sc = train_scale();
    c->steps = sc.steps;
    c->batch_size = sc.batch;
    c->block_size = sc.block;
    c->grad_accum = accum;
    c->gamma = 2;
    c->interval = sc.interval;
    c->update_gap = sc.update_gap;
    c->rank = 8;
    c->lr = 1e-2;
    c->val_split = 0;
    c->eval_every = 0;
    c->save_every = 0;
    c->offload = mode;
    c->stream_slots = 2;
    free(model);
    free(ratios);
    free(out);
    free(nv);
}

static void expect_streamed(const char *out, const char *home) {
    char *p = ow_path_join(out, "summary.json");
    OwError err;
    cJSON *s = json_parse_file(p, &err);
    cr_assert(s != NULL, "%s", err.msg);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(s, "offload");
    cr_assert(o != NULL, "%s: no offload figures in summary.json", out);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, home), *f = cJSON_GetObjectItemCaseSensitive(o, "fetches");
    cr_expect(cJSON_IsNumber(n) && n->valuedouble == 8, "%s: every block in the %s home", out, home);
    cr_expect(cJSON_IsNumber(f) && f->valuedouble > 0, "%s: blocks were fetched", out);
    cJSON_Delete(s);
    free(p);
}

static void bit_exact(int accum) {
    char *dir = ts_tmpdir();
    TrainConfig none, host, nvme;
    offload_config(&none, dir, "none", OFFLOAD_MODE_NONE, accum);
    offload_config(&host, dir, "host", OFFLOAD_MODE_HOST, accum);
    offload_config(&nvme, dir, "nvme", OFFLOAD_MODE_NVME, accum);
    ts_train(&none);
    ts_train(&host);
    ts_train(&nvme);
    expect_streamed(host.out, "host");
    expect_streamed(nvme.out, "disk");
    ts_expect_same_run(none.out, host.out, train_scale().steps);
    ts_expect_same_run(none.out, nvme.out, train_scale().steps);
    ts_rmtree(dir);
    free(dir);
}

Test(cuda_offload, host_and_nvme_homes_give_the_resident_bits) { bit_exact(1); }

/* Blocks that keep their activations (--keep-acts: none, the top two, all eight; the top two with the blocks
 * streamed from host memory) give the bits of recomputing them: a kept block keeps neither its norms' outputs
 * nor the MLP product, and a trained one's backward recomputes them for its weight gradients (llama.c). */
Test(cuda_offload, kept_activations_give_the_recompute_bits) {
    char *dir = ts_tmpdir();
    const int keep[4] = {0, 2, 8, 2};
    TrainConfig c[4];
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "keep%d-%d", keep[i], i);
        offload_config(&c[i], dir, name, i == 3 ? OFFLOAD_MODE_HOST : OFFLOAD_MODE_NONE, 1);
        c[i].keep_acts = keep[i];
        ts_train(&c[i]);
        if (i) ts_expect_same_run(c[0].out, c[i].out, train_scale().steps);
    }
    expect_streamed(c[3].out, "host");
    ts_rmtree(dir);
    free(dir);
}
Test(cuda_offload, host_and_nvme_homes_give_the_resident_bits_with_accumulation) { bit_exact(3); }

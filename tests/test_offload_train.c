// ctest-labels: cpu
/* test_offload_train.c: training with frozen blocks streamed from their homes
 * (offload/block_store.h) gives the same bits as every block resident: 30
 * owlore steps on the real TinyStories-656K (one of its two blocks trained at
 * a time, so each block is streamed, pinned, written back and streamed
 * again; resamples every 5 steps, projector refreshes every 4 of a tensor's
 * steps), with the host and the nvme (store file) homes, one micro-batch and
 * three. Losses of every step, the gradient norms and the exported weights
 * must be identical. Also: the store file written by one run is reused by the
 * next while untouched, and damage to it stops a run naming the block. */
#include "core/fileio.h"
#include "core/json.h"
#include "offload/block_store.h"
#include "offload/host_mem.h"
#include "offload/store_file.h"
#include "test_support.h"
#include "train/trainer.h"
#include "train_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STEPS 30

static void offload_config(TrainConfig *c, const char *dir, const char *name, OffloadPlaceMode mode, int accum) {
    char *model = ts_shared_path("data/real/hf/TinyStories-656K");
    char *data = ts_shared_path("data/real/text/tinystories_train_sample_2MiB.txt");
    char *out = ow_path_join(dir, name);
    ts_train_config(c, "owlore", model, data, out, "cpu");
    c->steps = STEPS;
    c->batch_size = 4;
    c->block_size = 64;
    c->grad_accum = accum;
    c->gamma = 1;
    c->interval = 5;
    c->update_gap = 4;
    c->rank = 8;
    c->eval_every = 0;
    c->save_every = 0;
    c->offload = mode;
    c->nsamples = 8; /* OWL calibration: a few sequences are enough here */
    c->seqlen = 64;
    char *cache = ow_path_join(dir, "cache"); /* tokenized once per test */
    snprintf(c->data_cache, sizeof c->data_cache, "%s", cache);
    free(cache);
    char *nv = ow_path_join(dir, "nvme");
    (void)ow_mkdir_p(nv, NULL);
    snprintf(c->nvme_dir, sizeof c->nvme_dir, "%s", nv);
    free(nv);
    free(model);
    free(data);
    free(out);
}

static void run(const TrainConfig *c) { ts_train(c); }

static void same_run_steps(const char *a, const char *b, int steps) { ts_expect_same_run(a, b, steps); }

static void same_run(const char *a, const char *b) { same_run_steps(a, b, STEPS); }

/* A string of RUN_DIR/summary.json (static storage). */
static const char *summary_string(const char *out, const char *key) {
    static char buf[128];
    OwError err;
    char *p = ow_path_join(out, "summary.json");
    cJSON *j = json_parse_file(p, &err);
    cr_assert(j != NULL, "%s", err.msg);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsString(v), "%s: no string %s", p, key);
    snprintf(buf, sizeof buf, "%s", v->valuestring);
    cJSON_Delete(j);
    free(p);
    return buf;
}

/* A number of RUN_DIR/summary.json's "offload" object. */
static double summary_offload(const char *out, const char *key) {
    char *p = ow_path_join(out, "summary.json");
    cJSON *j = json_parse_file(p, NULL);
    cr_assert(j != NULL, "%s", p);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "offload"), key);
    cr_assert(cJSON_IsNumber(v), "%s: no offload.%s", p, key);
    double x = v->valuedouble;
    cJSON_Delete(j);
    free(p);
    return x;
}

static void bit_exact(int accum) {
    char *dir = ts_tmpdir();
    TrainConfig none, host, nvme;
    offload_config(&none, dir, "none", OFFLOAD_MODE_NONE, accum);
    offload_config(&host, dir, "host", OFFLOAD_MODE_HOST, accum);
    offload_config(&nvme, dir, "nvme", OFFLOAD_MODE_NVME, accum);
    run(&none);
    run(&host);
    run(&nvme);
    same_run(none.out, host.out);
    same_run(none.out, nvme.out);
    /* the run streamed: its summary says how, and the trained blocks went back to the store */
    char *sp = ow_path_join(nvme.out, "summary.json");
    cJSON *j = json_parse_file(sp, NULL);
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "offload");
    cr_assert(off != NULL, "%s has no offload figures", sp);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(off, "disk")->valuedouble, 2);
    cr_assert_gt(cJSON_GetObjectItemCaseSensitive(off, "disk_reads")->valuedouble, 0);
    cr_assert_gt(cJSON_GetObjectItemCaseSensitive(off, "writebacks")->valuedouble, 0);
    cJSON_Delete(j);
    free(sp);
    ts_rmtree(dir);
    free(dir);
}

Test(offload_train, host_and_nvme_homes_give_the_resident_bits) { bit_exact(1); }

/* Layer-major accumulation (every micro-batch through a block before the next) gives the bits of
 * micro-batch order, resident and streamed. TinyStories-656K ties its embeddings, so they are frozen
 * here (a trainable tied embedding is refused: see below). */
Test(offload_train, layer_major_accumulation_gives_the_micro_batch_bits) {
    char *dir = ts_tmpdir();
    static const struct {
        const char *name;
        OffloadPlaceMode mode;
        AccumOrder order;
    } runs[] = {{"none-micro", OFFLOAD_MODE_NONE, ACCUM_ORDER_MICRO},
                {"none-layer", OFFLOAD_MODE_NONE, ACCUM_ORDER_LAYER},
                {"host-layer", OFFLOAD_MODE_HOST, ACCUM_ORDER_LAYER},
                {"nvme-auto", OFFLOAD_MODE_NVME, ACCUM_ORDER_AUTO}};
    TrainConfig c[4];
    for (int i = 0; i < 4; i++) {
        offload_config(&c[i], dir, runs[i].name, runs[i].mode, 3);
        c[i].accum_order = runs[i].order;
        c[i].freeze_embeddings = 1;
        run(&c[i]);
        if (i) same_run(c[0].out, c[i].out);
    }
    cr_assert_str_eq(summary_string(c[3].out, "accum_order"), "layer"); /* auto chose it: blocks streamed */
    cr_assert_str_eq(summary_string(c[0].out, "accum_order"), "micro");
    ts_rmtree(dir);
    free(dir);
}

/* The same on an untied model (the trajectory fixture: 4 blocks, untied lm_head, compact embedding
 * gradient), where lm_head's and the embedding's gradients accumulate over the micro-batches too. */
Test(offload_train, layer_major_accumulation_untied) {
    char *dir = ts_tmpdir();
    TrainConfig c[3];
    const char *names[3] = {"micro", "layer", "layer-host"};
    for (int i = 0; i < 3; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "%s/%s", dir, names[i]);
        (void)ow_mkdir_p(sub, NULL);
        free(ts_trajectory_config("owlore", sub, "cpu", &c[i]));
        c[i].grad_accum = 3;
        c[i].accum_order = i ? ACCUM_ORDER_LAYER : ACCUM_ORDER_MICRO;
        c[i].offload = i == 2 ? OFFLOAD_MODE_HOST : OFFLOAD_MODE_NONE;
        run(&c[i]);
        if (i) same_run_steps(c[0].out, c[i].out, (int)c[0].steps);
    }
    ts_rmtree(dir);
    free(dir);
}

/* A trainable tied embedding cannot keep its accumulation order layer-major: refused, naming the fix. */
Test(offload_train, layer_major_refuses_a_trainable_tied_embedding) {
    char *dir = ts_tmpdir();
    TrainConfig c;
    offload_config(&c, dir, "tied", OFFLOAD_MODE_NONE, 3);
    c.accum_order = ACCUM_ORDER_LAYER;
    OwError err;
    TrainSummary s;
    cr_assert_neq(train_run(&c, &s, &err), 0);
    cr_assert(strstr(err.msg, "tied") && strstr(err.msg, "--accum-order micro"), "%s", err.msg);
    ts_rmtree(dir);
    free(dir);
}
Test(offload_train, host_and_nvme_homes_give_the_resident_bits_with_accumulation) { bit_exact(3); }

/* Runs "a" and "b" of `steps` steps in dir, every frozen block in one store file (the same for both). */
static void two_store_runs(const char *dir, TrainConfig *a, TrainConfig *b, int64_t steps) {
    offload_config(a, dir, "a", OFFLOAD_MODE_NVME, 1);
    offload_config(b, dir, "b", OFFLOAD_MODE_NVME, 1);
    a->steps = b->steps = steps;
}

/* Runs a, then b (same --nvme-dir); the store file's stat after each. */
static void run_twice_on_one_store(const TrainConfig *a, const TrainConfig *b, struct stat *after_a,
                                   struct stat *after_b) {
    char *store = ow_path_join(a->nvme_dir, "TinyStories-656K.owstore");
    run(a);
    cr_assert_eq(stat(store, after_a), 0);
    run(b);
    cr_assert_eq(stat(store, after_b), 0);
    free(store);
}

/* A store file written by a run that only read it is reused by the next run (same source). */
Test(offload_train, store_file_reused_while_untouched) {
    char *dir = ts_tmpdir();
    TrainConfig a, b;
    two_store_runs(dir, &a, &b, 3);
    a.interval = b.interval = 100; /* no resample: nothing is written back */
    a.gamma = b.gamma = 1;
    snprintf(a.forced_blocks, sizeof a.forced_blocks, "1");
    snprintf(b.forced_blocks, sizeof b.forced_blocks, "1");
    struct stat st0, st1;
    run_twice_on_one_store(&a, &b, &st0, &st1);
    cr_assert(st0.st_ino == st1.st_ino && st0.st_mtime == st1.st_mtime, "the store file was written again");
    ts_rmtree(dir);
    free(dir);
}

/* A store file into which a run wrote trained blocks back (resamples) is reused by the next run of the same
 * source: only those blocks are written again (the source's bytes), in place, and that run gives the bits of
 * the first, which began from a new store. */
Test(offload_train, store_file_reused_after_write_back) {
    char *dir = ts_tmpdir();
    TrainConfig a, b;
    two_store_runs(dir, &a, &b, 12); /* resamples at 5 and 10: both blocks trained and written back */
    struct stat st0, st1;
    run_twice_on_one_store(&a, &b, &st0, &st1);
    cr_assert_eq(st0.st_ino, st1.st_ino, "the store file was written anew");
    same_run_steps(a.out, b.out, 12);
    double wa = summary_offload(a.out, "writebacks"), sa = summary_offload(a.out, "store_writes"),
           sb = summary_offload(b.out, "store_writes");
    cr_assert_eq(sa, 2, "the first run writes both blocks into its new store (%g)", sa);
    cr_assert(wa > 0 && sb >= 1 && sb <= 2, "written back %g, then written again %g", wa, sb);
    ts_rmtree(dir);
    free(dir);
}

/* A frozen block whose record is damaged on disk stops the run with the block named. */
Test(offload_train, damaged_store_stops_naming_the_block) {
    char *dir = ts_tmpdir();
    TrainConfig a, b;
    two_store_runs(dir, &a, &b, 2);
    snprintf(a.forced_blocks, sizeof a.forced_blocks, "1");
    snprintf(b.forced_blocks, sizeof b.forced_blocks, "1");
    run(&a);
    char *store = ow_path_join(a.nvme_dir, "TinyStories-656K.owstore");
    StoreFile sf;
    OwError err;
    cr_assert_eq(store_file_open(&sf, store, 0, &err), -1); /* any other source is refused ... */
    /* ... so read the record offset of block 0 from the table directly */
    char *bytes;
    size_t n;
    cr_assert_eq(ow_read_file(store, &bytes, &n, &err), 0, "%s", err.msg);
    const StoreBlock *table = (const StoreBlock *)(bytes + sizeof(StoreFileHeader));
    long off = (long)table[0].offset + 100;
    free(bytes);
    ts_corrupt_byte(store, off);
    TrainSummary s;
    cr_assert_neq(train_run(&b, &s, &err), 0, "a damaged frozen block was read without error");
    cr_assert(strstr(err.msg, "block 0"), "the error names the block: %s", err.msg);
    free(store);
    ts_rmtree(dir);
    free(dir);
}

/* A read error of the store file during training stops the run with the block named, after the
 * checkpoints written so far (intact: the run resumes from the last one to the uninterrupted result). */
Test(offload_train, read_error_stops_the_run_and_it_resumes_exactly, .timeout = 300) {
    char *dir = ts_tmpdir();
    TrainConfig c[2];
    const char *names[2] = {"ref", "broken"};
    for (int i = 0; i < 2; i++) {
        char sub[600];
        snprintf(sub, sizeof sub, "%s/%s", dir, names[i]);
        (void)ow_mkdir_p(sub, NULL);
        free(ts_trajectory_config("owlore", sub, "cpu", &c[i]));
        c[i].gamma = 1; /* block 3 trains; 0, 1 and 2 stream through two slots, read again every step */
        snprintf(c[i].forced_blocks, sizeof c[i].forced_blocks, "3");
        c[i].stream_slots = 2;
        c[i].offload = OFFLOAD_MODE_NVME;
        c[i].save_every = 1;
        c[i].keep = 50;
        memcpy(c[i].nvme_dir, sub, strlen(sub) + 1 < sizeof c[i].nvme_dir ? strlen(sub) + 1 : 0);
        cr_assert(c[i].nvme_dir[0], "%s: path too long", sub);
    }
    run(&c[0]);
    setenv("OWLORE_TEST_FAIL_DISK_READ", "10", 1);
    OwError err;
    TrainSummary s;
    int rc = train_run(&c[1], &s, &err);
    unsetenv("OWLORE_TEST_FAIL_DISK_READ");
    cr_assert_neq(rc, 0, "the injected read error stops the run");
    cr_assert(strstr(err.msg, "block ") && strstr(err.msg, "read error"), "the error names the block: %s", err.msg);
    char *ck = ow_path_join(c[1].out, "checkpoints/step-000002");
    cr_assert(ow_is_dir(ck), "the checkpoints before the error are kept");
    free(ck);
    char cmd[2048], *out;
    snprintf(cmd, sizeof cmd, "%s train --resume '%s'", ts_owlore_binary(), c[1].out);
    rc = ts_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    same_run_steps(c[0].out, c[1].out, (int)c[0].steps);
    ts_rmtree(dir);
    free(dir);
}

/* Blocks that keep their activations instead of recomputing them (--keep-acts) give the same bits: none,
 * the top two and all four blocks of the trajectory model, resident and streamed. */
Test(offload_train, kept_activations_give_the_recompute_bits) {
    char *dir = ts_tmpdir();
    TrainConfig c[4];
    const int keep[4] = {0, 2, 4, 2};
    for (int i = 0; i < 4; i++) {
        char sub[600];
        snprintf(sub, sizeof sub, "%s/k%d-%d", dir, keep[i], i);
        (void)ow_mkdir_p(sub, NULL);
        free(ts_trajectory_config("owlore", sub, "cpu", &c[i]));
        c[i].keep_acts = keep[i];
        c[i].offload = i == 3 ? OFFLOAD_MODE_HOST : OFFLOAD_MODE_NONE;
        run(&c[i]);
        if (i) same_run_steps(c[0].out, c[i].out, (int)c[0].steps);
    }
    ts_rmtree(dir);
    free(dir);
}

/* Placements that cannot hold the blocks are refused before anything is allocated, naming what to change. */
Test(offload_train, impossible_placements_are_refused_naming_the_fix) {
    char *dir = ts_tmpdir();
    TrainConfig c;
    OwError err;
    TrainSummary s;
    offload_config(&c, dir, "small-host", OFFLOAD_MODE_HOST, 1);
    c.host_mem = 1024; /* no block fits */
    cr_assert_neq(train_run(&c, &s, &err), 0);
    cr_assert(strstr(err.msg, "--host-mem") && strstr(err.msg, "--nvme-dir"), "%s", err.msg);
    cr_assert(!ow_path_exists(c.out), "nothing written for a refused run: %s", c.out);
    offload_config(&c, dir, "no-dir", OFFLOAD_MODE_NVME, 1);
    c.nvme_dir[0] = '\0';
    cr_assert_neq(train_run(&c, &s, &err), 0);
    cr_assert(strstr(err.msg, "nvme_dir"), "%s", err.msg);
    offload_config(&c, dir, "not-a-dir", OFFLOAD_MODE_NVME, 1);
    snprintf(c.nvme_dir, sizeof c.nvme_dir, "%s/none/such", dir);
    cr_assert_neq(train_run(&c, &s, &err), 0);
    cr_assert(strstr(err.msg, "none/such") && strstr(err.msg, "not a directory"), "%s", err.msg);
    ts_rmtree(dir);
    free(dir);
}

/* `owlore eval` streams the blocks the device cannot hold (forced here with --offload host): the same loss. */
Test(offload_train, eval_with_streamed_blocks_gives_the_same_loss) {
    char *model = ts_shared_path("data/real/hf/TinyStories-656K");
    char *data = ts_shared_path("data/real/text/tinystories_train_sample_2MiB.txt");
    char *dir = ts_tmpdir();
    char *line[2] = {NULL, NULL};
    const char *modes[2] = {"none", "host"};
    for (int i = 0; i < 2; i++) {
        char cmd[4096], *out;
        snprintf(cmd, sizeof cmd,
                 "XDG_CACHE_HOME='%s' %s eval --model '%s' --data '%s' --device cpu --threads 1 --batch-size 2 "
                 "--block-size 64 --max-batches 3 --offload %s",
                 dir, ts_owlore_binary(), model, data, modes[i]);
        cr_assert_eq(ts_run(cmd, &out), 0, "%s\n%s", cmd, out);
        char *l = strstr(out, "loss ");
        cr_assert(l != NULL, "%s", out);
        line[i] = strndup(l, strcspn(l, "\n"));
        cr_assert(i == 0 || strstr(out, "streamed from host memory"), "the blocks streamed:\n%s", out);
        free(out);
    }
    cr_assert_str_eq(line[1], line[0]);
    free(line[0]);
    free(line[1]);
    ts_rmtree(dir);
    free(dir);
    free(model);
    free(data);
}

/* `owlore outliers` with every block streamed from host memory writes the same ratios. */
Test(offload_train, outliers_with_streamed_blocks_gives_the_same_ratios) {
    char *model = ts_shared_path("data/real/hf/TinyStories-656K");
    char *data = ts_shared_path("data/real/text/tinystories_train_sample_2MiB.txt");
    char *dir = ts_tmpdir();
    char *json[2];
    const char *modes[2] = {"none", "host"};
    for (int i = 0; i < 2; i++) {
        char cmd[4096], *out, name[32];
        snprintf(name, sizeof name, "%s.json", modes[i]);
        json[i] = ow_path_join(dir, name);
        snprintf(cmd, sizeof cmd,
                 "XDG_CACHE_HOME='%s' %s outliers --model '%s' --data '%s' --device cpu --threads 1 --nsamples 4 "
                 "--seqlen 64 --offload %s --out '%s'",
                 dir, ts_owlore_binary(), model, data, modes[i], json[i]);
        cr_assert_eq(ts_run(cmd, &out), 0, "%s\n%s", cmd, out);
        free(out);
    }
    char *a = ts_read_text(json[0]), *b = ts_read_text(json[1]);
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    free(json[0]);
    free(json[1]);
    ts_rmtree(dir);
    free(dir);
    free(model);
    free(data);
}

/* A block store mixing the three homes (what auto makes under --gpu-mem with --host-mem and --nvme-dir) on
 * the CPU backend: written at setup through stage and commit, sealed (the new store file takes every block),
 * every block read back through a slot or its own buffer, a pinned block changed and written back home. */
Test(offload_train, a_store_mixing_the_three_homes_keeps_every_block) {
    enum { NB = 5, WORDS = 1024 };
    const BlockHome homes[NB] = {BLOCK_HOME_DEVICE, BLOCK_HOME_HOST, BLOCK_HOME_DISK, BLOCK_HOME_HOST, BLOCK_HOME_DISK};
    char *dir = ts_tmpdir(), *path = ow_path_join(dir, "mixed.owstore");
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    HostMem host;
    host_mem_init(&host, 0);
    BlockStoreConfig cfg = {.n_blocks = NB,
                            .block_bytes = WORDS * sizeof(float),
                            .homes = homes,
                            .stream_slots = 2,
                            .pin_slots = 1,
                            .store_path = path,
                            .source_hash = 42,
                            .host = &host};
    BlockStore *bs;
    cr_assert_eq(block_store_create(be, &cfg, &bs, &err), 0, "%s", err.msg);
    float v[WORDS];
    for (int b = 0; b < NB; b++) {
        Tensor t;
        cr_assert_eq(block_store_stage(bs, b, &t, &err), 0, "%s", err.msg);
        for (int k = 0; k < WORDS; k++) v[k] = (float)(b * WORDS + k);
        be->ops->upload(be, &t, v, OW_U8);
        cr_assert_eq(block_store_commit(bs, b, &err), 0, "block %d: %s", b, err.msg);
    }
    cr_assert_eq(block_store_seal(bs, &err), 0, "%s", err.msg);
    Tensor t;
    cr_assert_eq(block_store_pin(bs, 4, &t, &err), 0, "%s", err.msg); /* trained: changed, then home */
    ((float *)t.data)[7] = -1.0f;
    cr_assert_eq(block_store_unpin(bs, 4, &err), 0, "%s", err.msg);
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < NB; b++) {
            cr_assert_eq(block_store_acquire(bs, b, &t, &err), 0, "block %d: %s", b, err.msg);
            const float *got = t.data;
            for (int k = 0; k < WORDS; k++) {
                float want = b == 4 && k == 7 ? -1.0f : (float)(b * WORDS + k);
                cr_assert_eq(got[k], want, "pass %d block %d word %d: %g, want %g", pass, b, k, got[k], want);
            }
            block_store_release(bs, b);
        }
    BlockStoreStats st;
    block_store_stats(bs, &st);
    cr_assert_gt(st.disk_reads, 0);
    cr_assert_eq(st.writebacks, 1);
    block_store_free(bs);
    host_mem_release(&host);
    be->ops->destroy(be);
    ts_rmtree(dir);
    free(dir);
    free(path);
}

/* Every block's weights of m, downloaded as F32 and concatenated (heap). */
static float *block_weights(Model *m, size_t *n) {
    size_t total = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].kind == PK_BLOCK) total += (size_t)tensor_numel(&m->params[i].w);
    float *all = ow_xmalloc(total * sizeof(float)), *at = all;
    OwError err;
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        if (p->kind != PK_BLOCK) continue;
        cr_assert_eq(model_param_download(m, p, at, OW_F32, &err), 0, "%s: %s", p->name, err.msg);
        at += tensor_numel(&p->w);
    }
    *n = total;
    return all;
}

/* A model placed over the three homes (what auto makes on a GPU under --gpu-mem with --host-mem and
 * --nvme-dir), built by `make` (random init or a Hugging Face load), holds the resident model's weights:
 * when the store file is written at setup (it takes every block, device homes too) and when it is reused
 * (then only the disk homes come from it; the other homes are filled as without a store). */
static void mixed_homes_hold_the_resident_weights(Model *(*make)(Backend *, const BlockStoreConfig *, const char *),
                                                  const char *arg, int n_layers) {
    char *dir = ts_tmpdir(), *path = ow_path_join(dir, "mixed.owstore");
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    Model *resident = make(be, NULL, arg);
    size_t n, n2;
    float *want = block_weights(resident, &n);
    model_free(resident);
    BlockHome homes[8];
    cr_assert(n_layers <= 8);
    for (int l = 0; l < n_layers; l++) /* 5 blocks: device, disk, device, disk, host; 2: device, disk */
        homes[l] = l == 0 || (l == n_layers / 2 && l % 2 == 0) ? BLOCK_HOME_DEVICE
                   : l % 2                                     ? BLOCK_HOME_DISK
                                                               : BLOCK_HOME_HOST;
    BlockStoreConfig bc = {.homes = homes, .stream_slots = 2, .pin_slots = 1, .store_path = path, .source_hash = 7};
    for (int pass = 0; pass < 2; pass++) { /* written, then reused */
        Model *m = make(be, &bc, arg);
        cr_assert_eq(model_seal(m, &err), 0, "pass %d: %s", pass, err.msg);
        float *got = block_weights(m, &n2);
        cr_assert_eq(n2, n);
        cr_assert(memcmp(got, want, n * sizeof(float)) == 0, "pass %d: the placed model's blocks differ", pass);
        free(got);
        model_free(m);
    }
    free(want);
    be->ops->destroy(be);
    ts_rmtree(dir);
    free(dir);
    free(path);
}

static Model *make_random(Backend *be, const BlockStoreConfig *bc, const char *cfg_path) {
    OwError err;
    ModelConfig mc;
    cr_assert_eq(model_config_load(cfg_path, &mc, &err), 0, "%s", err.msg);
    mc.num_layers = 5;
    Model *m;
    int rc = bc ? model_create_placed(be, &mc, bc, &m, &err) : model_create(be, &mc, &m, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(model_init_random(m, 11, 0.02, &err), 0, "%s", err.msg);
    return m;
}

static Model *make_loaded(Backend *be, const BlockStoreConfig *bc, const char *dir) {
    OwError err;
    Model *m;
    int rc = bc ? model_load_hf_placed(be, dir, bc, &m, &err) : model_load_hf(be, dir, &m, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    return m;
}

Test(offload_train, mixed_homes_hold_the_resident_weights_random_init) {
    char *model = ts_shared_path("data/real/hf/TinyStories-656K"), *cfg = ow_path_join(model, "config.json");
    mixed_homes_hold_the_resident_weights(make_random, cfg, 5);
    free(cfg);
    free(model);
}

Test(offload_train, mixed_homes_hold_the_resident_weights_loaded) {
    char *model = ts_shared_path("data/real/hf/TinyStories-656K");
    mixed_homes_hold_the_resident_weights(make_loaded, model, 2);
    free(model);
}

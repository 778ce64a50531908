// ctest-labels: cpu
/* test_memplan.c: the memory plan (`owlore plan`, the --gpu-mem check)
 * against the peak the backend measures in real runs of each method, and the
 * refusal before training when the plan does not fit the cap. */
#include "core/fileio.h"
#include "model/preset.h"
#include "test_support.h"
#include "train_fixture.h"
#include "train/memplan.h"
#include "train/trainer.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static void config(TrainConfig *c, const char *method, const char *extra_key, const char *extra_val, const char *out) {
    OwError err;
    ts_small_synthetic_config(c, method, out);
    if (extra_key) cr_assert_eq(train_config_set_string(c, extra_key, extra_val, "test", &err), 0, "%s", err.msg);
}

/* settings: NULL or "key=value;key=value" applied after key=val; nvme_dir's value is ignored: a directory of
 * its own is made (the run's directory must stay empty). */
static void plan_matches_peak_with(const char *method, const char *key, const char *val, const char *settings) {
    char *dir = ts_tmpdir();
    TrainConfig c;
    config(&c, method, key, val, dir);
    char kv[512], *nvme = NULL;
    snprintf(kv, sizeof kv, "%s", settings ? settings : "");
    for (char *save = NULL, *it = strtok_r(kv, ";", &save); it; it = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(it, '=');
        cr_assert(eq != NULL);
        *eq = '\0';
        OwError e;
        char *v = eq + 1;
        if (strcmp(it, "nvme_dir") == 0) v = nvme = ts_tmpdir();
        cr_assert_eq(train_config_set_string(&c, it, v, "test", &e), 0, "%s", e.msg);
    }
    if (strcmp(method, "owlore") == 0 || strcmp(method, "lisa") == 0) {
        OwError e;
        cr_assert_eq(
            train_config_set_string(&c, "forced_blocks", strcmp(method, "lisa") ? "0,2;1,3" : "0,1;2,3", "t", &e), 0);
        c.gamma = 2;
        c.interval = 3;
    }
    ModelConfig mc;
    char *src;
    int is_dir;
    OwError err;
    cr_assert_eq(model_preset_resolve(c.model, &mc, &src, &is_dir, &err), 0, "%s", err.msg);
    free(src);
    MemPlan p;
    cr_assert_eq(train_memory_place(&c, &mc, OW_F32, OW_F32, 0, 0, train_host_room(&c), &p, NULL, &err), 0, "%s",
                 err.msg);
    TrainSummary s;
    cr_assert_eq(train_run(&c, &s, &err), 0, "%s", err.msg);
    double rel = ((double)s.peak_mem - (double)p.total) / (double)s.peak_mem;
    cr_log_info("%s %s: plan %zu bytes, measured peak %zu (%.2f%%)", method, val ? val : "", p.total, s.peak_mem,
                100 * rel);
    cr_assert_lt(rel < 0 ? -rel : rel, 0.01, "%s: plan %zu vs measured peak %zu", method, p.total, s.peak_mem);
    ts_rmtree(dir);
    free(dir);
    if (nvme) ts_rmtree(nvme);
    free(nvme);
}

static void plan_matches_peak(const char *method, const char *key, const char *val) {
    plan_matches_peak_with(method, key, val, NULL);
}

Test(memplan, owlore_randomized) { plan_matches_peak("owlore", "projector", "randomized"); }
/* the top blocks keep their activations instead of recomputing them */
Test(memplan, owlore_keep_activations) { plan_matches_peak("owlore", "keep_acts", "2"); }
/* frozen blocks streamed: their device slots and the trained blocks' buffers in place of every block */
Test(memplan, owlore_streamed_from_host) { plan_matches_peak("owlore", "offload", "host"); }
Test(memplan, owlore_streamed_from_the_store_layer_major) {
    plan_matches_peak_with("owlore", "offload", "nvme", "nvme_dir=nv;grad_accum=3;accum_order=layer;stream_slots=2");
}
Test(memplan, owlore_exact_no_recompute) { plan_matches_peak("owlore", "recompute", "false"); }
Test(memplan, galore_projected_accumulation) { plan_matches_peak("galore", "accum_mode", "projected"); }
Test(memplan, lisa) { plan_matches_peak("lisa", NULL, NULL); }
Test(memplan, full_frozen_embeddings) { plan_matches_peak("full", "freeze_embeddings", "true"); }

Test(memplan, owlore_offloaded_activations) { plan_matches_peak("owlore", "offload_activations", "on"); }
/* the embedding's and lm_head's moments in host memory, and lm_head's gradient in the
 * activation pool (copied to host memory after the head's backward) */
Test(memplan, owlore_offloaded_optimizer_and_head_gradient) { plan_matches_peak("owlore", "offload_optimizer", "on"); }

/* Offloading the block inputs changes where they wait, not their bits: the
 * same run with and without it has identical losses and gradient norms, with
 * backward down to the embedding and (frozen embeddings) stopping at block 3. */
static void offload_run(const char *out, const char *offload, const char *blocks, int freeze, double *loss,
                        double *gnorm) {
    TrainConfig c;
    config(&c, "owlore", "offload_activations", offload, out);
    OwError err;
    snprintf(c.model, sizeof c.model, "tiny");
    cr_assert_eq(train_config_set_string(&c, "forced_blocks", blocks, "t", &err), 0, "%s", err.msg);
    c.gamma = 2;
    c.interval = 3;
    c.freeze_embeddings = freeze;
    TrainSummary s;
    cr_assert_eq(train_run(&c, &s, &err), 0, "%s", err.msg);
    ts_read_metric(out, "loss", loss, 6);
    ts_read_metric(out, "grad_norm", gnorm, 6);
}

Test(memplan, activation_offload_is_bit_exact) {
    const char *blocks[2] = {"0,5;2,7", "3,6;4,5"};
    for (int freeze = 0; freeze < 2; freeze++) {
        char *dir = ts_tmpdir();
        char *a = ow_path_join(dir, "on"), *b = ow_path_join(dir, "off");
        double la[6], lb[6], ga[6], gb[6];
        offload_run(a, "on", blocks[freeze], freeze, la, ga);
        offload_run(b, "off", blocks[freeze], freeze, lb, gb);
        for (int i = 0; i < 6; i++) {
            cr_assert(la[i] == lb[i] && ga[i] == gb[i], "freeze %d step %d: loss %.9g vs %.9g, grad norm %.9g vs %.9g",
                      freeze, i, la[i], lb[i], ga[i], gb[i]);
        }
        cr_log_info("offload on/off, frozen embeddings %d: 6 steps identical, last loss %.9g", freeze, la[5]);
        free(a);
        free(b);
        ts_rmtree(dir);
        free(dir);
    }
}

Test(memplan, a_run_over_the_cap_stops_before_training) {
    char *dir = ts_tmpdir();
    char cmd[8192], *out, run[1024];
    char *model = ts_fixture_path("trajectory/model");
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(cmd, sizeof cmd,
             "%s train --model %s --data synthetic --steps 2 --out %s --device cpu --method galore --rank 8 "
             "--batch-size 64 --block-size 64 --gpu-mem 1MiB",
             ts_owlore_binary(), model, run);
    int rc = ts_run(cmd, &out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "but the cap (--gpu-mem) is 1.0 MiB") && strstr(out, "plan: weights") && strstr(out, "hint:"),
              "%s", out);
    cr_assert(strstr(out, "step 1/") == NULL, "%s", out);
    cr_assert(!ow_is_dir(run), "the refused run left its output directory %s behind", run);
    free(out);
    /* the resident plan, as before streaming and the trades of auto (which this cap would make) */
    snprintf(cmd, sizeof cmd,
             "%s plan --model llama2-7b --gpu-mem 24GiB --projector randomized --offload none --keep-acts 0 "
             "--offload-optimizer on",
             ts_owlore_binary());
    cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
    cr_assert(strstr(out, "weights         12.55 GiB") && strstr(out, "largest batch size that fits"), "%s", out);
    free(out);
    free(model);
    ts_rmtree(dir);
    free(dir);
}

/* The owlore recipe on the llama2-7b preset for device, and the preset's shape. */
static void preset_7b(TrainConfig *c, const char *device, ModelConfig *mc) {
    ts_train_config(c, "owlore", "llama2-7b", "synthetic", "unused", device);
    char *src;
    int is_dir;
    OwError err;
    cr_assert_eq(model_preset_resolve(c->model, mc, &src, &is_dir, &err), 0, "%s", err.msg);
    free(src);
}

/* The blocks' host homes take what the host room leaves beside the plan's other page-locked figures
 * (block inputs, the head's moments, lm_head's gradient); the rest of the blocks go to the store file. */
Test(memplan, host_homes_share_the_room_with_the_other_host_figures) {
    TrainConfig c;
    ModelConfig mc;
    OwError err;
    preset_7b(&c, "cuda", &mc);
    snprintf(c.nvme_dir, sizeof c.nvme_dir, "/nonexistent");
    MemPlan p;
    size_t room = (size_t)12 << 30;
    cr_assert_eq(train_memory_place(&c, &mc, OW_BF16, OW_BF16, 1, (size_t)8 << 30, room, &p, NULL, &err), 0, "%s",
                 err.msg);
    size_t other = p.host_activations + p.host_optimizer + p.host_gradients;
    cr_assert_gt(other, 0);
    cr_assert(p.place.n_host > 0 && p.place.n_disk > 0, "%d host, %d disk", p.place.n_host, p.place.n_disk);
    cr_assert_leq(p.place.host_bytes + other, room, "%zu + %zu over %zu", p.place.host_bytes, other, room);
    /* a room the other figures fill: every streamed block in the store file */
    cr_assert_eq(train_memory_place(&c, &mc, OW_BF16, OW_BF16, 1, (size_t)8 << 30, other, &p, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(p.place.n_host, 0);
}

/* auto streams nothing where the device has no memory of its own (the CPU): train_memory_check then
 * refuses a run over the cap with train's message. */
Test(memplan, auto_keeps_the_blocks_on_a_device_without_memory_of_its_own) {
    TrainConfig c;
    ModelConfig mc;
    OwError err;
    preset_7b(&c, "cpu", &mc);
    MemPlan p;
    size_t cap = (size_t)20 << 30;
    cr_assert_eq(train_memory_place(&c, &mc, OW_F32, OW_F32, 0, cap, SIZE_MAX, &p, NULL, &err), 0, "%s", err.msg);
    cr_assert(!p.place.streaming && p.total > cap);
    cr_assert_eq(train_memory_check(&c, &mc, OW_F32, OW_F32, 0, "cpu", cap, SIZE_MAX, &p, NULL, &err), -1);
    cr_assert(strstr(err.msg, "of cpu memory but the cap (--gpu-mem) is 20.00 GiB") && strstr(err.msg, "hint:"), "%s",
              err.msg);
    /* the same run on a GPU (bf16) fits */
    cr_assert_eq(train_memory_check(&c, &mc, OW_BF16, OW_BF16, 1, "cuda", cap, SIZE_MAX, &p, NULL, &err), 0, "%s",
                 err.msg);
}

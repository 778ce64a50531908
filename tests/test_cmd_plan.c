// ctest-labels: cpu
/* test_cmd_plan.c: `owlore plan` through the binary: --json agrees with
 * train_memory_place for the same keys (device peak, host and disk bytes,
 * the placement and every block's home), a 7B run under an 8 GiB cap streams
 * blocks from host memory (the device homes spread over the depth) and an
 * uncapped one does not, the page-locked room is shared with the plan's
 * other host figures, the rate flags reach the prediction without becoming
 * train keys, and a run that cannot fit stops with train's own message. */
#include "core/json.h"
#include "model/preset.h"
#include "backend/backend_cuda.h"
#include "train/costmodel.h"
#include "test_support.h"
#include "train/memplan.h"
#include "train/train_config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB ((size_t)1 << 30)

/* `owlore plan ARGS --json` parsed (stdout only); fails the test unless it exits 0. */
static cJSON *plan_json(const char *args) {
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "%s plan %s --json 2>/dev/null", ts_owlore_binary(), args);
    int rc = ts_run(cmd, &out);
    cr_assert_eq(rc, 0, "plan %s exited %d:\n%s", args, rc, out);
    OwError err;
    cJSON *j = json_parse(out, strlen(out), "plan --json output", &err);
    cr_assert_not_null(j, "%s\n%s", err.msg, out);
    free(out);
    return j;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "no number \"%s\"", key);
    return v->valuedouble;
}

static const cJSON *obj(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsObject(v), "no object \"%s\"", key);
    return v;
}

static double sum(const cJSON *o) {
    double s = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, o) s += v->valuedouble;
    return s;
}

/* The placed plan train would make of these flags on a GPU (bf16), and its homes. */
static void place(const char *flags, MemPlan *p, BlockHome *homes, int *L) {
    char buf[1024], *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "plan %s", flags);
    for (char *t = strtok(buf, " "); t && argc < 32; t = strtok(NULL, " ")) argv[argc++] = t;
    TrainConfig c;
    OwError err;
    cr_assert_eq(train_config_from_args(&c, argc, argv, &err), 0, "%s", err.msg);
    ModelConfig mc;
    char *src;
    int is_dir;
    cr_assert_eq(model_preset_resolve(c.model, &mc, &src, &is_dir, &err), 0, "%s", err.msg);
    free(src);
    *L = (int)mc.num_layers;
    /* as plan does: the arena's cap is --gpu-mem less the CUDA context, the head's moments may stay on the
     * device, and the cost model chooses the slots and kept activations */
    size_t cap = c.gpu_mem ? c.gpu_mem - BACKEND_CUDA_CONTEXT_ESTIMATE : 0;
    train_resolve_optimizer_home(&c, &mc, OW_BF16, OW_BF16, 1, cap);
    CostRates r;
    cost_rates_default(&r);
    cr_assert_eq(
        cost_choose_plan(&c, &mc, OW_BF16, OW_BF16, 1, "cuda", cap, train_host_room(&c), &r, p, homes, NULL, &err), 0,
        "%s", err.msg);
}

/* The JSON of `flags` against train_memory_place of the same flags; returns the object. */
static cJSON *agrees_with_the_placement(const char *flags, MemPlan *p, BlockHome *homes) {
    cJSON *j = plan_json(flags);
    int L;
    place(flags, p, homes, &L);
    cr_assert_eq(num(j, "peak_bytes"), (double)p->total);
    cr_assert_eq(sum(obj(j, "device_bytes_by_kind")), (double)p->total);
    cr_assert_eq(num(obj(j, "device_bytes_by_kind"), "weights"), (double)p->bytes[MEM_WEIGHTS]);
    cr_assert_eq(num(j, "disk_bytes"), (double)p->disk_bytes);
    cr_assert_eq(num(j, "host_bytes"), sum(obj(j, "host_bytes_by_kind")));
    cr_assert_eq(num(j, "host_bytes"),
                 (double)(p->place.host_bytes + p->host_activations + p->host_optimizer + p->host_gradients));
    const cJSON *pl = obj(j, "placement");
    cr_assert_eq(num(pl, "device"), p->place.n_device);
    cr_assert_eq(num(pl, "host"), p->place.n_host);
    cr_assert_eq(num(pl, "disk"), p->place.n_disk);
    cr_assert_eq(num(pl, "stream_slots"), p->place.stream_slots);
    cr_assert_eq(num(pl, "pin_slots"), p->place.pin_slots);
    cr_assert_eq(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pl, "streaming")), p->place.streaming);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(pl, "homes");
    cr_assert(cJSON_IsArray(h));
    cr_assert_eq(cJSON_GetArraySize(h), L);
    for (int l = 0; l < L; l++)
        cr_assert_str_eq(cJSON_GetArrayItem(h, l)->valuestring, block_home_names[homes[l]], "block %d", l);
    cr_assert_gt(num(j, "predicted_tokens_per_s"), 0);
    cr_assert_float_eq(num(j, "predicted_tokens_per_s") * num(j, "predicted_step_s"), num(j, "tokens_per_step"),
                       1e-6 * num(j, "tokens_per_step"));
    return j;
}

Test(cmd_plan, json_under_8gib_streams_from_host_memory) {
    MemPlan p;
    BlockHome homes[32];
    cJSON *j = agrees_with_the_placement(
        "--model llama2-7b --device cuda --gpu-mem 8GiB --offload auto --host-mem 64GiB", &p, homes);
    cr_assert(p.place.streaming && p.place.n_host > 0 && p.place.n_disk == 0, "%d device, %d host, %d disk",
              p.place.n_device, p.place.n_host, p.place.n_disk);
    cr_assert_leq(p.total, 8 * GIB);
    /* the device homes spread over the depth, not the first blocks only */
    int first = -1, last = -1;
    for (int l = 0; l < 32; l++)
        if (homes[l] == BLOCK_HOME_DEVICE) last = l, first = first < 0 ? l : first;
    cr_assert(p.place.n_device >= 2 && last - first >= 32 / 2, "device homes from %d to %d", first, last);
    cr_assert_geq(num(j, "largest_batch"), 16);
    cr_assert_eq(num(j, "cap_bytes"), (double)(8 * GIB));
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(obj(j, "rates"), "source")->valuestring, "assumed");
    cJSON_Delete(j);
}

Test(cmd_plan, json_without_a_cap_keeps_every_block_on_the_device) {
    MemPlan p;
    BlockHome homes[32];
    cJSON *j = agrees_with_the_placement("--model llama2-7b --device cuda --host-mem 64GiB", &p, homes);
    cr_assert(!p.place.streaming && p.place.n_device == 32);
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "largest_batch"));
    cr_assert_eq(num(j, "disk_bytes"), 0);
    cr_assert_eq(num(obj(j, "host_bytes_by_kind"), "blocks"), 0);
    cJSON_Delete(j);
}

/* The host homes take what --host-mem leaves beside the block inputs, the head's moments and lm_head's
 * gradient; the rest of the blocks go to the store file. */
Test(cmd_plan, host_homes_share_the_room_with_the_other_host_figures) {
    MemPlan p;
    BlockHome homes[32];
    cJSON *j = agrees_with_the_placement(
        "--model llama2-7b --device cuda --gpu-mem 8GiB --host-mem 12GiB --nvme-dir /nonexistent", &p, homes);
    cr_assert(p.place.n_host > 0 && p.place.n_disk > 0, "%d host, %d disk", p.place.n_host, p.place.n_disk);
    cr_assert_gt(p.host_activations + p.host_optimizer + p.host_gradients, 0);
    cr_assert_leq(num(j, "host_bytes"), (double)(12 * GIB));
    cr_assert_gt(num(obj(j, "host_bytes_by_kind"), "staging"), 0);
    cr_assert_gt(num(j, "disk_bytes"), 0);
    cr_assert_gt(num(obj(j, "prediction"), "disk_bytes_per_step"), 0);
    cJSON_Delete(j);
}

/* --h2d-gbps reaches the prediction (source "flags"); it is plan's own flag, not a key of train. */
Test(cmd_plan, rate_flags_change_the_prediction_and_are_not_train_keys) {
    const char *run = "--model llama2-7b --device cuda --gpu-mem 8GiB --host-mem 64GiB";
    char args[512];
    cJSON *a = plan_json(run);
    snprintf(args, sizeof args, "%s --h2d-gbps 10", run);
    cJSON *b = plan_json(args);
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(obj(b, "rates"), "source")->valuestring, "flags");
    cr_assert_eq(num(obj(b, "rates"), "h2d_gbps"), 10);
    cr_assert_lt(num(b, "predicted_tokens_per_s"), num(a, "predicted_tokens_per_s"));
    cJSON_Delete(a);
    cJSON_Delete(b);
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "%s train --model llama2-7b --data synthetic --out /nonexistent/run --h2d-gbps 10",
             ts_owlore_binary());
    cr_assert_eq(ts_run(cmd, &out), 2, "%s", out);
    cr_assert(strstr(out, "unknown flag --h2d-gbps"), "%s", out);
    free(out);
}

Test(cmd_plan, offload_nvme_without_a_directory_names_the_flag) {
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "%s plan --model llama2-7b --device cuda --gpu-mem 8GiB --offload nvme",
             ts_owlore_binary());
    int rc = ts_run(cmd, &out);
    cr_assert(rc != 0 && rc < 128, "exit %d:\n%s", rc, out);
    cr_assert(strstr(out, "--nvme-dir"), "%s", out);
    free(out);
}

/* plan's refusal is train's: the same message after "owlore CMD: error: ", and a non-zero exit. */
static void refused_like_train(const char *flags, const char *needle) {
    char *dir = ts_tmpdir(), cmd[2048], *plan, *train;
    snprintf(cmd, sizeof cmd, "%s plan %s", ts_owlore_binary(), flags);
    cr_assert_eq(ts_run(cmd, &plan), 1, "%s", plan);
    snprintf(cmd, sizeof cmd, "%s train --data synthetic --out %s/run %s", ts_owlore_binary(), dir, flags);
    cr_assert_eq(ts_run(cmd, &train), 1, "%s", train);
    const char *p = strstr(plan, "owlore plan: error: "), *t = strstr(train, "owlore train: error: ");
    cr_assert(p && t, "plan:\n%s\ntrain:\n%s", plan, train);
    p += strlen("owlore plan: error: ");
    t += strlen("owlore train: error: ");
    cr_assert_str_eq(p, t);
    cr_assert(strstr(p, needle), "%s", p);
    cr_assert(strstr(p, "hint"), "%s", p);
    free(plan);
    free(train);
    ts_rmtree(dir);
    free(dir);
}

/* (--device cpu: train stops at the same check before allocating anything, on any machine.) */
Test(cmd_plan, a_run_that_cannot_fit_stops_with_trains_message) {
    refused_like_train("--model llama2-7b --device cpu --offload host --gpu-mem 1GiB", "a larger --gpu-mem");
    refused_like_train("--model llama2-7b --device cpu --offload none --gpu-mem 10GiB",
                       "the cap (--gpu-mem) is 10.00 GiB");
    /* auto streams nothing where the device has no memory of its own */
    refused_like_train("--model llama2-7b --device cpu --gpu-mem 20GiB", "the cap (--gpu-mem) is 20.00 GiB");
}

Test(cmd_plan, a_7b_run_under_1gib_cannot_fit) {
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "%s plan --model llama2-7b --device cuda --gpu-mem 1GiB --json", ts_owlore_binary());
    cr_assert_eq(ts_run(cmd, &out), 1, "%s", out);
    cr_assert(strstr(out, "placing the model's blocks (--offload auto)") && strstr(out, "a larger --gpu-mem"), "%s",
              out);
    cr_assert(strchr(out, '{') == NULL, "no JSON after a refusal:\n%s", out);
    free(out);
}

// ctest-labels: cpu
/* test_host_mem.c: the run's host memory accounting (offload/host_mem.h): the
 * figures by kind (current, peak, page-locked) as buffers come and go, the cap
 * on page-locked memory refusing an allocation with the breakdown and the
 * hints that apply; and a CPU training run with every host kind in use (block
 * homes, offloaded activations, host moments, lm_head's gradient, parked
 * state) whose summary.json shows exactly what the memory plan predicts, under
 * a --host-mem of exactly that, and refused below it. */
#include "backend/backend.h"
#include "core/fileio.h"
#include "core/json.h"
#include "model/preset.h"
#include "model/tensor_names.h"
#include "offload/host_mem.h"
#include "test_support.h"
#include "train/memplan.h"
#include "train/trainer.h"
#include "train_fixture.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define KiB ((size_t)1024)

static Backend *cpu(void) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    return be;
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

Test(host_mem, accounting_by_kind) {
    Backend *be = cpu();
    HostMem hm;
    host_mem_init(&hm, 0);
    OwError err;
    unsigned char *homes = host_mem_alloc(&hm, be, 300 * KiB, HOST_BLOCK_HOMES, 1, "homes", &err);
    unsigned char *acts = host_mem_alloc(&hm, be, 100 * KiB, HOST_ACTIVATIONS, 1, "acts", &err);
    unsigned char *park1 = host_mem_alloc(&hm, be, 50 * KiB, HOST_PARKED, 0, "park", &err);
    unsigned char *park2 = host_mem_alloc(&hm, be, 70 * KiB, HOST_PARKED, 0, "park", &err);
    cr_assert(homes && acts && park1 && park2, "%s", err.msg);
    cr_assert(all_zero(homes, 300 * KiB) && all_zero(park2, 70 * KiB), "buffers come zeroed");
    cr_assert_eq(hm.current[HOST_BLOCK_HOMES], 300 * KiB);
    cr_assert_eq(hm.current[HOST_ACTIVATIONS], 100 * KiB);
    cr_assert_eq(hm.current[HOST_PARKED], 120 * KiB);
    cr_assert_eq(hm.current_total, 520 * KiB);
    cr_assert_eq(hm.locked_total, 400 * KiB, "parked state is pageable");
    cr_assert_eq(hm.locked[HOST_PARKED], 0);
    cr_assert_eq(host_mem_free(&hm, be, park1), 50 * KiB, "free gives the buffer's size");
    cr_assert_eq(host_mem_free(&hm, be, acts), 100 * KiB);
    cr_assert_eq(host_mem_free(&hm, be, NULL), 0);
    cr_assert_eq(hm.current[HOST_PARKED], 70 * KiB);
    cr_assert_eq(hm.current[HOST_ACTIVATIONS], 0);
    cr_assert_eq(hm.current_total, 370 * KiB);
    cr_assert_eq(hm.locked_total, 300 * KiB);
    unsigned char *mom = host_mem_alloc(&hm, be, 20 * KiB, HOST_MOMENTS, 1, "moments", &err);
    cr_assert(mom != NULL, "%s", err.msg);
    /* peaks: per kind, of the total (with its breakdown at that moment), of the page-locked part */
    cr_assert_eq(hm.peak[HOST_PARKED], 120 * KiB);
    cr_assert_eq(hm.peak[HOST_ACTIVATIONS], 100 * KiB);
    cr_assert_eq(hm.peak[HOST_MOMENTS], 20 * KiB);
    cr_assert_eq(hm.peak_total, 520 * KiB);
    cr_assert_eq(hm.peak_breakdown[HOST_ACTIVATIONS], 100 * KiB);
    cr_assert_eq(hm.peak_breakdown[HOST_MOMENTS], 0, "the moments came after the peak");
    cr_assert_eq(hm.locked_peak, 400 * KiB);
    char line[256];
    host_mem_format(hm.current, line, sizeof line);
    cr_assert_str_eq(line, "block_homes 300.0 KiB, moments 20.0 KiB, parked 70.0 KiB; total 390.0 KiB");
    host_mem_free(&hm, be, mom);
    host_mem_free(&hm, be, homes);
    host_mem_free(&hm, be, park2);
    cr_assert_eq(hm.current_total, 0);
    cr_assert_eq(hm.locked_total, 0);
    host_mem_format(hm.current, line, sizeof line);
    cr_assert_str_eq(line, "none");
    host_mem_release(&hm);
    be->ops->destroy(be);
}

Test(host_mem, cap_refuses_with_the_breakdown) {
    Backend *be = cpu();
    HostMem hm;
    host_mem_init(&hm, 1024 * KiB);
    OwError err;
    void *acts = host_mem_alloc(&hm, be, 600 * KiB, HOST_ACTIVATIONS, 1, "the offloaded block inputs", &err);
    void *mom = host_mem_alloc(&hm, be, 250 * KiB, HOST_MOMENTS, 1, "moments of lm_head", &err);
    void *grad = host_mem_alloc(&hm, be, 50 * KiB, HOST_GRADIENTS, 1, "lm_head's gradient", &err);
    void *park = host_mem_alloc(&hm, be, 4096 * KiB, HOST_PARKED, 0, "parked", &err);
    cr_assert(acts && mom && grad && park, "pageable memory is not capped: %s", err.msg);
    void *homes = host_mem_alloc(&hm, be, 200 * KiB, HOST_BLOCK_HOMES, 1, "the host homes of frozen blocks", &err);
    cr_assert_null(homes, "900 KiB + 200 KiB passes a cap of 1 MiB");
    cr_log_info("%s", err.msg);
    cr_assert(strstr(err.msg, "allocating 200.0 KiB for the host homes of frozen blocks (block_homes) would pass the "
                              "page-locked host memory cap of 1.0 MiB (--host-mem)"),
              "%s", err.msg);
    cr_assert(strstr(err.msg, "page-locked in use now: activations 600.0 KiB, moments 250.0 KiB, gradients 50.0 KiB; "
                              "total 900.0 KiB"),
              "the breakdown (page-locked only): %s", err.msg);
    const char *opt = strstr(err.msg, "--offload-optimizer off");
    cr_assert(opt && !strstr(opt + 1, "--offload-optimizer off"), "moments and gradients share one hint: %s", err.msg);
    cr_assert(strstr(err.msg, "raise --host-mem") && strstr(err.msg, "--nvme-dir") &&
                  strstr(err.msg, "--offload-activations off") && strstr(err.msg, "--offload-optimizer off"),
              "a hint for the kind asked for and each kind in use: %s", err.msg);
    cr_assert_null(strstr(err.msg, "--stream-slots"), "no hint for a kind not in use: %s", err.msg);
    cr_assert_eq(hm.locked_total, 900 * KiB, "a refused buffer is not counted");
    cr_assert_eq(hm.current[HOST_BLOCK_HOMES], 0);
    homes = host_mem_alloc(&hm, be, 124 * KiB, HOST_BLOCK_HOMES, 1, "the host homes of frozen blocks", &err);
    cr_assert_not_null(homes, "up to the cap exactly: %s", err.msg);
    /* a cap below what is in use is refused and left as it was */
    cr_assert_eq(host_mem_set_cap(&hm, 512 * KiB, &err), -1);
    cr_assert(strstr(err.msg, "1.0 MiB in use passes the page-locked host memory cap of 512.0 KiB"), "%s", err.msg);
    cr_assert_eq(hm.cap, 1024 * KiB);
    cr_assert_eq(host_mem_set_cap(&hm, 0, &err), 0);
    void *more = host_mem_alloc(&hm, be, 4096 * KiB, HOST_ACTIVATIONS, 1, "more", &err);
    cr_assert_not_null(more, "no cap: %s", err.msg);
    void *bufs[] = {acts, mom, grad, park, homes, more};
    for (int i = 0; i < 6; i++) host_mem_free(&hm, be, bufs[i]);
    host_mem_release(&hm);
    be->ops->destroy(be);
}

/* ---- a training run ---- */

/* owlore on the fixture model (untied, 4 blocks): blocks 0, 2 trained for 3 steps, then 1, 3 (0 and 2 park
 * their state); every frozen block streamed from a host home, block inputs and the embedding's and lm_head's
 * moments in host memory, lm_head's gradient home there too. want: the host bytes by kind the memory plan
 * predicts (it has no parked state: see parked_bytes); returns their total, all page-locked. */
static size_t planned_run(TrainConfig *c, const char *out, size_t want[HOST_KIND_COUNT], ModelConfig *mc) {
    OwError err;
    ts_small_synthetic_config(c, "owlore", out);
    c->gamma = 2;
    c->interval = 3;
    c->offload = OFFLOAD_MODE_HOST;
    cr_assert_eq(train_config_set_string(c, "forced_blocks", "0,2;1,3", "t", &err), 0, "%s", err.msg);
    cr_assert_eq(train_config_set_string(c, "offload_activations", "on", "t", &err), 0, "%s", err.msg);
    cr_assert_eq(train_config_set_string(c, "offload_optimizer", "on", "t", &err), 0, "%s", err.msg);
    char *src;
    int is_dir;
    cr_assert_eq(model_preset_resolve(c->model, mc, &src, &is_dir, &err), 0, "%s", err.msg);
    free(src);
    MemPlan p;
    cr_assert_eq(train_memory_place(c, mc, OW_F32, OW_F32, 0, 0, SIZE_MAX, &p, NULL, &err), 0, "%s", err.msg);
    memset(want, 0, HOST_KIND_COUNT * sizeof want[0]);
    want[HOST_BLOCK_HOMES] = p.place.host_bytes;
    want[HOST_ACTIVATIONS] = p.host_activations;
    want[HOST_MOMENTS] = p.host_optimizer;
    want[HOST_GRADIENTS] = p.host_gradients;
    return p.place.host_bytes + p.host_activations + p.host_optimizer + p.host_gradients;
}

/* GaLore-AdamW state a block parks: m, v (rank r) and P of each linear, m and v of its 2 norms. */
static size_t parked_bytes(const ModelConfig *mc, int64_t r) {
    static const ModelTensorKind linears[7] = {MT_Q, MT_K, MT_V, MT_O, MT_GATE, MT_UP, MT_DOWN};
    int64_t floats = 2 * 2 * mc->hidden_size;
    for (int i = 0; i < 7; i++) {
        int64_t s[2];
        cr_assert_eq(model_tensor_shape(mc, linears[i], s), 2);
        floats += s[0] >= s[1] ? 2 * s[0] * r + r * s[1] : 2 * r * s[1] + s[0] * r;
    }
    return (size_t)floats * sizeof(float);
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "summary.json has no %s", key);
    return v->valuedouble;
}

Test(host_mem, training_run_shows_the_planned_host_memory) {
    char *dir = ts_tmpdir();
    char *out = ow_path_join(dir, "run");
    TrainConfig c;
    size_t want[HOST_KIND_COUNT];
    ModelConfig mc;
    size_t locked = planned_run(&c, out, want, &mc);
    want[HOST_PARKED] = 2 * parked_bytes(&mc, c.rank); /* blocks 0 and 2 leave after 3 steps */
    for (int k = 0; k < HOST_KIND_COUNT; k++)
        if (k != HOST_BLOCK_STAGING) cr_assert_gt(want[k], 0, "%s in use", host_kind_names[k]);
    c.host_mem = locked; /* exactly what the plan needs */
    OwError err;
    TrainSummary s;
    cr_assert_eq(train_run(&c, &s, &err), 0, "%s", err.msg);
    char *sp = ow_path_join(out, "summary.json");
    cJSON *sum = json_parse_file(sp, &err);
    cr_assert(sum != NULL, "%s", err.msg);
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(sum, "host_bytes_peak_by_kind");
    cr_assert(cJSON_IsObject(by), "summary.json has host_bytes_peak_by_kind");
    size_t total = 0;
    for (int k = 0; k < HOST_KIND_COUNT; k++) {
        double got = num(by, host_kind_names[k]);
        cr_log_info("%s: %.0f bytes (planned %zu)", host_kind_names[k], got, want[k]);
        cr_assert_eq(got, (double)want[k], "%s: %.0f bytes, planned %zu", host_kind_names[k], got, want[k]);
        total += want[k];
    }
    cr_assert_eq(num(sum, "host_bytes_peak"), (double)total, "everything lives to the end of the run");
    cr_assert_eq(num(sum, "host_page_locked_bytes_peak"), (double)locked);
    cr_assert_eq(num(sum, "host_optimizer_bytes_peak"), (double)(want[HOST_MOMENTS] + want[HOST_PARKED]),
                 "the optimizer's figure is its share of the same accounting");
    cr_assert_eq(num(sum, "host_activation_bytes"), (double)want[HOST_ACTIVATIONS]);
    cJSON_Delete(sum);
    free(sp);
    free(out);
    ts_rmtree(dir);
    free(dir);
}

/* One byte under what the run needs: the placement refuses the host homes before allocating; with the
 * blocks on the device, the cap refuses the first page-locked buffer past it, with the breakdown. */
Test(host_mem, training_run_over_the_cap_is_refused) {
    char *dir = ts_tmpdir();
    char *out = ow_path_join(dir, "run");
    TrainConfig c;
    size_t want[HOST_KIND_COUNT];
    ModelConfig mc;
    size_t locked = planned_run(&c, out, want, &mc);
    OwError err;
    TrainSummary s;
    c.host_mem = locked - 1;
    cr_assert_eq(train_run(&c, &s, &err), -1);
    cr_log_info("%s", err.msg);
    cr_assert(strstr(err.msg, "--host-mem holds 3 of them"), "the homes get what the rest leaves: %s", err.msg);
    c.offload = OFFLOAD_MODE_NONE;
    c.host_mem = locked - want[HOST_BLOCK_HOMES] - 1;
    cr_assert_eq(train_run(&c, &s, &err), -1);
    cr_log_info("%s", err.msg);
    cr_assert(strstr(err.msg, "would pass the page-locked host memory cap") &&
                  strstr(err.msg, "page-locked in use now: ") && strstr(err.msg, "--offload-optimizer off") &&
                  strstr(err.msg, "--offload-activations off"),
              "%s", err.msg);
    free(out);
    ts_rmtree(dir);
    free(dir);
}

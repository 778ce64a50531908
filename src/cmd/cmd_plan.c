/* cmd_plan.c: `owlore plan`: what a training run will need and how fast it
 * will go, before it runs. Takes the same keys as `owlore train` (recipe
 * files included; --model may be a preset) and checks them the way train
 * does (train_memory_check: the blocks placed under --gpu-mem and the
 * page-locked host room, the same refusal and message), then prints the
 * device bytes by kind, the blocks' placement, the host and disk bytes by
 * kind, the predicted step (train/costmodel.h) and, with --gpu-mem, the
 * largest --batch-size that fits; --json prints one object with the same
 * figures. The flags of plan alone (--json and the cost model's rates) are
 * taken out of argv before the train keys are read, so they never become
 * keys of a run. */
#include "cmd/commands.h"
#include "backend/backend_cuda.h"
#include "offload/probe.h"
#include "backend/backend.h"
#include "core/memstats.h"
#include "model/model.h"
#include "model/preset.h"
#include "train/costmodel.h"
#include "train/memplan.h"
#include "train/train_config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- plan's own flags ---- */

typedef struct {
    int json;
    double rate[3]; /* gemm_tflops, h2d_gbps, disk_gbps as given */
    int given[3];
} PlanFlags;

#define PLAN_NFLAGS 4

static void plan_specs(PlanFlags *f, ArgSpec specs[PLAN_NFLAGS]) {
    static const char *const names[3] = {"gemm-tflops", "h2d-gbps", "disk-gbps"};
    static const char *const help[3] = {
        "the device's sustained bf16 GEMM rate, TFLOP/s (default: an H200's, assumed)",
        "page-locked host-to-device copy rate, GB/s (default: PCIe Gen5's, assumed)",
        "the store disk's O_DIRECT read rate, GB/s (default: an NVMe disk's, assumed)",
    };
    specs[0] = (ArgSpec){"json", ARG_BOOL, &f->json, NULL, "print one JSON object with every figure", NULL};
    for (int k = 0; k < 3; k++) specs[k + 1] = (ArgSpec){names[k], ARG_FLOAT, &f->rate[k], "R", help[k], &f->given[k]};
}

/* Moves plan's flags (and their values) from argv to mine[]; the rest, argv[0] first, to rest[]. */
static void split_flags(int argc, char **argv, const ArgSpec *specs, char **mine, int *nmine, char **rest, int *nrest) {
    *nmine = *nrest = 0;
    mine[(*nmine)++] = argv[0];
    rest[(*nrest)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const ArgSpec *s = NULL;
        if (strncmp(argv[i], "--", 2) == 0) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)strcspn(argv[i] + 2, "="), argv[i] + 2);
            for (int k = 0; k < PLAN_NFLAGS; k++)
                if (args_name_eq(specs[k].name, name)) s = &specs[k];
        }
        if (!s) {
            rest[(*nrest)++] = argv[i];
            continue;
        }
        mine[(*nmine)++] = argv[i];
        if (s->type != ARG_BOOL && !strchr(argv[i], '=') && i + 1 < argc) mine[(*nmine)++] = argv[++i];
    }
}

static void print_help(const ArgSpec *specs) {
    train_config_help(stdout, "owlore plan --model DIR|PRESET [--gpu-mem 24GiB] [--json] [--KEY VALUE ...]",
                      "Prints what a training run needs before it runs: the device memory by kind (weights, gradients, "
                      "optimizer\nstate, activations, workspaces), where the blocks live (device, page-locked host "
                      "memory, the store file\nin --nvme-dir; --offload, --host-mem, --stream-slots), the host and "
                      "disk bytes by kind, the predicted\nstep time and tokens/s, and with --gpu-mem the largest "
                      "--batch-size that fits. A run that cannot fit\nstops with the message train gives (exit 1). "
                      "Takes the keys of `owlore train` (recipe files included);\n--model may be a preset such as "
                      "llama2-7b.");
    printf("\nflags of plan:\n");
    for (int k = 0; k < PLAN_NFLAGS; k++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", specs[k].name, specs[k].metavar ? " " : "",
                 specs[k].metavar ? specs[k].metavar : "");
        printf("  %-28s %s\n", left, specs[k].help);
    }
}

/* The rates of the cost model: assumed, then `owlore probe`'s cached figures, then flags. */
static int plan_rates(const TrainConfig *c, const PlanFlags *f, const ArgSpec *specs, CostRates *r, OwError *err) {
    cost_rates_default(r);
    ProbeResult pr; /* `owlore probe`'s figures of a GPU when cached on this machine */
    if (probe_cached("cuda:", c->nvme_dir, &pr)) cost_rates_from_probe(r, &pr);
    double *dst[3] = {&r->gemm_tflops, &r->h2d_gbps, &r->disk_gbps};
    for (int k = 0; k < 3; k++) {
        if (!f->given[k]) continue;
        if (!(f->rate[k] > 0 && f->rate[k] < 1e9))
            return ow_fail(err, "--%s must be a positive rate (got %g)", specs[k + 1].name, f->rate[k]);
        *dst[k] = f->rate[k];
        r->source = "flags";
    }
    return 0;
}

/* ---- what plan prints ---- */

typedef struct {
    const TrainConfig *c;
    const ModelConfig *mc;
    const char *src, *device;
    DType dt;
    MemPlan p;
    BlockHome *homes;
    size_t host_room;
    size_t arena_cap; /* --gpu-mem less the CUDA context on a GPU */
    size_t host[5];   /* by kind, in host_kinds order */
    size_t host_total;
    CostRates rates;
    int predicted; /* a GPU run: the cost model's rates are a GPU's */
    CostPrediction pred;
    int64_t largest; /* with a cap */
} Plan;

static const char *const host_kinds[5] = {"blocks", "staging", "activations", "optimizer", "gradients"};
static const char *const host_kind_help[5] = {
    "host homes of streamed blocks (--host-mem)",
    "staging buffers of store-file reads",
    "offloaded block inputs (--offload-activations off keeps them on the device)",
    "AdamW moments of the embedding and lm_head (--offload-optimizer off keeps them on the device)",
    "lm_head's gradient, copied out after the head's backward",
};

static void host_by_kind(Plan *pl) {
    const OffloadPlacement *o = &pl->p.place;
    size_t homes = (size_t)o->n_host * model_block_bytes(pl->mc, pl->dt);
    size_t v[5] = {homes, o->host_bytes - homes, pl->p.host_activations, pl->p.host_optimizer, pl->p.host_gradients};
    pl->host_total = 0;
    for (int k = 0; k < 5; k++) pl->host_total += pl->host[k] = v[k];
}

static void print_text(const Plan *pl) {
    const TrainConfig *c = pl->c;
    const MemPlan *p = &pl->p;
    char a[32], b[32], where[256];
    printf("model      %s (%lld blocks, hidden %lld, vocab %lld)\n", pl->src, (long long)pl->mc->num_layers,
           (long long)pl->mc->hidden_size, (long long)pl->mc->vocab_size);
    printf("run        %s, %s, batch %lld x %lld, gamma %lld, rank %lld, recompute %s, device %s (%s)\n", c->method,
           optim_kind_name(c->optimizer), (long long)c->batch_size, (long long)c->block_size, (long long)c->gamma,
           (long long)c->rank, c->recompute ? "on" : "off", pl->device, pl->dt == OW_BF16 ? "bf16" : "f32");
    printf("choices    %lld blocks keep their activations, the head's AdamW moments %s, %s accumulation%s\n",
           (long long)p->keep_acts,
           train_config_offload_optimizer(c, pl->predicted) ? "in host memory" : "on the device",
           train_config_accum_layered(c, pl->mc->tie_word_embeddings, p->place.streaming) ? "layer-major"
                                                                                          : "micro-batch order",
           c->grad_accum > 1 ? "" : " (one micro-batch)");
    printf("device\n");
    for (int k = 0; k < MEM_KIND_COUNT; k++)
        printf("  %-12s %12s\n", mem_kind_name((MemKind)k), format_size(p->bytes[k], a, sizeof a));
    printf("  %-12s %12s\n", "total", format_size(p->total, a, sizeof a));
    offload_placement_format(&p->place, where, sizeof where);
    printf("blocks     --offload %s: %s\n", offload_mode_names[c->offload], where);
    printf("host       page-locked, of a room of %s (%s)\n", format_size(pl->host_room, a, sizeof a),
           c->host_mem ? "--host-mem" : "MemAvailable less a margin");
    for (int k = 0; k < 5; k++)
        if (pl->host[k])
            printf("  %-12s %12s  %s\n", host_kinds[k], format_size(pl->host[k], a, sizeof a), host_kind_help[k]);
    printf("  %-12s %12s\n", "total", format_size(pl->host_total, a, sizeof a));
    if (p->disk_bytes)
        printf("disk       %s: the block store file in %s\n", format_size(p->disk_bytes, a, sizeof a), c->nvme_dir);
    const CostPrediction *q = &pl->pred;
    if (!pl->predicted) {
        printf("predicted  none: the cost model describes a GPU (--device cuda plans for one)\n");
    } else {
        char d[32];
        printf("predicted  %.3f s a step, %.0f tokens/s (compute %.3f s, waiting for copies %.3f s; %s up, %s down and "
               "%s from disk a step)\n",
               q->step_s, q->tokens_per_s, q->compute_s, q->exposed_transfer_s,
               format_size((size_t)q->h2d_bytes_per_step, a, sizeof a),
               format_size((size_t)q->d2h_bytes_per_step, d, sizeof d),
               format_size((size_t)q->disk_bytes_per_step, b, sizeof b));
        printf("rates      GEMM %.0f TFLOP/s, host to device %.1f GB/s, disk %.1f GB/s (%s%s)\n", pl->rates.gemm_tflops,
               pl->rates.h2d_gbps, pl->rates.disk_gbps, pl->rates.source,
               strcmp(pl->rates.source, "assumed") == 0 ? ": an H200; --gemm-tflops, --h2d-gbps, --disk-gbps" : "");
    }
    if (c->gpu_mem)
        printf("cap        %s (%s for the run beside the CUDA context): fits; largest batch size that fits: %lld\n",
               format_size(c->gpu_mem, a, sizeof a), format_size(pl->arena_cap, b, sizeof b), (long long)pl->largest);
}

static cJSON *json_sizes(const char *const *names, const size_t *v, int n) {
    cJSON *o = cJSON_CreateObject();
    for (int k = 0; k < n; k++) cJSON_AddNumberToObject(o, names[k], (double)v[k]);
    return o;
}

static cJSON *plan_json(const Plan *pl) {
    const TrainConfig *c = pl->c;
    const MemPlan *p = &pl->p;
    const OffloadPlacement *o = &p->place;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", pl->src);
    cJSON_AddStringToObject(j, "device", pl->device);
    cJSON_AddNumberToObject(j, "tokens_per_step", (double)(c->grad_accum * c->batch_size * c->block_size));
    cJSON_AddNumberToObject(j, "peak_bytes", (double)p->total);
    cJSON_AddNumberToObject(j, "keep_acts", (double)p->keep_acts);
    cJSON_AddBoolToObject(j, "optimizer_moments_on_host", train_config_offload_optimizer(c, pl->predicted));
    cJSON_AddStringToObject(j, "accum_order",
                            train_config_accum_layered(c, pl->mc->tie_word_embeddings, p->place.streaming) ? "layer"
                                                                                                           : "micro");
    const char *kinds[MEM_KIND_COUNT];
    for (int k = 0; k < MEM_KIND_COUNT; k++) kinds[k] = mem_kind_name((MemKind)k);
    cJSON_AddItemToObject(j, "device_bytes_by_kind", json_sizes(kinds, p->bytes, MEM_KIND_COUNT));
    cJSON_AddNumberToObject(j, "host_bytes", (double)pl->host_total);
    cJSON_AddItemToObject(j, "host_bytes_by_kind", json_sizes(host_kinds, pl->host, 5));
    cJSON_AddNumberToObject(j, "host_room_bytes", (double)pl->host_room);
    cJSON_AddNumberToObject(j, "disk_bytes", (double)p->disk_bytes);
    cJSON *pj = cJSON_AddObjectToObject(j, "placement");
    cJSON_AddStringToObject(pj, "offload", offload_mode_names[c->offload]);
    cJSON_AddBoolToObject(pj, "streaming", o->streaming);
    cJSON_AddNumberToObject(pj, "device", o->n_device);
    cJSON_AddNumberToObject(pj, "host", o->n_host);
    cJSON_AddNumberToObject(pj, "disk", o->n_disk);
    cJSON_AddNumberToObject(pj, "stream_slots", o->stream_slots);
    cJSON_AddNumberToObject(pj, "pin_slots", o->pin_slots);
    cJSON *homes = cJSON_AddArrayToObject(pj, "homes");
    for (int64_t l = 0; l < pl->mc->num_layers; l++)
        cJSON_AddItemToArray(homes, cJSON_CreateString(block_home_names[pl->homes[l]]));
    const CostPrediction *q = &pl->pred;
    if (pl->predicted) {
        cJSON_AddNumberToObject(j, "predicted_step_s", q->step_s);
        cJSON_AddNumberToObject(j, "predicted_tokens_per_s", q->tokens_per_s);
        cJSON *qj = cJSON_AddObjectToObject(j, "prediction");
        cJSON_AddNumberToObject(qj, "compute_s", q->compute_s);
        cJSON_AddNumberToObject(qj, "exposed_transfer_s", q->exposed_transfer_s);
        cJSON_AddNumberToObject(qj, "h2d_bytes_per_step", q->h2d_bytes_per_step);
        cJSON_AddNumberToObject(qj, "d2h_bytes_per_step", q->d2h_bytes_per_step);
        cJSON_AddNumberToObject(qj, "disk_bytes_per_step", q->disk_bytes_per_step);
    } else { /* a CPU run: no prediction */
        cJSON_AddNullToObject(j, "predicted_step_s");
        cJSON_AddNullToObject(j, "predicted_tokens_per_s");
        cJSON_AddNullToObject(j, "prediction");
    }
    cJSON *rj = cJSON_AddObjectToObject(j, "rates");
    cJSON_AddNumberToObject(rj, "gemm_tflops", pl->rates.gemm_tflops);
    cJSON_AddNumberToObject(rj, "h2d_gbps", pl->rates.h2d_gbps);
    cJSON_AddNumberToObject(rj, "disk_gbps", pl->rates.disk_gbps);
    cJSON_AddStringToObject(rj, "source", pl->rates.source);
    if (c->gpu_mem) {
        cJSON_AddNumberToObject(j, "cap_bytes", (double)c->gpu_mem);
        cJSON_AddNumberToObject(j, "arena_cap_bytes", (double)pl->arena_cap);
        cJSON_AddNumberToObject(j, "largest_batch", (double)pl->largest);
    }
    return j;
}

/* ---- the command ---- */

/* The run's settings: the train keys of argv (plan's flags taken out first) and plan's flags. rc: -1 go on,
 * else the exit code. */
static int plan_args(int argc, char **argv, TrainConfig *c, PlanFlags *f, CostRates *r) {
    ArgSpec specs[PLAN_NFLAGS];
    memset(f, 0, sizeof *f);
    plan_specs(f, specs);
    char **mine = malloc((size_t)(argc + 1) * sizeof *mine), **rest = malloc((size_t)(argc + 1) * sizeof *rest);
    int nmine, nrest, rc = -1;
    split_flags(argc, argv, specs, mine, &nmine, rest, &nrest);
    OwError err;
    ArgsResult ar;
    int trc = train_config_from_args(c, nrest, rest, &err);
    if (trc == 1) {
        print_help(specs);
        rc = 0;
    } else if (trc != 0 || args_parse(nmine, mine, specs, PLAN_NFLAGS, &ar, &err) != 0) {
        rc = 2;
    } else if (!c->model[0]) {
        ow_fail(&err, "--model is required (a model directory or a preset such as llama2-7b)");
        rc = 2;
    } else if (train_config_check_values(c, &err) != 0 || plan_rates(c, f, specs, r, &err) != 0) {
        rc = 2;
    }
    if (rc == 2) cmd_report_error("plan", &err);
    free(mine);
    free(rest);
    return rc;
}

int cmd_plan(int argc, char **argv) {
    TrainConfig c;
    PlanFlags f;
    Plan pl;
    memset(&pl, 0, sizeof pl);
    int rc = plan_args(argc, argv, &c, &f, &pl.rates);
    if (rc >= 0) return rc;
    OwError err;
    ModelConfig mc;
    char *src;
    int is_dir;
    if (model_preset_resolve(c.model, &mc, &src, &is_dir, &err) != 0) return cmd_report_error("plan", &err);
    BackendDevice dev;
    if (backend_parse_device(c.device, &dev, &err) != 0) {
        free(src);
        return cmd_report_error("plan", &err);
    }
    int gpu = dev.kind != BACKEND_DEVICE_CPU; /* auto plans for the GPU it would use where there is one */
    pl.c = &c;
    pl.mc = &mc;
    pl.src = src;
    pl.device = gpu ? "cuda" : "cpu";
    pl.dt = gpu && c.precision != PRECISION_FP32 ? OW_BF16 : OW_F32;
    pl.homes = calloc((size_t)mc.num_layers, sizeof *pl.homes);
    pl.host_room = train_host_room(&c);
    /* the arena's cap: --gpu-mem is the card, the CUDA context (estimated here: no device) counts against it */
    pl.arena_cap = gpu && c.gpu_mem
                       ? (c.gpu_mem > BACKEND_CUDA_CONTEXT_ESTIMATE ? c.gpu_mem - BACKEND_CUDA_CONTEXT_ESTIMATE : 1)
                       : c.gpu_mem;
    train_resolve_optimizer_home(&c, &mc, pl.dt, pl.dt, gpu, pl.arena_cap);
    rc = cost_choose_plan(&c, &mc, pl.dt, pl.dt, gpu, pl.device, pl.arena_cap, pl.host_room, &pl.rates, &pl.p, pl.homes,
                          &pl.pred, &err);
    if (rc == 0) {
        host_by_kind(&pl);
        pl.predicted = gpu;
        if (c.gpu_mem)
            pl.largest =
                train_memory_largest_placed_batch(&c, &mc, pl.dt, pl.dt, gpu, pl.arena_cap, pl.host_room, 4096);
        if (f.json) {
            cJSON *j = plan_json(&pl);
            char *s = cJSON_Print(j);
            printf("%s\n", s);
            cJSON_free(s);
            cJSON_Delete(j);
        } else {
            print_text(&pl);
        }
    }
    free(pl.homes);
    free(src);
    return rc == 0 ? 0 : cmd_report_error("plan", &err);
}

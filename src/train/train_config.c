/* train_config.c: see train_config.h. */
#include "train/train_config.h"

#include "backend/backend.h"
#include "core/embedded.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/memstats.h"
#include "core/runtime.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { K_STR, K_INT, K_FLOAT, K_BOOL, K_SIZE, K_ENUM } KeyType;

typedef struct {
    const char *const *names; /* indexed by the enum value, ending in NULL */
} EnumNames;

typedef struct KeyDef {
    const char *key;
    KeyType type;
    size_t offset;
    size_t size; /* K_STR capacity */
    const EnumNames *enums;
    const char *metavar;
    const char *help;
} KeyDef;

/* Other modules' enums use the name tables declared beside them; the rest are train_config's own. */
static const EnumNames k_sampling = {sampling_mode_names};
static const EnumNames k_optimizer = {optim_kind_names};
static const EnumNames k_projector = {projector_kind_names};
static const EnumNames k_inactive = {inactive_policy_names};
static const EnumNames k_schedule = {lr_schedule_names};
static const EnumNames k_format = {data_format_names};
static const EnumNames k_chat = {chat_template_names};
static const EnumNames k_tokmode = {tokenizer_mode_names};
static const char *const k_accum_names[] = {"full", "projected", NULL};
static const char *const k_offload_names[] = {"auto", "on", "off", NULL};
static const char *const k_accum_order_names[] = {"auto", "micro", "layer", NULL};
static const EnumNames k_accum_order = {k_accum_order_names};
static const char *const k_precision_names[] = {"auto", "bf16", "fp32", NULL};
static const char *const k_proj_precision_names[] = {"auto", "fp32", "tf32", NULL};
static const char *const k_packing_names[] = {"concat", "pad", NULL};
static const EnumNames k_accum = {k_accum_names};
static const EnumNames k_offload = {k_offload_names};
static const EnumNames k_precision = {k_precision_names};
static const EnumNames k_proj_precision = {k_proj_precision_names};
static const EnumNames k_packing = {k_packing_names};
static const EnumNames k_offload_place = {offload_mode_names};

#define OFF(f) offsetof(TrainConfig, f)
#define STR(f) K_STR, OFF(f), sizeof(((TrainConfig *)0)->f), NULL
#define NUM(t, f) t, OFF(f), 0, NULL
#define ENUM(f, e) K_ENUM, OFF(f), 0, &e

static const KeyDef k_keys[] = {
    {"model", STR(model), "DIR", "Hugging Face model directory, or a preset name (random weights, for benchmarks)"},
    {"data", STR(data), "FILE",
     "dataset: .txt, JSON lines (text, alpaca or chat records), an owlore token file, or \"synthetic\""},
    {"format", ENUM(data_opt.format, k_format), "FMT", "data format: auto | text | jsonl | alpaca | chat | tokens"},
    {"chat_template", ENUM(data_opt.chat_template, k_chat), "NAME",
     "chat data template: llama2 | llama3 | mistral | chatml"},
    {"doc_separator", STR(data_opt.doc_separator), "STR",
     "text data: the string between documents, e.g. \"<|endoftext|>\" (empty: one document)"},
    {"append_eos", NUM(K_BOOL, data_opt.append_eos), NULL,
     "text, jsonl and alpaca data: EOS after every sample (default true)"},
    {"train_on_prompt", NUM(K_BOOL, data_opt.train_on_prompt), NULL,
     "alpaca and chat data: loss on every token, not only the responses"},
    {"strict", NUM(K_BOOL, data_opt.strict), NULL,
     "a malformed or invalid record is fatal (default: skipped and counted)"},
    {"tokenizer_mode", ENUM(data_opt.tokenizer_mode, k_tokmode), "MODE",
     "transformers (the ids AutoTokenizer gives) | tokenizers (tokenizer.json as is)"},
    {"packing", ENUM(packing, k_packing), "MODE",
     "concat (samples packed into windows) | pad (one sample per window, padded)"},
    {"data_cache", STR(data_cache), "DIR",
     "where tokenized --data is cached (default ~/.cache/owlore/data; \"run\": RUN_DIR)"},
    {"out", STR(out), "RUN_DIR", "run directory (metrics.jsonl, config.json, final model)"},
    {"recipe", STR(recipe), "FILE", "a recipe JSON whose keys override the method's defaults"},
    {"method", STR(method), "NAME", "owlore | owlore-fullrank | lisa | galore | full"},
    {"sampling", ENUM(sampling, k_sampling), "MODE",
     "layer sampling: owl | uniform | owl_reverse | increase | decrease | all"},
    {"ratios", STR(ratios), "FILE", "outlier ratios from `owlore outliers` (computed at start when absent)"},
    {"gamma", NUM(K_INT, gamma), "N", "blocks trained at a time"},
    {"interval", NUM(K_INT, interval), "K", "steps between resampling the blocks"},
    {"forced_blocks", STR(forced_blocks), "SCHED", "fixed block schedule instead of sampling, e.g. \"0,2;1,3\""},
    {"freeze_embeddings", NUM(K_BOOL, freeze_embeddings), NULL,
     "keep embeddings frozen (backward stops at the lowest sampled block)"},
    {"optimizer", ENUM(optimizer, k_optimizer), "NAME", "adamw (torch.optim.AdamW) | galore-adamw"},
    {"rank", NUM(K_INT, rank), "R", "GaLore rank"},
    {"update_gap", NUM(K_INT, update_gap), "N", "projector refresh every N of a tensor's own steps"},
    {"scale", NUM(K_FLOAT, scale), "S", "GaLore scale of the projected-back update"},
    {"projector", ENUM(projector, k_projector), "KIND", "exact (SVD) | randomized (range finder)"},
    {"projection_precision", ENUM(projection_precision, k_proj_precision), "MODE",
     "GaLore's projections (R = G P^T, the update N P) on a GPU: auto (tf32 with bf16 weights, fp32 otherwise) | fp32 "
     "| tf32"},
    {"rf_oversample", NUM(K_INT, rf_oversample), "P", "randomized projector: extra columns"},
    {"rf_iters", NUM(K_INT, rf_iters), "Q", "randomized projector: subspace iterations"},
    {"inactive_state", ENUM(inactive_state, k_inactive), "POLICY",
     "optimizer state of unsampled blocks: keep (in host memory) | reset"},
    {"lr", NUM(K_FLOAT, lr), "LR", "peak learning rate"},
    {"schedule", ENUM(schedule, k_schedule), "KIND", "learning-rate schedule: constant | linear | cosine"},
    {"warmup", NUM(K_INT, warmup), "STEPS", "linear warmup steps"},
    {"beta1", NUM(K_FLOAT, beta1), "B1", "Adam beta1"},
    {"beta2", NUM(K_FLOAT, beta2), "B2", "Adam beta2"},
    {"eps", NUM(K_FLOAT, eps), "EPS", "Adam epsilon"},
    {"weight_decay", NUM(K_FLOAT, weight_decay), "WD", "decoupled weight decay"},
    {"clip", NUM(K_FLOAT, clip), "NORM", "clip the global gradient norm to this (0: off)"},
    {"batch_size", NUM(K_INT, batch_size), "B", "sequences per micro-batch"},
    {"block_size", NUM(K_INT, block_size), "T", "tokens per sequence"},
    {"grad_accum", NUM(K_INT, grad_accum), "N", "micro-batches per optimizer step"},
    {"accum_mode", ENUM(accum_mode, k_accum), "MODE",
     "gradient accumulation: full (exact) | projected (GaLore memory saver)"},
    {"dp_reduce", ENUM(dp_reduce, k_accum), "MODE",
     "with several ranks (mpirun): what the ranks sum for a GaLore tensor: projected (R = P^T G, rank r: about r / "
     "min(m, n) of the gradient; the whole G on a projector refresh; clipping uses the projected norm, as "
     "--accum-mode projected) | full (G, as DDP: the single process's results)"},
    {"check_every", NUM(K_INT, check_every), "N",
     "with several ranks: compare a hash of the ranks' weights every N steps and at the end, stopping if they "
     "differ (0: off)"},
    {"accum_order", ENUM(accum_order, k_accum_order), "ORDER",
     "with --grad-accum > 1: micro (each micro-batch through every block) | layer (every micro-batch through a "
     "block before the next: a streamed block comes up once per step; the same bits) | auto (layer when blocks "
     "stream)"},
    {"steps", NUM(K_INT, steps), "N", "optimizer steps (0: from --epochs)"},
    {"epochs", NUM(K_FLOAT, epochs), "E", "passes over the training windows when --steps is 0"},
    {"shuffle", NUM(K_BOOL, shuffle), NULL, "shuffle the training windows each epoch"},
    {"recompute", NUM(K_BOOL, recompute), NULL, "recompute activations in backward (less memory)"},
    {"keep_acts", NUM(K_INT, keep_acts), "N",
     "with recompute: the top N blocks keep their activations for the backward instead (faster, more memory; the "
     "same bits); -1 (auto): as many as the room --gpu-mem leaves allows, none without --gpu-mem"},
    {"offload_activations", ENUM(offload_activations, k_offload), "MODE",
     "with recompute: keep the block inputs in host memory, copied while the GPU computes: auto (on with a GPU) | on | "
     "off"},
    {"offload_optimizer", ENUM(offload_optimizer, k_offload), "MODE",
     "keep the AdamW moments of the embedding and lm_head in host memory, updated over the bus beside the compute: "
     "auto (on with a GPU) | on | off"},
    {"eval_every", NUM(K_INT, eval_every), "N", "validation every N steps (0: only at the start and end)"},
    {"eval_batches", NUM(K_INT, eval_batches), "N", "validation batches per evaluation (0: all)"},
    {"val_split", NUM(K_FLOAT, val_split), "F", "fraction of the data held out for validation"},
    {"log_every", NUM(K_INT, log_every), "N", "progress line every N steps"},
    {"save_model", NUM(K_BOOL, save_model), NULL, "write the fine-tuned model to RUN_DIR/model at the end"},
    {"save_every", NUM(K_INT, save_every), "N",
     "checkpoint every N steps (0: only at the end and on SIGINT/SIGTERM; -1: never, for benchmarks)"},
    {"keep", NUM(K_INT, keep), "N", "checkpoints kept (the newest N)"},
    {"resume", STR(resume), "RUN_DIR",
     "continue this run from its newest checkpoint (settings from RUN_DIR/config.json)"},
    {"resume_fallback", NUM(K_BOOL, resume_fallback), NULL,
     "with --resume: use the previous good checkpoint if the newest is damaged"},
    {"overwrite_out", NUM(K_BOOL, overwrite_out), NULL,
     "write a new run into an --out that exists, is not empty and is not a run directory (never the model's)"},
    {"init_std", NUM(K_FLOAT, init_std), "STD", "random init std when --model is a preset"},
    {"nsamples", NUM(K_INT, nsamples), "N", "OWL calibration sequences (when ratios are computed here)"},
    {"seqlen", NUM(K_INT, seqlen), "T", "OWL calibration sequence length"},
    {"M", NUM(K_FLOAT, M), "M", "OWL outlier threshold multiple"},
    {"seed", NUM(K_INT, seed), "N", "seed of every random stream"},
    {"device", STR(device), "DEV", "cuda | cuda:N | cpu | auto"},
    {"gpu_mem", NUM(K_SIZE, gpu_mem), "SIZE", "device memory cap, e.g. 24GiB (0: no cap)"},
    {"offload", ENUM(offload, k_offload_place), "MODE",
     "where frozen blocks live: auto (on the device while they fit under --gpu-mem, then host memory, then "
     "--nvme-dir) | none (all on the device) | host (stream every frozen block from page-locked host memory) | nvme "
     "(stream them from a store file in --nvme-dir)"},
    {"host_mem", NUM(K_SIZE, host_mem), "SIZE",
     "cap on page-locked host memory: streamed blocks' homes and staging, offloaded activations, moments and "
     "lm_head's gradient (0: no cap; blocks get MemAvailable less a margin)"},
    {"nvme_dir", STR(nvme_dir), "DIR",
     "a directory on a local disk for the block store file of streamed blocks (written at setup, reused while the "
     "weights are unchanged)"},
    {"stream_slots", NUM(K_INT, stream_slots), "N",
     "device slots of streamed blocks (at least 2; 0: auto, the count the cost model predicts fastest on a GPU, "
     "else 3)"},
    {"precision", ENUM(precision, k_precision), "P",
     "weights and activations on the GPU: auto (bf16) | bf16 | fp32 (twice the memory; the CPU always computes in "
     "fp32)"},
    {"threads", NUM(K_INT, threads), "N", "CPU threads (0: all cores)"},
};
#define NKEYS ((int)(sizeof k_keys / sizeof k_keys[0]))

void train_config_defaults(TrainConfig *c) {
    memset(c, 0, sizeof *c);
    data_options_defaults(&c->data_opt);
    c->packing = PACKING_CONCAT;
    snprintf(c->method, sizeof c->method, "owlore");
    snprintf(c->device, sizeof c->device, "auto");
    c->sampling = SAMPLING_OWL;
    c->gamma = 5;
    c->interval = 50;
    c->optimizer = OPT_GALORE_ADAMW;
    c->rank = 256;
    c->update_gap = 100;
    c->scale = 1.0;
    c->projector = PROJ_EXACT;
    c->rf_oversample = 8;
    c->rf_iters = 2;
    c->inactive_state = INACTIVE_KEEP;
    c->lr = 3e-4;
    c->schedule = LR_LINEAR;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-6;
    c->clip = 1.0;
    c->batch_size = 16;
    c->block_size = 512;
    c->grad_accum = 1;
    c->epochs = 1.0;
    c->shuffle = 1;
    c->recompute = 1;
    c->eval_batches = 16;
    c->val_split = 0.05;
    c->log_every = 1;
    c->save_model = 1;
    c->keep = 2;
    c->init_std = 0.02;
    c->offload = OFFLOAD_MODE_AUTO;
    c->stream_slots = 0;
    c->keep_acts = -1;
    c->dp_reduce = ACCUM_PROJECTED;
    c->check_every = 100;
    c->nsamples = 128;
    c->seqlen = 2048;
    c->M = 13.0;
    c->seed = 42;
}

static const KeyDef *find_key(const char *key) {
    for (int i = 0; i < NKEYS; i++)
        if (args_name_eq(k_keys[i].key, key)) return &k_keys[i];
    return NULL;
}

static void enum_list(const EnumNames *e, char *buf, size_t cap) {
    buf[0] = '\0';
    for (int i = 0; e->names[i]; i++) {
        strncat(buf, i ? ", " : "", cap - strlen(buf) - 1);
        strncat(buf, e->names[i], cap - strlen(buf) - 1);
    }
}

static int unknown_key(const char *key, const char *where, OwError *err) {
    return ow_fail(err,
                   "%s: unknown key \"%s\" (hint: `owlore train --help` lists every key; recipe keys and flags "
                   "share names)",
                   where, key);
}

int train_config_set_string(TrainConfig *c, const char *key, const char *value, const char *where, OwError *err) {
    const KeyDef *k = find_key(key);
    if (!k) return unknown_key(key, where, err);
    char *dst = (char *)c + k->offset;
    char *end;
    switch (k->type) {
    case K_STR:
        if (strlen(value) >= k->size) return ow_fail(err, "%s: %s: value is too long", where, k->key);
        snprintf(dst, k->size, "%s", value);
        return 0;
    case K_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end)
            return ow_fail(err, "%s: %s must be an integer, got \"%s\"", where, k->key, value);
        *(int64_t *)dst = v;
        return 0;
    }
    case K_FLOAT: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v))
            return ow_fail(err, "%s: %s must be a number, got \"%s\"", where, k->key, value);
        *(double *)dst = v;
        return 0;
    }
    case K_BOOL:
        if (!strcasecmp(value, "true") || !strcmp(value, "1")) {
            *(int *)dst = 1;
        } else if (!strcasecmp(value, "false") || !strcmp(value, "0")) {
            *(int *)dst = 0;
        } else {
            return ow_fail(err, "%s: %s must be true or false, got \"%s\"", where, k->key, value);
        }
        return 0;
    case K_SIZE:
        if (parse_size(value, (size_t *)dst) != 0)
            return ow_fail(err, "%s: %s must be a size such as 24GiB, got \"%s\"", where, k->key, value);
        return 0;
    case K_ENUM:
        for (int i = 0; k->enums->names[i]; i++) {
            if (strcmp(value, k->enums->names[i]) == 0) {
                *(int *)dst = i; /* the enums are int-sized and numbered in table order */
                return 0;
            }
        }
        char allowed[256];
        enum_list(k->enums, allowed, sizeof allowed);
        return ow_fail(err, "%s: %s = \"%s\" is not allowed (allowed: %s)", where, k->key, value, allowed);
    }
    return -1;
}

int train_config_set_json(TrainConfig *c, const char *key, const cJSON *v, const char *where, OwError *err) {
    const KeyDef *k = find_key(key);
    if (!k) return unknown_key(key, where, err);
    char buf[64];
    switch (k->type) {
    case K_STR:
    case K_ENUM:
        if (!cJSON_IsString(v)) return ow_fail(err, "%s: key \"%s\" must be a string", where, key);
        return train_config_set_string(c, key, v->valuestring, where, err);
    case K_BOOL:
        if (!cJSON_IsBool(v)) return ow_fail(err, "%s: key \"%s\" must be true or false", where, key);
        *(int *)((char *)c + k->offset) = cJSON_IsTrue(v);
        return 0;
    case K_SIZE:
        if (cJSON_IsString(v)) return train_config_set_string(c, key, v->valuestring, where, err);
        __attribute__((fallthrough)); /* a number of bytes */
    case K_INT:
    case K_FLOAT:
        if (!cJSON_IsNumber(v)) return ow_fail(err, "%s: key \"%s\" must be a number", where, key);
        snprintf(buf, sizeof buf, k->type == K_FLOAT ? "%.17g" : "%.0f", v->valuedouble);
        if (k->type != K_FLOAT && v->valuedouble != floor(v->valuedouble))
            return ow_fail(err, "%s: key \"%s\" must be an integer", where, key);
        return train_config_set_string(c, key, buf, where, err);
    }
    return -1;
}

int train_config_apply_json(TrainConfig *c, const cJSON *obj, const char *where, OwError *err) {
    if (!cJSON_IsObject(obj)) return ow_fail(err, "%s: a recipe must be a JSON object", where);
    for (const cJSON *it = obj->child; it; it = it->next)
        if (train_config_set_json(c, it->string, it, where, err) != 0) return -1;
    return 0;
}

int train_config_apply_method(TrainConfig *c, const char *method, OwError *err) {
    char path[128];
    snprintf(path, sizeof path, "configs/recipes/%s.json", method);
    const EmbeddedFile *f = embedded_find(path);
    if (!f) return ow_fail(err, "unknown method \"%s\" (allowed: owlore, owlore-fullrank, lisa, galore, full)", method);
    cJSON *j = json_parse(f->data, f->size, path, err);
    if (!j) return -1;
    int rc = train_config_apply_json(c, j, path, err);
    cJSON_Delete(j);
    return rc;
}

static const char *k_resume_free[] = {
    "log_every", "eval_every", "eval_batches", "save_every",      "keep",          "save_model",        "threads",
    "device",    "gpu_mem",    "resume",       "resume_fallback", "overwrite_out", "offload_optimizer", "offload",
    "host_mem",  "nvme_dir",   "stream_slots"};

int train_config_resume_may_change(const char *key) {
    for (size_t i = 0; i < sizeof k_resume_free / sizeof k_resume_free[0]; i++)
        if (args_name_eq(k_resume_free[i], key)) return 1;
    return 0;
}

static int field_equal(const KeyDef *k, const TrainConfig *a, const TrainConfig *b) {
    const char *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;
    switch (k->type) {
    case K_STR: return strcmp(x, y) == 0;
    case K_INT: return *(const int64_t *)x == *(const int64_t *)y;
    case K_FLOAT: return *(const double *)x == *(const double *)y;
    case K_BOOL:
    case K_ENUM: return *(const int *)x == *(const int *)y;
    case K_SIZE: return *(const size_t *)x == *(const size_t *)y;
    }
    return 0;
}

static void field_string(const KeyDef *k, const TrainConfig *c, char *buf, size_t cap) {
    const char *p = (const char *)c + k->offset;
    switch (k->type) {
    case K_STR: snprintf(buf, cap, "\"%s\"", p); break;
    case K_INT: snprintf(buf, cap, "%lld", (long long)*(const int64_t *)p); break;
    case K_FLOAT: snprintf(buf, cap, "%.17g", *(const double *)p); break;
    case K_BOOL: snprintf(buf, cap, "%s", *(const int *)p ? "true" : "false"); break;
    case K_ENUM: snprintf(buf, cap, "%s", k->enums->names[*(const int *)p]); break;
    case K_SIZE: snprintf(buf, cap, "%zu", *(const size_t *)p); break;
    }
}

int train_config_from_run(TrainConfig *c, const char *run_dir, OwError *err) {
    train_config_defaults(c);
    char *path = ow_path_join(run_dir, "config.json");
    if (!ow_path_exists(path)) {
        int rc = ow_fail(err,
                         "%s: no such file (hint: RUN_DIR must be the --out of an `owlore train` run; a run "
                         "stopped before it wrote its config.json has nothing to resume: start it again)",
                         path);
        free(path);
        return rc;
    }
    cJSON *j = json_parse_file(path, err);
    int rc = j ? 0 : -1;
    if (rc == 0 && !cJSON_IsObject(j)) rc = ow_fail(err, "%s: not a JSON object", path);
    for (const cJSON *it = j ? j->child : NULL; rc == 0 && it; it = it->next) {
        if (train_config_is_run_fact(it->string) || !strcmp(it->string, "resume") ||
            !strcmp(it->string, "resume_fallback") || !strcmp(it->string, "overwrite_out"))
            continue;
        rc = train_config_set_json(c, it->string, it, path, err);
    }
    cJSON_Delete(j);
    free(path);
    if (rc != 0) return -1;
    if (strlen(run_dir) >= sizeof c->out) return ow_fail(err, "%s: path too long", run_dir);
    snprintf(c->out, sizeof c->out, "%s", run_dir);
    return 0;
}

/* --resume RUN_DIR: the run's settings, then only the flags that do not change the run. */
static int resume_from_args(TrainConfig *c, const char *run_dir, const int *seen, const char **values, const int *bools,
                            OwError *err) {
    if (train_config_from_run(c, run_dir, err) != 0) return -1;
    for (int i = 0; i < NKEYS; i++) {
        const KeyDef *k = &k_keys[i];
        if (!seen[i] || strcmp(k->key, "out") == 0) continue;
        if (strcmp(k->key, "recipe") == 0)
            return ow_fail(err, "--recipe cannot be combined with --resume: a resumed run keeps its settings "
                                "(RUN_DIR/config.json)");
        TrainConfig t = *c;
        if (k->type == K_BOOL)
            *(int *)((char *)&t + k->offset) = bools[i];
        else if (train_config_set_string(&t, k->key, values[i], "command line", err) != 0)
            return -1;
        if (!train_config_resume_may_change(k->key) && !field_equal(k, &t, c)) {
            char was[TC_STR + 8], now[TC_STR + 8], flag[64];
            field_string(k, c, was, sizeof was);
            field_string(k, &t, now, sizeof now);
            snprintf(flag, sizeof flag, "%s", k->key);
            for (char *p = flag; *p; p++)
                if (*p == '_') *p = '-';
            return ow_fail(err,
                           "--%s %s would change the run being resumed (its config.json has %s = %s); a resumed "
                           "run repeats the interrupted one exactly (hint: drop the flag; with --resume only "
                           "--log-every, --eval-every, --eval-batches, --save-every, --keep, --save-model, --threads, "
                           "--device, --gpu-mem and --resume-fallback may change; to train differently, start a new "
                           "run, e.g. from `owlore export`)",
                           flag, now, k->key, was);
        }
        *c = t;
    }
    /* --out given with --resume must name the same directory */
    for (int i = 0; i < NKEYS; i++)
        if (seen[i] && strcmp(k_keys[i].key, "out") == 0 && strcmp(values[i], run_dir) != 0)
            return ow_fail(
                err, "--out %s and --resume %s differ (hint: --resume RUN_DIR alone continues the run in RUN_DIR)",
                values[i], run_dir);
    snprintf(c->out, sizeof c->out, "%s", run_dir);
    return 0;
}

int train_config_is_run_fact(const char *key) {
    static const char *facts[] = {"total_steps", "backend", "data_tokens", "base_digest", "data_digest"};
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
        if (strcmp(key, facts[i]) == 0) return 1;
    return 0;
}

int train_config_from_args(TrainConfig *c, int argc, char **argv, OwError *err) {
    /* Pass 1: collect the flags as strings (bools as flags). */
    ArgSpec specs[NKEYS];
    const char *values[NKEYS];
    int bools[NKEYS], seen[NKEYS];
    for (int i = 0; i < NKEYS; i++) {
        values[i] = NULL;
        bools[i] = 0;
        seen[i] = 0;
        char *name = ow_xstrdup(k_keys[i].key);
        for (char *p = name; *p; p++)
            if (*p == '_') *p = '-';
        specs[i] = (ArgSpec){name,
                             k_keys[i].type == K_BOOL ? ARG_BOOL : ARG_STR,
                             k_keys[i].type == K_BOOL ? (void *)&bools[i] : (void *)&values[i],
                             k_keys[i].metavar,
                             k_keys[i].help,
                             &seen[i]};
    }
    ArgsResult res;
    int rc = args_parse(argc, argv, specs, NKEYS, &res, err);
    for (int i = 0; i < NKEYS; i++) free((char *)specs[i].name);
    if (rc != 0) return -1;
    if (res.help) return 1;
    if (res.npos > 0) return ow_fail(err, "unexpected argument \"%s\" (hint: flags are --name value)", res.pos[0]);
    for (int i = 0; i < NKEYS; i++)
        if (seen[i] && strcmp(k_keys[i].key, "resume") == 0)
            return resume_from_args(c, values[i], seen, values, bools, err);
    /* Pass 2: defaults, the method's recipe, the user's recipe, the flags. */
    train_config_defaults(c);
    const char *method = "owlore";
    cJSON *user = NULL;
    const char *recipe_path = NULL;
    for (int i = 0; i < NKEYS; i++) {
        if (!seen[i]) continue;
        if (strcmp(k_keys[i].key, "method") == 0) method = values[i];
        if (strcmp(k_keys[i].key, "recipe") == 0) recipe_path = values[i];
    }
    if (recipe_path) {
        user = json_parse_file(recipe_path, err);
        if (!user) return -1;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(user, "method");
        if (m && cJSON_IsString(m)) method = m->valuestring;
        for (int i = 0; i < NKEYS; i++)
            if (seen[i] && strcmp(k_keys[i].key, "method") == 0) method = values[i];
    }
    rc = train_config_apply_method(c, method, err);
    if (rc == 0 && user) rc = train_config_apply_json(c, user, recipe_path, err);
    cJSON_Delete(user);
    if (rc != 0) return -1;
    for (int i = 0; i < NKEYS; i++) {
        if (!seen[i]) continue;
        if (k_keys[i].type == K_BOOL) {
            *(int *)((char *)c + k_keys[i].offset) = bools[i];
        } else if (train_config_set_string(c, k_keys[i].key, values[i], "command line", err) != 0) {
            return -1;
        }
    }
    return 0;
}

int train_config_validate(const TrainConfig *c, OwError *err) {
    if (!c->model[0]) return ow_fail(err, "--model is required (a Hugging Face model directory)");
    if (!c->data[0]) return ow_fail(err, "--data is required (a dataset file: .txt, .jsonl or an owlore token file)");
    if (!c->out[0]) return ow_fail(err, "--out is required (the run directory)");
    return train_config_check_values(c, err);
}

int train_config_check_values(const TrainConfig *c, OwError *err) {
    static const char *methods[] = {"owlore", "owlore-fullrank", "lisa", "galore", "full"};
    int ok = 0;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) ok |= strcmp(c->method, methods[i]) == 0;
    if (!ok)
        return ow_fail(err, "method = \"%s\" is not allowed (allowed: owlore, owlore-fullrank, lisa, galore, full)",
                       c->method);
    if (c->gamma < 1) return ow_fail(err, "gamma must be at least 1 (got %lld)", (long long)c->gamma);
    if (c->interval < 1) return ow_fail(err, "interval must be at least 1 (got %lld)", (long long)c->interval);
    if (c->batch_size < 1 || c->block_size < 1 || c->grad_accum < 1)
        return ow_fail(err, "batch_size, block_size and grad_accum must be at least 1");
    int64_t tokens;
    if (__builtin_mul_overflow(c->batch_size, c->block_size, &tokens) ||
        __builtin_mul_overflow(tokens, c->grad_accum, &tokens) || tokens > TRAIN_MAX_STEP_TOKENS)
        return ow_fail(err,
                       "--batch-size %lld x --block-size %lld x --grad-accum %lld: more than %lld tokens per step "
                       "(hint: smaller values)",
                       (long long)c->batch_size, (long long)c->block_size, (long long)c->grad_accum,
                       (long long)TRAIN_MAX_STEP_TOKENS);
    if (ow_check_threads(c->threads, err) != 0) return -1;
    if (c->steps < 0 || c->epochs <= 0) return ow_fail(err, "steps must be >= 0 and epochs > 0");
    if (!(c->lr >= 0)) return ow_fail(err, "lr must be non-negative (got %g)", c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1))
        return ow_fail(err, "beta1 and beta2 must be in [0, 1)");
    if (!(c->eps > 0)) return ow_fail(err, "eps must be positive (got %g)", c->eps);
    if (c->clip < 0) return ow_fail(err, "clip must be >= 0 (0 disables clipping)");
    if (c->warmup < 0) return ow_fail(err, "warmup must be >= 0");
    if (c->rf_oversample < 0 || c->rf_iters < 0) return ow_fail(err, "rf_oversample and rf_iters must be >= 0");
    if (!(c->val_split >= 0 && c->val_split < 1))
        return ow_fail(err, "val_split must be in [0, 1) (got %g)", c->val_split);
    BackendDevice dev;
    if (backend_parse_device(c->device, &dev, err) != 0) return -1;
    if (c->nsamples < 1 || c->seqlen < 2 || !(c->M > 0)) return ow_fail(err, "nsamples, seqlen and M must be positive");
    if (c->save_every < -1)
        return ow_fail(err, "save_every must be >= -1 (0: only at the end and on SIGINT/SIGTERM; -1: never)");
    if (c->keep < 1) return ow_fail(err, "keep must be at least 1 (got %lld)", (long long)c->keep);
    if (c->log_every < 1) return ow_fail(err, "log_every must be at least 1 (got %lld)", (long long)c->log_every);
    if (c->check_every < 0)
        return ow_fail(err, "check_every must be >= 0 (got %lld; 0 turns the check off)", (long long)c->check_every);
    if (c->keep_acts < -1)
        return ow_fail(err, "keep_acts must be -1 (auto) or a block count >= 0 (got %lld)", (long long)c->keep_acts);
    if (c->stream_slots != 0 && (c->stream_slots < 2 || c->stream_slots > 64))
        return ow_fail(err, "stream_slots must be 0 (auto) or in [2, 64] (got %lld)", (long long)c->stream_slots);
    if (c->offload == OFFLOAD_MODE_NVME && !c->nvme_dir[0])
        return ow_fail(err, "offload = nvme needs nvme_dir (hint: --nvme-dir DIR, a directory on a local disk)");
    return 0;
}

cJSON *train_config_to_json(const TrainConfig *c) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < NKEYS; i++) {
        const KeyDef *k = &k_keys[i];
        const char *p = (const char *)c + k->offset;
        switch (k->type) {
        case K_STR: cJSON_AddStringToObject(o, k->key, p); break;
        case K_INT: cJSON_AddNumberToObject(o, k->key, (double)*(const int64_t *)p); break;
        case K_FLOAT: cJSON_AddNumberToObject(o, k->key, *(const double *)p); break;
        case K_BOOL: cJSON_AddBoolToObject(o, k->key, *(const int *)p); break;
        case K_SIZE: cJSON_AddNumberToObject(o, k->key, (double)*(const size_t *)p); break;
        case K_ENUM: cJSON_AddStringToObject(o, k->key, k->enums->names[*(const int *)p]); break;
        }
    }
    return o;
}

void train_config_help(FILE *out, const char *usage, const char *description) {
    fprintf(out, "usage: %s\n\n%s\n\nkeys:\n", usage, description);
    for (int i = 0; i < NKEYS; i++) {
        char name[64], left[96];
        snprintf(name, sizeof name, "%s", k_keys[i].key);
        for (char *p = name; *p; p++)
            if (*p == '_') *p = '-';
        if (k_keys[i].type == K_BOOL)
            snprintf(left, sizeof left, "--%s[=false]", name);
        else
            snprintf(left, sizeof left, "--%s %s", name, k_keys[i].metavar ? k_keys[i].metavar : "VALUE");
        fprintf(out, "  %-28s %s\n", left, k_keys[i].help);
    }
}

const char *const train_config_data_keys[] = {"format",          "chat_template", "doc_separator",  "append_eos",
                                              "train_on_prompt", "strict",        "tokenizer_mode", NULL};

int train_config_key_info(const char *key, const char **metavar, const char **help, int *is_bool) {
    const KeyDef *k = find_key(key);
    if (!k) return -1;
    *metavar = k->metavar;
    *help = k->help;
    *is_bool = k->type == K_BOOL;
    return 0;
}

OptimConfig train_config_optim(const TrainConfig *c) {
    OptimConfig o = {.kind = c->optimizer,
                     .beta1 = c->beta1,
                     .beta2 = c->beta2,
                     .eps = c->eps,
                     .weight_decay = c->weight_decay,
                     .rank = (int)c->rank,
                     .update_gap = c->update_gap,
                     .scale = c->scale,
                     .projector = c->projector,
                     .rf_oversample = (int)c->rf_oversample,
                     .rf_iters = (int)c->rf_iters,
                     .inactive = c->inactive_state,
                     .projection_precision = (int)c->projection_precision,
                     .seed = (uint64_t)c->seed};
    return o;
}

int train_config_offload_optimizer(const TrainConfig *c, int gpu) {
    return c->offload_optimizer == OFFLOAD_ON || (c->offload_optimizer == OFFLOAD_AUTO && gpu);
}

int train_config_head_grad_host(const TrainConfig *c, int gpu, int tied) {
    return !tied && c->recompute && c->grad_accum == 1 && train_config_offload_optimizer(c, gpu);
}

int train_config_samples_blocks(const TrainConfig *c) {
    return strcmp(c->method, "galore") != 0 && strcmp(c->method, "full") != 0 && c->sampling != SAMPLING_ALL;
}

int train_config_accum_layered(const TrainConfig *c, int tied, int streaming) {
    if (c->grad_accum <= 1 || !c->recompute || (tied && !c->freeze_embeddings)) return 0;
    return c->accum_order == ACCUM_ORDER_LAYER || (c->accum_order == ACCUM_ORDER_AUTO && streaming);
}

int train_config_check_accum_order(const TrainConfig *c, int tied, OwError *err) {
    if (c->accum_order != ACCUM_ORDER_LAYER || c->grad_accum <= 1) return 0;
    if (!c->recompute)
        return ow_fail(err, "accum_order = layer needs recompute (hint: --recompute true, or --accum-order micro)");
    if (tied && !c->freeze_embeddings)
        return ow_fail(err, "accum_order = layer cannot keep the accumulation order of a trainable tied embedding (its "
                            "lm_head and embedding gradients share one tensor) (hint: --accum-order micro, or "
                            "--freeze-embeddings)");
    return 0;
}

int train_config_offload_acts(const TrainConfig *c, int gpu) {
    if (!c->recompute || c->offload_activations == OFFLOAD_OFF) return 0;
    return c->offload_activations == OFFLOAD_ON || gpu;
}

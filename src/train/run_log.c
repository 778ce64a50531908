/* run_log.c: see run_log.h. */
#define _GNU_SOURCE /* strtok_r */
#include "train/run_log.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "core/memstats.h"
#include "offload/host_mem.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- metrics.jsonl ---- */

int run_log_open(RunLog *log, const char *out, int64_t keep_bytes, OwError *err) {
    memset(log, 0, sizeof *log);
    log->metrics.fd = -1;
    log->out = out;
    char *mp = ow_path_join(out, "metrics.jsonl");
    struct stat st;
    if (keep_bytes >= 0 && stat(mp, &st) == 0 && (int64_t)st.st_size > keep_bytes)
        OW_INFO("%s: dropping %lld bytes written after the checkpoint (the lines the resumed steps write again, or a "
                "torn record)",
                mp, (long long)st.st_size - keep_bytes);
    int rc = append_file_open(&log->metrics, mp, keep_bytes, err);
    free(mp);
    return rc;
}

void run_log_close(RunLog *log) { append_file_close(&log->metrics); }

/* Appends one record to metrics.jsonl (whole or not at all, fileio.h); frees o. */
static int write_metric(RunLog *log, cJSON *o, OwError *err) {
    char *text = cJSON_PrintUnformatted(o);
    size_t n = strlen(text);
    char *line = ow_xmalloc(n + 1);
    memcpy(line, text, n);
    line[n] = '\n';
    int rc = append_file_write(&log->metrics, line, n + 1, err);
    free(line);
    cJSON_free(text);
    cJSON_Delete(o);
    if (rc != 0)
        ow_fail_suffix(err,
                       "the run stopped without a checkpoint of this step, whose record is not in the file (hint: "
                       "free space, then `owlore train --resume %s` continues from the newest checkpoint)",
                       log->out);
    return rc;
}

int run_log_sync(RunLog *log, int64_t *bytes, OwError *err) {
    if (append_file_sync(&log->metrics, err) != 0) return -1;
    if (bytes) *bytes = log->metrics.size;
    return 0;
}

int run_log_eval(RunLog *log, int64_t step, double loss, OwError *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)step);
    cJSON_AddNumberToObject(o, "eval_loss", loss);
    cJSON_AddNumberToObject(o, "eval_ppl", exp(loss));
    OW_INFO("eval at step %lld: loss %.4f, perplexity %.3f", (long long)step, loss, exp(loss));
    return write_metric(log, o, err);
}

/* ---- a step ---- */

static void active_string(const Sampler *s, char *buf, size_t cap) {
    if (s->nactive == s->num_layers) {
        snprintf(buf, cap, "all");
        return;
    }
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->nactive && off + 8 < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%d", i ? "," : "", s->active[i]);
}

static const char *fmt_eta(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) s = 0;
    int h = (int)(s / 3600), m = (int)(fmod(s, 3600) / 60), sec = (int)fmod(s, 60);
    if (h)
        snprintf(buf, cap, "%dh%02dm", h, m);
    else
        snprintf(buf, cap, "%dm%02ds", m, sec);
    return buf;
}

static void progress_line(const RunLog *log, const StepLog *s) {
    char act[1024], mem[32], eta[32];
    active_string(s->sampler, act, sizeof act);
    double done_here = (double)(s->step - log->start);
    ow_progress(
        "step %lld/%lld | loss %.4f | lr %.2e | gnorm %.3f | %.0f tok/s | mem %s | blocks %s | ETA %s",
        (long long)s->step, (long long)s->total_steps, s->loss, s->lr, s->gnorm, s->tokens / s->seconds,
        format_size(s->be->mem.peak_total, mem, sizeof mem), act,
        fmt_eta((ow_now() - log->session_start) / done_here * (double)(s->total_steps - s->step), eta, sizeof eta));
}

int run_log_step(RunLog *log, const StepLog *s, OwError *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)s->step);
    cJSON_AddNumberToObject(o, "loss", s->loss);
    cJSON_AddNumberToObject(o, "lr", s->lr);
    cJSON_AddNumberToObject(o, "grad_norm", s->gnorm);
    cJSON_AddNumberToObject(o, "tokens", s->tokens);
    cJSON *ab = cJSON_AddArrayToObject(o, "active_blocks");
    for (int i = 0; i < s->sampler->nactive; i++) cJSON_AddItemToArray(ab, cJSON_CreateNumber(s->sampler->active[i]));
    cJSON_AddNumberToObject(o, "seconds", s->seconds);
    cJSON_AddNumberToObject(o, "step_seconds", s->step_seconds);
    cJSON_AddNumberToObject(o, "tokens_per_s", (double)s->tokens_per_step / s->step_seconds);
    cJSON_AddNumberToObject(o, "mem_bytes", (double)s->be->mem.current_total);
    cJSON_AddNumberToObject(o, "mem_peak_bytes", (double)s->be->mem.peak_total);
    cJSON_AddNumberToObject(o, "host_optimizer_bytes", (double)s->host_optimizer_bytes);
    cJSON_AddNumberToObject(o, "projector_refreshes", s->optim.refreshes);
    cJSON_AddNumberToObject(o, "projector_seconds", s->optim.refresh_seconds);
    cJSON_AddNumberToObject(o, "resample_seconds", s->resample_seconds);
    if (write_metric(log, o, err) != 0) return -1;
    if (s->progress) progress_line(log, s);
    return 0;
}

void run_log_losses_so_far(const char *out, TrainSummary *summary) {
    char *p = ow_path_join(out, "metrics.jsonl"), *text;
    size_t len;
    OwError e;
    if (ow_read_file(p, &text, &len, &e) == 0) {
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            cJSON *o = cJSON_Parse(line);
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "loss"),
                        *v = cJSON_GetObjectItemCaseSensitive(o, "eval_loss");
            if (cJSON_IsNumber(l)) {
                if (isnan(summary->first_loss)) summary->first_loss = l->valuedouble;
                summary->last_loss = l->valuedouble;
            }
            if (cJSON_IsNumber(v)) {
                if (isnan(summary->first_val)) summary->first_val = v->valuedouble;
                summary->last_val = v->valuedouble;
            }
            cJSON_Delete(o);
        }
        free(text);
    }
    free(p);
}

/* ---- memory ---- */

void run_log_sample_memory(Backend *be) { be->ops->sample_used(be); }

/* summary.json's memory figures: the backend's peak with its breakdown, and with device memory of its
 * own the allocator's segments, the context and libraries outside it, and all device memory in use. */
static void memory_figures(cJSON *o, Backend *be) {
    cJSON_AddNumberToObject(o, "peak_bytes", (double)be->mem.peak_total);
    cJSON_AddNumberToObject(o, "peak_gib", (double)be->mem.peak_total / (1024.0 * 1024 * 1024));
    cJSON *bd = cJSON_AddObjectToObject(o, "peak_breakdown_bytes");
    for (int kind = 0; kind < MEM_KIND_COUNT; kind++)
        cJSON_AddNumberToObject(bd, mem_kind_name((MemKind)kind), (double)be->mem.peak_breakdown[kind]);
    if (be->caps.device_memory) {
        BackendMemReport mr;
        be->ops->mem_report(be, &mr);
        cJSON_AddNumberToObject(o, "arena_peak_reserved_bytes", (double)mr.peak_reserved);
        cJSON_AddNumberToObject(o, "device_context_bytes", (double)mr.context);
        cJSON_AddNumberToObject(o, "device_used_peak_bytes", (double)mr.used_peak);
    }
}

/* summary.json's host memory at peak (Model.host): in all, by kind, and page-locked (what --host-mem caps). */
static void host_figures(cJSON *o, const HostMem *hm) {
    cJSON_AddNumberToObject(o, "host_bytes_peak", (double)hm->peak_total);
    cJSON *bk = cJSON_AddObjectToObject(o, "host_bytes_peak_by_kind");
    for (int k = 0; k < HOST_KIND_COUNT; k++) cJSON_AddNumberToObject(bk, host_kind_names[k], (double)hm->peak[k]);
    cJSON_AddNumberToObject(o, "host_page_locked_bytes_peak", (double)hm->locked_peak);
}

/* summary.json's "offload": where the blocks lived and what streaming them moved (absent when every block
 * stayed on the device as a buffer of its own). */
static void offload_figures(cJSON *o, const Model *m) {
    if (!m->store) return;
    const BlockStore *bs = m->store;
    cJSON *f = cJSON_AddObjectToObject(o, "offload");
    int n[3] = {0, 0, 0};
    for (int l = 0; l < m->cfg.num_layers; l++) n[block_store_home(bs, l)]++;
    for (int h = 0; h < 3; h++) cJSON_AddNumberToObject(f, block_home_names[h], n[h]);
    cJSON_AddNumberToObject(f, "stream_slots", block_store_stream_slots(bs));
    cJSON_AddNumberToObject(f, "block_bytes", (double)m->block_bytes);
    cJSON_AddNumberToObject(f, "host_bytes", (double)block_store_host_bytes(bs));
    cJSON_AddStringToObject(f, "disk_io", block_store_io_describe(bs));
    BlockStoreStats st;
    block_store_stats(bs, &st);
    cJSON_AddNumberToObject(f, "fetches", (double)st.fetches);
    cJSON_AddNumberToObject(f, "slot_hits", (double)st.hits);
    cJSON_AddNumberToObject(f, "disk_reads", (double)st.disk_reads);
    cJSON_AddNumberToObject(f, "writebacks", (double)st.writebacks);
    cJSON_AddNumberToObject(f, "store_writes", (double)st.store_writes);
    cJSON_AddNumberToObject(f, "bytes_up", (double)st.bytes_up);
    cJSON_AddNumberToObject(f, "bytes_disk", (double)st.bytes_disk);
    cJSON_AddNumberToObject(f, "disk_read_seconds", st.disk_read_seconds);
    cJSON_AddNumberToObject(f, "disk_read_gbps",
                            st.disk_read_seconds > 0 ? (double)st.bytes_disk / st.disk_read_seconds / 1e9 : 0);
}

/* ---- summary.json ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median step time, the first two steps left out of runs over four (warm-up). */
static double steady_step_seconds(const double *step_secs, int64_t n) {
    int64_t skip = n > 4 ? 2 : 0;
    double *sorted = ow_xmalloc((size_t)n * sizeof(double));
    memcpy(sorted, step_secs, (size_t)n * sizeof(double));
    qsort(sorted + skip, (size_t)(n - skip), sizeof(double), cmp_double);
    int64_t k = n - skip;
    double median = k % 2 ? sorted[skip + k / 2] : 0.5 * (sorted[skip + k / 2 - 1] + sorted[skip + k / 2]);
    free(sorted);
    return median;
}

/* The step times and throughput: steady (median), and over all steps, resampling and projector
 * refreshes included; evaluations and checkpoint saves excluded. */
static void speed_figures(cJSON *o, const TrainConfig *c, int ranks, const CkptProgress *pg) {
    int64_t n = pg->total_steps;
    double median = steady_step_seconds(pg->step_seconds, n);
    double tok_step = (double)(c->batch_size * ranks * c->block_size * c->grad_accum);
    cJSON_AddNumberToObject(o, "first_step_s", pg->step_seconds[0]);
    cJSON_AddNumberToObject(o, "steady_step_s", median);
    cJSON_AddNumberToObject(o, "tokens_per_s", tok_step / median);
    double train_s = 0;
    for (int64_t i = 0; i < n; i++) train_s += pg->step_seconds[i];
    cJSON_AddNumberToObject(o, "avg_tokens_per_s", pg->tokens / train_s);
    cJSON_AddNumberToObject(o, "train_seconds", train_s);
}

/* The ranks of a data-parallel run and what they exchanged. */
static void dp_figures(cJSON *o, const TrainConfig *c, const RunDpFigures *dp) {
    if (dp->ranks <= 1 && dp->bytes_per_step <= 0) return; /* a group of one sums too (trainer.h's hook) */
    cJSON_AddNumberToObject(o, "ranks", dp->ranks);
    cJSON_AddNumberToObject(o, "global_batch_size", (double)(c->batch_size * dp->ranks));
    cJSON_AddStringToObject(o, "dp_reduce", dp->reduce);
    cJSON_AddNumberToObject(o, "dp_bytes_per_step", dp->bytes_per_step);
    cJSON_AddNumberToObject(o, "ddp_bytes_per_step", dp->ddp_bytes_per_step);
}

int run_log_summary(const TrainConfig *c, const RunDpFigures *dp, Backend *be, const Model *m,
                    size_t host_optimizer_peak, const CkptProgress *pg, TrainSummary *summary, OwError *err) {
    double refresh_s = pg->refresh_seconds, refreshes = (double)pg->refreshes;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", c->method);
    cJSON_AddStringToObject(o, "backend", be->name);
    cJSON_AddStringToObject(o, "model", c->model);
    cJSON_AddNumberToObject(o, "batch_size", (double)c->batch_size);
    cJSON_AddNumberToObject(o, "block_size", (double)c->block_size);
    cJSON_AddNumberToObject(o, "steps", (double)pg->total_steps);
    cJSON_AddStringToObject(o, "accum_order", m->accum_micro > 1 ? "layer" : "micro");
    dp_figures(o, c, dp);
    speed_figures(o, c, dp->ranks, pg);
    cJSON_AddNumberToObject(o, "seconds", summary->seconds);
    cJSON_AddNumberToObject(o, "projector_refreshes", refreshes);
    cJSON_AddNumberToObject(o, "projector_refresh_s_per_matrix", refreshes ? refresh_s / refreshes : 0);
    cJSON_AddNumberToObject(o, "projector_refresh_s_per_block", refreshes ? 7.0 * refresh_s / refreshes : 0);
    memory_figures(o, be);
    cJSON_AddNumberToObject(o, "host_optimizer_bytes_peak", (double)host_optimizer_peak);
    cJSON_AddNumberToObject(o, "host_activation_bytes",
                            (double)model_offload_host_bytes(&m->cfg, be->act_dtype, c->batch_size, c->block_size,
                                                             c->recompute, m->offload_acts));
    host_figures(o, &m->host);
    offload_figures(o, m);
    cJSON_AddNumberToObject(o, "first_loss", summary->first_loss);
    cJSON_AddNumberToObject(o, "last_loss", summary->last_loss);
    char *p = ow_path_join(c->out, "summary.json");
    int rc = json_write_file(p, o, err);
    char *line = cJSON_PrintUnformatted(o);
    snprintf(summary->result, sizeof summary->result, "%s", line);
    cJSON_free(line);
    free(p);
    cJSON_Delete(o);
    return rc;
}

/* report.c: see report.h. */
#define _GNU_SOURCE /* open_memstream */
#include "train/report.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "core/memstats.h"
#include "model/preset.h"
#include "owl/outliers.h"
#include "owl/sampler.h"
#include "train/train_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHART_W 640
#define CHART_H 260
#define PAD_L 64
#define PAD_R 16
#define PAD_T 28
#define PAD_B 40
#define MAX_POINTS 1200 /* points per drawn series */
#define HEAT_COLS 300   /* step buckets of the heatmap */

/* ---- the data of a run ---- */

typedef struct Vec {
    double *v;
    int64_t n, cap;
} Vec;

static void vec_push(Vec *a, double x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->v = ow_xrealloc(a->v, (size_t)a->cap * sizeof(double));
    }
    a->v[a->n++] = x;
}

typedef struct RunData {
    Vec step, loss, lr, gnorm, tps, mem, host, estep, eloss;
    uint8_t *active; /* [nsteps * L]: block l trainable at step record i */
    int64_t active_cap;
    int L;
    int64_t skipped;   /* metrics lines that are not records (not JSON, or no numeric step and loss) */
    int64_t first_bad; /* the line number of the first of them */
} RunData;

static void run_data_free(RunData *d) {
    Vec *vs[] = {&d->step, &d->loss, &d->lr, &d->gnorm, &d->tps, &d->mem, &d->host, &d->estep, &d->eloss};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) free(vs[i]->v);
    free(d->active);
}

static double num_or_nan(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* A number, or null (a non-finite value as cJSON writes it). */
static int has_value(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) || cJSON_IsNull(v);
}

static int read_metrics(const char *run_dir, RunData *d, OwError *err) {
    char *path = ow_path_join(run_dir, "metrics.jsonl");
    char *text;
    size_t len;
    int rc = ow_read_file(path, &text, &len, err);
    if (rc != 0) {
        free(path);
        return -1;
    }
    int64_t lineno = 0;
    for (char *line = text, *next; line < text + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : text + len;
        if (nl) *nl = '\0';
        lineno++;
        if (!*line) continue;
        cJSON *o = cJSON_Parse(line);
        double step = num_or_nan(o, "step");
        int is_eval = has_value(o, "eval_loss"), is_step = has_value(o, "loss");
        if (!cJSON_IsObject(o) || !isfinite(step) || !(is_eval || is_step)) {
            if (!d->skipped++) d->first_bad = lineno;
            cJSON_Delete(o);
            continue;
        }
        if (is_eval) {
            vec_push(&d->estep, step);
            vec_push(&d->eloss, num_or_nan(o, "eval_loss"));
        } else if (cJSON_GetObjectItemCaseSensitive(o, "loss")) {
            int64_t i = d->step.n;
            vec_push(&d->step, step);
            vec_push(&d->loss, num_or_nan(o, "loss"));
            vec_push(&d->lr, num_or_nan(o, "lr"));
            vec_push(&d->gnorm, num_or_nan(o, "grad_norm"));
            vec_push(&d->tps, num_or_nan(o, "tokens_per_s"));
            vec_push(&d->mem, num_or_nan(o, "mem_peak_bytes"));
            vec_push(&d->host, num_or_nan(o, "host_optimizer_bytes"));
            if (d->step.n > d->active_cap) {
                d->active_cap = d->step.cap;
                d->active = ow_xrealloc(d->active, (size_t)(d->active_cap * d->L));
            }
            memset(d->active + i * d->L, 0, (size_t)d->L);
            const cJSON *ab = cJSON_GetObjectItemCaseSensitive(o, "active_blocks"), *b;
            cJSON_ArrayForEach(b, ab) {
                if (cJSON_IsNumber(b) && b->valuedouble >= 0 && b->valuedouble < d->L)
                    d->active[i * d->L + (int)b->valuedouble] = 1;
            }
        }
        cJSON_Delete(o);
    }
    free(text);
    if (d->skipped)
        OW_WARN("%s: %lld line(s) did not parse as metric records and were skipped (the first: line %lld)", path,
                (long long)d->skipped, (long long)d->first_bad);
    free(path);
    return 0;
}

/* ---- drawing ---- */

static void html_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Tick step giving about n ticks over [lo, hi]. */
static double nice_step(double lo, double hi, int n) {
    double raw = (hi - lo) / n;
    double p = pow(10.0, floor(log10(raw)));
    double f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void fmt_tick(double v, double step, char *buf, size_t cap) {
    double a = fabs(v);
    if (v == 0)
        snprintf(buf, cap, "0");
    else if (a >= 1e5 || a < 1e-3)
        snprintf(buf, cap, "%.2g", v);
    else if (step >= 1)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.*f", (int)ceil(-log10(step)), v);
}

typedef struct Series {
    const double *x, *y;
    int64_t n;
    const char *label, *color;
    int dots; /* draw a dot at each point (few points, e.g. evaluations) */
} Series;

typedef struct Frame {
    double x0, x1, y0, y1;
} Frame;

static double sx(const Frame *fr, double x) {
    return PAD_L + (x - fr->x0) / (fr->x1 - fr->x0) * (CHART_W - PAD_L - PAD_R);
}
static double sy(const Frame *fr, double y) {
    return CHART_H - PAD_B - (y - fr->y0) / (fr->y1 - fr->y0) * (CHART_H - PAD_T - PAD_B);
}

static void draw_axes(FILE *f, const Frame *fr, const char *xlabel, const char *ylabel) {
    double ys = nice_step(fr->y0, fr->y1, 5), xs = nice_step(fr->x0, fr->x1, 6);
    char buf[32];
    for (double y = ceil(fr->y0 / ys) * ys; y <= fr->y1 + ys * 1e-9; y += ys) {
        fprintf(f, "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", PAD_L, CHART_W - PAD_R,
                sy(fr, y), sy(fr, y));
        fmt_tick(y, ys, buf, sizeof buf);
        fprintf(f, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>", PAD_L - 6, sy(fr, y) + 4,
                buf);
    }
    for (double x = ceil(fr->x0 / xs) * xs; x <= fr->x1 + xs * 1e-9; x += xs) {
        fmt_tick(x, xs, buf, sizeof buf);
        fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", sx(fr, x),
                CHART_H - PAD_B + 16, buf);
    }
    fprintf(f, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>", PAD_L, CHART_W - PAD_R,
            CHART_H - PAD_B, CHART_H - PAD_B);
    fprintf(f, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>", PAD_L, PAD_L, PAD_T, CHART_H - PAD_B);
    fprintf(f, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>",
            (PAD_L + CHART_W - PAD_R) / 2, CHART_H - 6, xlabel);
    fprintf(f,
            "<text class=\"label\" x=\"14\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">%s</text>",
            (PAD_T + CHART_H - PAD_B) / 2, (PAD_T + CHART_H - PAD_B) / 2, ylabel);
}

/* One series as a path; long ones keep each bucket's min and max. */
static void draw_series(FILE *f, const Frame *fr, const Series *s) {
    int64_t bucket = s->n > MAX_POINTS ? (s->n + MAX_POINTS / 2 - 1) / (MAX_POINTS / 2) : 1;
    fprintf(f, "<path class=\"series\" stroke=\"%s\" data-label=\"", s->color);
    html_escape(f, s->label);
    fputs("\" d=\"", f);
    int first = 1;
    for (int64_t b0 = 0; b0 < s->n; b0 += bucket) {
        int64_t b1 = b0 + bucket < s->n ? b0 + bucket : s->n, lo = -1, hi = -1;
        for (int64_t i = b0; i < b1; i++) {
            if (!isfinite(s->y[i]) || !isfinite(s->x[i])) continue;
            if (lo < 0 || s->y[i] < s->y[lo]) lo = i;
            if (hi < 0 || s->y[i] > s->y[hi]) hi = i;
        }
        if (lo < 0) continue;
        int64_t pts[2] = {lo < hi ? lo : hi, lo < hi ? hi : lo};
        for (int k = 0; k < (pts[0] == pts[1] ? 1 : 2); k++) {
            fprintf(f, "%s%.1f %.1f", first ? "M" : " L", sx(fr, s->x[pts[k]]), sy(fr, s->y[pts[k]]));
            first = 0;
        }
    }
    fputs("\"/>", f);
    if (s->dots)
        for (int64_t i = 0; i < s->n; i++)
            if (isfinite(s->y[i]))
                fprintf(f, "<circle class=\"dot\" fill=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\"/>", s->color,
                        sx(fr, s->x[i]), sy(fr, s->y[i]));
}

static void line_chart(FILE *f, const char *id, const char *title, const char *ylabel, const Series *s, int ns) {
    Frame fr = {INFINITY, -INFINITY, INFINITY, -INFINITY};
    int64_t pts = 0;
    for (int k = 0; k < ns; k++)
        for (int64_t i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i]) || !isfinite(s[k].x[i])) continue;
            fr.x0 = fmin(fr.x0, s[k].x[i]);
            fr.x1 = fmax(fr.x1, s[k].x[i]);
            fr.y0 = fmin(fr.y0, s[k].y[i]);
            fr.y1 = fmax(fr.y1, s[k].y[i]);
            pts++;
        }
    fprintf(f, "<figure><figcaption>%s</figcaption>", title);
    fprintf(f,
            "<svg class=\"chart\" id=\"chart-%s\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
            "xmlns=\"http://www.w3.org/2000/svg\">",
            id, CHART_W, CHART_H, CHART_W, CHART_H);
    if (pts == 0) {
        fprintf(f, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">no data</text></svg></figure>\n",
                CHART_W / 2, CHART_H / 2);
        return;
    }
    if (fr.x1 <= fr.x0) fr.x1 = fr.x0 + 1;
    if (fr.y1 <= fr.y0) {
        double pad = fabs(fr.y0) > 0 ? fabs(fr.y0) * 0.1 : 1;
        fr.y0 -= pad;
        fr.y1 += pad;
    } else {
        double pad = (fr.y1 - fr.y0) * 0.05;
        fr.y0 -= pad;
        fr.y1 += pad;
    }
    draw_axes(f, &fr, "step", ylabel);
    for (int k = 0; k < ns; k++) draw_series(f, &fr, &s[k]);
    if (ns > 1)
        for (int k = 0; k < ns; k++)
            fprintf(f, "<text class=\"legend\" x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>", CHART_W - PAD_R - 150,
                    PAD_T + 4 + 14 * k, s[k].color, s[k].label);
    fputs("</svg></figure>\n", f);
}

static void bar_chart(FILE *f, const char *id, const char *title, const double *v, int n, const char *color) {
    double mx = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, v[i]);
    if (mx <= 0) mx = 1;
    Frame fr = {0, n, 0, mx * 1.05};
    fprintf(f, "<figure><figcaption>%s</figcaption>", title);
    fprintf(f,
            "<svg class=\"chart\" id=\"chart-%s\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
            "xmlns=\"http://www.w3.org/2000/svg\">",
            id, CHART_W, CHART_H, CHART_W, CHART_H);
    double ys = nice_step(fr.y0, fr.y1, 5);
    char buf[32];
    for (double y = 0; y <= fr.y1 + ys * 1e-9; y += ys) {
        fprintf(f, "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", PAD_L, CHART_W - PAD_R,
                sy(&fr, y), sy(&fr, y));
        fmt_tick(y, ys, buf, sizeof buf);
        fprintf(f, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>", PAD_L - 6, sy(&fr, y) + 4,
                buf);
    }
    double w = (CHART_W - PAD_L - PAD_R) / (double)n;
    int label_every = n > 40 ? (n + 39) / 40 : 1;
    for (int i = 0; i < n; i++) {
        double y = sy(&fr, v[i]);
        fprintf(f,
                "<rect class=\"bar\" fill=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"><title>block %d: "
                "%g</title></rect>",
                color, PAD_L + i * w + w * 0.1, y, w * 0.8, CHART_H - PAD_B - y, i, v[i]);
        if (i % label_every == 0)
            fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>",
                    PAD_L + (i + 0.5) * w, CHART_H - PAD_B + 16, i);
    }
    fprintf(f, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>", PAD_L, CHART_W - PAD_R,
            CHART_H - PAD_B, CHART_H - PAD_B);
    fprintf(f, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">block</text>",
            (PAD_L + CHART_W - PAD_R) / 2, CHART_H - 6);
    fputs("</svg></figure>\n", f);
}

/* Blocks (rows) by step buckets (columns); equal neighbouring cells merge into one rect. */
static void heatmap(FILE *f, const RunData *d) {
    int L = d->L;
    int64_t n = d->step.n;
    int64_t cols = n < HEAT_COLS ? n : HEAT_COLS;
    int row_h = L > 48 ? 4 : L > 24 ? 8 : 14;
    int H = PAD_T + L * row_h + PAD_B, W = CHART_W;
    double cw = (W - PAD_L - PAD_R) / (double)(cols ? cols : 1);
    fprintf(f, "<figure><figcaption>Trainable blocks per step (shade: fraction of the bucket's steps)</figcaption>");
    fprintf(f,
            "<svg class=\"chart\" id=\"chart-blocks\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
            "xmlns=\"http://www.w3.org/2000/svg\">",
            W, H, W, H);
    fprintf(f, "<rect class=\"heat-bg\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>", PAD_L, PAD_T,
            W - PAD_L - PAD_R, L * row_h);
    double *frac = ow_xmalloc((size_t)(cols ? cols : 1) * sizeof(double));
    for (int l = 0; l < L; l++) {
        for (int64_t c = 0; c < cols; c++) {
            int64_t a = c * n / cols, b = (c + 1) * n / cols, on = 0;
            for (int64_t i = a; i < b; i++) on += d->active[i * L + l];
            frac[c] = b > a ? (double)on / (double)(b - a) : 0;
        }
        for (int64_t c = 0; c < cols;) {
            int64_t e = c + 1;
            while (e < cols && frac[e] == frac[c]) e++;
            if (frac[c] > 0)
                fprintf(f,
                        "<rect class=\"cell\" x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill-opacity=\"%.3f\"/>",
                        PAD_L + c * cw, PAD_T + l * row_h, (e - c) * cw, row_h - (row_h > 4 ? 1 : 0), frac[c]);
            c = e;
        }
        if (L <= 48 || l % 4 == 0)
            fprintf(f, "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"end\">%d</text>", PAD_L - 6,
                    PAD_T + l * row_h + row_h - 2, l);
    }
    free(frac);
    if (n > 0) {
        fprintf(f, "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"start\">%g</text>", PAD_L,
                PAD_T + L * row_h + 16, d->step.v[0]);
        fprintf(f, "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"end\">%g</text>", W - PAD_R,
                PAD_T + L * row_h + 16, d->step.v[n - 1]);
    }
    fprintf(f, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>", (PAD_L + W - PAD_R) / 2,
            H - 6);
    fprintf(
        f,
        "<text class=\"label\" x=\"14\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">block</text>",
        PAD_T + L * row_h / 2, PAD_T + L * row_h / 2);
    fputs("</svg></figure>\n", f);
}

static const char k_css[] =
    "body{font-family:sans-serif;margin:24px;color:#222;background:#fff}"
    "h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
    "table{border-collapse:collapse;font-size:13px}td{padding:2px 12px 2px 0}td:first-child{color:#666}"
    "figure{display:inline-block;margin:8px 16px 8px 0}figcaption{font-size:13px;font-weight:bold;margin-bottom:4px}"
    ".grid{stroke:#e4e4e4;stroke-width:1}.axis{stroke:#444;stroke-width:1}"
    ".tick{font-size:10px;fill:#555}.label{font-size:11px;fill:#333}.legend{font-size:11px}"
    ".series{fill:none;stroke-width:1.5}.dot{stroke:none}.heat-bg{fill:#f3f3f3}.cell{fill:#1f5fbf}"
    ".note{font-size:12px;color:#666}";

static void row(FILE *f, const char *k, const char *v) {
    fprintf(f, "<tr><td>%s</td><td>", k);
    html_escape(f, v);
    fputs("</td></tr>", f);
}

/* total_steps as the trainer recorded it in config.json (0 when absent). */
static int64_t config_total_steps(const char *run_dir) {
    char *p = ow_path_join(run_dir, "config.json");
    OwError e;
    cJSON *j = json_parse_file(p, &e);
    free(p);
    int64_t t = 0;
    if (j && json_get_int(j, "total_steps", 0, &t, "config.json", &e) != 0) t = 0;
    cJSON_Delete(j);
    return t;
}

/* ---- the page ---- */

/* The number of blocks: from the model, else as many as ever trained (from the metrics). */
static int read_run(const char *run_dir, const TrainConfig *c, RunData *d, OwError *err) {
    ModelConfig mc;
    char *src = NULL;
    int is_dir = 0;
    OwError e2;
    if (model_preset_resolve(c->model, &mc, &src, &is_dir, &e2) == 0) d->L = (int)mc.num_layers;
    free(src);
    if (d->L <= 0 || d->L > SAMPLER_MAX_LAYERS) d->L = SAMPLER_MAX_LAYERS;
    if (read_metrics(run_dir, d, err) != 0) return -1;
    if (d->L == SAMPLER_MAX_LAYERS) { /* model not found: as many blocks as ever trained */
        int top = 0;
        for (int64_t i = 0; i < d->step.n; i++)
            for (int l = 0; l < d->L; l++)
                if (d->active[i * d->L + l] && l + 1 > top) top = l + 1;
        if (top > 0) {
            for (int64_t i = 0; i < d->step.n; i++) memmove(d->active + i * top, d->active + i * d->L, (size_t)top);
            d->L = top;
        }
    }
    return 0;
}

/* The run's layer sampling: outlier ratios (RUN_DIR/ratios.json or --ratios) and the sampler's
 * probabilities, each when there are any. */
typedef struct SamplingData {
    double ratios[SAMPLER_MAX_LAYERS], probs[SAMPLER_MAX_LAYERS];
    int have_ratios, have_probs;
    int sampling; /* the method samples blocks */
} SamplingData;

static void read_sampling(const char *run_dir, const TrainConfig *c, int L, SamplingData *sd) {
    OwError e2;
    sd->have_ratios = sd->have_probs = 0;
    char *rp = c->ratios[0] ? ow_xstrdup(c->ratios) : ow_path_join(run_dir, "ratios.json");
    if (ow_path_exists(rp) && owl_read_ratios(rp, L, sd->ratios, &e2) == 0) sd->have_ratios = 1;
    free(rp);
    sd->sampling = train_config_samples_blocks(c);
    if (sd->sampling && !c->forced_blocks[0]) {
        Sampler s;
        int gamma = c->gamma < L ? (int)c->gamma : L;
        if (sampler_init(&s, L, gamma, c->sampling, sd->have_ratios ? sd->ratios : NULL, (uint64_t)c->seed, &e2) == 0) {
            memcpy(sd->probs, s.probs, sizeof(double) * (size_t)L);
            sd->have_probs = 1;
        }
        sampler_free(&s);
    }
}

/* The table at the top: what ran, how far, the losses, speed, memory and settings. sum: summary.json or NULL. */
static void summary_table(FILE *f, const char *run_dir, const TrainConfig *c, const RunData *d, const cJSON *sum) {
    fputs("<table>", f);
    char v[1024];
    row(f, "method", c->method);
    row(f, "model", c->model);
    row(f, "data", c->data);
    int64_t last = d->step.n ? (int64_t)d->step.v[d->step.n - 1] : 0, total = config_total_steps(run_dir);
    if (total > 0 && last >= total)
        snprintf(v, sizeof v, "%lld (finished)", (long long)last);
    else if (total > 0)
        snprintf(v, sizeof v, "%lld of %lld (stopped or still running; `owlore train --resume` continues it)",
                 (long long)last, (long long)total);
    else
        snprintf(v, sizeof v, "%lld", (long long)last);
    row(f, "steps", v);
    if (d->loss.n) {
        snprintf(v, sizeof v, "%.4f -> %.4f", d->loss.v[0], d->loss.v[d->loss.n - 1]);
        row(f, "training loss", v);
    }
    if (d->eloss.n) {
        snprintf(v, sizeof v, "%.4f -> %.4f (perplexity %.3f)", d->eloss.v[0], d->eloss.v[d->eloss.n - 1],
                 exp(d->eloss.v[d->eloss.n - 1]));
        row(f, "validation loss", v);
    }
    if (sum) {
        snprintf(v, sizeof v, "%.0f tokens/s (steady), %.1f s in all", num_or_nan(sum, "tokens_per_s"),
                 num_or_nan(sum, "seconds"));
        row(f, "speed", v);
        char sz[32];
        double pb = num_or_nan(sum, "peak_bytes");
        snprintf(v, sizeof v, "%s on the device", format_size(pb > 0 ? (size_t)pb : 0, sz, sizeof sz));
        row(f, "peak memory", v);
    }
    snprintf(v, sizeof v,
             "gamma %lld, interval %lld, rank %lld, lr %g, batch %lld x %lld x %lld accumulation, seed %lld",
             (long long)c->gamma, (long long)c->interval, (long long)c->rank, c->lr, (long long)c->batch_size,
             (long long)c->block_size, (long long)c->grad_accum, (long long)c->seed);
    row(f, "settings", v);
    fputs("</table>\n", f);
    if (d->skipped)
        fprintf(f,
                "<p class=\"note\">%lld line(s) of metrics.jsonl did not parse as metric records and were "
                "skipped (the first: line %lld).</p>\n",
                (long long)d->skipped, (long long)d->first_bad);
}

/* Memory per step in the largest unit that keeps the values above 1 (d's memory series are scaled). */
static void memory_chart(FILE *f, RunData *d) {
    double mx = 0;
    for (int64_t i = 0; i < d->step.n; i++)
        mx = fmax(mx, fmax(isfinite(d->mem.v[i]) ? d->mem.v[i] : 0, isfinite(d->host.v[i]) ? d->host.v[i] : 0));
    static const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double div = 1;
    while (u < 4 && mx / div >= 1024) div *= 1024, u++;
    for (int64_t i = 0; i < d->step.n; i++) d->mem.v[i] /= div, d->host.v[i] /= div;
    Series mem[2] = {{d->step.v, d->mem.v, d->step.n, "device peak", "#c92a2a", 0},
                     {d->step.v, d->host.v, d->step.n, "parked optimizer state (host)", "#5f3dc4", 0}};
    char mtitle[64];
    snprintf(mtitle, sizeof mtitle, "Memory (%s)", units[u]);
    line_chart(f, "memory", mtitle, units[u], mem, 2);
}

/* The per-step charts: loss, optimization, speed and memory. */
static void step_charts(FILE *f, RunData *d) {
    fputs("<h2>Loss</h2>\n", f);
    Series loss[2] = {{d->step.v, d->loss.v, d->step.n, "training", "#1f5fbf", 0},
                      {d->estep.v, d->eloss.v, d->estep.n, "validation", "#d9480f", 1}};
    line_chart(f, "loss", "Loss (training per step, validation at evaluations)", "loss", loss, d->estep.n ? 2 : 1);
    fputs("<h2>Optimization</h2>\n", f);
    Series lr = {d->step.v, d->lr.v, d->step.n, "learning rate", "#2b8a3e", 0};
    line_chart(f, "lr", "Learning rate", "lr", &lr, 1);
    Series gn = {d->step.v, d->gnorm.v, d->step.n, "gradient norm", "#862e9c", 0};
    line_chart(f, "grad-norm", "Gradient norm (before clipping)", "norm", &gn, 1);
    fputs("<h2>Speed and memory</h2>\n", f);
    Series tps = {d->step.v, d->tps.v, d->step.n, "tokens/s", "#e67700", 0};
    line_chart(f, "tokens-per-s", "Tokens per second", "tokens/s", &tps, 1);
    memory_chart(f, d);
}

/* Ratios, probabilities and the heatmap of trained blocks. */
static void sampling_charts(FILE *f, const RunData *d, const SamplingData *sd) {
    fputs("<h2>Layer sampling</h2>\n", f);
    if (sd->have_ratios)
        bar_chart(f, "ratios", "OWL outlier ratio per block (%)", sd->ratios, d->L, "#1f5fbf");
    else
        fputs("<p class=\"note\">No outlier ratios for this run (not an OWL-sampled run, or a forced schedule).</p>\n",
              f);
    if (sd->have_probs)
        bar_chart(f, "probs", "Sampling probability per block", sd->probs, d->L, "#2b8a3e");
    else if (!sd->sampling)
        fputs("<p class=\"note\">Every block trains at every step (no layer sampling).</p>\n", f);
    heatmap(f, d);
}

int report_write(const char *run_dir, OwError *err) {
    TrainConfig c;
    if (train_config_from_run(&c, run_dir, err) != 0) return -1;
    RunData d;
    memset(&d, 0, sizeof d);
    if (read_run(run_dir, &c, &d, err) != 0) {
        run_data_free(&d);
        return -1;
    }
    SamplingData sd;
    read_sampling(run_dir, &c, d.L, &sd);
    OwError e2;
    char *sp = ow_path_join(run_dir, "summary.json");
    cJSON *sum = ow_path_exists(sp) ? json_parse_file(sp, &e2) : NULL;
    free(sp);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    OW_CHECK(f != NULL);
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>owlore run: ");
    html_escape(f, run_dir);
    fprintf(f, "</title><style>%s</style></head><body>\n<h1>owlore run ", k_css);
    html_escape(f, run_dir);
    fputs("</h1>\n", f);
    summary_table(f, run_dir, &c, &d, sum);
    step_charts(f, &d);
    sampling_charts(f, &d, &sd);
    fputs("<p class=\"note\">Written by <code>owlore report</code>.</p>\n</body></html>\n", f);
    fclose(f);
    cJSON_Delete(sum);
    char *out = ow_path_join(run_dir, "report.html");
    int rc = ow_write_file_atomic(out, buf, len, err);
    free(out);
    free(buf);
    run_data_free(&d);
    return rc;
}

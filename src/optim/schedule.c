/* schedule.c: see schedule.h. */
#include "optim/schedule.h"

#include <math.h>
#include <string.h>

static const char *k_names[] = {"constant", "linear", "cosine"};

int lr_schedule_parse(const char *name, LrScheduleKind *out, OwError *err) {
    for (int i = 0; i < 3; i++) {
        if (strcmp(name, k_names[i]) == 0) {
            *out = (LrScheduleKind)i;
            return 0;
        }
    }
    return ow_fail(err, "unknown learning-rate schedule \"%s\" (allowed: constant, linear, cosine)", name);
}

const char *lr_schedule_name(LrScheduleKind k) { return k_names[k]; }

double lr_at(const LrSchedule *s, int64_t t) {
    if (t < s->warmup) return s->lr * (double)t / (double)(s->warmup > 0 ? s->warmup : 1);
    double span = (double)(s->total - s->warmup > 1 ? s->total - s->warmup : 1);
    switch (s->kind) {
    case LR_CONSTANT: return s->lr;
    case LR_LINEAR: {
        double f = (double)(s->total - t) / span;
        return s->lr * (f > 0 ? f : 0);
    }
    case LR_COSINE: {
        double progress = (double)(t - s->warmup) / span;
        if (progress > 1) progress = 1;
        return s->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    }
    }
    return s->lr;
}

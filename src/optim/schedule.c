/* schedule.c: see schedule.h. */
#include "optim/schedule.h"

#include <math.h>
#include <stddef.h>

const char *const lr_schedule_names[] = {"constant", "linear", "cosine", NULL};

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

/* schedule.h: learning-rate schedules, as transformers defines them.
 * Step t counts optimizer steps from 0; total is the run's step count.
 *   warmup (t < warmup): lr * t / warmup
 *   constant: lr
 *   linear:   lr * max(0, (total - t) / (total - warmup))      (default; decays to 0)
 *   cosine:   lr * 0.5 * (1 + cos(pi * (t - warmup) / (total - warmup))) */
#ifndef OWLORE_OPTIM_SCHEDULE_H
#define OWLORE_OPTIM_SCHEDULE_H

#include "core/error.h"

#include <stdint.h>

typedef enum { LR_CONSTANT = 0, LR_LINEAR = 1, LR_COSINE = 2 } LrScheduleKind;

typedef struct LrSchedule {
    LrScheduleKind kind;
    double lr;
    int64_t warmup;
    int64_t total;
} LrSchedule;

/* Names indexed by LrScheduleKind, ending in NULL (train_config parses with it). */
extern const char *const lr_schedule_names[];
double lr_at(const LrSchedule *s, int64_t t);

#endif

/* test_schedule.c: learning-rate schedules against transformers' formulas. */
#include "optim/schedule.h"

#include <criterion/criterion.h>
#include <math.h>

Test(schedule, linear_decay_without_warmup) {
    LrSchedule s = {LR_LINEAR, 3e-4, 0, 100};
    cr_assert_float_eq(lr_at(&s, 0), 3e-4, 1e-15, "the first step uses the full rate");
    cr_assert_float_eq(lr_at(&s, 50), 1.5e-4, 1e-15);
    cr_assert_float_eq(lr_at(&s, 99), 3e-6, 1e-15);
    cr_assert_float_eq(lr_at(&s, 100), 0, 1e-15);
}

Test(schedule, warmup_then_linear) {
    LrSchedule s = {LR_LINEAR, 1.0, 10, 110};
    cr_assert_float_eq(lr_at(&s, 0), 0, 1e-15);
    cr_assert_float_eq(lr_at(&s, 5), 0.5, 1e-15);
    cr_assert_float_eq(lr_at(&s, 10), 1.0, 1e-15);
    cr_assert_float_eq(lr_at(&s, 60), 0.5, 1e-15);
}

Test(schedule, cosine_and_constant) {
    LrSchedule c = {LR_COSINE, 2.0, 0, 100};
    cr_assert_float_eq(lr_at(&c, 0), 2.0, 1e-12);
    cr_assert_float_eq(lr_at(&c, 50), 1.0, 1e-12);
    cr_assert_float_eq(lr_at(&c, 25), 1.0 + cos(3.14159265358979323846 / 4), 1e-12);
    LrSchedule k = {LR_CONSTANT, 0.5, 4, 100};
    cr_assert_float_eq(lr_at(&k, 2), 0.25, 1e-15);
    cr_assert_float_eq(lr_at(&k, 77), 0.5, 1e-15);
    cr_assert_str_eq(lr_schedule_names[LR_COSINE], "cosine");
}

/* test_sampler.c: the layer sampler: exact distribution of the drawn sets
 * (chi-square against enumeration), inclusion frequencies, modes, forced
 * schedules, and identical draws after saving and restoring its state. */
#include "owl/sampler.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

/* exact probability of each unordered set (bitmask) under sequential sampling */
static void set_probs(const double *p, int n, int left, double prob, unsigned mask, double *out) {
    if (left == 0) {
        out[mask] += prob;
        return;
    }
    double rest = 0;
    for (int i = 0; i < n; i++)
        if (!(mask & (1u << i))) rest += p[i];
    for (int i = 0; i < n; i++) {
        if (mask & (1u << i) || p[i] <= 0) continue;
        set_probs(p, n, left - 1, prob * p[i] / rest, mask | (1u << i), out);
    }
}

Test(sampler, sets_follow_sequential_sampling_chi_square) {
    const int L = 6, gamma = 3, draws = 40000;
    double ratios[6] = {0.27, 0.30, 0.13, 0.11, 0.05, 0.14};
    Sampler s;
    OwError err;
    cr_assert_eq(sampler_init(&s, L, gamma, SAMPLING_OWL, ratios, 7, &err), 0, "%s", err.msg);
    static double exact[64];
    memset(exact, 0, sizeof exact);
    set_probs(s.probs, L, gamma, 1.0, 0, exact);
    static double seen[64];
    memset(seen, 0, sizeof seen);
    double incl[6] = {0};
    for (int d = 0; d < draws; d++) {
        sampler_draw(&s);
        cr_assert_eq(s.nactive, gamma);
        unsigned mask = 0;
        for (int i = 0; i < s.nactive; i++) {
            mask |= 1u << s.active[i];
            incl[s.active[i]] += 1;
            if (i) cr_assert_lt(s.active[i - 1], s.active[i], "active blocks are sorted and distinct");
        }
        seen[mask] += 1;
    }
    double chi2 = 0;
    int cells = 0;
    for (int m = 0; m < 64; m++) {
        if (exact[m] == 0) {
            cr_assert_eq(seen[m], 0, "a set of probability 0 was drawn");
            continue;
        }
        double e = exact[m] * draws;
        chi2 += (seen[m] - e) * (seen[m] - e) / e;
        cells++;
    }
    cr_assert_eq(cells, 20);
    /* 19 degrees of freedom: the 0.999 quantile is 43.82 */
    cr_assert_lt(chi2, 43.82, "chi-square %.2f over %d sets", chi2, cells);
    double inc_exact[6];
    sampler_inclusion_exact(s.probs, L, gamma, inc_exact);
    double sum = 0;
    for (int l = 0; l < L; l++) {
        sum += inc_exact[l];
        double sd = sqrt(inc_exact[l] * (1 - inc_exact[l]) / draws);
        cr_assert_lt(fabs(incl[l] / draws - inc_exact[l]), 5 * sd + 1e-9, "block %d included %.4f vs exact %.4f", l,
                     incl[l] / draws, inc_exact[l]);
    }
    cr_assert_float_eq(sum, gamma, 1e-12, "inclusion probabilities sum to gamma");
    sampler_free(&s);
}

Test(sampler, restore_state_repeats_the_draws) {
    double ratios[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    Sampler a;
    OwError err;
    cr_assert_eq(sampler_init(&a, 8, 3, SAMPLING_OWL, ratios, 99, &err), 0);
    for (int i = 0; i < 17; i++) sampler_draw(&a);
    Sampler b = a; /* the state is plain data: this is what a checkpoint saves */
    for (int i = 0; i < 50; i++) {
        sampler_draw(&a);
        sampler_draw(&b);
        cr_assert_eq(a.nactive, b.nactive);
        cr_assert_eq(memcmp(a.active, b.active, sizeof(int) * (size_t)a.nactive), 0, "draw %d differs after restore",
                     i);
    }
    /* another seed draws another sequence */
    Sampler c;
    cr_assert_eq(sampler_init(&c, 8, 3, SAMPLING_OWL, ratios, 100, &err), 0);
    Sampler d;
    cr_assert_eq(sampler_init(&d, 8, 3, SAMPLING_OWL, ratios, 99, &err), 0);
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        sampler_draw(&c);
        sampler_draw(&d);
        differ |= memcmp(c.active, d.active, sizeof(int) * 3) != 0;
    }
    cr_assert(differ, "different seeds draw different blocks");
}

Test(sampler, mode_probabilities) {
    double r[4] = {1, 3, 2, 2};
    Sampler s;
    OwError err;
    cr_assert_eq(sampler_init(&s, 4, 1, SAMPLING_OWL, r, 1, &err), 0);
    cr_assert_float_eq(s.probs[1], 3.0 / 8, 1e-12);
    cr_assert_eq(sampler_init(&s, 4, 1, SAMPLING_OWL_REVERSE, r, 1, &err), 0);
    /* max - r = {2, 0, 1, 1} / 4 */
    cr_assert_float_eq(s.probs[0], 0.5, 1e-12);
    cr_assert_float_eq(s.probs[1], 0.0, 1e-12);
    cr_assert_eq(sampler_init(&s, 4, 2, SAMPLING_UNIFORM, NULL, 1, &err), 0);
    cr_assert_float_eq(s.probs[2], 0.25, 1e-12);
    cr_assert_eq(sampler_init(&s, 4, 2, SAMPLING_INCREASE, NULL, 1, &err), 0);
    cr_assert_float_eq(s.probs[3], 4.0 / 10, 1e-12);
    cr_assert_eq(sampler_init(&s, 4, 2, SAMPLING_DECREASE, NULL, 1, &err), 0);
    cr_assert_float_eq(s.probs[0], 4.0 / 10, 1e-12);
    cr_assert_eq(sampler_init(&s, 4, 2, SAMPLING_ALL, NULL, 1, &err), 0);
    sampler_draw(&s);
    cr_assert_eq(s.nactive, 4, "mode all trains every block");
}

Test(sampler, bad_settings_are_refused) {
    Sampler s;
    OwError err;
    double r[4] = {1, 1, 1, 1};
    cr_assert_eq(sampler_init(&s, 4, 5, SAMPLING_UNIFORM, NULL, 1, &err), -1);
    cr_assert(strstr(err.msg, "gamma") != NULL, "%s", err.msg);
    cr_assert_eq(sampler_init(&s, 4, 2, SAMPLING_OWL, NULL, 1, &err), -1);
    cr_assert(strstr(err.msg, "--ratios") != NULL, "%s", err.msg);
    double neg[4] = {1, -1, 1, 1};
    cr_assert_eq(sampler_init(&s, 4, 2, SAMPLING_OWL, neg, 1, &err), -1);
    cr_assert(strstr(err.msg, "block 1") != NULL, "%s", err.msg);
    /* owl_reverse of equal ratios leaves no block a chance */
    cr_assert_eq(sampler_init(&s, 4, 2, SAMPLING_OWL_REVERSE, r, 1, &err), -1);
    cr_assert(strstr(err.msg, "non-zero probability") != NULL, "%s", err.msg);
}

Test(sampler, forced_schedule) {
    Sampler s;
    OwError err;
    cr_assert_eq(sampler_init(&s, 4, 2, SAMPLING_UNIFORM, NULL, 1, &err), 0);
    cr_assert_eq(sampler_force(&s, "0,2;1,3", &err), 0, "%s", err.msg);
    int want[3][2] = {{0, 2}, {1, 3}, {0, 2}};
    for (int p = 0; p < 3; p++) {
        sampler_draw(&s);
        cr_assert_eq(s.active[0], want[p][0]);
        cr_assert_eq(s.active[1], want[p][1]);
    }
    cr_assert_eq(sampler_force(&s, "0,1,2", &err), -1, "wrong count");
    cr_assert_eq(sampler_force(&s, "0,0", &err), -1, "repeated block");
    cr_assert_eq(sampler_force(&s, "0,9", &err), -1, "block out of range");
    cr_assert_eq(sampler_force(&s, "a,b", &err), -1, "not numbers");
    sampler_free(&s);
}

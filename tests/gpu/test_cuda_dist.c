// ctest-labels: gpu
/* test_cuda_dist.c: the data-parallel transport of GPU ranks (cuda/cuda_group.cu, NCCL) on one GPU.
 *
 * A run that joins a group of one (the OWLORE_TEST_GROUP_OF_ONE hook, trainer.h) sums every gradient
 * through NCCL on the group's stream, beside the backward, and puts its norm off until the sum is waited
 * for, as the ranks of a data-parallel run do. A sum over one rank is the gradient itself and the norm
 * adds up in the same order, so the run must give the bits of the same run alone: a sum read before it
 * is complete, or a gradient buffer reused under a sum in flight, shows as a difference. The recipe
 * (the trajectory fixture's owlore: untied, so lm_head's gradient lives in the activation pool and the
 * embedding's is compact) resamples and refreshes projectors within its 20 steps.
 * NCCL: OWLORE_NCCL_LIBRARY, else libnccl.so.2 on the loader's path (scripts/gpu-tests.sh finds the
 * one of pip's nvidia-nccl wheel when the variable is unset); under the CPU emulator, its stand-in
 * (scripts/cuda_emu/fake_nccl.c). */
#include "core/fileio.h"
#include "core/json.h"
#include "test_support.h"
#include "train_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

Test(cuda_dist, a_group_of_one_gives_the_bits_of_one_process, .timeout = 900) {
    char *dir = ts_tmpdir();
    TrainConfig alone, group;
    free(ts_trajectory_config("owlore", dir, "cuda", &alone));
    free(ts_trajectory_config("owlore", dir, "cuda", &group));
    char *out = ow_path_join(dir, "run-group");
    snprintf(group.out, sizeof group.out, "%s", out);
    if (getenv("OWLORE_EMU")) /* the CPU emulator (scripts/cuda_emu/run.sh dist): ~40 s a step there */
        alone.steps = group.steps = 4;
    ts_train(&alone);
    cr_assert_eq(setenv("OWLORE_TEST_GROUP_OF_ONE", "1", 1), 0);
    ts_train(&group);
    unsetenv("OWLORE_TEST_GROUP_OF_ONE");
    ts_expect_same_run(alone.out, group.out, (int)group.steps);
    /* the sums did run: their bytes are in the summary */
    char *sp = ow_path_join(out, "summary.json");
    OwError err;
    cJSON *s = json_parse_file(sp, &err);
    cr_assert(s != NULL, "%s", err.msg);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "dp_bytes_per_step");
    cr_expect(cJSON_IsNumber(b) && b->valuedouble > 0, "%s: no gradient bytes summed", sp);
    cJSON_Delete(s);
    free(sp);
    free(out);
    ts_rmtree(dir);
    free(dir);
}

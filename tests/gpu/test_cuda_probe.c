// ctest-labels: gpu
/* test_cuda_probe.c: `owlore probe`'s measurements (offload/probe.h) on the
 * CUDA backend with small sizes: the device is labelled with the GPU's name
 * (Backend.device_name, from cudaGetDeviceProperties), the copies go through
 * page-locked buffers, the GEMM runs in bf16, and every figure is finite and
 * positive. The figures are logged; real ones come from `owlore probe`. */
#include "backend/backend.h"
#include "backend/backend_cuda.h"
#include "offload/probe.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int positive(double x) { return isfinite(x) && x > 0; }

Test(cuda_probe, small_probe_names_the_gpu_and_gives_positive_figures, .timeout = 600) {
    OwError err;
    Backend *be = backend_create_cuda(0, 0, &err);
    cr_assert_not_null(be, "CUDA backend: %s", err.msg);
    cr_assert(be->device_name[0] != '\0', "the CUDA backend left device_name empty");
    char want[128];
    snprintf(want, sizeof want, "cuda: %s", be->device_name);
    char *dir = ts_tmpdir();
    ProbeResult r;
    ProbeOptions opt = {.copy_bytes = 8 << 20, .disk_bytes = 8 << 20, .gemm_n = 256};
    cr_assert_eq(probe_run(be, dir, &opt, &r, &err), 0, "%s", err.msg);
    cr_log_info("%s: h2d %.2f GB/s, d2h %.2f GB/s, disk %.2f GB/s (%s%s), %s GEMM n=%lld %.3f TFLOP/s, %.2f s",
                r.device, r.h2d_gbps, r.d2h_gbps, r.disk_gbps, r.disk_path, r.disk_direct ? ", O_DIRECT" : "",
                r.gemm_dtype, (long long)r.gemm_n, r.gemm_tflops, r.seconds);
    cr_expect_str_eq(r.device, want);
    cr_expect_str_eq(r.gemm_dtype, "BF16");
    cr_expect(positive(r.h2d_gbps) && positive(r.d2h_gbps) && positive(r.disk_gbps) && positive(r.gemm_tflops));
    be->ops->destroy(be);
    ts_rmtree(dir);
    free(dir);
}

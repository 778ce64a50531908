/* test_backend.c: the backend seam on the CPU: device strings (backend_create
 * and backend_parse_device: valid ones, bad ones and CUDA asked of a build
 * without it, each with a clear message), the CPU backend's capabilities and
 * configuration ops (set_dtypes, mem_report), the profiler's wrapper table
 * (forwards every op to the wrapped backend's table and gives it back), and
 * the arguments that replaced hidden state (matmul_prec, AdamHostFlags). */
#include "cpu_test_util.h"

#include "backend/backend_cuda.h"
#include "backend/profile.h"

#include <string.h>

Test(backend_create, cpu_and_auto) {
    OwError err;
    Backend *be = backend_create("cpu", &(BackendOptions){.threads = 1, .mem_cap = 4096}, &err);
    cr_assert(be != NULL, "%s", err.msg);
    cr_assert_str_eq(be->name, "cpu");
    cr_assert(be->mem.cap == 4096, "the options' cap: %zu", be->mem.cap);
    cr_assert(!be->caps.device_memory && !be->caps.bf16);
    be->ops->destroy(be);

    be = backend_create("cpu", NULL, &err); /* default options */
    cr_assert(be != NULL, "%s", err.msg);
    cr_assert(be->mem.cap == 0);
    be->ops->destroy(be);

    if (backend_cuda_available()) return; /* auto may pick a GPU here */
    be = backend_create("auto", NULL, &err);
    cr_assert(be != NULL, "%s", err.msg);
    cr_assert_str_eq(be->name, "cpu", "auto without CUDA is the CPU");
    be->ops->destroy(be);
}

Test(backend_create, device_strings) {
    OwError err;
    BackendDevice d;
    cr_assert(backend_parse_device("auto", &d, &err) == 0 && d.kind == BACKEND_DEVICE_AUTO);
    cr_assert(backend_parse_device("cpu", &d, &err) == 0 && d.kind == BACKEND_DEVICE_CPU);
    cr_assert(backend_parse_device("cuda", &d, &err) == 0 && d.kind == BACKEND_DEVICE_CUDA && d.index == 0);
    cr_assert(backend_parse_device("cuda:3", &d, &err) == 0 && d.kind == BACKEND_DEVICE_CUDA && d.index == 3);
    const char *bad[] = {"gpu", "", "CPU", "cuda:", "cuda:x", "cuda:1x", "cuda0", "cuda:-1", "cuda:99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert(backend_parse_device(bad[i], &d, &err) == -1, "\"%s\" is refused", bad[i]);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", bad[i]);
        cr_assert(strstr(err.msg, quoted) && strstr(err.msg, "allowed: auto, cpu, cuda, cuda:N"),
                  "the message names the string and the allowed ones: %s", err.msg);
        cr_assert(backend_create(bad[i], NULL, &err) == NULL, "backend_create refuses \"%s\"", bad[i]);
        cr_assert(strstr(err.msg, quoted), "%s", err.msg);
    }
}

/* The message of a CUDA device asked for where there is none: a CPU-only build, or a CUDA build on a machine
 * without a usable device (CI builds the CUDA backend where nvcc exists). */
#ifdef OWLORE_HAVE_CUDA
#define NO_CUDA_MESSAGE "no CUDA device found"
#else
#define NO_CUDA_MESSAGE "built without the CUDA backend"
#endif

Test(backend_create, cuda_without_cuda) {
    if (backend_cuda_available()) return; /* a device: tests/gpu covers it */
    const char *devices[] = {"cuda", "cuda:1"};
    for (int i = 0; i < 2; i++) {
        OwError err;
        cr_assert(backend_create(devices[i], NULL, &err) == NULL);
        cr_assert(strstr(err.msg, NO_CUDA_MESSAGE) && strstr(err.msg, "--device cpu"),
                  "a clear message with a hint: %s", err.msg);
    }
}

Test(backend_caps, cpu_dtypes_and_memory_report) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    cr_assert(be->ops->set_dtypes(be, OW_F32, OW_F32, &err) == 0, "%s", err.msg);
    cr_assert(be->ops->set_dtypes(be, OW_BF16, OW_F32, &err) == -1);
    cr_assert(strstr(err.msg, "computes in fp32") && strstr(err.msg, "BF16"), "%s", err.msg);
    cr_assert(be->ops->set_dtypes(be, OW_F32, OW_BF16, &err) == -1);
    cr_assert(be->act_dtype == OW_F32 && be->param_dtype == OW_F32, "a refused pair changes nothing");
    BackendMemReport r;
    memset(&r, 0xff, sizeof r);
    be->ops->sample_used(be);
    be->ops->mem_report(be, &r);
    cr_assert(r.reserved == 0 && r.peak_reserved == 0 && r.cap == 0 && r.context == 0 && r.used_peak == 0,
              "no device figures on the CPU");
    cr_assert(be->ops->reserve(be, (size_t)1 << 40, &err) == 0, "reserving is a no-op on the CPU");
    be->ops->destroy(be);
}

Test(backend_profile, wrapper_table_forwards_and_restores) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    const BackendOps *own = be->ops;
    backend_profile_enable(be);
    cr_assert(be->ops != own && be->profile != NULL, "the profiler's table is in place");
    Tensor a = tensor_2d(OW_F32, 2, 3), b = tensor_2d(OW_F32, 3, 2), c = tensor_2d(OW_F32, 2, 2);
    cr_assert(be_alloc(be, &a, MEM_WEIGHTS, "a", &err) == 0 && be_alloc(be, &b, MEM_WEIGHTS, "b", &err) == 0 &&
              be_alloc(be, &c, MEM_WEIGHTS, "c", &err) == 0);
    be->ops->fill(be, &a, 1.0f);
    be->ops->fill(be, &b, 2.0f);
    be->ops->matmul(be, &c, &a, 0, &b, 0, 1.0f, 0.0f);
    for (int i = 0; i < 4; i++) cr_assert(ct_f(&c)[i] == 6.0f, "the wrapped matmul ran: %g", ct_f(&c)[i]);
    cr_assert(be->ops->set_dtypes(be, OW_BF16, OW_BF16, &err) == -1, "configuration ops forward too");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    backend_profile_report(be, f);
    fclose(f);
    cr_assert(strstr(text, "matmul 2x2x3") && strstr(text, "fill"), "timed ops have rows:\n%s", text);
    free(text);
    backend_profile_disable(be);
    cr_assert(be->ops == own && be->profile == NULL, "the backend's own table is back");
    be_release(be, &a, MEM_WEIGHTS);
    be_release(be, &b, MEM_WEIGHTS);
    be_release(be, &c, MEM_WEIGHTS);
    cr_assert(be->mem.current_total == 0);
    be->ops->destroy(be);
}

/* ---- the arguments that replaced hidden state and int flags ---- */

Test(backend_args, matmul_prec_is_exact_on_the_cpu) {
    Backend *be = ct_backend(1);
    Rng r;
    rng_init(&r, 5, 99);
    Tensor a = CT_F32(be, 7, 5), b = CT_F32(be, 5, 3), c = CT_F32(be, 7, 3), d = CT_F32(be, 7, 3);
    ct_randn(&r, &a, 1.0);
    ct_randn(&r, &b, 1.0);
    be->ops->matmul(be, &c, &a, 0, &b, 0, 1.0f, 0.0f);
    be->ops->matmul_prec(be, &d, &a, 0, &b, 0, 1.0f, 0.0f, MATMUL_FAST_F32);
    cr_assert(memcmp(c.data, d.data, tensor_nbytes(&c)) == 0, "the CPU computes fp32 at either precision");
    ct_free(be, &a);
    ct_free(be, &b);
    ct_free(be, &c);
    ct_free(be, &d);
    be->ops->destroy(be);
}

Test(backend_args, adam_update_host_flags) {
    Backend *be = ct_backend(1);
    OwError err;
    Rng r;
    rng_init(&r, 9, 99);
    const int64_t V = 4, C = 6;
    AdamHyper h = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 1, .grad_scale = 1.0f};
    for (int zero = 0; zero < 2; zero++) {
        Tensor p = CT_F32(be, V, C), g = CT_F32(be, V, C);
        ct_randn(&r, &p, 1.0);
        ct_randn(&r, &g, 1.0);
        float *m = be->ops->host_alloc(be, (size_t)(V * C) * sizeof(float), &err);
        float *v = be->ops->host_alloc(be, (size_t)(V * C) * sizeof(float), &err);
        cr_assert(m && v, "%s", err.msg);
        float g0 = ct_f(&g)[0], p0 = ct_f(&p)[0];
        AdamHostFlags flags = ADAM_HOST_ASYNC | (zero ? ADAM_HOST_ZERO_GRAD : 0);
        cr_assert(be->ops->adam_update_host(be, &p, &g, m, v, NULL, ADAM_ROWS_PRESENT, flags, &h) == -1,
                  "the CPU runs it at once: no ticket");
        cr_assert(ct_f(&p)[0] != p0, "the parameter moved");
        for (int64_t i = 0; i < V * C; i++)
            cr_assert(zero ? ct_f(&g)[i] == 0.0f : ct_f(&g)[i] != 0.0f, "ADAM_HOST_ZERO_GRAD %s the gradient",
                      zero ? "zeroes" : "(not set) keeps");
        cr_assert(zero || ct_f(&g)[0] == g0);
        be->ops->host_free(be, m);
        be->ops->host_free(be, v);
        ct_free(be, &p);
        ct_free(be, &g);
    }
    be->ops->destroy(be);
}

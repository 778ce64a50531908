// ctest-labels: cpu
/* test_host_mem.c: the run's host memory accounting (offload/host_mem.h): the
 * figures by kind (current, peak, page-locked) as buffers come and go, the cap
 * on page-locked memory refusing an allocation with the breakdown and the
 * hints that apply. */
#include "backend/backend.h"
#include "offload/host_mem.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define KiB ((size_t)1024)

static Backend *cpu(void) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    return be;
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

Test(host_mem, accounting_by_kind) {
    Backend *be = cpu();
    HostMem hm;
    host_mem_init(&hm, 0);
    OwError err;
    unsigned char *homes = host_mem_alloc(&hm, be, 300 * KiB, HOST_BLOCK_HOMES, 1, "homes", &err);
    unsigned char *acts = host_mem_alloc(&hm, be, 100 * KiB, HOST_ACTIVATIONS, 1, "acts", &err);
    unsigned char *park1 = host_mem_alloc(&hm, be, 50 * KiB, HOST_PARKED, 0, "park", &err);
    unsigned char *park2 = host_mem_alloc(&hm, be, 70 * KiB, HOST_PARKED, 0, "park", &err);
    cr_assert(homes && acts && park1 && park2, "%s", err.msg);
    cr_assert(all_zero(homes, 300 * KiB) && all_zero(park2, 70 * KiB), "buffers come zeroed");
    cr_assert_eq(hm.current[HOST_BLOCK_HOMES], 300 * KiB);
    cr_assert_eq(hm.current[HOST_ACTIVATIONS], 100 * KiB);
    cr_assert_eq(hm.current[HOST_PARKED], 120 * KiB);
    cr_assert_eq(hm.current_total, 520 * KiB);
    cr_assert_eq(hm.locked_total, 400 * KiB, "parked state is pageable");
    cr_assert_eq(hm.locked[HOST_PARKED], 0);
    cr_assert_eq(host_mem_free(&hm, be, park1), 50 * KiB, "free gives the buffer's size");
    cr_assert_eq(host_mem_free(&hm, be, acts), 100 * KiB);
    cr_assert_eq(host_mem_free(&hm, be, NULL), 0);
    cr_assert_eq(hm.current[HOST_PARKED], 70 * KiB);
    cr_assert_eq(hm.current[HOST_ACTIVATIONS], 0);
    cr_assert_eq(hm.current_total, 370 * KiB);
    cr_assert_eq(hm.locked_total, 300 * KiB);
    unsigned char *mom = host_mem_alloc(&hm, be, 20 * KiB, HOST_MOMENTS, 1, "moments", &err);
    cr_assert(mom != NULL, "%s", err.msg);
    /* peaks: per kind, of the total (with its breakdown at that moment), of the page-locked part */
    cr_assert_eq(hm.peak[HOST_PARKED], 120 * KiB);
    cr_assert_eq(hm.peak[HOST_ACTIVATIONS], 100 * KiB);
    cr_assert_eq(hm.peak[HOST_MOMENTS], 20 * KiB);
    cr_assert_eq(hm.peak_total, 520 * KiB);
    cr_assert_eq(hm.peak_breakdown[HOST_ACTIVATIONS], 100 * KiB);
    cr_assert_eq(hm.peak_breakdown[HOST_MOMENTS], 0, "the moments came after the peak");
    cr_assert_eq(hm.locked_peak, 400 * KiB);
    char line[256];
    host_mem_format(hm.current, line, sizeof line);
    cr_assert_str_eq(line, "block_homes 300.0 KiB, moments 20.0 KiB, parked 70.0 KiB; total 390.0 KiB");
    host_mem_free(&hm, be, mom);
    host_mem_free(&hm, be, homes);
    host_mem_free(&hm, be, park2);
    cr_assert_eq(hm.current_total, 0);
    cr_assert_eq(hm.locked_total, 0);
    host_mem_format(hm.current, line, sizeof line);
    cr_assert_str_eq(line, "none");
    host_mem_release(&hm);
    be->ops->destroy(be);
}

Test(host_mem, cap_refuses_with_the_breakdown) {
    Backend *be = cpu();
    HostMem hm;
    host_mem_init(&hm, 1024 * KiB);
    OwError err;
    void *acts = host_mem_alloc(&hm, be, 600 * KiB, HOST_ACTIVATIONS, 1, "the offloaded block inputs", &err);
    void *mom = host_mem_alloc(&hm, be, 300 * KiB, HOST_MOMENTS, 1, "moments of lm_head", &err);
    void *park = host_mem_alloc(&hm, be, 4096 * KiB, HOST_PARKED, 0, "parked", &err);
    cr_assert(acts && mom && park, "pageable memory is not capped: %s", err.msg);
    void *homes = host_mem_alloc(&hm, be, 200 * KiB, HOST_BLOCK_HOMES, 1, "the host homes of frozen blocks", &err);
    cr_assert_null(homes, "900 KiB + 200 KiB passes a cap of 1 MiB");
    cr_log_info("%s", err.msg);
    cr_assert(strstr(err.msg, "allocating 200.0 KiB for the host homes of frozen blocks (block_homes) would pass the "
                              "page-locked host memory cap of 1.0 MiB (--host-mem)"),
              "%s", err.msg);
    cr_assert(strstr(err.msg, "page-locked in use now: activations 600.0 KiB, moments 300.0 KiB; total 900.0 KiB"),
              "the breakdown (page-locked only): %s", err.msg);
    cr_assert(strstr(err.msg, "raise --host-mem") && strstr(err.msg, "--nvme-dir") &&
                  strstr(err.msg, "--offload-activations off") && strstr(err.msg, "--offload-optimizer off"),
              "a hint for the kind asked for and each kind in use: %s", err.msg);
    cr_assert_null(strstr(err.msg, "--stream-slots"), "no hint for a kind not in use: %s", err.msg);
    cr_assert_eq(hm.locked_total, 900 * KiB, "a refused buffer is not counted");
    cr_assert_eq(hm.current[HOST_BLOCK_HOMES], 0);
    homes = host_mem_alloc(&hm, be, 124 * KiB, HOST_BLOCK_HOMES, 1, "the host homes of frozen blocks", &err);
    cr_assert_not_null(homes, "up to the cap exactly: %s", err.msg);
    /* a cap below what is in use is refused and left as it was */
    cr_assert_eq(host_mem_set_cap(&hm, 512 * KiB, &err), -1);
    cr_assert(strstr(err.msg, "1.0 MiB in use passes the page-locked host memory cap of 512.0 KiB"), "%s", err.msg);
    cr_assert_eq(hm.cap, 1024 * KiB);
    cr_assert_eq(host_mem_set_cap(&hm, 0, &err), 0);
    void *more = host_mem_alloc(&hm, be, 4096 * KiB, HOST_ACTIVATIONS, 1, "more", &err);
    cr_assert_not_null(more, "no cap: %s", err.msg);
    void *bufs[] = {acts, mom, park, homes, more};
    for (int i = 0; i < 5; i++) host_mem_free(&hm, be, bufs[i]);
    host_mem_release(&hm);
    be->ops->destroy(be);
}

/* cmd_probe.c: `owlore probe`: the bandwidths the offload engine's cost model
 * uses (offload/probe.h), measured in a few seconds or read from the cache. */
#include "cmd/commands.h"

#include "backend/backend.h"
#include "core/json.h"
#include "offload/probe.h"

#include <stdio.h>
#include <stdlib.h>

static void print_text(const ProbeResult *r) {
    printf("device:          %s\n", r->device);
    printf("host -> device:  %.2f GB/s\n", r->h2d_gbps);
    printf("device -> host:  %.2f GB/s\n", r->d2h_gbps);
    if (r->disk_dir[0])
        printf("store disk read: %.2f GB/s from %s (%s%s)\n", r->disk_gbps, r->disk_dir, r->disk_path,
               r->disk_direct ? ", O_DIRECT" : ", through the page cache: the filesystem refuses O_DIRECT");
    else
        printf("store disk read: not measured (no --nvme-dir)\n");
    printf("GEMM:            %.2f TFLOP/s (%s, n = %lld)\n", r->gemm_tflops, r->gemm_dtype, (long long)r->gemm_n);
    char path[4096];
    OwError e;
    if (probe_cache_path(path, sizeof path, &e) != 0)
        printf("measured now in %.1f s (not cached: %s)\n", r->seconds, e.msg);
    else if (r->cached)
        printf("from the cache %s (measured in %.1f s; --refresh measures again)\n", path, r->seconds);
    else
        printf("measured now in %.1f s; cached in %s\n", r->seconds, path);
}

int cmd_probe(int argc, char **argv) {
    const char *device = "auto", *nvme_dir = NULL;
    int refresh = 0, json = 0;
    int64_t threads = 0;
    ArgSpec specs[] = {
        {"device", ARG_STR, &device, "DEV", "cuda | cuda:N | cpu | auto (default)", NULL},
        {"nvme-dir", ARG_STR, &nvme_dir, "DIR",
         "also measure reading a store file in DIR, the disk for the NVMe block store (written and removed again)",
         NULL},
        {"refresh", ARG_BOOL, &refresh, NULL, "measure again even when the figures are cached", NULL},
        {"json", ARG_BOOL, &json, NULL, "print one JSON object (the figures, and \"cached\")", NULL},
        {"threads", ARG_INT, &threads, "N", "CPU threads (0: all)", NULL},
    };
    ArgsResult ar;
    int parsed = cmd_args(
        "probe", argc, argv, specs, (int)(sizeof specs / sizeof specs[0]),
        "owlore probe [--device D] [--nvme-dir DIR] [--refresh] [--json] [--threads N]",
        "Measures what the offload engine's placement weighs: page-locked host <-> device copy rates, the read\n"
        "rate of a store file on the disk of --nvme-dir (the io_uring / O_DIRECT path training uses) and GEMM\n"
        "throughput (bf16 on a GPU). Takes a few seconds; the figures are cached per device and directory in\n"
        "$XDG_CACHE_HOME/owlore/probe.json (else ~/.cache/owlore/probe.json) and read from there next time.",
        &ar);
    if (parsed >= 0) return parsed;
    OwError err;
    if (ar.npos > 0) {
        ow_fail(&err, "unexpected argument \"%s\" (owlore probe takes only flags; see --help)", ar.pos[0]);
        cmd_report_error("probe", &err);
        return 2;
    }
    Backend *be = backend_create(device, &(BackendOptions){.threads = threads}, &err);
    if (!be) return cmd_report_error("probe", &err);
    ProbeResult r;
    int rc = probe_get(be, nvme_dir, refresh, &r, &err);
    be->ops->destroy(be);
    if (rc != 0) return cmd_report_error("probe", &err);
    if (json) {
        cJSON *o = probe_result_json(&r);
        size_t n;
        char *s = json_print_text(o, &n);
        fputs(s ? s : "null\n", stdout);
        free(s);
        cJSON_Delete(o);
    } else {
        print_text(&r);
    }
    return 0;
}

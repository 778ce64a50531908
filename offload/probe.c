/* probe.c: see probe.h. */
#define _GNU_SOURCE /* realpath, posix_fadvise, kill */
#include "offload/probe.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "offload/block_io.h"
#include "offload/store_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROBE_CACHE_VERSION 1
#define PROBE_CACHE_MAX ((size_t)1 << 20)
#define PROBE_SOURCE_HASH 0x70726f6265ull /* "probe": the temporary store names no model */
#define PROBE_FILE_PREFIX ".owlore-probe-"
#define PROBE_BLOCK_MAX ((size_t)64 << 20)
#define PROBE_DISK_BLOCKS 8 /* the store file holds at least this many blocks where its size allows */
#define PROBE_MAX_REPS 1024

/* ---- timing ---- */

typedef void (*ProbeWork)(Backend *be, void *ctx);

/* Units of work per second: one warm-up unit, then batches of 1, 2, 4, ... units, each timed
 * from its first unit to be->ops->sync, until one lasts min_seconds; that batch's rate. */
static double timed_rate(Backend *be, ProbeWork work, void *ctx, double min_seconds) {
    work(be, ctx);
    be->ops->sync(be);
    for (int reps = 1;; reps *= 2) {
        double t0 = ow_now();
        for (int i = 0; i < reps; i++) work(be, ctx);
        be->ops->sync(be);
        double dt = ow_now() - t0;
        if (dt > 0 && (dt >= min_seconds || reps >= PROBE_MAX_REPS)) return reps / dt;
    }
}

static double min_batch_seconds(const Backend *be) { return be->caps.device_memory ? 0.1 : 0.02; }

/* ---- host <-> device copies ---- */

typedef struct {
    Tensor dev;
    void *host;
} CopyWork;

static void work_h2d(Backend *be, void *ctx) {
    CopyWork *c = ctx;
    (void)be->ops->copy_from_host(be, &c->dev, c->host);
}

static void work_d2h(Backend *be, void *ctx) {
    CopyWork *c = ctx;
    (void)be->ops->copy_to_host(be, c->host, &c->dev);
}

static int probe_copies(Backend *be, size_t bytes, ProbeResult *out, OwError *err) {
    int64_t floats = (int64_t)(bytes / sizeof(float));
    CopyWork c = {.dev = tensor_1d(OW_F32, floats > 1024 ? floats : 1024)};
    size_t n = tensor_nbytes(&c.dev);
    if (be_alloc(be, &c.dev, MEM_WORKSPACE, "probe: copy buffer", err) != 0) return -1;
    c.host = be->ops->host_alloc(be, n, err);
    if (!c.host) return be_release(be, &c.dev, MEM_WORKSPACE), -1;
    double gb = (double)n / 1e9;
    out->h2d_gbps = gb * timed_rate(be, work_h2d, &c, min_batch_seconds(be));
    out->d2h_gbps = gb * timed_rate(be, work_d2h, &c, min_batch_seconds(be));
    be->ops->host_free(be, c.host);
    be_release(be, &c.dev, MEM_WORKSPACE);
    return 0;
}

/* ---- GEMM ---- */

typedef struct {
    Tensor a, b, c;
} GemmWork;

static void work_gemm(Backend *be, void *ctx) {
    GemmWork *g = ctx;
    be->ops->matmul(be, &g->c, &g->a, 0, &g->b, 1, 1.0f, 0.0f);
}

static int probe_gemm(Backend *be, int64_t n, ProbeResult *out, OwError *err) {
    DType dt = be->caps.bf16 ? OW_BF16 : OW_F32;
    GemmWork g = {tensor_2d(dt, n, n), tensor_2d(dt, n, n), tensor_2d(dt, n, n)};
    Tensor *t[3] = {&g.a, &g.b, &g.c};
    int rc = 0, made = 0;
    for (; made < 3 && rc == 0; made++) rc = be_alloc(be, t[made], MEM_WORKSPACE, "probe: GEMM operand", err);
    if (rc == 0) {
        be->ops->fill_normal(be, &g.a, 1, 1.0f);
        be->ops->fill_normal(be, &g.b, 2, 1.0f);
        out->gemm_tflops =
            2.0 * (double)n * (double)n * (double)n / 1e12 * timed_rate(be, work_gemm, &g, min_batch_seconds(be));
        out->gemm_n = n;
        snprintf(out->gemm_dtype, sizeof out->gemm_dtype, "%s", dtype_name(dt));
    }
    while (made-- > 0) be_release(be, t[made], MEM_WORKSPACE);
    return rc;
}

/* ---- the store disk ---- */

/* dir resolved into resolved[cap]; a missing, non-directory or unwritable dir fails with a hint. */
static int resolve_dir(const char *dir, char *resolved, size_t cap, OwError *err) {
    char buf[PATH_MAX];
    if (!realpath(dir, buf)) {
        int e = errno;
        ow_fail(err, "%s: %s", dir, e == ENOENT ? "no such directory" : strerror(e));
        return ow_fail_suffix(err, "create it, or name a directory on the disk that is to hold the store file");
    }
    if (!ow_is_dir(buf))
        return ow_fail(err, "%s: not a directory (name the directory that is to hold the store file)", dir);
    if (access(buf, W_OK | X_OK) != 0)
        return ow_fail(err,
                       "%s: not writable: %s (the store file is written there: fix its permissions or name "
                       "another directory)",
                       dir, strerror(errno));
    if (strlen(buf) >= cap) return ow_fail(err, "%s: the path is too long (%zu bytes at most)", dir, cap - 1);
    memcpy(resolved, buf, strlen(buf) + 1);
    return 0;
}

/* Removes the probe files of dead processes (a probe killed while it wrote). */
static void remove_stale_probe_files(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t np = strlen(PROBE_FILE_PREFIX);
    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, PROBE_FILE_PREFIX, np) != 0) continue;
        long pid = strtol(e->d_name + np, NULL, 10);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char *p = ow_path_join(dir, e->d_name);
        (void)unlink(p);
        free(p);
    }
    if (d) closedir(d);
}

/* Random bytes (xorshift64*): nothing in the store file compresses. */
static void fill_random(uint8_t *p, size_t n) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t v = x * 0x2545f4914f6cdd1dull;
        memcpy(p + i, &v, 8);
    }
}

/* Writes the store file of n blocks of `block` bytes at path (block i: src + 8 i). */
static int write_store(const char *path, int n, uint64_t block, const uint8_t *src, OwError *err) {
    uint64_t *sizes = ow_xmalloc((size_t)n * sizeof *sizes);
    for (int i = 0; i < n; i++) sizes[i] = block;
    StoreWriter w;
    int rc = store_writer_begin(&w, path, PROBE_SOURCE_HASH, n, sizes, err);
    free(sizes);
    for (int i = 0; i < n && rc == 0; i++) rc = store_writer_put(&w, i, src + 8 * (size_t)i, err);
    if (rc != 0) {
        store_writer_abort(&w);
        return -1;
    }
    return store_writer_commit(&w, err);
}

/* Reads every block of sf through io, block_io_slots of them in flight; the seconds it took. */
static int read_store(BlockIo *io, const StoreFile *sf, uint8_t *dst, uint64_t block, double *seconds, OwError *err) {
    int slots = block_io_slots(io), next = 0, done = 0;
    BlockIoTicket *tickets = ow_xcalloc((size_t)slots, sizeof *tickets);
    int rc = 0;
    double t0 = ow_now();
    while (done < sf->n_blocks && rc == 0) {
        for (; next < sf->n_blocks && next - done < slots; next++)
            tickets[next % slots] = block_io_submit(io, next, dst + (size_t)(next % slots) * block);
        rc = block_io_wait(io, tickets[done % slots], err);
        done++;
    }
    *seconds = ow_now() - t0;
    free(tickets);
    return rc; /* reads still in flight after a failure are settled by block_io_close */
}

/* The probe's store file and its lock file (store_file.h keeps "<path>.lock" beside a store). */
static void unlink_store(const char *path) {
    (void)unlink(path);
    char lock[4200];
    if (snprintf(lock, sizeof lock, "%s.lock", path) < (int)sizeof lock) (void)unlink(lock);
}

/* Opens the committed store at path, drops it from the page cache, unlinks it (the open
 * descriptors keep it readable; nothing is left behind from here on) and times its reads. */
static int read_back(const char *path, uint64_t block, ProbeResult *out, OwError *err) {
    StoreFile sf;
    if (store_file_open(&sf, path, PROBE_SOURCE_HASH, err) != 0) return unlink_store(path), -1;
    (void)posix_fadvise(sf.fd, 0, 0, POSIX_FADV_DONTNEED);
    BlockIo *io = NULL;
    int rc = block_io_open(&io, &sf, NULL, err);
    (void)unlink(path);
    uint8_t *dst = NULL;
    if (rc == 0) {
        dst = ow_try_malloc_touched((size_t)block_io_slots(io) * block, "probe: read buffers", err);
        rc = dst ? 0 : -1;
    }
    double seconds = 0;
    if (rc == 0 && (rc = read_store(io, &sf, dst, block, &seconds, err)) == 0) {
        out->disk_gbps = (double)sf.n_blocks * (double)block / 1e9 / seconds;
        out->disk_direct = block_io_direct(io);
        snprintf(out->disk_path, sizeof out->disk_path, "%s", block_io_path_name(block_io_path(io)));
    }
    block_io_close(io);
    free(dst);
    store_file_close(&sf);
    unlink_store(path); /* the lock file, released by the close */
    return rc;
}

static int probe_disk(const char *dir, size_t bytes, ProbeResult *out, OwError *err) {
    uint64_t block = bytes / PROBE_DISK_BLOCKS;
    block = block > PROBE_BLOCK_MAX ? PROBE_BLOCK_MAX : block;
    block = block < STORE_FILE_ALIGN ? STORE_FILE_ALIGN : block / STORE_FILE_ALIGN * STORE_FILE_ALIGN;
    int n = bytes / block > 1 ? (int)(bytes / block) : 1;
    remove_stale_probe_files(dir);
    uint8_t *src = ow_try_malloc(block + 8 * (size_t)n, "probe: store file contents", err);
    if (!src) return -1;
    fill_random(src, block + 8 * (size_t)n);
    char name[64];
    snprintf(name, sizeof name, PROBE_FILE_PREFIX "%ld.store", (long)getpid());
    char *path = ow_path_join(dir, name);
    int rc = write_store(path, n, block, src, err);
    free(src);
    if (rc == 0) rc = read_back(path, block, out, err);
    free(path);
    if (rc != 0) ow_fail_prefix(err, "measuring the store disk in %s", dir);
    return rc;
}

/* ---- the probe ---- */

void probe_device_label(const Backend *be, char *buf, size_t cap) {
    /* at most 16 + 2 + 72 bytes: fits ProbeResult.device (GPU names are a few words) */
    if (be->device_name[0] && strcmp(be->device_name, be->name) != 0)
        snprintf(buf, cap, "%.16s: %.72s", be->name, be->device_name);
    else
        snprintf(buf, cap, "%.16s", be->name);
}

int probe_run(Backend *be, const char *disk_dir, const ProbeOptions *opt, ProbeResult *out, OwError *err) {
    double t0 = ow_now();
    int dev = be->caps.device_memory;
    ProbeOptions o = opt ? *opt : (ProbeOptions){0};
    size_t copy_bytes = o.copy_bytes ? o.copy_bytes : dev ? (size_t)512 << 20 : (size_t)32 << 20;
    size_t disk_bytes = o.disk_bytes ? o.disk_bytes : dev ? (size_t)2 << 30 : (size_t)64 << 20;
    int64_t gemm_n = o.gemm_n > 0 ? o.gemm_n : dev ? 8192 : 256;
    OW_CHECKF(gemm_n <= INT32_MAX, "probe: GEMM n %lld", (long long)gemm_n);
    memset(out, 0, sizeof *out);
    probe_device_label(be, out->device, sizeof out->device);
    if (disk_dir && disk_dir[0]) {
        if (resolve_dir(disk_dir, out->disk_dir, sizeof out->disk_dir, err) != 0 ||
            probe_disk(out->disk_dir, disk_bytes, out, err) != 0)
            return -1;
    }
    if (probe_copies(be, copy_bytes, out, err) != 0 || probe_gemm(be, gemm_n, out, err) != 0)
        return ow_fail_prefix(err, "probe on %s", out->device);
    out->seconds = ow_now() - t0;
    return 0;
}

/* ---- the result as JSON ---- */

typedef enum { FIELD_STR, FIELD_RATE, FIELD_NUM, FIELD_BOOL, FIELD_INT } FieldType; /* RATE: > 0, NUM: >= 0 */

typedef struct {
    const char *key;
    FieldType type;
    size_t offset, size;
} Field;

#define FIELD(name, type) \
    { #name, type, offsetof(ProbeResult, name), sizeof(((ProbeResult *)0)->name) }
/* Every field but `cached` (which says where a result came from, not what was measured). */
static const Field k_fields[] = {
    FIELD(device, FIELD_STR),    FIELD(h2d_gbps, FIELD_RATE),    FIELD(d2h_gbps, FIELD_RATE),
    FIELD(disk_gbps, FIELD_NUM), FIELD(disk_direct, FIELD_BOOL), FIELD(disk_path, FIELD_STR),
    FIELD(disk_dir, FIELD_STR),  FIELD(gemm_tflops, FIELD_RATE), FIELD(gemm_dtype, FIELD_STR),
    FIELD(gemm_n, FIELD_INT),    FIELD(seconds, FIELD_RATE),
};
#define N_FIELDS ((int)(sizeof k_fields / sizeof k_fields[0]))

/* A double as JSON text that reads back to the same bits ("%.17g" in a raw item; cJSON's own
 * printing is only approximately round-trip), so cached figures are the measured ones exactly. */
static void add_exact_number(cJSON *o, const char *key, double v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", v);
    if (isfinite(v))
        cJSON_AddRawToObject(o, key, buf);
    else
        cJSON_AddNullToObject(o, key);
}

/* exact: numbers as add_exact_number (for printing only: raw items are no numbers to cJSON). */
static cJSON *fields_json(const ProbeResult *r, int exact) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < N_FIELDS; i++) {
        const Field *f = &k_fields[i];
        const char *p = (const char *)r + f->offset;
        switch (f->type) {
        case FIELD_STR: cJSON_AddStringToObject(o, f->key, p); break;
        case FIELD_RATE:
        case FIELD_NUM:
            if (exact)
                add_exact_number(o, f->key, *(const double *)p);
            else
                cJSON_AddNumberToObject(o, f->key, *(const double *)p);
            break;
        case FIELD_BOOL: cJSON_AddBoolToObject(o, f->key, *(const int *)p); break;
        case FIELD_INT: cJSON_AddNumberToObject(o, f->key, (double)*(const int64_t *)p); break;
        }
    }
    return o;
}

cJSON *probe_result_json(const ProbeResult *r) {
    cJSON *o = fields_json(r, 0);
    cJSON_AddBoolToObject(o, "cached", r->cached);
    return o;
}

/* A cache entry back into r: every field present, of its type, strings that fit, figures finite,
 * not negative, and the ones every probe measures positive. */
static int fields_from_json(const cJSON *o, ProbeResult *r, const char *where, OwError *err) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < N_FIELDS; i++) {
        const Field *f = &k_fields[i];
        char *p = (char *)r + f->offset;
        const char *s;
        double v = 0;
        int64_t n;
        switch (f->type) {
        case FIELD_STR:
            if (json_get_str(o, f->key, 1, &s, where, err) != 0) return -1;
            if (strlen(s) >= f->size) return ow_fail(err, "%s: \"%s\" is too long", where, f->key);
            memcpy(p, s, strlen(s) + 1);
            break;
        case FIELD_RATE:
        case FIELD_NUM:
            if (json_get_num(o, f->key, 1, &v, where, err) != 0) return -1;
            if (!isfinite(v) || v < 0 || (v == 0 && f->type == FIELD_RATE))
                return ow_fail(err, "%s: \"%s\" is %g, not a measured figure", where, f->key, v);
            *(double *)p = v;
            break;
        case FIELD_BOOL:
            if (json_get_bool(o, f->key, 1, (int *)p, where, err) != 0) return -1;
            break;
        case FIELD_INT:
            if (json_get_uint(o, f->key, 1, INT32_MAX, &n, where, err) != 0) return -1;
            *(int64_t *)p = n;
            break;
        }
    }
    return 0;
}

/* ---- the cache ---- */

int probe_cache_path(char *buf, size_t cap, OwError *err) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, cap, "%s/owlore/probe.json", xdg);
    else if (home && home[0])
        n = snprintf(buf, cap, "%s/.cache/owlore/probe.json", home);
    else
        return ow_fail(err, "no cache directory: neither XDG_CACHE_HOME (absolute) nor HOME is set");
    if (n < 0 || (size_t)n >= cap) return ow_fail(err, "the probe cache's path is over %zu bytes", cap - 1);
    return 0;
}

/* The cache's entries, parsed. */
typedef struct {
    ProbeResult *v;
    int n;
} ProbeCache;

static void cache_add(ProbeCache *c, const ProbeResult *r) {
    c->v = ow_xrealloc(c->v, (size_t)(c->n + 1) * sizeof *c->v);
    c->v[c->n++] = *r;
}

/* The valid entries of the cache file at path (none when there is no file); a file that
 * cannot be read, or an entry that does not parse, is left out with a warning. */
static void cache_load(const char *path, ProbeCache *c) {
    if (!ow_path_exists(path)) return;
    OwError e;
    cJSON *root = json_parse_file_max(path, PROBE_CACHE_MAX, &e);
    int64_t version = 0;
    const cJSON *list = root ? cJSON_GetObjectItemCaseSensitive(root, "entries") : NULL;
    if (!root || json_get_int(root, "version", 1, &version, path, &e) != 0 || !cJSON_IsArray(list)) {
        if (root && !cJSON_IsArray(list)) ow_fail(&e, "%s: \"entries\" is not an array", path);
        OW_WARN("ignoring the probe cache (%s): measuring again and rewriting it", e.msg);
    } else if (version != PROBE_CACHE_VERSION) {
        OW_INFO("%s: probe cache version %lld, this build's is %d: measuring again", path, (long long)version,
                PROBE_CACHE_VERSION);
    } else {
        int i = 0;
        for (const cJSON *it = list->child; it; it = it->next, i++) {
            char where[4200];
            snprintf(where, sizeof where, "%s: entry %d", path, i);
            ProbeResult r;
            if (fields_from_json(it, &r, where, &e) == 0)
                cache_add(c, &r);
            else
                OW_WARN("ignoring a probe cache entry (%s)", e.msg);
        }
    }
    cJSON_Delete(root);
}

/* The index of the entry of (device, disk_dir), or -1. */
static int cache_find(const ProbeCache *c, const char *device, const char *disk_dir) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->v[i].device, device) == 0 && strcmp(c->v[i].disk_dir, disk_dir) == 0) return i;
    return -1;
}

/* Puts r in the cache (in place of the entry of its key) and writes the file atomically. */
static int cache_save(const char *path, ProbeCache *c, const ProbeResult *r, OwError *err) {
    int old = cache_find(c, r->device, r->disk_dir);
    if (old >= 0)
        c->v[old] = *r;
    else
        cache_add(c, r);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "version", PROBE_CACHE_VERSION);
    cJSON *list = cJSON_AddArrayToObject(root, "entries");
    for (int i = 0; i < c->n; i++) cJSON_AddItemToArray(list, fields_json(&c->v[i], 1));
    char *dir = ow_path_dirname(path);
    int rc = ow_mkdir_p(dir, err) == 0 && json_write_file(path, root, err) == 0 ? 0 : -1;
    free(dir);
    cJSON_Delete(root);
    return rc;
}

int probe_get(Backend *be, const char *disk_dir, int refresh, ProbeResult *out, OwError *err) {
    char device[sizeof out->device], dir[sizeof out->disk_dir] = "", path[4096];
    probe_device_label(be, device, sizeof device);
    if (disk_dir && disk_dir[0] && resolve_dir(disk_dir, dir, sizeof dir, err) != 0) return -1;
    OwError e;
    int have_path = probe_cache_path(path, sizeof path, &e) == 0;
    if (!have_path) OW_WARN("%s: the probe's figures are not cached", e.msg);
    ProbeCache cache = {0};
    if (have_path) cache_load(path, &cache);
    int at = refresh ? -1 : cache_find(&cache, device, dir), rc = 0;
    if (at >= 0) {
        *out = cache.v[at];
        out->cached = 1;
    } else if ((rc = probe_run(be, disk_dir, NULL, out, err)) == 0 && have_path &&
               cache_save(path, &cache, out, &e) != 0) {
        OW_WARN("cannot save the probe's figures (%s); they are measured again next time", e.msg);
    }
    free(cache.v);
    return rc;
}

int probe_cached(const char *device_prefix, const char *disk_dir, ProbeResult *out) {
    char path[4096], dir[sizeof out->disk_dir] = "";
    OwError e;
    if (probe_cache_path(path, sizeof path, &e) != 0) return 0;
    if (disk_dir && disk_dir[0] && resolve_dir(disk_dir, dir, sizeof dir, &e) != 0) dir[0] = '\0';
    ProbeCache cache = {0};
    cache_load(path, &cache);
    int best = -1;
    for (int i = 0; i < cache.n; i++) {
        if (strncmp(cache.v[i].device, device_prefix, strlen(device_prefix)) != 0) continue;
        if (strcmp(cache.v[i].disk_dir, dir) == 0) { /* the directory asked for wins */
            best = i;
            break;
        }
        if (best < 0) best = i;
    }
    if (best >= 0) {
        *out = cache.v[best];
        out->cached = 1;
        if (strcmp(out->disk_dir, dir) != 0) { /* measured for another directory: no disk figure for this one */
            out->disk_gbps = 0;
            snprintf(out->disk_dir, sizeof out->disk_dir, "%s", dir);
        }
    }
    free(cache.v);
    return best >= 0;
}

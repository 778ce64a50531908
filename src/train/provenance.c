/* provenance.c: see provenance.h. */
#include "train/provenance.h"

#include "core/fileio.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Hashes a file, preceded by its name and followed by its length. The file is mapped through
 * ow_map_file, so it is checked like every other read (a regular file: a FIFO does not block). */
static int hash_file(Xxh64 *h, const char *path, const char *name, OwError *err) {
    MappedFile mf;
    if (ow_map_file(path, &mf, err) != 0) return -1;
    xxh64_update(h, name, strlen(name) + 1);
    if (mf.size) xxh64_update(h, mf.data, mf.size);
    uint64_t total = mf.size;
    xxh64_update(h, &total, sizeof total);
    ow_unmap_file(&mf);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void hex(uint64_t v, char out[PROV_DIGEST_CHARS]) {
    snprintf(out, PROV_DIGEST_CHARS, "%016llx", (unsigned long long)v);
}

static int model_digest(const char *dir, char out[PROV_DIGEST_CHARS], OwError *err) {
    DIR *d = opendir(dir);
    if (!d) return ow_fail(err, "%s: cannot list: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".safetensors") && strcmp(e->d_name, "config.json") != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            names = ow_xrealloc(names, (size_t)cap * sizeof *names);
        }
        names[n++] = ow_xstrdup(e->d_name);
    }
    closedir(d);
    if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_str);
    Xxh64 h;
    xxh64_init(&h, 0);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char *p = ow_path_join(dir, names[i]);
        if (rc == 0) rc = hash_file(&h, p, names[i], err);
        free(p);
        free(names[i]);
    }
    free(names);
    if (rc == 0) hex(xxh64_final(&h), out);
    return rc;
}

int provenance_compute(const char *model, const char *data, Provenance *p, OwError *err) {
    memset(p, 0, sizeof *p);
    if (ow_is_dir(model) && model_digest(model, p->base, err) != 0) return -1;
    if (data && data[0] && strcmp(data, "synthetic") != 0 && !ow_is_dir(data)) {
        Xxh64 h;
        xxh64_init(&h, 0);
        if (hash_file(&h, data, "", err) != 0) return -1;
        hex(xxh64_final(&h), p->data);
    }
    return 0;
}

void provenance_to_json(const Provenance *p, cJSON *config) {
    cJSON_AddStringToObject(config, "base_digest", p->base);
    cJSON_AddStringToObject(config, "data_digest", p->data);
}

/* The digests RUN_DIR/config.json recorded: 1 when present, 0 for a run written before them. */
static int recorded(const char *run_dir, Provenance *p, OwError *err) {
    memset(p, 0, sizeof *p);
    char *path = ow_path_join(run_dir, "config.json");
    cJSON *j = json_parse_file(path, err);
    int rc = j ? 0 : -1;
    const char *b = NULL, *d = NULL;
    if (rc == 0 && (json_get_str(j, "base_digest", 0, &b, path, err) != 0 ||
                    json_get_str(j, "data_digest", 0, &d, path, err) != 0))
        rc = -1;
    if (rc == 0 && b && d) {
        snprintf(p->base, sizeof p->base, "%s", b);
        snprintf(p->data, sizeof p->data, "%s", d);
        rc = 1;
    }
    cJSON_Delete(j);
    free(path);
    return rc;
}

static int compare(const char *run_dir, const char *what, const char *path, const char *was, const char *now,
                   OwError *err) {
    if (strcmp(was, now) == 0) return 0;
    return ow_fail(err,
                   "the %s %s changed since the run %s started (digest %s, the run recorded %s); the run cannot "
                   "continue or be used with it (hint: restore the original %s, or start a new run)",
                   what, path, run_dir, now[0] ? now : "none", was[0] ? was : "none", what);
}

static void warn_unrecorded(const char *run_dir) {
    OW_WARN("%s records no digest of its base model and data (written by an older owlore): they cannot be checked "
            "for changes",
            run_dir);
}

int provenance_for_run(const char *run_dir, const char *model, const char *data, int resume, Provenance *p,
                       OwError *err) {
    if (provenance_compute(model, data, p, err) != 0) return -1;
    if (!resume) return 0;
    Provenance was;
    int rc = recorded(run_dir, &was, err);
    if (rc < 0) return -1;
    if (rc == 0) {
        warn_unrecorded(run_dir);
        return 0;
    }
    if (compare(run_dir, "base model", model, was.base, p->base, err) != 0) return -1;
    return compare(run_dir, "data", data, was.data, p->data, err);
}

int provenance_check_base(const char *run_dir, const char *model, OwError *err) {
    Provenance was, now;
    int rc = recorded(run_dir, &was, err);
    if (rc < 0) return -1;
    if (rc == 0) {
        warn_unrecorded(run_dir);
        return 0;
    }
    if (provenance_compute(model, NULL, &now, err) != 0) return -1;
    return compare(run_dir, "base model", model, was.base, now.base, err);
}

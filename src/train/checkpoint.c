/* checkpoint.c: see checkpoint.h. */
#include "train/checkpoint.h"

#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "train/train_config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CKPT_FORMAT "owlore-checkpoint"
#define CKPT_VERSION 1
#define CKPT_ZSTD_LEVEL 1
#define TENSORS_FILE "tensors.owt"
#define STATE_FILE "state.json"
#define MANIFEST_FILE "manifest.json"
#define RUN_CONFIG_FILE "config.json"
#define METRICS_FILE "metrics.jsonl"

/* ---- small helpers ---- */

static int slow_save_ms(void) {
    const char *e = getenv("OWLORE_TEST_SLOW_SAVE_MS"); /* test hook, see checkpoint.h */
    return e ? atoi(e) : 0;
}

static void test_pause(int ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void hex64(uint64_t v, char out[17]) { snprintf(out, 17, "%016llx", (unsigned long long)v); }

static int parse_hex64(const char *s, uint64_t *out) {
    if (!s || strlen(s) != 16) return -1;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* "step-<digits>" exactly; the step into *step. */
static int parse_ckpt_name(const char *name, int64_t *step) {
    if (strncmp(name, "step-", 5) != 0 || !name[5]) return 0;
    int64_t v = 0;
    for (const char *c = name + 5; *c; c++) {
        if (*c < '0' || *c > '9' || v > INT64_MAX / 10 - 10) return 0;
        v = v * 10 + (*c - '0');
    }
    *step = v;
    return 1;
}

static int file_hash(const char *path, uint64_t *size, uint64_t *hash, OwError *err) {
    MappedFile mf;
    if (ow_map_file(path, &mf, err) != 0) return -1;
    *size = mf.size;
    *hash = xxh64(mf.data, mf.size, 0);
    ow_unmap_file(&mf);
    return 0;
}

static void manifest_add(cJSON *files, const char *name, uint64_t size, uint64_t hash) {
    char hx[17];
    hex64(hash, hx);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "name", name);
    cJSON_AddNumberToObject(f, "bytes", (double)size);
    cJSON_AddStringToObject(f, "xxh64", hx);
    cJSON_AddItemToArray(files, f);
}

/* Writes a JSON tree (pretty, newline-terminated) atomically; size and hash of the bytes. */
static int write_json(const char *path, const cJSON *root, uint64_t *size, uint64_t *hash, OwError *err) {
    size_t n;
    char *buf = json_print_text(root, &n);
    OW_CHECK(buf != NULL);
    *size = n;
    *hash = xxh64(buf, n, 0);
    int rc = ow_write_file_atomic(path, buf, n, err);
    free(buf);
    return rc;
}

/* Removes leftovers of interrupted saves and removals (*.tmp-*, *.del-*). */
static void remove_leftovers(const char *cdir) {
    DIR *d = opendir(cdir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strstr(e->d_name, ".tmp-") && !strstr(e->d_name, ".del-")) continue;
        char *p = ow_path_join(cdir, e->d_name);
        OwError ignored;
        if (ow_remove_tree(p, &ignored) != 0) OW_WARN("could not remove %s: %s", p, ignored.msg);
        free(p);
    }
    closedir(d);
}

/* Renames dir aside, then deletes it (never a half-deleted checkpoint under a valid name). */
static int discard_dir(const char *dir, OwError *err) {
    size_t n = strlen(dir) + 32;
    char *aside = ow_xmalloc(n);
    snprintf(aside, n, "%s.del-%ld", dir, (long)getpid());
    int rc = 0;
    if (rename(dir, aside) != 0)
        rc = ow_fail(err, "%s: cannot rename for removal: %s", dir, strerror(errno));
    else
        rc = ow_remove_tree(aside, err);
    free(aside);
    return rc;
}

/* ---- listing ---- */

typedef struct NamedStep {
    char *name;
    int64_t step;
} NamedStep;

static int cmp_step(const void *a, const void *b) {
    const NamedStep *x = a, *y = b;
    return (x->step > y->step) - (x->step < y->step);
}

int ckpt_list(const char *run_dir, char ***names, int *n, OwError *err) {
    *names = NULL;
    *n = 0;
    char *cdir = ow_path_join(run_dir, CKPT_SUBDIR);
    DIR *d = opendir(cdir);
    if (!d) {
        int e = errno;
        int rc = e == ENOENT ? 0 : ow_fail(err, "%s: cannot list: %s", cdir, strerror(e));
        free(cdir);
        return rc;
    }
    int cap = 0, cnt = 0;
    NamedStep *v = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t step;
        if (!parse_ckpt_name(e->d_name, &step)) continue;
        char *full = ow_path_join(cdir, e->d_name);
        int isdir = ow_is_dir(full);
        free(full);
        if (!isdir) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 8;
            v = ow_xrealloc(v, (size_t)cap * sizeof *v);
        }
        v[cnt++] = (NamedStep){ow_xstrdup(e->d_name), step};
    }
    closedir(d);
    free(cdir);
    if (cnt > 1) qsort(v, (size_t)cnt, sizeof *v, cmp_step);
    if (cnt) {
        *names = ow_xmalloc((size_t)cnt * sizeof(char *));
        for (int i = 0; i < cnt; i++) (*names)[i] = v[i].name;
    }
    free(v);
    *n = cnt;
    return 0;
}

void ckpt_names_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void rotate(const char *run_dir, int64_t keep) {
    char **names;
    int n;
    OwError err;
    if (ckpt_list(run_dir, &names, &n, &err) != 0) {
        OW_WARN("could not list old checkpoints: %s", err.msg);
        return;
    }
    char *cdir = ow_path_join(run_dir, CKPT_SUBDIR);
    for (int i = 0; i + keep < n; i++) {
        char *p = ow_path_join(cdir, names[i]);
        if (discard_dir(p, &err) != 0) OW_WARN("could not remove the old checkpoint %s: %s", p, err.msg);
        free(p);
    }
    free(cdir);
    ckpt_names_free(names, n);
}

/* ---- saving ---- */

static int save_tensors(const char *path, const CkptParts *parts, const CkptProgress *prog, int ms, uint64_t *size,
                        uint64_t *hash, OwError *err) {
    Model *m = parts->model;
    Optimizer *o = parts->opt;
    PackWriter w;
    if (pack_writer_open(&w, path, CKPT_ZSTD_LEVEL, err) != 0) return -1;
    char name[160];
    for (int i = 0; i < m->nparams; i++) {
        if (!parts->changed[i]) continue;
        Param *p = &m->params[i];
        size_t nb = tensor_nbytes(&p->w);
        void *buf = ow_try_malloc(nb, "checkpoint buffer", err);
        if (!buf) goto fail;
        int rc = model_param_download(m, p, buf, p->w.dtype, err);
        snprintf(name, sizeof name, "weights/%s", p->name);
        if (rc == 0) rc = pack_writer_add(&w, name, p->w.dtype, p->w.ndim, p->w.shape, buf, err);
        free(buf);
        if (rc != 0) goto fail;
        test_pause(ms);
    }
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        if (optimizer_state_home(o, p) == OPT_STATE_NONE) continue;
        Tensor mv, P;
        optimizer_state_shapes(o, p, &mv, &P);
        int has_P = o->st[i].galore && o->st[i].has_P;
        size_t nb = tensor_nbytes(&mv), pb = has_P ? tensor_nbytes(&P) : 0;
        float *bm = ow_try_malloc(nb, "checkpoint buffer", err),
              *bv = bm ? ow_try_malloc(nb, "checkpoint buffer", err) : NULL;
        float *bp = bv && pb ? ow_try_malloc(pb, "checkpoint buffer", err) : NULL;
        if (!bm || !bv || (pb && !bp)) {
            free(bm);
            free(bv);
            goto fail;
        }
        optimizer_state_read(o, p, bm, bv, bp);
        int rc;
        snprintf(name, sizeof name, "optim/%s/m", p->name);
        rc = pack_writer_add(&w, name, OW_F32, mv.ndim, mv.shape, bm, err);
        snprintf(name, sizeof name, "optim/%s/v", p->name);
        if (rc == 0) rc = pack_writer_add(&w, name, OW_F32, mv.ndim, mv.shape, bv, err);
        snprintf(name, sizeof name, "optim/%s/P", p->name);
        if (rc == 0 && pb) rc = pack_writer_add(&w, name, OW_F32, P.ndim, P.shape, bp, err);
        free(bm);
        free(bv);
        free(bp);
        if (rc != 0) goto fail;
        test_pause(ms);
    }
    int64_t shape[1] = {prog->step};
    if (pack_writer_add(&w, "trainer/step_seconds", OW_F64, 1, shape, prog->step_seconds, err) != 0) goto fail;
    return pack_writer_commit(&w, size, hash, err);
fail:
    pack_writer_abort(&w);
    return -1;
}

static cJSON *state_json(const CkptParts *parts, const CkptProgress *prog) {
    const Sampler *s = parts->sampler;
    const Model *m = parts->model;
    const Optimizer *o = parts->opt;
    char hx[17];
    cJSON *st = cJSON_CreateObject();
    cJSON_AddStringToObject(st, "format", CKPT_FORMAT "-state");
    cJSON_AddNumberToObject(st, "version", CKPT_VERSION);
    cJSON_AddNumberToObject(st, "step", (double)prog->step);
    cJSON_AddNumberToObject(st, "total_steps", (double)prog->total_steps);
    cJSON_AddNumberToObject(st, "tokens", prog->tokens);
    cJSON_AddNumberToObject(st, "elapsed_seconds", prog->elapsed);
    cJSON_AddNumberToObject(st, "refresh_seconds", prog->refresh_seconds);
    cJSON_AddNumberToObject(st, "refreshes", (double)prog->refreshes);
    cJSON_AddNumberToObject(st, "metrics_bytes", (double)prog->metrics_bytes);
    cJSON *b = cJSON_AddObjectToObject(st, "batcher");
    cJSON_AddNumberToObject(b, "epoch", (double)parts->batcher->epoch);
    cJSON_AddNumberToObject(b, "index", (double)parts->batcher->index);
    cJSON *sj = cJSON_AddObjectToObject(st, "sampler");
    cJSON_AddNumberToObject(sj, "num_layers", s->num_layers);
    cJSON_AddNumberToObject(sj, "gamma", s->gamma);
    cJSON_AddStringToObject(sj, "mode", sampling_mode_name(s->mode));
    hex64(s->rng.key, hx);
    cJSON_AddStringToObject(sj, "rng_key", hx);
    hex64(s->rng.counter, hx);
    cJSON_AddStringToObject(sj, "rng_counter", hx);
    cJSON_AddNumberToObject(sj, "period", (double)s->period);
    cJSON *act = cJSON_AddArrayToObject(sj, "active");
    for (int i = 0; i < s->nactive; i++) cJSON_AddItemToArray(act, cJSON_CreateNumber(s->active[i]));
    if (parts->ratios) {
        cJSON *r = cJSON_AddArrayToObject(sj, "ratios");
        for (int l = 0; l < s->num_layers; l++) cJSON_AddItemToArray(r, cJSON_CreateNumber(parts->ratios[l]));
    } else {
        cJSON_AddNullToObject(sj, "ratios");
    }
    cJSON *ps = cJSON_AddArrayToObject(st, "params");
    for (int i = 0; i < m->nparams; i++) {
        const Param *p = &m->params[i];
        const ParamState *q = &o->st[i];
        OptStateHome home = optimizer_state_home(o, p);
        cJSON *pj = cJSON_CreateObject();
        cJSON_AddStringToObject(pj, "name", p->name);
        cJSON_AddBoolToObject(pj, "changed", parts->changed[i]);
        cJSON_AddBoolToObject(pj, "trainable", p->trainable);
        cJSON_AddStringToObject(pj, "optim",
                                home == OPT_STATE_DEVICE ? "device"
                                : home == OPT_STATE_HOST ? "host"
                                                         : "none");
        cJSON_AddNumberToObject(pj, "step", (double)q->step);
        cJSON_AddNumberToObject(pj, "refreshes", (double)q->refreshes);
        cJSON_AddBoolToObject(pj, "has_P", q->galore && q->has_P);
        cJSON_AddItemToArray(ps, pj);
    }
    return st;
}

int ckpt_save(const char *run_dir, const CkptParts *parts, const CkptProgress *prog, int64_t keep, char *saved,
              size_t saved_cap, OwError *err) {
    int ms = slow_save_ms();
    char *cdir = ow_path_join(run_dir, CKPT_SUBDIR);
    if (ow_mkdir_p(cdir, err) != 0) {
        free(cdir);
        return -1;
    }
    remove_leftovers(cdir);
    char name[64], tmpname[96];
    snprintf(name, sizeof name, "step-%06lld", (long long)prog->step);
    snprintf(tmpname, sizeof tmpname, "%s.tmp-%ld", name, (long)getpid());
    char *tmp = ow_path_join(cdir, tmpname), *final = ow_path_join(cdir, name);
    char *tpath = ow_path_join(tmp, TENSORS_FILE), *spath = ow_path_join(tmp, STATE_FILE),
         *mpath = ow_path_join(tmp, MANIFEST_FILE);
    uint64_t tsize, thash, ssize, shash, msize, mhash;
    int rc = ow_mkdir_p(tmp, err);
    if (rc == 0) rc = save_tensors(tpath, parts, prog, ms, &tsize, &thash, err);
    test_pause(ms);
    if (rc == 0) {
        cJSON *st = state_json(parts, prog);
        char *cp = ow_path_join(run_dir, RUN_CONFIG_FILE);
        OwError ignored; /* a run without config.json (tests of the format) records none */
        cJSON *cfg = ow_path_exists(cp) ? json_parse_file(cp, &ignored) : NULL;
        free(cp);
        if (cfg) cJSON_AddItemToObject(st, "config", cfg);
        rc = write_json(spath, st, &ssize, &shash, err);
        cJSON_Delete(st);
    }
    test_pause(ms);
    if (rc == 0) {
        cJSON *man = cJSON_CreateObject();
        cJSON_AddStringToObject(man, "format", CKPT_FORMAT);
        cJSON_AddNumberToObject(man, "version", CKPT_VERSION);
        cJSON_AddNumberToObject(man, "step", (double)prog->step);
        cJSON *files = cJSON_AddArrayToObject(man, "files");
        manifest_add(files, TENSORS_FILE, tsize, thash);
        manifest_add(files, STATE_FILE, ssize, shash);
        rc = write_json(mpath, man, &msize, &mhash, err);
        cJSON_Delete(man);
    }
    test_pause(ms);
    /* into place: a checkpoint of the same step (a damaged one a fallback skipped) goes aside first */
    if (rc == 0) rc = ow_fsync_dir(tmp, err);
    if (rc == 0 && ow_path_exists(final)) rc = discard_dir(final, err);
    if (rc == 0 && rename(tmp, final) != 0)
        rc = ow_fail(err, "%s: cannot rename the checkpoint into place: %s", final, strerror(errno));
    if (rc == 0) rc = ow_fsync_dir(cdir, err);
    if (rc != 0) {
        OwError ignored;
        ow_remove_tree(tmp, &ignored);
        ow_fail_prefix(err, "saving the checkpoint of step %lld", (long long)prog->step);
    } else {
        snprintf(saved, saved_cap, "%s", final);
        rotate(run_dir, keep);
    }
    free(tpath);
    free(spath);
    free(mpath);
    free(tmp);
    free(final);
    free(cdir);
    return rc;
}

/* ---- opening ---- */

void ckpt_close(Checkpoint *ck) {
    free(ck->dir);
    free(ck->name);
    cJSON_Delete(ck->state);
    pack_close(&ck->pack);
    memset(ck, 0, sizeof *ck);
}

static int verify_file(const char *dir, const cJSON *f, OwError *err) {
    const char *name = NULL, *hx = NULL;
    int64_t bytes = 0;
    if (json_get_str(f, "name", 1, &name, "manifest.json: files", err) != 0 ||
        json_get_int(f, "bytes", 1, &bytes, "manifest.json: files", err) != 0 ||
        json_get_str(f, "xxh64", 1, &hx, "manifest.json: files", err) != 0)
        return -1;
    uint64_t want;
    if (!name[0] || strchr(name, '/') || strcmp(name, "..") == 0 || parse_hex64(hx, &want) != 0 || bytes < 0)
        return ow_fail(err, "manifest.json: bad entry for \"%s\"", name);
    char *p = ow_path_join(dir, name);
    struct stat sb;
    int rc = 0;
    if (stat(p, &sb) != 0) {
        rc = ow_fail(err, "%s is missing", name);
    } else if ((uint64_t)sb.st_size != (uint64_t)bytes) {
        rc = ow_fail(err, "%s has %lld bytes, the manifest says %lld (the file is truncated or damaged)", name,
                     (long long)sb.st_size, (long long)bytes);
    } else {
        uint64_t size, got;
        rc = file_hash(p, &size, &got, err);
        if (rc == 0 && got != want) {
            char gx[17];
            hex64(got, gx);
            rc = ow_fail(err, "%s: checksum mismatch (xxh64 %s, the manifest says %s): the file is corrupted", name, gx,
                         hx);
        }
    }
    free(p);
    return rc;
}

/* ---- semantic checks (the checksums only say the files are the ones saved) ---- */

static int need_tensor(const TensorPack *pack, const char *fmt, const char *param, OwError *err) {
    char name[200];
    snprintf(name, sizeof name, fmt, param);
    if (pack_find(pack, name)) return 0;
    return ow_fail(err, "%s: tensor %s is missing, but %s says it was saved", TENSORS_FILE, name, STATE_FILE);
}

/* state.json's format and version, and every tensor it implies present in tensors.owt. */
static int check_state(const cJSON *st, const TensorPack *pack, OwError *err) {
    const char *fmt = NULL;
    int64_t version = 0;
    if (json_get_str(st, "format", 1, &fmt, STATE_FILE, err) != 0 ||
        json_get_int(st, "version", 1, &version, STATE_FILE, err) != 0)
        return -1;
    if (strcmp(fmt, CKPT_FORMAT "-state") != 0 || version != CKPT_VERSION)
        return ow_fail(err, "%s: format \"%s\" version %lld, expected \"%s\" version %d", STATE_FILE, fmt,
                       (long long)version, CKPT_FORMAT "-state", CKPT_VERSION);
    if (need_tensor(pack, "%s", "trainer/step_seconds", err) != 0) return -1;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(st, "params");
    if (!cJSON_IsArray(ps)) return ow_fail(err, "%s: \"params\" must be an array", STATE_FILE);
    const cJSON *pj;
    cJSON_ArrayForEach(pj, ps) {
        const char *name = NULL, *home = NULL;
        int changed = 0, has_P = 0;
        if (json_get_str(pj, "name", 1, &name, STATE_FILE, err) ||
            json_get_bool(pj, "changed", 1, &changed, STATE_FILE, err) ||
            json_get_str(pj, "optim", 1, &home, STATE_FILE, err) ||
            json_get_bool(pj, "has_P", 1, &has_P, STATE_FILE, err))
            return -1;
        int opt = strcmp(home, "none") != 0;
        if ((changed && need_tensor(pack, "weights/%s", name, err) != 0) ||
            (opt &&
             (need_tensor(pack, "optim/%s/m", name, err) != 0 || need_tensor(pack, "optim/%s/v", name, err) != 0)) ||
            (opt && has_P && need_tensor(pack, "optim/%s/P", name, err) != 0))
            return -1;
    }
    return 0;
}

/* metrics.jsonl up to the checkpoint's length ends with the record of its step. */
static int check_metrics(const char *run_dir, const Checkpoint *ck, OwError *err) {
    int64_t mbytes = -1;
    if (json_get_int(ck->state, "metrics_bytes", 1, &mbytes, STATE_FILE, err) != 0) return -1;
    char *mp = ow_path_join(run_dir, METRICS_FILE), *text = NULL;
    size_t len = 0;
    struct stat st;
    int rc = stat(mp, &st) != 0 ? ow_fail(err,
                                          "%s: %s, but the checkpoint recorded %lld bytes of it (the run's history is "
                                          "lost; restore the file, or start the run again in a new directory)",
                                          mp, strerror(errno), (long long)mbytes)
                                : ow_read_file(mp, &text, &len, err);
    if (rc == 0 && (mbytes < 0 || (uint64_t)mbytes > len))
        rc = ow_fail(err, "%s: %zu bytes, shorter than the %lld the checkpoint recorded (the file was changed or lost)",
                     mp, len, (long long)mbytes);
    int64_t last = 0;
    if (rc == 0 && mbytes > 0 && text[mbytes - 1] != '\n')
        rc = ow_fail(err,
                     "%s: the checkpoint's length of it, %lld bytes, does not end a complete record (the file "
                     "was changed)",
                     mp, (long long)mbytes);
    /* the last training record before the checkpoint's length (evaluations have no "loss") */
    for (int64_t end = mbytes - 1; rc == 0 && end > 0 && !last;) {
        int64_t start = end;
        while (start > 0 && text[start - 1] != '\n') start--;
        cJSON *o = cJSON_ParseWithLength(text + start, (size_t)(end - start));
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "loss"), *s = cJSON_GetObjectItemCaseSensitive(o, "step");
        if (cJSON_IsNumber(l) && cJSON_IsNumber(s)) last = (int64_t)s->valuedouble;
        cJSON_Delete(o);
        end = start - 1;
    }
    if (rc == 0 && last != ck->step)
        rc = ow_fail(err,
                     "%s: the first %lld bytes the checkpoint recorded end with the record of step %lld, not %lld "
                     "(metrics_bytes or the file was changed)",
                     mp, (long long)mbytes, (long long)last, (long long)ck->step);
    free(text);
    free(mp);
    return rc;
}

/* A key of a run's config.json the checkpoint need not agree with: settings a resume may change, facts that
 * follow them, and out (the run directory as the last invocation named it). */
static int config_key_free(const char *key) {
    return train_config_resume_may_change(key) || strcmp(key, "backend") == 0 || strcmp(key, "data_tokens") == 0 ||
           strcmp(key, "out") == 0;
}

/* The first key (not free) whose value differs between the two objects, or NULL. */
static const char *config_diff(const cJSON *saved, const cJSON *now) {
    for (int pass = 0; pass < 2; pass++)
        for (const cJSON *it = (pass ? now : saved)->child; it; it = it->next) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(pass ? saved : now, it->string);
            if (!config_key_free(it->string) && (!o || !cJSON_Compare(it, o, 1))) return it->string;
        }
    return NULL;
}

/* RUN_DIR/config.json holds the settings the checkpoint was saved with (a checkpoint from before they were
 * recorded is taken as is). */
static int check_config(const char *run_dir, const Checkpoint *ck, OwError *err) {
    const cJSON *saved = cJSON_GetObjectItemCaseSensitive(ck->state, "config");
    if (!saved) return 0;
    char *cp = ow_path_join(run_dir, RUN_CONFIG_FILE);
    cJSON *now = json_parse_file(cp, err);
    int rc = now ? 0 : -1;
    const char *key = rc == 0 ? config_diff(saved, now) : NULL;
    if (key) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(now, key), *y = cJSON_GetObjectItemCaseSensitive(saved, key);
        char *xs = x ? cJSON_PrintUnformatted(x) : NULL, *ys = y ? cJSON_PrintUnformatted(y) : NULL;
        rc = ow_fail(err,
                     "%s: %s is %s, but %s was saved with %s (the file was edited; a resumed run keeps its settings: "
                     "restore the value)",
                     cp, key, xs ? xs : "absent", ck->name, ys ? ys : "none");
        cJSON_free(xs);
        cJSON_free(ys);
    }
    cJSON_Delete(now);
    free(cp);
    return rc;
}

int ckpt_open(const char *dir, Checkpoint *ck, OwError *err) {
    memset(ck, 0, sizeof *ck);
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    int64_t step = -1;
    if (!parse_ckpt_name(base, &step))
        return ow_fail(err, "%s: not a checkpoint directory (expected a name like step-000100)", dir);
    if (!ow_is_dir(dir)) return ow_fail(err, "checkpoint %s: no such directory", dir);
    char *mpath = ow_path_join(dir, MANIFEST_FILE);
    cJSON *man = NULL;
    int rc = 0;
    if (!ow_path_exists(mpath)) {
        rc = ow_fail(err, "manifest.json is missing (the checkpoint is incomplete)");
    } else {
        man = json_parse_file(mpath, err);
        if (!man) rc = -1;
    }
    free(mpath);
    const char *fmt = NULL;
    int64_t version = 0, mstep = -1;
    if (rc == 0 && (json_get_str(man, "format", 1, &fmt, "manifest.json", err) != 0 ||
                    json_get_int(man, "version", 1, &version, "manifest.json", err) != 0 ||
                    json_get_int(man, "step", 1, &mstep, "manifest.json", err) != 0))
        rc = -1;
    if (rc == 0 && (strcmp(fmt, CKPT_FORMAT) != 0 || version != CKPT_VERSION))
        rc = ow_fail(err, "manifest.json: format \"%s\" version %lld, expected \"%s\" version %d", fmt,
                     (long long)version, CKPT_FORMAT, CKPT_VERSION);
    if (rc == 0 && mstep != step)
        rc = ow_fail(err, "manifest.json: step %lld, but the directory is %s", (long long)mstep, base);
    const cJSON *files = rc == 0 ? cJSON_GetObjectItemCaseSensitive(man, "files") : NULL;
    if (rc == 0 && !cJSON_IsArray(files)) rc = ow_fail(err, "manifest.json: \"files\" must be an array");
    int has_state = 0, has_tensors = 0;
    const cJSON *f;
    if (rc == 0) {
        cJSON_ArrayForEach(f, files) {
            if ((rc = verify_file(dir, f, err)) != 0) break;
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(f, "name");
            has_state |= strcmp(nm->valuestring, STATE_FILE) == 0;
            has_tensors |= strcmp(nm->valuestring, TENSORS_FILE) == 0;
        }
    }
    if (rc == 0 && (!has_state || !has_tensors))
        rc = ow_fail(err, "manifest.json does not list %s and %s", STATE_FILE, TENSORS_FILE);
    cJSON_Delete(man);
    if (rc == 0) {
        char *sp = ow_path_join(dir, STATE_FILE);
        ck->state = json_parse_file(sp, err);
        free(sp);
        if (!ck->state) rc = -1;
    }
    if (rc == 0) {
        char *tp = ow_path_join(dir, TENSORS_FILE);
        rc = pack_open(tp, &ck->pack, err);
        free(tp);
    }
    int64_t sstep = -1;
    if (rc == 0 && json_get_int(ck->state, "step", 1, &sstep, STATE_FILE, err) != 0) rc = -1;
    if (rc == 0 && sstep != step)
        rc = ow_fail(err, "%s: step %lld, but the directory is %s", STATE_FILE, (long long)sstep, base);
    if (rc == 0) rc = check_state(ck->state, &ck->pack, err);
    if (rc != 0) {
        ckpt_close(ck);
        return ow_fail_prefix(err, "checkpoint %s is damaged", dir);
    }
    ck->dir = ow_xstrdup(dir);
    ck->name = ow_xstrdup(base);
    ck->step = step;
    return 0;
}

int ckpt_open_latest(const char *run_dir, int fallback, int resume, Checkpoint *ck, OwError *err) {
    memset(ck, 0, sizeof *ck);
    char **names;
    int n;
    if (ckpt_list(run_dir, &names, &n, err) != 0) return -1;
    if (n == 0) return 1;
    char *cdir = ow_path_join(run_dir, CKPT_SUBDIR);
    OwError first;
    first.msg[0] = '\0';
    int rc = -1;
    for (int i = n - 1; i >= 0; i--) {
        char *d = ow_path_join(cdir, names[i]);
        OwError e;
        int ok = ckpt_open(d, ck, &e) == 0;
        if (ok && resume && (check_metrics(run_dir, ck, &e) != 0 || check_config(run_dir, ck, &e) != 0)) {
            ow_fail_prefix(&e, "checkpoint %s does not match the run", d);
            ckpt_close(ck);
            ok = 0;
        }
        free(d);
        if (ok) {
            if (i != n - 1) OW_WARN("resuming from the previous good checkpoint %s (--resume-fallback)", names[i]);
            rc = 0;
            break;
        }
        if (!first.msg[0]) first = e;
        if (!fallback) {
            if (i > 0)
                ow_fail(err,
                        "%s (hint: --resume-fallback resumes from the previous good checkpoint, %s, if it is intact)",
                        e.msg, names[i - 1]);
            else
                ow_fail(err, "%s (there is no older checkpoint to fall back to; start the run again)", e.msg);
            break;
        }
        OW_WARN("%s", e.msg);
        if (i == 0) ow_fail(err, "no intact checkpoint in %s (the newest failed: %s)", cdir, first.msg);
    }
    free(cdir);
    ckpt_names_free(names, n);
    return rc;
}

/* ---- restoring ---- */

static int read_entry(const Checkpoint *ck, const char *name, DType dtype, int ndim, const int64_t *shape, void **out,
                      OwError *err) {
    *out = NULL;
    const PackEntry *e = pack_find(&ck->pack, name);
    if (!e) return ow_fail(err, "checkpoint %s: tensor %s is missing", ck->dir, name);
    int ok = e->dtype == dtype && e->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = e->shape[d] == shape[d];
    if (!ok)
        return ow_fail(err,
                       "checkpoint %s: tensor %s has another dtype or shape than the run's (the checkpoint "
                       "belongs to another model or settings)",
                       ck->dir, name);
    void *buf = ow_try_malloc(e->nbytes ? e->nbytes : 1, name, err);
    if (!buf) return -1;
    if (pack_read(&ck->pack, e, buf, err) != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

int ckpt_apply_weights(const Checkpoint *ck, Model *m, uint8_t *changed, OwError *err) {
    for (int i = 0; i < ck->pack.n; i++) {
        const PackEntry *e = &ck->pack.e[i];
        if (strncmp(e->name, "weights/", 8) != 0) continue;
        Param *p = model_find_param(m, e->name + 8);
        if (!p) return ow_fail(err, "checkpoint %s: tensor %s is not a parameter of the model", ck->dir, e->name + 8);
        if (!dtype_is_float(e->dtype))
            return ow_fail(err, "checkpoint %s: tensor %s is not a float tensor", ck->dir, e->name);
        void *buf;
        if (read_entry(ck, e->name, e->dtype, p->w.ndim, p->w.shape, &buf, err) != 0) return -1;
        int rc = model_param_upload(m, p, buf, e->dtype, err);
        free(buf);
        if (rc != 0) return -1;
        if (changed) changed[p - m->params] = 1;
    }
    return model_param_upload_flush(m, err);
}

int ckpt_ratios(const Checkpoint *ck, int num_layers, double *out, OwError *err) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(ck->state, "sampler");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "ratios");
    if (!r || cJSON_IsNull(r)) return 0;
    if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != num_layers)
        return ow_fail(err, "checkpoint %s: sampler.ratios must hold %d numbers", ck->dir, num_layers);
    for (int l = 0; l < num_layers; l++) {
        const cJSON *v = cJSON_GetArrayItem(r, l);
        if (!cJSON_IsNumber(v)) return ow_fail(err, "checkpoint %s: sampler.ratios[%d] is not a number", ck->dir, l);
        out[l] = v->valuedouble;
    }
    return 1;
}

int ckpt_restore_progress(const Checkpoint *ck, Sampler *s, Batcher *b, CkptProgress *prog, OwError *err) {
    const cJSON *st = ck->state;
    char where[600];
    snprintf(where, sizeof where, "%s/%s", ck->dir, STATE_FILE);
    int64_t total = 0, refreshes = 0, mbytes = 0, epoch = 0, index = 0, L = 0, gamma = 0, period = 0;
    double tokens = 0, elapsed = 0, rsec = 0;
    const cJSON *bj = cJSON_GetObjectItemCaseSensitive(st, "batcher"),
                *sj = cJSON_GetObjectItemCaseSensitive(st, "sampler");
    const char *key = NULL, *ctr = NULL;
    if (json_get_int(st, "total_steps", 1, &total, where, err) || json_get_num(st, "tokens", 1, &tokens, where, err) ||
        json_get_num(st, "elapsed_seconds", 1, &elapsed, where, err) ||
        json_get_num(st, "refresh_seconds", 1, &rsec, where, err) ||
        json_get_int(st, "refreshes", 1, &refreshes, where, err) ||
        json_get_int(st, "metrics_bytes", 1, &mbytes, where, err))
        return -1;
    if (!cJSON_IsObject(bj) || !cJSON_IsObject(sj))
        return ow_fail(err, "%s: \"batcher\" and \"sampler\" must be objects", where);
    if (json_get_int(bj, "epoch", 1, &epoch, where, err) || json_get_int(bj, "index", 1, &index, where, err) ||
        json_get_int(sj, "num_layers", 1, &L, where, err) || json_get_int(sj, "gamma", 1, &gamma, where, err) ||
        json_get_int(sj, "period", 1, &period, where, err) || json_get_str(sj, "rng_key", 1, &key, where, err) ||
        json_get_str(sj, "rng_counter", 1, &ctr, where, err))
        return -1;
    if (total != prog->total_steps)
        return ow_fail(err,
                       "%s: the checkpoint is from a run of %lld steps, the settings give %lld (hint: the step count "
                       "cannot change on resume)",
                       where, (long long)total, (long long)prog->total_steps);
    if (L != s->num_layers || gamma != s->gamma)
        return ow_fail(err, "%s: sampler of %lld blocks with gamma %lld, the run has %d and %d", where, (long long)L,
                       (long long)gamma, s->num_layers, s->gamma);
    if (epoch < 0 || index < 0 || index > b->ntrain || mbytes < 0 || period < -1)
        return ow_fail(err, "%s: position out of range (epoch %lld, index %lld, metrics_bytes %lld, period %lld)",
                       where, (long long)epoch, (long long)index, (long long)mbytes, (long long)period);
    Rng rng;
    if (parse_hex64(key, &rng.key) != 0 || parse_hex64(ctr, &rng.counter) != 0)
        return ow_fail(err, "%s: sampler rng_key and rng_counter must be 16 hex digits", where);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(sj, "active");
    int na = cJSON_IsArray(act) ? cJSON_GetArraySize(act) : -1;
    if (na < 0 || na > s->num_layers)
        return ow_fail(err, "%s: sampler.active must be an array of block numbers", where);
    int active[SAMPLER_MAX_LAYERS];
    for (int i = 0; i < na; i++) {
        const cJSON *v = cJSON_GetArrayItem(act, i);
        if (!cJSON_IsNumber(v) || v->valuedouble != (int)v->valuedouble || (int)v->valuedouble < 0 ||
            (int)v->valuedouble >= s->num_layers || (i && (int)v->valuedouble <= active[i - 1]))
            return ow_fail(err, "%s: sampler.active must list distinct blocks 0..%d in increasing order", where,
                           s->num_layers - 1);
        active[i] = (int)v->valuedouble;
    }
    /* step times */
    int64_t shape[1] = {ck->step};
    void *secs;
    if (read_entry(ck, "trainer/step_seconds", OW_F64, 1, shape, &secs, err) != 0) return -1;
    if (ck->step > prog->total_steps) {
        free(secs);
        return ow_fail(err, "%s: step %lld is beyond the run's %lld steps", where, (long long)ck->step,
                       (long long)total);
    }
    memcpy(prog->step_seconds, secs, (size_t)ck->step * sizeof(double));
    free(secs);
    s->rng = rng;
    s->period = period;
    s->nactive = na;
    memcpy(s->active, active, (size_t)na * sizeof(int));
    batcher_seek(b, epoch, index);
    prog->step = ck->step;
    prog->tokens = tokens;
    prog->elapsed = elapsed;
    prog->refresh_seconds = rsec;
    prog->refreshes = refreshes;
    prog->metrics_bytes = mbytes;
    return 0;
}

int ckpt_restore_optimizer(const Checkpoint *ck, Optimizer *o, OwError *err) {
    Model *m = o->model;
    char where[600];
    snprintf(where, sizeof where, "%s/%s", ck->dir, STATE_FILE);
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(ck->state, "params");
    if (!cJSON_IsArray(ps) || cJSON_GetArraySize(ps) != m->nparams)
        return ow_fail(err, "%s: \"params\" must list the model's %d parameters", where, m->nparams);
    const cJSON *pj;
    cJSON_ArrayForEach(pj, ps) {
        const char *name = NULL, *home_s = NULL;
        int trainable = 0, has_P = 0;
        int64_t step = 0, refreshes = 0;
        if (json_get_str(pj, "name", 1, &name, where, err) ||
            json_get_bool(pj, "trainable", 1, &trainable, where, err) ||
            json_get_str(pj, "optim", 1, &home_s, where, err) || json_get_int(pj, "step", 1, &step, where, err) ||
            json_get_int(pj, "refreshes", 1, &refreshes, where, err) ||
            json_get_bool(pj, "has_P", 1, &has_P, where, err))
            return -1;
        Param *p = model_find_param(m, name);
        if (!p) return ow_fail(err, "%s: parameter %s is not in the model", where, name);
        if (p->trainable != trainable)
            return ow_fail(err,
                           "%s: %s was %s at the checkpoint but is %s now (the checkpoint does not match the run's "
                           "settings)",
                           where, name, trainable ? "trainable" : "frozen", p->trainable ? "trainable" : "frozen");
        OptStateHome home = strcmp(home_s, "device") == 0 ? OPT_STATE_DEVICE
                            : strcmp(home_s, "host") == 0 ? OPT_STATE_HOST
                            : strcmp(home_s, "none") == 0 ? OPT_STATE_NONE
                                                          : (OptStateHome)-1;
        if ((int)home < 0) return ow_fail(err, "%s: %s: optim must be device, host or none", where, name);
        if (step < 0 || refreshes < 0) return ow_fail(err, "%s: %s: negative counters", where, name);
        float *bm = NULL, *bv = NULL, *bp = NULL;
        int rc = 0;
        if (home != OPT_STATE_NONE) {
            Tensor mv, P;
            optimizer_state_shapes(o, p, &mv, &P);
            char en[200];
            snprintf(en, sizeof en, "optim/%s/m", name);
            rc = read_entry(ck, en, OW_F32, mv.ndim, mv.shape, (void **)&bm, err);
            snprintf(en, sizeof en, "optim/%s/v", name);
            if (rc == 0) rc = read_entry(ck, en, OW_F32, mv.ndim, mv.shape, (void **)&bv, err);
            snprintf(en, sizeof en, "optim/%s/P", name);
            if (rc == 0 && has_P) rc = read_entry(ck, en, OW_F32, P.ndim, P.shape, (void **)&bp, err);
        }
        if (rc == 0) rc = optimizer_state_restore(o, p, home, step, refreshes, has_P, bm, bv, bp, err);
        free(bm);
        free(bv);
        free(bp);
        if (rc != 0) return ow_fail_prefix(err, "checkpoint %s", ck->dir);
    }
    return 0;
}

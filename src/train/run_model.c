/* run_model.c: see run_model.h. */
#include "train/run_model.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "model/preset.h"
#include "train/provenance.h"
#include "train/run_dir.h"
#include "train/train_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int run_dir_detect(const char *path) {
    char *p = ow_path_join(path, "config.json");
    OwError e;
    cJSON *j = ow_path_exists(p) ? json_parse_file(p, &e) : NULL;
    free(p);
    int is_run =
        j && cJSON_GetObjectItemCaseSensitive(j, "method") && !cJSON_GetObjectItemCaseSensitive(j, "model_type");
    cJSON_Delete(j);
    return is_run;
}

int run_open_checkpoint(const char *run_dir, const char *name, Checkpoint *ck, OwError *err) {
    if (name) {
        char *d = strchr(name, '/') ? ow_xstrdup(name) : NULL;
        if (!d) {
            char *cdir = ow_path_join(run_dir, CKPT_SUBDIR);
            d = ow_path_join(cdir, name);
            free(cdir);
        }
        int rc = ckpt_open(d, ck, err);
        free(d);
        return rc;
    }
    /* the newest; the hint names the one before it (train's --resume-fallback is not a flag here) */
    char **names;
    int n;
    if (ckpt_list(run_dir, &names, &n, err) != 0) return -1;
    if (n == 0)
        return ow_fail(err,
                       "%s has no checkpoint (hint: a run saves one at its end, every --save-every steps and on "
                       "SIGINT/SIGTERM)",
                       run_dir);
    char *cdir = ow_path_join(run_dir, CKPT_SUBDIR), *d = ow_path_join(cdir, names[n - 1]);
    int rc = ckpt_open(d, ck, err);
    if (rc != 0 && n > 1)
        ow_fail_suffix(err, "hint: --checkpoint %s uses the previous checkpoint, if it is intact", names[n - 2]);
    free(d);
    free(cdir);
    ckpt_names_free(names, n);
    return rc;
}

static int load_locked(Backend *be, const char *run_dir, const char *checkpoint, Model **out, char *base_dir,
                       size_t cap, OwError *err) {
    TrainConfig c;
    if (train_config_from_run(&c, run_dir, err) != 0) return -1;
    if (ow_is_dir(c.model) && provenance_check_base(run_dir, c.model, err) != 0) return -1;
    Checkpoint ck;
    if (run_open_checkpoint(run_dir, checkpoint, &ck, err) != 0) return -1;
    Model *m = NULL;
    int rc;
    if (ow_is_dir(c.model)) {
        rc = model_load_hf(be, c.model, &m, err);
        snprintf(base_dir, cap, "%s", c.model);
    } else {
        ModelConfig mc;
        char *src = NULL;
        int is_dir;
        rc = model_preset_resolve(c.model, &mc, &src, &is_dir, err);
        free(src);
        if (rc == 0) rc = model_create(be, &mc, &m, err);
        if (rc == 0) rc = model_init_random(m, (uint64_t)c.seed, c.init_std, err);
        base_dir[0] = '\0';
    }
    if (rc == 0) rc = ckpt_apply_weights(&ck, m, NULL, err);
    if (rc == 0) OW_INFO("%s: base model %s with the tensors of %s", run_dir, c.model, ck.name);
    ckpt_close(&ck);
    if (rc != 0) {
        model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int run_load_model(Backend *be, const char *run_dir, const char *checkpoint, Model **out, char *base_dir, size_t cap,
                   OwError *err) {
    *out = NULL;
    RunLock lk;
    if (run_lock_shared(run_dir, &lk, err) != 0) return -1;
    int rc = load_locked(be, run_dir, checkpoint, out, base_dir, cap, err);
    run_lock_release(&lk);
    return rc;
}

/* export.c: see export.h. */
#include "train/export.h"

#include "core/fileio.h"
#include "model/model_save.h"
#include "model/safetensors.h"
#include "model/tensor_names.h"
#include "train/provenance.h"
#include "train/run_dir.h"
#include "train/run_model.h"
#include "train/train_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ExportCtx {
    const ModelTensorSpec *specs;
    const SafeTensors *base;
    const Checkpoint *ck;
    DType dtype;
    const ModelConfig *cfg;
} ExportCtx;

static int fetch_tensor(void *vctx, int index, void *dst, size_t nbytes, OwError *err) {
    ExportCtx *c = vctx;
    const ModelTensorSpec *s = &c->specs[index];
    char key[160];
    snprintf(key, sizeof key, "weights/%s", s->name);
    int64_t numel = 1;
    for (int d = 0; d < s->ndim; d++) numel *= s->shape[d];
    OW_CHECK(nbytes == (size_t)numel * dtype_size(c->dtype));
    const PackEntry *e = pack_find(&c->ck->pack, key);
    if (e) {
        int ok = e->ndim == s->ndim && dtype_is_float(e->dtype);
        for (int d = 0; ok && d < s->ndim; d++) ok = e->shape[d] == s->shape[d];
        if (!ok)
            return ow_fail(err, "checkpoint %s: tensor %s does not have the model's shape or a float dtype", c->ck->dir,
                           s->name);
        void *buf = ow_try_malloc(e->nbytes, s->name, err);
        if (!buf) return -1;
        int rc = pack_read(&c->ck->pack, e, buf, err);
        if (rc == 0) dtype_convert(dst, c->dtype, buf, e->dtype, (size_t)numel);
        free(buf);
        return rc;
    }
    const StTensor *t = model_find_tensor(c->cfg, c->base, s->name);
    if (!t) return ow_fail(err, "the base model has no tensor %s", s->name);
    dtype_convert(dst, c->dtype, t->data, t->dtype, (size_t)numel);
    return 0;
}

/* The output directory is replaced: it must be new, empty, or a model directory, and not the run or its base. */
static int check_out_dir(const char *out, const char *run_dir, const char *base, OwError *err) {
    if (!ow_path_exists(out)) return 0;
    if (run_dir_same_path(out, run_dir) || run_dir_same_path(out, base))
        return ow_fail(err, "--out %s is the run or its base model; choose a new directory", out);
    if (!ow_is_dir(out)) return ow_fail(err, "--out %s exists and is not a directory", out);
    int entries = run_dir_entries(out);
    char *cfg = ow_path_join(out, "config.json");
    int is_model = ow_path_exists(cfg) && !run_dir_detect(out);
    free(cfg);
    if (entries > 0 && !is_model)
        return ow_fail(err,
                       "--out %s exists and is not a model directory; it would be replaced (hint: a new or empty "
                       "directory, or an earlier export)",
                       out);
    return 0;
}

static int export_locked(const char *run_dir, const char *out_dir, const ExportOptions *opt, char *used,
                         size_t used_cap, OwError *err) {
    TrainConfig c;
    if (train_config_from_run(&c, run_dir, err) != 0) return -1;
    if (!ow_is_dir(c.model))
        return ow_fail(err,
                       "%s: the run's model \"%s\" is not a model directory (a preset with random weights, or moved); "
                       "there is no base model to export (hint: `owlore eval --model %s` still evaluates it)",
                       run_dir, c.model, run_dir);
    if (check_out_dir(out_dir, run_dir, c.model, err) != 0 || provenance_check_base(run_dir, c.model, err) != 0)
        return -1;
    char *cpath = ow_path_join(c.model, "config.json");
    ModelConfig mc;
    int rc = model_config_load(cpath, &mc, err);
    free(cpath);
    if (rc != 0) return -1;
    SafeTensors base;
    if (safetensors_open(c.model, &base, err) != 0) return -1;
    if (model_check_tensors(&mc, &base, c.model, err) != 0) {
        safetensors_close(&base);
        return -1;
    }
    Checkpoint ck;
    if (run_open_checkpoint(run_dir, opt->checkpoint, &ck, err) != 0) {
        safetensors_close(&base);
        return -1;
    }
    int n;
    ModelTensorSpec *specs = model_expected_tensors(&mc, &n);
    ExportCtx ctx = {specs, &base, &ck, opt->dtype, &mc};
    StWriteTensor *ts = ow_xcalloc((size_t)n, sizeof *ts);
    for (int i = 0; i < n; i++) {
        ts[i].name = specs[i].name;
        ts[i].dtype = opt->dtype;
        ts[i].ndim = specs[i].ndim;
        for (int d = 0; d < specs[i].ndim; d++) ts[i].shape[d] = specs[i].shape[d];
        ts[i].fetch = fetch_tensor;
        ts[i].fetch_ctx = &ctx;
        ts[i].fetch_index = i;
    }
    /* every checkpoint tensor must land in the export */
    for (int i = 0; i < ck.pack.n; i++) {
        const char *nm = ck.pack.e[i].name;
        if (strncmp(nm, "weights/", 8) != 0) continue;
        int found = 0;
        for (int k = 0; k < n && !found; k++) found = strcmp(specs[k].name, nm + 8) == 0;
        if (!found) {
            rc = ow_fail(err, "checkpoint %s: tensor %s is not a parameter of the base model", ck.dir, nm + 8);
            break;
        }
    }
    if (rc == 0) rc = model_write_hf(&mc, ts, n, out_dir, opt->dtype, opt->shard_bytes, c.model, err);
    if (rc == 0 && used) snprintf(used, used_cap, "%s", ck.name);
    free(ts);
    free(specs);
    ckpt_close(&ck);
    safetensors_close(&base);
    return rc;
}

int export_run(const char *run_dir, const char *out_dir, const ExportOptions *opt, char *used, size_t used_cap,
               OwError *err) {
    if (opt->dtype != OW_F32 && opt->dtype != OW_BF16 && opt->dtype != OW_F16)
        return ow_fail(err, "export dtype must be fp32, bf16 or fp16");
    RunLock lk;
    if (run_lock_shared(run_dir, &lk, err) != 0) return -1;
    int rc = export_locked(run_dir, out_dir, opt, used, used_cap, err);
    run_lock_release(&lk);
    return rc;
}

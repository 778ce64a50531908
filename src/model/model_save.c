/* model_save.c: see model_save.h. */
#include "model/model_save.h"

#include "core/fileio.h"
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *k_tokenizer_files[] = {"tokenizer.json",  "tokenizer_config.json",  "special_tokens_map.json",
                                          "tokenizer.model", "generation_config.json", "added_tokens.json"};

int model_write_hf(const ModelConfig *cfg, const StWriteTensor *ts, int n, const char *dir, DType dtype,
                   size_t shard_bytes, const char *tokenizer_src, OwError *err) {
    return model_write_hf_files(cfg, ts, n, dir, dtype, shard_bytes, tokenizer_src, NULL, 0, err);
}

int model_write_hf_files(const ModelConfig *mcfg, const StWriteTensor *ts, int n, const char *dir, DType dtype,
                         size_t shard_bytes, const char *tokenizer_src, const HfFile *files, int nfiles, OwError *err) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", dir, (long)getpid());
    ow_remove_stale_tmp(dir); /* those of killed writers (a live one's stay) */
    if (ow_remove_tree(tmp, err) != 0 || ow_mkdir_p(tmp, err) != 0) return -1;
    int rc;
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");
    if (shard_bytes) {
        rc = safetensors_write_sharded(tmp, ts, n, shard_bytes, meta, err);
    } else {
        char *fp = ow_path_join(tmp, "model.safetensors");
        rc = safetensors_write(fp, ts, n, meta, err);
        free(fp);
    }
    cJSON_Delete(meta);
    if (rc != 0) goto done;
    ModelConfig cfg = *mcfg;
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "%s",
             dtype == OW_F32    ? "float32"
             : dtype == OW_BF16 ? "bfloat16"
                                : "float16");
    cJSON *cj = model_config_to_json(&cfg);
    char *cpath = ow_path_join(tmp, "config.json");
    rc = json_write_file(cpath, cj, err);
    free(cpath);
    cJSON_Delete(cj);
    if (rc != 0) goto done;
    if (tokenizer_src) {
        for (size_t k = 0; k < sizeof k_tokenizer_files / sizeof k_tokenizer_files[0]; k++) {
            char *src = ow_path_join(tokenizer_src, k_tokenizer_files[k]);
            if (ow_path_exists(src)) {
                char *dst = ow_path_join(tmp, k_tokenizer_files[k]);
                rc = ow_copy_file(src, dst, err);
                free(dst);
            }
            free(src);
            if (rc != 0) goto done;
        }
    }
    for (int k = 0; k < nfiles; k++) {
        char *dst = ow_path_join(tmp, files[k].name);
        rc = ow_write_file_atomic(dst, files[k].data, files[k].len, err);
        free(dst);
        if (rc != 0) goto done;
    }
    /* replace the target: remove an old one, rename the new one into place */
    if (ow_remove_tree(dir, err) != 0) {
        rc = -1;
        goto done;
    }
    if (rename(tmp, dir) != 0) {
        rc = ow_fail(err, "%s: cannot rename the finished model into place", dir);
        goto done;
    }
    {
        char *parent = ow_path_dirname(dir);
        rc = ow_fsync_dir(parent, err);
        free(parent);
    }
done:
    if (rc != 0) {
        OwError ignored;
        ow_remove_tree(tmp, &ignored);
    }
    return rc;
}

typedef struct SaveCtx {
    Model *m;
    DType dtype;
} SaveCtx;

static int fetch_param(void *ctx, int index, void *dst, size_t nbytes, OwError *err) {
    SaveCtx *c = ctx;
    Param *p = &c->m->params[index];
    OW_CHECK(nbytes == (size_t)tensor_numel(&p->w) * dtype_size(c->dtype));
    return model_param_download(c->m, p, dst, c->dtype, err);
}

int model_save_hf(Model *m, const char *dir, DType dtype, size_t shard_bytes, const char *tokenizer_src, OwError *err) {
    int n = m->nparams;
    StWriteTensor *ts = ow_xcalloc((size_t)n, sizeof *ts);
    SaveCtx ctx = {m, dtype};
    for (int i = 0; i < n; i++) {
        Param *p = &m->params[i];
        ts[i].name = p->name;
        ts[i].dtype = dtype;
        ts[i].ndim = p->w.ndim;
        memcpy(ts[i].shape, p->w.shape, sizeof ts[i].shape);
        ts[i].fetch = fetch_param;
        ts[i].fetch_ctx = &ctx;
        ts[i].fetch_index = i;
    }
    int rc = model_write_hf(&m->cfg, ts, n, dir, dtype, shard_bytes, tokenizer_src, err);
    free(ts);
    return rc;
}

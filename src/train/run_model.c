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

static int load_locked(Backend *be, const char *run_dir, const char *checkpoint, const BlockStoreConfig *placement,
                       Model **out, char *base_dir, size_t cap, OwError *err) {
    TrainConfig c;
    if (train_config_from_run(&c, run_dir, err) != 0) return -1;
    if (ow_is_dir(c.model) && provenance_check_base(run_dir, c.model, err) != 0) return -1;
    Checkpoint ck;
    if (run_open_checkpoint(run_dir, checkpoint, &ck, err) != 0) return -1;
    Model *m = NULL;
    int rc;
    if (ow_is_dir(c.model)) {
        rc = model_load_hf_placed(be, c.model, placement, &m, err);
        snprintf(base_dir, cap, "%s", c.model);
    } else {
        ModelConfig mc;
        char *src = NULL;
        int is_dir;
        rc = model_preset_resolve(c.model, &mc, &src, &is_dir, err);
        free(src);
        if (rc == 0) rc = model_create_placed(be, &mc, placement, &m, err);
        if (rc == 0) rc = model_init_random(m, (uint64_t)c.seed, c.init_std, err);
        base_dir[0] = '\0';
    }
    if (rc == 0) rc = model_seal(m, err);
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

int run_load_model(Backend *be, const char *run_dir, const char *checkpoint, const BlockStoreConfig *placement,
                   Model **out, char *base_dir, size_t cap, OwError *err) {
    *out = NULL;
    RunLock lk;
    if (run_lock_shared(run_dir, &lk, err) != 0) return -1;
    int rc = load_locked(be, run_dir, checkpoint, placement, out, base_dir, cap, err);
    run_lock_release(&lk);
    return rc;
}

int model_config_of(const char *path, ModelConfig *mc, OwError *err) {
    if (run_dir_detect(path)) {
        TrainConfig c;
        if (train_config_from_run(&c, path, err) != 0) return -1;
        return model_config_of(c.model, mc, err);
    }
    char *src = NULL;
    int is_dir;
    int rc = model_preset_resolve(path, mc, &src, &is_dir, err);
    free(src);
    return rc;
}

/* Headroom of a forward-only command's placement: its buffers are estimated, not laid out. */
#define FORWARD_MARGIN ((size_t)256 << 20)

/* --offload of a forward-only command: "auto", "none" or "host"; -1 naming the flag otherwise. */
static int forward_offload_mode(const char *s, OffloadPlaceMode *mode, OwError *err) {
    for (int i = 0; offload_mode_names[i]; i++)
        if (strcmp(s, offload_mode_names[i]) == 0 && i != OFFLOAD_MODE_NVME) {
            *mode = (OffloadPlaceMode)i;
            return 0;
        }
    return ow_fail(err, "--offload %s: allowed are auto, none and host", s);
}

/* Where a forward-only command keeps the blocks (see forward_model_load). */
typedef struct {
    BlockHome *homes; /* num_layers entries (heap) */
    BlockStoreConfig bc;
    int streaming;
} ForwardPlacement;

static int forward_placement(Backend *be, const ModelConfig *mc, size_t forward_bytes, OffloadPlaceMode mode,
                             ForwardPlacement *fp, OwError *err) {
    memset(fp, 0, sizeof *fp);
    int L = (int)mc->num_layers;
    fp->homes = ow_xcalloc((size_t)L, sizeof *fp->homes);
    size_t pw = dtype_size(be->param_dtype);
    size_t other =
        (size_t)(mc->vocab_size * mc->hidden_size * (mc->tie_word_embeddings ? 1 : 2) + mc->hidden_size) * pw;
    size_t used = be->mem.current_total + other + forward_bytes + FORWARD_MARGIN;
    size_t cap = be->caps.device_memory ? be->mem.cap : 0;
    OffloadRequest r = {.mode = mode,
                        .n_blocks = L,
                        .block_bytes = model_block_bytes(mc, be->param_dtype),
                        .pinned = 0,
                        .stream_slots = 3,
                        .device_room = cap == 0 ? SIZE_MAX : (cap > used ? cap - used : 0),
                        .host_room = offload_default_host_room(),
                        .have_disk = 0};
    OffloadPlacement p;
    if (offload_place(&r, fp->homes, &p, err) != 0) return -1;
    fp->streaming = p.streaming;
    fp->bc = (BlockStoreConfig){.homes = fp->homes, .stream_slots = p.stream_slots, .pin_slots = 0};
    if (p.streaming) {
        char where[256];
        offload_placement_format(&p, where, sizeof where);
        OW_INFO("blocks: %s (the device cannot hold them all)", where);
    }
    return 0;
}

/* &fp->bc when blocks stream, else NULL (every block a buffer of its own). */
static const BlockStoreConfig *forward_placement_config(const ForwardPlacement *fp) {
    return fp->streaming ? &fp->bc : NULL;
}

static void forward_placement_free(ForwardPlacement *fp) {
    free(fp->homes);
    fp->homes = NULL;
}

int forward_model_load(Backend *be, const char *path, int runs, const char *checkpoint, const char *offload,
                       const ModelConfig *mc, size_t forward_bytes, Model **out, char *base_dir, size_t cap,
                       OwError *err) {
    *out = NULL;
    OffloadPlaceMode mode = OFFLOAD_MODE_AUTO;
    ForwardPlacement fp;
    if (forward_offload_mode(offload, &mode, err) != 0 || forward_placement(be, mc, forward_bytes, mode, &fp, err) != 0)
        return -1;
    int rc;
    if (runs && run_dir_detect(path)) {
        rc = run_load_model(be, path, checkpoint, forward_placement_config(&fp), out, base_dir, cap, err);
    } else if (checkpoint) {
        rc = ow_fail(err, "--checkpoint needs --model RUN_DIR (a training run directory)");
    } else {
        rc = model_load_hf_placed(be, path, forward_placement_config(&fp), out, err);
        if (rc == 0) rc = model_seal(*out, err);
        snprintf(base_dir, cap, "%s", path);
    }
    forward_placement_free(&fp); /* the store keeps its own copy of the homes */
    if (rc != 0) {
        model_free(*out);
        *out = NULL;
    }
    return rc;
}

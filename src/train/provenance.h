/* provenance.h: what a run was trained from, so a resumed, exported or
 * evaluated run uses the same base model and data.
 *
 * RUN_DIR/config.json records "base_digest" (xxh64 over the base model
 * directory's config.json and every *.safetensors file, headers and tensor
 * bytes, in name order, each preceded by its name and length) and
 * "data_digest" (xxh64 over the --data file's bytes). A value is "" where
 * there is nothing to hash (a preset base with random weights, --data
 * synthetic). `train --resume` refuses a base or data that changed, `export`
 * and `eval --model RUN_DIR` a changed base, naming what changed and its
 * path. A run written before digests were recorded is accepted with a
 * warning. */
#ifndef OWLORE_TRAIN_PROVENANCE_H
#define OWLORE_TRAIN_PROVENANCE_H

#include "core/error.h"

#include <cjson/cJSON.h>

#define PROV_DIGEST_CHARS 17

typedef struct Provenance {
    char base[PROV_DIGEST_CHARS]; /* 16 hex digits, or "" */
    char data[PROV_DIGEST_CHARS];
} Provenance;

/* Digests of the model (a directory or a preset name) and data (a file or "synthetic"). */
int provenance_compute(const char *model, const char *data, Provenance *p, OwError *err);
/* Adds base_digest and data_digest to a run's config.json object. */
void provenance_to_json(const Provenance *p, cJSON *config);
/* Computes the digests and, for a resumed run (resume != 0), compares them
 * with the ones RUN_DIR/config.json recorded. */
int provenance_for_run(const char *run_dir, const char *model, const char *data, int resume, Provenance *p,
                       OwError *err);
/* The base model of a finished run (export, eval): model must be unchanged. */
int provenance_check_base(const char *run_dir, const char *model, OwError *err);

#endif

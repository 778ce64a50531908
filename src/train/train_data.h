/* train_data.h: the token data of a run, from whatever --data names.
 *
 *   - an owlore token file: read and verified (checksums, ids); refused when
 *     its tokenizer hash is set and differs from the model's tokenizer.json
 *     (loaded in the run's tokenizer_mode);
 *   - any dataset format (dataset.h) when the model has a tokenizer.json:
 *     tokenized with it and cached as a token file named
 *     data-<xxh64 of (tokenizer hash, source hash)>.bin; a later run with the
 *     same tokenizer, input bytes and data keys re-uses the file (the log
 *     says "reusing"), a corrupt or mismatching one is made again;
 *   - text read as bytes (ids 0..255) when the model has no tokenizer.json.
 * Every id is checked against the model's vocabulary before training.
 *
 * The cache directory (key data_cache): "" (default) $OWLORE_CACHE_DIR, else
 * $XDG_CACHE_HOME/owlore/data, else $HOME/.cache/owlore/data; "run": the run
 * directory; anything else: that directory. When it cannot be created the
 * run directory is used, and without one nothing is cached. */
#ifndef OWLORE_TRAIN_TRAIN_DATA_H
#define OWLORE_TRAIN_TRAIN_DATA_H

#include "data/dataset.h"
#include "data/tokfile.h"

/* train_load_data_with with the default data keys and cache, no run directory. */
int train_load_data(const char *path, const char *model_dir, int64_t vocab_size, TokData *out, OwError *err);

/* model_dir may be NULL (no tokenizer); cache as above; run_dir may be NULL.
 * *tokens_path (may be NULL) gets the token file used (heap; NULL when the
 * data was not cached or was read as bytes). */
int train_load_data_with(const char *path, const char *model_dir, int64_t vocab_size, const DataOptions *opt,
                         const char *cache, const char *run_dir, TokData *out, char **tokens_path, OwError *err);

/* The cache directory a data_cache value names (heap), NULL for none. */
char *train_data_cache_dir(const char *cache, const char *run_dir);

#endif

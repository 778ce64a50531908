/* batcher.h: turns token data into training and validation batches.
 * Packing (key `packing`):
 *   concat (the recipe's default): window w holds tokens [w*T, w*T + T] of
 *     the stream, inputs are its first T tokens and targets its last T (-100
 *     where the loss mask excludes a token). A sample longer than T + 1
 *     tokens is split across windows (and counted in n_long).
 *   pad: window w is document w alone (needs document offsets): inputs are
 *     its first T tokens, targets the next ones; positions past its end have
 *     input id 0 and target -100 (causal attention keeps them from affecting
 *     the sample's own positions). A document longer than T + 1 tokens is
 *     truncated (counted in n_long).
 * The last val_split of the windows is held out for validation. Each epoch
 * visits the training windows in an order drawn from the data stream of the
 * seed, so the whole position is (epoch, index) and a resumed run continues
 * exactly. */
#ifndef OWLORE_DATA_BATCHER_H
#define OWLORE_DATA_BATCHER_H

#include "data/tokfile.h"

typedef enum { PACKING_CONCAT = 0, PACKING_PAD = 1 } BatchPacking;

typedef struct Batcher {
    const TokData *data;
    BatchPacking packing;
    int64_t n_long; /* documents longer than T + 1 tokens (split or truncated) */
    int64_t B, T;
    int64_t ntrain, nval; /* windows */
    int64_t *order;       /* permutation of training windows for the current epoch */
    int64_t epoch, index; /* position */
    uint64_t seed;
    int shuffle;
} Batcher;

/* Concatenation packing (batcher_init_packing with PACKING_CONCAT). */
int batcher_init(Batcher *b, const TokData *data, int64_t B, int64_t T, double val_split, int shuffle, uint64_t seed,
                 const char *where, OwError *err);
int batcher_init_packing(Batcher *b, const TokData *data, BatchPacking packing, int64_t B, int64_t T, double val_split,
                         int shuffle, uint64_t seed, const char *where, OwError *err);
void batcher_free(Batcher *b);
/* Next training batch: ids, targets host I32 [B*T]. */
void batcher_next(Batcher *b, int32_t *ids, int32_t *targets);
/* Moves to a saved position. */
void batcher_seek(Batcher *b, int64_t epoch, int64_t index);
/* Validation batch k (windows k*B ...); rows past the end are padded with ignored targets.
 * Returns the number of real rows. */
int64_t batcher_val_batch(const Batcher *b, int64_t k, int32_t *ids, int32_t *targets);
int64_t batcher_val_batches(const Batcher *b);

#endif

/* batcher.h: turns token data into training and validation batches by
 * packing (concatenation, the recipe's default): window w holds tokens
 * [w*T, w*T + T] of the stream, inputs are its first T tokens and targets its
 * last T (-100 where the loss mask excludes a token). The last val_split of
 * the windows is held out for validation. Each epoch visits the training
 * windows in an order drawn from the data stream of the seed, so the whole
 * position is (epoch, index) and a resumed run continues exactly. */
#ifndef OWLORE_DATA_BATCHER_H
#define OWLORE_DATA_BATCHER_H

#include "data/tokfile.h"

typedef struct Batcher {
    const TokData *data;
    int64_t B, T;
    int64_t ntrain, nval;   /* windows */
    int64_t *order;         /* permutation of training windows for the current epoch */
    int64_t epoch, index;   /* position */
    uint64_t seed;
    int shuffle;
} Batcher;

int batcher_init(Batcher *b, const TokData *data, int64_t B, int64_t T, double val_split, int shuffle, uint64_t seed,
                 const char *where, OwError *err);
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

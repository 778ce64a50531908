/* batcher.c: see batcher.h. */
#include "data/batcher.h"

#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void make_order(Batcher *b) {
    for (int64_t i = 0; i < b->ntrain; i++) b->order[i] = i;
    if (!b->shuffle) return;
    Rng r;
    rng_init(&r, b->seed, RNG_STREAM_DATA);
    r.counter = (uint64_t)b->epoch << 40;
    for (int64_t i = b->ntrain - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1);
        int64_t t = b->order[i];
        b->order[i] = b->order[j];
        b->order[j] = t;
    }
}

int batcher_init(Batcher *b, const TokData *data, int64_t B, int64_t T, double val_split, int shuffle, uint64_t seed,
                 const char *where, OwError *err) {
    return batcher_init_packing(b, data, PACKING_CONCAT, B, T, val_split, shuffle, seed, where, err);
}

int batcher_init_packing(Batcher *b, const TokData *data, BatchPacking packing, int64_t B, int64_t T, double val_split,
                         int shuffle, uint64_t seed, const char *where, OwError *err) {
    memset(b, 0, sizeof *b);
    if (B <= 0 || T <= 0) return ow_fail(err, "batch size and block size must be positive");
    if (!(val_split >= 0 && val_split < 1)) return ow_fail(err, "val_split must be in [0, 1) (got %g)", val_split);
    if (packing == PACKING_PAD && (data->ndocs <= 0 || !data->doc_offsets))
        return ow_fail(err,
                       "%s: packing pad puts each sample in its own window, but this token data has no document "
                       "offsets (hint: --packing concat, or tokenize the dataset with owlore)",
                       where);
    int64_t nwin = packing == PACKING_PAD ? data->ndocs : data->count > 0 ? (data->count - 1) / T : 0;
    int64_t nval = (int64_t)ceil(val_split * (double)nwin);
    if (val_split > 0 && nval < 1) nval = 1;
    int64_t ntrain = nwin - nval;
    if (ntrain < 1) {
        if (packing == PACKING_PAD)
            return ow_fail(err,
                           "%s: %lld samples are too few for training with a validation split of %g (hint: more "
                           "data or a smaller --val-split)",
                           where, (long long)nwin, val_split);
        return ow_fail(err,
                       "%s: %lld tokens make %lld windows of %lld + 1 tokens, too few for training with a "
                       "validation split of %g (hint: more data, a smaller --block-size or --val-split)",
                       where, (long long)data->count, (long long)nwin, (long long)T, val_split);
    }
    for (int64_t d = 0; d < data->ndocs && data->doc_offsets; d++)
        b->n_long += (int64_t)(data->doc_offsets[d + 1] - data->doc_offsets[d]) > T + 1;
    b->packing = packing;
    b->data = data;
    b->B = B;
    b->T = T;
    b->ntrain = ntrain;
    b->nval = nval;
    b->seed = seed;
    b->shuffle = shuffle;
    b->order = ow_xmalloc((size_t)ntrain * sizeof(int64_t));
    make_order(b);
    return 0;
}

void batcher_free(Batcher *b) {
    free(b->order);
    memset(b, 0, sizeof *b);
}

void batcher_seek(Batcher *b, int64_t epoch, int64_t index) {
    b->epoch = epoch;
    b->index = index;
    make_order(b);
}

static void fill_window(const Batcher *b, int64_t w, int32_t *ids, int32_t *targets) {
    const TokData *d = b->data;
    int64_t T = b->T;
    if (b->packing == PACKING_PAD) {
        int64_t start = (int64_t)d->doc_offsets[w], n = (int64_t)d->doc_offsets[w + 1] - start;
        for (int64_t i = 0; i < T; i++) {
            int64_t t = start + i + 1;
            ids[i] = i < n ? tokdata_id(d, start + i) : 0;
            targets[i] = i + 1 < n && !(d->mask && !d->mask[t]) ? tokdata_id(d, t) : -100;
        }
        return;
    }
    int64_t base = w * T;
    for (int64_t i = 0; i < T; i++) {
        ids[i] = tokdata_id(d, base + i);
        int64_t t = base + i + 1;
        targets[i] = (d->mask && !d->mask[t]) ? -100 : tokdata_id(d, t);
    }
}

void batcher_next(Batcher *b, int32_t *ids, int32_t *targets) {
    for (int64_t r = 0; r < b->B; r++) {
        if (b->index >= b->ntrain) {
            b->epoch++;
            b->index = 0;
            make_order(b);
        }
        fill_window(b, b->order[b->index++], ids + r * b->T, targets + r * b->T);
    }
}

int64_t batcher_val_batches(const Batcher *b) { return (b->nval + b->B - 1) / b->B; }

int64_t batcher_val_batch(const Batcher *b, int64_t k, int32_t *ids, int32_t *targets) {
    int64_t real = 0;
    for (int64_t r = 0; r < b->B; r++) {
        int64_t v = k * b->B + r;
        if (v < b->nval) {
            fill_window(b, b->ntrain + v, ids + r * b->T, targets + r * b->T);
            real++;
        } else {
            fill_window(b, b->ntrain, ids + r * b->T, targets + r * b->T);
            for (int64_t i = 0; i < b->T; i++) targets[r * b->T + i] = -100;
        }
    }
    return real;
}

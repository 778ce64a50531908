/* tensor_pack.h: a file of zstd-compressed tensors, the tensor part of a
 * checkpoint.
 *
 * Layout (little-endian):
 *   "OWTPACK1"                      8-byte magic
 *   frame 0, frame 1, ...           one zstd frame per tensor (content size
 *                                   and xxh64 content checksum in the frame)
 *   directory                       JSON {"tensors": [{"name", "dtype",
 *                                   "shape", "offset", "csize"}, ...]};
 *                                   offset counts from the start of the file
 *   u64 directory length, "OWTPEND1"
 * The directory comes last so the writer streams: one tensor is in memory at
 * a time, compressed in chunks. Any tensor can be read on its own (export
 * picks tensors in its own order). The reader validates everything before
 * use: magic and trailer, a well-formed directory, unique names, known
 * dtypes, frames inside the data area in file order without overlap, and on
 * read the frame's declared size and checksum. Every message names the file
 * and the tensor. */
#ifndef OWLORE_TRAIN_TENSOR_PACK_H
#define OWLORE_TRAIN_TENSOR_PACK_H

#include "core/error.h"
#include "core/fileio.h"
#include "core/hash.h"
#include "core/tensor.h"

#include <cjson/cJSON.h>

typedef struct PackWriter {
    AtomicFile af;
    cJSON *dir;   /* the directory being built */
    uint64_t off; /* bytes written so far */
    void *cctx;   /* ZSTD_CCtx */
    void *out;    /* compressed chunk buffer */
    size_t out_cap;
    Xxh64 hash; /* of every byte written */
} PackWriter;

/* Creates path (atomically: it appears only on commit). level: zstd level. */
int pack_writer_open(PackWriter *w, const char *path, int level, OwError *err);
/* Appends one tensor: numel(shape) * dtype_size(dtype) bytes of data. */
int pack_writer_add(PackWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, const void *data,
                    OwError *err);
/* Writes the directory, fsyncs and renames into place; frees w either way.
 * *size and *xxh64 (seed 0) get the file's length and checksum. */
int pack_writer_commit(PackWriter *w, uint64_t *size, uint64_t *xxh64, OwError *err);
/* Discards the file; frees w. Safe after commit. */
void pack_writer_abort(PackWriter *w);

typedef struct PackEntry {
    char *name;
    DType dtype;
    int ndim;
    int64_t shape[OW_MAX_DIMS];
    size_t nbytes; /* uncompressed */
    uint64_t offset, csize;
} PackEntry;

typedef struct TensorPack {
    MappedFile map;
    int n;
    PackEntry *e; /* file order */
} TensorPack;

int pack_open(const char *path, TensorPack *p, OwError *err);
/* NULL when absent. */
const PackEntry *pack_find(const TensorPack *p, const char *name);
/* Decompresses an entry into dst (e->nbytes bytes), checking size and checksum. */
int pack_read(const TensorPack *p, const PackEntry *e, void *dst, OwError *err);
void pack_close(TensorPack *p);

#endif

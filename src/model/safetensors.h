/* safetensors.h: reading and writing the safetensors format.
 *
 * Reading maps the file(s) read-only and validates the header strictly: the
 * 8-byte length is within the file, the header is one JSON object, every
 * tensor has a known dtype, a shape whose element count times the dtype size
 * equals its byte length, offsets inside the data section, no two tensors
 * overlapping, and (as the format requires) the data section fully covered.
 * A sharded model (model.safetensors.index.json) opens every shard and checks
 * the index against them. `__metadata__` entries whose value is the name of a
 * stored tensor are aliases (tied weights: TinyStories-656K stores only
 * lm_head.weight and aliases model.embed_tokens.weight to it).
 *
 * Writing is atomic (temporary, fsync, rename) and deterministic: the header
 * lists __metadata__ first, then tensors in the order given, with data laid
 * out in that order; the header is padded with spaces to a multiple of 8. */
#ifndef OWLORE_MODEL_SAFETENSORS_H
#define OWLORE_MODEL_SAFETENSORS_H

#include "core/error.h"
#include "core/fileio.h"
#include "core/tensor.h"

#include <cjson/cJSON.h>

typedef struct StTensor {
    char *name;
    DType dtype;
    int ndim; /* 0 for a scalar */
    int64_t shape[OW_MAX_DIMS];
    const void *data; /* into the mapping; valid until safetensors_close */
    size_t nbytes;
    int file; /* index into SafeTensors.files */
} StTensor;

typedef struct SafeTensors {
    int nfiles;
    MappedFile *files;
    int ntensors;
    StTensor *tensors;
    int naliases;
    char **alias_names;   /* alias_names[i] resolves to alias_targets[i] */
    char **alias_targets;
    cJSON *metadata; /* __metadata__ of the first file (string -> string), or NULL */
} SafeTensors;

/* `path` is a .safetensors file, a model.safetensors.index.json, or a directory
 * holding model.safetensors or model.safetensors.index.json. */
int safetensors_open(const char *path, SafeTensors *st, OwError *err);
/* Finds a tensor by name, following aliases. NULL when absent. */
const StTensor *safetensors_find(const SafeTensors *st, const char *name);
void safetensors_close(SafeTensors *st);

typedef struct StWriteTensor {
    const char *name;
    DType dtype;
    int ndim;
    int64_t shape[OW_MAX_DIMS];
    const void *data; /* host memory, numel * dtype size bytes */
} StWriteTensor;

/* One file. `metadata` (may be NULL) is an object of string values. */
int safetensors_write(const char *path, const StWriteTensor *tensors, int n, const cJSON *metadata, OwError *err);
/* Shards of at most shard_bytes of tensor data (a larger single tensor gets a
 * shard of its own) named "<dir>/model-00001-of-0000N.safetensors" plus
 * "<dir>/model.safetensors.index.json"; a single shard is written as
 * "<dir>/model.safetensors" with no index. */
int safetensors_write_sharded(const char *dir, const StWriteTensor *tensors, int n, size_t shard_bytes,
                              const cJSON *metadata, OwError *err);

#endif

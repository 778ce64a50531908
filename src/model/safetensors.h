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
 * Details: tensors with a zero dimension (0 bytes) and 0-d scalars are valid;
 * unknown keys inside a tensor entry are ignored; duplicate names, more than
 * OW_MAX_DIMS dimensions, numbers that are not exact non-negative integers
 * (or exceed 2^53) are errors; every message names the file and the tensor.
 * st->tensors is in file order (shards sorted by name), header order within
 * a file. For a sharded model every weight_map entry must name an existing
 * shard (a plain file name in the index's directory) that holds the tensor
 * (or an alias of it), every stored tensor must be listed, and no tensor may
 * be in two shards; aliases come from the __metadata__ of any shard.
 *
 * Writing is atomic (temporary, fsync, rename) and deterministic: the header
 * lists __metadata__ first, then tensors in the order given, with data laid
 * out in that order; the header is padded with spaces to a multiple of 8.
 *
 * Byte compatibility with the Hugging Face `safetensors` library (checked
 * against safetensors 0.8.0, save_file of torch and numpy): its header is
 * compact JSON ({"__metadata__":{...},"name":{"dtype":..,"shape":[..],
 * "data_offsets":[b,e]},...}), strings escaped as serde_json does (", \,
 * control characters; other bytes raw), padded with spaces so that its length
 * is a multiple of 8, with tensors ordered by dtype (I64, F32, I32, BF16, F16,
 * U8, i.e. its Dtype enum descending) then by name (bytewise), data in header
 * order. safetensors_sort_hf() puts tensors in that order, after which
 * safetensors_write produces the same bytes as save_file for the same
 * tensors, provided the metadata has at most one key: save_file orders
 * metadata keys by a randomly seeded hash, so with several keys no fixed order
 * can match it every time (the order given here is kept). */
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
    char **alias_names; /* alias_names[i] resolves to alias_targets[i] */
    char **alias_targets;
    cJSON *metadata; /* __metadata__ of the first file (string -> string), or NULL */
    int *by_name;    /* tensor indices sorted by name (for safetensors_find) */
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
    /* Instead of data (data NULL): the writer calls fetch when it reaches the
     * tensor, into a buffer of nbytes it owns and frees right after, so only
     * one tensor is in host memory at a time (exports of large models). */
    int (*fetch)(void *ctx, int index, void *dst, size_t nbytes, OwError *err);
    void *fetch_ctx;
    int fetch_index; /* passed to fetch */
} StWriteTensor;

/* Orders tensors the way the HF safetensors library does (see above). */
void safetensors_sort_hf(StWriteTensor *tensors, int n);
/* The tensors of an open file, in its stored order, as a write list pointing
 * into the mapping (heap array of st->ntensors; valid until safetensors_close). */
StWriteTensor *safetensors_write_list(const SafeTensors *st);
int64_t st_tensor_numel(const StTensor *t);

/* One file. `metadata` (may be NULL) is an object of string values; NULL
 * writes no __metadata__, an empty object writes "__metadata__":{}. */
int safetensors_write(const char *path, const StWriteTensor *tensors, int n, const cJSON *metadata, OwError *err);
/* Shards of at most shard_bytes of tensor data (a larger single tensor gets a
 * shard of its own) named "<dir>/model-00001-of-0000N.safetensors" plus
 * "<dir>/model.safetensors.index.json"; a single shard is written as
 * "<dir>/model.safetensors" with no index. Tensors are assigned as
 * huggingface_hub's split_state_dict_into_shards does: in the given order, a
 * shard is closed when the next tensor would overflow it, and a tensor larger
 * than shard_bytes is placed at once in a shard of its own (so it may come
 * before the shard being filled). Every shard carries `metadata`. The index is
 * written last (it is the commit point) as transformers writes it:
 * json.dumps(indent=2, sort_keys=True) + "\n" of {"metadata": {"total_parameters":
 * elements, "total_size": bytes}, "weight_map": {name: shard}}. The directory
 * must exist; shards of an earlier, different write are not removed. */
int safetensors_write_sharded(const char *dir, const StWriteTensor *tensors, int n, size_t shard_bytes,
                              const cJSON *metadata, OwError *err);

#endif

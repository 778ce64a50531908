/* gguf_model.h: a LLaMA-family GGUF file as a Hugging Face model, the way
 * transformers' GGUF loading (load_gguf_checkpoint) builds it.
 *
 * Config: general.architecture must be "llama" (Mistral files use it too);
 * hidden, layers, heads, kv heads, intermediate, rms eps, rope theta, context
 * length, head_dim (rope.dimension_count) from the llama.* keys, vocab from
 * llama.vocab_size or the token list, bos/eos from tokenizer.ggml.*, tied
 * embeddings when there is no output.weight. Rope scaling is refused
 * (transformers' conversion drops it, so no faithful output exists).
 * Tensors: llama.cpp names to HF names (blk.N.attn_q -> model.layers.N.
 * self_attn.q_proj, ...), shapes reversed (GGUF's ne[0] is the fastest
 * dimension), every one checked against the config; an unknown or missing
 * tensor is an error naming it. Data: dequantised to F32 (bit-identical to
 * gguf-py), with llama.cpp's Q/K row permutation undone (q with n_head, k
 * with n_kv_head), then written as F32 or BF16 (round to nearest even). */
#ifndef OWLORE_MODEL_GGUF_MODEL_H
#define OWLORE_MODEL_GGUF_MODEL_H

#include "core/dtype.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/safetensors.h"

typedef struct GgufModel {
    Gguf g;
    ModelConfig cfg;
    DType dtype; /* of the written tensors: OW_F32 or OW_BF16 */
    int ntensors;
    StWriteTensor *tensors; /* HF names and shapes, data fetched (dequantised) on demand */
    char **names;           /* owned HF names (tensors[i].name) */
    const GgufTensor **src; /* the GGUF tensor of each */
    int *permute_heads;     /* rows to un-permute in groups of this many heads (0: none) */
    /* optional: called after each tensor is fetched (progress) */
    void (*progress)(void *ctx, int done, int total, const char *name);
    void *progress_ctx;
    int fetched;
} GgufModel;

/* Opens and validates the file, builds the config and the tensor list. */
int gguf_model_open(const char *path, DType dtype, GgufModel *m, OwError *err);
void gguf_model_close(GgufModel *m);
/* The config alone (from an open file). */
int gguf_model_config(const Gguf *g, ModelConfig *cfg, OwError *err);
/* Tensor i dequantised and un-permuted into dst (numel floats). */
int gguf_model_tensor_f32(const GgufModel *m, int i, float *dst, OwError *err);

#endif

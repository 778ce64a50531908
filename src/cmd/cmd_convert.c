/* cmd_convert.c: `owlore convert --from-gguf FILE --out DIR`: a LLaMA-family
 * GGUF file (llama.cpp) as a Hugging Face directory, as transformers' own
 * GGUF loading builds it: config.json, model.safetensors (dequantised to F32
 * or BF16, Q/K permutation undone), tokenizer files rebuilt from the GGUF's
 * vocabulary. The directory is written under a temporary name and renamed
 * into place (model_write_hf_files); an existing non-empty DIR is refused
 * unless --overwrite-out. */
#include "cmd/commands.h"

#include "core/args.h"
#include "core/fileio.h"
#include "core/log.h"
#include "data/tokenizer_gguf.h"
#include "model/gguf_model.h"
#include "model/gguf_quant.h"
#include "model/model_save.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 1 when path exists and is not an empty directory. */
static int occupied(const char *path) {
    if (!ow_path_exists(path)) return 0;
    if (!ow_is_dir(path)) return 1;
    DIR *d = opendir(path);
    if (!d) return 1;
    int any = 0;
    const struct dirent *e;
    while (!any && (e = readdir(d)) != NULL) any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return any;
}

static void print_read(const GgufModel *m) {
    const ModelConfig *c = &m->cfg;
    printf("read %s: GGUF v%u, architecture llama, %d tensors\n", m->g.file.path, m->g.version, m->g.ntensors);
    printf("  %lld blocks, hidden %lld, heads %lld (kv %lld, head_dim %lld), intermediate %lld, vocab %lld, "
           "context %lld, rope theta %g, rms eps %g, %s embeddings, %.1fM parameters\n",
           (long long)c->num_layers, (long long)c->hidden_size, (long long)c->num_heads, (long long)c->num_kv_heads,
           (long long)c->head_dim, (long long)c->intermediate_size, (long long)c->vocab_size,
           (long long)c->max_position_embeddings, c->rope_theta, c->rms_norm_eps,
           c->tie_word_embeddings ? "tied" : "untied", (double)model_config_param_count(c) / 1e6);
    printf("  tensor types:");
    for (uint32_t type = 0; type < 64; type++) {
        int count = 0;
        for (int i = 0; i < m->g.ntensors; i++) count += m->g.tensors[i].type == type;
        char nb[32];
        if (count) printf(" %s %d", ggml_type_name(type, nb, sizeof nb), count);
    }
    printf("\n");
}

/* About every 5% of the tensors (each one on a terminal, where the line is overwritten). */
static void progress(void *ctx, int done, int total, const char *name) {
    int step = total / 20 > 0 ? total / 20 : 1;
    if (*(const int *)ctx || done % step == 0 || done == total)
        ow_progress("convert: %d/%d tensors (%s)", done, total, name);
}

static int convert(const char *gguf, const char *out, DType dtype, OwError *err) {
    GgufModel m;
    if (gguf_model_open(gguf, dtype, &m, err) != 0) return -1;
    print_read(&m);
    fflush(stdout);
    GgufTokenizerFiles tf = {0};
    HfFile files[2];
    int nfiles = 0, rc = 0;
    if (gguf_find_kv(&m.g, "tokenizer.ggml.model")) {
        rc = tokenizer_files_from_gguf(&m.g, &tf, err);
        files[0] = (HfFile){"tokenizer.json", tf.tokenizer_json, tf.tokenizer_len};
        files[1] = (HfFile){"tokenizer_config.json", tf.config_json, tf.config_len};
        nfiles = 2;
        if (rc == 0)
            printf("  tokenizer: %s, %lld tokens, %lld merges%s, %lld added tokens\n", tf.model, (long long)tf.ntokens,
                   (long long)tf.nmerges,
                   gguf_find_kv(&m.g, "tokenizer.ggml.merges") ? ""
                                                               : " (none in the file: derived from the vocabulary)",
                   (long long)tf.nadded);
    } else {
        printf("  no tokenizer.ggml.model: no tokenizer files are written\n");
    }
    fflush(stdout);
    int tty = isatty(fileno(stderr));
    m.progress = progress;
    m.progress_ctx = &tty;
    safetensors_sort_hf(m.tensors, m.ntensors);
    if (rc == 0) rc = model_write_hf_files(&m.cfg, m.tensors, m.ntensors, out, dtype, 0, NULL, files, nfiles, err);
    ow_progress_end();
    if (rc == 0)
        printf("wrote %s: config.json, model.safetensors (%d tensors, %s)%s\n", out, m.ntensors, dtype_name(dtype),
               nfiles ? ", tokenizer.json, tokenizer_config.json" : "");
    tokenizer_files_free(&tf);
    gguf_model_close(&m);
    return rc;
}

int cmd_convert(int argc, char **argv) {
    const char *from = NULL, *out = NULL, *dtype = "f32";
    int overwrite = 0;
    ArgSpec specs[] = {
        {"from-gguf", ARG_STR, &from, "FILE", "the GGUF file to convert (llama architecture)", NULL},
        {"out", ARG_STR, &out, "DIR", "the Hugging Face directory to write", NULL},
        {"dtype", ARG_STR, &dtype, "DTYPE", "f32 (default: bit-identical to transformers' F32) | bf16", NULL},
        {"overwrite-out", ARG_BOOL, &overwrite, NULL, "replace DIR when it exists and is not empty", NULL},
    };
    ArgsResult res;
    OwError err;
    int parsed =
        cmd_args("convert", argc, argv, specs, (int)(sizeof specs / sizeof specs[0]),
                 "owlore convert --from-gguf FILE --out DIR [--dtype f32|bf16] [--overwrite-out]",
                 "Converts a LLaMA-family GGUF file (llama.cpp's format; F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,\n"
                 "Q8_0, Q4_K, Q5_K, Q6_K tensors) into a Hugging Face directory the way transformers loads it:\n"
                 "config.json from the llama.* keys, model.safetensors dequantised (llama.cpp's Q/K row\n"
                 "permutation undone), tokenizer.json and tokenizer_config.json rebuilt from tokenizer.ggml.*.\n"
                 "The directory is written under a temporary name and renamed into place; an existing\n"
                 "non-empty DIR is refused unless --overwrite-out.",
                 &res);
    if (parsed >= 0) return parsed;
    if (res.npos != 0 || !from || !out) {
        ow_fail(&err, "usage: owlore convert --from-gguf FILE --out DIR (see --help)");
        cmd_report_error("convert", &err);
        return 2;
    }
    DType dt;
    if (!strcmp(dtype, "f32") || !strcmp(dtype, "fp32") || !strcmp(dtype, "float32")) {
        dt = OW_F32;
    } else if (!strcmp(dtype, "bf16") || !strcmp(dtype, "bfloat16")) {
        dt = OW_BF16;
    } else {
        ow_fail(&err, "--dtype %s is not allowed (allowed: f32, bf16)", dtype);
        cmd_report_error("convert", &err);
        return 2;
    }
    if (!overwrite && occupied(out)) {
        ow_fail(&err, "%s exists and is not empty (hint: pass --overwrite-out to replace it, or choose another --out)",
                out);
        return cmd_report_error("convert", &err);
    }
    if (convert(from, out, dt, &err) != 0) return cmd_report_error("convert", &err);
    return 0;
}

/* train_data.c: see train_data.h. */
#include "train/train_data.h"

#include "core/fileio.h"
#include "core/hash.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *train_data_cache_dir(const char *cache, const char *run_dir) {
    if (cache && strcmp(cache, "run") == 0) return run_dir ? ow_xstrdup(run_dir) : NULL;
    if (cache && cache[0]) return ow_xstrdup(cache);
    const char *env = getenv("OWLORE_CACHE_DIR");
    if (env && env[0]) return ow_xstrdup(env);
    env = getenv("XDG_CACHE_HOME");
    if (env && env[0]) return ow_path_join(env, "owlore/data");
    env = getenv("HOME");
    if (env && env[0]) return ow_path_join(env, ".cache/owlore/data");
    return run_dir ? ow_xstrdup(run_dir) : NULL;
}

static int check_vocab(const TokData *d, int64_t vocab_size, const char *path, OwError *err) {
    if (d->vocab_size <= vocab_size) return 0; /* every id is < the data's vocab_size (checked on read/tokenize) */
    for (int64_t i = 0; i < d->count; i++) {
        int32_t id = tokdata_id(d, i);
        if (id >= vocab_size)
            return ow_fail(err,
                           "%s: token %lld has id %d, but the model's vocabulary has %lld entries (hint: the data "
                           "was tokenized for another model)",
                           path, (long long)i, id, (long long)vocab_size);
    }
    return 0;
}

static int has_tokenizer(const char *model_dir) {
    if (!model_dir) return 0;
    char *p = ow_path_join(model_dir, "tokenizer.json");
    int ok = ow_path_exists(p);
    free(p);
    return ok;
}

/* A token file made by another tokenizer (or tokenizer mode) than the model's. */
static int check_token_file(const char *path, const TokData *d, const char *model_dir, const DataOptions *opt,
                            OwError *err) {
    if (!has_tokenizer(model_dir)) return 0;
    if (d->tokenizer_hash == 0)
        return ow_fail(err,
                       "%s: the token file names no tokenizer (tokenizer hash 0: byte-level ids, or written without "
                       "one), and the model has a tokenizer.json in %s, so its ids may mean other tokens (hint: "
                       "re-tokenize: `owlore tokenize --tokenizer %s --data SOURCE --out FILE.bin`)",
                       path, model_dir, model_dir);
    Tokenizer *tok;
    if (tokenizer_load_mode(model_dir, opt->tokenizer_mode, &tok, NULL, err) != 0) return -1;
    uint64_t h = tokenizer_hash(tok);
    tokenizer_free(tok);
    if (h == d->tokenizer_hash) return 0;
    TokenizerMode other =
        opt->tokenizer_mode == TOKENIZER_MODE_TRANSFORMERS ? TOKENIZER_MODE_TOKENIZERS : TOKENIZER_MODE_TRANSFORMERS;
    OwError e2;
    int other_match = 0;
    if (tokenizer_load_mode(model_dir, other, &tok, NULL, &e2) == 0) {
        other_match = tokenizer_hash(tok) == d->tokenizer_hash;
        tokenizer_free(tok);
    }
    if (other_match)
        return ow_fail(err,
                       "%s: the token file was made with the model's tokenizer in tokenizer_mode %s, and this run "
                       "uses %s, which gives other ids (hint: --tokenizer-mode %s, or re-tokenize)",
                       path, tokenizer_mode_name(other), tokenizer_mode_name(opt->tokenizer_mode),
                       tokenizer_mode_name(other));
    return ow_fail(err,
                   "%s: the token file was made with another tokenizer (hash %016llx) than the model's tokenizer.json "
                   "in %s (%016llx) (hint: `owlore tokenize --tokenizer %s`, or pass the text/JSONL dataset itself)",
                   path, (unsigned long long)d->tokenizer_hash, model_dir, (unsigned long long)h, model_dir);
}

int train_load_data(const char *path, const char *model_dir, int64_t vocab_size, TokData *out, OwError *err) {
    DataOptions opt;
    data_options_defaults(&opt);
    return train_load_data_with(path, model_dir, vocab_size, &opt, "", NULL, out, NULL, err);
}

/* Tokenizes path into a cache file (or memory when it cannot be written). */
static int tokenize_cached(const char *path, const Tokenizer *tok, const DataOptions *opt, const char *cache,
                           const char *run_dir, TokData *out, char **tokens_path, OwError *err) {
    uint64_t src;
    if (dataset_source_hash(path, tok, opt, &src, err) != 0) return -1;
    uint64_t key[2] = {tokenizer_hash(tok), src};
    char name[64];
    snprintf(name, sizeof name, "data-%016llx.bin", (unsigned long long)xxh64(key, sizeof key, 0));
    char *dir = train_data_cache_dir(cache, run_dir);
    OwError e2;
    if (dir && ow_mkdir_p(dir, &e2) != 0) {
        OW_WARN("data cache: %s; using the run directory instead", e2.msg);
        free(dir);
        dir = run_dir ? ow_xstrdup(run_dir) : NULL;
    }
    char *cpath = dir ? ow_path_join(dir, name) : NULL;
    free(dir);
    if (cpath && ow_path_exists(cpath)) {
        ow_error_clear(&e2);
        if (tokfile_read(cpath, out, &e2) == 0 && out->tokenizer_hash == key[0] && out->source_hash == src) {
            OW_INFO("data: reusing %s (tokenizer and input unchanged)", cpath);
            if (tokens_path)
                *tokens_path = cpath;
            else
                free(cpath);
            return 0;
        }
        tokdata_free(out);
        OW_WARN("data cache %s is unusable (%s); tokenizing again", cpath,
                e2.msg[0] ? e2.msg : "made from other input or tokenizer");
    }
    double t0 = ow_now();
    TokData mem;
    DataStats st;
    if (dataset_tokenize_file(path, tok, opt, &mem, &st, err) != 0) {
        free(cpath);
        return -1;
    }
    double dt = ow_now() - t0;
    dataset_log_stats(path, &st);
    if (cpath && tokfile_write(cpath, (const int32_t *)mem.ids, mem.mask, mem.count, mem.vocab_size, mem.doc_offsets,
                               mem.ndocs, mem.tokenizer_hash, mem.source_hash, &e2) == 0) {
        tokdata_free(&mem);
        if (tokfile_read(cpath, out, err) != 0) {
            free(cpath);
            return -1;
        }
        OW_INFO("data: tokenized %s in %.1f s into %s", path, dt, cpath);
        if (tokens_path)
            *tokens_path = cpath;
        else
            free(cpath);
        return 0;
    }
    if (cpath) OW_WARN("data cache: %s; keeping the tokenized data in memory only", e2.msg);
    free(cpath);
    *out = mem;
    return 0;
}

int train_load_data_with(const char *path, const char *model_dir, int64_t vocab_size, const DataOptions *opt,
                         const char *cache, const char *run_dir, TokData *out, char **tokens_path, OwError *err) {
    memset(out, 0, sizeof *out);
    if (tokens_path) *tokens_path = NULL;
    if (!ow_path_exists(path)) return ow_fail(err, "%s: no such file", path);
    if (ow_is_dir(path))
        return ow_fail(err, "%s: is a directory; --data takes a dataset file (.txt, .jsonl, .json or a token file)",
                       path);
    DataFormat fmt = opt->format;
    if (fmt == DATA_FORMAT_AUTO && dataset_detect_format(path, &fmt, err) != 0) return -1;
    if (fmt == DATA_FORMAT_TOKENS) {
        if (tokfile_read(path, out, err) != 0) return -1;
        if (check_token_file(path, out, model_dir, opt, err) != 0 || check_vocab(out, vocab_size, path, err) != 0) {
            tokdata_free(out);
            return -1;
        }
        if (tokens_path) *tokens_path = ow_xstrdup(path);
        return 0;
    }
    if (!has_tokenizer(model_dir)) {
        if (fmt != DATA_FORMAT_TEXT)
            return ow_fail(err,
                           "%s: %s data needs a tokenizer, and the model has no tokenizer.json (hint: a model "
                           "directory with its tokenizer.json)",
                           path, data_format_name(fmt));
        OW_INFO("%s: reading text as bytes (the model has no tokenizer.json: byte-level vocabulary)", path);
        if (opt->doc_separator[0]) OW_WARN("%s: doc_separator is not used when text is read as bytes", path);
        return tokdata_from_bytes_file(path, vocab_size, out, err);
    }
    Tokenizer *tok;
    int rebuilt = 0;
    if (tokenizer_load_mode(model_dir, opt->tokenizer_mode, &tok, &rebuilt, err) != 0) return -1;
    if (rebuilt)
        OW_INFO(
            "tokenizer: %s as transformers loads it (LlamaTokenizer rebuild; --tokenizer-mode tokenizers uses the file "
            "as is)",
            tokenizer_path(tok));
    int rc = tokenize_cached(path, tok, opt, cache, run_dir, out, tokens_path, err);
    tokenizer_free(tok);
    if (rc == 0 && check_vocab(out, vocab_size, path, err) != 0) {
        tokdata_free(out);
        if (tokens_path) {
            free(*tokens_path);
            *tokens_path = NULL;
        }
        return -1;
    }
    return rc;
}

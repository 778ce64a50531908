/* cmd_tokenize.c: `owlore tokenize`: a dataset file (any format of
 * data/dataset.h) to an owlore token file, with the data keys of `owlore
 * train` as flags (the same table, train_config.c). The file records the
 * tokenizer hash and the source hash, so train re-uses and checks it. */
#include "cmd/commands.h"

#include "core/args.h"
#include "core/log.h"
#include "data/dataset.h"
#include "train/train_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DATA_KEYS 16

int cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL, *data = NULL, *out = NULL;
    ArgSpec specs[3 + MAX_DATA_KEYS];
    const char *values[MAX_DATA_KEYS] = {0};
    int bools[MAX_DATA_KEYS] = {0}, seen[MAX_DATA_KEYS] = {0};
    char names[MAX_DATA_KEYS][48];
    int n = 0;
    specs[n++] = (ArgSpec){
        "tokenizer", ARG_STR, &tok_path, "DIR|FILE", "tokenizer.json, or the model directory holding it", NULL};
    specs[n++] = (ArgSpec){
        "data", ARG_STR, &data, "FILE", "the dataset: .txt, JSON lines or a JSON array (text, alpaca or chat records)",
        NULL};
    specs[n++] = (ArgSpec){"out", ARG_STR, &out, "FILE.bin", "the token file to write", NULL};
    int nkeys = 0;
    for (; train_config_data_keys[nkeys]; nkeys++) {
        OW_CHECK(nkeys < MAX_DATA_KEYS);
        const char *metavar, *help;
        int is_bool;
        OW_CHECK(train_config_key_info(train_config_data_keys[nkeys], &metavar, &help, &is_bool) == 0);
        snprintf(names[nkeys], sizeof names[nkeys], "%s", train_config_data_keys[nkeys]);
        for (char *p = names[nkeys]; *p; p++)
            if (*p == '_') *p = '-';
        specs[n++] = (ArgSpec){names[nkeys],
                               is_bool ? ARG_BOOL : ARG_STR,
                               is_bool ? (void *)&bools[nkeys] : (void *)&values[nkeys],
                               metavar,
                               help,
                               &seen[nkeys]};
    }
    ArgsResult res;
    OwError err;
    ow_error_clear(&err);
    int parsed = cmd_args(
        "tokenize", argc, argv, specs, n, "owlore tokenize --tokenizer DIR|FILE --data FILE --out FILE.bin [data keys]",
        "Tokenizes a dataset into an owlore token file (ids, loss mask, sample offsets, the tokenizer's\n"
        "hash and the input's), which `owlore train --data` reads directly. The data keys are the ones of\n"
        "`owlore train` (recipe keys use underscores). `owlore train` also takes the dataset itself and\n"
        "caches this file on its own.",
        &res);
    if (parsed >= 0) return parsed;
    if (!tok_path || !data || !out || res.npos > 0) {
        fprintf(stderr, "owlore tokenize: error: %s (see --help)\n",
                res.npos > 0 ? "unexpected positional argument" : "--tokenizer, --data and --out are required");
        return 2;
    }
    TrainConfig cfg; /* the data keys' parsing and defaults */
    train_config_defaults(&cfg);
    for (int k = 0; k < nkeys; k++) {
        if (!seen[k]) continue;
        int rc = values[k] ? train_config_set_string(&cfg, train_config_data_keys[k], values[k], "command line", &err)
                           : train_config_set_string(&cfg, train_config_data_keys[k], bools[k] ? "true" : "false",
                                                     "command line", &err);
        if (rc != 0) {
            cmd_report_error("tokenize", &err);
            return 2;
        }
    }
    const DataOptions *opt = &cfg.data_opt;
    Tokenizer *tok;
    int rebuilt = 0;
    if (tokenizer_load_mode(tok_path, opt->tokenizer_mode, &tok, &rebuilt, &err) != 0)
        return cmd_report_error("tokenize", &err);
    if (rebuilt) OW_INFO("tokenizer: %s as transformers loads it (tokenizer_mode transformers)", tokenizer_path(tok));
    TokData d;
    DataStats st;
    double t0 = ow_now();
    int rc = dataset_tokenize_file(data, tok, opt, &d, &st, &err);
    if (rc == 0) {
        dataset_log_stats(data, &st);
        rc = tokfile_write(out, (const int32_t *)d.ids, d.mask, d.count, d.vocab_size, d.doc_offsets, d.ndocs,
                           d.tokenizer_hash, d.source_hash, &err);
    }
    if (rc == 0)
        printf("wrote %s: %lld samples, %lld tokens (%lld in the loss), %s data, in %.1f s\n", out,
               (long long)st.samples, (long long)st.tokens, (long long)st.loss_tokens, data_format_name(st.format),
               ow_now() - t0);
    tokdata_free(&d);
    tokenizer_free(tok);
    return rc == 0 ? 0 : cmd_report_error("tokenize", &err);
}

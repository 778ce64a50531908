/* test_data_train.c: datasets end to end through the binary: `owlore
 * tokenize`, and `owlore train` on the real TinyStories-656K model straight
 * from a JSONL file, from the .txt file (documents between <|endoftext|>
 * lines) and from chat records with pad packing: a few CPU steps with a
 * finite loss, and the tokenized data cached and re-used by a second run
 * (its log says "reusing", the cache file is not rewritten). Bad data stops
 * the command with a message and a non-zero exit. */
#include "core/fileio.h"
#include "test_support.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct Env {
    char *dir, *model, *txt, *cache;
} Env;

static void env_open(Env *e) {
    e->dir = ts_tmpdir();
    e->model = ts_shared_path("data/real/hf/TinyStories-656K");
    e->txt = ts_shared_path("data/real/text/tinystories_train_sample_2MiB.txt");
    e->cache = ow_path_join(e->dir, "cache");
}

static void env_close(Env *e) {
    ts_rmtree(e->dir);
    free(e->dir);
    free(e->model);
    free(e->txt);
    free(e->cache);
}

/* The first n stories of the .txt as {"text": ...} lines (or chat records). */
static char *write_jsonl(const Env *e, const char *name, int n, int chat) {
    char *raw;
    size_t len;
    OwError err;
    cr_assert_eq(ow_read_file(e->txt, &raw, &len, &err), 0, "%s", err.msg);
    char *path = ow_path_join(e->dir, name);
    FILE *fp = fopen(path, "w");
    cr_assert(fp);
    char *p = raw;
    for (int k = 0; k < n; k++) {
        char *end = strstr(p, "<|endoftext|>");
        cr_assert(end);
        *end = '\0';
        cJSON *o = cJSON_CreateObject();
        if (chat) {
            cJSON *m = cJSON_AddArrayToObject(o, "messages");
            cJSON *u = cJSON_CreateObject(), *a = cJSON_CreateObject();
            cJSON_AddStringToObject(u, "role", "user");
            cJSON_AddStringToObject(u, "content", "Tell me a story.");
            cJSON_AddStringToObject(a, "role", "assistant");
            cJSON_AddStringToObject(a, "content", p);
            cJSON_AddItemToArray(m, u);
            cJSON_AddItemToArray(m, a);
        } else {
            cJSON_AddStringToObject(o, "text", p);
        }
        char *line = cJSON_PrintUnformatted(o);
        fprintf(fp, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
        p = end + strlen("<|endoftext|>") + 1;
    }
    fclose(fp);
    free(raw);
    return path;
}

static int train(const Env *e, const char *data, const char *run, const char *extra, char **out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s train --model %s --data %s --out %s/%s --data-cache %s --device cpu --method full "
             "--batch-size 4 --block-size 64 --steps 3 --val-split 0.1 --eval-batches 2 --save-model=false %s",
             ts_owlore_binary(), e->model, data, e->dir, run, e->cache, extra);
    return ts_run(cmd, out);
}

/* the one cache file (asserts there is exactly one) */
static char *cache_file(const Env *e) {
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "ls %s", e->cache);
    cr_assert_eq(ts_run(cmd, &out), 0);
    cr_assert(strncmp(out, "data-", 5) == 0 && strchr(out, '\n') == strrchr(out, '\n'), "one cache file: %s", out);
    *strchr(out, '\n') = '\0';
    char *p = ow_path_join(e->cache, out);
    free(out);
    return p;
}

static void check_run(const Env *e, const char *run) {
    char *rd = ow_path_join(e->dir, run);
    double loss[3];
    ts_read_metric(rd, "loss", loss, 3);
    for (int i = 0; i < 3; i++)
        cr_assert(isfinite(loss[i]) && loss[i] > 0 && loss[i] < 10, "step %d loss %g", i + 1, loss[i]);
    free(rd);
}

/* Trains twice on one dataset: the first run tokenizes and caches, the second re-uses. */
static void train_twice(Env *e, const char *data, const char *extra) {
    char *out;
    int rc = train(e, data, "run1", extra, &out);
    cr_assert_eq(rc, 0, "first run:\n%s", out);
    cr_assert(strstr(out, "data: tokenized") != NULL, "the first run tokenizes:\n%s", out);
    check_run(e, "run1");
    free(out);
    char *cf = cache_file(e);
    struct stat s1, s2;
    cr_assert_eq(stat(cf, &s1), 0);
    rc = train(e, data, "run2", extra, &out);
    cr_assert_eq(rc, 0, "second run:\n%s", out);
    cr_assert(strstr(out, "data: reusing") != NULL && strstr(out, "data: tokenized") == NULL,
              "the second run re-uses the cache:\n%s", out);
    check_run(e, "run2");
    cr_assert_eq(stat(cf, &s2), 0);
    cr_assert(s1.st_mtim.tv_sec == s2.st_mtim.tv_sec && s1.st_mtim.tv_nsec == s2.st_mtim.tv_nsec &&
                  s1.st_ino == s2.st_ino,
              "the cache file is not rewritten");
    /* the resolved config names the token file */
    char *cfgp = ow_path_join(e->dir, "run2/config.json");
    char *cfg;
    size_t len;
    OwError err;
    cr_assert_eq(ow_read_file(cfgp, &cfg, &len, &err), 0);
    cr_assert(strstr(cfg, cf) != NULL, "config.json names %s", cf);
    free(cfg);
    free(cfgp);
    free(out);
    free(cf);
}

Test(data_train, tinystories_from_jsonl, .timeout = 300) {
    Env e;
    env_open(&e);
    char *data = write_jsonl(&e, "stories.jsonl", 300, 0);
    train_twice(&e, data, "");
    /* other data keys: another cache entry */
    char *out;
    cr_assert_eq(train(&e, data, "run3", "--append-eos=false", &out), 0, "%s", out);
    cr_assert(strstr(out, "data: tokenized") != NULL, "append_eos changes the data:\n%s", out);
    free(out);
    free(data);
    env_close(&e);
}

Test(data_train, tinystories_from_txt, .timeout = 300) {
    Env e;
    env_open(&e);
    train_twice(&e, e.txt, "--doc-separator '<|endoftext|>'");
    env_close(&e);
}

Test(data_train, chat_records_with_pad_packing, .timeout = 300) {
    Env e;
    env_open(&e);
    char *data = write_jsonl(&e, "chat.jsonl", 120, 1);
    char *out;
    int rc = train(&e, data, "run1", "--chat-template llama2 --packing pad", &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "truncated (packing pad)") != NULL, "long stories are truncated and counted:\n%s", out);
    check_run(&e, "run1");
    free(out);
    rc = train(&e, data, "run2", "", &out);
    cr_assert_neq(rc, 0, "chat data without a template");
    cr_assert_lt(rc, 128);
    cr_assert(strstr(out, "needs a chat_template") != NULL, "%s", out);
    free(out);
    free(data);
    env_close(&e);
}

Test(data_train, tokenize_command, .timeout = 300) {
    Env e;
    env_open(&e);
    char *bin = ow_path_join(e.dir, "stories.bin");
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --data %s --out %s --doc-separator '<|endoftext|>'",
             ts_owlore_binary(), e.model, e.txt, bin);
    cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
    cr_assert(strstr(out, "2317 samples") != NULL, "%s", out);
    free(out);
    cr_assert_eq(train(&e, bin, "run1", "", &out), 0, "training from the token file:\n%s", out);
    check_run(&e, "run1");
    free(out);
    /* the same file, tokenized with another tokenizer: refused before training */
    char *mistral = ts_shared_path("data/real/tokenizers/mistral-minueza");
    char *bin2 = ow_path_join(e.dir, "mistral.bin");
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --data %s --out %s --doc-separator '<|endoftext|>'",
             ts_owlore_binary(), mistral, e.txt, bin2);
    cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
    free(out);
    int rc = train(&e, bin2, "run2", "", &out);
    cr_assert(rc != 0 && rc < 128, "status %d", rc);
    cr_assert(strstr(out, "made with another tokenizer") && strstr(out, bin2), "%s", out);
    cr_assert(strstr(out, "step 1/") == NULL, "training did not start:\n%s", out);
    free(out);
    /* a malformed line: skipped and counted, or fatal with --strict (file and line named) */
    char *bad = ow_path_join(e.dir, "bad.jsonl");
    const char *text = "{\"text\": \"Once upon a time.\"}\n{\"text\": \"oops\"\n{\"text\": \"The end.\"}\n";
    ts_write_file(bad, text, strlen(text));
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --data %s --out %s/bad.bin", ts_owlore_binary(), e.model, bad,
             e.dir);
    cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
    cr_assert(strstr(out, "bad.jsonl:2: malformed JSON") && strstr(out, "2 samples"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --data %s --out %s/bad2.bin --strict", ts_owlore_binary(),
             e.model, bad, e.dir);
    rc = ts_run(cmd, &out);
    cr_assert(rc == 1, "status %d:\n%s", rc, out);
    cr_assert(strstr(out, "bad.jsonl:2: malformed JSON") != NULL, "%s", out);
    char *bad2 = ow_path_join(e.dir, "bad2.bin");
    cr_assert(!ow_path_exists(bad2), "no output after an error");
    free(bad2);
    free(out);
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --data %s --out %s/x.bin --format chatty", ts_owlore_binary(),
             e.model, bad, e.dir);
    rc = ts_run(cmd, &out);
    cr_assert(rc == 2 && strstr(out, "format = \"chatty\" is not allowed"), "status %d:\n%s", rc, out);
    free(out);
    /* encode shows either mode: the file as is, or what train uses (transformers' rebuild) */
    char *llama2 = ts_shared_path("data/real/tokenizers/llama2-tinyllama");
    /* "<s> hi" without special tokens: tokenizers 0.23 from_file gives [1, 29871, 7251], transformers 5.24
     * AutoTokenizer [1, 7251] (a lone "▁" only without the rebuild) */
    const char *want[2] = {"1 29871 7251\n", "1 7251\n"};
    for (int m = 0; m < 2; m++) {
        snprintf(cmd, sizeof cmd, "printf '<s> hi' | %s encode --tokenizer %s%s", ts_owlore_binary(), llama2,
                 m ? " --tokenizer-mode transformers" : "");
        cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
        cr_assert_str_eq(out, want[m]);
        free(out);
    }
    free(llama2);
    free(bad);
    free(bin2);
    free(mistral);
    free(bin);
    env_close(&e);
}

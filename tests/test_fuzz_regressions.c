/* test_fuzz_regressions.c: replays the fuzz targets' bodies (tests/fuzz) on
 * their seed corpora and on every input a fuzzing run found crashing
 * (tests/fuzz/regressions/<target>/), in the normal and sanitizer builds. */
#define OWLORE_FUZZ_REPLAY 1
#include "../tests/fuzz/fuzz_tokenizer_encode.c"
#include "../tests/fuzz/fuzz_tokenizer_load.c"
#include "../tests/fuzz/fuzz_jsonl.c"
#include "../tests/fuzz/fuzz_gguf.c"

#include "core/fileio.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <dirent.h>

static size_t replay_dir(const char *rel, int (*one)(const uint8_t *, size_t)) {
    char *dir = ts_source_path(rel);
    DIR *d = opendir(dir);
    size_t n = 0;
    if (!d) {
        free(dir);
        return 0;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char *p = ow_path_join(dir, e->d_name);
        char *data;
        size_t len;
        OwError err;
        cr_assert(ow_read_file(p, &data, &len, &err) == 0, "%s", err.msg);
        one((const uint8_t *)data, len); /* aborts (fails the test) on a problem */
        free(data);
        free(p);
        n++;
    }
    closedir(d);
    free(dir);
    return n;
}

Test(fuzz_regressions, tokenizer_load) {
    size_t a = replay_dir("tests/fuzz/corpus/tokenizer_load", fuzz_tokenizer_load_one);
    size_t b = replay_dir("tests/fuzz/regressions/tokenizer_load", fuzz_tokenizer_load_one);
    cr_log_info("tokenizer_load: %zu corpus inputs, %zu regressions", a, b);
    cr_expect_gt(a, 0);
}

Test(fuzz_regressions, tokenizer_encode) {
    size_t a = replay_dir("tests/fuzz/corpus/tokenizer_encode", fuzz_tokenizer_encode_one);
    size_t b = replay_dir("tests/fuzz/regressions/tokenizer_encode", fuzz_tokenizer_encode_one);
    cr_log_info("tokenizer_encode: %zu corpus inputs, %zu regressions", a, b);
    cr_expect_gt(a, 0);
}

Test(fuzz_regressions, jsonl) {
    size_t a = replay_dir("tests/fuzz/corpus/jsonl", fuzz_jsonl_one);
    size_t b = replay_dir("tests/fuzz/regressions/jsonl", fuzz_jsonl_one);
    cr_log_info("jsonl: %zu corpus inputs, %zu regressions", a, b);
    cr_expect_gt(a, 0);
}

Test(fuzz_regressions, gguf) {
    size_t a = replay_dir("tests/fuzz/corpus/gguf", fuzz_gguf_one);
    size_t b = replay_dir("tests/fuzz/regressions/gguf", fuzz_gguf_one);
    cr_log_info("gguf: %zu corpus inputs, %zu regressions", a, b);
    cr_assert_gt(a, 0, "no seed inputs in tests/fuzz/corpus/gguf");
}

/* test_train_config.c: recipes, flags and their resolution order, and errors
 * that name the key and the allowed values. */
#include "core/fileio.h"
#include "test_support.h"
#include "train/train_config.h"

#include <criterion/criterion.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static int parse(TrainConfig *c, OwError *err, int argc, const char **argv) {
    return train_config_from_args(c, argc, (char **)argv, err);
}

Test(train_config, method_recipes) {
    TrainConfig c;
    OwError err;
    const char *a1[] = {"train", "--method", "lisa"};
    cr_assert_eq(parse(&c, &err, 3, a1), 0, "%s", err.msg);
    cr_assert_eq(c.gamma, 2);
    cr_assert_eq(c.interval, 3);
    cr_assert_eq(c.sampling, SAMPLING_UNIFORM);
    cr_assert_eq(c.optimizer, OPT_ADAMW);
    cr_assert_float_eq(c.eps, 1e-8, 1e-20);
    const char *a2[] = {"train"};
    cr_assert_eq(parse(&c, &err, 1, a2), 0, "%s", err.msg);
    cr_assert_str_eq(c.method, "owlore");
    cr_assert_eq(c.gamma, 5);
    cr_assert_eq(c.interval, 50);
    cr_assert_eq(c.rank, 256);
    cr_assert_eq(c.update_gap, 100);
    cr_assert_eq(c.optimizer, OPT_GALORE_ADAMW);
    cr_assert_float_eq(c.eps, 1e-6, 1e-20);
    cr_assert_float_eq(c.lr, 3e-4, 1e-15);
    cr_assert_eq(c.schedule, LR_LINEAR);
    cr_assert_float_eq(c.clip, 1.0, 0);
    const char *a3[] = {"train", "--method", "galore"};
    cr_assert_eq(parse(&c, &err, 3, a3), 0);
    cr_assert_eq(c.sampling, SAMPLING_ALL);
    const char *a4[] = {"train", "--method", "full"};
    cr_assert_eq(parse(&c, &err, 3, a4), 0);
    cr_assert_eq(c.optimizer, OPT_ADAMW);
}

/* galore and full train every block; the sampling methods sample unless --sampling all */
Test(train_config, samples_blocks) {
    static const struct {
        const char *method, *sampling;
        int samples;
    } cases[] = {{"owlore", NULL, 1}, {"owlore-fullrank", NULL, 1}, {"lisa", NULL, 1},    {"galore", NULL, 0},
                 {"full", NULL, 0},   {"lisa", "all", 0},           {"owlore", "all", 0}, {"galore", "uniform", 0},
                 {"full", "owl", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TrainConfig c;
        OwError err;
        const char *a[] = {"train", "--method", cases[i].method, "--sampling", cases[i].sampling};
        cr_assert_eq(parse(&c, &err, cases[i].sampling ? 5 : 3, a), 0, "%s", err.msg);
        cr_assert_eq(train_config_samples_blocks(&c), cases[i].samples, "%s --sampling %s", cases[i].method,
                     cases[i].sampling ? cases[i].sampling : "(recipe)");
    }
}

Test(train_config, flags_override_recipes) {
    char *dir = ts_tmpdir();
    char *r = ow_path_join(dir, "r.json");
    const char *text = "{\"method\": \"lisa\", \"gamma\": 3, \"lr\": 0.001, \"projector\": \"randomized\"}";
    ts_write_file(r, text, strlen(text));
    TrainConfig c;
    OwError err;
    const char *a[] = {"train",     "--recipe", r, "--gamma=4", "--update-gap", "7", "--freeze-embeddings",
                       "--gpu-mem", "24GiB"};
    cr_assert_eq(parse(&c, &err, 9, a), 0, "%s", err.msg);
    cr_assert_str_eq(c.method, "lisa", "the recipe file chooses the method");
    cr_assert_eq(c.interval, 3, "the method's defaults apply under the recipe file");
    cr_assert_eq(c.gamma, 4, "flags win over the recipe file");
    cr_assert_float_eq(c.lr, 0.001, 1e-15);
    cr_assert_eq(c.update_gap, 7, "dashes in flags match underscores in keys");
    cr_assert_eq(c.projector, PROJ_RANDOMIZED);
    cr_assert_eq(c.freeze_embeddings, 1);
    cr_assert_eq(c.gpu_mem, (size_t)24 << 30);
    cJSON *j = train_config_to_json(&c);
    cr_assert_eq(cJSON_GetObjectItem(j, "gamma")->valuedouble, 4);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "projector")->valuestring, "randomized");
    /* the resolved config read back as a recipe gives the same settings */
    TrainConfig d;
    train_config_defaults(&d);
    cr_assert_eq(train_config_apply_json(&d, j, "config.json", &err), 0, "%s", err.msg);
    cr_assert_eq(d.gamma, 4);
    cr_assert_eq(d.update_gap, 7);
    cr_assert_eq(d.gpu_mem, c.gpu_mem);
    cJSON_Delete(j);
    free(r);
    ts_rmtree(dir);
    free(dir);
}

static void expect_error(int argc, const char **argv, const char *needle) {
    TrainConfig c;
    OwError err;
    int rc = parse(&c, &err, argc, argv);
    if (rc == 0) rc = train_config_validate(&c, &err);
    cr_assert_eq(rc, -1, "expected an error mentioning %s", needle);
    cr_assert(strstr(err.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", err.msg, needle);
}

Test(train_config, errors_name_the_key_and_allowed_values) {
    const char *a1[] = {"train", "--method", "sgd"};
    expect_error(3, a1, "allowed: owlore, owlore-fullrank, lisa, galore, full");
    const char *a2[] = {"train", "--sampling", "random"};
    expect_error(3, a2, "owl_reverse");
    const char *a3[] = {"train", "--gamma", "two"};
    expect_error(3, a3, "gamma");
    const char *a4[] = {"train", "--no-such-flag", "1"};
    expect_error(3, a4, "--no-such-flag");
    const char *a5[] = {"train", "--projector", "svd"};
    expect_error(3, a5, "allowed: exact, randomized");
    const char *a5b[] = {"train", "--schedule", "exp"};
    expect_error(3, a5b, "allowed: constant, linear, cosine");
    const char *a6[] = {"train", "--model", "m", "--data", "d", "--out", "o", "--gamma", "0"};
    expect_error(9, a6, "gamma");
    const char *a7[] = {"train", "--data", "d", "--out", "o"};
    expect_error(5, a7, "--model");
    const char *a9[] = {"train", "--model", "m", "--data", "d", "--out", "o", "--device", "gpu"};
    expect_error(9, a9, "device \"gpu\" is not known (allowed: auto, cpu, cuda, cuda:N");
    char *dir = ts_tmpdir();
    char *r = ow_path_join(dir, "r.json");
    ts_write_file(r, "{\"gama\": 3}", 11);
    const char *a8[] = {"train", "--recipe", r};
    expect_error(3, a8, "unknown key \"gama\"");
    ts_write_file(r, "{\"gamma\": \"3\"}", 14);
    expect_error(3, a8, "must be a number");
    ts_write_file(r, "{\"gamma\": 3", 11);
    expect_error(3, a8, "malformed JSON");
    free(r);
    ts_rmtree(dir);
    free(dir);
}

/* Each enum key parses with the name table declared beside its enum: every
 * name of the table sets the value of its index. */
Test(train_config, enum_keys_use_the_module_name_tables) {
    const struct {
        const char *key;
        const char *const *names;
        size_t offset;
    } cases[] = {
        {"sampling", sampling_mode_names, offsetof(TrainConfig, sampling)},
        {"optimizer", optim_kind_names, offsetof(TrainConfig, optimizer)},
        {"projector", projector_kind_names, offsetof(TrainConfig, projector)},
        {"inactive_state", inactive_policy_names, offsetof(TrainConfig, inactive_state)},
        {"schedule", lr_schedule_names, offsetof(TrainConfig, schedule)},
        {"format", data_format_names, offsetof(TrainConfig, data_opt.format)},
        {"chat_template", chat_template_names, offsetof(TrainConfig, data_opt.chat_template)},
        {"tokenizer_mode", tokenizer_mode_names, offsetof(TrainConfig, data_opt.tokenizer_mode)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = 0;
        for (; cases[i].names[n]; n++) {
            TrainConfig c;
            OwError err;
            train_config_defaults(&c);
            cr_assert_eq(train_config_set_string(&c, cases[i].key, cases[i].names[n], "test", &err), 0, "%s", err.msg);
            cr_assert_eq(*(const int *)((const char *)&c + cases[i].offset), n, "%s = %s", cases[i].key,
                         cases[i].names[n]);
        }
        cr_assert_gt(n, 1, "%s: the table lists its names", cases[i].key);
    }
    cr_assert_str_eq(sampling_mode_name(SAMPLING_OWL_REVERSE), "owl_reverse");
    cr_assert_str_eq(data_format_name(DATA_FORMAT_ALPACA), "alpaca");
    cr_assert_str_eq(chat_template_name(CHAT_TEMPLATE_CHATML), "chatml");
    cr_assert_str_eq(tokenizer_mode_name(TOKENIZER_MODE_TOKENIZERS), "tokenizers");
}

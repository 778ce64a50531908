// ctest-labels: cpu
/* test_smollm2_chat.c: SmolLM2's chat template as transformers renders it, and SmolLM2 end to end
 * against transformers (tests/reference/make_smollm2_fixtures.py, the GGUF loaded by transformers,
 * float32, eager attention): the default system message read out of a chatml template
 * (chat_template_default_system: the construct and what is not it), the converted model's
 * rendering and ids of conversations with and without a system message (add_generation_prompt
 * both ways) through chat_render and through training's chat data, and `owlore generate` --chat
 * and --prompt at temperature 0 giving transformers' greedy ids and text. The SmolLM2 tests skip
 * when its GGUF is absent (scripts/get-smollm2.sh fetches it). */
#include "core/fileio.h"
#include "core/json.h"
#include "data/chat_template.h"
#include "data/dataset.h"
#include "data/text_codec.h"
#include "model/generate.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char k_smol[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>"
    "' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt "
    "%}{{ '<|im_start|>assistant\n' }}{% endif %}";

static void expect_default(const char *jinja, const char *want) {
    char *got = chat_template_default_system(jinja);
    if (!want)
        cr_expect_null(got, "no default expected from %s, got \"%s\"", jinja, got);
    else
        cr_expect(got && strcmp(got, want) == 0, "%s: got \"%s\"", jinja, got ? got : "(none)");
    free(got);
}

/* Replaces the first `from` in k_smol by `to`. */
static char *variant(const char *from, const char *to) {
    const char *p = strstr(k_smol, from);
    cr_assert(p, "%s", from);
    size_t a = (size_t)(p - k_smol), fl = strlen(from), tl = strlen(to), n = strlen(k_smol);
    char *s = malloc(n - fl + tl + 1);
    memcpy(s, k_smol, a);
    memcpy(s + a, to, tl);
    memcpy(s + a + tl, p + fl, n - a - fl + 1);
    return s;
}

Test(chat_default_system, read_out_of_the_construct_only) {
    const char *smol = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
    expect_default(k_smol, smol);
    char *v[7] = {
        variant("{{ '<|im_start|>system\nYou", "{{\"<|im_start|>system\\nYou"), /* "..." with a \n escape */
        variant("Face<|im_end|>\n' }}", "Face<|im_end|>\\n\" }}"),
        variant("{% endif %}{{'<|im_start|>'", " {% endif %}{{'<|im_start|>'"), /* text before endif */
        variant("!= 'system' %}", "== 'user' %}"),                              /* another condition */
        variant("<|im_start|>system\nYou", "<|im_start|>user\nYou"),            /* not a system block */
        variant("Face<|im_end|>\n' }}", "Face' }}"),                            /* no <|im_end|> */
        variant("named SmolLM,", "named \\'Owl\\',"),                           /* escaped quotes */
    };
    /* v[0] and v[1] together make a double-quoted literal */
    char *dq = malloc(strlen(k_smol) + 8);
    strcpy(dq, v[0]);
    char *tail = strstr(dq, "Face<|im_end|>\n' }}");
    cr_assert(tail);
    memmove(tail + 20, tail + 19, strlen(tail + 19) + 1);
    memcpy(tail, "Face<|im_end|>\\n\" }}", 20);
    expect_default(dq, smol);
    expect_default(v[2], NULL);
    expect_default(v[3], NULL);
    expect_default(v[4], NULL);
    expect_default(v[5], NULL);
    expect_default(v[6], "You are a helpful AI assistant named 'Owl', trained by Hugging Face");
    expect_default("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                   "'<|im_end|>' + '\n'}}{% endfor %}",
                   NULL);
    expect_default("{% if loop.first and messages[0]['role'] != 'system' %}{{ '[INST] x' }}{% endif %}", NULL);
    expect_default(NULL, NULL);
    for (int i = 0; i < 7; i++) free(v[i]);
    free(dq);
}

/* ---- the converted SmolLM2 ---- */

/* The GGUF converted into a fresh directory (NULL: the test skipped). */
static char *smollm2_dir(char **tmp) {
    char *gguf = ts_smollm2_gguf();
    if (!gguf) {
        cr_skip_test("SmolLM2 GGUF absent (scripts/get-smollm2.sh fetches it; tests skip without it)");
        return NULL;
    }
    *tmp = ts_tmpdir();
    char *out = ow_path_join(*tmp, "hf"), cmd[8192], *log;
    snprintf(cmd, sizeof cmd, "'%s' convert --from-gguf '%s' --out '%s' 2>&1", ts_owlore_binary(), gguf, out);
    cr_assert_eq(ts_run(cmd, &log), 0, "%s", log);
    free(log);
    free(gguf);
    return out;
}

static cJSON *fixture(const char *rel) {
    char *p = ts_fixture_path(rel);
    OwError err;
    cJSON *j = json_parse_file(p, &err);
    cr_assert(j, "%s", err.msg);
    free(p);
    return j;
}

static void expect_ids(const IdVec *got, const cJSON *want, const char *what) {
    cr_assert_eq((int)got->len, cJSON_GetArraySize(want), "%s: %zu ids, transformers %d", what, got->len,
                 cJSON_GetArraySize(want));
    for (size_t i = 0; i < got->len; i++)
        cr_assert_eq(got->data[i], (int32_t)cJSON_GetArrayItem(want, (int)i)->valuedouble, "%s: id %zu", what, i);
}

static size_t messages_of(const cJSON *c, ChatMessage *m) {
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "messages")) {
        const char *content = cJSON_GetObjectItem(e, "content")->valuestring;
        m[n++] =
            (ChatMessage){chat_role_from_name(cJSON_GetObjectItem(e, "role")->valuestring), content, strlen(content)};
    }
    return n;
}

/* Training's chat data: the conversation as one JSONL record, tokenized with chat_template chatml. */
static void expect_training_ids(const Tokenizer *tok, const cJSON *c, const char *what) {
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(rec, "messages", cJSON_GetObjectItem(c, "messages"));
    char *line = cJSON_PrintUnformatted(rec);
    DataOptions o;
    data_options_defaults(&o);
    o.format = DATA_FORMAT_CHAT;
    o.chat_template = CHAT_TEMPLATE_CHATML;
    TokData d;
    OwError err;
    cr_assert_eq(dataset_tokenize_buffer("chat.jsonl", line, strlen(line), tok, &o, &d, NULL, &err), 0, "%s", err.msg);
    IdVec got = {(int32_t *)d.ids, (size_t)d.count, 0};
    expect_ids(&got, cJSON_GetObjectItem(c, "ids"), what);
    tokdata_free(&d);
    free(line);
    cJSON_Delete(rec);
}

/* Chat data's cache key changes with the default system message: the same tokenizer files, the template's
 * default system block taken out. */
static void expect_cache_key_has_the_default(const char *dir, const Tokenizer *tok) {
    char *tmp = ts_tmpdir(), *data = ow_path_join(tmp, "chat.jsonl"), *tp = ow_path_join(dir, "tokenizer.json"),
         *copy = ow_path_join(tmp, "tokenizer.json"), *text = ts_read_text(tp);
    char *cp = ow_path_join(dir, "tokenizer_config.json"), *ccopy = ow_path_join(tmp, "tokenizer_config.json");
    OwError err;
    cJSON *cfg = json_parse_file(cp, &err);
    cr_assert(cfg, "%s", err.msg);
    const char *jinja = cJSON_GetObjectItem(cfg, "chat_template")->valuestring, *b = strstr(jinja, "{% if loop.first"),
               *e = b ? strstr(b, "{% endif %}") : NULL;
    cr_assert(b && e, "%s", jinja);
    char *plain = malloc(strlen(jinja) + 1);
    memcpy(plain, jinja, (size_t)(b - jinja));
    strcpy(plain + (b - jinja), e + strlen("{% endif %}"));
    cJSON_ReplaceItemInObject(cfg, "chat_template", cJSON_CreateString(plain));
    cr_assert_eq(json_write_file(ccopy, cfg, &err), 0, "%s", err.msg);
    cJSON_Delete(cfg);
    free(plain);
    free(cp);
    free(ccopy);
    const char *line = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                       "\"content\": \"Hello.\"}]}\n";
    ts_write_file(data, line, strlen(line));
    ts_write_file(copy, text, strlen(text));
    DataOptions o;
    data_options_defaults(&o);
    o.format = DATA_FORMAT_CHAT;
    o.chat_template = CHAT_TEMPLATE_CHATML;
    Tokenizer *bare;
    uint64_t h, h_bare;
    cr_assert_eq(tokenizer_load(copy, &bare, &err), 0, "%s", err.msg);
    cr_assert_eq(dataset_source_hash(data, tok, &o, &h, &err), 0, "%s", err.msg);
    cr_assert_eq(dataset_source_hash(data, bare, &o, &h_bare, &err), 0, "%s", err.msg);
    cr_assert_neq(h, h_bare, "the default system message is part of the chat data's cache key");
    tokenizer_free(bare);
    ts_rmtree(tmp);
    free(tmp);
    free(data);
    free(tp);
    free(copy);
    free(text);
}

Test(smollm2_chat, renders_as_transformers_apply_chat_template) {
    char *tmp = NULL, *dir = smollm2_dir(&tmp);
    if (!dir) return;
    OwError err;
    ChatTemplateKind kind;
    cr_assert_eq(chat_template_detect_dir(dir, &kind, &err), 0, "%s", err.msg);
    cr_assert_eq(kind, CHAT_TEMPLATE_CHATML);
    char *tp = ow_path_join(dir, "tokenizer.json");
    Tokenizer *tok;
    cr_assert_eq(tokenizer_load(tp, &tok, &err), 0, "%s", err.msg);
    ChatTemplate t;
    cr_assert_eq(chat_template_prepare(kind, tok, &t, &err), 0, "%s", err.msg);
    cr_assert_str_eq(t.default_system, "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
    cJSON *fx = fixture("chat/smollm2_chat.json");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases")) {
        ChatMessage m[8];
        size_t nm = messages_of(c, m);
        int gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
        char what[128];
        snprintf(what, sizeof what, "%s, add_generation_prompt %d", cJSON_GetObjectItem(c, "name")->valuestring, gen);
        RenderedSample r = {0};
        cr_assert_eq(chat_render(&t, m, nm, &r, &err), 0, "%s", err.msg);
        if (gen) sample_append_str(&r, chat_generation_prompt(kind));
        const char *want = cJSON_GetObjectItem(c, "text")->valuestring;
        cr_assert(r.len == strlen(want) && memcmp(r.text, want, r.len) == 0, "%s:\n%.*s\nvs transformers\n%s", what,
                  (int)r.len, r.text, want);
        IdVec ids = {0};
        cr_assert_eq(text_encode(tok, r.text, r.len, 0, &ids, &err), 0, "%s", err.msg);
        expect_ids(&ids, cJSON_GetObjectItem(c, "ids"), what);
        if (!gen && m[nm - 1].role == CHAT_ASSISTANT) expect_training_ids(tok, c, what);
        idvec_free(&ids);
        sample_free(&r);
        n++;
    }
    cr_assert_eq(n, 10);
    expect_cache_key_has_the_default(dir, tok);
    cJSON_Delete(fx);
    chat_template_free(&t);
    tokenizer_free(tok);
    free(tp);
    ts_rmtree(tmp);
    free(tmp);
    free(dir);
}

/* `owlore generate` with stdin and its stdout. */
static int gen(const char *args, const char *stdin_text, char **out) {
    char *dir = ts_tmpdir(), cmd[16384];
    char *in = ow_path_join(dir, "in.txt"), *so = ow_path_join(dir, "out.txt");
    ts_write_file(in, stdin_text, strlen(stdin_text));
    snprintf(cmd, sizeof cmd, "'%s' generate --device cpu --threads 2 %s < '%s' > '%s' 2>&1", ts_owlore_binary(), args,
             in, so);
    int rc = ts_run(cmd, NULL);
    *out = ts_read_text(so);
    ts_rmtree(dir);
    free(dir);
    free(in);
    free(so);
    return rc;
}

Test(smollm2_chat, generate_gives_transformers_greedy_ids_and_text) {
    char *tmp = NULL, *dir = smollm2_dir(&tmp);
    if (!dir) return;
    cJSON *fx = fixture("generate/smollm2_greedy.json");
    int max_new = (int)cJSON_GetObjectItem(fx, "max_new_tokens")->valuedouble;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases")) {
        const cJSON *user = cJSON_GetObjectItem(c, "user");
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring,
                   *want = cJSON_GetObjectItem(c, "new_text")->valuestring;
        char args[8192], *out;
        if (user)
            snprintf(args, sizeof args, "--model '%s' --chat --temperature 0 --max-new-tokens %d", dir, max_new);
        else
            snprintf(args, sizeof args, "--model '%s' --prompt '%s' --temperature 0 --max-new-tokens %d", dir,
                     cJSON_GetObjectItem(c, "prompt")->valuestring, max_new);
        char in[512];
        snprintf(in, sizeof in, "%s\n", user ? user->valuestring : "");
        cr_assert_eq(gen(args, in, &out), 0, "%s", out);
        char *line = malloc(strlen(want) + 2);
        snprintf(line, strlen(want) + 2, "%s\n", want);
        cr_assert(strncmp(out, line, strlen(line)) == 0, "%s: printed\n%s\ntransformers\n%s", name, out, want);
        char count[64]; /* the prompt the command rendered has transformers' length (the default system message) */
        snprintf(count, sizeof count, "[prompt %d tokens", cJSON_GetArraySize(cJSON_GetObjectItem(c, "prompt_ids")));
        cr_assert(strstr(out, count), "%s: %s expected:\n%s", name, count, out);
        cr_log_info("%s: \"%s\" (min top-2 gap %.3f)", name, want, cJSON_GetObjectItem(c, "min_top2_gap")->valuedouble);
        free(line);
        free(out);
    }
    /* the ids: the library's greedy decoding on transformers' prompt ids, with the command's stop ids */
    Backend *be;
    Model *m;
    Tokenizer *tok;
    OwError err;
    char *tp = ow_path_join(dir, "tokenizer.json");
    be = backend_create_cpu(2, 0, &err);
    cr_assert(be, "%s", err.msg);
    cr_assert_eq(model_load_hf(be, dir, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(tokenizer_load(tp, &tok, &err), 0, "%s", err.msg);
    int32_t stops[3];
    int nstop = generate_stop_ids(m, tok, chat_end_of_turn(CHAT_TEMPLATE_CHATML), stops);
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases")) {
        const cJSON *p = cJSON_GetObjectItem(c, "prompt_ids");
        int n = cJSON_GetArraySize(p);
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        for (int i = 0; i < n; i++) ids[i] = (int32_t)cJSON_GetArrayItem(p, i)->valuedouble;
        IdVec got = {0};
        cr_assert_eq(generate_greedy(m, ids, n, max_new, stops, nstop, &got, &err), 0, "%s", err.msg);
        expect_ids(&got, cJSON_GetObjectItem(c, "new_ids"), cJSON_GetObjectItem(c, "name")->valuestring);
        idvec_free(&got);
        free(ids);
    }
    tokenizer_free(tok);
    model_free(m);
    be->ops->destroy(be);
    free(tp);
    cJSON_Delete(fx);
    ts_rmtree(tmp);
    free(tmp);
    free(dir);
}

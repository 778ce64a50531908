/* test_generate.c: incremental decoding (model/decoder.h) against the whole-sequence forward, sampling
 * (model/sampling.h), greedy generation against transformers (tests/fixtures/generate/), and the
 * `owlore generate` command. */
#include "backend/backend.h"
#include "core/json.h"
#include "core/rng.h"
#include "core/utf8.h"
#include "data/chat_template.h"
#include "data/text_codec.h"
#include "model/decoder.h"
#include "core/fileio.h"
#include "model/generate.h"
#include "model/model_save.h"
#include "model/sampling.h"
#include "train/run_model.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static Backend *cpu(void) {
    OwError err;
    Backend *be = backend_create_cpu(2, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    return be;
}

/* A small GQA LLaMA config: hidden 32, 4 query heads on 2 kv heads of dim 8. */
static ModelConfig small_config(int64_t vocab, int64_t layers, int64_t max_pos) {
    return (ModelConfig){.architecture = "LlamaForCausalLM",
                         .model_type = "llama",
                         .vocab_size = vocab,
                         .hidden_size = 32,
                         .intermediate_size = 48,
                         .num_layers = layers,
                         .num_heads = 4,
                         .num_kv_heads = 2,
                         .head_dim = 8,
                         .max_position_embeddings = max_pos,
                         .rms_norm_eps = 1e-5,
                         .rope_theta = 10000.0,
                         .bos_token_id = -1,
                         .eos_token_id = -1};
}

static Model *random_from(Backend *be, const ModelConfig *mc, uint64_t seed, double std) {
    Model *m;
    OwError err;
    cr_assert_eq(model_create(be, mc, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(model_init_random(m, seed, std, &err), 0, "%s", err.msg);
    return m;
}

/* A random GQA model: 3 blocks, rope theta 500, untied lm_head (tied: the embedding). */
static Model *random_model(Backend *be, int tied) {
    ModelConfig mc = small_config(37, 3, 64);
    mc.rope_theta = 500.0;
    mc.tie_word_embeddings = tied;
    return random_from(be, &mc, 7, 0.3);
}

static Model *tinystories(Backend *be, const char *offload) {
    char *dir = ts_shared_path("data/real/hf/TinyStories-656K");
    ModelConfig mc;
    OwError err;
    cr_assert_eq(model_config_of(dir, &mc, &err), 0, "%s", err.msg);
    Model *m;
    char base[4096];
    cr_assert_eq(forward_model_load(be, dir, 0, NULL, offload, &mc, 0, &m, base, sizeof base, &err), 0, "%s", err.msg);
    free(dir);
    return m;
}

static void random_ids(int32_t *ids, int64_t n, int64_t V, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, RNG_STREAM_DATA);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)rng_below(&r, (uint64_t)V);
}

/* The logits of every position of ids[0..T) by the whole-sequence forward. */
static float *full_logits(Model *m, const int32_t *ids, int64_t T) {
    OwError err;
    float *lg = malloc((size_t)(T * m->cfg.vocab_size) * sizeof(float));
    cr_assert_eq(model_prepare(m, 1, T, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(model_forward_logits(m, ids, lg, &err), 0, "%s", err.msg);
    return lg;
}

/* Within 1e-5 relative to the row's largest logit (at least 1): the fp32 rounding of GEMMs over other row counts
 * (the forward over T and over a prefix of T differ by up to 8e-6 on TinyStories' logits of up to 13.5). */
static void expect_row(const float *got, const float *want, int64_t V, int64_t pos, const char *what) {
    double worst = 0.0, scale = 1.0;
    for (int64_t i = 0; i < V; i++) {
        worst = fmax(worst, fabs((double)got[i] - (double)want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    cr_expect_leq(worst, 1e-5 * scale, "%s: position %lld: max |logit difference| %g (largest logit %g)", what,
                  (long long)pos, worst, scale);
}

/* Prefills of several lengths p, then one step at a time to T: each position's logits equal the forward's; then
 * a truncation to T / 3 and one prefill of the rest (a chat's next turn). */
static void decode_matches_forward(Model *m, int64_t T, int64_t chunk, uint64_t seed, const char *what) {
    int64_t V = m->cfg.vocab_size;
    int32_t *ids = malloc((size_t)T * sizeof(int32_t));
    random_ids(ids, T, V, seed);
    float *want = full_logits(m, ids, T), *got = malloc((size_t)V * sizeof(float));
    OwError err;
    Decoder *d;
    cr_assert_eq(decoder_create(m, T, chunk, &d, &err), 0, "%s", err.msg);
    int64_t prefills[] = {1, 2, 5, T / 2, T};
    for (size_t k = 0; k < sizeof prefills / sizeof prefills[0]; k++) {
        int64_t p = prefills[k];
        decoder_truncate(d, 0);
        cr_assert_eq(decoder_feed(d, ids, p, got, &err), 0, "%s", err.msg);
        expect_row(got, want + (p - 1) * V, V, p - 1, what);
        for (int64_t t = p; t < T; t++) {
            cr_assert_eq(decoder_feed(d, ids + t, 1, got, &err), 0, "%s", err.msg);
            expect_row(got, want + t * V, V, t, what);
        }
        cr_assert_eq(decoder_len(d), T);
    }
    /* back to a third (the positions after it forgotten), then the rest in one prefill */
    decoder_truncate(d, T / 3);
    cr_assert_eq(decoder_feed(d, ids + T / 3, T - T / 3, got, &err), 0, "%s", err.msg);
    expect_row(got, want + (T - 1) * V, V, T - 1, what);
    decoder_free(d);
    free(ids);
    free(want);
    free(got);
}

Test(decoder, random_gqa_model_matches_the_forward_at_every_position) {
    Backend *be = cpu();
    for (int tied = 0; tied < 2; tied++) {
        Model *m = random_model(be, tied);
        decode_matches_forward(m, 40, DECODER_DEFAULT_CHUNK, 3, tied ? "random tied" : "random untied");
        decode_matches_forward(m, 40, 3, 4, "random, prefill in chunks of 3");
        model_free(m);
    }
    be->ops->destroy(be);
}

Test(decoder, tinystories_matches_the_forward_at_every_position) {
    Backend *be = cpu();
    Model *m = tinystories(be, "none");
    decode_matches_forward(m, 48, DECODER_DEFAULT_CHUNK, 5, "TinyStories-656K");
    model_free(m);
    be->ops->destroy(be);
}

Test(decoder, streamed_blocks_give_the_resident_logits) {
    Backend *be = cpu();
    Model *m = tinystories(be, "host");
    cr_assert(m->store != NULL, "--offload host should place the blocks");
    decode_matches_forward(m, 24, 4, 6, "TinyStories-656K, blocks streamed");
    model_free(m);
    be->ops->destroy(be);
}

Test(decoder, context_limit_and_bad_ids_are_errors) {
    Backend *be = cpu();
    Model *m = random_model(be, 0);
    OwError err;
    Decoder *d;
    cr_expect_neq(decoder_create(m, 65, 8, &d, &err), 0);
    cr_expect(strstr(err.msg, "max_position_embeddings") != NULL, "%s", err.msg);
    cr_assert_eq(decoder_create(m, 4, 8, &d, &err), 0, "%s", err.msg);
    int32_t ids[5] = {1, 2, 3, 4, 5}, bad = 37;
    cr_expect_neq(decoder_feed(d, ids, 5, NULL, &err), 0);
    cr_expect(strstr(err.msg, "do not fit the context") != NULL, "%s", err.msg);
    cr_expect_eq(decoder_len(d), 0);
    cr_expect_neq(decoder_feed(d, &bad, 1, NULL, &err), 0);
    cr_expect(strstr(err.msg, "outside the vocabulary") != NULL, "%s", err.msg);
    cr_assert_eq(decoder_feed(d, ids, 4, NULL, &err), 0, "%s", err.msg);
    cr_expect_neq(decoder_feed(d, ids, 1, NULL, &err), 0);
    decoder_free(d);
    model_free(m);
    be->ops->destroy(be);
}

/* ---- sampling ---- */

Test(sampling, greedy_takes_the_lowest_id_of_equal_maxima) {
    float lg[] = {0.5f, 2.0f, NAN, 2.0f, -1.0f};
    cr_expect_eq(sample_greedy(lg, 5), 1);
    float nan_first[] = {NAN, -3.0f, -2.0f};
    cr_expect_eq(sample_greedy(nan_first, 3), 2);
    TokenSampler s;
    token_sampler_init(&s, 5, 0.0, 0.9, 1);
    cr_expect_eq(token_sampler_next(&s, lg), 1);
    token_sampler_free(&s);
}

/* Draws n tokens at (T, top_p) from logits with the seed; counts per id. */
static void draw(const float *lg, int64_t V, double T, double top_p, uint64_t seed, int n, int *count, int32_t *seq) {
    TokenSampler s;
    token_sampler_init(&s, V, T, top_p, seed);
    memset(count, 0, (size_t)V * sizeof(int));
    for (int i = 0; i < n; i++) {
        int32_t id = token_sampler_next(&s, lg);
        cr_assert(id >= 0 && id < V);
        count[id]++;
        if (seq) seq[i] = id;
    }
    token_sampler_free(&s);
}

Test(sampling, the_same_seed_gives_the_same_ids) {
    float lg[50];
    for (int i = 0; i < 50; i++) lg[i] = (float)sin(i * 1.7) * 3.0f;
    int c1[50], c2[50], c3[50];
    int32_t a[200], b[200], c[200];
    draw(lg, 50, 0.8, 0.9, 42, 200, c1, a);
    draw(lg, 50, 0.8, 0.9, 42, 200, c2, b);
    draw(lg, 50, 0.8, 0.9, 43, 200, c3, c);
    cr_expect_arr_eq(a, b, sizeof a, "the same seed drew different ids");
    cr_expect(memcmp(a, c, sizeof a) != 0, "another seed drew the same 200 ids");
}

Test(sampling, a_tiny_top_p_is_greedy) {
    float lg[64];
    int count[64];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < 64; i++) lg[i] = (float)cos(i * 0.37 + trial) * 4.0f;
        if (trial % 2) lg[5] = lg[sample_greedy(lg, 64)]; /* a tie: the lower id wins */
        draw(lg, 64, 1.5, 1e-9, (uint64_t)trial, 50, count, NULL);
        cr_expect_eq(count[sample_greedy(lg, 64)], 50, "trial %d: top-p 1e-9 drew another token than greedy", trial);
    }
}

/* Empirical frequencies of n draws against p, within 5 standard deviations. */
static void expect_frequencies(const int *count, const double *p, int V, int n, const char *what) {
    for (int i = 0; i < V; i++) {
        double f = (double)count[i] / n, sd = sqrt(p[i] * (1 - p[i]) / n);
        cr_expect(fabs(f - p[i]) <= 5 * sd + 1e-12, "%s: token %d drawn with frequency %.4f, expected %.4f", what, i, f,
                  p[i]);
    }
}

Test(sampling, temperature_and_top_p_give_the_expected_distribution) {
    float lg[4] = {2.0f, 1.0f, 0.5f, -1.0f};
    int n = 40000, count[4];
    for (int k = 0; k < 3; k++) {
        double T = k == 0 ? 1.0 : k == 1 ? 0.5 : 2.0, p[4], Z = 0;
        for (int i = 0; i < 4; i++) Z += p[i] = exp(lg[i] / T);
        for (int i = 0; i < 4; i++) p[i] /= Z;
        draw(lg, 4, T, 1.0, 11 + (uint64_t)k, n, count, NULL);
        char what[64];
        snprintf(what, sizeof what, "temperature %g", T);
        expect_frequencies(count, p, 4, n, what);
    }
    /* at T = 1 the probabilities are {.609, .224, .136, .030}: top-p 0.8 keeps the first two (.833) */
    double Z = exp(2.0) + exp(1.0), p2[4] = {exp(2.0) / Z, exp(1.0) / Z, 0, 0};
    draw(lg, 4, 1.0, 0.8, 12, n, count, NULL);
    expect_frequencies(count, p2, 4, n, "top-p 0.8");
    cr_expect_eq(count[2] + count[3], 0, "top-p 0.8 drew a token outside the nucleus");
}

/* ---- generation ---- */

static int32_t *json_ids(const cJSON *arr, int64_t *n) {
    *n = cJSON_GetArraySize(arr);
    int32_t *ids = malloc((size_t)(*n > 0 ? *n : 1) * sizeof(int32_t));
    for (int64_t i = 0; i < *n; i++) ids[i] = (int32_t)cJSON_GetArrayItem(arr, (int)i)->valuedouble;
    return ids;
}

/* Greedy generation of every fixture case (64 new ids from BOS and from a prompt) equals transformers'. */
static void greedy_matches_transformers(const char *offload) {
    char *path = ts_fixture_path("generate/tinystories_greedy.json");
    OwError err;
    cJSON *fx = json_parse_file(path, &err);
    cr_assert(fx != NULL, "%s", err.msg);
    Backend *be = cpu();
    Model *m = tinystories(be, offload);
    int32_t eos = (int32_t)cJSON_GetObjectItem(fx, "eos_token_id")->valuedouble;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases")) {
        int64_t np, nw;
        int32_t *prompt = json_ids(cJSON_GetObjectItem(c, "prompt_ids"), &np);
        int32_t *want = json_ids(cJSON_GetObjectItem(c, "new_ids"), &nw);
        IdVec got = {0};
        cr_assert_eq(generate_greedy(m, prompt, np, 64, &eos, 1, &got, &err), 0, "%s", err.msg);
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        cr_expect_eq((int64_t)got.len, nw, "%s: %zu new ids, transformers %lld", name, got.len, (long long)nw);
        for (int64_t i = 0; i < nw && i < (int64_t)got.len; i++)
            if (got.data[i] != want[i]) {
                cr_expect_fail("%s (offload %s): new id %lld is %d, transformers %d", name, offload, (long long)i,
                               got.data[i], want[i]);
                break;
            }
        idvec_free(&got);
        free(prompt);
        free(want);
    }
    model_free(m);
    be->ops->destroy(be);
    cJSON_Delete(fx);
    free(path);
}

Test(generate, tinystories_greedy_equals_transformers) { greedy_matches_transformers("none"); }
Test(generate, tinystories_greedy_with_streamed_blocks_equals_transformers) { greedy_matches_transformers("host"); }

/* Sampled ids of a model at a seed, with stop ids, generated after a prompt. */
static void sampled(Model *m, uint64_t seed, IdVec *out, GenerateStats *st) {
    OwError err;
    Decoder *d;
    cr_assert_eq(decoder_create(m, 48, 8, &d, &err), 0, "%s", err.msg);
    TokenSampler s;
    token_sampler_init(&s, m->cfg.vocab_size, 0.9, 0.9, seed);
    int32_t prompt[3] = {1, 5, 9}, stop = 2;
    GenerateOptions o = {40, &stop, 1, NULL, NULL};
    cr_assert_eq(generate_tokens(d, &s, prompt, 3, &o, out, st, &err), 0, "%s", err.msg);
    token_sampler_free(&s);
    decoder_free(d);
}

Test(generate, sampling_repeats_with_the_seed_and_streamed_blocks) {
    Backend *be = cpu();
    Model *m = tinystories(be, "none"), *h = tinystories(be, "host");
    IdVec a = {0}, b = {0}, c = {0}, e = {0};
    GenerateStats sa, sb, sc, se;
    sampled(m, 5, &a, &sa);
    sampled(m, 5, &b, &sb);
    sampled(h, 5, &c, &sc);
    sampled(m, 6, &e, &se);
    cr_assert_eq(a.len, b.len);
    cr_expect_arr_eq(a.data, b.data, a.len * sizeof(int32_t), "the same seed sampled other ids");
    cr_assert_eq(a.len, c.len);
    cr_expect_arr_eq(a.data, c.data, a.len * sizeof(int32_t), "streamed blocks sampled other ids");
    cr_expect(e.len != a.len || memcmp(a.data, e.data, a.len * sizeof(int32_t)) != 0, "another seed, the same ids");
    cr_expect_eq(sa.prompt_tokens, 3);
    cr_expect_eq(sa.new_tokens, (int64_t)a.len);
    cr_expect(sa.stop == GEN_STOP_MAX_NEW || (sa.stop == GEN_STOP_ID && a.data[a.len - 1] == 2));
    idvec_free(&a);
    idvec_free(&b);
    idvec_free(&c);
    idvec_free(&e);
    model_free(m);
    model_free(h);
    be->ops->destroy(be);
}

static int stop_after_3(void *ctx, int32_t id) {
    (void)id;
    return ++*(int *)ctx == 3;
}

Test(generate, stops_at_the_context_the_caller_and_max_new) {
    Backend *be = cpu();
    Model *m = random_model(be, 0);
    OwError err;
    Decoder *d;
    cr_assert_eq(decoder_create(m, 10, 4, &d, &err), 0, "%s", err.msg);
    TokenSampler s;
    token_sampler_init(&s, m->cfg.vocab_size, 0.0, 1.0, 0);
    int32_t prompt[4] = {1, 2, 3, 4};
    IdVec out = {0};
    GenerateStats st;
    GenerateOptions o = {100, NULL, 0, NULL, NULL};
    cr_assert_eq(generate_tokens(d, &s, prompt, 4, &o, &out, &st, &err), 0, "%s", err.msg);
    cr_expect_eq(st.stop, GEN_STOP_CONTEXT);
    cr_expect_eq(out.len, 7, "a context of 10 after 4 prompt tokens: 6 fed and a 7th chosen, got %zu", out.len);
    int calls = 0;
    decoder_truncate(d, 0);
    out.len = 0;
    o = (GenerateOptions){100, NULL, 0, stop_after_3, &calls};
    cr_assert_eq(generate_tokens(d, &s, prompt, 4, &o, &out, &st, &err), 0, "%s", err.msg);
    cr_expect_eq(st.stop, GEN_STOP_CALLER);
    cr_expect_eq(out.len, 3);
    decoder_truncate(d, 0);
    out.len = 0;
    o = (GenerateOptions){2, NULL, 0, NULL, NULL};
    cr_assert_eq(generate_tokens(d, &s, prompt, 4, &o, &out, &st, &err), 0, "%s", err.msg);
    cr_expect_eq(st.stop, GEN_STOP_MAX_NEW);
    cr_expect_eq(out.len, 2);
    cr_expect_eq(decoder_len(d), 5, "the last chosen id is not fed");
    idvec_free(&out);
    token_sampler_free(&s);
    decoder_free(d);
    model_free(m);
    be->ops->destroy(be);
}

/* ---- incremental detokenization ---- */

/* Streams ids one at a time: no chunk ends in half a character or in U+FFFD, and the chunks make want. */
static void expect_stream(const Tokenizer *tok, const int32_t *ids, size_t n, const char *want) {
    TextStream ts;
    text_stream_init(&ts, tok);
    OwError err;
    size_t cap = strlen(want) + 64, got = 0;
    char *all = calloc(cap, 1), *chunk;
    size_t len;
    for (size_t i = 0; i <= n; i++) {
        int rc =
            i < n ? text_stream_push(&ts, ids[i], &chunk, &len, &err) : text_stream_finish(&ts, &chunk, &len, &err);
        cr_assert_eq(rc, 0, "%s", err.msg);
        for (size_t k = 0; k < len;) {
            uint32_t cp;
            size_t step = utf8_decode_checked(chunk + k, len - k, &cp);
            cr_assert(step > 0 && cp != 0xFFFD, "chunk %zu \"%s\" splits a character at byte %zu", i, chunk, k);
            k += step;
        }
        cr_assert(got + len < cap);
        memcpy(all + got, chunk, len);
        got += len;
        free(chunk);
    }
    cr_expect_str_eq(all, want);
    free(all);
    text_stream_free(&ts);
}

Test(text_stream, byte_fallback_pieces_come_out_as_whole_characters) {
    char *path = ts_shared_path("data/real/tokenizers/mistral-minueza");
    Tokenizer *tok;
    OwError err;
    cr_assert_eq(tokenizer_load(path, &tok, &err), 0, "%s", err.msg);
    const char *text = "naïve café 日本語 \xF0\x9F\xA6\x89 ok <|im_end|>";
    IdVec ids = {0};
    cr_assert_eq(text_encode(tok, text, strlen(text), 1, &ids, &err), 0, "%s", err.msg);
    int fallback = 0;
    for (size_t i = 0; i < ids.len; i++) fallback += ids.data[i] >= 3 && ids.data[i] < 259; /* <0x00> .. <0xFF> */
    cr_assert_geq(fallback, 4, "the owl emoji should take 4 byte pieces");
    char *want;
    size_t wlen;
    cr_assert_eq(text_decode(tok, ids.data, ids.len, &want, &wlen, &err), 0, "%s", err.msg);
    cr_expect_str_eq(want, "naïve café 日本語 \xF0\x9F\xA6\x89 ok ", "specials are skipped");
    expect_stream(tok, ids.data, ids.len, want);
    free(want);
    idvec_free(&ids);
    tokenizer_free(tok);
    free(path);
}

Test(text_stream, bytes_wait_for_the_whole_sequence) {
    const char *text = "a\xC3\xA9\xE6\x97\xA5z";
    IdVec ids = {0};
    OwError err;
    cr_assert_eq(text_encode(NULL, text, strlen(text), 1, &ids, &err), 0);
    cr_assert_eq(ids.len, 7, "bytes have no BOS");
    expect_stream(NULL, ids.data, ids.len, text);
    TextStream ts;
    text_stream_init(&ts, NULL);
    char *chunk;
    size_t len;
    int32_t half = 0xC3;
    cr_assert_eq(text_stream_push(&ts, half, &chunk, &len, &err), 0);
    cr_expect_eq(len, 0, "half of \"é\" was given out");
    free(chunk);
    cr_assert_eq(text_stream_finish(&ts, &chunk, &len, &err), 0);
    cr_expect_eq(len, 1, "the end gives out what is held");
    free(chunk);
    text_stream_free(&ts);
    idvec_free(&ids);
}

/* ---- the command ---- */

/* `owlore generate ARGS` on the CPU (stdin from stdin_text when given): exit status, stdout and stderr. */
static int gen(const char *args, const char *stdin_text, char **out, char **errout) {
    char *dir = ts_tmpdir(), cmd[8192];
    char *in = ow_path_join(dir, "in.txt"), *so = ow_path_join(dir, "out.txt"), *se = ow_path_join(dir, "err.txt");
    ts_write_file(in, stdin_text ? stdin_text : "", stdin_text ? strlen(stdin_text) : 0);
    snprintf(cmd, sizeof cmd, "'%s' generate --device cpu --threads 1 %s < '%s' > '%s' 2> '%s'", ts_owlore_binary(),
             args, in, so, se);
    int rc = ts_run(cmd, NULL);
    *out = ts_read_text(so);
    *errout = ts_read_text(se);
    ts_rmtree(dir);
    free(dir);
    free(in);
    free(so);
    free(se);
    return rc;
}

/* Lines of s that contain needle. */
static int count_lines_with(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

Test(cmd_generate, help_lists_the_flags) {
    char *out, *err;
    cr_assert_eq(gen("--help", NULL, &out, &err), 0, "%s", err);
    const char *flags[] = {"--model", "--prompt", "--chat",    "--system",  "--max-new-tokens", "--temperature",
                           "--top-p", "--seed",   "--max-len", "--offload", "--checkpoint",     "--device"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        cr_expect(strstr(out, flags[i]) != NULL, "--help does not mention %s", flags[i]);
    free(out);
    free(err);
}

/* --prompt, greedy: stdout is the decode of transformers' ids (streamed piece by piece), stderr the figures. */
Test(cmd_generate, prompt_prints_the_transformers_text) {
    char *fxp = ts_fixture_path("generate/tinystories_greedy.json"),
         *ts = ts_shared_path("data/real/hf/TinyStories-656K");
    OwError e;
    cJSON *fx = json_parse_file(fxp, &e);
    cr_assert(fx != NULL, "%s", e.msg);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(fx, "cases"), 1);
    int64_t nw;
    int32_t *want = json_ids(cJSON_GetObjectItem(c, "new_ids"), &nw);
    Tokenizer *tok;
    cr_assert_eq(tokenizer_load(ts, &tok, &e), 0, "%s", e.msg);
    char *text, args[4096], *out, *err;
    size_t len;
    cr_assert_eq(text_decode(tok, want, (size_t)nw, &text, &len, &e), 0, "%s", e.msg);
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "--model '%s' --prompt '%s' --temperature 0 --max-new-tokens 64 --offload %s", ts,
                 cJSON_GetObjectItem(c, "prompt")->valuestring, k ? "host" : "none");
        cr_assert_eq(gen(args, NULL, &out, &err), 0, "%s", err);
        cr_expect_eq(strlen(out), len + 1, "stdout:\n%s\nexpected:\n%s", out, text);
        cr_expect(strncmp(out, text, len) == 0 && out[len] == '\n', "stdout:\n%s\nexpected:\n%s", out, text);
        cr_expect(strstr(err, "prompt 10 tokens") && strstr(err, "64 new tokens") && strstr(err, "decode") &&
                      strstr(err, "tokens/s") && strstr(err, "stopped: --max-new-tokens"),
                  "%s", err);
        free(out);
        free(err);
    }
    free(text);
    free(want);
    tokenizer_free(tok);
    cJSON_Delete(fx);
    free(fxp);
    free(ts);
}

/* Sampled text at a seed: the same with blocks streamed, another with another seed. */
Test(cmd_generate, sampling_repeats_with_the_seed_and_offload) {
    char *ts = ts_shared_path("data/real/hf/TinyStories-656K"), args[4096], *out[3], *err;
    const char *extra[3] = {"--seed 9 --offload none", "--seed 9 --offload host", "--seed 10"};
    for (int k = 0; k < 3; k++) {
        snprintf(args, sizeof args, "--model '%s' --prompt 'The cat' --max-new-tokens 48 --temperature 1.0 %s", ts,
                 extra[k]);
        cr_assert_eq(gen(args, NULL, &out[k], &err), 0, "%s", err);
        free(err);
    }
    cr_expect_str_eq(out[0], out[1], "streamed blocks gave other text");
    cr_expect_str_neq(out[0], out[2], "another seed gave the same text");
    for (int k = 0; k < 3; k++) free(out[k]);
    free(ts);
}

/* A random chatml model (the Minueza-32M tokenizer: <|im_start|>, <|im_end|>, its chat_template) in dir. */
static char *chatml_model(void) {
    char *dir = ts_tmpdir(), *mdir = ow_path_join(dir, "chatml"),
         *tok = ts_shared_path("data/real/tokenizers/mistral-minueza");
    Backend *be = cpu();
    ModelConfig mc = small_config(32002, 2, 256);
    mc.bos_token_id = 1;
    mc.eos_token_id = 32000;
    Model *m = random_from(be, &mc, 3, 0.5);
    OwError err;
    cr_assert_eq(model_save_hf(m, mdir, OW_F32, 0, tok, &err), 0, "%s", err.msg);
    model_free(m);
    be->ops->destroy(be);
    free(tok);
    free(dir);
    return mdir;
}

/* --chat with piped stdin: a reply and a figures line per turn; the second turn feeds only what the cache lacks. */
Test(cmd_generate, chat_keeps_the_cache_across_turns) {
    char *m = chatml_model(), args[4096], *out, *err;
    snprintf(args, sizeof args,
             "--model '%s' --chat --system 'Be brief.' --temperature 0 --max-new-tokens 6 --prompt 'Hello there'", m);
    cr_assert_eq(gen(args, "What is an owl?\n\nAnd a mouse?\n", &out, &err), 0, "%s", err);
    cr_expect_eq(count_lines_with(err, "[prompt "), 3, "three turns (the prompt and two lines of stdin):\n%s", err);
    long long prompt[3], fed[3];
    const char *p = err;
    for (int k = 0; k < 3 && (p = strstr(p, "[prompt ")) != NULL; k++, p++)
        cr_assert_eq(sscanf(p, "[prompt %lld tokens (%lld fed)", &prompt[k], &fed[k]), 2, "%s", p);
    cr_expect_eq(fed[0], prompt[0], "the first turn feeds everything");
    for (int k = 1; k < 3; k++) {
        cr_expect_gt(prompt[k], prompt[k - 1], "%s", err);
        cr_expect_lt(fed[k], prompt[k] - prompt[k - 1] + 8, "turn %d fed %lld of %lld tokens:\n%s", k, fed[k],
                     prompt[k], err);
    }
    free(out);
    free(err);
    ts_rmtree(m);
    free(m);
}

Test(cmd_generate, chat_without_a_known_template_is_refused) {
    char *ts = ts_shared_path("data/real/hf/TinyStories-656K"), args[4096], *out, *err;
    snprintf(args, sizeof args, "--model '%s' --chat", ts);
    cr_expect_eq(gen(args, "hi\n", &out, &err), 1);
    cr_expect(strstr(err, "chat_template") && strstr(err, "hint: --prompt"), "%s", err);
    free(out);
    free(err);
    free(ts);
}

Test(cmd_generate, bad_flags_are_refused) {
    char *ts = ts_shared_path("data/real/hf/TinyStories-656K"), args[4096], *out, *err;
    struct {
        const char *args, *msg;
        int rc;
    } cases[] = {{"--prompt hi", "--model is required", 2},
                 {"--model M", "--prompt TEXT, --chat", 2},
                 {"--model M --prompt hi --top-p 0", "--top-p", 2},
                 {"--model M --prompt hi --top-p 1.5", "--top-p", 2},
                 {"--model M --prompt hi --temperature -1", "--temperature", 2},
                 {"--model M --prompt hi --max-new-tokens 0", "--max-new-tokens", 2},
                 {"--model M --prompt hi --system x", "--system needs --chat", 2},
                 {"--model M --prompt hi --bogus 1", "bogus", 2},
                 {"--model M --prompt hi --max-len 513", "max_position_embeddings 512", 1},
                 {"--model M --prompt hi --offload sideways", "sideways", 1},
                 {"--model /nonexistent/model --prompt hi", "/nonexistent/model", 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char a[1024];
        snprintf(a, sizeof a, "%s", cases[i].args);
        char *mpos = strstr(a, "--model M");
        if (mpos)
            snprintf(args, sizeof args, "--model '%s'%s", ts, mpos + 9);
        else
            snprintf(args, sizeof args, "%s", a);
        cr_expect_eq(gen(args, NULL, &out, &err), cases[i].rc, "%s: %s", cases[i].args, err);
        cr_expect(strstr(err, cases[i].msg) != NULL, "%s: no \"%s\" in: %s", cases[i].args, cases[i].msg, err);
        free(out);
        free(err);
    }
    free(ts);
}

/* A prompt longer than --max-len is an error with a hint; generation stops cleanly at the context. */
Test(cmd_generate, the_context_limit) {
    char *ts = ts_shared_path("data/real/hf/TinyStories-656K"), args[4096], *out, *err;
    snprintf(args, sizeof args, "--model '%s' --prompt 'Once upon a time there was a dog' --max-len 4", ts);
    cr_expect_eq(gen(args, NULL, &out, &err), 1);
    cr_expect(strstr(err, "do not fit the context of 4") && strstr(err, "hint"), "%s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "--model '%s' --prompt 'Once upon a time' --max-len 12 --temperature 0", ts);
    cr_expect_eq(gen(args, NULL, &out, &err), 0, "%s", err);
    cr_expect(strstr(err, "prompt 6 tokens") && strstr(err, "7 new tokens") && strstr(err, "the context is full"), "%s",
              err);
    free(out);
    free(err);
    free(ts);
}

/* A byte-level model (no tokenizer.json) and a training run of it as --model: the run's newest checkpoint and its
 * final model give the same text; --chat is refused (no template). */
Test(cmd_generate, byte_model_and_a_run_directory) {
    char *bm = ts_fixture_path("eval/byte_model"), *text = ts_fixture_path("eval/byte_text.txt");
    char *dir = ts_tmpdir(), *run = ow_path_join(dir, "run"), *final = ow_path_join(run, "model"), cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' train --model '%s' --data '%s' --out '%s' --device cpu --threads 1 --steps 3 --batch-size 2 "
             "--block-size 16 --method full --lr 0.01 --val-split 0 > /dev/null 2>&1",
             ts_owlore_binary(), bm, text, run);
    cr_assert_eq(ts_run(cmd, NULL), 0, "%s", cmd);
    char args[8192], *out[3], *err;
    const char *models[3] = {bm, run, final};
    for (int k = 0; k < 3; k++) {
        snprintf(args, sizeof args, "--model '%s' --prompt 'caf\xC3\xA9 ' --temperature 0 --max-new-tokens 24",
                 models[k]);
        cr_assert_eq(gen(args, NULL, &out[k], &err), 0, "%s: %s", models[k], err);
        cr_expect(strstr(err, "prompt 6 tokens"), "bytes: %s", err);
        free(err);
    }
    cr_expect_str_eq(out[1], out[2], "the run directory and its final model differ");
    cr_expect_str_neq(out[0], out[1], "three steps of lr 0.01 left the greedy text unchanged");
    free(out[0]); /* out[0] takes the chat refusal's stdout next */
    snprintf(args, sizeof args, "--model '%s' --chat", bm);
    cr_expect_eq(gen(args, "hi\n", &out[0], &err), 1);
    cr_expect(strstr(err, "chat_template"), "%s", err);
    free(err);
    for (int k = 0; k < 3; k++) free(out[k]);
    ts_rmtree(dir);
    free(dir);
    free(run);
    free(final);
    free(bm);
    free(text);
}

/* ---- chat template detection ---- */

Test(chat_detect, the_shipped_templates_and_others) {
    char *path = ts_fixture_path("data/expected.json");
    OwError err;
    cJSON *fx = json_parse_file(path, &err);
    cr_assert(fx != NULL, "%s", err.msg);
    const cJSON *tpl = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "meta"), "templates"), *t;
    int n = 0;
    cJSON_ArrayForEach(t, tpl) {
        ChatTemplateKind want = CHAT_TEMPLATE_NONE;
        for (int k = 1; chat_template_names[k]; k++)
            if (strcmp(chat_template_names[k], t->string) == 0) want = (ChatTemplateKind)k;
        cr_expect_eq(chat_template_detect(t->valuestring), want, "template %s", t->string);
        n++;
    }
    cr_expect_eq(n, 4, "the fixture's four Jinja templates");
    cr_expect_eq(chat_template_detect("{{ '<|user|>\\n' + message['content'] + eos_token }}"), CHAT_TEMPLATE_NONE);
    cr_expect_eq(chat_template_detect(NULL), CHAT_TEMPLATE_NONE);
    char *tiny = ts_shared_path("data/real/tokenizers/llama2-tinyllama"),
         *mz = ts_shared_path("data/real/tokenizers/mistral-minueza");
    ChatTemplateKind k;
    cr_assert_eq(chat_template_detect_dir(tiny, &k, &err), 0, "%s", err.msg);
    cr_expect_eq(k, CHAT_TEMPLATE_NONE, "TinyLlama's zephyr-style template is none of owlore's");
    cr_assert_eq(chat_template_detect_dir(mz, &k, &err), 0, "%s", err.msg);
    cr_expect_eq(k, CHAT_TEMPLATE_CHATML);
    char *dir = ts_tmpdir(), *cfg = ow_path_join(dir, "tokenizer_config.json");
    cr_assert_eq(chat_template_detect_dir(dir, &k, &err), 0, "no tokenizer_config.json: %s", err.msg);
    cr_expect_eq(k, CHAT_TEMPLATE_NONE);
    ts_write_file(cfg, "{\"chat_template\": ", 18);
    cr_expect_neq(chat_template_detect_dir(dir, &k, &err), 0, "a truncated tokenizer_config.json");
    cr_expect(strstr(err.msg, "tokenizer_config.json") != NULL, "%s", err.msg);
    cr_expect_str_eq(chat_generation_prompt(CHAT_TEMPLATE_CHATML), "<|im_start|>assistant\n");
    cr_expect_str_eq(chat_generation_prompt(CHAT_TEMPLATE_LLAMA3), "<|start_header_id|>assistant<|end_header_id|>\n\n");
    cr_expect_str_eq(chat_generation_prompt(CHAT_TEMPLATE_LLAMA2), "");
    cr_expect_str_eq(chat_end_of_turn(CHAT_TEMPLATE_LLAMA3), "<|eot_id|>");
    cr_expect_null(chat_end_of_turn(CHAT_TEMPLATE_MISTRAL));
    ts_rmtree(dir);
    free(dir);
    free(cfg);
    free(tiny);
    free(mz);
    cJSON_Delete(fx);
    free(path);
}

/* cmd_generate.c: `owlore generate`: text from a model (a Hugging Face
 * directory or a training run) with incremental decoding (model/generate.h):
 * a raw completion of --prompt, or a conversation in the model's chat
 * template (--chat) whose user turns come one per line from stdin, keeping
 * the key/value cache across turns (each turn's rendering is tokenized whole
 * and only what differs from the cached ids is fed again).
 *
 * Text goes to stdout as it is generated (data/text_codec.h: incremental
 * detokenization that never prints half a character); counts and rates go to
 * stderr. */
#include "cmd/commands.h"
#include "core/args.h"
#include "core/fileio.h"
#include "data/chat_template.h"
#include "data/text_codec.h"
#include "model/generate.h"
#include "train/run_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- streaming a reply to stdout ---- */

typedef struct Streamer {
    TextStream ts;
    const int32_t *stops;
    int nstop;
    OwError *err;
    int failed;
} Streamer;

static void streamer_write(Streamer *s, int rc, char *text, size_t len) {
    if (rc != 0) s->failed = 1;
    if (rc == 0 && len > 0) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    free(text);
}

static int streamer_push(void *ctx, int32_t id) {
    Streamer *s = ctx;
    for (int i = 0; i < s->nstop; i++)
        if (s->stops[i] == id) return 0; /* a stop id has no text */
    char *text;
    size_t len;
    int rc = text_stream_push(&s->ts, id, &text, &len, s->err);
    streamer_write(s, rc, text, len);
    return s->failed;
}

/* ---- a session: the model, its decoder and what the decoder holds ---- */

typedef struct GenArgs {
    const char *model, *checkpoint, *prompt, *system, *device, *offload;
    int chat;
    int64_t max_new, max_len, seed, threads;
    double temperature, top_p;
    size_t gpu_mem;
} GenArgs;

typedef struct Session {
    Backend *be;
    Model *m;
    Tokenizer *tok; /* NULL: a byte-level model */
    Decoder *dec;
    TokenSampler sampler;
    ChatTemplateKind kind; /* the model's chat template (NONE when it has none owlore knows) */
    int32_t stops[3];
    int nstop;
    int64_t max_new;
    IdVec held; /* the ids the decoder holds, in order */
} Session;

/* The tokenizer (base_dir's tokenizer.json; none: bytes), the chat template and the stop ids. */
static int session_text(Session *s, const char *base_dir, OwError *err) {
    char *tokpath = base_dir[0] ? ow_path_join(base_dir, "tokenizer.json") : NULL;
    int rc = 0;
    if (tokpath && ow_path_exists(tokpath)) {
        rc = tokenizer_load(tokpath, &s->tok, err);
        if (rc == 0 && tokenizer_vocab_size(s->tok) > s->m->cfg.vocab_size)
            rc = ow_fail(err, "%s has %lld tokens, more than the model's vocab_size %lld", tokpath,
                         (long long)tokenizer_vocab_size(s->tok), (long long)s->m->cfg.vocab_size);
    } else if (s->m->cfg.vocab_size < 256) {
        rc = ow_fail(err,
                     "the model has no tokenizer.json and a vocabulary of %lld ids, too small for bytes (hint: "
                     "--model a directory with its tokenizer files)",
                     (long long)s->m->cfg.vocab_size);
    }
    free(tokpath);
    if (rc == 0 && base_dir[0]) rc = chat_template_detect_dir(base_dir, &s->kind, err);
    if (rc != 0) return -1;
    s->nstop = generate_stop_ids(s->m, s->tok, chat_end_of_turn(s->kind), s->stops);
    return 0;
}

static int session_open(Session *s, const GenArgs *a, OwError *err) {
    memset(s, 0, sizeof *s);
    s->max_new = a->max_new;
    s->be = backend_create(a->device, &(BackendOptions){.threads = (int)a->threads, .mem_cap = a->gpu_mem}, err);
    if (!s->be) return -1;
    ModelConfig mc;
    if (model_config_of(a->model, &mc, err) != 0) return -1;
    int64_t ctx = a->max_len > 0 ? a->max_len : mc.max_position_embeddings;
    if (ctx > mc.max_position_embeddings)
        return ow_fail(err, "--max-len %lld exceeds the model's max_position_embeddings %lld", (long long)ctx,
                       (long long)mc.max_position_embeddings);
    char base[4096];
    size_t fwd = decoder_bytes(&mc, s->be->act_dtype, ctx, DECODER_DEFAULT_CHUNK);
    if (forward_model_load(s->be, a->model, 1, a->checkpoint, a->offload, &mc, fwd, &s->m, base, sizeof base, err) !=
            0 ||
        session_text(s, base, err) != 0 || decoder_create(s->m, ctx, DECODER_DEFAULT_CHUNK, &s->dec, err) != 0)
        return -1;
    token_sampler_init(&s->sampler, s->m->cfg.vocab_size, a->temperature, a->top_p, (uint64_t)a->seed);
    return 0;
}

static void session_close(Session *s) {
    decoder_free(s->dec);
    token_sampler_free(&s->sampler);
    idvec_free(&s->held);
    tokenizer_free(s->tok);
    model_free(s->m);
    if (s->be) s->be->ops->destroy(s->be);
}

static const char *stop_name(GenStop stop) {
    switch (stop) {
    case GEN_STOP_ID: return "end of text";
    case GEN_STOP_MAX_NEW: return "--max-new-tokens";
    case GEN_STOP_CONTEXT: return "the context is full";
    default: return "an error";
    }
}

/* total: the prompt's tokens (the conversation so far in a chat); st->prompt_tokens of them were fed. */
static void print_stats(const GenerateStats *st, int64_t total) {
    fprintf(stderr,
            "[prompt %lld tokens (%lld fed) in %.3f s, %.1f tokens/s; %lld new tokens, decode %.1f tokens/s "
            "(%lld steps in %.3f s); stopped: %s]\n",
            (long long)total, (long long)st->prompt_tokens, st->prefill_s,
            st->prefill_s > 0 ? st->prompt_tokens / st->prefill_s : 0.0, (long long)st->new_tokens,
            st->decode_s > 0 ? st->steps / st->decode_s : 0.0, (long long)st->steps, st->decode_s, stop_name(st->stop));
}

/* Generates the reply to ids (the whole conversation or prompt): only what differs from the ids the decoder holds
 * is fed. The reply is streamed to stdout and its ids, without a stop id, go to reply. */
static int respond(Session *s, const IdVec *ids, IdVec *reply, OwError *err) {
    size_t keep = 0;
    while (keep < s->held.len && keep < ids->len && s->held.data[keep] == ids->data[keep]) keep++;
    if (keep == ids->len) keep--; /* the last id is fed again for its logits */
    decoder_truncate(s->dec, (int64_t)keep);
    s->held.len = keep;
    int64_t room = decoder_max_len(s->dec) - (int64_t)keep;
    if ((int64_t)(ids->len - keep) > room)
        return ow_fail(err,
                       "%zu tokens do not fit the context of %lld positions (hint: a larger --max-len, up to "
                       "the model's max_position_embeddings, or a shorter prompt)",
                       ids->len, (long long)decoder_max_len(s->dec));
    Streamer st = {{0}, s->stops, s->nstop, err, 0};
    text_stream_init(&st.ts, s->tok);
    GenerateOptions o = {s->max_new, s->stops, s->nstop, streamer_push, &st};
    GenerateStats gs;
    reply->len = 0;
    int rc = generate_tokens(s->dec, &s->sampler, ids->data + keep, (int64_t)(ids->len - keep), &o, reply, &gs, err);
    if (rc == 0 && !st.failed) {
        char *text;
        size_t len;
        int frc = text_stream_finish(&st.ts, &text, &len, err);
        streamer_write(&st, frc, text, len);
    }
    fputc('\n', stdout);
    fflush(stdout);
    text_stream_free(&st.ts);
    if (rc != 0 || st.failed) return -1;
    for (size_t i = keep; i < ids->len; i++) idvec_push(&s->held, ids->data[i]);
    for (size_t i = 0; i + 1 < reply->len; i++) idvec_push(&s->held, reply->data[i]); /* the last is not fed */
    if (gs.stop == GEN_STOP_ID) reply->len--;
    print_stats(&gs, (int64_t)ids->len);
    return 0;
}

static int run_prompt(Session *s, const char *prompt, OwError *err) {
    IdVec ids = {0}, reply = {0};
    int rc = text_encode(s->tok, prompt, strlen(prompt), 1, &ids, err);
    if (rc == 0 && ids.len == 0)
        rc = ow_fail(err, "the prompt is empty and the model adds no BOS: nothing to continue from");
    if (rc == 0) rc = respond(s, &ids, &reply, err);
    idvec_free(&ids);
    idvec_free(&reply);
    return rc;
}

/* ---- chat ---- */

typedef struct Conversation {
    ChatMessage *msgs;
    char **owned;
    size_t n;
} Conversation;

static void conv_add(Conversation *c, ChatRole role, const char *text, size_t len) {
    c->msgs = ow_xrealloc(c->msgs, (c->n + 1) * sizeof *c->msgs);
    c->owned = ow_xrealloc(c->owned, (c->n + 1) * sizeof *c->owned);
    char *copy = ow_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = 0;
    c->owned[c->n] = copy;
    c->msgs[c->n++] = (ChatMessage){role, copy, len};
}

static void conv_free(Conversation *c) {
    for (size_t i = 0; i < c->n; i++) free(c->owned[i]);
    free(c->msgs);
    free(c->owned);
}

/* One user turn: the conversation rendered with the generation prompt, the reply streamed and kept. */
static int chat_turn(Session *s, const ChatTemplate *t, Conversation *c, const char *user, size_t len, OwError *err) {
    conv_add(c, CHAT_USER, user, len);
    RenderedSample r = {0};
    IdVec ids = {0}, reply = {0};
    char *text = NULL;
    size_t tlen = 0;
    int rc = chat_render(t, c->msgs, c->n, &r, err);
    if (rc == 0) {
        sample_append_str(&r, chat_generation_prompt(t->kind));
        rc = text_encode(s->tok, r.text, r.len, 0, &ids, err);
    }
    if (rc == 0) rc = respond(s, &ids, &reply, err);
    if (rc == 0) rc = text_decode(s->tok, reply.data, reply.len, &text, &tlen, err);
    if (rc == 0) conv_add(c, CHAT_ASSISTANT, text, tlen);
    free(text);
    sample_free(&r);
    idvec_free(&ids);
    idvec_free(&reply);
    return rc;
}

static int run_chat(Session *s, const GenArgs *a, OwError *err) {
    if (s->kind == CHAT_TEMPLATE_NONE)
        return ow_fail(err,
                       "%s: the model's tokenizer_config.json has no chat_template owlore knows (llama2, llama3, "
                       "mistral or chatml) (hint: --prompt TEXT for a plain completion)",
                       a->model);
    ChatTemplate t;
    if (chat_template_prepare(s->kind, s->tok, &t, err) != 0) return -1;
    Conversation c = {0};
    if (a->system) conv_add(&c, CHAT_SYSTEM, a->system, strlen(a->system));
    int tty = isatty(STDIN_FILENO), rc = 0;
    if (tty) fprintf(stderr, "chat template %s; one line per turn, Ctrl-D ends\n", chat_template_name(s->kind));
    if (a->prompt) rc = chat_turn(s, &t, &c, a->prompt, strlen(a->prompt), err);
    char *line = NULL;
    size_t cap = 0;
    while (rc == 0) {
        if (tty) fputs("> ", stderr);
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n > 0) rc = chat_turn(s, &t, &c, line, (size_t)n, err);
    }
    free(line);
    conv_free(&c);
    chat_template_free(&t);
    return rc;
}

/* ---- the command ---- */

static int check_args(const GenArgs *a, int npos, OwError *err) {
    if (npos > 0 || !a->model) return ow_fail(err, "--model is required (see --help)");
    if (!a->prompt && !a->chat) return ow_fail(err, "give --prompt TEXT, --chat, or both (see --help)");
    if (a->system && !a->chat) return ow_fail(err, "--system needs --chat");
    if (a->max_new < 1) return ow_fail(err, "--max-new-tokens must be at least 1");
    if (a->max_len < 0) return ow_fail(err, "--max-len must be positive (0: the model's context)");
    if (!(a->temperature >= 0.0)) return ow_fail(err, "--temperature must be 0 (greedy) or more");
    if (!(a->top_p > 0.0 && a->top_p <= 1.0)) return ow_fail(err, "--top-p must be in (0, 1]");
    if (a->seed < 0) return ow_fail(err, "--seed must be non-negative");
    return 0;
}

int cmd_generate(int argc, char **argv) {
    GenArgs a = {.device = "auto", .offload = "auto", .max_new = 256, .seed = 42, .temperature = 0.7, .top_p = 0.9};
    ArgSpec specs[] = {
        {"model", ARG_STR, &a.model, "DIR|RUN_DIR", "a Hugging Face model directory, or a training run directory",
         NULL},
        {"checkpoint", ARG_STR, &a.checkpoint, "step-N", "with a run directory: this checkpoint instead of the newest",
         NULL},
        {"prompt", ARG_STR, &a.prompt, "TEXT", "continue this text (with --chat: the first user turn)", NULL},
        {"chat", ARG_BOOL, &a.chat, NULL, "talk in the model's chat template, one user turn per line of stdin", NULL},
        {"system", ARG_STR, &a.system, "TEXT", "with --chat: a system message first", NULL},
        {"max-new-tokens", ARG_INT, &a.max_new, "N", "stop after N new tokens (default 256)", NULL},
        {"max-len", ARG_INT, &a.max_len, "N", "context in tokens, prompt included (default: max_position_embeddings)",
         NULL},
        {"temperature", ARG_FLOAT, &a.temperature, "T", "sampling temperature (default 0.7; 0: greedy)", NULL},
        {"top-p", ARG_FLOAT, &a.top_p, "P", "sample from the smallest set of tokens with mass P (default 0.9)", NULL},
        {"seed", ARG_INT, &a.seed, "S", "seed of the sampling (default 42: the same text every run)", NULL},
        {"offload", ARG_STR, &a.offload, "MODE",
         "auto: blocks the device cannot hold stream from page-locked host memory (default) | none | host", NULL},
        CMD_DEVICE_SPECS(&a.device, &a.gpu_mem, &a.threads),
    };
    ArgsResult res;
    OwError err;
    int parsed = cmd_args(
        "generate", argc, argv, specs, (int)(sizeof specs / sizeof specs[0]),
        "owlore generate --model DIR|RUN_DIR (--prompt TEXT | --chat) [flags]",
        "Generates text with a key/value cache, streaming it to stdout; prompt and new token counts and the\n"
        "prefill and decode rates go to stderr. It stops at EOS (and the chat template's end of turn),\n"
        "--max-new-tokens or the end of the context.\n"
        "--prompt: a raw completion of the text (with the tokenizer's BOS).\n"
        "--chat: a conversation in the model's chat template (llama2, llama3, mistral or chatml, detected from\n"
        "tokenizer_config.json); user turns are read from stdin one line each (typed, or piped for a batch),\n"
        "each reply printed on its own line; the cache is kept across turns. With --prompt, the prompt is the\n"
        "first user turn. Byte-level models (no tokenizer.json) read and write bytes.",
        &res);
    if (parsed >= 0) return parsed;
    if (check_args(&a, res.npos, &err) != 0) {
        cmd_report_error("generate", &err);
        return 2;
    }
    Session s;
    int rc = session_open(&s, &a, &err);
    if (rc == 0) rc = a.chat ? run_chat(&s, &a, &err) : run_prompt(&s, a.prompt, &err);
    session_close(&s);
    return rc == 0 ? 0 : cmd_report_error("generate", &err);
}

/* chat_template.c: see chat_template.h. Each renderer writes exactly what
 * its Jinja template (quoted above it, with the {% generation %} markers
 * that tests/reference/make_chat_fixtures.py uses to find the assistant spans
 * left out) renders with transformers' apply_chat_template, for a
 * conversation that passed chat_check. */
#include "data/chat_template.h"

#include "core/fileio.h"
#include "core/json.h"

#include <stdlib.h>
#include <string.h>

const char *const chat_template_names[] = {"none", "llama2", "llama3", "mistral", "chatml", NULL};

const char *chat_template_name(ChatTemplateKind kind) {
    return (unsigned)kind <= CHAT_TEMPLATE_CHATML ? chat_template_names[kind] : "none";
}

int chat_role_from_name(const char *name) {
    if (strcmp(name, "system") == 0) return CHAT_SYSTEM;
    if (strcmp(name, "user") == 0) return CHAT_USER;
    if (strcmp(name, "assistant") == 0) return CHAT_ASSISTANT;
    return -1;
}

static const char *role_name(ChatRole r) { return r == CHAT_SYSTEM ? "system" : r == CHAT_USER ? "user" : "assistant"; }

static int need_token(const Tokenizer *tok, const char *t, ChatTemplateKind kind, OwError *err) {
    if (tokenizer_token_id(tok, t) >= 0) return 0;
    return ow_fail(err,
                   "%s: chat_template %s writes the token %s, which this tokenizer does not have (hint: the "
                   "chat_template of the model's family: llama2, llama3, mistral or chatml)",
                   tokenizer_path(tok), chat_template_name(kind), t);
}

int chat_template_prepare(ChatTemplateKind kind, const Tokenizer *tok, ChatTemplate *out, OwError *err) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    int32_t bos = tokenizer_bos_id(tok), eos = tokenizer_eos_id(tok);
    const char *bs = bos >= 0 ? tokenizer_id_to_token(tok, bos) : NULL;
    const char *es = eos >= 0 ? tokenizer_id_to_token(tok, eos) : NULL;
    switch (kind) {
    case CHAT_TEMPLATE_NONE:
        return ow_fail(err, "chat data needs a chat_template (allowed: llama2, llama3, mistral, chatml; the one of the "
                            "model's family, e.g. --chat-template llama2)");
    case CHAT_TEMPLATE_LLAMA2:
    case CHAT_TEMPLATE_MISTRAL:
        if (!bs || !es)
            return ow_fail(err,
                           "%s: chat_template %s writes the BOS and EOS tokens, but the tokenizer has no %s token "
                           "(hint: tokenizer_config.json's bos_token/eos_token)",
                           tokenizer_path(tok), chat_template_name(kind), !bs ? "BOS" : "EOS");
        break;
    case CHAT_TEMPLATE_LLAMA3:
        if (!bs)
            return ow_fail(err, "%s: chat_template llama3 writes the BOS token, but the tokenizer has none",
                           tokenizer_path(tok));
        if (need_token(tok, "<|start_header_id|>", kind, err) || need_token(tok, "<|end_header_id|>", kind, err) ||
            need_token(tok, "<|eot_id|>", kind, err))
            return -1;
        break;
    case CHAT_TEMPLATE_CHATML:
        if (need_token(tok, "<|im_start|>", kind, err) || need_token(tok, "<|im_end|>", kind, err)) return -1;
        out->default_system = chat_template_default_system_of(tok);
        break;
    }
    out->bos = ow_xstrdup(bs ? bs : "");
    out->eos = ow_xstrdup(es ? es : "");
    return 0;
}

void chat_template_free(ChatTemplate *t) {
    free(t->bos);
    free(t->eos);
    free(t->default_system);
    memset(t, 0, sizeof *t);
}

/* optional system first, then user/assistant alternating from user */
static int chat_check(const ChatTemplate *t, const ChatMessage *m, size_t n, OwError *err) {
    if (n == 0) return ow_fail(err, "\"messages\" is empty");
    size_t first = m[0].role == CHAT_SYSTEM ? 1 : 0;
    if (first && t->kind == CHAT_TEMPLATE_MISTRAL)
        return ow_fail(err,
                       "messages[0] has role \"system\", which chat_template mistral does not support (its template "
                       "raises \"Only user and assistant roles are supported!\"; hint: merge it into the first user "
                       "message, or use a template with a system role)");
    for (size_t i = first; i < n; i++) {
        ChatRole want = (i - first) % 2 == 0 ? CHAT_USER : CHAT_ASSISTANT;
        if (m[i].role != want)
            return ow_fail(err,
                           "messages[%zu] has role \"%s\" where \"%s\" was expected: a conversation is an optional "
                           "system message, then user and assistant messages alternating, starting with user",
                           i, role_name(m[i].role), role_name(want));
    }
    return 0;
}

/* LLaMA-2-chat (meta-llama/Llama-2-7b-chat-hf):
 *   {% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}
 *   {% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}
 *   {% set system_message = false %}{% endif %}{% for message in loop_messages %}
 *   {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must
 *   alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}
 *   {% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}
 *   {% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}
 *   {{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}
 *   {{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}
 * (one line in the file; line breaks here are not in the template) */
static void render_llama2(const ChatTemplate *t, const ChatMessage *m, size_t n, RenderedSample *o) {
    size_t first = m[0].role == CHAT_SYSTEM ? 1 : 0;
    RenderedSample tmp = {0};
    for (size_t i = first; i < n; i++) {
        const char *c = m[i].content;
        size_t len = m[i].len;
        if (i == first && first) { /* the system block joins the first user message, then the whole is stripped */
            sample_reset(&tmp);
            sample_append_str(&tmp, "<<SYS>>\n");
            sample_append(&tmp, m[0].content, m[0].len);
            sample_append_str(&tmp, "\n<</SYS>>\n\n");
            sample_append(&tmp, c, len);
            c = tmp.text;
            len = tmp.len;
        }
        size_t b, e;
        text_strip(c, len, &b, &e);
        if (m[i].role == CHAT_USER) {
            sample_append_str(o, t->bos);
            sample_append_str(o, "[INST] ");
            sample_append(o, c + b, e - b);
            sample_append_str(o, " [/INST]");
        } else {
            size_t start = o->len;
            sample_append_str(o, " ");
            sample_append(o, c + b, e - b);
            sample_append_str(o, " ");
            sample_append_str(o, t->eos);
            sample_add_span(o, start);
        }
    }
    sample_free(&tmp);
}

/* Mistral-7B-Instruct-v0.1:
 *   {{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
 *   {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}
 *   {% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}
 *   {% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}
 *   {{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %} */
static void render_mistral(const ChatTemplate *t, const ChatMessage *m, size_t n, RenderedSample *o) {
    sample_append_str(o, t->bos);
    for (size_t i = 0; i < n; i++) {
        if (m[i].role == CHAT_USER) {
            sample_append_str(o, "[INST] ");
            sample_append(o, m[i].content, m[i].len);
            sample_append_str(o, " [/INST]");
        } else {
            size_t start = o->len;
            sample_append(o, m[i].content, m[i].len);
            sample_append_str(o, t->eos);
            sample_add_span(o, start);
        }
    }
}

/* Meta-Llama-3-8B-Instruct:
 *   {% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' +
 *   message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}
 *   {% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}
 *   {% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
 * (`| trim` binds to message['content']: Python's str.strip()) */
static void render_llama3(const ChatTemplate *t, const ChatMessage *m, size_t n, RenderedSample *o) {
    for (size_t i = 0; i < n; i++) {
        if (i == 0) sample_append_str(o, t->bos);
        sample_append_str(o, "<|start_header_id|>");
        sample_append_str(o, role_name(m[i].role));
        sample_append_str(o, "<|end_header_id|>\n\n");
        size_t b, e, start = o->len;
        text_strip(m[i].content, m[i].len, &b, &e);
        sample_append(o, m[i].content + b, e - b);
        sample_append_str(o, "<|eot_id|>");
        if (m[i].role == CHAT_ASSISTANT) sample_add_span(o, start);
    }
}

/* ChatML (as shipped with e.g. Felladrin/Minueza-32M-UltraChat):
 *   {% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' +
 *   '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
 * with SmolLM2's default system message (see chat_template.h) first when the conversation has none. */
static void render_chatml(const ChatTemplate *t, const ChatMessage *m, size_t n, RenderedSample *o) {
    if (t->default_system && m[0].role != CHAT_SYSTEM) {
        sample_append_str(o, "<|im_start|>system\n");
        sample_append_str(o, t->default_system);
        sample_append_str(o, "<|im_end|>\n");
    }
    for (size_t i = 0; i < n; i++) {
        sample_append_str(o, "<|im_start|>");
        sample_append_str(o, role_name(m[i].role));
        sample_append_str(o, "\n");
        size_t start = o->len;
        sample_append(o, m[i].content, m[i].len);
        sample_append_str(o, "<|im_end|>");
        if (m[i].role == CHAT_ASSISTANT) sample_add_span(o, start);
        sample_append_str(o, "\n");
    }
}

int chat_render(const ChatTemplate *t, const ChatMessage *msgs, size_t n, RenderedSample *out, OwError *err) {
    sample_reset(out);
    if (chat_check(t, msgs, n, err) != 0) return -1;
    switch (t->kind) {
    case CHAT_TEMPLATE_LLAMA2: render_llama2(t, msgs, n, out); break;
    case CHAT_TEMPLATE_MISTRAL: render_mistral(t, msgs, n, out); break;
    case CHAT_TEMPLATE_LLAMA3: render_llama3(t, msgs, n, out); break;
    case CHAT_TEMPLATE_CHATML: render_chatml(t, msgs, n, out); break;
    case CHAT_TEMPLATE_NONE: return ow_fail(err, "no chat_template");
    }
    return 0;
}

ChatTemplateKind chat_template_detect(const char *jinja) {
    if (!jinja) return CHAT_TEMPLATE_NONE;
    if (strstr(jinja, "<|im_start|>")) return CHAT_TEMPLATE_CHATML;
    if (strstr(jinja, "<|start_header_id|>")) return CHAT_TEMPLATE_LLAMA3;
    if (strstr(jinja, "[INST]")) return strstr(jinja, "<<SYS>>") ? CHAT_TEMPLATE_LLAMA2 : CHAT_TEMPLATE_MISTRAL;
    return CHAT_TEMPLATE_NONE;
}

/* A Jinja string literal at *p (quote ' or "): its value (heap) with \n \t \\ \' \" unescaped; *p moves past
 * the closing quote. NULL when *p is not a literal or it has another escape. */
static char *jinja_string(const char **p) {
    char q = **p;
    if (q != '\'' && q != '"') return NULL;
    RenderedSample v = {0};
    const char *s = *p + 1;
    for (; *s && *s != q; s++) {
        char c = *s;
        if (c == '\\') {
            c = s[1] == 'n' ? '\n' : s[1] == 't' ? '\t' : s[1] == '\\' || s[1] == '\'' || s[1] == '"' ? s[1] : 0;
            if (!c) break;
            s++;
        }
        sample_append(&v, &c, 1);
    }
    char *out = NULL;
    if (*s == q) {
        out = ow_xmalloc(v.len + 1);
        memcpy(out, v.text ? v.text : "", v.len);
        out[v.len] = '\0';
        *p = s + 1;
    }
    sample_free(&v);
    return out;
}

static const char *skip_spaces(const char *p) {
    while (*p == ' ') p++;
    return p;
}

static const char *after(const char *p, const char *lit) {
    size_t n = strlen(lit);
    return strncmp(p, lit, n) == 0 ? p + n : NULL;
}

char *chat_template_default_system(const char *jinja) {
    static const char cond[] = "{% if loop.first and messages[0]['role'] != 'system' %}{{",
                      head[] = "<|im_start|>system\n", tail[] = "<|im_end|>\n";
    const char *p = jinja && chat_template_detect(jinja) == CHAT_TEMPLATE_CHATML ? strstr(jinja, cond) : NULL;
    if (!p) return NULL;
    p = skip_spaces(p + sizeof cond - 1);
    char *lit = jinja_string(&p);
    if (!lit) return NULL;
    p = after(skip_spaces(p), "}}");
    size_t n = strlen(lit), hn = sizeof head - 1, tn = sizeof tail - 1;
    char *msg = NULL;
    if (p && after(p, "{% endif %}") && n >= hn + tn && strncmp(lit, head, hn) == 0 &&
        strcmp(lit + n - tn, tail) == 0) {
        msg = ow_xmalloc(n - hn - tn + 1);
        memcpy(msg, lit + hn, n - hn - tn);
        msg[n - hn - tn] = '\0';
    }
    free(lit);
    return msg;
}

/* DIR/tokenizer_config.json's chat_template (heap; NULL when the file or the key is absent); -1 when not JSON. */
static int read_template(const char *dir, char **out, OwError *err) {
    *out = NULL;
    char *path = ow_path_join(dir, "tokenizer_config.json");
    int rc = 0;
    if (ow_path_exists(path)) {
        cJSON *cfg = json_parse_file(path, err);
        const cJSON *t = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "chat_template") : NULL;
        if (cJSON_IsString(t)) *out = ow_xstrdup(t->valuestring);
        rc = cfg ? 0 : -1;
        cJSON_Delete(cfg);
    }
    free(path);
    return rc;
}

char *chat_template_default_system_of(const Tokenizer *tok) {
    const char *file = tokenizer_path(tok);
    if (!file || !ow_path_exists(file)) return NULL;
    char *dir = ow_path_dirname(file), *jinja, *msg = NULL;
    OwError err;
    if (read_template(dir, &jinja, &err) == 0) msg = chat_template_default_system(jinja);
    free(jinja);
    free(dir);
    return msg;
}

int chat_template_detect_dir(const char *dir, ChatTemplateKind *out, OwError *err) {
    char *jinja;
    int rc = read_template(dir, &jinja, err);
    *out = chat_template_detect(jinja);
    free(jinja);
    return rc;
}

const char *chat_generation_prompt(ChatTemplateKind kind) {
    switch (kind) {
    case CHAT_TEMPLATE_CHATML: return "<|im_start|>assistant\n";
    case CHAT_TEMPLATE_LLAMA3: return "<|start_header_id|>assistant<|end_header_id|>\n\n";
    default: return "";
    }
}

const char *chat_end_of_turn(ChatTemplateKind kind) {
    return kind == CHAT_TEMPLATE_CHATML ? "<|im_end|>" : kind == CHAT_TEMPLATE_LLAMA3 ? "<|eot_id|>" : NULL;
}

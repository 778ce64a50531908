/* chat_template.h: chat conversations rendered to text with the chat
 * templates LLaMA-family models ship (key chat_template), and the loss spans
 * of the assistant turns.
 *
 * Every conversation is checked first, the same way for every template: an
 * optional system message first, then user and assistant messages
 * alternating, starting with user. (The shipped Jinja templates check
 * alternation too; owlore also refuses a system message anywhere but first,
 * which LLaMA-2's template would silently drop.) The mistral template has no
 * system role and refuses one, as its Jinja template does.
 *
 * The loss span of an assistant turn is what the template writes for it after
 * the role header: llama2 " " + content.strip() + " " + eos; mistral content
 * + eos; llama3 content|trim + "<|eot_id|>"; chatml content + "<|im_end|>".
 * The exact Jinja texts are in chat_template.c beside each renderer and in
 * tests/reference/make_chat_fixtures.py.
 *
 * A chatml template may inject a default system message when the conversation
 * has none, as SmolLM2's does:
 *   {% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n
 *   You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}...
 * chat_template_default_system reads the message out of exactly that
 * construct (the {% if %} condition as written there, then one quoted string
 * literal "<|im_start|>system\n" + MESSAGE + "<|im_end|>\n" and {% endif %},
 * nothing between); anything else gives no default, as before. The chatml
 * renderer writes it first when messages[0] is not a system message. */
#ifndef OWLORE_DATA_CHAT_TEMPLATE_H
#define OWLORE_DATA_CHAT_TEMPLATE_H

#include "data/sample.h"
#include "data/tokenizer.h"

typedef enum {
    CHAT_TEMPLATE_NONE = 0,
    CHAT_TEMPLATE_LLAMA2 = 1,
    CHAT_TEMPLATE_LLAMA3 = 2,
    CHAT_TEMPLATE_MISTRAL = 3,
    CHAT_TEMPLATE_CHATML = 4,
} ChatTemplateKind;

typedef enum { CHAT_SYSTEM = 0, CHAT_USER = 1, CHAT_ASSISTANT = 2 } ChatRole;

typedef struct ChatMessage {
    ChatRole role;
    const char *content; /* valid UTF-8, not NUL-terminated */
    size_t len;
} ChatMessage;

/* A template bound to a tokenizer: the token strings it writes. */
typedef struct ChatTemplate {
    ChatTemplateKind kind;
    char *bos, *eos;      /* bos_token / eos_token strings (heap) */
    char *default_system; /* chatml: the system message written when there is none (heap; NULL: none) */
} ChatTemplate;

/* Names indexed by ChatTemplateKind, ending in NULL (train_config parses with it). */
extern const char *const chat_template_names[];
const char *chat_template_name(ChatTemplateKind kind);
/* Role from its name (system, user, assistant); -1 when it is none of them. */
int chat_role_from_name(const char *name);

/* Binds a template to a tokenizer: llama2 and mistral need its BOS and EOS,
 * llama3 its BOS and <|start_header_id|> <|end_header_id|> <|eot_id|>,
 * chatml <|im_start|> and <|im_end|>; a missing one is an error naming it.
 * chatml also takes the default system message of the model's own template
 * (chat_template_default_system_of). */
int chat_template_prepare(ChatTemplateKind kind, const Tokenizer *tok, ChatTemplate *out, OwError *err);
void chat_template_free(ChatTemplate *t);

/* The template kind a model's Jinja chat_template (tokenizer_config.json's "chat_template") is, by the tokens it
 * writes: <|im_start|> chatml, <|start_header_id|> llama3, [INST] with <<SYS>> llama2, [INST] alone mistral;
 * CHAT_TEMPLATE_NONE for anything else (or NULL). */
ChatTemplateKind chat_template_detect(const char *jinja);
/* The default system message a chatml Jinja template injects (the construct above): a heap string, NULL when the
 * template has none (or is NULL). */
char *chat_template_default_system(const char *jinja);
/* chat_template_default_system of the chat_template in the tokenizer_config.json beside the tokenizer's file
 * (NULL when there is no such file, key or construct, or the file is not JSON). */
char *chat_template_default_system_of(const Tokenizer *tok);
/* chat_template_detect of DIR/tokenizer_config.json's chat_template (NONE when the file or the key is absent; a
 * file that is not JSON is an error naming it). */
int chat_template_detect_dir(const char *dir, ChatTemplateKind *out, OwError *err);
/* What the template writes after the conversation for the assistant's reply to come (add_generation_prompt):
 * chatml "<|im_start|>assistant\n", llama3 "<|start_header_id|>assistant<|end_header_id|>\n\n", llama2 and
 * mistral nothing (their user turn ends with " [/INST]"). */
const char *chat_generation_prompt(ChatTemplateKind kind);
/* The token that ends an assistant turn besides EOS: chatml "<|im_end|>", llama3 "<|eot_id|>"; NULL for llama2
 * and mistral (EOS). */
const char *chat_end_of_turn(ChatTemplateKind kind);

/* Checks the conversation and renders it into out (reset first): the text,
 * the assistant loss spans, add_special = append_eos = 0 (the template writes
 * its special tokens). Errors say what is wrong (the caller adds file:line). */
int chat_render(const ChatTemplate *t, const ChatMessage *msgs, size_t n, RenderedSample *out, OwError *err);

#endif

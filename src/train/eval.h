/* eval.h: evaluating a model, shared by `owlore eval` and training's
 * --eval-every.
 *
 * Loss and perplexity run over batches from any source that can fill batch k
 * (EvalBatches): a run's validation windows, or consecutive windows over a
 * whole token stream; a new dataset reader (tokenized text, JSONL) plugs in
 * by providing another source. The loss is the mean negative log-likelihood
 * over every scored target (-100 targets are not scored), perplexity its exp.
 *
 * Multiple choice (lm-evaluation-harness style): each item has a context,
 * choices and the index of the right one. A choice's score is the sum of
 * log p(token) over its continuation tokens given the context. As the harness
 * does, trailing whitespace of the context moves to the front of each
 * continuation, and continuation tokens are those of encode(context +
 * continuation) after the tokens of encode(context). acc: the best score is
 * the labelled choice; acc_norm: the best score divided by the choice text's
 * length in characters (Unicode code points, Python's len) is. Ties go to the
 * first choice (numpy argmax). Text becomes ids through an EvalEncoder: byte
 * ids for byte-level models, the model's tokenizer.json otherwise; items may
 * also carry their ids ("context_ids", "choice_ids"). The LLM-Adapters
 * commonsense files are another source of items (eval_commonsense.h).
 *
 * The continuous measure (every multiple-choice source): answer_ce, the mean
 * over items of the mean negative log-likelihood per token of the labelled
 * choice's continuation, -loglik[label] / ncont[label] (nats per token), with
 * answer_ce_tokens the sum of ncont[label] over items. Unlike acc it moves
 * when the model grows more confident of the right answer without changing
 * its argmax, so small differences between fine-tunes show. */
#ifndef OWLORE_TRAIN_EVAL_H
#define OWLORE_TRAIN_EVAL_H

#include "data/batcher.h"
#include "model/model.h"

/* ---- loss and perplexity ---- */

typedef struct EvalBatches {
    int64_t count; /* batches */
    void *ctx;
    /* Fills batch k: ids and targets host I32 [B*T] (targets shifted, -100 ignored). */
    void (*fill)(void *ctx, int64_t k, int32_t *ids, int32_t *targets);
} EvalBatches;

typedef struct EvalLoss {
    double loss; /* mean over scored targets; NaN when there are none */
    double ppl;  /* exp(loss) */
    double loss_sum;
    int64_t tokens; /* scored targets */
    int64_t batches;
} EvalLoss;

/* The model must be prepared for the source's (B, T); ids and targets are
 * scratch of B*T entries. Forward only: no gradient, no state changes. */
int eval_loss(Model *m, const EvalBatches *src, int32_t *ids, int32_t *targets, EvalLoss *out, OwError *err);

/* A batcher's validation windows (the first max_batches batches when > 0). */
typedef struct EvalValidation {
    const Batcher *b;
} EvalValidation;
EvalBatches eval_batches_validation(EvalValidation *v, const Batcher *b, int64_t max_batches);

/* Consecutive windows over a whole stream: window w has inputs [wT, wT + T)
 * and targets [wT + 1, wT + T + 1), both cut at the stream's end (the last
 * window may be short; padding is not scored), so every token after the
 * first is scored once (the loss mask respected); context restarts at each
 * window. Windows go B to a batch. */
typedef struct EvalStream {
    const TokData *d;
    int64_t B, T, nwin;
} EvalStream;
EvalBatches eval_batches_stream(EvalStream *s, const TokData *d, int64_t B, int64_t T);

/* ---- multiple choice ---- */

typedef struct EvalEncoder {
    void *ctx;
    /* Encodes text (no special tokens) into a new heap array *ids of *n ids. */
    int (*encode)(void *ctx, const char *text, size_t len, int32_t **ids, int64_t *n, OwError *err);
    /* The ids the tokenizer's post-processor puts before a text (BOS), which
     * training's samples start with; none for bytes. The JSONL items do not use
     * them (the harness encodes without special tokens); commonsense items do. */
    const int32_t *bos;
    size_t nbos;
} EvalEncoder;

/* Byte-level ids (a byte b is token b), for models without a tokenizer.json. */
EvalEncoder eval_encoder_bytes(void);
/* The model's tokenizer (no special tokens added, as lm-evaluation-harness does). */
struct Tokenizer;
EvalEncoder eval_encoder_tokenizer(const struct Tokenizer *tok);

typedef struct McItem {
    int32_t *ctx; /* context ids */
    int64_t nctx;
    int nchoices;
    int32_t **cont; /* [nchoices] continuation ids */
    int64_t *ncont; /* [nchoices] */
    int64_t *chars; /* [nchoices] characters of the choice text */
    char **text;    /* [nchoices] the choice texts (commonsense: the option words) */
    int label;
} McItem;

typedef struct McSet {
    McItem *items;
    int64_t n;
    int64_t nchoices_total; /* sum of nchoices */
} McSet;

/* Reads multiple-choice JSONL: one object per line, {"context": str,
 * "choices": [str, ...], "label": int}, optionally with pre-tokenized
 * "context_ids": [int] and "choice_ids": [[int], ...] (used as given; the
 * choice texts still give acc_norm's lengths). enc may be NULL: then every
 * item must carry ids (the message says so). Errors name the line. */
int mc_read_jsonl(const char *path, const EvalEncoder *enc, McSet *out, OwError *err);
void mc_set_free(McSet *s);

/* For the readers: a new zeroed item at the end of s (appended: s->n and
 * nchoices_total count it once mc_set_commit is called), its arrays made for
 * nc choices; mc_set_commit keeps it, mc_set_drop frees it. */
McItem *mc_set_push(McSet *s, int nc);
void mc_set_commit(McSet *s);
void mc_set_drop(McSet *s);
/* Characters of a UTF-8 string (code points, Python's len). */
int64_t mc_text_chars(const char *s);
/* An item's context and every choice have at least one token (else an error at where). */
int mc_item_check(const McItem *it, const char *where, OwError *err);
/* The ids of an item from text, as lm-evaluation-harness's _encode_pair splits
 * them: context ids = prefix + encode(context[:keep]); choice j's ids are those
 * of prefix + encode(context + cont[j]) after the first nctx (the context's
 * ids the whole encodes to, whatever they are). keep <= strlen(context). */
int mc_item_encode(const EvalEncoder *enc, const int32_t *prefix, size_t nprefix, const char *context, size_t keep,
                   const char *const *cont, McItem *it, OwError *err);

/* Log-likelihood of every choice (flattened in item order, nchoices_total
 * values). The model must be prepared for (B, T): B sequences (context +
 * continuation) per forward; a sequence longer than T + 1 tokens keeps its
 * last T + 1 (the context is cut from the left); a continuation longer than T
 * is an error. */
int eval_mc_loglik(Model *m, int64_t B, int64_t T, const McSet *set, double *loglik, OwError *err);
/* The same scores, packed for speed under a budget of B sequences of T tokens
 * (the activations the model was loaded for): the rows sorted by length,
 * longest first, each forward of L x R where L is its longest row rounded up
 * to 16 tokens (at most T) and R = B * T / L rows (at least B; fewer when
 * model_activation_bytes of R x L would exceed that of B x T), so short
 * options fill a forward instead of being padded to T. The model is prepared
 * for each new shape (left prepared for the last). Each row's score is that
 * of eval_mc_loglik with block size T. */
typedef struct EvalMcStats {
    int64_t forwards;
    int64_t tokens; /* scored sequences' positions (context + continuation - 1 each) */
    int64_t padded; /* positions computed: forwards' R x L summed */
} EvalMcStats;
int eval_mc_loglik_packed(Model *m, int64_t B, int64_t T, const McSet *set, double *loglik, EvalMcStats *st,
                          OwError *err);
/* acc and acc_norm (fractions of items) from the log-likelihoods; pred and
 * pred_norm (may be NULL, set->n entries) get each item's chosen index. */
void eval_mc_accuracy(const McSet *set, const double *loglik, double *acc, double *acc_norm, int *pred, int *pred_norm);
/* An item's answer cross-entropy: -loglik[label] / ncont[label] (item_loglik: its choices' log-likelihoods). */
double eval_mc_item_ce(const McItem *it, const double *item_loglik);
/* answer_ce (mean over items of eval_mc_item_ce; NaN without items) and answer_ce_tokens (see above). */
void eval_mc_answer_ce(const McSet *set, const double *loglik, double *answer_ce, int64_t *tokens);

#endif

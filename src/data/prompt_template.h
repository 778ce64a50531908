/* prompt_template.h: instruction data rendered with the Stanford Alpaca
 * prompt (format alpaca: "instruction", optional "input", "output").
 *
 * The prompt, exactly as in tatsu-lab/stanford_alpaca's train.py PROMPT_DICT
 * (the no-input form when "input" is missing or ""):
 *   with input:    "Below is an instruction that describes a task, paired with an input that provides further
 *                   context. Write a response that appropriately completes the request.\n\n### Instruction:\n
 *                   {instruction}\n\n### Input:\n{input}\n\n### Response:\n"
 *   without input: "Below is an instruction that describes a task. Write a response that appropriately completes
 *                   the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
 * (each one string; the line breaks here are not in it). The response is the
 * output followed by EOS; it is the loss span, as Stanford's train.py masks
 * the prompt's tokens. The sample is encoded with the post-processor (BOS). */
#ifndef OWLORE_DATA_PROMPT_TEMPLATE_H
#define OWLORE_DATA_PROMPT_TEMPLATE_H

#include "data/sample.h"

/* Renders into out (reset first); input may be NULL. append_eos: whether EOS
 * follows the output (key append_eos). */
void alpaca_render(const char *instruction, size_t ilen, const char *input, size_t inlen, const char *output,
                   size_t olen, int append_eos, RenderedSample *out);

#endif

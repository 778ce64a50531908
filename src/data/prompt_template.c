/* prompt_template.c: see prompt_template.h. */
#include "data/prompt_template.h"

static const char k_with_input[] =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n";
static const char k_without_input[] =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n";

void alpaca_render(const char *instruction, size_t ilen, const char *input, size_t inlen, const char *output,
                   size_t olen, int append_eos, RenderedSample *out) {
    sample_reset(out);
    int has_input = input && inlen > 0;
    sample_append_str(out, has_input ? k_with_input : k_without_input);
    sample_append(out, instruction, ilen);
    if (has_input) {
        sample_append_str(out, "\n\n### Input:\n");
        sample_append(out, input, inlen);
    }
    sample_append_str(out, "\n\n### Response:\n");
    size_t start = out->len;
    sample_append(out, output, olen);
    sample_add_span(out, start);
    out->add_special = 1;
    out->append_eos = append_eos;
}

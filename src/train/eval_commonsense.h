/* eval_commonsense.h: the LLM-Adapters commonsense sets (the format the LISA
 * and OwLore papers fine-tune and evaluate with) as multiple-choice items for
 * eval.h, and the LLM-Adapters answer extraction for generated text.
 *
 * A file is a JSON array (or JSON lines) of alpaca records {"instruction",
 * "input" (optional, may be "" or null), "output", "answer"}. The options are
 * the '/'-separated words of the instruction's last line that starts with
 * "Answer format:" (spaces around each word dropped); "answer" must be one of
 * them: it is the label. Each option o is scored as the continuation
 * "the correct answer is o" right after the Alpaca prompt of (instruction,
 * input) (prompt_template.h, as training renders the record: the prompt ends
 * with "### Response:\n" and the output follows it directly, no whitespace
 * moved), with the post-processor's leading ids (BOS) first as in training's
 * samples; context + continuation are encoded together and the continuation
 * is the tail (eval.h). EOS is not part of the continuation. acc_norm divides
 * by the continuation's characters ("the correct answer is " + o), as the
 * harness divides by its continuation string's length.
 *
 * Every problem names the file, the record (its 0-based index; the line too
 * for JSON lines), the field and a hint. */
#ifndef OWLORE_TRAIN_EVAL_COMMONSENSE_H
#define OWLORE_TRAIN_EVAL_COMMONSENSE_H

#include "train/eval.h"

/* The continuation scored for an option: this prefix, then the option. */
#define COMMONSENSE_ANSWER_PREFIX "the correct answer is "

/* The options of an instruction: *opts gets a heap array of *n heap strings
 * (commonsense_options_free). Returns -1 when there is no "Answer format:"
 * line (*n = 0), -2 when its last one names an empty option. */
int commonsense_options(const char *instruction, char ***opts, int *n);
void commonsense_options_free(char **opts, int n);

/* Reads a commonsense file into items (enc as for mc_read_jsonl, not NULL). */
int commonsense_read(const char *path, const EvalEncoder *enc, McSet *out, OwError *err);

/* Whether a file looks like a commonsense set: a JSON array or JSON lines
 * whose first record is an object with a string "instruction" holding an
 * "Answer format:" line. Never an error: unreadable or other files are not. */
int commonsense_detect(const char *path);

/* LLM-Adapters' extract_answer (commonsense_evaluate.py): the first match in
 * the generated text of its dataset's pattern, re.findall(r'a|b|...')[0]:
 * the leftmost position where one of the words occurs (as a substring: no
 * word boundaries, case-sensitive), the pattern's first word at a tie. The
 * pattern is the LLM-Adapters one whose words include every option
 * (true|false; solution1|solution2; answer1|...|answer5; ending1|...|ending4;
 * option1|option2), else the options themselves in order. Returns the index
 * of the found word among the options, or -1 when nothing matches or the
 * found word is not an option (LLM-Adapters then counts the item wrong). */
int commonsense_extract_answer(const char *text, const char *const *options, int n);

#endif

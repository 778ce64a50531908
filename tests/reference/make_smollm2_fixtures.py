#!/usr/bin/env python3
"""SmolLM2-135M-Instruct references from transformers for owlore's chat rendering and generation
(tests/test_smollm2_chat.c), with the GGUF loaded by transformers itself.

Reads (read-only): the GGUF that scripts/get-smollm2.sh caches (its path printed by --path).
Writes:
  tests/fixtures/chat/smollm2_chat.json:
    {"cases": [{"name", "messages": [{"role", "content"}], "add_generation_prompt": bool,
                "text", "ids"}]}
    text and ids: tokenizer.apply_chat_template(messages, add_generation_prompt=...), the text
    (tokenize=False) and its ids (tokenize=True): conversations with and without a system message
    (SmolLM2's template writes its default system message when there is none); those that end
    with the assistant also as training's chat data.
  tests/fixtures/generate/smollm2_greedy.json:
    {"max_new_tokens": 24, "eos_token_id", "cases": [{"name", "user" (chat: one user turn) or
     "prompt" (raw completion), "prompt_ids", "new_ids", "new_text", "min_top2_gap"}]}
    chat: the conversation [user] through apply_chat_template(add_generation_prompt=True);
    prompt: tokenizer(prompt) (its special tokens as the tokenizer adds them);
    new_ids: model.generate(do_sample=False, max_new_tokens=24) after them (the stop id last when
    one ends it); new_text: their decode with skip_special_tokens=True; min_top2_gap: the
    smallest best-minus-second logit along the path (must be well above float noise: owlore's
    logits are within 5e-5 of transformers').

Deterministic: float32, one thread, eager attention.

Run from the repository root:
    /tmp/tvenv/bin/python tests/reference/make_smollm2_fixtures.py [--gguf FILE]
"""
import argparse
import json
import os
import subprocess

import torch
import transformers

from fixture_common import greedy, setup_determinism

CONVERSATIONS = [
    ("user_only", [{"role": "user", "content": "What is the capital of France?"}]),
    ("with_system", [{"role": "system", "content": "You answer in one word."},
                     {"role": "user", "content": "Name a primary colour."}]),
    ("multi_turn", [{"role": "user", "content": "Hi!"},
                    {"role": "assistant", "content": "Hello! How can I help you today?"},
                    {"role": "user", "content": "Tell me a fact about owls."}]),
    ("answered", [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "2 + 2 = 4."}]),
    ("answered_with_system", [{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "Is an owl a bird?"},
                              {"role": "assistant", "content": "Yes."}]),
]
CHAT_USER = "What is the capital of France?"
PROMPT = "The largest planet in the solar system is"
MAX_NEW = 24


def dump(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=None)
    args = ap.parse_args()
    gguf = args.gguf or subprocess.check_output(["scripts/get-smollm2.sh", "--path"], text=True).strip()
    setup_determinism()
    d, f = os.path.split(os.path.abspath(gguf))
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=f)
    cases = []
    for name, msgs in CONVERSATIONS:
        for gen in (False, True):
            text = tok.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=False)
            ids = tok.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=True, return_dict=False)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            cases.append({"name": name, "messages": msgs, "add_generation_prompt": gen, "text": text,
                          "ids": list(ids)})
    dump("tests/fixtures/chat/smollm2_chat.json", {"cases": cases})

    model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                              attn_implementation="eager")
    model.eval()
    eos = model.config.eos_token_id
    gen_cases = []
    chat_ids = tok.apply_chat_template([{"role": "user", "content": CHAT_USER}], add_generation_prompt=True,
                                       tokenize=True, return_dict=False)
    if hasattr(chat_ids, "keys"):
        chat_ids = chat_ids["input_ids"]
    with torch.no_grad():
        for name, key, text, ids in (("chat", "user", CHAT_USER, list(chat_ids)),
                                     ("prompt", "prompt", PROMPT, tok(PROMPT)["input_ids"])):
            new, gap = greedy(model, ids, eos, MAX_NEW)
            assert gap > 1e-2, f"{name}: the top-2 margin {gap} is too close to float noise"
            new_text = tok.decode(new, skip_special_tokens=True)
            gen_cases.append({"name": name, key: text, "prompt_ids": ids, "new_ids": new, "new_text": new_text,
                              "min_top2_gap": gap})
            print(f"{name}: {len(ids)} prompt ids, {len(new)} new ids, min top-2 gap {gap:.4f}: {new_text!r}")
    dump("tests/fixtures/generate/smollm2_greedy.json",
         {"max_new_tokens": MAX_NEW, "eos_token_id": eos, "cases": gen_cases})


if __name__ == "__main__":
    main()

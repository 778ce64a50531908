#!/usr/bin/env python3
"""Greedy generation references for owlore's decoder (tests/test_generate.c), from transformers.

Reads (read-only, never copied):
  ../shared/data/real/hf/TinyStories-656K/   (config, weights, tokenizer)
Writes tests/fixtures/generate/tinystories_greedy.json:
  {"model": "TinyStories-656K", "max_new_tokens": 64, "eos_token_id": 2,
   "cases": [{"name", "prompt" (text or null), "prompt_ids", "new_ids", "min_top2_gap"}]}
  prompt_ids: [BOS] alone, and a short prompt encoded with add_special_tokens=True (BOS first);
  new_ids: model.generate(do_sample=False, max_new_tokens=64) after the prompt (stops after EOS,
           which is then the last id, as generate returns it);
  min_top2_gap: the smallest difference between the best and the second-best logit along the
           generated path (how far float32 noise is from changing a greedy choice).

Deterministic: float32, one thread, eager attention; the path is regenerated in float64 and must
be the same (the script fails otherwise).

Run from the repository root:
    python tests/reference/make_generate_fixture.py [--shared ../shared]
"""
import argparse
import json
import os

import torch
import transformers

from fixture_common import greedy, setup_determinism

PROMPTS = [("bos", None), ("prompt", "Once upon a time, there was a little girl named")]
MAX_NEW = 64


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    args = ap.parse_args()
    setup_determinism()
    src = os.path.join(args.shared, "data/real/hf/TinyStories-656K")
    tok = transformers.AutoTokenizer.from_pretrained(src)
    model = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    model64 = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float64,
                                                                attn_implementation="eager")
    model64.eval()
    eos = model.config.eos_token_id
    cases = []
    with torch.no_grad():
        for name, text in PROMPTS:
            ids = [tok.bos_token_id] if text is None else tok(text, add_special_tokens=True)["input_ids"]
            new, gap = greedy(model, ids, eos, MAX_NEW)
            new64, _ = greedy(model64, ids, eos, MAX_NEW)
            assert new == new64, f"{name}: the float64 path differs"
            cases.append({"name": name, "prompt": text, "prompt_ids": ids, "new_ids": new, "min_top2_gap": gap})
            print(f"{name}: {len(ids)} prompt ids, {len(new)} new ids, min top-2 gap {gap:.4f}: "
                  f"{tok.decode(new)!r}")
    out = {"model": "TinyStories-656K", "max_new_tokens": MAX_NEW, "eos_token_id": eos, "cases": cases}
    os.makedirs("tests/fixtures/generate", exist_ok=True)
    with open("tests/fixtures/generate/tinystories_greedy.json", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

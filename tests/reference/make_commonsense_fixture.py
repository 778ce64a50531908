#!/usr/bin/env python3
"""Reference results for `owlore eval --format commonsense` (tests/test_eval_commonsense.c), from transformers.

Reads (read-only, never copied):
  ../shared/data/real/hf/TinyStories-656K/            (config, weights, tokenizer)
  ../shared/data/real/commonsense/boolq/test.json     (the first 50 records are scored)
Writes tests/fixtures/eval/commonsense_boolq50.safetensors:
  nctx      I64 [R]      context ids per record (R = 50)
  ctx_ids   I32 [sum]    the contexts' ids, concatenated: tokenizer(prompt).input_ids with the
                         tokenizer's own special tokens (BOS), as training encodes an alpaca sample
  ntokens   I64 [K]      continuation ids per option (K = options of all records, in order)
  cont_ids  I32 [sum]    tokenizer(prompt + "the correct answer is " + option).input_ids after the
                         first nctx (lm-evaluation-harness's split: encoded together, the tail)
  loglik    F64 [K]      sum of log_softmax(logits) of the continuation ids
  label, pred, pred_norm I64 [R]  the answer's option index; argmax of loglik; argmax of
                         loglik / len("the correct answer is " + option) (ties: the first)
  item_ce   F64 [R]      -loglik[label] / ntokens[label]
  acc, acc_norm, answer_ce F64 [1], answer_ce_tokens I64 [1]
The prompt is Stanford Alpaca's (PROMPT_DICT of tatsu-lab/stanford_alpaca train.py), written out
here independently of owlore's prompt_template.c; the options are the '/'-separated words of the
instruction's last "Answer format:" line. Float32, one thread, eager attention.

Run from the repository root (about 5 s):
    python tests/reference/make_commonsense_fixture.py [--shared ../shared]
"""
import argparse
import json
import os

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoTokenizer, LlamaForCausalLM

from fixture_common import setup_determinism

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORDS = 50
PREFIX = "the correct answer is "


def alpaca_prompt(instruction, inp):
    if inp:
        return ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n\n"
                f"### Instruction:\n{instruction}\n\n### Input:\n{inp}\n\n### Response:\n")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes the request."
            f"\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def options(instruction):
    lines = [l for l in instruction.split("\n") if l.startswith("Answer format:")]
    return [o.strip() for o in lines[-1][len("Answer format:"):].split("/")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    a = ap.parse_args()
    setup_determinism()
    mdir = os.path.join(a.shared, "data", "real", "hf", "TinyStories-656K")
    tok = AutoTokenizer.from_pretrained(mdir)
    model = LlamaForCausalLM.from_pretrained(mdir, attn_implementation="eager", dtype=torch.float32).eval()
    with open(os.path.join(a.shared, "data", "real", "commonsense", "boolq", "test.json"), encoding="utf-8") as f:
        records = json.load(f)[:RECORDS]
    nctx, ctx_all, ntok, cont_all, lls, labels, pred, pred_norm, item_ce = [], [], [], [], [], [], [], [], []
    longest = 0
    for r in records:
        opts = options(r["instruction"])
        prompt = alpaca_prompt(r["instruction"], r.get("input"))
        cids = tok(prompt).input_ids
        assert cids[-1] not in tok.all_special_ids, "the post-processor adds ids after the text"
        nctx.append(len(cids))
        ctx_all += cids
        v, lens = [], []
        for o in opts:
            whole = tok(prompt + PREFIX + o).input_ids
            cont = whole[len(cids):]
            assert cont, o
            longest = max(longest, len(whole))
            with torch.no_grad():
                logits = model(torch.tensor([whole[:-1]], dtype=torch.long)).logits[0]
            lp = torch.log_softmax(logits.float(), dim=-1)
            ll = float(sum(lp[p, whole[p + 1]] for p in range(len(cids) - 1, len(whole) - 1)))
            ntok.append(len(cont))
            cont_all += cont
            lls.append(ll)
            v.append(ll)
            lens.append(float(len(PREFIX + o)))
        label = opts.index(r["answer"])
        labels.append(label)
        pred.append(int(np.argmax(v)))
        pred_norm.append(int(np.argmax(np.array(v) / np.array(lens))))
        item_ce.append(-v[label] / ntok[len(ntok) - len(opts) + label])
    assert longest <= 512, longest
    acc = float(np.mean([p == l for p, l in zip(pred, labels)]))
    acc_norm = float(np.mean([p == l for p, l in zip(pred_norm, labels)]))
    ce_tokens = 0
    k = 0
    for r, label in zip(records, labels):
        ce_tokens += ntok[k + label]
        k += len(options(r["instruction"]))
    answer_ce = float(np.mean(item_ce))
    print(f"boolq[:{RECORDS}] on TinyStories-656K: acc {acc:.4f}, acc_norm {acc_norm:.4f}, answer_ce {answer_ce:.6f} "
          f"over {ce_tokens} tokens; longest sequence {longest}")
    i64 = lambda x: np.array(x, dtype=np.int64)
    save_file({"nctx": i64(nctx), "ctx_ids": np.array(ctx_all, dtype=np.int32), "ntokens": i64(ntok),
               "cont_ids": np.array(cont_all, dtype=np.int32), "loglik": np.array(lls), "label": i64(labels),
               "pred": i64(pred), "pred_norm": i64(pred_norm), "item_ce": np.array(item_ce),
               "acc": np.array([acc]), "acc_norm": np.array([acc_norm]), "answer_ce": np.array([answer_ce]),
               "answer_ce_tokens": i64([ce_tokens])},
              os.path.join(ROOT, "tests", "fixtures", "eval", "commonsense_boolq50.safetensors"),
              metadata={"format": "pt"})


if __name__ == "__main__":
    main()

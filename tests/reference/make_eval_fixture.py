#!/usr/bin/env python3
"""Reference results for `owlore eval` (tests/test_eval.c), from transformers.

Reads (read-only, never copied):
  ../shared/data/real/hf/TinyStories-656K/   (config, weights, tokenizer)
  tests/fixtures/tinyshakespeare/val.safetensors (token ids made with that tokenizer)
Writes tests/fixtures/eval/:
  tinystories.safetensors
    ids       I32 [N]      the first N = 1001 validation ids of tinyshakespeare
    loss      F64 [1]      mean next-token NLL over consecutive windows of T = 64 tokens: window w has
                           inputs ids[wT : wT+T] and targets ids[wT+1 : wT+T+1] (both cut at the end),
                           context restarting at each window; every id after the first scored once
    ntokens   I64 [1]      scored targets (N - 1)
    loglik    F64 [K]      log-likelihood of each multiple-choice continuation (items in order,
                           choices in order), sum of log_softmax(logits)[target] over its tokens
    acc, acc_norm F64 [1]  lm-evaluation-harness: argmax of loglik; argmax of loglik / len(choice)
                           (len: characters, Python's len of the choice text)
    pred, pred_norm I64 [items]  the two argmaxes per item
  tinystories_mc.jsonl     the items: {"context", "choices", "label", "context_ids", "choice_ids"}
                           tokenized as lm-evaluation-harness's _encode_pair does (the context's
                           trailing whitespace moved to the continuation; context_ids =
                           encode(context), choice_ids = encode(context + choice)[len(context_ids):]),
                           with the tokenizer's BOS (add_special_tokens=True, like the harness's
                           add_bos_token=True)
  byte_model/              a tiny random byte-level LLaMA (vocab 256, 2 blocks, hidden 32;
                           seed 1234), save_pretrained in float32
  byte_text.txt            text read as bytes
  byte_mc.jsonl            multiple-choice items as text only (owlore tokenizes them as bytes),
                           with trailing spaces in contexts and a non-ASCII choice
  byte.safetensors         loss (F64, windows of T = 32 over byte_text.txt, same rule), ntokens,
                           loglik, acc, acc_norm, pred, pred_norm for byte_mc.jsonl with byte ids
                           (item 1's prediction under acc_norm differs if lengths were counted
                           in bytes: "café" is 4 characters, 5 bytes)

Deterministic: float32, one thread, eager attention; the script rechecks the TinyStories loss
in float64 and prints the difference (float32 noise).

Run from the repository root:
    python tests/reference/make_eval_fixture.py [--shared ../shared]
"""
import argparse
import json
import os

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Chosen so that every continuation keeps at least one token: this tokenizer's merges span the space
# between words (encode(context) is often not a prefix of encode(context + choice), and a choice can
# vanish into the context's last token), which the harness's split takes as it comes.
TS_ITEMS = [
    ("Lily went to the park to play with her", [" friend", " house", " moon"], 0),
    ("Tom was very happy because he got a new", [" toy", " sky", " run"], 0),
    ("One day, a big dog ", ["ran to the park", "is green", "slept the"], 0),
    ("He ate the", [" apple", " sun"], 0),
    ("Once upon a time", [" there", " blue"], 0),
]

BYTE_ITEMS = [
    ("the cat sat on the ", ["mat", "hat", "café"], 0),
    ("abc abc abc", [" abc", " xyz"], 0),
    ("hello world", ["!", ".", " again and again"], 2),
    ("one two three  ", ["four", "five"], 1),
    ("naïve text: ", ["ünïcödé", "plain"], 0),
]

BYTE_TEXT = ("It was a bright cold day in April, and the clocks were striking thirteen. "
             "Winston Smith, his chin nuzzled into his breast in an effort to escape the vile wind, "
             "slipped quickly through the glass doors of Victory Mansions, though not quickly enough "
             "to prevent a swirl of gritty dust from entering along with him.\n")


def window_loss(model, ids, T, dtype=torch.float32):
    total, count = 0.0, 0
    n = len(ids)
    for s in range(0, n - 1, T):
        inp = ids[s:s + T]
        tgt = ids[s + 1:s + T + 1]
        inp = inp[:len(tgt)]
        with torch.no_grad():
            logits = model(torch.tensor([inp], dtype=torch.long)).logits[0].to(dtype)
        lp = torch.log_softmax(logits, dim=-1)
        total -= float(lp[torch.arange(len(tgt)), torch.tensor(tgt)].sum())
        count += len(tgt)
    return total / count, count


def loglik(model, ctx, cont):
    seq = list(ctx) + list(cont)
    with torch.no_grad():
        logits = model(torch.tensor([seq[:-1]], dtype=torch.long)).logits[0]
    lp = torch.log_softmax(logits.float(), dim=-1)
    pos = range(len(ctx) - 1, len(seq) - 1)
    return float(sum(lp[p, seq[p + 1]] for p in pos))


def split_pair(context, choice):
    n = len(context) - len(context.rstrip())
    if n:
        choice = context[-n:] + choice
        context = context[:-n]
    return context, choice


def accuracy(items, ll):
    """acc, acc_norm and the per-item predictions (argmax; argmax of loglik / len(choice))."""
    pred, pred_norm = [], []
    k = 0
    for _, choices, label in items:
        v = np.array(ll[k:k + len(choices)])
        lens = np.array([float(len(c)) for c in choices])
        pred.append(int(np.argmax(v)))
        pred_norm.append(int(np.argmax(v / lens)))
        k += len(choices)
    labels = [it[2] for it in items]
    acc = float(np.mean([p == l for p, l in zip(pred, labels)]))
    acc_norm = float(np.mean([p == l for p, l in zip(pred_norm, labels)]))
    return acc, acc_norm, np.array(pred, dtype=np.int64), np.array(pred_norm, dtype=np.int64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out = os.path.join(ROOT, "tests", "fixtures", "eval")
    os.makedirs(out, exist_ok=True)

    # TinyStories: loss over windows and multiple choice with the HF tokenizer
    mdir = os.path.join(a.shared, "data", "real", "hf", "TinyStories-656K")
    tok = AutoTokenizer.from_pretrained(mdir)
    model = LlamaForCausalLM.from_pretrained(mdir, attn_implementation="eager", dtype=torch.float32).eval()
    ids = load_file(os.path.join(ROOT, "tests", "fixtures", "tinyshakespeare", "val.safetensors"))["ids"][:1001]
    ids = [int(x) for x in ids]
    loss, count = window_loss(model, ids, 64)
    m64 = LlamaForCausalLM.from_pretrained(mdir, attn_implementation="eager", dtype=torch.float64).eval()
    loss64, _ = window_loss(m64, ids, 64, torch.float64)
    print(f"tinystories: loss {loss:.7f} over {count} tokens (float64 {loss64:.7f}, diff {abs(loss - loss64):.1e})")
    lls, lines = [], []
    for context, choices, label in TS_ITEMS:
        item = {"context": context, "choices": choices, "label": label, "choice_ids": []}
        for ch in choices:
            c, cont = split_pair(context, ch)
            cids = tok(c).input_ids
            whole = tok(c + cont).input_ids
            assert len(whole) > len(cids), (context, ch)
            item["context_ids"] = cids
            item["choice_ids"].append(whole[len(cids):])
            lls.append(loglik(model, cids, whole[len(cids):]))
        lines.append(json.dumps(item, ensure_ascii=False))
    acc, acc_norm, pred, pred_norm = accuracy(TS_ITEMS, lls)
    print(f"tinystories multiple choice: acc {acc:.4f}, acc_norm {acc_norm:.4f}")
    with open(os.path.join(out, "tinystories_mc.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    save_file({"ids": np.array(ids, dtype=np.int32), "loss": np.array([loss]), "ntokens": np.array([count], dtype=np.int64),
               "loglik": np.array(lls), "acc": np.array([acc]), "acc_norm": np.array([acc_norm]),
               "pred": pred, "pred_norm": pred_norm},
              os.path.join(out, "tinystories.safetensors"), metadata={"format": "pt"})

    # a byte-level model: owlore tokenizes the text itself
    g = torch.Generator().manual_seed(1234)
    cfg = LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      bos_token_id=None, eos_token_id=None, pad_token_id=None)
    bm = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in bm.named_parameters():
            p.copy_((1 + 0.1 * torch.randn(p.shape, generator=g)) if "norm" in name else 0.3 * torch.randn(p.shape, generator=g))
    bm.config.attn_implementation = "eager"
    bm.save_pretrained(os.path.join(out, "byte_model"))
    bm = LlamaForCausalLM.from_pretrained(os.path.join(out, "byte_model"), attn_implementation="eager", dtype=torch.float32).eval()
    with open(os.path.join(out, "byte_text.txt"), "w", encoding="utf-8") as f:
        f.write(BYTE_TEXT)
    bids = list(BYTE_TEXT.encode("utf-8"))
    bloss, bcount = window_loss(bm, bids, 32)
    blls, blines = [], []
    for context, choices, label in BYTE_ITEMS:
        for ch in choices:
            c, cont = split_pair(context, ch)
            cids = list(c.encode("utf-8"))
            whole = list((c + cont).encode("utf-8"))
            blls.append(loglik(bm, cids, whole[len(cids):]))
        blines.append(json.dumps({"context": context, "choices": choices, "label": label}, ensure_ascii=False))
    bacc, bacc_norm, bpred, bpred_norm = accuracy(BYTE_ITEMS, blls)
    print(f"byte model: loss {bloss:.7f} over {bcount} bytes; multiple choice acc {bacc:.4f}, acc_norm {bacc_norm:.4f}")
    with open(os.path.join(out, "byte_mc.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(blines) + "\n")
    save_file({"loss": np.array([bloss]), "ntokens": np.array([bcount], dtype=np.int64), "loglik": np.array(blls),
               "acc": np.array([bacc]), "acc_norm": np.array([bacc_norm]), "pred": bpred, "pred_norm": bpred_norm},
              os.path.join(out, "byte.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden loss fixture for the real TinyStories-656K model on the first 8 stories of the text sample.

Reads (read-only, never copied):
  ../shared/data/real/hf/TinyStories-656K/          (config, model.safetensors, tokenizer)
  ../shared/data/real/text/tinystories_train_sample_2MiB.txt
Writes tests/fixtures/tinystories/first8.safetensors:
  input_ids    I32 [8, T]   stories tokenized with transformers' AutoTokenizer (BOS 1 added by the
                            post-processor), EOS 2 appended, truncated to 512, right-padded with 0
  labels       I32 [8, T]   = input_ids, -100 on the padding
  loss         F32 [1]      HF model(input_ids, labels=labels).loss: logits[:, :-1] vs labels[:, 1:],
                            mean over all non-ignored positions of the whole batch
  seq_losses   F32 [8]      the same loss for each sequence alone (not averaged into `loss`
                            equally: `loss` weights sequences by their number of scored tokens)
  logits_first F32 [16, V]  logits of sequence 0, positions 0..15
T is the longest sequence (after truncation). Attention mask all ones: padding is at the right end,
so causal attention keeps it out of every non-padded position.

Stories: the text is split on lines equal to "<|endoftext|>"; each chunk is stripped; empty ones
are skipped; the first 8 are used.

Deterministic: float32, one CPU thread, torch.use_deterministic_algorithms(True), eager attention.

Run from the repository root:
    python tests/reference/make_tinystories_fixture.py [--shared ../shared] [--out FILE]
"""
import argparse
import os

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer
from transformers import AutoTokenizer, LlamaForCausalLM

N_STORIES = 8
MAX_LEN = 512
EOS_ID = 2
PAD_ID = 0
N_LOGITS = 16


def read_stories(path, n):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    stories, cur = [], []
    for line in lines:
        if line == "<|endoftext|>":
            s = "\n".join(cur).strip()
            if s:
                stories.append(s)
            cur = []
        else:
            cur.append(line)
    s = "\n".join(cur).strip()
    if s:
        stories.append(s)
    return stories[:n]


def masked_ce(logits, labels):
    """Per-position CE (float64) of logits[:, :-1] vs labels[:, 1:] and the validity mask."""
    lg = logits[:, :-1, :].astype(np.float64)
    lb = labels[:, 1:]
    m = lg.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(lg - m).sum(axis=-1, keepdims=True)))[..., 0]
    valid = lb != -100
    picked = np.take_along_axis(lg, np.where(valid, lb, 0)[..., None], axis=-1)[..., 0]
    return (lse - picked) * valid, valid


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(repo, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(repo, "tests", "fixtures", "tinystories",
                                                  "first8.safetensors"))
    args = ap.parse_args()
    model_dir = os.path.join(args.shared, "data", "real", "hf", "TinyStories-656K")
    text_path = os.path.join(args.shared, "data", "real", "text", "tinystories_train_sample_2MiB.txt")

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))

    tok = AutoTokenizer.from_pretrained(model_dir)
    raw = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    stories = read_stories(text_path, N_STORIES)
    assert len(stories) == N_STORIES
    seqs = []
    for i, s in enumerate(stories):
        ids = tok(s)["input_ids"]
        assert ids[0] == tok.bos_token_id == 1, ids[:3]
        raw_ids = raw.encode(s).ids
        if raw_ids != ids:
            print("WARNING: story %d: AutoTokenizer and tokenizers.Tokenizer(tokenizer.json) differ" % i)
        seqs.append((ids + [EOS_ID])[:MAX_LEN])
    T = max(len(x) for x in seqs)
    input_ids = np.full((N_STORIES, T), PAD_ID, dtype=np.int64)
    labels = np.full((N_STORIES, T), -100, dtype=np.int64)
    for i, x in enumerate(seqs):
        input_ids[i, :len(x)] = x
        labels[i, :len(x)] = x

    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    emb, head = model.model.embed_tokens.weight, model.lm_head.weight
    if emb.data_ptr() != head.data_ptr() or not torch.equal(emb, head):
        print("WARNING: embed_tokens and lm_head are NOT tied after loading")
    stored_head = load_file(os.path.join(model_dir, "model.safetensors"))["lm_head.weight"]
    if not np.array_equal(stored_head, emb.detach().numpy()):
        print("WARNING: loaded embed_tokens differs from the stored lm_head.weight")

    ii = torch.from_numpy(input_ids)
    with torch.no_grad():
        out = model(input_ids=ii, attention_mask=torch.ones_like(ii), labels=torch.from_numpy(labels))
    logits = out.logits.to(torch.float32).numpy()
    loss = out.loss.to(torch.float32).reshape(1).numpy()
    ce, valid = masked_ce(logits, labels)
    seq_losses = (ce.sum(axis=1) / valid.sum(axis=1)).astype(np.float32)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file({
        "input_ids": input_ids.astype(np.int32),
        "labels": labels.astype(np.int32),
        "loss": loss,
        "seq_losses": seq_losses,
        "logits_first": np.ascontiguousarray(logits[0, :N_LOGITS, :]),
    }, args.out, metadata={"source": "tests/reference/make_tinystories_fixture.py"})

    # ---- verification: reload from disk ----
    f = load_file(args.out)
    ce2, valid2 = masked_ce(logits, f["labels"])
    total = ce2.sum() / valid2.sum()
    assert abs(total - f["loss"][0]) < 1e-5 * total, (total, f["loss"])
    # the stored logits reproduce the per-position CE of sequence 0 over its first 15 targets
    ce_first, _ = masked_ce(f["logits_first"][None], f["labels"][:1, :N_LOGITS])
    assert np.allclose(ce_first, ce2[:1, :N_LOGITS - 1], rtol=1e-12, atol=0)
    # each sequence alone through the model gives its seq_loss (padding is harmless)
    for i, x in enumerate(seqs):
        xi = torch.tensor([x])
        with torch.no_grad():
            li = model(input_ids=xi, labels=xi).loss.item()
        assert abs(li - f["seq_losses"][i]) < 2e-5 * li, (i, li, f["seq_losses"][i])

    lens = [len(x) for x in seqs]
    print("first8: input_ids/labels %s, T=%d, lengths %s, scored positions %d" % (
        f["input_ids"].shape, T, lens, int(valid2.sum())))
    print("  loss %.7f (recomputed from logits %.7f)" % (f["loss"][0], total))
    print("  seq_losses %s" % " ".join("%.5f" % v for v in f["seq_losses"]))
    print("  logits_first %s, first ids %s" % (f["logits_first"].shape, f["input_ids"][0, :8].tolist()))


if __name__ == "__main__":
    main()

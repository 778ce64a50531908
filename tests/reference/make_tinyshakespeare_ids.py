#!/usr/bin/env python3
"""Token ids of tinyshakespeare.txt (TinyStories-656K tokenizer), split 90/10 into train and val.

Reads (read-only, never copied):
  ../shared/data/real/hf/TinyStories-656K/   (tokenizer files)
  ../shared/data/real/text/tinyshakespeare.txt
Writes tests/fixtures/tinyshakespeare/:
  train.safetensors  ids U16 [N_train]   the first floor(0.9 * N) token ids
  val.safetensors    ids U16 [N - N_train] the rest
The whole file is tokenized as one string by transformers' AutoTokenizer with
add_special_tokens=False (no BOS/EOS). Vocabulary size is 2048, so U16 holds every id.
Each file must stay under 1 MiB.

Note: transformers 5's AutoTokenizer for this model is not identical to tokenizer.json run by the
`tokenizers` library: it builds the BPE without an unk token, so a character with no token (the
text has 3 '&') is dropped instead of becoming <unk> (id 0). The script prints where the two
encodings differ.

Run from the repository root:
    python tests/reference/make_tinyshakespeare_ids.py [--shared ../shared] [--out DIR]
"""
import argparse
import os

import numpy as np
import transformers
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer
from transformers import AutoTokenizer

MAX_FILE = 1 << 20


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(repo, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(repo, "tests", "fixtures", "tinyshakespeare"))
    args = ap.parse_args()
    model_dir = os.path.join(args.shared, "data", "real", "hf", "TinyStories-656K")
    text_path = os.path.join(args.shared, "data", "real", "text", "tinyshakespeare.txt")

    transformers.utils.logging.set_verbosity_error()
    print("transformers %s" % transformers.__version__)
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = np.asarray(tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    assert ids.min() >= 0 and ids.max() < 65536 and ids.max() < len(tok)
    ids = ids.astype(np.uint16)
    n = len(ids)
    n_train = (9 * n) // 10
    parts = {"train": ids[:n_train], "val": ids[n_train:]}

    os.makedirs(args.out, exist_ok=True)
    for split, arr in parts.items():
        path = os.path.join(args.out, split + ".safetensors")
        save_file({"ids": np.ascontiguousarray(arr)}, path,
                  metadata={"source": "tests/reference/make_tinyshakespeare_ids.py"})
        size = os.path.getsize(path)
        if size >= MAX_FILE:
            raise SystemExit("%s is %d bytes, over 1 MiB" % (path, size))

    # ---- verification: reload, rejoin, decode ----
    back = np.concatenate([load_file(os.path.join(args.out, s + ".safetensors"))["ids"]
                           for s in ("train", "val")])
    assert back.dtype == np.uint16 and np.array_equal(back, ids)
    dec = tok.decode(back.tolist())
    raw = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    raw_ids = raw.encode(text, add_special_tokens=False).ids
    n_unk = raw_ids.count(0)
    same_but_unk = [x for x in raw_ids if x != 0] == ids.tolist()
    print("tinyshakespeare: %d chars -> %d tokens (%.2f chars/token), max id %d" % (
        len(text), n, len(text) / n, int(ids.max())))
    print("  train ids U16 [%d] (%d bytes), val ids U16 [%d] (%d bytes)" % (
        n_train, os.path.getsize(os.path.join(args.out, "train.safetensors")),
        n - n_train, os.path.getsize(os.path.join(args.out, "val.safetensors"))))
    print("  decode(ids) == text: %s (%d chars shorter; == text without '&': %s)" % (
        dec == text, len(text) - len(dec), dec == text.replace("&", "")))
    print("  tokenizers.Tokenizer(tokenizer.json): %d tokens, %d <unk>; equal to ours once <unk> "
          "are removed: %s" % (len(raw_ids), n_unk, same_but_unk))

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""tokenizer_bench_hf.py: encode throughput of Hugging Face `tokenizers` on one
thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false) for the same
tokenizers and whole text files as bench/tokenizer_bench.c: best of N runs of
encode(text, add_special_tokens=False) in one process (so HF's word cache is
warm after the first run).

  python3 bench/tokenizer_bench_hf.py [--shared ../shared] [--reps 3]
"""
import argparse
import json
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
from make_tokenizer_fixtures import build_llama3  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with open(os.path.join(REPO, "tests", "fixtures", "tokenizer", "llama3_template.json"), encoding="utf-8") as f:
        template = json.load(f)
    toks = [("llama2", "data/real/tokenizers/llama2-tinyllama/tokenizer.json"),
            ("mistral", "data/real/tokenizers/mistral-minueza/tokenizer.json"),
            ("tinystories", "data/real/hf/TinyStories-656K/tokenizer.json"),
            ("llama3", None)]
    texts = ["data/real/text/tinyshakespeare.txt", "data/real/text/tinystories_train_sample_2MiB.txt"]
    print("%-12s %-36s %8s %9s %10s" % ("tokenizer", "text", "MB", "tokens", "MB/s"))
    for name, rel in toks:
        if rel:
            tok = Tokenizer.from_file(os.path.join(args.shared, rel))
        else:
            tok = Tokenizer.from_str(json.dumps(build_llama3(template, args.shared)))
        for t in texts:
            with open(os.path.join(args.shared, t), "rb") as f:
                raw = f.read()
            text = raw.decode("utf-8", "replace")
            best, n = 1e30, 0
            for _ in range(args.reps):
                t0 = time.perf_counter()
                n = len(tok.encode(text, add_special_tokens=False).ids)
                best = min(best, time.perf_counter() - t0)
            print("%-12s %-36s %8.2f %9d %10.2f" % (name, os.path.basename(t), len(raw) / 1e6, n,
                                                    len(raw) / 1e6 / best), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

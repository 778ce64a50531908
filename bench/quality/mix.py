#!/usr/bin/env python3
"""mix.py: the quality study's data, from the LLM-Adapters commonsense sets (JSON arrays of alpaca
records instruction/input/output/answer).

  mix.py SRC_DIR OUT_DIR [--holdout-every K] [--test-limit N] [--holdout-limit N]

SRC_DIR holds boolq, ARC-Easy, ARC-Challenge and openbookqa, each with train.json and test.json.
Writes into OUT_DIR:
  train_mix.json  the four train sets concatenated in that order (17,754 records): the final runs
  grid_train.json the mix less every K-th record (default K = 20): the learning-rate grid trains on it
  holdout.json    every K-th record of the mix (887 records): the grid is scored on it, never on test
  test_<set>.json each test set (its first N records with --test-limit, for a smoke run)
  (--holdout-limit N: only the slice's first N records are written to holdout.json, for a smoke run)
and prints the counts. Records are copied unchanged; the order is fixed (training shuffles by seed)."""
import json
import os
import sys

SETS = ["boolq", "ARC-Easy", "ARC-Challenge", "openbookqa"]


def main():
    args = sys.argv[1:]
    every, limit, hold_limit = 20, 0, 0
    pos = []
    i = 0
    while i < len(args):
        if args[i] == "--holdout-every":
            every = int(args[i + 1])
            i += 2
        elif args[i] == "--holdout-limit":
            hold_limit = int(args[i + 1])
            i += 2
        elif args[i] == "--test-limit":
            limit = int(args[i + 1])
            i += 2
        else:
            pos.append(args[i])
            i += 1
    if len(pos) != 2 or every < 2:
        sys.exit(__doc__)
    src, out = pos
    os.makedirs(out, exist_ok=True)
    mix = []
    for s in SETS:
        with open(os.path.join(src, s, "train.json")) as f:
            recs = json.load(f)
        for k, r in enumerate(recs):
            for key in ("instruction", "output", "answer"):
                if not isinstance(r.get(key), str):
                    sys.exit(f"{s}/train.json: record {k}: no string field {key!r}")
        mix += recs
    hold = [r for k, r in enumerate(mix) if k % every == every - 1]
    grid = [r for k, r in enumerate(mix) if k % every != every - 1]

    def write(name, recs):
        path = os.path.join(out, name)
        with open(path + ".tmp", "w") as f:
            json.dump(recs, f, ensure_ascii=False)
        os.replace(path + ".tmp", path)

    write("train_mix.json", mix)
    write("grid_train.json", grid)
    write("holdout.json", hold[:hold_limit] if hold_limit > 0 else hold)
    counts = {"train_mix": len(mix), "grid_train": len(grid), "holdout": len(hold[:hold_limit] if hold_limit > 0 else hold)}
    for s in SETS:
        with open(os.path.join(src, s, "test.json")) as f:
            recs = json.load(f)
        if limit > 0:
            recs = recs[:limit]
        write(f"test_{s}.json", recs)
        counts["test_" + s] = len(recs)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()

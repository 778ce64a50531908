#!/usr/bin/env python3
"""check_export.py: `owlore export` against transformers (not run in CI).

Fine-tunes the real TinyStories-656K model with owlore on the tinyshakespeare
token fixture (a short OwLore run: 1 of its 2 blocks sampled at a time,
GaLore rank 16), exports the run as a Hugging Face directory in fp32 and in
bf16, loads each export with transformers and compares its logits with
owlore's on the same input (`owlore eval --model RUN_DIR --dump-logits`,
i.e. the base model with the run's checkpoint applied, in owlore's fp32
forward pass). Also loads the fp32 export back into owlore to separate the
export from the forward pass. Prints the max absolute differences and exits
non-zero when the fp32 export differs by more than --tol.

Run from the repository root after building (a few seconds on a CPU):

    python tests/reference/check_export.py --owlore build/owlore

Options: --model (default ../shared/data/real/hf/TinyStories-656K),
--work DIR (default a temporary directory, removed at the end unless --keep),
--steps N (default 40), --tol (default 1e-4).
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import xxhash
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_tokfile(path, ids, vocab):
    """An owlore token file (src/data/tokfile.h, version 1, u16 ids)."""
    payload = np.asarray(ids, dtype="<u2").tobytes()
    head = bytearray(128)
    head[0:8] = b"OWLTOKS\0"
    struct.pack_into("<IIQQQQQQQ", head, 8, 1, 2, vocab, len(ids), 0, 0, 0, 0, xxhash.xxh64(payload, seed=0).intdigest())
    struct.pack_into("<Q", head, 120, xxhash.xxh64(bytes(head[:120]), seed=0).intdigest())
    with open(path, "wb") as f:
        f.write(bytes(head) + payload)


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def hf_logits(model_dir, ids):
    m = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32)
    m.eval()
    with torch.no_grad():
        return m(torch.tensor(ids, dtype=torch.long)).logits.float().numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--owlore", default=os.path.join(ROOT, "build", "owlore"))
    ap.add_argument("--model", default=os.path.join(ROOT, "..", "shared", "data", "real", "hf", "TinyStories-656K"))
    ap.add_argument("--work")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(1)
    work = a.work or tempfile.mkdtemp(prefix="owlore-export-")
    os.makedirs(work, exist_ok=True)
    try:
        fx = os.path.join(ROOT, "tests", "fixtures", "tinyshakespeare")
        train = load_file(os.path.join(fx, "train.safetensors"))["ids"].astype(np.int64)
        val = load_file(os.path.join(fx, "val.safetensors"))["ids"].astype(np.int64)
        data, vdata = os.path.join(work, "train.bin"), os.path.join(work, "val.bin")
        write_tokfile(data, train, 2048)
        write_tokfile(vdata, val[:4 * 64 + 1], 2048)
        rund = os.path.join(work, "run")
        shutil.rmtree(rund, ignore_errors=True)
        run([a.owlore, "train", "--model", a.model, "--data", data, "--out", rund, "--device", "cpu",
             "--method", "owlore", "--gamma", "1", "--interval", "10", "--rank", "16", "--update-gap", "20",
             "--lr", "2e-3", "--batch-size", "8", "--block-size", "64", "--steps", str(a.steps), "--val-split", "0.05",
             "--sampling", "uniform", "--save-every", "20"])
        dump = os.path.join(work, "owlore_logits.safetensors")
        run([a.owlore, "eval", "--model", rund, "--data", vdata, "--batch-size", "4", "--block-size", "64",
             "--max-batches", "1", "--device", "cpu", "--dump-logits", dump])
        d = load_file(dump)
        ids, ref = d["ids"].astype(np.int64), d["logits"]
        base = hf_logits(a.model, ids)
        print(f"owlore logits of the run vs the base model (the fine-tune changed it): max |diff| = {np.abs(ref - base).max():.4f}")
        results = {}
        for dtype in ("fp32", "bf16"):
            exp = os.path.join(work, f"export_{dtype}")
            run([a.owlore, "export", rund, "--out", exp, "--dtype", dtype])
            cfg = json.load(open(os.path.join(exp, "config.json")))
            got = hf_logits(exp, ids)
            diff = float(np.abs(got - ref).max())
            results[dtype] = diff
            print(f"export {dtype} (torch_dtype {cfg.get('torch_dtype') or cfg.get('dtype')}): transformers logits vs "
                  f"owlore's: max |diff| = {diff:.3e} (logits up to {np.abs(ref).max():.2f})")
        # the fp32 export read back by owlore itself
        dump2 = os.path.join(work, "owlore_export_logits.safetensors")
        run([a.owlore, "eval", "--model", os.path.join(work, "export_fp32"), "--data", vdata, "--batch-size", "4",
             "--block-size", "64", "--max-batches", "1", "--device", "cpu", "--dump-logits", dump2])
        same = float(np.abs(load_file(dump2)["logits"] - ref).max())
        print(f"owlore on its own fp32 export vs owlore on the run: max |diff| = {same:.3e}")
        ok = results["fp32"] <= a.tol and same == 0.0
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if not a.keep and not a.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

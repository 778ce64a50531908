#!/usr/bin/env python3
"""Makes the model I/O fixtures under tests/fixtures/ with the Hugging Face
libraries (safetensors, transformers, torch), the independent reference for
the C safetensors writer/reader and the parameter counts:

  safetensors/hf_mixed.safetensors   safetensors.torch.save_file of tensors of
                                     several dtypes given in unsorted order
                                     (the library sorts them), metadata {"format": "pt"}
  safetensors/hf_numpy.safetensors   safetensors.numpy.save_file with an empty
                                     and a 0-d tensor, no metadata
  hf_sharded/                        a tiny random bf16 LlamaForCausalLM saved by
                                     transformers save_pretrained with a small
                                     max_shard_size (index + shards + config)
  config/preset_params.json          transformers' parameter counts for every
                                     preset in configs/models (meta device)

Run from the repository root: python3 tests/reference/make_io_fixtures.py
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import safetensors
import transformers
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save_file as torch_save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")
SHARD_BYTES = 5000  # bytes; transformers takes an int as bytes


def mixed():
    out = os.path.join(FIX, "safetensors")
    os.makedirs(out, exist_ok=True)
    t = {
        "zeta": torch.arange(6, dtype=torch.float32).reshape(2, 3).to(torch.bfloat16),
        "alpha": torch.linspace(-1, 1, 3, dtype=torch.float32),
        "beta": torch.tensor([0.5, -2.0], dtype=torch.float16),
        "idx": torch.arange(4, dtype=torch.int64) * 1000003,
        "count": torch.arange(4, dtype=torch.int32).reshape(2, 2) - 2,
        "mask": torch.tensor([1, 0, 255, 7, 3], dtype=torch.uint8),
        "aa.bf16": torch.tensor([3.0], dtype=torch.bfloat16),
        "model.layers.0.w": torch.arange(8, dtype=torch.float32).reshape(2, 2, 2) / 7,
    }
    torch_save_file(t, os.path.join(out, "hf_mixed.safetensors"), metadata={"format": "pt"})
    n = {
        "x": np.arange(3, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "scalar": np.array(2.5, dtype=np.float32),
        "h": np.array([1.0, -1.0], dtype=np.float16),
    }
    np_save_file(n, os.path.join(out, "hf_numpy.safetensors"))


def sharded():
    out = os.path.join(FIX, "hf_sharded")
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(1234)
    cfg = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=64, max_position_embeddings=64, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out, max_shard_size=SHARD_BYTES)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    with open(os.path.join(out, "SHARD_BYTES"), "w") as f:
        f.write(f"{SHARD_BYTES}\n")


def preset_params():
    out = os.path.join(FIX, "config")
    os.makedirs(out, exist_ok=True)
    presets_dir = os.path.join(ROOT, "configs", "models")
    res = {}
    for name in sorted(os.listdir(presets_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(presets_dir, name)) as f:
            d = json.load(f)
        cls = MistralConfig if d["architectures"][0] == "MistralForCausalLM" else LlamaConfig
        cfg = cls.from_json_file(os.path.join(presets_dir, name))
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg)
        block = sum(p.numel() for p in model.model.layers[0].parameters())
        res[name[:-5]] = {"params": model.num_parameters(), "block_params": block}
    with open(os.path.join(out, "preset_params.json"), "w") as f:
        json.dump({"made_with": f"transformers {transformers.__version__}, torch {torch.__version__}",
                   "presets": res}, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    print(f"safetensors {safetensors.__version__}, transformers {transformers.__version__}", file=sys.stderr)
    mixed()
    sharded()
    preset_params()

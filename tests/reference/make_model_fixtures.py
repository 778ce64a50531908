#!/usr/bin/env python3
"""Golden fixtures for the CPU model: tiny random LLaMA/Mistral models with HF logits, loss and grads.

What it makes (under tests/fixtures/models/<name>/, one folder per model):
  config.json          written by transformers' save_pretrained (transformers 5 layout: the RoPE
                       settings are in "rope_parameters", which holds "rope_theta" and, for
                       llama3_rope, the llama3 scaling keys)
  config.v4.json       the same model in the transformers 4 layout that real checkpoints use
                       (top-level "rope_theta", "rope_scaling" for llama3_rope); checked here to give
                       bit-identical logits when HF loads it
  model.safetensors    written by save_pretrained, float32 (tied models store no lm_head.weight)
  expected.safetensors input_ids I32 [B,T], labels I32 [B,T], logits F32 [B,T,V], loss F32 [1],
                       grad.<name> F32 (shape of the parameter) for every name in
                       model.named_parameters() (a tied embedding appears once, as
                       model.embed_tokens.weight, with the gradient of both of its uses)

Semantics: attention mask all ones (no padding); HF causal-LM loss: logits[:, :-1] are scored
against labels[:, 1:], positions whose label is -100 are ignored, loss is the mean over the rest.
Weights: every parameter is drawn from one torch.Generator per model (seeded), in
named_parameters() order: RMSNorm weights 1 + 0.1*randn, everything else 0.2*randn.

Deterministic: fixed seeds, float32, one CPU thread, torch.use_deterministic_algorithms(True),
attn_implementation="eager". Rerunning on the same versions rewrites the files byte for byte.

Run from the repository root:
    python tests/reference/make_model_fixtures.py            # writes tests/fixtures/models/
    python tests/reference/make_model_fixtures.py --out DIR  # writes DIR/<name>/ instead
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM
from fixture_common import setup_determinism, v4_config

VOCAB = 97
BATCH = 2

# name -> (model class, config class, config kwargs, T, seed)
MODELS = {
    "mha_untied": (LlamaForCausalLM, LlamaConfig, dict(
        hidden_size=32, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, tie_word_embeddings=False, rms_norm_eps=1e-5,
        max_position_embeddings=64, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    ), 16, 1001),
    "gqa_tied": (LlamaForCausalLM, LlamaConfig, dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=8,
        num_key_value_heads=2, tie_word_embeddings=True, rms_norm_eps=1e-6,
        max_position_embeddings=64, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    ), 16, 1002),
    # head_dim 16 gives 8 rotary frequencies with wavelengths 2*pi*500000^(i/8) =
    # 6.3, 32.4, 167, 863, 4443, ...  original_max_position_embeddings 256 with low/high freq
    # factors 1/4 puts the llama3 bands at wavelength < 64 (untouched: i=0,1), 64..256
    # (interpolated: i=2) and > 256 (divided by factor 8: i=3..7).
    "llama3_rope": (LlamaForCausalLM, LlamaConfig, dict(
        hidden_size=64, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, tie_word_embeddings=False, rms_norm_eps=1e-5,
        max_position_embeddings=2048,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 256},
    ), 32, 1003),
    # num_heads * head_dim = 64 != hidden 48: q/o projections are not square.
    "mistral_headdim": (MistralForCausalLM, MistralConfig, dict(
        hidden_size=48, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, tie_word_embeddings=False, rms_norm_eps=1e-6,
        max_position_embeddings=64, sliding_window=None,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    ), 16, 1004),
}


def build_model(model_cls, config_cls, kwargs, seed):
    common = dict(vocab_size=VOCAB, hidden_act="silu", initializer_range=0.2, attention_dropout=0.0,
                  pad_token_id=None, bos_token_id=1, eos_token_id=2, dtype="float32")
    if config_cls is LlamaConfig:
        common.update(attention_bias=False, mlp_bias=False)
    config = config_cls(**common, **kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(config).to(torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.2 * noise)
    model.eval()  # no dropout (all dropouts are 0 anyway)
    return model


def make_batch(T, seed):
    gen = torch.Generator().manual_seed(seed + 7)
    input_ids = torch.randint(0, VOCAB, (BATCH, T), generator=gen, dtype=torch.int64)
    labels = input_ids.clone()
    labels[1, :3] = -100          # first 3 positions of the second sequence
    labels[0, T // 2 - 1] = -100  # one in the middle of the first sequence
    return input_ids, labels


def ce_from_logits(logits, labels):
    """HF causal-LM loss in float64 numpy: shift, ignore -100, mean over the rest."""
    lg = logits[:, :-1, :].astype(np.float64)
    lb = labels[:, 1:]
    m = lg.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(lg - m).sum(axis=-1, keepdims=True)))[..., 0]
    valid = lb != -100
    picked = np.take_along_axis(lg, np.where(valid, lb, 0)[..., None], axis=-1)[..., 0]
    return float(((lse - picked) * valid).sum() / valid.sum())


def check_llama3_bands(model):
    cfg = model.config
    rp = cfg.rope_parameters
    hd = cfg.head_dim
    inv = 1.0 / (rp["rope_theta"] ** (np.arange(0, hd, 2) / hd))
    wl = 2 * math.pi / inv
    lo_wl = rp["original_max_position_embeddings"] / rp["low_freq_factor"]
    hi_wl = rp["original_max_position_embeddings"] / rp["high_freq_factor"]
    bands = ["untouched" if w < hi_wl else "scaled" if w > lo_wl else "interpolated" for w in wl]
    hf_inv = model.model.rotary_emb.inv_freq.detach().numpy().astype(np.float64)
    print("  llama3 bands (wavelen < %g untouched, > %g scaled):" % (hi_wl, lo_wl))
    for i, (w, b, a, h) in enumerate(zip(wl, bands, inv, hf_inv)):
        print("    i=%d wavelen=%10.1f %-12s inv_freq %.6e -> HF %.6e (ratio %.4f)" % (i, w, b, a, h, h / a))
    for want in ("untouched", "interpolated", "scaled"):
        if want not in bands:
            sys.exit("llama3_rope: no frequency is %s; change the parameters" % want)


def make_one(name, out_root):
    model_cls, config_cls, kwargs, T, seed = MODELS[name]
    model = build_model(model_cls, config_cls, kwargs, seed)
    input_ids, labels = make_batch(T, seed)
    attn = torch.ones_like(input_ids)

    model.zero_grad(set_to_none=True)
    out = model(input_ids=input_ids, attention_mask=attn, labels=labels)
    out.loss.backward()
    logits = out.logits.detach().to(torch.float32).contiguous()
    loss = out.loss.detach().to(torch.float32).reshape(1)

    params = list(model.named_parameters())
    expected = {
        "input_ids": input_ids.to(torch.int32).numpy(),
        "labels": labels.to(torch.int32).numpy(),
        "logits": logits.numpy(),
        "loss": loss.numpy(),
    }
    for pname, p in params:
        assert p.grad is not None, pname
        expected["grad." + pname] = p.grad.detach().to(torch.float32).contiguous().numpy()

    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d)
    save_file(expected, os.path.join(d, "expected.safetensors"),
              metadata={"source": "tests/reference/make_model_fixtures.py"})
    with open(os.path.join(d, "config.json")) as f:
        cfg_json = json.load(f)
    with open(os.path.join(d, "config.v4.json"), "w") as f:
        json.dump(v4_config(cfg_json), f, indent=2, sort_keys=True)
        f.write("\n")

    # ---- verification: reload everything from disk ----
    exp = load_file(os.path.join(d, "expected.safetensors"))
    ce = ce_from_logits(exp["logits"], exp["labels"])
    assert abs(ce - float(exp["loss"][0])) < 1e-5 * max(1.0, ce), (ce, exp["loss"])
    reloaded = model_cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    with torch.no_grad():
        lg2 = reloaded(input_ids=input_ids, attention_mask=attn).logits.numpy()
    assert np.array_equal(lg2, exp["logits"]), "reloaded model gives different logits"
    cfg4 = config_cls.from_dict(v4_config(cfg_json))
    cfg4._attn_implementation = "eager"
    m4 = model_cls(cfg4)
    m4.load_state_dict(reloaded.state_dict())
    with torch.no_grad():
        lg4 = m4(input_ids=input_ids, attention_mask=attn).logits.numpy()
    assert np.array_equal(lg4, exp["logits"]), "config.v4.json gives different logits"
    stored = load_file(os.path.join(d, "model.safetensors"))
    if model.config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    names = [n for n, _ in params]
    assert sorted(k[5:] for k in exp if k.startswith("grad.")) == sorted(names)

    print("%s: B=%d T=%d V=%d params=%d (%d tensors) loss=%.7f (recomputed from logits %.7f)" % (
        name, BATCH, T, VOCAB, sum(p.numel() for _, p in params), len(params),
        float(exp["loss"][0]), ce))
    print("  model.safetensors tensors: %d%s; valid label positions %d" % (
        len(stored), " (no lm_head.weight: tied)" if "lm_head.weight" not in stored else "",
        int((exp["labels"][:, 1:] != -100).sum())))
    gn = {k: float(np.linalg.norm(v)) for k, v in exp.items() if k.startswith("grad.")}
    small = min(gn, key=gn.get)
    print("  grad norms: min %.3e (%s) max %.3e" % (gn[small], small, max(gn.values())))
    # float32 noise level, to help choose tolerances: the same model and batch in float64
    m64 = model_cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float64)
    out64 = m64(input_ids=input_ids, attention_mask=attn, labels=labels)
    out64.loss.backward()
    worst = 0.0
    for pname, p in m64.named_parameters():
        g32 = exp["grad." + pname].astype(np.float64)
        g64 = p.grad.detach().numpy()
        worst = max(worst, np.abs(g32 - g64).max() / np.abs(g64).max())
    print("  float32 vs float64: loss %.2e, logits max abs %.2e, grads max abs/max|g| %.2e" % (
        abs(out64.loss.item() - float(exp["loss"][0])),
        np.abs(out64.logits.detach().numpy() - exp["logits"]).max(), worst))
    if name == "llama3_rope":
        check_llama3_bands(model)
        plain = config_cls.from_dict(dict(v4_config(cfg_json), rope_scaling=None))
        plain._attn_implementation = "eager"
        mp = model_cls(plain)
        mp.load_state_dict(reloaded.state_dict())
        with torch.no_grad():
            lgp = mp(input_ids=input_ids, attention_mask=attn).logits.numpy()
        print("  max |logits(llama3) - logits(no scaling)| = %.4f" % np.abs(lgp - exp["logits"]).max())
    if name == "mistral_headdim":
        q = model.model.layers[0].self_attn.q_proj.weight
        print("  q_proj.weight %s (num_heads*head_dim=%d, hidden=%d)" % (
            tuple(q.shape), q.shape[0], model.config.hidden_size))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "models"))
    args = ap.parse_args()
    setup_determinism()
    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))
    for name in MODELS:
        make_one(name, os.path.normpath(args.out))


if __name__ == "__main__":
    main()

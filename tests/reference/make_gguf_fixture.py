#!/usr/bin/env python3
"""transformers' conversion of a GGUF file, as the fixture of `owlore convert --from-gguf`.

The real model is SmolLM2-135M-Instruct.Q4_1.gguf (scripts/get-smollm2.sh fetches it; 98 MB, not
committed). transformers loads it with AutoModelForCausalLM.from_pretrained(dir, gguf_file=name,
dtype=float32) and AutoTokenizer.from_pretrained(dir, gguf_file=name) (gguf-py dequantises; the
LLaMA Q/K permutation is undone; the tokenizer is rebuilt from tokenizer.ggml.*). The script records:

  tests/fixtures/gguf/smollm2.json
    config       the config values owlore reads (hidden, layers, heads, kv heads, head_dim,
                 intermediate, rms eps, rope theta, context, vocab, tie, bos/eos ids)
    tensors      {HF name: {"shape", "sha256_f32", "sha256_bf16"}}: sha256 of the tensor's
                 little-endian F32 bytes, and of its torch .to(bfloat16) bytes
    text_ids     tinyshakespeare.txt tokenized as one string, add_special_tokens=False:
                 {"count", "sha256_i32" (of the int32 array), "first": the first 64 ids}
  tests/fixtures/gguf/smollm2_logits.safetensors
    input_ids I32 [16]   the first 16 ids of the text
    columns   I32 [512]  vocabulary columns 0, 96, 192, ... (every 96th)
    logits    F32 [16, 512] the model's logits (eager attention, float32, CPU) at those columns
    argmax    I32 [16]   the full-vocabulary argmax of each position

  tests/fixtures/gguf/quant_blocks.safetensors   (independent of the model file)
    for each type T of F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K:
    T.bytes U8 [4 blocks]  random bytes (seed 17), with every F16 scale field a random finite half
    T.f32   F32 [4 x block] gguf-py's dequantize of those bytes (what transformers uses)

  tests/fixtures/gguf/spm_tiny.gguf   (the SentencePiece case; about 0.9 MB)
    a real SentencePiece vocabulary (../shared/data/real/tokenizers/llama2-tinyllama/tokenizer.model:
    pieces, scores and token types as llama.cpp's converter writes them, bos 1, eos 2, unk 0,
    add_bos_token true, add_space_prefix true, no merges) and a tiny random LLaMA (1 block, hidden
    4, 2 heads, 1 kv head, intermediate 8; embedding F16, the rest F32; q/k permuted as llama.cpp
    does), written with gguf-py's GGUFWriter
  tests/fixtures/gguf/spm_tiny.json   transformers' conversion of that file: "tensors" and
    "config" as above, "text_ids" of tinyshakespeare.txt with add_special_tokens=True (BOS first)

Needs torch, transformers (5.x), gguf, accelerate (transformers refuses GGUF without it).
Run from the repository root:
    python tests/reference/make_gguf_fixture.py [--gguf FILE] [--shared ../shared] [--out DIR]
"""
import argparse
import hashlib
import json
import os
import subprocess

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

N_POS = 16
COL_STRIDE = 96


# The byte ranges of each type's F16 fields in one block (kept finite so that values are too).
QUANT_TYPES = {"F32": [], "F16": [], "BF16": [], "Q4_0": [(0, 2)], "Q4_1": [(0, 4)], "Q5_0": [(0, 2)],
               "Q5_1": [(0, 4)], "Q8_0": [(0, 2)], "Q4_K": [(0, 4)], "Q5_K": [(0, 4)], "Q6_K": [(208, 210)]}


def quant_blocks(out_dir):
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, dequantize
    rng = np.random.default_rng(17)
    tensors = {}
    for name, halves in QUANT_TYPES.items():
        qt = GGMLQuantizationType[name]
        block, size = GGML_QUANT_SIZES[qt]
        n = 4 * block if block > 1 else 64
        raw = rng.integers(0, 256, size=(n // block, size), dtype=np.uint8)
        if name in ("F32", "F16", "BF16"):
            vals = rng.standard_normal(n).astype(np.float32)
            raw = (vals if name == "F32" else vals.astype(np.float16) if name == "F16"
                   else (vals.view(np.uint32) >> 16).astype(np.uint16)).view(np.uint8).reshape(raw.shape)
        for b, e in halves:
            h = rng.uniform(-2, 2, size=(raw.shape[0], (e - b) // 2)).astype(np.float16)
            raw[:, b:e] = h.view(np.uint8)
        flat = np.ascontiguousarray(raw.reshape(-1))
        vals = dequantize(flat, qt).astype(np.float32).reshape(-1)
        assert vals.size == n and np.isfinite(vals).all()
        tensors[name + ".bytes"] = flat
        tensors[name + ".f32"] = np.ascontiguousarray(vals)
    save_file(tensors, os.path.join(out_dir, "quant_blocks.safetensors"),
              metadata={"source": "tests/reference/make_gguf_fixture.py"})
    print("quant_blocks: %d types" % len(QUANT_TYPES))


def llama_cpp_permute(w, n_head):
    """llama.cpp's convert_hf_to_gguf LlamaModel.permute (rows of each head interleaved by halves)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def spm_gguf(path, spm_model):
    import gguf
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=spm_model)
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):  # as llama.cpp's _create_vocab_sentencepiece
        tokens.append(sp.IdToPiece(i).encode("utf-8"))
        scores.append(sp.GetScore(i))
        t = gguf.TokenType.NORMAL
        if sp.IsUnknown(i):
            t = gguf.TokenType.UNKNOWN
        elif sp.IsControl(i):
            t = gguf.TokenType.CONTROL
        elif sp.IsUnused(i):
            t = gguf.TokenType.UNUSED
        elif sp.IsByte(i):
            t = gguf.TokenType.BYTE
        types.append(t)
    hidden, heads, kv, inter, vocab = 4, 2, 1, 8, len(tokens)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("spm-tiny")
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(vocab)
    w.add_rope_dimension_count(hidden // heads)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    g = torch.Generator().manual_seed(5)
    rnd = lambda *shape: (0.5 * torch.randn(*shape, generator=g)).numpy()  # noqa: E731
    w.add_tensor("token_embd.weight", rnd(vocab, hidden).astype(np.float16))
    hd = hidden // heads
    w.add_tensor("blk.0.attn_q.weight", llama_cpp_permute(rnd(heads * hd, hidden), heads))
    w.add_tensor("blk.0.attn_k.weight", llama_cpp_permute(rnd(kv * hd, hidden), kv))
    w.add_tensor("blk.0.attn_v.weight", rnd(kv * hd, hidden))
    w.add_tensor("blk.0.attn_output.weight", rnd(hidden, heads * hd))
    w.add_tensor("blk.0.ffn_gate.weight", rnd(inter, hidden))
    w.add_tensor("blk.0.ffn_up.weight", rnd(inter, hidden))
    w.add_tensor("blk.0.ffn_down.weight", rnd(hidden, inter))
    for n in ("blk.0.attn_norm.weight", "blk.0.ffn_norm.weight", "output_norm.weight"):
        w.add_tensor(n, (1 + 0.1 * rnd(hidden)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def convert_with_transformers(gguf_path, text, add_special):
    d, name = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    ids = np.asarray(tok(text, add_special_tokens=add_special)["input_ids"], dtype=np.int32)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    fixture = {
        "source": "tests/reference/make_gguf_fixture.py",
        "gguf": name,
        "config": config_values(model.config),
        "tensors": tensor_digests(model),
        "text_ids": {"count": int(ids.size), "sha256_i32": sha(ids.astype("<i4")), "first": ids[:64].tolist(),
                     "add_special_tokens": add_special},
    }
    return tok, model, ids, fixture


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def sha(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def tensor_digests(model):
    out = {}
    for name, t in sorted(model.state_dict().items()):
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue  # the tied alias of model.embed_tokens.weight
        f32 = t.detach().to(torch.float32).contiguous()
        bf16 = f32.to(torch.bfloat16).view(torch.int16).numpy()
        out[name] = {"shape": list(f32.shape), "sha256_f32": sha(f32.numpy()), "sha256_bf16": sha(bf16)}
    return out


def config_values(cfg):
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(cfg, "rope_theta", None))
    return {
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "intermediate_size": cfg.intermediate_size,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": theta,
        "max_position_embeddings": cfg.max_position_embeddings,
        "vocab_size": cfg.vocab_size,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=None, help="default: scripts/get-smollm2.sh --path")
    ap.add_argument("--shared", default=os.path.join(repo, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(repo, "tests", "fixtures", "gguf"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    quant_blocks(args.out)
    gguf = args.gguf or subprocess.check_output([os.path.join(repo, "scripts", "get-smollm2.sh"), "--path"],
                                                text=True).strip()
    text_path = os.path.join(args.shared, "data", "real", "text", "tinyshakespeare.txt")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.utils.logging.set_verbosity_error()
    print("transformers %s, torch %s" % (transformers.__version__, torch.__version__))

    with open(text_path, encoding="utf-8") as f:
        text = f.read()

    spm_path = os.path.join(args.out, "spm_tiny.gguf")
    spm_gguf(spm_path, os.path.join(args.shared, "data", "real", "tokenizers", "llama2-tinyllama", "tokenizer.model"))
    tok, model, spm_ids, spm_fx = convert_with_transformers(spm_path, text, True)
    write_json(os.path.join(args.out, "spm_tiny.json"), spm_fx)
    print("spm_tiny.gguf: %d bytes, %d text ids (first %s)" % (os.path.getsize(spm_path), spm_ids.size,
                                                              spm_ids[:8].tolist()))

    tok, model, ids, fixture = convert_with_transformers(gguf, text, False)
    with torch.no_grad():
        logits = model(torch.from_numpy(ids[:N_POS].astype(np.int64))[None]).logits[0].numpy()
        logits64 = model.to(torch.float64)(torch.from_numpy(ids[:N_POS].astype(np.int64))[None]).logits[0].numpy()
    cols = np.arange(0, logits.shape[1], COL_STRIDE, dtype=np.int32)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "smollm2.json"), fixture)
    save_file({"input_ids": ids[:N_POS].copy(), "columns": cols, "logits": np.ascontiguousarray(logits[:, cols]),
               "argmax": logits.argmax(axis=1).astype(np.int32)},
              os.path.join(args.out, "smollm2_logits.safetensors"), metadata={"source": fixture["source"]})
    print("%d tensors, %d text ids (first %s), logits [%d, %d] of %d columns; float32 vs float64 max |diff| %.3g"
          % (len(fixture["tensors"]), ids.size, ids[:8].tolist(), N_POS, cols.size, logits.shape[1],
             np.abs(logits - logits64).max()))


if __name__ == "__main__":
    main()

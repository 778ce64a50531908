#!/usr/bin/env python3
"""Seeds of the fuzz_gguf target (tests/fuzz/corpus/gguf/), written with gguf-py's GGUFWriter:
gpt2_tiny.gguf (a 1-block LLaMA with Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/BF16/F32 tensors and a byte-level
BPE tokenizer with merges, control and user-defined tokens, a pre-tokenizer and a chat template),
spm_tiny.gguf (F16/F32 tensors and a SentencePiece vocabulary with scores and no merges),
kv_types.gguf (a key of every value type and K-quant tensors, no model). Deterministic (seed 3).
Run from the repository root with gguf and numpy installed:
    python tests/fuzz/make_gguf_seeds.py
"""
import numpy as np, gguf
from gguf import quants, GGMLQuantizationType as T, GGML_QUANT_SIZES
out = "tests/fuzz/corpus/gguf/"
rng = np.random.default_rng(3)
def base(w, vocab):
    w.add_block_count(1); w.add_context_length(64); w.add_embedding_length(32); w.add_feed_forward_length(64)
    w.add_head_count(2); w.add_head_count_kv(1); w.add_rope_freq_base(10000.0); w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab); w.add_rope_dimension_count(16)
def tensors(w, vocab, q):
    def add(name, rows, cols, t):
        a = rng.standard_normal((rows, cols)).astype(np.float32)
        if t == T.F32: w.add_tensor(name, a)
        elif t == T.F16: w.add_tensor(name, a.astype(np.float16))
        else: w.add_tensor(name, quants.quantize(a, t), raw_dtype=t)
    add("token_embd.weight", vocab, 32, T.Q8_0 if q else T.F16)
    add("blk.0.attn_q.weight", 32, 32, T.Q4_0 if q else T.F32)
    add("blk.0.attn_k.weight", 16, 32, T.Q4_1 if q else T.F32)
    add("blk.0.attn_v.weight", 16, 32, T.Q5_0 if q else T.F32)
    add("blk.0.attn_output.weight", 32, 32, T.Q5_1 if q else T.F32)
    add("blk.0.ffn_gate.weight", 64, 32, T.BF16 if q else T.F32)
    add("blk.0.ffn_up.weight", 64, 32, T.F32)
    add("blk.0.ffn_down.weight", 32, 64, T.F32)
    for n in ("blk.0.attn_norm.weight", "blk.0.ffn_norm.weight", "output_norm.weight"):
        w.add_tensor(n, np.ones(32, np.float32))
def done(w):
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
toks = ["<|endoftext|>", "<|im_start|>", "<think>"] + list("abcdefgh") + ["Ġ", "Ġa", "ab", "cd", "abcd", "x y", "\u00e9"]
w = gguf.GGUFWriter(out + "gpt2_tiny.gguf", "llama"); base(w, len(toks))
w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("llama-bpe"); w.add_token_list(toks)
w.add_token_types([3, 3, 4] + [1] * (len(toks) - 3)); w.add_token_merges(["a b", "c d", "ab cd", "Ġ a"])
w.add_bos_token_id(1); w.add_eos_token_id(0); w.add_add_bos_token(True); w.add_chat_template("{{ messages }}")
tensors(w, len(toks), True); done(w)
toks = ["<unk>", "<s>", "</s>", "<0x0A>", "▁", "a", "b", "c", "▁a", "ab", "▁ab", "abc", "▁abc", "bc"]
w = gguf.GGUFWriter(out + "spm_tiny.gguf", "llama"); base(w, len(toks))
w.add_tokenizer_model("llama"); w.add_token_list(toks); w.add_token_scores([0.0] * 4 + [-float(i) for i in range(len(toks) - 4)])
w.add_token_types([2, 3, 3, 6] + [1] * (len(toks) - 4)); w.add_bos_token_id(1); w.add_eos_token_id(2); w.add_unk_token_id(0)
tensors(w, len(toks), False); done(w)
w = gguf.GGUFWriter(out + "kv_types.gguf", "llama")
w.add_uint8("u8", 7); w.add_int8("i8", -3); w.add_uint16("u16", 9); w.add_int16("i16", -9); w.add_uint32("u32", 1)
w.add_int32("i32", -1); w.add_float32("f32", 0.5); w.add_uint64("u64", 5); w.add_int64("i64", -5); w.add_float64("f64", 2.5)
w.add_bool("b", True); w.add_string("s", "text"); w.add_array("as", ["x", "yz"]); w.add_array("ai", [1, 2, 3]); w.add_array("af", [0.5, 1.5])
for t in (T.Q4_K, T.Q5_K, T.Q6_K):
    blk = rng.integers(0, 256, size=(2, GGML_QUANT_SIZES[t][1]), dtype=np.uint8)
    w.add_tensor("k." + t.name, blk, raw_dtype=t)
done(w)

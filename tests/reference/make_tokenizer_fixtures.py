#!/usr/bin/env python3
"""make_tokenizer_fixtures.py: expected token ids from Hugging Face `tokenizers`
(PyPI, 0.23) for tests/test_tokenizer.c.

Writes into tests/fixtures/tokenizer/:
  tokenizers.json          the tokenizers under test: the real ones in ../shared
                           (LLaMA-2, Mistral, TinyStories-656K), LLaMA-3 built from
                           encoder.json + vocab.bpe + llama3_template.json, and
                           variants (a base with some tokenizer.json keys replaced)
                           that exercise what the real files do not.
  llama3_template.json     LLaMA-3 tokenizer.json without vocab/merges, as
                           transformers configures it, serialised by tokenizers.
  <tok>__<text>.bin.zst    ids of a whole text file (add_special_tokens=False), and
                           the xxh64 of their decode() (a second record, no ids).
  torture.bin.zst          ids of the torture strings, add_special False and True,
                           for every tokenizer and variant.
  decode.bin.zst           decode() of id lists, skip_special_tokens False/True.
  <tok>__sweep.txt.zst     pre-tokenizer spans (pre_tokenize_str, char offsets) of
                           a probe string built around every code point, stored as
                           runs (a line only where the spans change).

Record format (little endian, the whole file zstd-compressed):
  b"OWTKFIX1", u32 count, then per record:
  u8 kind (1 encode, 2 decode), u8 flag (add_special / skip_special),
  u8 id_bytes (2 or 4), u8 0, u16+bytes tokenizer name, u16+bytes input name,
  u32+bytes text (encode: the input, empty for "file:" inputs; decode: the
  expected text), u64 xxh64 of the input/expected text (of the file for "file:"),
  u32 n + ids.

Invalid UTF-8: `tokenizers` takes Python str, so inputs are decoded with
errors="replace" first; owlore's encoder does the same replacement itself.

Run:  python3 tests/reference/make_tokenizer_fixtures.py [--shared ../shared]
(needs tokenizers, zstandard, xxhash; about two minutes, mostly the sweeps).
"""
import argparse
import copy
import json
import os
import random
import struct
import sys

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import xxhash  # noqa: E402
import zstandard  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "tests", "fixtures", "tokenizer")

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

BASES = {
    "llama2": {"file": "data/real/tokenizers/llama2-tinyllama/tokenizer.json"},
    "mistral": {"file": "data/real/tokenizers/mistral-minueza/tokenizer.json"},
    "tinystories": {"file": "data/real/hf/TinyStories-656K/tokenizer.json"},
    "llama3": {"template": "tokenizer/llama3_template.json",
               "vocab": "data/real/tokenizers/llama3.2/encoder.json",
               "merges": "data/real/tokenizers/llama3.2/vocab.bpe"},
}

TEXTS = {
    "shakespeare": "data/real/text/tinyshakespeare.txt",
    "stories": "data/real/text/tinystories_train_sample_2MiB.txt",
}

META_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def variants(ts_added):
    """Variants: (name, base, replaced top-level keys, replaced model keys)."""
    flags = copy.deepcopy(ts_added)
    for t in flags:
        if t["content"] == "<|start_story|>":
            t.update(lstrip=True, rstrip=True, normalized=False)
        if t["content"] == "<|end_story|>":
            t.update(single_word=True, normalized=False)
    flags += [
        {"id": 2048, "content": "Lily", "single_word": True, "lstrip": False, "rstrip": False,
         "normalized": True, "special": False},
        {"id": 2049, "content": "[SEP]", "single_word": False, "lstrip": False, "rstrip": True,
         "normalized": False, "special": False},
        {"id": 2050, "content": " and", "single_word": False, "lstrip": True, "rstrip": False,
         "normalized": True, "special": True},
        {"id": 2051, "content": "<x>", "single_word": True, "lstrip": True, "rstrip": True,
         "normalized": False, "special": True},
    ]
    return [
        # LLaMA-2 as newer transformers writes it (legacy=False): Metaspace, prepend "first"
        {"name": "llama2-metaspace", "base": "llama2",
         "replace": {"normalizer": None,
                     "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                                       "prepend_scheme": "first", "split": False},
                     "decoder": META_DECODER}},
        {"name": "mistral-metaspace-split", "base": "mistral",
         "replace": {"normalizer": None,
                     "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                                       "prepend_scheme": "always", "split": True},
                     "decoder": {"type": "Metaspace", "replacement": "\u2581",
                                 "prepend_scheme": "always", "split": True}}},
        {"name": "mistral-ignore-merges", "base": "mistral",
         "replace": {"normalizer": None,
                     "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                                       "prepend_scheme": "always", "split": True}},
         "model": {"ignore_merges": True}},
        {"name": "llama2-unk", "base": "llama2", "model": {"byte_fallback": False}},
        {"name": "llama2-unk-nofuse", "base": "llama2", "model": {"byte_fallback": False, "fuse_unk": False}},
        # continuation bytes missing: non-ASCII characters outside the vocabulary become unk while
        # control characters still fall back to bytes (tokenizers then emits them before a pending unk)
        {"name": "llama2-halfbytes", "base": "llama2", "drop_vocab": ["<0x%02X>" % b for b in range(0x80, 0xC0)]},
        {"name": "tinystories-flags", "base": "tinystories", "replace": {"added_tokens": flags}},
        {"name": "tinystories-splits", "base": "tinystories",
         "replace": {"normalizer": None,
                     "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                         {"type": "Split", "pattern": {"Regex": "\\d"}, "behavior": "MergedWithNext", "invert": False},
                         {"type": "Split", "pattern": {"String": ","}, "behavior": "Removed", "invert": False},
                         {"type": "Split", "pattern": {"Regex": "[.!?]+"}, "behavior": "MergedWithPrevious",
                          "invert": False},
                         {"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Contiguous", "invert": True},
                         {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                          "split": False}]}}},
        {"name": "tinystories-nodecoder", "base": "tinystories",
         "replace": {"decoder": None, "post_processor": None}},
        {"name": "llama3-merges", "base": "llama3", "model": {"ignore_merges": False}},
        {"name": "llama3-gpt2", "base": "llama3",
         "replace": {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                       "use_regex": True},
                     "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                                        "use_regex": True}}},
        {"name": "llama3-gpt2-noprefix", "base": "llama3",
         "replace": {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                       "use_regex": True}}},
        {"name": "llama3-eos", "base": "llama3",
         "replace": {"post_processor": {
             "type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}},
                        {"SpecialToken": {"id": "<|end_of_text|>", "type_id": 0}}],
             "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {
                 "<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]},
                 "<|end_of_text|>": {"id": "<|end_of_text|>", "ids": [128001], "tokens": ["<|end_of_text|>"]}}}}},
    ]


def apply_variant(base_json, v):
    """replace: top-level keys; model: keys of "model"; drop_vocab: tokens removed from model.vocab."""
    d = copy.deepcopy(base_json)
    for k, val in v.get("replace", {}).items():
        d[k] = val
    for k, val in v.get("model", {}).items():
        d["model"][k] = val
    for t in v.get("drop_vocab", []):
        del d["model"]["vocab"][t]
    return d


def llama3_specials():
    named = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 2: "<|reserved_special_token_0|>",
             3: "<|reserved_special_token_1|>", 4: "<|finetune_right_pad_id|>", 5: "<|reserved_special_token_2|>",
             6: "<|start_header_id|>", 7: "<|end_header_id|>", 8: "<|eom_id|>", 9: "<|eot_id|>",
             10: "<|python_tag|>"}
    return [named.get(i, "<|reserved_special_token_%d|>" % (i - 8)) for i in range(256)]


def llama3_template():
    """LLaMA-3 as transformers' TikTokenConverter configures it, serialised by tokenizers."""
    tok = Tokenizer(models.BPE({"a": 0}, [], fuse_unk=False, byte_fallback=False, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", 128000)])])
    d = json.loads(tok.to_str())
    d["model"]["vocab"] = {}
    d["model"]["merges"] = []
    # the special tokens at their LLaMA-3.x ids (the vocabulary has 128000 entries)
    d["added_tokens"] = [{"id": 128000 + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, s in enumerate(llama3_specials())]
    return d


def build_llama3(template, shared):
    """The same assembly as tokenizer_build_json in C: vocab from encoder.json,
    merges = the lines of vocab.bpe as "a b" strings."""
    d = copy.deepcopy(template)
    with open(os.path.join(shared, BASES["llama3"]["vocab"]), encoding="utf-8") as f:
        d["model"]["vocab"] = json.load(f)
    with open(os.path.join(shared, BASES["llama3"]["merges"]), encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    merges = []
    for i, line in enumerate(lines):
        line = line[:-1] if line.endswith("\r") else line
        if line and not (i == 0 and line.startswith("#version")):
            merges.append(line)
    d["model"]["merges"] = merges
    return d


def torture_inputs(shared):
    s = []
    add = lambda name, b: s.append((name, b if isinstance(b, bytes) else b.encode("utf-8")))  # noqa: E731
    # whitespace
    for i, t in enumerate(["", " ", "  ", "   leading", "trailing   ", "\t", "\ttab\tsep\t", "\n", "\n\n\n",
                           "line1\nline2\r\nline3\r\n", "\r", "a\r\n\r\nb", "multiple     spaces   here",
                           " \t \n mixed \u3000 ws \u00a0 nbsp \u2003 em", "x  \u00a0y", "a\u0085b", "a\u2028b\u2029c",
                           "a\u180eb \u180e", "\u200b zero width \u200bjoin", "\ufeffbom at start", " \n \n"]):
        add("ws/%02d" % i, t)
    # digits
    for i, t in enumerate(["0", "1234567", "3.14159265358979", "12,345,678.90", "2024-01-01T12:00:00Z", "9" * 300,
                           "v1.2.3-rc4", "\u0661\u0662\u0663 arabic-indic, \u00bd \u2155 fractions, \u2460 circled",
                           "1 2  3   4"]):
        add("digits/%02d" % i, t)
    # unicode
    for i, t in enumerate(["caf\u00e9 na\u00efve r\u00e9sum\u00e9", "e\u0301 combining e\u0301\u0302\u0303",
                           "\u0301 lone combining mark", "\u03a9mega \u03a3\u0399\u0393\u039c\u0391 \u03c3\u03c2",
                           "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
                           "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
                           "\u05e9\u05dc\u05d5\u05dd", "\u0939\u093f\u0928\u094d\u0926\u0940", "\u0e44\u0e17\u0e22",
                           "\u00c5ngstr\u00f6m \u212b \u2126 \u212a", "stra\u00dfe STRASSE \ufb01 ligature",
                           "it's I'M they'RE we'Ve 'll 'D 's 'S 'ſ \u212a", "\u0000nul\u0000 \u0001\u001f\u007f ctl",
                           "\U0001f600\u0001\u4e2d\u0002x\u0003\U0001f600\U0001f600\u0004 \ua000\u0005\ua001y",
                           "\u2581already\u2581metaspace \u0120gpt2", "<0x41> <0xZZ> <0x+A>",
                           "\U0001d400\U0001d401 math bold", "\uffff\ufffe\ufffd replacement"]):
        add("unicode/%02d" % i, t)
    # CJK, emoji
    for i, t in enumerate(["\u4f60\u597d\uff0c\u4e16\u754c\uff01",
                           "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\u30ab\u30bf\u30ab\u30ca",
                           "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "\U00020000\U0002a6d6 ext-b",
                           "\U0001f600", "\U0001f44d\U0001f3fd thumbs", "\U0001f468\u200d\U0001f469\u200d\U0001f467"
                           "\u200d\U0001f466 family", "\U0001f3f3\ufe0f\u200d\U0001f308 flag",
                           "\U0001f1eb\U0001f1f7\U0001f1ef\U0001f1f5 flags", "\u2764\ufe0f \u263a\ufe0e"]):
        add("cjk-emoji/%02d" % i, t)
    # code
    for i, t in enumerate(["def f(x):\n    return x**2  # square\n",
                           "int main(void) { printf(\"%d\\n\", 42); return 0; }",
                           "<html><body class=\"x\">&amp;&lt;</body></html>",
                           "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\\u00e9\"}}",
                           "SELECT * FROM t WHERE a >= 10 AND b != 'x';", "    indented\n\tindented tab\n",
                           "x=>y; a->b; a::b; a||b && !c; i++; --j;", "https://example.com/a?b=c&d=%20#frag"]):
        add("code/%02d" % i, t)
    # invalid UTF-8
    for i, t in enumerate([b"abc\xff\xfe def", b"\xc3\x28", b"\xe2\x82", b"\xf0\x9f\x98", b"\xf0\x9f\x98x",
                           b"\xed\xa0\x80 surrogate", b"\xc0\xaf overlong", b"\x80\x80 continuation",
                           b"end\xe2", b"\xf4\x90\x80\x80 above max", b"ok \xe2\x82\xac euro \xe2\x82 cut"]):
        add("invalid/%02d" % i, t)
    # long
    for i, t in enumerate(["a" * 10000, "ab" * 5000, "\u2581" * 1000, " " * 5000, "x y " * 2000,
                           "\u00e9" * 3000, "\n" * 2000, "\U0001f600" * 1000, "supercalifragilistic" * 500,
                           "\u4e2d" * 4000]):
        add("long/%02d" % i, t)
    # special tokens in text
    for i, t in enumerate(["<s>", "</s>", "<s>hello</s>", "a<s>b", "<unk>", "<s><s></s>", "< s>", " <s> x </s> ",
                           "<|begin_of_text|>hi<|eot_id|>", "<|begin_of_text|>", "<|begin_of_text",
                           "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
                           "<|reserved_special_token_5|><|reserved_special_token_247|>",
                           "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
                           "<|start_story|>Once upon a time<|end_story|>", "x <|end_story|> y",
                           "Hello <|start_story|> x<|end_story|>y <|end_story|>",
                           "Lily and Tom. Lily's [SEP]  next <x> y<x>z  <x>  ", "  <|start_story|>  spaced  "]):
        add("special/%02d" % i, t)
    # lines of the real texts, one input each
    for tname, rel in TEXTS.items():
        with open(os.path.join(shared, rel), "rb") as f:
            lines = [ln for ln in f.read().split(b"\n") if ln.strip()][:40]
        for i, ln in enumerate(lines):
            add("lines-%s/%02d" % (tname, i), ln)
    return s


class Writer:
    def __init__(self):
        self.recs = []

    def add(self, kind, flag, tok, name, text, digest, ids):
        width = 2 if (not ids or max(ids) < 65536) else 4
        rec = struct.pack("<BBBB", kind, flag, width, 0)
        for s in (tok.encode(), name.encode()):
            rec += struct.pack("<H", len(s)) + s
        rec += struct.pack("<I", len(text)) + text + struct.pack("<Q", digest)
        rec += struct.pack("<I", len(ids)) + struct.pack("<%d%s" % (len(ids), "H" if width == 2 else "I"), *ids)
        self.recs.append(rec)

    def write(self, path):
        raw = b"OWTKFIX1" + struct.pack("<I", len(self.recs)) + b"".join(self.recs)
        params = zstandard.ZstdCompressionParameters.from_level(19, window_log=24)
        data = zstandard.ZstdCompressor(compression_params=params).compress(raw)
        with open(path, "wb") as f:
            f.write(data)
        print("wrote %s: %d records, %d bytes" % (os.path.relpath(path, REPO), len(self.recs), len(data)))


def sweep(tok, path):
    """Spans of pre_tokenize_str around every code point, as runs."""
    pt = tok.pre_tokenizer
    out, prev = [], None
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        s = f"x{c}y 1{c}2 {c} {c}{c}\n{c}'{c} {c}s"
        spans = " ".join("%d-%d" % o for _, o in pt.pre_tokenize_str(s))
        if spans != prev:
            out.append("%x %s\n" % (cp, spans))
            prev = spans
    data = zstandard.ZstdCompressor(level=19).compress("".join(out).encode())
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s: %d runs, %d bytes" % (os.path.relpath(path, REPO), len(out), len(data)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    ap.add_argument("--skip-sweep", action="store_true", help="keep the existing sweep fixtures")
    args = ap.parse_args()
    shared = args.shared
    os.makedirs(OUT, exist_ok=True)

    template = llama3_template()
    with open(os.path.join(OUT, "llama3_template.json"), "w", encoding="utf-8") as f:
        json.dump(template, f, ensure_ascii=False, indent=1)
        f.write("\n")

    base_json = {}
    for name, b in BASES.items():
        if "file" in b:
            with open(os.path.join(shared, b["file"]), encoding="utf-8") as f:
                base_json[name] = json.load(f)
        else:
            base_json[name] = build_llama3(template, shared)
    vs = variants(base_json["tinystories"]["added_tokens"])
    toks = {name: Tokenizer.from_str(json.dumps(d)) for name, d in base_json.items()}

    # lookups for the API test: vocabulary size from tokenizers, BOS/EOS from
    # transformers (which reads tokenizer_config.json / special_tokens_map.json)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer
    expect = {}
    for name, b in BASES.items():
        e = {"vocab_size": toks[name].get_vocab_size(with_added_tokens=True)}
        if "file" in b:
            at = AutoTokenizer.from_pretrained(os.path.dirname(os.path.join(shared, b["file"])))
            e["bos"], e["eos"] = at.bos_token_id, at.eos_token_id
        e["tokens"] = {str(i): toks[name].id_to_token(i) for i in (0, 1, 2, 3, 300, 1000, e["vocab_size"] - 1)}
        expect[name] = e
    for v in vs:
        tok = Tokenizer.from_str(json.dumps(apply_variant(base_json[v["base"]], v)))
        if "added_tokens" in v.get("replace", {}):
            # the ids tokenizers assigns (a token already in the vocabulary keeps its id)
            v["replace"]["added_tokens"] = json.loads(tok.to_str())["added_tokens"]
            tok = Tokenizer.from_str(json.dumps(apply_variant(base_json[v["base"]], v)))
        toks[v["name"]] = tok
    with open(os.path.join(OUT, "tokenizers.json"), "w", encoding="utf-8") as f:
        json.dump({"bases": BASES, "variants": vs, "expect": expect}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    assert toks["llama3"].get_vocab_size() == 128256
    assert toks["llama3"].token_to_id("<|eot_id|>") == 128009

    # whole files, real tokenizers only
    for tname in BASES:
        for xname, rel in TEXTS.items():
            with open(os.path.join(shared, rel), "rb") as f:
                raw = f.read()
            ids = toks[tname].encode(raw.decode("utf-8", "replace"), add_special_tokens=False).ids
            w = Writer()
            w.add(1, 0, tname, "file:" + rel, b"", xxhash.xxh64(raw).intdigest(), ids)
            # decode of those ids: only its hash (ids: the record above)
            back = toks[tname].decode(ids).encode("utf-8")
            w.add(2, 0, tname, "file:" + rel, b"", xxhash.xxh64(back).intdigest(), [])
            w.write(os.path.join(OUT, "%s__%s.bin.zst" % (tname, xname)))

    inputs = torture_inputs(shared)
    w = Writer()
    d = Writer()
    rng = random.Random(1234)
    n_enc = 0
    for tname, tok in toks.items():
        for name, raw in inputs:
            text = raw.decode("utf-8", "replace")
            for add_special in (0, 1):
                ids = tok.encode(text, add_special_tokens=bool(add_special)).ids
                w.add(1, add_special, tname, name, raw, xxhash.xxh64(raw).intdigest(), ids)
                n_enc += len(ids)
            if tname in BASES or name.startswith(("special", "unicode", "invalid")):
                for skip in (0, 1):
                    out = tok.decode(ids, skip_special_tokens=bool(skip)).encode("utf-8")
                    d.add(2, skip, tname, name, out, xxhash.xxh64(out).intdigest(), ids)
        vocab = tok.get_vocab_size()
        specials = sorted(tok.get_added_tokens_decoder().keys())
        for k in range(40):
            n = rng.randint(1, 40)
            ids = [rng.randrange(vocab) for _ in range(n)]
            if k % 4 == 0 and specials:
                ids[rng.randrange(n)] = rng.choice(specials)
            if k % 5 == 0:
                ids = [rng.randrange(3, 259) if rng.random() < 0.7 else i for i in ids]  # byte tokens (SPM)
            ids = [i for i in ids if tok.id_to_token(i) is not None]
            for skip in (0, 1):
                out = tok.decode(ids, skip_special_tokens=bool(skip)).encode("utf-8")
                d.add(2, skip, tname, "random/%02d" % k, out, xxhash.xxh64(out).intdigest(), ids)
    w.write(os.path.join(OUT, "torture.bin.zst"))
    d.write(os.path.join(OUT, "decode.bin.zst"))
    print("torture: %d inputs x %d tokenizers, %d ids" % (len(inputs), len(toks), n_enc))

    if not args.skip_sweep:
        for tname in ("llama3", "llama3-gpt2-noprefix"):
            sweep(toks[tname], os.path.join(OUT, "%s__sweep.txt.zst" % tname))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""make_chat_fixtures.py: expected token ids and loss masks from transformers
(5.24, AutoTokenizer + apply_chat_template) for tests/test_dataset.c.

Writes into tests/fixtures/data/:
  chat.jsonl, chat_system.jsonl   conversations (without / with a system prompt)
  alpaca.jsonl, text.jsonl        instruction and text records (text.jsonl has
                                  invalid UTF-8 bytes on purpose)
  docs.txt                        text documents between "<|endoftext|>" lines
  expected.json                   per case (tokenizer, file, data keys): the ids
                                  and loss mask of every kept sample; plus
                                  plain encodes that pin tokenizer_mode
                                  transformers.

How the expectations are made (independently of owlore's C code):
  chat    tokenizer.chat_template = TEMPLATES[name] (the Jinja texts below, as
          the models ship them); ids = apply_chat_template(messages,
          tokenize=True)["input_ids"]. The mask comes from transformers itself:
          apply_chat_template(..., return_assistant_tokens_mask=True) with
          GENERATION_TEMPLATES[name], the same template with the assistant turn
          wrapped in {% generation %} (checked to render the identical string):
          a token is in the loss when its offsets overlap an assistant turn
          (for llama2 " " + content.strip() + " " + eos; mistral content + eos;
          llama3 content|trim + <|eot_id|>; chatml content + <|im_end|>).
  alpaca  the Stanford Alpaca prompt; ids = tok(prompt + output).input_ids +
          [eos]; the first len(tok(prompt).input_ids) tokens are masked, as
          stanford_alpaca's train.py does (asserting they are a prefix).
  text    tok(text).input_ids + [eos] (text.jsonl as is; docs.txt split on the
          separator and str.strip()ped, empty documents dropped).
Files are read as bytes and decoded with errors="replace", as owlore does.

Tokenizers: LLaMA-2 (llama2-tinyllama) and Mistral (mistral-minueza) and
TinyStories-656K through AutoTokenizer (transformers rebuilds these
LlamaTokenizer ones with a Metaspace pre-tokenizer, which owlore's
tokenizer_mode transformers reproduces), and LLaMA-3 built from encoder.json +
vocab.bpe exactly as make_tokenizer_fixtures.py does (a plain TokenizersBackend).

Run:  python3 tests/reference/make_chat_fixtures.py [--shared ../shared]
"""
import argparse
import importlib.util
import json
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "tests", "fixtures", "data")

# ---- the templates (one line each in the files; exactly what the models ship) ----
TEMPLATES = {
    # meta-llama/Llama-2-7b-chat-hf
    "llama2": (
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
        "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
        "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must "
        "alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}"
        "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}"
        "{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
        "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
        "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"),
    # mistralai/Mistral-7B-Instruct-v0.1
    "mistral": (
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}"
        "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"),
    # meta-llama/Meta-Llama-3-8B-Instruct
    "llama3": (
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
        "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
        "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    # ChatML, as Felladrin/Minueza-32M-UltraChat ships it
    "chatml": (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
        "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
}

# the same, with the assistant turn marked for return_assistant_tokens_mask
GENERATION_TEMPLATES = {
    "llama2": TEMPLATES["llama2"].replace(
        "{{ ' '  + content.strip() + ' ' + eos_token }}",
        "{% generation %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endgeneration %}"),
    "mistral": TEMPLATES["mistral"].replace(
        "{{ message['content'] + eos_token}}", "{% generation %}{{ message['content'] + eos_token}}{% endgeneration %}"),
    "llama3": (
        "{% for message in messages %}{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
        "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}"
        "{% endgeneration %}{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}{% endfor %}"),
    "chatml": (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
        "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
        "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}"),
}

ALPACA_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n\n"
                "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
ALPACA_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
                   "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")

CHATS = [
    [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi there. How can I help?"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "6."},
     {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "You're welcome!"}],
    [{"role": "user", "content": "Traduis: 你好，世界 🌍"},
     {"role": "assistant", "content": "Bonjour, le monde 🌍 — ça va? Ünïcödé ✓"}],
    [{"role": "user", "content": "  leading and trailing spaces  "},
     {"role": "assistant", "content": "  an answer with spaces around it  \n"}],
    [{"role": "user", "content": "Write code:\n```py\nprint(1)\n```"},
     {"role": "assistant", "content": "```python\ndef f(x):\n    return x * 2\n```"}],
    [{"role": "user", "content": "Say yes"}, {"role": "assistant", "content": "Yes"},
     {"role": "user", "content": "Again, with a space first"}, {"role": "assistant", "content": " Yes again"}],
    [{"role": "user", "content": "What does </s> mean?"}, {"role": "assistant", "content": "It ends a sequence."}],
    [{"role": "user", "content": "first"}, {"role": "assistant", "content": "second"},
     {"role": "user", "content": "a last question without an answer"}],
    [{"role": "user", "content": "Tabs\tand\u00a0no-break spaces\u3000"},
     {"role": "assistant", "content": "\u3000ideographic space\tand tab\t"}],
]

CHATS_SYSTEM = [
    [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello! How can I help you today?"}],
    [{"role": "system", "content": "Be brief.\n"}, {"role": "user", "content": " Tell me a joke. "},
     {"role": "assistant", "content": "Why did the chicken cross the road?"}, {"role": "user", "content": "Why?"},
     {"role": "assistant", "content": "To get to the other side."}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "Empty system prompt"},
     {"role": "assistant", "content": "ok"}],
    [{"role": "system", "content": "Réponds en français 🇫🇷"}, {"role": "user", "content": "   "},
     {"role": "assistant", "content": "Bonjour !"}],
]

ALPACA = [
    {"instruction": "Give three tips for staying healthy.", "input": "",
     "output": "1. Eat a balanced diet.\n2. Exercise regularly.\n3. Get enough sleep."},
    {"instruction": "Translate to French.", "input": "Good morning, world!", "output": "Bonjour, le monde !"},
    {"instruction": "What is the capital of Japan?", "output": "Tokyo (東京)."},
    {"instruction": "Continue the sentence.", "input": "The cat", "output": " sat on the mat."},
    {"instruction": "Reply with a newline first.", "input": None, "output": "\nDone ✓"},
]

TEXT_LINES = [
    b'{"text": "Once upon a time, there was a little girl named Lily."}',
    b'{"text": " A leading space, and a </s> and <s> in the middle."}',
    b'{"text": "Unicode: \\u00fcber na\\u00efve caf\\u00e9 \\u4f60\\u597d \\ud83d\\ude00", "id": 3}',
    b'{"text": "Invalid UTF-8 bytes: \xff\xfe and a cut sequence \xe2\x82 here."}',
    b'',
    b'{"text": "Multi\\nline\\n\\ntext  with  double  spaces.  "}',
]

DOCS = (b"\n<|endoftext|>\nFirst document.\nIt has two lines.\n<|endoftext|>\n\n   \n<|endoftext|>"
        b"  Second document with spaces  \r\n<|endoftext|>Third: \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80"
        b"<|endoftext|><|endoftext|>Fourth, at the end without a newline")

ENCODE_STRINGS = ["Hello world", " leading space", "  two spaces", "text</s> after a special token",
                  "<s>bos inside", "line\n next line", "ünïcode 你好 😀", "", " ", "a\n\n b"]


def load_make_tokenizer_fixtures():
    spec = importlib.util.spec_from_file_location("mtf", os.path.join(HERE, "make_tokenizer_fixtures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def mask_string(m):
    return "".join("1" if x else "0" for x in m)


def chat_case(tok, name, convs):
    samples, masks = [], []
    for conv in convs:
        tok.chat_template = TEMPLATES[name]
        text = tok.apply_chat_template(conv, tokenize=False)
        ids = tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]
        tok.chat_template = GENERATION_TEMPLATES[name]
        assert tok.apply_chat_template(conv, tokenize=False) == text, name
        out = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        assert out["input_ids"] == ids
        assert tok(text, add_special_tokens=False)["input_ids"] == ids
        samples.append(ids)
        masks.append(mask_string(out["assistant_masks"]))
    return samples, masks


def alpaca_case(tok, records):
    samples, masks = [], []
    for r in records:
        inp = r.get("input") or ""
        prompt = (ALPACA_INPUT if inp else ALPACA_NO_INPUT).format(instruction=r["instruction"], input=inp)
        ids = tok(prompt + r["output"])["input_ids"]
        if not ids or ids[-1] != tok.eos_token_id:
            ids = ids + [tok.eos_token_id]
        p = tok(prompt)["input_ids"]
        assert ids[:len(p)] == p, "the prompt's tokens are a prefix"
        samples.append(ids)
        masks.append("0" * len(p) + "1" * (len(ids) - len(p)))
    return samples, masks


def text_case(tok, texts):
    samples = []
    for t in texts:
        ids = tok(t)["input_ids"]
        if not ids or ids[-1] != tok.eos_token_id:
            ids = ids + [tok.eos_token_id]
        samples.append(ids)
    return samples


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def jsonl(records):
    return b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in records)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    chats = [{"messages": c} for c in CHATS]
    chats_sys = [{"messages": c} for c in CHATS_SYSTEM]
    alpaca = ALPACA
    write("chat.jsonl", jsonl(chats))
    write("chat_system.jsonl", jsonl(chats_sys))
    write("alpaca.jsonl", jsonl(alpaca))
    write("text.jsonl", b"\n".join(TEXT_LINES) + b"\n")
    write("docs.txt", DOCS)
    texts = [json.loads(line.decode("utf-8", "replace"))["text"] for line in TEXT_LINES if line]
    docs = [d.strip() for d in DOCS.decode("utf-8", "replace").split("<|endoftext|>")]
    docs = [d for d in docs if d]

    real = {"llama2": "data/real/tokenizers/llama2-tinyllama", "mistral": "data/real/tokenizers/mistral-minueza",
            "tinystories": "data/real/hf/TinyStories-656K"}
    toks = {k: AutoTokenizer.from_pretrained(os.path.join(args.shared, v)) for k, v in real.items()}
    mtf = load_make_tokenizer_fixtures()
    l3 = mtf.build_llama3(mtf.llama3_template(), args.shared)
    toks["llama3"] = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(l3)),
                                             bos_token="<|begin_of_text|>")
    for k in ("llama2", "mistral", "tinystories"):
        assert type(toks[k]).__name__ == "LlamaTokenizer", type(toks[k])

    cases = []

    def case(tname, data, fmt, samples, masks=None, **keys):
        c = {"tokenizer": tname, "path": real.get(tname, "registry:" + tname), "data": data, "format": fmt}
        c.update(keys)
        c["samples"] = samples
        c["masks"] = masks
        cases.append(c)

    for tname, templates in (("llama2", ["llama2"]), ("mistral", ["mistral", "chatml"]), ("llama3", ["llama3"])):
        for tpl in templates:
            s, m = chat_case(toks[tname], tpl, CHATS)
            case(tname, "chat.jsonl", "chat", s, m, chat_template=tpl)
            if tpl != "mistral":
                s, m = chat_case(toks[tname], tpl, CHATS_SYSTEM)
                case(tname, "chat_system.jsonl", "chat", s, m, chat_template=tpl)
    for tname in ("llama2", "mistral", "tinystories"):
        s, m = alpaca_case(toks[tname], alpaca)
        case(tname, "alpaca.jsonl", "alpaca", s, m)
        case(tname, "text.jsonl", "jsonl", text_case(toks[tname], texts))
        case(tname, "docs.txt", "text", text_case(toks[tname], docs), doc_separator="<|endoftext|>")

    encodes = []
    for tname in ("llama2", "mistral", "tinystories"):
        for s in ENCODE_STRINGS:
            for add in (False, True):
                encodes.append({"path": real[tname], "text": s, "add_special": add,
                                "ids": toks[tname](s, add_special_tokens=add)["input_ids"]})

    import transformers
    meta = {"transformers": transformers.__version__, "templates": TEMPLATES}
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "cases": cases, "encodes": encodes}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    n_tok = sum(len(s) for c in cases for s in c["samples"])
    n_mask = sum(m.count("1") for c in cases if c["masks"] for m in c["masks"])
    print("wrote %d cases (%d samples, %d tokens, %d in a loss mask) and %d encodes to %s" % (
        len(cases), sum(len(c["samples"]) for c in cases), n_tok, n_mask, len(encodes), os.path.relpath(OUT, REPO)))


if __name__ == "__main__":
    sys.exit(main())

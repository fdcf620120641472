#!/usr/bin/env python3
"""Checks the HF files bertfit writes into a model folder, as transformers reads them (tests/hf_files.rs).

    python scripts/parity/hf_files.py tokenizer FOLDER WORK
    python scripts/parity/hf_files.py card FOLDER

tokenizer  FOLDER/tokenizer.json against transformers (WORK: an empty scratch folder):
           - `AutoTokenizer.from_pretrained(FOLDER)` is the fast tokenizer and takes its vocabulary from
             tokenizer.json (a copy whose tokenizer.json spells one token differently encodes differently);
           - over tricky texts (accents, CJK, punctuation, words over 100 characters, pairs, characters
             not in the vocabulary) it encodes as `BertTokenizerFast(tokenizer_file=...)`, as the bare
             `tokenizers.Tokenizer.from_file` (the file's own normalizer and template), and as the slow
             Python `BertTokenizerLegacy.from_pretrained(FOLDER)`;
           - the file equals, as parsed JSON, the tokenizer.json transformers saves itself for the same
             vocab.txt and tokenizer_config.json (`BertTokenizerFast.from_pretrained(...).save_pretrained`).
           Prints "ok" (and whether the two files are also byte for byte equal).
card       FOLDER/README.md parsed as YAML front matter + markdown: prints JSON
           {"front": {...}, "headings": [...], "hyperparameters": {...}, "eval": {...}, "title": str}.
"""
import json
import os
import shutil
import sys

import yaml

TEXTS = [
    "Hello, World! It's a test.",
    "Crème brûlée, naïve café, Ångström, São Paulo, Dvořák",
    "ÀÉÎÕÜ àéîõü ñ Ñ ç Ç ß ø Ø æ",
    "我爱北京天安门 and 日本語のテキスト 한국어",
    "punctuation: (a) [b] {c} <d> \"e\" 'f' ... --- !!! ??? @#$%^&*_+=|\\/~`",
    "a" * 101 + " short " + "b" * 100,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "unknown ☃ ✈ 𝔘𝔫𝔦 🙂 ∮ ⊕ ₿ characters",
    "tabs\tand\nnewlines\r\n  and   spaces",
    "",
    "MiXeD CaSe WoRdS and 12345.678 numbers",
    "[CLS] [SEP] [MASK] [UNK] [PAD] in the text",
]
# (No empty second text: transformers' single call `tok(a, "")` drops an empty pair.)
PAIRS = [(a, b) for a, b in zip(TEXTS, TEXTS[3:] + TEXTS[:3]) if b]


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def encodings(encode):
    out = []
    for t in TEXTS:
        out.append(encode(t, None))
    for a, b in PAIRS:
        out.append(encode(a, b))
    return out


def hf_encode(tok):
    def encode(a, b):
        e = tok(a, b, return_token_type_ids=True) if b is not None else tok(a, return_token_type_ids=True)
        return (list(e["input_ids"]), list(e["token_type_ids"]))

    return encode


def check_tokenizer(folder, work):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, BertTokenizerFast
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    tok_file = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(tok_file):
        fail(f"{tok_file} is missing")
    config = json.load(open(os.path.join(folder, "tokenizer_config.json")))
    settings = {k: config[k] for k in ("do_lower_case", "strip_accents", "tokenize_chinese_chars") if k in config}

    auto = AutoTokenizer.from_pretrained(folder)
    if not auto.is_fast:
        fail(f"AutoTokenizer gave a slow tokenizer: {type(auto)}")

    # tokenizer.json is what AutoTokenizer takes the vocabulary from: spell one token differently
    # in a copy's tokenizer.json (vocab.txt unchanged) and the copy encodes differently.
    tampered = os.path.join(work, "tampered")
    os.makedirs(tampered)
    for name in os.listdir(folder):
        if os.path.isfile(os.path.join(folder, name)):
            shutil.copy(os.path.join(folder, name), tampered)
    data = json.load(open(tok_file))
    word = "world" if "world" in data["model"]["vocab"] else "the"
    data["model"]["vocab"]["zzqx"] = data["model"]["vocab"].pop(word)
    json.dump(data, open(os.path.join(tampered, "tokenizer.json"), "w"))
    probe = "hello world the"
    if AutoTokenizer.from_pretrained(tampered)(probe)["input_ids"] == auto(probe)["input_ids"]:
        fail("AutoTokenizer did not read tokenizer.json (a changed vocabulary there changed nothing)")

    from_file = BertTokenizerFast(tokenizer_file=tok_file, **settings)
    raw = Tokenizer.from_file(tok_file)

    def raw_encode(a, b):
        e = raw.encode(a, b) if b is not None else raw.encode(a)
        return (e.ids, e.type_ids)

    legacy = BertTokenizerLegacy.from_pretrained(folder)
    want = encodings(hf_encode(auto))
    for name, got in [
        ("BertTokenizerFast(tokenizer_file=...)", encodings(hf_encode(from_file))),
        ("tokenizers.Tokenizer.from_file", encodings(raw_encode)),
        ("BertTokenizerLegacy (slow)", encodings(hf_encode(legacy))),
    ]:
        for i, (w, g) in enumerate(zip(want, got)):
            if w != g:
                text = TEXTS[i] if i < len(TEXTS) else PAIRS[i - len(TEXTS)]
                fail(f"{name} differs from AutoTokenizer on {text!r}:\n  {g}\n  {w}")

    # What transformers writes itself for the same vocab.txt and tokenizer_config.json.
    bare = os.path.join(work, "bare")
    os.makedirs(bare)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.isfile(os.path.join(folder, name)):
            shutil.copy(os.path.join(folder, name), bare)
    ref = os.path.join(work, "ref")
    BertTokenizerFast.from_pretrained(bare).save_pretrained(ref)
    ours_text = open(tok_file, encoding="utf-8").read()
    ref_text = open(os.path.join(ref, "tokenizer.json"), encoding="utf-8").read()
    ours, theirs = json.loads(ours_text), json.loads(ref_text)
    if ours != theirs:
        for key in theirs:
            if ours.get(key) != theirs[key]:
                fail(f"tokenizer.json differs from transformers' in {key!r}:\n  ours {str(ours.get(key))[:400]}\n"
                     f"  HF   {str(theirs[key])[:400]}")
        fail(f"tokenizer.json has keys transformers' lacks: {sorted(set(ours) - set(theirs))}")
    print("ok", "byte-equal" if ours_text == ref_text else "json-equal")


def parse_card(folder):
    text = open(os.path.join(folder, "README.md"), encoding="utf-8").read()
    if not text.startswith("---\n"):
        fail("README.md does not start with YAML front matter")
    front_text, body = text[4:].split("\n---\n", 1)
    front = yaml.safe_load(front_text)
    headings = [line for line in body.splitlines() if line.startswith("#")]

    def items(after):
        lines = body.split(after, 1)[1].splitlines() if after in body else []
        out = {}
        for line in lines[1:]:
            if line.startswith("- "):
                key, _, value = line[2:].partition(": ")
                out[key] = value
            elif out:
                break
        return out

    print(json.dumps({
        "front": front,
        "headings": headings,
        "title": headings[0] if headings else None,
        "hyperparameters": items("The following hyperparameters were used during training:"),
        "eval": items("It achieves the following results on the evaluation set:"),
        "versions": items("### Framework versions\n"),
    }))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "tokenizer":
        check_tokenizer(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "card":
        parse_card(sys.argv[2])
    else:
        fail(__doc__)


if __name__ == "__main__":
    main()

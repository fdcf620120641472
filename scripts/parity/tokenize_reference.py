#!/usr/bin/env python3
"""Reference encodings from transformers' BertTokenizer, for bertfit's tokenizer parity tests.

Usage:

    python scripts/parity/tokenize_reference.py --model DIR --input texts.jsonl --max-length N --output out.jsonl
    python scripts/parity/tokenize_reference.py --model DIR --csv data.csv --max-length N --output out.jsonl

--model   an HF model folder (vocab.txt, tokenizer_config.json, ...), loaded with
          `transformers.BertTokenizer.from_pretrained(DIR)` offline. In transformers 5 that is the
          `tokenizers`-backed (fast) tokenizer.
--input   JSON lines, each {"text": str} or {"text": str, "text_pair": str}.
--csv     a dataset CSV with a `text` column (bertfit's header is text,label,split): every row's text
          is encoded, in file order.
--output  one JSON line per input, in input order: {"text", "text_pair" (pairs only), "input_ids",
          "token_type_ids", "attention_mask"}. The texts are written back so the Rust side encodes
          exactly the strings Python read.

Encoding is the batched call `tokenizer(texts, text_pairs, truncation=True, max_length=N,
padding=False)`, over runs of consecutive inputs of the same kind (single texts or pairs). In the
batched call an empty text_pair is still a pair ([CLS] A [SEP] [SEP]); the single call
`tokenizer(text, "")` would drop it.
"""

import argparse
import csv
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BATCH = 2000


def read_inputs(args):
    """Returns a list of (text, text_pair or None)."""
    if args.csv:
        # newline="" as the csv module wants: quoted fields keep their own \r and \n.
        with open(args.csv, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if "text" not in (reader.fieldnames or []):
                sys.exit(f"{args.csv}: no 'text' column (columns: {reader.fieldnames})")
            return [(row["text"], None) for row in reader]
    items = []
    with open(args.input, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            if not isinstance(obj.get("text"), str):
                sys.exit(f"{args.input}:{number}: 'text' must be a string")
            pair = obj.get("text_pair")
            if pair is not None and not isinstance(pair, str):
                sys.exit(f"{args.input}:{number}: 'text_pair' must be a string")
            items.append((obj["text"], pair))
    return items


def encode(tokenizer, items, max_length):
    """Encodes runs of same-kind inputs with the batched call; returns dicts in input order."""
    out = []
    start = 0
    while start < len(items):
        is_pair = items[start][1] is not None
        end = start
        while end < len(items) and end - start < BATCH and (items[end][1] is not None) == is_pair:
            end += 1
        texts = [t for t, _ in items[start:end]]
        pairs = [p for _, p in items[start:end]] if is_pair else None
        enc = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
        for i in range(end - start):
            row = {"text": texts[i]}
            if is_pair:
                row["text_pair"] = pairs[i]
            row["input_ids"] = enc["input_ids"][i]
            row["token_type_ids"] = enc["token_type_ids"][i]
            row["attention_mask"] = enc["attention_mask"][i]
            out.append(row)
        start = end
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--input")
    src.add_argument("--csv")
    ap.add_argument("--max-length", type=int, required=True)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    from transformers import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(args.model)
    items = read_inputs(args)
    rows = encode(tokenizer, items, args.max_length)
    with open(args.output, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Eval-mode forward pass of an HF BertForSequenceClassification folder on a padded batch.

Reads texts (one JSON string per line; a [text, pair] list for sentence pairs), tokenizes them with
the folder's BertTokenizer (truncation at --max-length, padded to the longest or to --max-length),
and writes input_ids, attention_mask, token_type_ids and the fp32 logits to a safetensors file that
the Rust tests read.
"""
import argparse
import json

import torch
from safetensors.torch import save_file
from transformers import BertForSequenceClassification, BertTokenizer


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--texts", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--padding", default="longest", choices=["longest", "max_length"])
    p.add_argument(
        "--autocast",
        action="store_true",
        help="also write logits_bf16 and logits_fp16: the same forward under torch.autocast('cpu', dtype)",
    )
    args = p.parse_args()

    texts = [json.loads(line) for line in open(args.texts, encoding="utf-8")]
    firsts = [t[0] if isinstance(t, list) else t for t in texts]
    pairs = [t[1] for t in texts] if texts and isinstance(texts[0], list) else None
    tok = BertTokenizer.from_pretrained(args.model)
    enc = tok(firsts, pairs, truncation=True, max_length=args.max_length, padding=args.padding, return_tensors="pt")
    model = BertForSequenceClassification.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = model(**enc).logits
    out = {
        "input_ids": enc["input_ids"].contiguous(),
        "attention_mask": enc["attention_mask"].contiguous(),
        "token_type_ids": enc["token_type_ids"].contiguous(),
        "logits": logits.float().contiguous(),
    }
    if args.autocast:
        for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
                out[f"logits_{name}"] = model(**enc).logits.float().contiguous()
    save_file(out, args.out)


if __name__ == "__main__":
    main()

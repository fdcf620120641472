#!/usr/bin/env python3
"""Writes an HF BertForSequenceClassification folder for the parity tests.

--from DIR     start from a pretrained BertModel folder (MiniLM) and add a classifier head made here
--random       a small random config instead (sizes from the flags), vocab from --vocab-from
Either way the classifier is created in Python with --seed, so Rust loads the very same weights.
--dropout P    sets hidden/attention dropout (0 for the arithmetic parity tests)
--dtype        float32 (default), float16 or bfloat16: the dtype the weights are saved in
--format       safetensors (default) or bin (pytorch_model.bin)
--legacy-names save LayerNorm parameters as gamma/beta and prefix nothing (old TF-converted layout)
"""
import argparse
import os
import shutil

import torch
from transformers import BertConfig, BertForSequenceClassification

TOKENIZER_FILES = ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--from", dest="source")
    p.add_argument("--random", action="store_true")
    p.add_argument("--vocab-from", help="folder with vocab.txt and tokenizer files (for --random)")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=200)
    p.add_argument("--num-labels", type=int, default=5)
    p.add_argument("--dropout", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--format", default="safetensors", choices=["safetensors", "bin"])
    p.add_argument("--no-classifier", action="store_true", help="save only the BertModel (like MiniLM)")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    labels = {i: f"class_{i}" for i in range(args.num_labels)}
    extra = {}
    if args.dropout is not None:
        extra = {"hidden_dropout_prob": args.dropout, "attention_probs_dropout_prob": args.dropout}
    if args.random:
        tok_dir = args.vocab_from
        vocab_size = sum(1 for _ in open(os.path.join(tok_dir, "vocab.txt"), encoding="utf-8"))
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=args.hidden,
            num_hidden_layers=args.layers,
            num_attention_heads=args.heads,
            intermediate_size=args.intermediate,
            max_position_embeddings=512,
            id2label=labels,
            label2id={v: k for k, v in labels.items()},
            **extra,
        )
        model = BertForSequenceClassification(config)
    else:
        tok_dir = args.source
        model = BertForSequenceClassification.from_pretrained(
            args.source, num_labels=args.num_labels, id2label=labels, label2id={v: k for k, v in labels.items()}, **extra
        )
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    dtype = getattr(torch, args.dtype)
    model = model.to(dtype)
    if args.no_classifier:
        model.bert.save_pretrained(args.out, safe_serialization=args.format == "safetensors")
    else:
        model.save_pretrained(args.out, safe_serialization=args.format == "safetensors")
    for f in TOKENIZER_FILES:
        src = os.path.join(tok_dir, f)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(args.out, f))


if __name__ == "__main__":
    main()

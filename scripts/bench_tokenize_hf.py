#!/usr/bin/env python3
"""Tokenizer throughput of HF's BertTokenizerFast on the movie snippets, set beside bertfit's.

Times `tok(texts, truncation=True, max_length=512)` (best of 3, after one warm-up call) on every
text of the data file, with the `tokenizers` thread pool on (all cores) and off (one thread), and
for reference the `tokenizers` backend's own `encode_batch` (no Python lists built). Given bertfit's
criterion estimates (mean ns for one pass over the same texts), prints texts/s, MB/s and the ratios.
Run through scripts/bench_tokenize.sh (which runs `cargo bench --bench tokenize` first) or directly
after `source scripts/env.sh`.
"""
import argparse
import csv
import os
import time


def texts_of(path):
    # The Rust bench reads every split; order does not matter for throughput.
    return [r["text"] for r in csv.DictReader(open(path, newline="", encoding="utf-8"))]


def best_of(n, fn):
    fn()  # warm-up: page in the vocabulary, start the thread pool
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    assets = os.environ.get("BERTFIT_ASSETS", "")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(assets, "all-MiniLM-L6-v2"))
    p.add_argument("--data", default=os.path.join(assets, "data", "movies.csv"))
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bertfit-encode-ns", type=float, help="criterion mean ns: encode, one thread, all texts")
    p.add_argument("--bertfit-batch-ns", type=float, help="criterion mean ns: encode_batch, all cores, all texts")
    p.add_argument("--bertfit-texts", type=int, help="texts the Rust bench read (checked against ours)")
    args = p.parse_args()

    # Thread pool on/off is read by `tokenizers` at each call; set it before the import anyway.
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    from tokenizers import Tokenizer
    from transformers import BertTokenizerFast

    texts = texts_of(args.data)
    n, mb = len(texts), sum(len(t.encode("utf-8")) for t in texts) / 1e6
    if args.bertfit_texts is not None and args.bertfit_texts != n:
        raise SystemExit(f"the Rust bench read {args.bertfit_texts} texts, this script {n}: not the same work")
    tok = BertTokenizerFast.from_pretrained(args.model)
    backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    backend.enable_truncation(args.max_length)
    backend.no_padding()

    def call():
        tok(texts, truncation=True, max_length=args.max_length)

    def raw():
        backend.encode_batch(texts)

    hf = {}
    for label, par, fn in [("HF tok(texts), all cores", "true", call), ("HF tok(texts), 1 thread", "false", call),
                           ("HF backend encode_batch, all cores", "true", raw)]:
        os.environ["TOKENIZERS_PARALLELISM"] = par
        hf[label] = best_of(args.repeats, fn)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"

    rows = []
    if args.bertfit_encode_ns is not None:
        rows.append(("bertfit encode, 1 thread", args.bertfit_encode_ns / 1e9))
    if args.bertfit_batch_ns is not None:
        rows.append(("bertfit encode_batch, all cores", args.bertfit_batch_ns / 1e9))
    rows += list(hf.items())

    print(f"work: {n} texts, {mb:.2f} MB of UTF-8, truncation at {args.max_length}, {os.cpu_count()} cores; "
          f"bertfit: criterion mean, HF: best of {args.repeats}")
    print(f"{'':36} {'texts/s':>10} {'MB/s':>8} {'seconds':>8}")
    for label, s in rows:
        print(f"{label:36} {n / s:10.0f} {mb / s:8.2f} {s:8.3f}")
    anchor = hf["HF tok(texts), all cores"]
    one = hf["HF tok(texts), 1 thread"]
    if args.bertfit_batch_ns is not None:
        print(f"ratio bertfit encode_batch / HF tok(texts), both all cores: {anchor / (args.bertfit_batch_ns / 1e9):.2f}x "
              f"(target >= 5x)")
    if args.bertfit_encode_ns is not None:
        print(f"ratio bertfit encode / HF tok(texts), both 1 thread:        {one / (args.bertfit_encode_ns / 1e9):.2f}x")
    if args.bertfit_batch_ns is not None:
        raw_s = hf["HF backend encode_batch, all cores"]
        print(f"ratio bertfit encode_batch / HF backend encode_batch:       {raw_s / (args.bertfit_batch_ns / 1e9):.2f}x")


if __name__ == "__main__":
    main()

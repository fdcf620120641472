#!/usr/bin/env python3
"""A long-text dataset for benchmarks at max length 512, made from the movie snippets.

Product reviews, support tickets and articles have lengths from a line to far past 512 tokens;
the snippets (mean ~30 tokens) have not. This joins consecutive snippets of the same label and
split into "reviews" of k snippets, k drawn from a log-normal (median 4, long tail, at most 40),
so that a shuffled batch holds short and long texts together, as real long-text data does. Labels
stay meaningful (every snippet of a review has its label). Deterministic: the same file on every
machine for a given --seed.

    python scripts/make_long_texts.py --data $BERTFIT_ASSETS/data/movies.csv --out long.csv

Output: text,label,split (the csv module's default quoting), 1,685 rows from movies.csv (1,348 train;
mean 145 tokens, median 98, 69 over 512; a shuffled batch of 16 is 67% padding at max length 512).
"""
import argparse
import csv
import math
import random


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a text,label,split CSV of short texts (movies.csv)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=20261129)
    p.add_argument("--median-snippets", type=float, default=4.0)
    p.add_argument("--sigma", type=float, default=1.0, help="of the log-normal snippet count")
    p.add_argument("--max-snippets", type=int, default=40)
    args = p.parse_args()

    rng = random.Random(args.seed)
    groups = {}  # (split, label) -> texts in file order
    order = []
    with open(args.data, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            key = (row["split"], row["label"])
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(row["text"].strip())
    reviews = []
    for split, label in order:
        texts = groups[(split, label)]
        i = 0
        while i < len(texts):
            k = rng.lognormvariate(math.log(args.median_snippets), args.sigma)
            k = max(1, min(args.max_snippets, round(k)))
            reviews.append((" ".join(texts[i:i + k]), label, split))
            i += k
    # Interleave labels and splits as a real file would be (the trainer shuffles anyway).
    rng.shuffle(reviews)
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "split"])
        w.writerows(reviews)


if __name__ == "__main__":
    main()

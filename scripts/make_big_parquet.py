#!/usr/bin/env python3
"""Writes a synthetic `text,label,split` Parquet file of N rows, for memory and streaming benchmarks.

Row i: the text of movie snippet i mod M (movies.csv, all splits, in file order) with " #i"
appended, so no two rows are equal; label positive or negative (alternating); split val when
i % 100 == 0, test when i % 100 == 1, train otherwise (98 / 1 / 1 %). Written chunk by chunk with
pyarrow's ParquetWriter, one row group per chunk, so memory stays at one chunk whatever N is. The
file is written under a temporary name and renamed when complete: an interrupted run leaves no
partial file under --out. Run with the venv's python (`source scripts/env.sh`).
"""
import argparse
import csv
import os

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([("text", pa.string()), ("label", pa.string()), ("split", pa.string())])


def split_of(i):
    r = i % 100
    return "val" if r == 0 else "test" if r == 1 else "train"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--row-group-size", type=int, default=65536)
    p.add_argument("--texts", default=os.path.join(os.environ.get("BERTFIT_ASSETS", ""), "data", "movies.csv"),
                   help="CSV whose text column is cycled (default: the movie snippets)")
    args = p.parse_args()
    if args.rows < 1 or args.row_group_size < 1:
        p.error("--rows and --row-group-size must be positive")

    base = [r["text"] for r in csv.DictReader(open(args.texts, newline="", encoding="utf-8"))]
    if not base:
        raise SystemExit(f"{args.texts} has no rows")
    tmp = args.out + ".partial"
    with pq.ParquetWriter(tmp, SCHEMA, compression="snappy") as writer:
        for start in range(0, args.rows, args.row_group_size):
            idx = range(start, min(start + args.row_group_size, args.rows))
            chunk = pa.table({
                "text": [f"{base[i % len(base)]} #{i}" for i in idx],
                "label": ["positive" if i % 2 == 0 else "negative" for i in idx],
                "split": [split_of(i) for i in idx],
            }, schema=SCHEMA)
            writer.write_table(chunk, row_group_size=args.row_group_size)
    os.replace(tmp, args.out)
    print(f"{args.out}: {args.rows} rows, {os.path.getsize(args.out) / 1e6:.1f} MB, "
          f"row groups of {args.row_group_size}")


if __name__ == "__main__":
    main()

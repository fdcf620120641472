#!/usr/bin/env python3
"""Writes Parquet files with one defect each into a folder, for the bad-input tests (tests/data.rs).

float_label.parquet   label column is float64
int_text.parquet      text column is int64
null_text.parquet     row 3's text is null
null_label.parquet    row 2's label is null
empty.parquet         the columns, no rows
unseen.parquet        a val row whose label never occurs in train (row 5)
"""
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def write(folder, name, columns):
    pq.write_table(pa.table(columns), os.path.join(folder, name))


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    texts = ["a good film", "a bad film", "fine", "awful", "great"]
    splits = ["train", "train", "train", "train", "val"]
    labels = ["pos", "neg", "pos", "neg", "pos"]
    write(folder, "float_label.parquet", {"text": texts, "label": [1.0, 0.0, 1.0, 0.0, 1.0], "split": splits})
    write(folder, "int_text.parquet", {"text": [1, 2, 3, 4, 5], "label": labels, "split": splits})
    write(folder, "null_text.parquet", {"text": ["a", "b", None, "d", "e"], "label": labels, "split": splits})
    write(folder, "null_label.parquet", {"text": texts, "label": ["pos", None, "pos", "neg", "pos"], "split": splits})
    write(folder, "empty.parquet", {"text": pa.array([], pa.string()), "label": pa.array([], pa.string()), "split": pa.array([], pa.string())})
    write(folder, "unseen.parquet", {"text": texts, "label": labels[:4] + ["meh"], "split": splits})


if __name__ == "__main__":
    main()

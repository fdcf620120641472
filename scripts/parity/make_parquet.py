"""Writes a `text,label,split` CSV's rows into a Parquet file with pyarrow, for tests/parquet.rs.

Usage: make_parquet.py --csv IN.csv --out OUT.parquet [--row-group-size N]
                       [--compression snappy|zstd|gzip|brotli|lz4|none] [--label-type int|str|category]
                       [--large-string | --string-view]

The columns keep the CSV's names and order. An empty cell is written as null, as pandas'
`read_csv(...).to_parquet(...)` would. Column types:
  text, split  string (large_string with --large-string, string_view with --string-view)
  label        string; int64 with --label-type int (every label must be an integer);
               dictionary<int32, string> with --label-type category (what a pandas categorical with
               more than 127 categories becomes; fewer get int8 indices)

Prints the file's layout as JSON on stdout, so a test can corrupt a chosen page:
{"rows": N, "row_groups": [{"num_rows": n, "first_row": r, "columns": {"text": {"start": byte, "size": bytes}}}]}
`first_row` is 1-based; `start` is the column chunk's first page (dictionary page if any).
"""
import argparse
import csv
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--row-group-size", type=int, default=None)
    ap.add_argument("--compression", choices=["snappy", "zstd", "gzip", "brotli", "lz4", "none"], default="snappy")
    ap.add_argument("--label-type", choices=["int", "str", "category"], default="str")
    strings = ap.add_mutually_exclusive_group()
    strings.add_argument("--large-string", action="store_true")
    strings.add_argument("--string-view", action="store_true")
    args = ap.parse_args()

    with open(args.csv, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    columns = {name: [(r[i] if i < len(r) and r[i] != "" else None) for r in rows] for i, name in enumerate(header)}

    string = pa.large_string() if args.large_string else pa.string_view() if args.string_view else pa.string()
    arrays = {}
    for name, values in columns.items():
        if name == "label" and args.label_type == "int":
            try:
                arrays[name] = pa.array([None if v is None else int(v) for v in values], type=pa.int64())
            except ValueError as e:
                sys.exit(f"{args.csv}: --label-type int needs integer labels ({e})")
        elif name == "label" and args.label_type == "category":
            arrays[name] = pa.array(values, type=pa.string()).dictionary_encode()
        else:
            arrays[name] = pa.array(values, type=string)
    table = pa.table(arrays)

    compression = None if args.compression == "none" else args.compression
    pq.write_table(table, args.out, row_group_size=args.row_group_size, compression=compression)

    meta = pq.ParquetFile(args.out).metadata
    layout = {"rows": meta.num_rows, "row_groups": []}
    first_row = 1
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        cols = {}
        for c in range(rg.num_columns):
            cc = rg.column(c)
            start = cc.data_page_offset
            if cc.has_dictionary_page and cc.dictionary_page_offset is not None:
                start = min(start, cc.dictionary_page_offset)
            cols[cc.path_in_schema] = {"start": start, "size": cc.total_compressed_size}
        layout["row_groups"].append({"num_rows": rg.num_rows, "first_row": first_row, "columns": cols})
        first_row += rg.num_rows
    json.dump(layout, sys.stdout)
    print()


if __name__ == "__main__":
    main()

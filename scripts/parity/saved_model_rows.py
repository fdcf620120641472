"""What predict_reference.py and evaluate_reference.py share: reading a data file as `bertfit
predict` / `evaluate` do, and a saved model's logits over its rows with transformers."""
import csv

import torch


def read_rows(path):
    """The rows of a .csv, .tsv/.tab or .parquet file as dicts."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    delimiter = "\t" if path.endswith((".tsv", ".tab")) else ","
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def validation_rows(rows, split_column):
    """The rows whose split is a validation name (bertfit's: val, validation, dev)."""
    return [r for r in rows if str(r[split_column]).strip().lower() in ("val", "validation", "dev")]


def gold_ids(rows, label_column, label2id):
    """Each row's label through the model's label2id, else as an integer class id."""
    ids = []
    for r in rows:
        v = str(r[label_column]).strip()
        ids.append(label2id[v] if v in label2id else int(v))
    return ids


def label_names(cell, separator="|"):
    """The label names of one multi-label cell, as bertfit's LabelFormat::names reads them:
    `a|b`, a bracketed list `[0, 3]` / `['a', 'b']`, or nothing (an empty cell or `[]`)."""
    v = str(cell).strip()
    parts = v[1:-1].split(",") if v.startswith("[") and v.endswith("]") else v.split(separator)
    names = [p.strip().strip("'\"").strip() for p in parts]
    return [n for n in names if n]


def multi_hot(rows, label_column, label2id, num_labels, separator="|"):
    """(rows, num_labels) 0/1 rows: each name through the model's label2id, else as a class id."""
    out = []
    for r in rows:
        hot = [0] * num_labels
        for name in label_names(r[label_column], separator):
            hot[label2id[name] if name in label2id else int(name)] = 1
        out.append(hot)
    return out


def values(rows, label_column):
    """Regression targets as float32, as bertfit parses them."""
    import numpy as np

    return np.array([np.float32(str(r[label_column]).strip()) for r in rows], dtype=np.float32)


def logits_of(model, tok, rows, text_column, text_pair_column, max_length, batch_size):
    """(rows, num_labels) float32 logits, batches padded to their longest, truncated at max_length."""
    texts = [r[text_column] or "" for r in rows]
    pairs = [r[text_pair_column] or "" for r in rows] if text_pair_column else None
    logits = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tok(
                texts[i : i + batch_size],
                pairs[i : i + batch_size] if pairs else None,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            logits.append(model(**enc).logits.float())
    return torch.cat(logits) if logits else torch.zeros(0, model.config.num_labels)

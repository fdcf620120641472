"""What transformers predicts with the folders bertfit saved, for tests/family_paths.rs.

    paths_reference.py MODEL_DIR:DATA:OUT [...]
        For each job: AutoModelForSequenceClassification.from_pretrained(MODEL_DIR) in fp32 eval mode
        and the folder's BertTokenizer (its vocab.txt) on DATA's `text` column (truncated at
        --max-length, batches of --batch-size padded to their longest, the inputs the family's
        forward takes), and writes JSON to OUT: {"labels": id2label names, "probs": softmax per row
        in file order, "class": the class built, "accuracy": on the rows whose `split` is val}.
        Several folders in one call: importing torch is most of the time.
"""
import argparse
import inspect
import json
import os
import sys

import torch
from transformers import AutoModelForSequenceClassification, BertTokenizer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from saved_model_rows import gold_ids, read_rows, validation_rows  # noqa: E402


def logits_of(model, tok, texts, max_length, batch_size):
    # DistilBERT and ModernBERT take no token_type_ids: pass what the family's forward takes.
    takes = inspect.signature(model.forward).parameters
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i : i + batch_size], truncation=True, max_length=max_length, padding=True,
                      return_tensors="pt")
            out.append(model(**{k: v for k, v in enc.items() if k in takes}).logits.float())
    return torch.cat(out)


def job(spec, max_length, batch_size):
    model_dir, data, out = spec.split(":")
    rows = read_rows(data)
    tok = BertTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    logits = logits_of(model, tok, [r["text"] or "" for r in rows], max_length, batch_size)
    val = validation_rows(rows, "split")
    gold = torch.tensor(gold_ids(val, "label", model.config.label2id))
    val_logits = logits_of(model, tok, [r["text"] or "" for r in val], max_length, batch_size)
    result = {"labels": labels, "probs": torch.softmax(logits, -1).tolist(), "class": type(model).__name__,
              "accuracy": (val_logits.argmax(-1) == gold).double().mean().item()}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", nargs="+", help="MODEL_DIR:DATA:OUT")
    p.add_argument("--max-length", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(1)
    for spec in a.jobs:
        job(spec, a.max_length, a.batch_size)


if __name__ == "__main__":
    main()

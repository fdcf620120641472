#!/usr/bin/env python3
"""The seed script, corrected: the PyTorch side of bertfit's parity tests and benchmarks.

Fine-tunes `BertForSequenceClassification` on a CSV with `text`, `label` and `split` columns, exactly as
the team's original script did (BertTokenizer, shuffled DataLoader, Adam, cross-entropy, one
validation pass per epoch, the same two printed lines), with the two bugs fixed: the loss was
computed twice per step, and a print used an f-string with a syntax error.

It takes the same flags as `bertfit train`, so the two can be run on identical work. Random draws
follow the original order: `torch.manual_seed` first, the classifier's init inside `from_pretrained`,
then per epoch the DataLoader's own draws and the dropout masks.

Extra outputs for the parity tests: `--metrics-out` (one JSON line per step and per epoch, the same
records bertfit writes to metrics.jsonl) and `--save-weights` (the final state dict as safetensors).
"""
import argparse
import csv
import json
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import BertForSequenceClassification, BertTokenizer


class TextDataset(Dataset):
    def __init__(self, rows, tokenizer, max_length, padding):
        self.rows = rows
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.padding = padding

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row, text, label = self.rows[i]
        enc = self.tokenizer(
            text,
            max_length=self.max_length,
            padding="max_length" if self.padding == "max-length" else False,
            truncation=True,
            return_tensors="pt",
        )
        return {
            "input_ids": enc["input_ids"].squeeze(0),
            "attention_mask": enc["attention_mask"].squeeze(0),
            "label": torch.tensor(label),
            "row": row,
        }


def collate(pad_id):
    """Pads to the longest in the batch (with --padding max-length every item is already full)."""

    def fn(items):
        width = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            ids[i, :n] = it["input_ids"]
            mask[i, :n] = it["attention_mask"]
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.stack([it["label"] for it in items]),
            "rows": [it["row"] for it in items],
        }

    return fn


def read_splits(path, text_col, label_col, split_col):
    splits = {"train": [], "val": [], "test": []}
    names = {"train": "train", "val": "val", "validation": "val", "dev": "val", "test": "test"}
    with open(path, newline="", encoding="utf-8") as f:
        for row, rec in enumerate(csv.DictReader(f, delimiter="\t" if path.endswith(".tsv") else ","), start=1):
            splits[names[rec[split_col].strip().lower()]].append((row, rec[text_col] or "", rec[label_col].strip()))
    return splits


def label_ids(train, num_labels):
    values = sorted({label for _, _, label in train})
    if all(v.lstrip("-").isdigit() for v in values):
        n = num_labels or max(int(v) for v in values) + 1
        return [str(i) for i in range(n)], lambda v: int(v)
    names = values
    return names, names.index


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--num-labels", type=int)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--padding", choices=["longest", "max-length"], default="max-length")
    p.add_argument("--no-shuffle", action="store_true")
    p.add_argument("--threads", type=int)
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--split-column", default="split")
    p.add_argument("--max-steps", type=int, help="stop after this many training steps (parity tests)")
    p.add_argument(
        "--extra-random-draw",
        action="store_true",
        help="draw one extra number from the default generator before training: the parity tests use it "
        "to show that one random call out of order makes the runs diverge",
    )
    p.add_argument("--metrics-out")
    p.add_argument("--save-weights")
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    splits = read_splits(args.data, args.text_column, args.label_column, args.split_column)
    names, to_id = label_ids(splits["train"], args.num_labels)
    tokenizer = BertTokenizer.from_pretrained(args.model)
    model = BertForSequenceClassification.from_pretrained(
        args.model,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        attn_implementation="sdpa",
    )

    def dataset(split):
        rows = [(row, text, to_id(label)) for row, text, label in splits[split]]
        return TextDataset(rows, tokenizer, args.max_length, args.padding)

    train_loader = DataLoader(
        dataset("train"), batch_size=args.batch_size, shuffle=not args.no_shuffle, collate_fn=collate(tokenizer.pad_token_id)
    )
    val_loader = DataLoader(dataset("val"), batch_size=args.batch_size, collate_fn=collate(tokenizer.pad_token_id))

    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    if args.extra_random_draw:
        torch.rand(1)
    loss_fn = torch.nn.CrossEntropyLoss()
    metrics = open(args.metrics_out, "w") if args.metrics_out else None
    step = 0
    for epoch in range(args.epochs):
        model.train()
        total_loss = 0.0
        batches = 0
        started = time.perf_counter()
        samples = 0
        for batch in train_loader:
            optimizer.zero_grad()
            outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            loss = loss_fn(outputs.logits, batch["labels"])  # once per step (the seed computed it twice)
            loss.backward()
            optimizer.step()
            step += 1
            batches += 1
            samples += len(batch["rows"])
            total_loss += loss.item()
            if metrics:
                rec = {"kind": "step", "epoch": epoch + 1, "step": step, "loss": loss.item(), "rows": batch["rows"]}
                metrics.write(json.dumps(rec) + "\n")
            if args.max_steps and step >= args.max_steps:
                break
        seconds = time.perf_counter() - started
        avg_loss = total_loss / batches
        print(f"Epoch {epoch + 1}, Loss: {avg_loss:.4f}")

        model.eval()
        correct = total = 0
        with torch.no_grad():
            for batch in val_loader:
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                correct += (logits.argmax(dim=-1) == batch["labels"]).sum().item()
                total += len(batch["rows"])
        accuracy = 100 * correct / total if total else None
        if total:
            print(f"Validation Accuracy: {accuracy:.2f}%")
        if metrics:
            rec = {
                "kind": "epoch",
                "epoch": epoch + 1,
                "loss": avg_loss,
                "val_accuracy": accuracy,
                "train_seconds": seconds,
                "train_samples_per_second": samples / seconds,
            }
            metrics.write(json.dumps(rec) + "\n")
            metrics.flush()
        if args.max_steps and step >= args.max_steps:
            break
    if args.save_weights:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.save_weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())

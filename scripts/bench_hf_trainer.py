#!/usr/bin/env python3
"""The Hugging Face Trainer on a text,label,split CSV: the anchor bench_cpu.py compares against.

What most teams would run instead of the seed script: `BertForSequenceClassification` under
`transformers.Trainer` with `DataCollatorWithPadding` (each batch padded to its longest),
`train_sampling_strategy="random"` (5.24's name for group_by_length off), AdamW (torch, not fused), a constant learning rate, no evaluation, no saves,
on the CPU. Prints one JSON line: rows, seconds of `trainer.train()`, samples/s (rows / those
seconds, the same definition as bertfit's and reference_train.py's epoch records).

    python scripts/bench_hf_trainer.py --model DIR --data CSV --batch-size 16 --max-length 128 --threads 2
"""
import argparse
import csv
import json
import os
import tempfile
import time


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import torch
    from transformers import (BertForSequenceClassification, BertTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    torch.set_num_threads(args.threads)
    rows = [r for r in csv.DictReader(open(args.data, newline="", encoding="utf-8")) if r["split"] == "train"]
    names = sorted({r["label"] for r in rows})
    label_id = {n: i for i, n in enumerate(names)}
    tokenizer = BertTokenizer.from_pretrained(args.model)
    features = [dict(tokenizer(r["text"], truncation=True, max_length=args.max_length), labels=label_id[r["label"]])
                for r in rows]
    model = BertForSequenceClassification.from_pretrained(args.model, num_labels=len(names))
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=1,
            learning_rate=args.learning_rate, lr_scheduler_type="constant", optim="adamw_torch",
            seed=args.seed, use_cpu=True, report_to=[], save_strategy="no", eval_strategy="no",
            logging_strategy="no", train_sampling_strategy="random", dataloader_num_workers=0, disable_tqdm=True)
        trainer = Trainer(model=model, args=training_args, train_dataset=features,
                          data_collator=DataCollatorWithPadding(tokenizer))
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    print(json.dumps({"rows": len(rows), "train_seconds": seconds, "train_samples_per_second": len(rows) / seconds}))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

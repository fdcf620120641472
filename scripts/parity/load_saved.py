#!/usr/bin/env python3
"""Loads each bertfit output folder given on the command line with transformers, as a user would
(AutoModelForSequenceClassification + AutoTokenizer), runs one forward pass and prints one line
per folder: `ok <folder> <num_labels> <logits>`. Any folder that does not load fails the script."""
import sys

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main():
    for folder in sys.argv[1:]:
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        batch = tokenizer(["a film worth seeing twice"], return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits[0]
        if not torch.isfinite(logits).all():
            sys.exit(f"{folder}: non-finite logits {logits.tolist()}")
        print("ok", folder, model.config.num_labels, " ".join(f"{x:.6f}" for x in logits.tolist()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference learning rates from transformers' schedulers, for bertfit's schedule parity test.

Usage:

    python scripts/parity/schedule_reference.py --input cases.json

--input  a JSON object:
           {"schedules": [{"type": "linear", "base_lr": 5e-5, "warmup_steps": 3, "total_steps": 20,
                           "steps": 23}, ...],
            "warmup": [{"warmup": 0.1, "total_steps": 95}, ...]}
Prints one JSON object to stdout:
  {"schedules": [[lr of optimizer step 0, 1, ..., steps - 1], ...],
   "warmup": [TrainingArguments.get_warmup_steps with warmup_steps=warmup, for total_steps, ...]}

Each schedule comes from `transformers.get_scheduler(type, optimizer, num_warmup_steps,
num_training_steps)` over a one-parameter SGD optimizer with lr `base_lr`, driven as HF's Trainer
drives it: read the lr the optimizer step uses, `optimizer.step()`, then `scheduler.step()`.
"""

import argparse
import json
import os
import sys
import types
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import TrainingArguments, get_scheduler


def lrs(case):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=case["base_lr"])
    scheduler = get_scheduler(
        case["type"],
        optimizer,
        num_warmup_steps=case["warmup_steps"],
        num_training_steps=case["total_steps"],
    )
    out = []
    for _ in range(case["steps"]):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def warmup(case):
    # HF's own method on a stand-in `self`: building TrainingArguments needs `accelerate`, which the
    # venv lacks, and get_warmup_steps reads nothing but `self.warmup_steps`.
    args = types.SimpleNamespace(warmup_steps=case["warmup"])
    return TrainingArguments.get_warmup_steps(args, case["total_steps"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True)
    args = parser.parse_args()
    with open(args.input) as f:
        cases = json.load(f)
    warnings.simplefilter("ignore")  # stderr stays readable if the test fails
    result = {
        "schedules": [lrs(c) for c in cases.get("schedules", [])],
        "warmup": [warmup(c) for c in cases.get("warmup", [])],
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

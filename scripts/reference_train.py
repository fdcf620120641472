#!/usr/bin/env python3
"""The seed script, corrected: the PyTorch side of bertfit's parity tests and benchmarks.

Fine-tunes `BertForSequenceClassification` on a CSV with `text`, `label` and `split` columns, exactly as
the team's original script did (BertTokenizer, shuffled DataLoader, Adam, cross-entropy, one
validation pass per epoch, the same two printed lines), with the two bugs fixed: the loss was
computed twice per step, and a print used an f-string with a syntax error.

Other encoder families (RoBERTa, XLM-R, ELECTRA, DistilBERT, ...) train the same way: the model is
the class `AutoModelForSequenceClassification` picks (BertForSequenceClassification for a BERT
config.json, so a BERT run is unchanged), with SDPA attention where the class has it, and the tokenizer `AutoTokenizer` where the folder has a tokenizer.json,
else `BertTokenizer` as the seed script had it. Neither draws a random number. The model is called
with input_ids and attention_mask only (no token types), as the seed script called it.

`main(argv)` can be called several times in one process (scripts/parity/families/training.py does,
one run per family): every run seeds the default generator first, so runs do not see each other's
draws.

It takes the same flags as `bertfit train`, so the two can be run on identical work. Random draws
follow the original order: `torch.manual_seed` first, the classifier's init inside `from_pretrained`,
then per epoch the DataLoader's own draws and the dropout masks, then the validation DataLoader's
base seed. Every option of the Hugging Face recipe below is off by default, and none of them draws
a random number, so the default run is the seed script's run.

Flags (defaults in brackets):
  --model DIR, --data CSV      the HF model folder and the text,label,split CSV (.tsv: tab-separated)
  --epochs [20] --batch-size [16] --learning-rate [1e-5] --max-length [512] --seed [42]
  --num-labels                 classes when the labels are integers (default: largest + 1)
  --padding [max-length]       or `longest` (pad each batch to its longest row)
  --no-shuffle                 iterate the training rows in file order
  --threads                    torch.set_num_threads
  --text-column [text] --label-column [label] --split-column [split]
  --max-steps                  stop after this many optimizer steps (also the scheduler's total)
  --extra-random-draw          one torch.rand(1) before training (the parity tests' negative control)
  --metrics-out FILE           JSON lines: one "step" record per optimizer step, one "epoch" record
  --save-weights FILE          the final state dict as safetensors
  --save-model DIR             model.save_pretrained(DIR) and the tokenizer beside it
  --ddp                        data-parallel mode (implied under torchrun with WORLD_SIZE > 1; see below)

The Hugging Face Trainer recipe (transformers 5.24), each off by default:
  --optim [adam]               adam: torch.optim.Adam(model.parameters(), lr), the seed's optimizer.
                               adamw: torch.optim.AdamW over HF's two groups (weight decay on all but
                               biases and LayerNorm weights), foreach=False, fused=--fused.
  --adam-beta1 [0.9] --adam-beta2 [0.999] --adam-epsilon [1e-8] --weight-decay [0.0]   (adamw only)
  --fused                      fused=True (the fused CPU kernel); otherwise the single-tensor loop
  --lr-scheduler-type [constant]  constant, constant_with_warmup, linear, cosine (transformers.get_scheduler)
  --warmup-steps N / --warmup-ratio R   warmup of N, or ceil(total_steps * R), optimizer steps [0]
  --gradient-accumulation-steps [1]     optimizer step after every N micro-batches (fewer at epoch end);
                               each micro-batch loss is divided by the window's micro-batch count
  --max-grad-norm X            clip_grad_norm_(model.parameters(), X) before each step [no clipping]
  --label-smoothing [0]        CrossEntropyLoss(label_smoothing=F) (single-label only)
  --precision [fp32]           bf16 / fp16: forward and loss under torch.autocast("cpu", dtype);
                               fp16 adds torch.amp.GradScaler("cpu")
  --scaler-growth-interval [2000]   the fp16 scaler's growth_interval
  --problem-type [single_label_classification]   or multi_label_classification, regression
  --label-separator [|]        separates a multi-label cell's names ("sports|politics"; empty: none)

Records (--metrics-out), one JSON object a line:
  step:  kind, epoch, step (optimizer steps so far), loss (mean of the window's micro-batch losses),
         lr (the learning rate this step used), rows (1-based data rows of the window, in order),
         and with fp16: skipped (the scaler skipped the step), scale (the scale after update)
  epoch: kind, epoch, loss (mean of the epoch's step losses), val_accuracy (percent; subset accuracy
         for multi-label; null for regression or no validation rows), val_loss (per-example mean of
         the training loss function over the validation rows), val_mse (regression only),
         train_seconds, train_samples_per_second

Data-parallel mode (under `torchrun --nproc_per_node N`, i.e. WORLD_SIZE > 1, or with --ddp): the
run `bertfit train` makes under scripts/launch-local.sh N with the same flags. Every rank seeds
torch.manual_seed(seed) and builds the model as above (the same draws on every rank), joins a Gloo
process group (init_process_group("gloo"), CPU) and wraps the model in DistributedDataParallel
(rank 0's weights broadcast, gradients averaged after the window's last backward; earlier micro-steps
of an accumulation window run under no_sync). The training DataLoader takes a
DistributedSampler(num_replicas=N, rank, shuffle=not --no-shuffle, seed=--seed, drop_last=False) with
set_epoch(epoch - 1) before each epoch: the sampler's permutation comes from its own generator, and
the DataLoader still draws its per-iteration base seed from the default generator, so each epoch
makes one default-generator draw before its dropout masks, which every rank draws from its own
default generator. Evaluation is not sharded: every rank evaluates the whole validation set with the
unwrapped model (its own DataLoader, one base-seed draw each), as bertfit does, so the figures are
the full set's. Only rank 0 prints and writes --metrics-out, --save-weights and --save-model. In the
step records, loss is the all-reduced mean over ranks of each rank's window loss (what bertfit logs),
rows are rank 0's rows and rank_rows the rows of every rank, in rank order. --batch-size is per rank.

Two choices, read from transformers 5.24's trainer.py:
- val_loss keeps label smoothing: Trainer.prediction_step calls compute_loss, which applies the
  label smoother in evaluation too; each batch's mean is weighted by its rows (losses.repeat(bs)).
- Accumulation divides by the window's micro-batch count (Trainer.training_step's
  current_gradient_accumulation_steps). Trainer 5.24 itself skips that division for
  BertForSequenceClassification: its forward takes **kwargs, so model_accepts_loss_kwargs is true,
  num_items_in_batch is counted from the labels, and the loss counts as already scaled although
  the model ignores that count (with label smoothing the label smoother divides by it instead).
"""
import argparse
import contextlib
import csv
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from transformers import (
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING,
    AutoConfig,
    AutoTokenizer,
    BertForSequenceClassification,
    BertTokenizer,
    get_scheduler,
)
from transformers.trainer_pt_utils import get_parameter_names

SINGLE, MULTI, REGRESSION = "single_label_classification", "multi_label_classification", "regression"


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
            # int -> int64 class id; float -> float32 regression target; list -> float32 multi-hot
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


def multi_label_ids(train, separator):
    """Names: the sorted set of every name in the training cells; a cell becomes a multi-hot vector."""

    def split(cell):
        return [name.strip() for name in cell.split(separator) if name.strip()]

    names = sorted({name for _, _, cell in train for name in split(cell)})

    def encode(cell):
        hot = [0.0] * len(names)
        for name in split(cell):
            if name not in names:
                raise SystemExit(f"label {name!r} is not among the training labels {names}")
            hot[names.index(name)] = 1.0
        return hot

    return names, encode


def label_encoding(args, train):
    """(label names for id2label, or None for regression; cell -> target)."""
    if args.problem_type == MULTI:
        return multi_label_ids(train, args.label_separator)
    if args.problem_type == REGRESSION:
        return None, float
    return label_ids(train, args.num_labels)


def model_class(folder):
    """The folder's *ForSequenceClassification, the class AutoModelForSequenceClassification picks
    from config.json's model_type; a config.json without one is BERT's (the seed script's class)."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        has_type = "model_type" in json.load(f)
    if not has_type:
        return BertForSequenceClassification
    return MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(AutoConfig.from_pretrained(folder))]


def load_tokenizer(folder):
    """AutoTokenizer where the folder has a tokenizer.json (any family), else the seed's BertTokenizer
    (a vocab.txt folder)."""
    if os.path.exists(os.path.join(folder, "tokenizer.json")):
        return AutoTokenizer.from_pretrained(folder)
    return BertTokenizer.from_pretrained(folder)


def build_model(args, names):
    """from_pretrained draws the new classifier's init: the first draws after the seed."""
    labels = {"num_labels": 1} if names is None else {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }
    cls = model_class(args.model)
    # SDPA, as the seed's run; a family without it (DeBERTa-v2) has one attention, its own (eager).
    attention = {"attn_implementation": "sdpa"} if cls._supports_sdpa else {}
    return cls.from_pretrained(args.model, problem_type=args.problem_type, **attention, **labels)


def decay_parameter_names(model):
    """transformers 5.24 Trainer.get_decay_parameter_names: no decay for LayerNorm modules nor for
    parameter names matching these patterns (biases, LayerNorm weights)."""
    forbidden_name_patterns = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    return get_parameter_names(model, [torch.nn.LayerNorm], forbidden_name_patterns)


def build_optimizer(model, args):
    if args.optim == "adam":
        if args.fused:
            return torch.optim.Adam(model.parameters(), lr=args.learning_rate, fused=True)
        return torch.optim.Adam(model.parameters(), lr=args.learning_rate)  # the seed's optimizer
    # Trainer.create_optimizer: two groups in named_parameters() order.
    decay = set(decay_parameter_names(model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": args.weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        foreach=False,
        fused=args.fused,
    )


def total_optimizer_steps(args, batches_per_epoch):
    if args.max_steps:
        return args.max_steps
    return args.epochs * math.ceil(batches_per_epoch / args.gradient_accumulation_steps)


def build_scheduler(optimizer, args, total_steps):
    """Trainer.create_scheduler: warmup_steps, or ceil(total * ratio) as TrainingArguments.get_warmup_steps."""
    warmup = args.warmup_steps if args.warmup_ratio is None else math.ceil(total_steps * args.warmup_ratio)
    return get_scheduler(
        args.lr_scheduler_type, optimizer=optimizer, num_warmup_steps=warmup, num_training_steps=total_steps
    )


def make_loss(problem_type, label_smoothing):
    """The loss BertForSequenceClassification computes for `problem_type` (with the Trainer's label
    smoothing, which HF applies to single-label classification only), as (logits, labels) -> mean."""
    if problem_type == REGRESSION:
        mse = torch.nn.MSELoss()
        # HF: MSELoss()(logits.squeeze(), labels.squeeze()) for num_labels == 1; the same numbers, but
        # squeeze(-1) keeps a one-row batch a vector.
        return lambda logits, labels: mse(logits.squeeze(-1), labels)
    if problem_type == MULTI:
        return torch.nn.BCEWithLogitsLoss()
    return torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def autocast(precision):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def windows(batches_per_epoch, accumulation):
    """Micro-batches per optimizer step over one epoch: N each, the remainder last (HF Trainer 5.x)."""
    sizes = [accumulation] * (batches_per_epoch // accumulation)
    if batches_per_epoch % accumulation:
        sizes.append(batches_per_epoch % accumulation)
    return sizes


class Ddp:
    """This rank's place in a torchrun'd Gloo group, and what bertfit records of each step."""

    def __init__(self):
        dist.init_process_group("gloo")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def reduce_step(self, window_loss, rows):
        """(the mean over ranks of the window losses, as bertfit logs it; every rank's rows)."""
        total = torch.tensor([window_loss], dtype=torch.float64)
        dist.all_reduce(total)
        rank_rows = [None] * self.world_size
        dist.all_gather_object(rank_rows, rows)
        return total.item() / self.world_size, rank_rows


class Run:
    """The training state one epoch hands to the next."""

    def __init__(self, args, model, optimizer, scheduler, scaler, loss_fn, metrics, ddp=None):
        self.args, self.model, self.optimizer, self.scheduler = args, model, optimizer, scheduler
        self.scaler, self.loss_fn, self.metrics = scaler, loss_fn, metrics
        self.step = 0
        # Data-parallel: `model` is the DistributedDataParallel wrapper; evaluation uses the module
        # itself (no collectives: every rank evaluates the whole validation set).
        self.ddp = ddp
        self.eval_model = model.module if ddp else model

    def done(self):
        return bool(self.args.max_steps) and self.step >= self.args.max_steps

    def optimizer_step(self):
        """Clip, step, update the scaler, then the scheduler unless the scaler skipped the step.
        Returns (learning rate used, skipped, scale after update)."""
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scaler and self.args.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
        if self.args.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
        skipped, scale = False, None
        if self.scaler:
            before = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            scale = self.scaler.get_scale()
            skipped = scale < before  # the scale backs off exactly when the step found inf/NaN
        else:
            self.optimizer.step()
        if not skipped:
            self.scheduler.step()
        return lr, skipped, scale

    def train_epoch(self, epoch, loader):
        """One pass over `loader`; returns (step losses, rows seen)."""
        args, model = self.args, self.model
        model.train()
        sizes = windows(len(loader), args.gradient_accumulation_steps)
        losses, samples = [], 0
        batches = iter(loader)
        for size in sizes:
            self.optimizer.zero_grad()
            window_loss, rows = 0.0, []
            for i in range(size):
                batch = next(batches)
                # DDP all-reduces after the window's last backward only (no_sync before it).
                with model.no_sync() if self.ddp and i < size - 1 else contextlib.nullcontext():
                    with autocast(args.precision):
                        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                        loss = self.loss_fn(outputs.logits, batch["labels"])  # once per step (the seed computed it twice)
                    loss = loss / size  # HF: the mean over the window (exact when size is 1)
                    (self.scaler.scale(loss) if self.scaler else loss).backward()
                window_loss += loss.item()
                rows += batch["rows"]
            rank_rows = None
            if self.ddp:
                window_loss, rank_rows = self.ddp.reduce_step(window_loss, rows)
            lr, skipped, scale = self.optimizer_step()
            self.step += 1
            samples += len(rows)
            losses.append(window_loss)
            if self.metrics:
                rec = {"kind": "step", "epoch": epoch, "step": self.step, "loss": window_loss, "lr": lr, "rows": rows}
                if rank_rows is not None:
                    rec["rank_rows"] = rank_rows
                if self.scaler:
                    rec.update(skipped=skipped, scale=scale)
                self.metrics.write(json.dumps(rec) + "\n")
            if self.done():
                break
        return losses, samples

    def evaluate(self, loader):
        """Validation: accuracy (argmax, or every logit > 0 matching the multi-hot target), MSE for
        regression, and the per-example mean of the training loss as HF's evaluation loop takes it
        (each batch's mean loss weighted by its rows)."""
        model, problem = self.eval_model, self.args.problem_type
        model.eval()
        correct = total = 0
        loss_sum = squared_error = 0.0
        with torch.no_grad():
            for batch in loader:
                labels = batch["labels"]
                with autocast(self.args.precision):
                    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                    loss = self.loss_fn(logits, labels)
                n = len(batch["rows"])
                total += n
                loss_sum += loss.item() * n
                if problem == SINGLE:
                    correct += (logits.argmax(dim=-1) == labels).sum().item()
                elif problem == MULTI:
                    correct += ((logits > 0) == labels.bool()).all(dim=-1).sum().item()
                else:
                    squared_error += ((logits.float().squeeze(-1) - labels) ** 2).sum().item()
        mean = (lambda x: x / total) if total else (lambda x: None)
        if problem == REGRESSION:
            return {"val_accuracy": None, "val_loss": mean(loss_sum), "val_mse": mean(squared_error)}
        return {"val_accuracy": mean(100 * correct), "val_loss": mean(loss_sum)}


def parse_args(argv=None):
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
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (parity tests)")
    p.add_argument(
        "--extra-random-draw",
        action="store_true",
        help="draw one extra number from the default generator before training: the parity tests use it "
        "to show that one random call out of order makes the runs diverge",
    )
    p.add_argument("--metrics-out")
    p.add_argument("--save-weights")
    p.add_argument("--save-model")
    p.add_argument("--ddp", action="store_true", help="data-parallel mode (implied when WORLD_SIZE > 1)")
    # The HF recipe.
    p.add_argument("--optim", choices=["adam", "adamw"], default="adam")
    p.add_argument("--adam-beta1", type=float, default=0.9)
    p.add_argument("--adam-beta2", type=float, default=0.999)
    p.add_argument("--adam-epsilon", type=float, default=1e-8)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--fused", action="store_true")
    p.add_argument(
        "--lr-scheduler-type", choices=["constant", "constant_with_warmup", "linear", "cosine"], default="constant"
    )
    warmup = p.add_mutually_exclusive_group()
    warmup.add_argument("--warmup-steps", type=int, default=0)
    warmup.add_argument("--warmup-ratio", type=float)
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--max-grad-norm", type=float)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--scaler-growth-interval", type=int, default=2000)
    p.add_argument("--problem-type", choices=[SINGLE, MULTI, REGRESSION], default=SINGLE)
    p.add_argument("--label-separator", default="|")
    args = p.parse_args(argv)

    if args.optim == "adam" and (args.weight_decay, args.adam_beta1, args.adam_beta2, args.adam_epsilon) != (
        0.0,
        0.9,
        0.999,
        1e-8,
    ):
        p.error("--weight-decay and --adam-* apply to --optim adamw (adam is the seed's Adam(params, lr))")
    if args.gradient_accumulation_steps < 1:
        p.error("--gradient-accumulation-steps must be at least 1")
    if args.problem_type == REGRESSION and args.num_labels not in (None, 1):
        p.error("regression has one output: --num-labels must be 1 or absent")
    if args.label_smoothing and args.problem_type == REGRESSION:
        p.error("--label-smoothing applies to classification")
    if args.label_smoothing and args.problem_type == MULTI:
        # Trainer.__init__ warns and turns it off for multi-label; so do we.
        print("warning: label smoothing is not compatible with multi-label classification; disabled", file=sys.stderr)
        args.label_smoothing = 0.0
    return args


def main(argv=None):
    """One run of the flags in `argv` (default: the command line)."""
    args = parse_args(argv)
    # Joined before the seed: nothing the group does can move the default generator's draws.
    ddp = Ddp() if args.ddp or int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    main_rank = ddp is None or ddp.rank == 0
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    splits = read_splits(args.data, args.text_column, args.label_column, args.split_column)
    names, encode = label_encoding(args, splits["train"])
    if args.problem_type == MULTI and args.num_labels not in (None, len(names)):
        raise SystemExit(f"--num-labels {args.num_labels}, but the training cells name {len(names)} labels")
    tokenizer = load_tokenizer(args.model)
    model = build_model(args, names)

    def dataset(split):
        rows = [(row, text, encode(label)) for row, text, label in splits[split]]
        return TextDataset(rows, tokenizer, args.max_length, args.padding)

    sampler = None
    if ddp:
        train_set = dataset("train")
        sampler = DistributedSampler(
            train_set,
            num_replicas=ddp.world_size,
            rank=ddp.rank,
            shuffle=not args.no_shuffle,
            seed=args.seed,
            drop_last=False,
        )
        train_loader = DataLoader(
            train_set, batch_size=args.batch_size, sampler=sampler, collate_fn=collate(tokenizer.pad_token_id)
        )
    else:
        train_loader = DataLoader(
            dataset("train"),
            batch_size=args.batch_size,
            shuffle=not args.no_shuffle,
            collate_fn=collate(tokenizer.pad_token_id),
        )
    val_loader = DataLoader(dataset("val"), batch_size=args.batch_size, collate_fn=collate(tokenizer.pad_token_id))

    optimizer = build_optimizer(model, args)
    scheduler = build_scheduler(optimizer, args, total_optimizer_steps(args, len(train_loader)))
    scaler = None
    if args.precision == "fp16":
        scaler = torch.amp.GradScaler(
            "cpu", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=args.scaler_growth_interval
        )
    if args.extra_random_draw:
        torch.rand(1)
    metrics = open(args.metrics_out, "w") if args.metrics_out and main_rank else None
    loss_fn = make_loss(args.problem_type, args.label_smoothing)
    trained = DistributedDataParallel(model) if ddp else model
    run = Run(args, trained, optimizer, scheduler, scaler, loss_fn, metrics, ddp)
    for epoch in range(1, args.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch - 1)
        started = time.perf_counter()
        losses, samples = run.train_epoch(epoch, train_loader)
        seconds = time.perf_counter() - started
        avg_loss = sum(losses) / len(losses)
        if main_rank:
            print(f"Epoch {epoch}, Loss: {avg_loss:.4f}")

        val = run.evaluate(val_loader)
        if val["val_loss"] is not None and main_rank:
            if args.problem_type == REGRESSION:
                print(f"Validation MSE: {val['val_mse']:.4f}")
            else:
                print(f"Validation Accuracy: {val['val_accuracy']:.2f}%")
        if metrics:
            rec = {"kind": "epoch", "epoch": epoch, "loss": avg_loss, **val}
            rec.update(train_seconds=seconds, train_samples_per_second=samples / seconds)
            metrics.write(json.dumps(rec) + "\n")
            metrics.flush()
        if run.done():
            break
    if args.save_weights and main_rank:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.save_weights)
    if args.save_model and main_rank:
        model.save_pretrained(args.save_model)
        tokenizer.save_pretrained(args.save_model)
    if metrics:
        metrics.close()  # before the next run of this process reads it
    if ddp:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

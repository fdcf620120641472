#!/usr/bin/env python3
"""transformers' Trainer (5.24) on the other side of bertfit's checkpoint crossings (tests/checkpoint_hf.rs).

    python scripts/parity/hf_resume.py train  COMMON --out DIR --save-steps N --losses F.json
    python scripts/parity/hf_resume.py resume COMMON --out DIR --checkpoint CKPT --losses F.json
                                              --state-out F.safetensors --info F.json
    python scripts/parity/hf_resume.py torch-load FILE OUT.json
    python scripts/parity/hf_resume.py torch-save OUT.pt OUT.json
    python scripts/parity/hf_resume.py zero-exp-avg OPTIMIZER.pt

COMMON: --model DIR --data CSV (text,label,split; the train rows in file order) --batch-size
--max-length --epochs --learning-rate --weight-decay --lr-scheduler-type --warmup-steps
--max-grad-norm --seed --threads. The Trainer is HF's with optim adamw_torch on the CPU, every
batch padded to --max-length, and the training rows in file order (a SequentialSampler in place of
HF's RandomSampler) so that bertfit's --no-shuffle run takes the same batches; dropout is the
model's own (the tests make models with dropout 0).

train   trains from the start, saving checkpoint-<step> every N steps.
resume  trainer.train(resume_from_checkpoint=CKPT). When the training starts (after HF loaded the
        checkpoint) it writes the optimizer's state as `optimizer.<param name>.<field>` tensors
        (bertfit's training_state names) to --state-out, and to --info: global_step, epoch, the
        scheduler's state_dict, each param group's hyper-parameters (names of its parameters in
        place of indices) and `trainer_state_fixes`: what CKPT's trainer_state.json needed before HF
        could resume from it (see hf_loadable_copy; the checkpoint is then resumed from a fixed copy).
Both record the loss of every optimizer step (compute_loss; no accumulation) as [[step, loss]...].

torch-load  torch.load(FILE, weights_only=True) described as JSON (floats and tensor bytes as hex).
torch-save  torch.save's a fixed object of every kind the Rust writer handles to OUT.pt and its
            description to OUT.json, for the Rust reader.
zero-exp-avg  zeroes every exp_avg of an optimizer.pt in place (the tests' negative control: a
            resume that lost the first moments).
"""
import argparse
import csv
import dataclasses
import json
import os
import shutil
import struct
import sys


def describe(obj):
    """A JSON description that compares exactly: floats as their big-endian bytes, tensors as dtype,
    shape and contiguous bytes."""
    import torch

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return {"int": str(obj)}
    if isinstance(obj, float):
        return {"float": struct.pack(">d", obj).hex()}
    if isinstance(obj, tuple):
        return {"tuple": [describe(v) for v in obj]}
    if isinstance(obj, list):
        return {"list": [describe(v) for v in obj]}
    if isinstance(obj, dict):
        return {"dict": [[describe(k), describe(v)] for k, v in obj.items()]}
    if isinstance(obj, torch.Tensor):
        raw = obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        return {"tensor": str(obj.dtype).removeprefix("torch."), "shape": list(obj.shape),
                "bytes": bytes(raw.tolist()).hex()}
    raise SystemExit(f"cannot describe {type(obj)}")


def sample_object():
    import torch

    g = torch.Generator().manual_seed(3)
    return {
        "state": {0: {"step": torch.tensor(7.0), "exp_avg": torch.randn(3, 4, generator=g)},
                  70000: {"t": torch.randn(5, generator=g).double()}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "neg": -5, "big": 2 ** 40, "nbig": -(2 ** 40),
                          "flags": [True, False, None], "name": "ünï ✓", "t4": (1, 2, 3, 4), "t0": ()}],
        "kinds": [torch.arange(6, dtype=torch.int64).reshape(2, 3).t(), torch.tensor([True, False]),
                  torch.tensor([1.5, -2.0], dtype=torch.bfloat16), torch.tensor([1, 255], dtype=torch.uint8)],
    }


def train_features(args, tokenizer):
    rows = [r for r in csv.DictReader(open(args.data, newline="", encoding="utf-8")) if r["split"] == "train"]
    names = sorted({r["label"] for r in rows})
    label_id = {n: i for i, n in enumerate(names)}
    enc = lambda r: tokenizer(r["text"], truncation=True, max_length=args.max_length, padding="max_length")
    return [dict(enc(r), labels=label_id[r["label"]]) for r in rows], names


def build_trainer(args, out, save_steps):
    import torch
    from torch.utils.data import SequentialSampler
    from transformers import BertForSequenceClassification, BertTokenizer, Trainer, TrainingArguments

    torch.set_num_threads(args.threads)
    tokenizer = BertTokenizer.from_pretrained(args.model)
    features, names = train_features(args, tokenizer)
    losses = []

    class InOrder(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def compute_loss(self, model, inputs, *a, **kw):
            loss = super().compute_loss(model, inputs, *a, **kw)
            value = (loss[0] if isinstance(loss, tuple) else loss).item()
            losses.append([self.state.global_step + 1, value])
            return loss

    training_args = TrainingArguments(
        output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=args.epochs,
        learning_rate=args.learning_rate, weight_decay=args.weight_decay, lr_scheduler_type=args.lr_scheduler_type,
        warmup_steps=args.warmup_steps, max_grad_norm=args.max_grad_norm, optim="adamw_torch", seed=args.seed,
        use_cpu=True, report_to=[], save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500,
        eval_strategy="no", logging_steps=1, dataloader_num_workers=0, disable_tqdm=True)
    model = BertForSequenceClassification.from_pretrained(args.model, num_labels=len(names))
    return InOrder(model=model, args=training_args, train_dataset=features), losses


def hf_loadable_copy(checkpoint, out, batch_size):
    """CKPT itself when HF resumes from its trainer_state.json as it is, else a copy with the
    fixes HF needs, as a list: keys TrainerState does not have are dropped (TrainerState(**json)
    refuses them) and a missing train_batch_size is set (compare_trainer_and_checkpoint_args
    divides it)."""
    from transformers import TrainerState

    path = os.path.join(checkpoint, "trainer_state.json")
    state = json.load(open(path))
    known = {f.name for f in dataclasses.fields(TrainerState)}
    fixes = [f"dropped {k}" for k in sorted(state) if k not in known]
    state = {k: v for k, v in state.items() if k in known}
    if state.get("train_batch_size") is None:
        fixes.append("set train_batch_size")
        state["train_batch_size"] = batch_size
    if not fixes:
        return checkpoint, fixes
    copy = os.path.join(out, "resumed-from")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(checkpoint, copy)
    json.dump(state, open(os.path.join(copy, "trainer_state.json"), "w"))
    return copy, fixes


def cmd_resume(args):
    import torch
    from safetensors.torch import save_file
    from transformers import TrainerCallback

    checkpoint, fixes = hf_loadable_copy(args.checkpoint, args.out, args.batch_size)
    trainer, losses = build_trainer(args, args.out, 0)
    info = {"trainer_state_fixes": fixes}

    class Dump(TrainerCallback):
        def on_train_begin(self, targs, state, control, model=None, optimizer=None, lr_scheduler=None, **kw):
            name_of = {id(p): n for n, p in trainer.model.named_parameters()}
            tensors, groups = {}, []
            for group in trainer.optimizer.param_groups:
                groups.append({k: (v if k != "params" else [name_of[id(p)] for p in v]) for k, v in group.items()})
                for p in group["params"]:
                    for field, t in trainer.optimizer.state.get(p, {}).items():
                        tensors[f"optimizer.{name_of[id(p)]}.{field}"] = t.detach().cpu().contiguous()
            save_file(tensors, args.state_out)
            info.update(global_step=state.global_step, epoch=state.epoch, param_groups=groups,
                        scheduler=trainer.lr_scheduler.state_dict())

    trainer.add_callback(Dump())
    trainer.train(resume_from_checkpoint=checkpoint)
    json.dump(info, open(args.info, "w"), default=str)
    json.dump(losses, open(args.losses, "w"))


def cmd_train(args):
    trainer, losses = build_trainer(args, args.out, args.save_steps)
    trainer.train()
    json.dump(losses, open(args.losses, "w"))


def main():
    if sys.argv[1:2] == ["torch-load"]:
        import torch

        obj = torch.load(sys.argv[2], weights_only=True)
        json.dump(describe(obj), open(sys.argv[3], "w"))
        return
    if sys.argv[1:2] == ["zero-exp-avg"]:
        import torch

        state = torch.load(sys.argv[2], weights_only=True)
        for entry in state["state"].values():
            entry["exp_avg"].zero_()
        torch.save(state, sys.argv[2])
        return
    if sys.argv[1:2] == ["torch-save"]:
        import torch

        obj = sample_object()
        torch.save(obj, sys.argv[2])
        json.dump(describe(obj), open(sys.argv[3], "w"))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["train", "resume"])
    for flag in ["--model", "--data", "--out"]:
        p.add_argument(flag, required=True)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=16)
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--lr-scheduler-type", default="linear")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--save-steps", type=int, default=0)
    p.add_argument("--checkpoint")
    p.add_argument("--losses", required=True)
    p.add_argument("--state-out")
    p.add_argument("--info")
    args = p.parse_args()
    {"train": cmd_train, "resume": cmd_resume}[args.command](args)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

#!/usr/bin/env python3
"""PyTorch's side of the optimizer and loss-scaler parity tests (tests/optim.rs, tests/precision.rs).

Every input is drawn here and written, with PyTorch's results, to a safetensors file the Rust test
reads, so both sides see the very same numbers.

adam    --kind adam|adamw --out F   torch.optim.Adam/AdamW over a tiny BertForSequenceClassification's
                                    named parameters with HF Trainer's decay groups, a given gradient
                                    sequence and a per-step learning rate; unfused (CPU default) and fused
decay   --model DIR                 prints HF Trainer.get_decay_parameter_names for the model, as JSON
clip    --out F                     torch.nn.utils.clip_grad_norm_ on random gradients
scaler  --out F --interval N        torch.amp.GradScaler("cpu") with injected inf gradients; prints the
                                    scale after each update and whether the step was skipped, as JSON
"""
import argparse
import json

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification, Trainer


def decay_names(model):
    # An instance method that does not use `self`.
    return Trainer.get_decay_parameter_names(None, model)


def tiny_bert(seed):
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=40,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=12,
        max_position_embeddings=16,
        num_labels=3,
    )
    return BertForSequenceClassification(cfg)


def run_adam(named, decay, grads, lrs, kind, weight_decay, fused):
    """HF Trainer.create_optimizer's two groups: decayed parameters, then the others."""
    params = {n: p.detach().clone().requires_grad_(True) for n, p in named}
    groups = [
        {"params": [params[n] for n, _ in named if n in decay], "weight_decay": weight_decay},
        {"params": [params[n] for n, _ in named if n not in decay], "weight_decay": 0.0},
    ]
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    opt = cls(groups, lr=float(lrs[0]), betas=(0.9, 0.999), eps=1e-8, fused=fused)
    for t, lr in enumerate(lrs.tolist()):
        for g in opt.param_groups:
            g["lr"] = lr
        for n, p in params.items():
            p.grad = grads[t][n].clone()
        opt.step()
        opt.zero_grad()
    return params


def cmd_adam(args):
    model = tiny_bert(args.seed)
    decay = decay_names(model)
    gen = torch.Generator().manual_seed(args.seed + 1)
    # Unit-scale values (not the 0.02 init) so that weight decay moves the parameters visibly.
    named = [(n, torch.randn(p.shape, generator=gen)) for n, p in model.named_parameters()]
    grads = [{n: torch.randn(p.shape, generator=gen) * 0.1 for n, p in named} for _ in range(args.steps)]
    # A schedule that changes every step (warm-up then decay), so set_lr is exercised.
    lrs = torch.tensor([1e-3 * min(1.0, (t + 1) / 5) * (1 - t / (2 * args.steps)) for t in range(args.steps)],
                       dtype=torch.float64)
    out = {"lrs": lrs}
    for n, p in named:
        out[f"param.{n}"] = p
    for t, gs in enumerate(grads):
        for n, g in gs.items():
            out[f"grad.{t}.{n}"] = g
    for fused in (False, True):
        final = run_adam(named, set(decay), grads, lrs, args.kind, args.weight_decay, fused)
        tag = "fused" if fused else "unfused"
        for n, p in final.items():
            out[f"{tag}.{n}"] = p.detach().contiguous()
    save_file(out, args.out)
    print(json.dumps(decay))


def cmd_decay(args):
    model = BertForSequenceClassification.from_pretrained(args.model)
    print(json.dumps(decay_names(model)))


def cmd_clip(args):
    gen = torch.Generator().manual_seed(args.seed)
    shapes = [(7, 5), (5,), (3, 4, 2), (1,)]
    out = {}
    for case, (max_norm, scale) in enumerate([(1.0, 3.0), (1e3, 1.0), (0.05, 0.01)]):
        params = [torch.zeros(s, requires_grad=True) for s in shapes]
        for i, (p, shape) in enumerate(zip(params, shapes)):
            p.grad = torch.randn(shape, generator=gen) * scale
            out[f"{case}.before.{i}"] = p.grad.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm)
        out[f"{case}.max_norm"] = torch.tensor(max_norm, dtype=torch.float64)
        out[f"{case}.total_norm"] = total
        for i, p in enumerate(params):
            out[f"{case}.after.{i}"] = p.grad.clone()
    save_file(out, args.out)


def cmd_scaler(args):
    gen = torch.Generator().manual_seed(args.seed)
    n = 6
    init = torch.randn(n, generator=gen)
    xs = torch.randn(args.steps, n, generator=gen)
    inject = [int(s) for s in args.inject.split(",")]
    out = {"init": init, "xs": xs}
    report = {}
    for fused in (False, True):
        p = init.clone().requires_grad_(True)
        opt = torch.optim.Adam([p], lr=0.01, fused=fused)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, growth_interval=args.interval)
        scales, skipped = [], []
        for t in range(args.steps):
            opt.zero_grad()
            loss = (p * xs[t]).sum()
            scaler.scale(loss).backward()
            if t in inject:
                with torch.no_grad():
                    p.grad[t % n] = float("inf")
            before = p.detach().clone()
            scaler.step(opt)
            scaler.update()
            scales.append(scaler.get_scale())
            skipped.append(bool(torch.equal(before, p.detach())))
        tag = "fused" if fused else "unfused"
        out[f"{tag}.final"] = p.detach().clone()
        report[tag] = {"scales": scales, "skipped": skipped}
    save_file(out, args.out)
    print(json.dumps(report))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("adam")
    a.add_argument("--kind", choices=["adam", "adamw"], required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--steps", type=int, default=30)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--weight-decay", type=float, default=0.01)
    d = sub.add_parser("decay")
    d.add_argument("--model", required=True)
    c = sub.add_parser("clip")
    c.add_argument("--out", required=True)
    c.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("scaler")
    s.add_argument("--out", required=True)
    s.add_argument("--steps", type=int, default=12)
    s.add_argument("--interval", type=int, default=3)
    s.add_argument("--inject", default="1,5,6", help="steps (0-based) whose gradient gets an inf")
    s.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    {"adam": cmd_adam, "decay": cmd_decay, "clip": cmd_clip, "scaler": cmd_scaler}[args.cmd](args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/seeds/<target>/) from the test suite's own
inputs: the parity scripts' Parquet and torch.save fixtures, small slices of the datasets and of
MiniLM's files, and a token-cache entry in bertfit's format. Every seed is kept under 64 KB so
libFuzzer mutates whole files.

Usage: make_fuzz_seeds.py OUT_DIR ASSETS_DIR   (scripts/fuzz.sh --seeds runs it)
"""
import csv
import glob
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
LIMIT = 64 * 1024


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    if len(data) <= LIMIT:
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def csv_seeds(out, assets, tmp):
    """The first rows of each dataset, and the edge cases tests/cli.rs and tests/data.rs write."""
    small = []
    for name in ["movies", "sms", "trec"]:
        with open(os.path.join(assets, "data", f"{name}.csv"), newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        picked = body[:6] + [r for r in body if "val" in r][:3]
        path = os.path.join(tmp, f"{name}.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([header] + picked)
        small.append(path)
        put(out, "csv", f"{name}.csv", open(path, "rb").read())
    put(out, "csv", "quoted.csv", 'text,label,split\n"a ""quoted"", multi\nline text",1,train\n"b",0,val\n')
    put(out, "csv", "no_label.csv", "text,split\nhello,train\n")
    put(out, "csv", "bad_split.csv", "text,label,split\nx,1,trian\n")
    put(out, "csv", "empty_cells.csv", "text,label,split\n,,\n\"\",0,train\n")
    return small


def parquet_seeds(out, csvs, tmp):
    """make_parquet.py's variants (compressions, label types, string kinds, small row groups)."""
    variants = [
        ["--compression", "none"],
        ["--compression", "snappy", "--row-group-size", "2"],
        ["--compression", "zstd", "--label-type", "category"],
        ["--compression", "gzip", "--large-string"],
        ["--compression", "none", "--string-view"],
    ]
    for i, flags in enumerate(variants):
        src = csvs[i % len(csvs)]
        dst = os.path.join(tmp, f"v{i}.parquet")
        subprocess.run([sys.executable, os.path.join(HERE, "make_parquet.py"), "--csv", src, "--out", dst, *flags],
                       check=True, stdout=subprocess.DEVNULL)
        put(out, "parquet", f"v{i}.parquet", open(dst, "rb").read())
    intlabels = os.path.join(tmp, "int.csv")
    with open(intlabels, "w") as f:
        f.write("text,label,split\nalpha,0,train\nbeta,1,train\ngamma,1,val\n")
    dst = os.path.join(tmp, "int.parquet")
    subprocess.run([sys.executable, os.path.join(HERE, "make_parquet.py"), "--csv", intlabels, "--out", dst,
                    "--label-type", "int"], check=True, stdout=subprocess.DEVNULL)
    put(out, "parquet", "int_labels.parquet", open(dst, "rb").read())


def pickle_seeds(out, tmp):
    """make_pickles.py's torch.save files (zip, legacy, big-endian, nested, malicious, not a state dict)."""
    d = os.path.join(tmp, "pickles")
    subprocess.run([sys.executable, os.path.join(HERE, "make_pickles.py"), d], check=True, stdout=subprocess.DEVNULL)
    for path in sorted(glob.glob(os.path.join(d, "**", "*"), recursive=True)):
        if path.endswith((".pt", ".bin", ".zip")) and os.path.getsize(path) <= LIMIT:
            name = os.path.relpath(path, d).replace(os.sep, "_")
            put(out, "pickle", name, open(path, "rb").read())


def safetensors_seeds(out, tmp):
    g = torch.Generator().manual_seed(0)
    sets = {
        "small": {"w": torch.randn(3, 4, generator=g), "b": torch.zeros(4)},
        "dtypes": {"f16": torch.randn(2, 3, generator=g).half(), "bf16": torch.randn(3, generator=g).bfloat16(),
                   "i64": torch.arange(5), "f64": torch.randn(2, generator=g, dtype=torch.float64)},
        "nan": {"bert.encoder.layer.0.output.dense.weight": torch.tensor([[1.0, float("nan")], [0.0, 2.0]])},
        "scalar_empty": {"s": torch.tensor(3.0), "e": torch.zeros(0, 4)},
    }
    for name, tensors in sets.items():
        path = os.path.join(tmp, f"{name}.safetensors")
        save_file(tensors, path, metadata={"format": "pt"})
        put(out, "safetensors", f"{name}.safetensors", open(path, "rb").read())


def config_seeds(out, assets):
    minilm = os.path.join(assets, "all-MiniLM-L6-v2")
    put(out, "config", "minilm.json", open(os.path.join(minilm, "config.json"), "rb").read())
    tiny = json.load(open(os.path.join(minilm, "config.json")))
    tiny.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                id2label={"0": "neg", "1": "pos"}, label2id={"neg": 0, "pos": 1}, classifier_dropout=None)
    put(out, "config", "tiny_labels.json", json.dumps(tiny, indent=2))
    put(out, "config", "defaults.json", "{}")


def tokenizer_seeds(out, assets):
    minilm = os.path.join(assets, "all-MiniLM-L6-v2")
    vocab = open(os.path.join(minilm, "vocab.txt"), "rb").read().split(b"\n")
    # [PAD] is line 0, [UNK] [CLS] [SEP] [MASK] are 100..103: keep them and a slice of real words.
    head = b"\n".join(vocab[:110] + vocab[1996:2400]) + b"\n"
    config = open(os.path.join(minilm, "tokenizer_config.json"), "rb").read()
    put(out, "tokenizer", "vocab_only", head)
    put(out, "tokenizer", "vocab_and_config", head + b"\xff" + config)
    cased = json.dumps({"do_lower_case": False, "strip_accents": None, "model_max_length": 512,
                        "additional_special_tokens": ["[unused1]"]}).encode()
    put(out, "tokenizer", "cased_extra_special", head + b"\xff" + cased)


def token_cache_seed(out):
    """An entry as src/data/token_cache.rs writes it: splits of 3 and 2 rows (mode byte 0x21)."""
    splits = [[[101, 7, 102], [101, 102], [101, 9, 9, 102]], [[101, 5, 102], [101, 8, 6, 102]]]
    body = bytearray(b"BFTOK002") + struct.pack("<Q", len(splits))
    for split in splits:
        tokens = sum(len(e) for e in split)
        body += struct.pack("<QQ", len(split), tokens)
        offset = 0
        body += struct.pack("<Q", offset)
        for e in split:
            offset += len(e)
            body += struct.pack("<Q", offset)
        for e in split:
            body += b"".join(struct.pack("<I", i) for i in e)
        for e in split:
            body += bytes(len(e))
    entry = bytes(body) + hashlib.sha256(body).digest()
    put(out, "token_cache", "entry_3_2", bytes([0x21]) + entry)
    put(out, "token_cache", "entry_3_2_checked", bytes([0x20]) + entry)


def checkpoint_seeds(out, tmp):
    """Checkpoint folders as src/train/checkpoint.rs writes them, cut to the checks' inputs: the
    trainer state of epoch 1 after 7 of 20 micro-batches (accumulation 2), a training state with a
    320-row data order, the generator state and the classifier's Adam state, and the manifest; each
    file behind a 4-byte little-endian length (fuzz/fuzz_targets/checkpoint.rs)."""
    def pack(*parts):
        return b"".join(struct.pack("<I", len(p)) + p for p in parts)

    state = {
        "global_step": 4, "epoch": 0.35, "log_history": [{"epoch": 0.35, "step": 4, "loss": 0.69}],
        "best_metric": None, "best_global_step": None, "best_model_checkpoint": None,
        "bertfit_position": {"epoch": 1, "batches_done": 7, "epoch_loss_sum": 2.7, "epoch_steps": 4,
                             "epoch_samples": 112, "scheduled_steps": 4, "stream_seed": None,
                             "evals_without_improvement": 0},
        "bertfit_run": {"model_shape": "m", "labels": ["0", "1"], "problem_type": "single_label_classification",
                        "batch_size": 16, "gradient_accumulation_steps": 2, "max_length": 48,
                        "padding": "Longest", "shuffle": True, "streaming": False, "train_rows": 320,
                        "optim": "Adam fused=true", "precision": "fp32", "world_size": 1},
    }
    g = torch.Generator().manual_seed(9)
    tensors = {
        "data.order": torch.randperm(320, generator=g),
        "rng.cpu": torch.get_rng_state(),
    }
    for name, shape in [("classifier.weight", (2, 32)), ("classifier.bias", (2,))]:
        tensors[f"optimizer.{name}.step"] = torch.tensor(4.0)
        tensors[f"optimizer.{name}.exp_avg"] = torch.randn(shape, generator=g)
        tensors[f"optimizer.{name}.exp_avg_sq"] = torch.rand(shape, generator=g)
    path = os.path.join(tmp, "training_state.safetensors")
    save_file(tensors, path)
    with open(path, "rb") as f:
        training = f.read()
    trainer = json.dumps(state, indent=2).encode()
    manifest = json.dumps({
        name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in [("trainer_state.json", trainer), ("training_state.safetensors", training)]
    }).encode()
    put(out, "checkpoint", "mid_epoch", pack(trainer, training, manifest))
    put(out, "checkpoint", "no_manifest", pack(trainer, training, b""))
    state["best_model_checkpoint"], state["best_global_step"] = "checkpoint-4", 4
    put(out, "checkpoint", "best_elsewhere", pack(json.dumps(state).encode(), training, b""))


def metrics_seeds(out):
    """metrics.jsonl as training writes it (every kind of record), a resumed run, a diverged run
    (losses at float64's limit), no learning rate, and lines plot must refuse."""
    def line(**kv):
        return json.dumps(kv, separators=(",", ":")) + "\n"

    startup = line(kind="startup", seconds_to_first_step=0.3, phases={"exec": 0.2, "weights": 0.06})
    steps = "".join(
        line(kind="step", epoch=1 + (s - 1) // 4, step=s, loss=0.7 - 0.01 * s, lr=2e-5, rows=[s, s + 8])
        for s in range(1, 9)
    )
    epochs = "".join(
        line(kind="epoch", epoch=e, loss=0.65, val_accuracy=50.0 + e, val_loss=0.6, samples_per_second=31.2)
        for e in (1, 2)
    )
    evals = line(kind="eval", epoch=1, step=4, eval_accuracy=0.5, eval_loss=0.69)
    ckpt = line(kind="checkpoint", step=4, seconds=0.05, bytes=12377873, path="out/checkpoint-4")
    put(out, "metrics", "run.jsonl", startup + steps + evals + ckpt + epochs)
    put(out, "metrics", "resumed.jsonl", steps + line(kind="resume", step=4, checkpoint="out/checkpoint-4") + steps)
    put(out, "metrics", "diverged.jsonl", line(kind="step", epoch=1, step=1, loss=1e308) + line(kind="step", epoch=1, step=2, loss=-1e308, lr=None))
    put(out, "metrics", "no_lr.jsonl", "".join(line(kind="step", epoch=1, step=s, loss=0.5) for s in range(1, 4)))
    put(out, "metrics", "bad.jsonl", steps[:60] + "\n{\"kind\":\"step\",\"epoch\":1}\n")


def main():
    out, assets = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        csvs = csv_seeds(out, assets, tmp)
        parquet_seeds(out, csvs, tmp)
        pickle_seeds(out, tmp)
        safetensors_seeds(out, tmp)
        checkpoint_seeds(out, tmp)
    config_seeds(out, assets)
    tokenizer_seeds(out, assets)
    token_cache_seed(out)
    metrics_seeds(out)
    for target in sorted(os.listdir(out)):
        files = os.listdir(os.path.join(out, target))
        print(f"{target}: {len(files)} seeds")


if __name__ == "__main__":
    main()

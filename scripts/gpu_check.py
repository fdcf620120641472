"""The Python half of scripts/gpu-check.sh (read that first): the random model and the data, the
PyTorch baseline run, the JSON line of a bertfit run, and the summary.

    gpu_check.py prepare  WORK VOCAB STEPS TINY
    gpu_check.py pytorch  WORK CASE SEQ BATCH PRECISION STEPS WARM DEVICE
    gpu_check.py bertfit  WORK CASE SEQ BATCH PRECISION STEPS WARM METRICS LOG [DDP_BACKEND_FLAG]
    gpu_check.py peak     JSON_FILE PEAK_FILE      (adds the polled GPU memory; prints the line)
    gpu_check.py summary  RESULTS_JSONL PEAK_TFLOPS

Both sides train on the same rows in the same order (file order, no shuffling), each batch padded to
its own longest example, max length SEQ. `prepare` also writes each batch's real token counts
(lengths.json), from which the model FLOPs of a run are computed.
"""
import csv
import json
import math
import os
import random
import re
import shutil
import sys
import time

# Sequence length -> (batch size, smallest and largest word count). Word counts are log-uniform in
# that range, so short texts dominate as in real data while a batch's longest usually reaches the
# max length: much of a padded batch is padding, which is what unpadded training saves. Each word is
# one vocab entry (one token), plus [CLS] and [SEP].
SHAPES = {128: (64, 4, 160), 512: (16, 20, 600)}


def data_path(work, seq):
    return os.path.join(work, f"data{seq}.csv")


def prepare(work, vocab, steps, tiny):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    model_dir = os.path.join(work, "model")
    vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    torch.manual_seed(0)
    if tiny:
        cfg = BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=256, num_labels=2)
    else:  # BERT-base
        cfg = BertConfig(vocab_size=vocab_size, num_labels=2)
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(model_dir)
    shutil.copy(vocab, os.path.join(model_dir, "vocab.txt"))
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        f.write('{"do_lower_case": true, "model_max_length": 512}')
    info = {"n_params": sum(p.numel() for p in model.parameters()), "layers": cfg.num_hidden_layers,
            "hidden": cfg.hidden_size, "lengths": {}}

    tok = BertTokenizerFast(vocab_file=os.path.join(model_dir, "vocab.txt"), do_lower_case=True)
    words = [w.strip() for w in open(vocab, encoding="utf-8") if w.strip().isalpha()][2000:12000]
    pools = (words[:100], words[100:200])
    rng = random.Random(0)
    for seq, (batch, lo, hi) in SHAPES.items():
        texts, labels = [], []
        for i in range(batch * steps):
            n = int(math.exp(rng.uniform(math.log(lo), math.log(hi + 1))))
            # Each label draws its words from a pool of its own of 100 words: every token carries
            # the label and each word's embedding is updated often, so that a random-init model can
            # learn it at this lr (one cue word among 10000 did not move a tiny model's loss from
            # 0.693 in 150 steps).
            labels.append(i % 2)
            texts.append(" ".join(rng.choice(pools[i % 2]) for _ in range(n)))
        with open(data_path(work, seq), "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label", "split"])
            w.writerows([t, l, "train"] for t, l in zip(texts, labels))
        lens = [len(ids) for ids in tok(texts, truncation=True, max_length=seq)["input_ids"]]
        info["lengths"][str(seq)] = [lens[s * batch:(s + 1) * batch] for s in range(steps)]
    with open(os.path.join(work, "lengths.json"), "w") as f:
        json.dump(info, f)


def work_stats(work, seq, warm, steps):
    """Real and padded tokens of steps warm+1..steps, and their model FLOPs: (6·N + 12·L·d·s) per
    token, N = all parameters (embeddings included, as issue 12 defines it), s = the token's own
    sequence length for the real work and the batch's longest for the padded layout."""
    info = json.load(open(os.path.join(work, "lengths.json")))
    n, layers, d = info["n_params"], info["layers"], info["hidden"]
    real = padded = flops = flops_padded = 0
    for lens in info["lengths"][str(seq)][warm:steps]:
        top = max(lens)
        real += sum(lens)
        padded += top * len(lens)
        flops += sum(s * (6 * n + 12 * layers * d * s) for s in lens)
        flops_padded += top * len(lens) * (6 * n + 12 * layers * d * top)
    return {"real_tokens": real, "padded_tokens": padded, "flops": flops, "flops_padded": flops_padded,
            "n_params": n}


def loss_fields(losses, steps):
    """Loss at steps 1, 100 and the last; whether every loss is finite and the mean of the last k
    steps is below the mean of the first k."""
    k = max(1, min(10, len(losses) // 3))
    return {"loss_1": losses[0] if losses else None,
            "loss_100": losses[99] if len(losses) >= 100 else None,
            "loss_last": losses[-1] if losses else None,
            "steps_done": len(losses),
            "finite": len(losses) == steps and all(math.isfinite(x) for x in losses),
            "falling": bool(losses) and sum(losses[-k:]) / k < sum(losses[:k]) / k}


def rate_fields(work, seq, batch, steps, warm, seconds_steady, seconds_all):
    """Throughput over steps warm+1..steps (steady: the first steps hold one-off start-up costs:
    CUDA context, cuBLAS handles, kernel loading) and over all steps."""
    st = work_stats(work, seq, warm, steps)
    return {"samples_per_s": batch * (steps - warm) / seconds_steady,
            "samples_per_s_all_steps": batch * steps / seconds_all,
            "real_tokens_per_s": st["real_tokens"] / seconds_steady,
            "padding_share": 1 - st["real_tokens"] / st["padded_tokens"],
            "model_tflops_per_s": st["flops"] / seconds_steady / 1e12,
            "padded_tflops_per_s": st["flops_padded"] / seconds_steady / 1e12,
            "n_params": st["n_params"], "warm_steps": warm}


def seconds_after(step_end, warm):
    """Seconds of steps warm+1..last from the end times of every step (seconds since step 1 began)."""
    return step_end[-1] - (step_end[warm - 1] if warm else 0.0)


def pytorch(work, case, seq, batch, precision, steps, warm, device):
    import torch
    from transformers import BertForSequenceClassification, BertTokenizerFast

    cuda = device == "cuda"
    if cuda and hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = "tf32"  # as bertfit's --tf32
    elif cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    if not cuda:
        torch.set_num_threads(os.cpu_count() or 1)
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    tok = BertTokenizerFast(vocab_file=os.path.join(work, "model", "vocab.txt"), do_lower_case=True)
    rows = list(csv.DictReader(open(data_path(work, seq), encoding="utf-8")))
    # Tokenized and collated before the clock starts (bertfit does it on a loader thread, ahead).
    batches = []
    for s in range(steps):
        b = rows[s * batch:(s + 1) * batch]
        enc = tok([r["text"] for r in b], truncation=True, max_length=seq, padding="longest", return_tensors="pt")
        enc["labels"] = torch.tensor([int(r["label"]) for r in b])
        batches.append({k: (v.pin_memory() if cuda else v) for k, v in enc.items()})
    model = BertForSequenceClassification.from_pretrained(os.path.join(work, "model"),
                                                          attn_implementation="sdpa").to(device)
    model.train()
    torch.manual_seed(42)  # dropout masks: the same run every time (bertfit's --seed default)
    # weight_decay 0: bertfit's --optim adamw default (torch's AdamW would decay by 0.01).
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0, fused=True)
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    # Each step's end: a CUDA event on the GPU (recording one does not wait), the clock on the CPU.
    if cuda:
        mark = lambda: torch.cuda.Event(enable_timing=True)
        begin = mark()
        begin.record()
    else:
        begin = time.perf_counter()
    ends = []
    losses = []  # kept on the device: reading each one would sync every step
    for b in batches:
        b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
        with torch.autocast(device, dtype=dt):
            loss = model(**b).loss
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.detach().float())
        if cuda:
            ends.append(mark())
            ends[-1].record()
        else:
            ends.append(time.perf_counter() - begin)
    if cuda:
        torch.cuda.synchronize()
        ends = [begin.elapsed_time(e) / 1000 for e in ends]
    rec = {"case": case, "side": "pytorch", "seq": seq, "batch": batch, "precision": precision, "device": device}
    rec.update(rate_fields(work, seq, batch, steps, warm, seconds_after(ends, warm), ends[-1]))
    if cuda:
        rec["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        rec["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    rec.update(loss_fields(torch.stack(losses).tolist(), steps))
    rec["step_end_s"] = [round(e, 6) for e in ends]
    print(json.dumps(rec))


def bertfit_warm_end(log, batch, steps, warm, total):
    """The first step at or after `warm` whose end time bertfit's log gives exactly, and that time.

    Run with --logging-steps 1: a progress line per step, carrying the running samples/s since the
    epoch began, so seconds = step · batch / rate. On CUDA bertfit reads the step losses in groups
    (every 32 steps, or 5 s) and prints the group's lines then, in a burst: only the last line of a
    burst is printed right when the GPU finished its step. A burst ends where the next line's time
    jumps by more than a quarter of the mean step time. (0, 0.0) when there is no such step."""
    times = {}
    for line in open(log, encoding="utf-8", errors="replace"):
        m = re.match(r"step (\d+)/\d+ .*, ([0-9.]+) samples/s", line)
        if m and float(m.group(2)) > 0:
            times[int(m.group(1))] = int(m.group(1)) * batch / float(m.group(2))
    gap = 0.25 * total / steps
    for s in range(max(warm, 1), steps):
        if s in times and s + 1 in times and times[s + 1] - times[s] > gap:
            return s, times[s]
    return 0, 0.0


def bertfit(work, case, seq, batch, precision, steps, warm, metrics, log, ddp_backend=None):
    recs = [json.loads(line) for line in open(metrics)]
    st = [r for r in recs if r["kind"] == "step"]
    ep = [r for r in recs if r["kind"] == "epoch"][-1]
    total = ep["train_seconds"]
    warm, warm_seconds = bertfit_warm_end(log, batch, steps, warm, total) if warm else (0, 0.0)
    rec = {"case": case, "side": "bertfit", "seq": seq, "batch": batch, "precision": precision}
    rec.update(rate_fields(work, seq, batch, steps, warm, total - warm_seconds, total))
    rec["samples_per_s_bertfit_epoch"] = ep["train_samples_per_second"]
    rec["data_wait_seconds"] = ep.get("data_wait_seconds")
    # PyTorch's rate over these very steps (bertfit's warm-up may end a few steps later).
    pt = os.path.join(work, f"pytorch-{precision}-{seq}.json")
    if os.path.exists(pt):
        ends = json.loads(open(pt).read().strip().splitlines()[-1])["step_end_s"]
        if len(ends) == steps:
            rec["pytorch_samples_per_s_same_steps"] = batch * (steps - warm) / seconds_after(ends, warm)
    # The same rows in the same order as the PyTorch run: 1-based rows of the file's data lines.
    rec["rows_in_file_order"] = [r["rows"] for r in st] == [
        list(range(s * batch + 1, (s + 1) * batch + 1)) for s in range(len(st))]
    if ddp_backend is not None:
        rec["ddp_backend_flag"] = ddp_backend or None
        # bertfit's epoch record carries allreduce_seconds only when it joined a process group.
        rec["joined_process_group"] = "allreduce_seconds" in ep
        rec["allreduce_seconds"] = ep.get("allreduce_seconds")
    rec.update(loss_fields([r["loss"] for r in st], steps))
    rec.update(own_mfu(recs, ep))
    print(json.dumps(rec))


def own_mfu(recs, epoch):
    """bertfit's own accounting from its metrics.jsonl: the epoch's useful FLOP/s and MFU, and the
    peak record they are against (the GEMM probe's rate, dtype, shape and whether it was measured
    now or read from the cache)."""
    peaks = [r for r in recs if r["kind"] == "peak"]
    out = {"own_flops_per_s": epoch.get("flops_per_second"), "own_mfu": epoch.get("mfu")}
    if peaks:
        p = peaks[0]
        out["own_peak"] = {k: p.get(k) for k in ("flops_per_second", "dtype", "device", "shape", "source")}
    return out


def machine_limit(device, bench_log, metrics, log, ops):
    """Issue 22's checks on the device, one JSON line: bench-peak's figures (each dtype reached a
    size whose product took long enough to time; on CUDA up to 8192), the run's peak record and MFU,
    the profile table (CUDA kernel rows on CUDA) and what --precision auto chose and why."""
    rec = {"case": "machine-limit", "device": device, "problems": []}
    probes = re.findall(r"^\s*(fp32|bf16|fp16) GEMM (\d+)x\d+x\d+: ([0-9.]+) TFLOP/s", open(bench_log).read(), re.M)
    rec["bench_peak"] = {d: {"size": int(n), "tflops": float(t)} for d, n, t in probes}
    if sorted(rec["bench_peak"]) != ["bf16", "fp16", "fp32"]:
        rec["problems"].append(f"bench-peak printed {sorted(rec['bench_peak'])}, not fp32, bf16 and fp16")
    recs = [json.loads(line) for line in open(metrics)]
    epochs = [r for r in recs if r["kind"] == "epoch"]
    rec.update(own_mfu(recs, epochs[-1] if epochs else {}))
    peak = rec.get("own_peak")
    if not peak or peak.get("device", "").split(":")[0] != device:
        rec["problems"].append(f"the run's peak record is not the {device}'s: {peak}")
    if not (rec["own_mfu"] or 0) > 0:
        rec["problems"].append(f"the run reported no MFU: {rec['own_mfu']}")
    text = open(log, encoding="utf-8", errors="replace").read()
    auto = re.search(r"--precision auto: .*", text)
    rec["precision_auto"] = auto.group(0) if auto else None
    if not auto:
        rec["problems"].append("the run did not say what --precision auto chose")
    elif device == "cuda" and not rec["precision_auto"].startswith("--precision auto: bf16"):
        rec["problems"].append("--precision auto did not choose bf16 on the GPU")
    if not os.path.exists(ops):
        rec["problems"].append(f"no profile table at {ops}")
    else:
        rows = [line.split() for line in open(ops).read().splitlines()[2:]]
        by_device = {}
        for row in rows:
            if len(row) >= 6:
                by_device[row[-5]] = by_device.get(row[-5], 0) + 1
        rec["profile_rows_by_device"] = by_device
        if device == "cuda" and not by_device.get("cuda"):
            rec["problems"].append(f"the profile has no CUDA rows: {by_device}")
        rec["profile_top"] = [" ".join(r[:-5]) + " " + r[-5] + " " + r[-2] for r in rows[:8] if len(r) >= 6]
    print(json.dumps(rec))


def peak(json_file, peak_file):
    """The JSON line of a run with the largest GPU memory nvidia-smi showed for it (see
    poll_memory in gpu-check.sh): `MiB how` where how is pid (its own line), all (every process on
    the GPU: a container's PID namespace can hide the pid) or none (never seen)."""
    rec = json.loads(open(json_file).read().strip().splitlines()[-1])
    fields = open(peak_file).read().split() if os.path.exists(peak_file) else []
    if len(fields) == 2 and fields[1] != "none":
        rec["peak_smi_mib"], rec["smi_match"] = float(fields[0]), fields[1]
    print(json.dumps(rec))


def summary(path, peak_tflops):
    """One line per case, then every failed check; exit status 1 when one failed."""
    rs = [json.loads(line) for line in open(path)]
    by = {r["case"]: r for r in rs}
    bad = []
    num = lambda x, f: "-" if x is None else format(x, f)
    pct = lambda x: f"{100 * x:5.1f}%" if x >= 1e-3 else f"{100 * x:.1e}%"  # the CPU smoke's are tiny
    print(f"\n== gpu-check: samples/s over the steps after the warm-up; MFU = model FLOPs of the real tokens "
          f"/ {peak_tflops:g} TFLOP/s (padded: counting the padding too); memory: nvidia-smi's peak (reserved "
          f"+ CUDA context, an upper bound), PyTorch's allocated/reserved; loss at step 1 / 100 / last ==")
    for r in rs:
        if "error" in r:
            print(f"{r['case']:<26} FAILED: {r['error']}")
            bad.append(f"{r['case']}: {r['error']}")
            continue
        if r["case"] == "machine-limit":
            probes = ", ".join(f"{d} {p['tflops']:.1f} TFLOP/s at {p['size']}" for d, p in r["bench_peak"].items())
            own = r.get("own_peak") or {}
            print(f"{'bench-peak':<26} {probes}")
            print(f"{'machine-limit':<26} own MFU {num(r['own_mfu'] and 100 * r['own_mfu'], '.1f')}% against "
                  f"{num(own.get('flops_per_second') and own['flops_per_second'] / 1e12, '.1f')} TFLOP/s "
                  f"({own.get('dtype')}, {own.get('shape')}, {own.get('source')}); {r.get('precision_auto')}; "
                  f"profile rows by device {r.get('profile_rows_by_device')}")
            for line in r.get("profile_top", []):
                print(f"{'':<26}   {line}")
            bad += [f"machine-limit: {p}" for p in r["problems"]]
            continue
        if "side" not in r:  # a pass/fail line (the cuda_ tests): its log holds the figures
            print(f"{r['case']:<26} passed (logs/{r['case']}.log)")
            continue
        if r["side"] == "pytorch":
            ratio = "(baseline)"
        elif "pytorch_samples_per_s_same_steps" in r:
            ratio = f"{r['samples_per_s'] / r['pytorch_samples_per_s_same_steps']:.2f}x pytorch"
        else:
            ratio = "no pytorch"
        mem = f"smi {num(r.get('peak_smi_mib'), '.0f')} MiB"
        if "peak_allocated_mib" in r:
            mem += f" alloc {r['peak_allocated_mib']:.0f} resv {r['peak_reserved_mib']:.0f}"
        checks = ("" if r["finite"] else " NOT-FINITE") + ("" if r["falling"] else " not-falling") + (
            " ROWS-DIFFER" if r.get("rows_in_file_order") is False else "")
        own = ""
        if r.get("own_mfu") is not None:
            own = f" (own MFU {pct(r['own_mfu'])} of {num((r.get('own_peak') or {}).get('flops_per_second', 0) / 1e12, '.3g')} TFLOP/s)"
        print(f"{r['case']:<26} {r['samples_per_s']:9.1f} samples/s {ratio:<14} "
              f"MFU {pct(r['model_tflops_per_s'] / peak_tflops)}{own} "
              f"(padded {pct(r['padded_tflops_per_s'] / peak_tflops)}) {mem}; "
              f"loss {num(r['loss_1'], '.4f')} / {num(r['loss_100'], '.4f')} / {num(r['loss_last'], '.4f')}{checks}")
        if r.get("rows_in_file_order") is False:
            bad.append(f"{r['case']}: bertfit's batches are not the file's rows in order (not PyTorch's batches)")
        if not r["finite"]:
            bad.append(f"{r['case']}: a loss is not finite, or steps are missing")
        if not r["falling"] and r["steps_done"] >= 50:
            bad.append(f"{r['case']}: the loss does not fall")
        if "joined_process_group" in r:
            plain = by.get(r["case"].replace("-ws1", "-padded"))
            vs = f"{r['samples_per_s'] / plain['samples_per_s']:.3f}x the plain run" if plain and "samples_per_s" in plain else "no plain run"
            how = ("joined a process group" if r["joined_process_group"] else
                   "joined NO process group: this bertfit runs WORLD_SIZE=1 as a single process, "
                   "so the collective backend was not exercised")
            ar = r.get("allreduce_seconds")
            print(f"{'':<26} world size 1, {'--ddp-backend ' + r['ddp_backend_flag'] if r['ddp_backend_flag'] else 'backend chosen by bertfit'}: {vs}; {how}"
                  + ("" if ar is None else f"; all-reduce {ar:.2f} s"))
    # CUDA's default layout (model/varlen.rs unpadded_by_default) is chosen from this line.
    layouts = []
    for r in rs:
        if r.get("side") == "bertfit" and r["case"].endswith("-unpadded") and "samples_per_s" in r:
            padded = by.get(r["case"].replace("-unpadded", "-padded"), {})
            if "samples_per_s" in padded:
                layouts.append(f"{r['case'][len('bertfit-'):-len('-unpadded')]} {r['samples_per_s'] / padded['samples_per_s']:.2f}x")
    if layouts:
        print(f"{'layout':<26} unpadded over padded samples/s: {', '.join(layouts)} "
              f"(above 1 in every case: make the packed layout CUDA's default)")
    for b in bad:
        print("CHECK FAILED:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "prepare":
        prepare(a[0], a[1], int(a[2]), a[3] == "1")
    elif cmd == "pytorch":
        pytorch(a[0], a[1], int(a[2]), int(a[3]), a[4], int(a[5]), int(a[6]), a[7])
    elif cmd == "bertfit":
        bertfit(a[0], a[1], int(a[2]), int(a[3]), a[4], int(a[5]), int(a[6]), a[7], a[8], a[9] if len(a) > 9 else None)
    elif cmd == "machine-limit":
        machine_limit(*a[:5])
    elif cmd == "peak":
        peak(a[0], a[1])
    elif cmd == "summary":
        sys.exit(summary(a[0], float(a[1])))
    else:
        sys.exit(f"unknown command {cmd}")

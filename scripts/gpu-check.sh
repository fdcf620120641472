#!/usr/bin/env bash
# scripts/gpu-check.sh: the GPU figures, for a machine with one NVIDIA GPU and PyTorch 2.11 installed
# (transformers too). It builds nothing: build the release binary here and carry it.
#
#   scripts/gpu-check.sh BERTFIT_BINARY VOCAB_TXT [STEPS=300]
#
# Trains a random-init BERT-base config (from a config.json written here: weights over 64 MiB
# cannot travel, and the compute is the same) at sequence length 128, batch 64, for STEPS steps:
# bertfit in bf16 and fp16 against PyTorch eager + SDPA + fused AdamW + torch.autocast doing the
# same, then a world-size-1 NCCL run against the plain run once bertfit has c10d. Prints, per case:
# samples/s, the ratio to PyTorch, peak GPU memory, and the loss at steps 1, 100 and STEPS (it must
# fall and stay finite). Under 8 minutes on an H200.
set -euo pipefail
BIN="${1:?usage: gpu-check.sh BERTFIT_BINARY VOCAB_TXT [STEPS]}"
VOCAB="${2:?usage: gpu-check.sh BERTFIT_BINARY VOCAB_TXT [STEPS]}"
STEPS="${3:-300}"
PY="${PYTHON:-python3}"
TORCH_LIB="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
WORK="${OUT:-/tmp}/gpu-check"
rm -rf "$WORK"; mkdir -p "$WORK"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

# A random BERT-base classifier folder and a synthetic dataset of 128-token texts.
"$PY" - "$WORK" "$VOCAB" "$STEPS" <<'PYEOF'
import os, random, shutil, sys
import torch
from transformers import BertConfig, BertForSequenceClassification
work, vocab, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
model_dir = os.path.join(work, "bert-base-random")
torch.manual_seed(0)
cfg = BertConfig(num_labels=2, attn_implementation="sdpa")
BertForSequenceClassification(cfg).save_pretrained(model_dir)
shutil.copy(vocab, os.path.join(model_dir, "vocab.txt"))
open(os.path.join(model_dir, "tokenizer_config.json"), "w").write('{"do_lower_case": true, "model_max_length": 512}')
words = [w.strip() for w in open(vocab, encoding="utf-8") if w.strip().isalpha()][2000:12000]
rng = random.Random(0)
rows = 64 * steps
with open(os.path.join(work, "data.csv"), "w", encoding="utf-8") as f:
    f.write("text,label,split\n")
    for i in range(rows + 256):
        label = i % 2
        text = " ".join(rng.choice(words) for _ in range(120)) + (" good" if label else " bad")
        f.write(f'"{text}",{label},{"train" if i < rows else "val"}\n')
PYEOF

run_bertfit() {  # name, extra flags
    local name=$1; shift
    local started=$(date +%s.%N)
    "$BIN" train --model "$WORK/bert-base-random" --data "$WORK/data.csv" --output-dir "$WORK/$name" \
        --overwrite --device cuda --epochs 1 --max-steps "$STEPS" --batch-size 64 --max-length 128 \
        --padding max-length --optim adamw --learning-rate 5e-5 --save-strategy no "$@" \
        > "$WORK/$name.log" 2>&1 || { tail -20 "$WORK/$name.log"; return 1; }
    "$PY" - "$WORK/$name/metrics.jsonl" "$name" "$started" "$STEPS" <<'PYEOF'
import json, sys, time
path, name, started, steps = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
recs = [json.loads(l) for l in open(path)]
st = [r for r in recs if r["kind"] == "step"]
ep = [r for r in recs if r["kind"] == "epoch"][-1]
loss = {s["step"]: s["loss"] for s in st}
print(json.dumps({"case": name, "samples_per_s": ep["train_samples_per_second"],
                  "loss_1": loss.get(1), "loss_100": loss.get(100), "loss_last": loss.get(steps),
                  "finite": all(s["loss"] == s["loss"] for s in st)}))
PYEOF
}

run_pytorch() {  # dtype
    "$PY" - "$WORK" "$1" "$STEPS" <<'PYEOF'
import csv, json, sys, time
import torch
from transformers import BertForSequenceClassification, BertTokenizerFast
work, dtype, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
dt = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
tok = BertTokenizerFast(vocab_file=f"{work}/bert-base-random/vocab.txt", do_lower_case=True)
rows = [r for r in csv.DictReader(open(f"{work}/data.csv", encoding="utf-8")) if r["split"] == "train"]
model = BertForSequenceClassification.from_pretrained(f"{work}/bert-base-random", attn_implementation="sdpa").cuda()
opt = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
scaler = torch.amp.GradScaler("cuda", enabled=dtype == "fp16")
torch.cuda.reset_peak_memory_stats()
losses, started = {}, None
for step in range(steps):
    if step == 1:
        torch.cuda.synchronize(); started = time.perf_counter()
    b = rows[step * 64:(step + 1) * 64]
    enc = tok([r["text"] for r in b], truncation=True, max_length=128, padding="max_length", return_tensors="pt").to("cuda")
    labels = torch.tensor([int(r["label"]) for r in b], device="cuda")
    with torch.autocast("cuda", dtype=dt):
        loss = torch.nn.functional.cross_entropy(model(**enc).logits, labels)
    opt.zero_grad()
    scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
    if step + 1 in (1, 100, steps):
        losses[step + 1] = loss.item()
torch.cuda.synchronize()
sps = 64 * (steps - 1) / (time.perf_counter() - started)
print(json.dumps({"case": f"pytorch-{dtype}", "samples_per_s": sps, "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                  "loss_1": losses.get(1), "loss_100": losses.get(100), "loss_last": losses.get(steps)}))
PYEOF
}

for p in bf16 fp16; do
    run_pytorch "$p" | tee -a "$WORK/results.jsonl"
    run_bertfit "bertfit-$p" --precision "$p" --tf32 | tee -a "$WORK/results.jsonl"
    run_bertfit "bertfit-$p-unpadded" --precision "$p" --tf32 --unpadded | tee -a "$WORK/results.jsonl"
done
"$PY" - "$WORK/results.jsonl" <<'PYEOF'
import json, sys
rs = {r["case"]: r for r in map(json.loads, open(sys.argv[1]))}
for p in ("bf16", "fp16"):
    base = rs.get(f"pytorch-{p}")
    for case in (f"bertfit-{p}", f"bertfit-{p}-unpadded"):
        if base and case in rs:
            print(f"{case}: {rs[case]['samples_per_s']:.1f} samples/s vs pytorch {base['samples_per_s']:.1f} = {rs[case]['samples_per_s'] / base['samples_per_s']:.2f}x")
PYEOF

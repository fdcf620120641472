"""Tiny random DeBERTa-v2/v3 models made by transformers itself, and their logits.

    make_tiny_deberta.py make --out DIR
        For each config (v3: relative attention with log buckets, p2c + c2p, shared attention key,
        no absolute positions, no token types, LayerNorm on the relative embeddings; v2: absolute
        positions added to the input, two token types, separate pos_key_proj/pos_query_proj, an
        embedding_size narrower than hidden_size) writes, under DIR/<name>/:
          cls/       DebertaV2ForSequenceClassification (DebertaV2Config + save_pretrained), its
                     weights perturbed so that no bias is zero and no LayerNorm is the identity;
          mlm/       DebertaV2ForMaskedLM of the same config (legacy `cls.predictions.*` head for v3,
                     `lm_predictions.*` for v2): no pooler, no classifier;
          base/      DebertaV2Model, whose keys have no `deberta.` prefix;
          expected.safetensors  input_ids, attention_mask, token_type_ids (right-padded, rows of
                     several lengths up to 12 so that relative positions reach the log buckets)
                     and cls/'s eval-mode logits; the same rows left-padded as left_*.
    make_tiny_deberta.py logits MODEL_DIR:INPUTS:OUT [...]
        AutoModelForSequenceClassification.from_pretrained(MODEL_DIR) in eval mode: writes its
        logits to OUT and prints the class it built, one JSON line per model.
"""
import argparse
import json
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2Model

VOCAB = 120
LABELS = {0: "neg", 1: "neu", 2: "pos"}
LENGTHS = [12, 7, 1, 4, 12]


def configs():
    common = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=40, id2label=LABELS,
                  label2id={v: k for k, v in LABELS.items()}, relative_attention=True)
    return {
        # DeBERTa-v3's shape (microsoft/deberta-v3-base's config keys). position_buckets 8 and
        # max_relative_positions 16: |i - j| >= 5 goes through make_log_bucket_position's log part.
        "v3": DebertaV2Config(position_buckets=8, max_relative_positions=16, pos_att_type=["p2c", "c2p"],
                              position_biased_input=False, type_vocab_size=0, share_att_key=True,
                              norm_rel_ebd="layer_norm", **common),
        # DeBERTa-v2's older shape: absolute positions, token types, no buckets (a span of
        # max_relative_positions), separate position projections, no rel-embedding LayerNorm, and
        # an embed_proj from a narrower embedding; legacy=False gives the lm_predictions head.
        "v2": DebertaV2Config(max_relative_positions=6, pos_att_type="p2c|c2p", position_biased_input=True,
                              type_vocab_size=2, share_att_key=False, embedding_size=24, legacy=False,
                              pooler_hidden_act="tanh", **common),
    }


def inputs(config, seed):
    g = torch.Generator().manual_seed(seed)
    pad = config.pad_token_id
    width = max(LENGTHS)
    ids = torch.randint(3, VOCAB, (len(LENGTHS), width), generator=g)
    mask = (torch.arange(width)[None, :] < torch.tensor(LENGTHS)[:, None]).long()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad))
    types = torch.zeros_like(ids)
    if config.type_vocab_size > 1:
        types[:, width // 2:] = 1
        types = types * mask
    return ids, mask, types


def perturb(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        # The relative embeddings at HF's init (std 0.02) barely move the scores: make the
        # c2p/p2c terms as large as the content term, so that dropping one is seen in the logits.
        for name, p in model.named_parameters():
            if name.endswith("rel_embeddings.weight"):
                p.normal_(0, 1.0)
            # Logits of order 1 (not HF's init, ~0.05), so that an error in the encoder shows
            # in them at that scale rather than shrunk by the head.
            if name in ("pooler.dense.weight", "classifier.weight"):
                p.normal_(0, 0.5)


def forward(model, ids, mask, types):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits


def make(out):
    for seed, (name, config) in enumerate(configs().items()):
        d = os.path.join(out, name)
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config)
        perturb(model, 100 + seed)
        model.save_pretrained(os.path.join(d, "cls"))
        ids, mask, types = inputs(config, seed)
        logits = forward(model, ids, mask, types)
        # The same rows left-padded: relative positions count from each row's first real token.
        shift = mask.size(1) - mask.sum(1)
        roll = lambda x: torch.stack([r.roll(int(n)) for r, n in zip(x, shift)])
        left = [roll(ids), roll(mask), roll(types)]
        save_file({"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "logits": logits.contiguous(),
                   "left_input_ids": left[0], "left_attention_mask": left[1], "left_token_type_ids": left[2],
                   "left_logits": forward(model, *left).contiguous()},
                  os.path.join(d, "expected.safetensors"))
        DebertaV2ForMaskedLM(config).save_pretrained(os.path.join(d, "mlm"))
        DebertaV2Model(config).save_pretrained(os.path.join(d, "base"))
        print(name, type(model).__name__, logits.abs().max().item())


def logits(job):
    model_dir, inputs_file, out = job.split(":")
    t = load_file(inputs_file)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    result = forward(model, t["input_ids"], t["attention_mask"], t["token_type_ids"])
    save_file({"logits": result.contiguous()}, out)
    print(json.dumps({"model": model_dir, "class": type(model).__name__}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", required=True)
    lg = sub.add_parser("logits")
    lg.add_argument("jobs", nargs="+", help="MODEL_DIR:INPUTS:OUT")
    a = ap.parse_args()
    if a.cmd == "make":
        make(a.out)
    else:
        for job in a.jobs:
            logits(job)


if __name__ == "__main__":
    main()

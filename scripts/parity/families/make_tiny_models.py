"""Tiny random models of each family bertfit supports, made by transformers itself, and their logits.

    make_tiny_models.py make --out DIR
        For each family (bert, roberta, xlm-roberta, electra, distilbert) writes, under DIR/<family>/:
          cls/       the family's *ForSequenceClassification (config class + save_pretrained), its
                     weights perturbed so that no bias is zero and no LayerNorm is the identity;
          mlm/       the same config saved from the masked-LM / pre-training class (BertForMaskedLM,
                     RobertaForMaskedLM, XLMRobertaForMaskedLM, ElectraForPreTraining,
                     DistilBertForMaskedLM): no classification head, another task's head instead;
          base/      the base model (BertModel...), whose keys have no `bert.`/`roberta.` prefix;
          expected.safetensors  input_ids, attention_mask, token_type_ids (right-padded with the
                     family's pad id, rows of several lengths) and cls/'s eval-mode logits.
    make_tiny_models.py logits MODEL_DIR:INPUTS:OUT [...]
        AutoModelForSequenceClassification.from_pretrained(MODEL_DIR) in eval mode on INPUTS' ids,
        mask and token types: writes its logits to OUT and prints the class it built, one JSON line
        per model (several models in one call: importing torch is most of the time).
"""
import argparse
import json
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    ElectraConfig,
    ElectraForPreTraining,
    RobertaConfig,
    XLMRobertaConfig,
)

VOCAB = 120
MAX_POS = 40
LABELS = {0: "neg", 1: "neu", 2: "pos"}
LENGTHS = [12, 7, 1, 4, 12]


def configs():
    common = dict(vocab_size=VOCAB, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=MAX_POS, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    return {
        "bert": BertConfig(hidden_size=32, **common),
        # As the published checkpoints: one token type, pad id 1, positions after it.
        "roberta": RobertaConfig(hidden_size=32, type_vocab_size=1, **common),
        "xlm-roberta": XLMRobertaConfig(hidden_size=48, type_vocab_size=1, **common),
        # embedding_size != hidden_size, so electra.embeddings_project exists.
        "electra": ElectraConfig(embedding_size=24, hidden_size=32, **common),
        "distilbert": DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                       max_position_embeddings=MAX_POS, activation="gelu",
                                       id2label=LABELS, label2id={v: k for k, v in LABELS.items()}),
    }


def inputs(config, seed):
    g = torch.Generator().manual_seed(seed)
    pad = config.pad_token_id
    width = max(LENGTHS)
    ids = torch.randint(3, VOCAB, (len(LENGTHS), width), generator=g)
    ids[ids == pad] = pad + 3
    mask = (torch.arange(width)[None, :] < torch.tensor(LENGTHS)[:, None]).long()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad))
    types = torch.zeros_like(ids)
    if getattr(config, "type_vocab_size", 1) > 1:
        types[:, width // 2:] = 1  # a second segment, so token types matter
        types = types * mask
    return ids, mask, types


def perturb(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)


def forward(model, ids, mask, types=None):
    """Eval-mode logits; token types only to the families that take them."""
    model.eval()
    kwargs = dict(input_ids=ids, attention_mask=mask)
    if types is not None and model.config.model_type not in ("distilbert", "modernbert"):
        kwargs["token_type_ids"] = types
    with torch.no_grad():
        return model(**kwargs).logits


def make(out):
    for seed, (family, config) in enumerate(configs().items()):
        d = os.path.join(out, family)
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config)
        perturb(model, 100 + seed)
        model.save_pretrained(os.path.join(d, "cls"))
        ids, mask, types = inputs(config, seed)
        logits = forward(model, ids, mask, types)
        save_file({"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "logits": logits.contiguous()},
                  os.path.join(d, "expected.safetensors"))
        mlm_class = ElectraForPreTraining if family == "electra" else AutoModelForMaskedLM
        mlm = mlm_class.from_config(config) if mlm_class is AutoModelForMaskedLM else mlm_class(config)
        mlm.save_pretrained(os.path.join(d, "mlm"))
        AutoModel.from_config(config).save_pretrained(os.path.join(d, "base"))
        print(family, type(model).__name__, type(mlm).__name__)


def logits(job, **load_kwargs):
    """One `MODEL_DIR:INPUTS:OUT` job: AutoModelForSequenceClassification's logits on INPUTS."""
    model_dir, inputs_file, out = job.split(":")
    t = load_file(inputs_file)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, **load_kwargs)
    result = forward(model, t["input_ids"], t["attention_mask"], t.get("token_type_ids"))
    save_file({"logits": result.contiguous()}, out)
    print(json.dumps({"model": model_dir, "class": type(model).__name__}))


def main(make=make, **load_kwargs):
    """The `make` / `logits` command line, shared by the family scripts beside this one."""
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
            logits(job, **load_kwargs)


if __name__ == "__main__":
    main()

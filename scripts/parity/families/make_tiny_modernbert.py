"""Tiny random ModernBERT models made by transformers itself, and their logits.

    make_tiny_modernbert.py make --out DIR
        For each classifier pooling ("cls", "mean") writes, under DIR/<pooling>/:
          cls/       ModernBertForSequenceClassification (ModernBertConfig + save_pretrained): hidden 32,
                     3 layers (layer 0 global, 1 and 2 local), local_attention 4 (each token sees the
                     keys at most 2 away, so rows of up to 12 tokens are cut), its weights perturbed
                     so that no bias is zero and no LayerNorm is the identity. "cls" has every bias
                     (norm_bias, attention_bias, mlp_bias, classifier_bias true) and the config.json
                     of transformers 5 (layer_types, rope_parameters); "mean" has none (the
                     published checkpoints' choice) and the older keys (global_attn_every_n_layers,
                     global_rope_theta, local_rope_theta), with other rotary bases;
          mlm/       the same config saved from ModernBertForMaskedLM: `head.*` and `decoder.bias`;
          base/      ModernBertModel: no `model.` prefix, no head;
          expected.safetensors  input_ids, attention_mask, token_type_ids (zeros: ModernBERT has
                     none), right-padded rows of several lengths, and cls/'s eval-mode logits; the
                     same for left-padded rows (left_*); and init_mlm.* / init_base.*: the head and
                     classifier AutoModelForSequenceClassification.from_pretrained(mlm/ or base/)
                     holds after torch.manual_seed(7) (what it loaded and what it initialised).
        Attention runs through attn_implementation="sdpa" (HF's default, what bertfit mirrors: a
        boolean mask, the attention dropout inside scaled_dot_product_attention).
    make_tiny_modernbert.py logits MODEL_DIR:INPUTS:OUT [...]
        AutoModelForSequenceClassification.from_pretrained(MODEL_DIR) in eval mode on INPUTS' ids
        and mask: writes its logits to OUT and prints the class it built, one JSON line per model.
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    ModernBertConfig,
)

import make_tiny_models  # the shared command line and forward (this folder)
from make_tiny_models import forward

VOCAB = 120
LABELS = {0: "neg", 1: "neu", 2: "pos"}
LENGTHS = [12, 7, 1, 4, 12]
IMPLEMENTATION = "sdpa"
INIT_SEED = 7


def config(pooling):
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                  num_attention_heads=4, max_position_embeddings=64, local_attention=4,
                  pad_token_id=0, bos_token_id=1, cls_token_id=1, eos_token_id=2, sep_token_id=2,
                  classifier_pooling=pooling, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
                  # Dropouts do nothing in eval; bertfit's training runs on these models use them.
                  embedding_dropout=0.1, attention_dropout=0.1, mlp_dropout=0.1, classifier_dropout=0.1)
    if pooling == "cls":
        return ModernBertConfig(norm_bias=True, attention_bias=True, mlp_bias=True, classifier_bias=True,
                                classifier_activation="silu", **common)
    return ModernBertConfig(global_attn_every_n_layers=3, global_rope_theta=5000.0, local_rope_theta=300.0,
                            hidden_activation="gelu_pytorch_tanh", **common)


def configs():
    """The two test configs by pooling (scripts/parity/families/training.py reads them by key)."""
    return {pooling: config(pooling) for pooling in ("cls", "mean")}


def old_style(path):
    """config.json with the keys the published checkpoints have instead of transformers 5's."""
    with open(path) as f:
        c = json.load(f)
    c.pop("layer_types")
    rope = c.pop("rope_parameters")
    c["global_attn_every_n_layers"] = 3
    c["global_rope_theta"] = rope["full_attention"]["rope_theta"]
    c["local_rope_theta"] = rope["sliding_attention"]["rope_theta"]
    with open(path, "w") as f:
        json.dump(c, f, indent=2)


def inputs(seed, left=False):
    g = torch.Generator().manual_seed(seed)
    width = max(LENGTHS)
    ids = torch.randint(3, VOCAB, (len(LENGTHS), width), generator=g)
    positions = torch.arange(width)[None, :]
    lengths = torch.tensor(LENGTHS)[:, None]
    mask = (positions >= width - lengths) if left else (positions < lengths)
    mask = mask.long()
    ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))
    return ids, mask


def perturb(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)



def make(out):
    for seed, pooling in enumerate(["cls", "mean"]):
        d = os.path.join(out, pooling)
        c = config(pooling)
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(c, attn_implementation=IMPLEMENTATION)
        perturb(model, 100 + seed)
        model.save_pretrained(os.path.join(d, "cls"))
        ids, mask = inputs(seed)
        left_ids, left_mask = inputs(seed, left=True)
        tensors = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
                   "logits": forward(model, ids, mask).contiguous(),
                   "left_input_ids": left_ids, "left_attention_mask": left_mask,
                   "left_logits": forward(model, left_ids, left_mask).contiguous()}
        mlm = AutoModelForMaskedLM.from_config(c)
        perturb(mlm, 200 + seed)
        mlm.save_pretrained(os.path.join(d, "mlm"))
        AutoModel.from_config(c).save_pretrained(os.path.join(d, "base"))
        # What from_pretrained initialises, from seed INIT_SEED: the classifier for the masked-LM
        # checkpoint (its head is kept), head and classifier for the base model's.
        for kind in ["mlm", "base"]:
            torch.manual_seed(INIT_SEED)
            loaded = AutoModelForSequenceClassification.from_pretrained(os.path.join(d, kind))
            for name, p in loaded.state_dict().items():
                if name.startswith(("head.", "classifier.")):
                    tensors[f"init_{kind}.{name}"] = p.contiguous()
        save_file(tensors, os.path.join(d, "expected.safetensors"))
        if pooling == "mean":
            for kind in ["cls", "mlm", "base"]:
                old_style(os.path.join(d, kind, "config.json"))
        print(pooling, type(model).__name__, model.config._attn_implementation, type(mlm).__name__)


if __name__ == "__main__":
    make_tiny_models.main(make, attn_implementation=IMPLEMENTATION)

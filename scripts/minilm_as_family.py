"""Rewrite the real all-MiniLM-L6-v2 weights (a BERT) in the tensor layout of another family.

Why: no package on the registries we can reach ships real pretrained weights of DistilBERT,
RoBERTa, XLM-RoBERTa or ELECTRA (docs/real-weights.md says what was searched). These four run the
same post-LayerNorm encoder as BERT, so one real BERT can be written in each family's layout
with the same function: this exercises each family's loader and fine-tuning on real, trained
weights (not random ones). It is NOT that family's own pretraining, and accuracies say nothing
about how e.g. roberta-base would do. DeBERTa-v2 and ModernBERT compute attention differently
(relative positions, rotary), so no BERT can be written as them.

What changes per family (the encoder layers are copied as they are):
  distilbert   no token type embedding: BERT's type-0 row is added to every position row (exact
               for single texts, which get type 0); layer names q_lin/k_lin/v_lin/out_lin,
               sa_layer_norm, ffn.lin1/lin2, output_layer_norm.
  roberta,     position ids count from pad_token_id + 1 (pad is id 0 in this vocabulary), so the
  xlm-roberta  position table gets one zero row in front; one token type row (type 0).
  electra      the same names as BERT under `electra.`; embedding_size = hidden_size, so no
               embeddings_project.
The BERT pooler is dropped (no family here has one). The tokenizer stays BERT's uncased WordPiece
(vocab.txt, [CLS]/[SEP]/[PAD]); tokenizer_config.json says whether token type ids are returned as
the family's own tokenizer would (only ELECTRA's does).

Each folder is checked with transformers before it is kept: the family's AutoModel and the
original BertModel must give the same last hidden state on a few sentences.

Not part of the test suite (it needs the 90 MB MiniLM folder from scripts/setup.sh).
Usage: python scripts/minilm_as_family.py OUT_DIR [FAMILY...]   (default: all four)
"""

import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

FAMILIES = ("distilbert", "roberta", "xlm-roberta", "electra")
SENTENCES = [
    "How did serfdom develop in and then leave Russia ?",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005.",
    "ok",
]


def source_dir():
    assets = os.environ.get("BERTFIT_ASSETS") or sys.exit("source scripts/env.sh first (BERTFIT_ASSETS)")
    return os.path.join(assets, "all-MiniLM-L6-v2")


def bert_layer(sd, i):
    p = f"encoder.layer.{i}."
    return {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}


def distilbert_state(sd, n_layers):
    type0 = sd["embeddings.token_type_embeddings.weight"][0]
    out = {
        "distilbert.embeddings.word_embeddings.weight": sd["embeddings.word_embeddings.weight"],
        "distilbert.embeddings.position_embeddings.weight": (
            sd["embeddings.position_embeddings.weight"] + type0
        ),
        "distilbert.embeddings.LayerNorm.weight": sd["embeddings.LayerNorm.weight"],
        "distilbert.embeddings.LayerNorm.bias": sd["embeddings.LayerNorm.bias"],
    }
    names = {
        "attention.self.query": "attention.q_lin",
        "attention.self.key": "attention.k_lin",
        "attention.self.value": "attention.v_lin",
        "attention.output.dense": "attention.out_lin",
        "attention.output.LayerNorm": "sa_layer_norm",
        "intermediate.dense": "ffn.lin1",
        "output.dense": "ffn.lin2",
        "output.LayerNorm": "output_layer_norm",
    }
    for i in range(n_layers):
        for k, v in bert_layer(sd, i).items():
            module, param = k.rsplit(".", 1)
            out[f"distilbert.transformer.layer.{i}.{names[module]}.{param}"] = v
    return out


def bert_like_state(sd, prefix, n_layers, roberta):
    out = {}
    for k, v in sd.items():
        if k.startswith("pooler.") or k == "embeddings.position_ids":
            continue
        if roberta and k == "embeddings.position_embeddings.weight":
            v = torch.cat([torch.zeros_like(v[:1]), v])  # row pad_token_id (0) is never attended
        if roberta and k == "embeddings.token_type_embeddings.weight":
            v = v[:1]
        out[f"{prefix}.{k}"] = v
    assert sum(k.startswith(f"{prefix}.encoder.layer.") for k in out) == 16 * n_layers
    return out


def family_config(bert, family):
    common = {
        "vocab_size": bert["vocab_size"],
        "pad_token_id": bert["pad_token_id"],
        "initializer_range": 0.02,
    }
    if family == "distilbert":
        return {
            **common,
            "model_type": "distilbert",
            "architectures": ["DistilBertModel"],
            "dim": bert["hidden_size"],
            "hidden_dim": bert["intermediate_size"],
            "n_layers": bert["num_hidden_layers"],
            "n_heads": bert["num_attention_heads"],
            "max_position_embeddings": bert["max_position_embeddings"],
            "activation": "gelu",
            "dropout": bert["hidden_dropout_prob"],
            "attention_dropout": bert["attention_probs_dropout_prob"],
            "seq_classif_dropout": 0.2,
            "sinusoidal_pos_embds": False,
        }
    cfg = {k: bert[k] for k in (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
        "hidden_dropout_prob", "attention_probs_dropout_prob", "layer_norm_eps", "max_position_embeddings",
        "type_vocab_size")}
    cfg.update(common)
    if family in ("roberta", "xlm-roberta"):
        arch = "RobertaModel" if family == "roberta" else "XLMRobertaModel"
        cfg.update(model_type=family, architectures=[arch], type_vocab_size=1,
                   max_position_embeddings=bert["max_position_embeddings"] + bert["pad_token_id"] + 1,
                   bos_token_id=101, eos_token_id=102)
    else:
        cfg.update(model_type="electra", architectures=["ElectraModel"], embedding_size=bert["hidden_size"])
    return cfg


def tokenizer_config(family):
    tc = json.load(open(os.path.join(source_dir(), "tokenizer_config.json")))
    tc.pop("name_or_path", None)
    classes = {"distilbert": "DistilBertTokenizer", "electra": "ElectraTokenizer"}
    tc["tokenizer_class"] = classes.get(family, "BertTokenizer")
    # Only ELECTRA's own tokenizer returns token type ids; RoBERTa's, XLM-R's and DistilBERT's do not.
    types = ["token_type_ids"] if family == "electra" else []
    tc["model_input_names"] = ["input_ids", *types, "attention_mask"]
    return tc


def write_family(out_dir, family, sd, bert_cfg):
    n = bert_cfg["num_hidden_layers"]
    if family == "distilbert":
        state = distilbert_state(sd, n)
    else:
        prefix = {"roberta": "roberta", "xlm-roberta": "roberta", "electra": "electra"}[family]
        state = bert_like_state(sd, prefix, n, roberta=family != "electra")
    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    weights = {k: v.contiguous() for k, v in state.items()}
    save_file(weights, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    json.dump(family_config(bert_cfg, family), open(os.path.join(tmp, "config.json"), "w"), indent=2)
    json.dump(tokenizer_config(family), open(os.path.join(tmp, "tokenizer_config.json"), "w"), indent=2)
    for f in ("vocab.txt", "special_tokens_map.json"):
        shutil.copy(os.path.join(source_dir(), f), tmp)
    return tmp


def check_same_function(folder, family):
    """The converted folder, read by transformers, computes what the original BertModel does."""
    from transformers import AutoModel, AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(folder)
    batch = tok(SENTENCES, padding=True, return_tensors="pt")
    has_types = "token_type_ids" in batch
    assert has_types == (family == "electra"), f"{family}: token_type_ids returned: {has_types}"
    ref = BertModel.from_pretrained(source_dir(), add_pooling_layer=False).eval()
    model = AutoModel.from_pretrained(folder).eval()
    assert model.config.model_type == family, model.config.model_type
    with torch.no_grad():
        want = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        got = model(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    diff = (want - got).abs()[mask].max().item()
    print(f"{family}: {type(model).__name__} vs BertModel, max |diff| over real tokens = {diff:.2e}")
    assert diff < 1e-4, f"{family}: not the same function ({diff})"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out_root, families = sys.argv[1], sys.argv[2:] or list(FAMILIES)
    sd = load_file(os.path.join(source_dir(), "model.safetensors"))
    bert_cfg = json.load(open(os.path.join(source_dir(), "config.json")))
    for family in families:
        if family not in FAMILIES:
            sys.exit(f"unknown family {family!r}: one of {', '.join(FAMILIES)}")
        final = os.path.join(out_root, family)
        tmp = write_family(final, family, sd, bert_cfg)
        check_same_function(tmp, family)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Training speed per encoder family: bertfit's default against PyTorch eager (transformers'
`AutoModelForSequenceClassification` in scripts/reference_train.py) on the same batches.

For each family a base model of one size (6 layers, hidden 384, 12 heads, feed-forward 1536:
MiniLM's shape, so the families compare with each other and with BENCHMARKS.md's MiniLM figures) is
made by transformers from the family's config class with random weights (`AutoModel.from_config`,
`save_pretrained`: no classification head, so both trainers initialise it as HF does), with a
tokenizer of the family's kind trained on the movie texts (scripts/parity/families/make_tokenizers.py,
VOCAB pieces). Then scripts/bench_cpu.py runs each folder with `--trainers pytorch,bertfit`: the same
rows, one epoch, each batch padded to its longest row, lengths 128 and 512. Prints bench_cpu.py's
JSON lines with a "family" key added. Run through scripts/bench-families.sh (sets up and builds).
Random weights train at the same speed as real ones; the accuracy here means nothing.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "parity", "families"))
import make_tokenizers  # noqa: E402

VOCAB = 8000
SIZE = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


def config(family, tok):
    """The family's config class at SIZE, its special ids taken from the tokenizer."""
    import transformers as t

    ids = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id)
    if family == "bert":
        return t.BertConfig(**SIZE, **ids)
    if family in ("roberta", "xlm-roberta"):
        cls = t.RobertaConfig if family == "roberta" else t.XLMRobertaConfig
        return cls(**SIZE, **ids, max_position_embeddings=514, type_vocab_size=1,
                   bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if family == "electra":
        return t.ElectraConfig(**SIZE, **ids, embedding_size=384)
    if family == "distilbert":
        return t.DistilBertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, dim=384, n_layers=6,
                                  n_heads=12, hidden_dim=1536, activation="gelu")
    if family == "deberta-v2":
        # DeBERTa-v3's shape (as deberta-v3-xsmall, at 6 layers).
        return t.DebertaV2Config(**SIZE, **ids, relative_attention=True, position_buckets=256,
                                 max_relative_positions=-1, pos_att_type=["p2c", "c2p"],
                                 position_biased_input=False, type_vocab_size=0, norm_rel_ebd="layer_norm",
                                 share_att_key=True, max_position_embeddings=512)
    if family == "modernbert":
        # GeGLU: Wi is 2 x intermediate wide; 1152 keeps the MLP's weights near SIZE's.
        return t.ModernBertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                  intermediate_size=1152, local_attention=128, global_attn_every_n_layers=3,
                                  max_position_embeddings=8192, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                  cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                                  bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    sys.exit(f"unknown family {family!r}")


def make_model(family, texts, folder):
    from transformers import AutoModel

    makers = dict(make_tokenizers.FAMILIES, bert=make_tokenizers.wordpiece("BertTokenizer", True))
    tok = makers[family](texts)
    tok.save_pretrained(folder)
    AutoModel.from_config(config(family, tok)).save_pretrained(folder)


def main():
    assets = os.environ.get("BERTFIT_ASSETS", "")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="bert,roberta,xlm-roberta,electra,distilbert,deberta-v2,modernbert")
    p.add_argument("--movies", default=os.path.join(assets, "data", "movies.csv"))
    p.add_argument("--lengths", default="128,512")
    p.add_argument("--rows-128", default="160")
    p.add_argument("--rows-512", default="48")
    p.add_argument("--threads", default="2")
    args = p.parse_args()

    make_tokenizers.VOCAB = VOCAB
    texts = [t for col in make_tokenizers.read_texts([args.movies]) for t in col][::make_tokenizers.TRAIN_EVERY]
    work = tempfile.mkdtemp(prefix="bertfit-bench-families-")
    for family in args.families.split(","):
        folder = os.path.join(work, family)
        make_model(family, texts, folder)
        cmd = [sys.executable, os.path.join(HERE, "bench_cpu.py"), "--model", folder, "--movies", args.movies,
               "--trainers", "pytorch,bertfit", "--batch-sizes", "16", "--lengths", args.lengths,
               "--rows-128", args.rows_128, "--rows-512", args.rows_512, "--threads", args.threads]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            record = json.loads(line)
            if record.get("kind") in ("case", "machine"):
                print(json.dumps({"family": family, **record}), flush=True)


if __name__ == "__main__":
    main()

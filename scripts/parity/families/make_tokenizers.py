#!/usr/bin/env python3
"""Tiny tokenizers of each encoder family, trained on the test datasets' text, and transformers'
encodings of every row with them: the reference for bertfit's tokenizer parity test
(tests/tokenize_families.rs).

Usage:

    python scripts/parity/families/make_tokenizers.py --csv A.csv --csv B.csv ... --max-length N --out DIR

For each family a vocabulary is trained with the Python `tokenizers` library on the `text` column of
the CSVs (every TRAIN_EVERY-th row), handed to that family's transformers tokenizer class and saved with `save_pretrained` into
DIR/<family>/ (tokenizer.json, tokenizer_config.json, ...). That folder is then loaded back with
`AutoTokenizer.from_pretrained` (what a user of transformers gets) and every row is encoded:

- DIR/texts.jsonl: the inputs, one {"text"} or {"text", "text_pair"} a line (each CSV's rows, then
  each row paired with the next row of its CSV, the last with the first);
- DIR/<family>/reference.jsonl: one {"input_ids", "token_type_ids"} a line in the same order, from
  the batched call `tokenizer(texts, pairs, truncation=True, max_length=N)`; token_type_ids is null
  where the family's tokenizer returns none (`model_input_names` without token_type_ids).

The families (transformers 5 class, tokenizers model):
  roberta     RobertaTokenizer       byte-level BPE, <s> A </s></s> B </s>
  xlm-roberta XLMRobertaTokenizer    SentencePiece-style unigram (Metaspace), <s> A </s></s> B </s>
  deberta-v2  DebertaV2Tokenizer     SentencePiece-style unigram, [CLS] A [SEP] B [SEP] with types
  modernbert  PreTrainedTokenizerFast byte-level BPE as ModernBERT's (OLMo's) tokenizer.json, no types
  distilbert  DistilBertTokenizer    WordPiece (vocab.txt), no types
  electra     ElectraTokenizer       WordPiece (vocab.txt), with types

Prints one line per family: how many rows were truncated (the test wants some but not all).
"""

import argparse
import csv
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Encoding 260k texts is most of the run: on all cores (the test runner sets it to false).
os.environ["TOKENIZERS_PARALLELISM"] = "true"

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from tokenizers.implementations import (  # noqa: E402
    BertWordPieceTokenizer,
    ByteLevelBPETokenizer,
    SentencePieceUnigramTokenizer,
)

VOCAB = 1000
# Vocabularies are trained on every TRAIN_EVERY-th text (unigram training is slow); all are encoded.
TRAIN_EVERY = 4


def read_texts(paths):
    """Each CSV's `text` column, in file order."""
    columns = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if "text" not in (reader.fieldnames or []):
                sys.exit(f"{path}: no 'text' column (columns: {reader.fieldnames})")
            columns.append([row["text"] for row in reader])
    return columns


def unigram_vocab(texts, specials, mask):
    """A SentencePiece-style unigram vocabulary [(piece, score)], `specials` first, `mask` last."""
    tok = SentencePieceUnigramTokenizer()
    tok.train_from_iterator(texts, vocab_size=VOCAB, special_tokens=specials, unk_token=specials[-1])
    vocab = [tuple(v) for v in json.loads(tok.to_str())["model"]["vocab"]]
    # transformers finds the unknown token by (token, 0.0) in the list.
    return [(p, 0.0 if p in specials else s) for p, s in vocab] + [(mask, 0.0)]


def roberta(texts):
    from transformers import RobertaTokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(texts, vocab_size=VOCAB, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    model = json.loads(tok.to_str())["model"]
    return RobertaTokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]])


def xlm_roberta(texts):
    from transformers import XLMRobertaTokenizer

    # XLM-R's layout: <s> <pad> </s> <unk> first, <mask> last (transformers fixes unk_id at 3).
    return XLMRobertaTokenizer(vocab=unigram_vocab(texts, ["<s>", "<pad>", "</s>", "<unk>"], "<mask>"))


def deberta_v2(texts):
    from transformers import DebertaV2Tokenizer

    # DeBERTa-v3's layout: [PAD] [CLS] [SEP] [UNK] first, [MASK] last; cased, no punctuation split.
    vocab = unigram_vocab(texts, ["[PAD]", "[CLS]", "[SEP]", "[UNK]"], "[MASK]")
    return DebertaV2Tokenizer(vocab=vocab, do_lower_case=False, split_by_punct=False)


def modernbert(texts):
    """ModernBERT ships OLMo's byte-level BPE as a plain tokenizer.json (PreTrainedTokenizerFast)
    with BERT's special tokens and template, and no token types."""
    from transformers import PreTrainedTokenizerFast

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask"],
    )


def wordpiece(cls_name, lower):
    def make(texts):
        import transformers

        tok = BertWordPieceTokenizer(lowercase=lower)
        tok.train_from_iterator(texts, vocab_size=VOCAB)
        vocab = json.loads(tok.to_str())["model"]["vocab"]
        return getattr(transformers, cls_name)(vocab=vocab, do_lower_case=lower)

    return make


FAMILIES = {
    "roberta": roberta,
    "xlm-roberta": xlm_roberta,
    "deberta-v2": deberta_v2,
    "modernbert": modernbert,
    "distilbert": wordpiece("DistilBertTokenizer", True),
    "electra": wordpiece("ElectraTokenizer", False),
}


def inputs(columns):
    """Single texts, then pairs (each row with the next of its CSV)."""
    singles = [(t, None) for col in columns for t in col]
    pairs = [(t, col[(i + 1) % len(col)]) for col in columns for i, t in enumerate(col)]
    return singles + pairs


def encode(tokenizer, items, max_length):
    singles = [t for t, p in items if p is None]
    pairs = [(t, p) for t, p in items if p is not None]
    kw = {"truncation": True, "max_length": max_length, "return_attention_mask": False}
    enc_s = tokenizer(singles, **kw)
    enc_p = tokenizer([t for t, _ in pairs], [p for _, p in pairs], **kw)
    rows = []
    for enc in (enc_s, enc_p):
        types = enc.get("token_type_ids")
        for i, ids in enumerate(enc["input_ids"]):
            rows.append({"input_ids": ids, "token_type_ids": types[i] if types is not None else None})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", action="append", required=True)
    ap.add_argument("--max-length", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--family", action="append", choices=sorted(FAMILIES), help="default: all")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    columns = read_texts(args.csv)
    texts = [t for col in columns for t in col][::TRAIN_EVERY]
    items = inputs(columns)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "texts.jsonl"), "w", encoding="utf-8") as f:
        for text, pair in items:
            f.write(json.dumps({"text": text} if pair is None else {"text": text, "text_pair": pair}) + "\n")
    for family in args.family or FAMILIES:
        folder = os.path.join(args.out, family)
        FAMILIES[family](texts).save_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        rows = encode(tokenizer, items, args.max_length)
        with open(os.path.join(folder, "reference.jsonl"), "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        cut = sum(len(r["input_ids"]) == args.max_length for r in rows)
        print(f"{family}: {type(tokenizer).__name__}, {cut} of {len(rows)} encodings at max_length")


if __name__ == "__main__":
    main()

"""The PyTorch side of the per-family training-parity test (tests/family_training.rs): tiny random
models of each family with a tokenizer trained on the test's rows, the reference run of each
(scripts/reference_train.py, in this one process), and the reload of bertfit's saved folders.

    training.py reference SPEC.json
        SPEC: a JSON list of jobs {"family", "config", "data", "dir", "flags"}. For each job:
          DIR/model/   a tokenizer of the family (TOKENIZERS: built from DATA's texts, the same in
                       every run)
                       and the family's *ForSequenceClassification made by transformers from
                       CONFIG ("module:key": `module.configs()[key]`, a script in this folder)
                       with the tokenizer's vocabulary size and pad id and DATA's training labels
                       (as reference_train.py names them), its weights perturbed (make_tiny_models);
          the reference run `reference_train.py --model DIR/model --data DATA FLAGS` into
          DIR/reference_metrics.jsonl, DIR/reference.safetensors and DIR/reference_model/.
    training.py reload SPEC.json
        SPEC: a JSON list of jobs {"family", "model", "reference", "data", "max_length", "out"}.
        AutoModelForSequenceClassification and AutoTokenizer from MODEL (bertfit's saved folder)
        and the model of REFERENCE, in eval mode, on DATA's validation rows one at a time: writes
        OUT {"class", "tokenizer", "logits", "reference_logits", "predictions", "accuracy"}
        (predictions: MODEL's label names; accuracy: percent of rows whose prediction is the row's
        label, as reference_train.py counts it).

Adding a family: a config in some script's `configs()` and a tokenizer in TOKENIZERS (or
make_tokenizers.FAMILIES); the test names the config in one line.
"""
import argparse
import importlib
import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]  # this folder, then scripts/

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

import make_tiny_models  # noqa: E402
import make_tokenizers  # noqa: E402
import reference_train  # noqa: E402

# Enough for the few dozen rows a test trains on.
VOCAB = 400


def counted(items):
    """Distinct items, the most frequent first, ties in sorted order (no hash order anywhere)."""
    counts = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def wordpiece(cls_name, lower):
    """BERT's specials, every character alone and as `##c`, then the most frequent words: a
    WordPiece vocabulary built by counting (the tokenizers library's trainer breaks ties in hash
    order, so two test runs would get two vocabularies)."""

    def make(texts):
        import transformers

        words = [w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower() if lower else t)]
        chars = [c for c, _ in counted(c for w in words for c in w)]
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
        vocab += [w for w, _ in counted(words) if len(w) > 1][: VOCAB - len(vocab)]
        return getattr(transformers, cls_name)(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=lower)

    return make


def unigram(specials, mask):
    """A SentencePiece-style unigram vocabulary by counting: `specials`, `▁word` for the most
    frequent words, every character, `mask` last; scores are log frequencies."""

    def vocab(texts):
        words = ["\u2581" + w for t in texts for w in t.split()]
        chars = counted(c for w in words for c in w)
        pieces = counted(words)[: VOCAB - len(specials) - len(chars) - 1] + chars
        total = sum(n for _, n in pieces)
        return [(p, 0.0) for p in specials] + [(p, math.log(n / total)) for p, n in pieces] + [(mask, 0.0)]

    return vocab


def xlm_roberta(texts):
    from transformers import XLMRobertaTokenizer

    return XLMRobertaTokenizer(vocab=unigram(["<s>", "<pad>", "</s>", "<unk>"], "<mask>")(texts))


def deberta_v2(texts):
    from transformers import DebertaV2Tokenizer

    vocab = unigram(["[PAD]", "[CLS]", "[SEP]", "[UNK]"], "[MASK]")(texts)
    return DebertaV2Tokenizer(vocab=vocab, do_lower_case=False, split_by_punct=False)


# Each family's tokenizer from the test's texts, the same in every run: make_tokenizers.py's byte-level
# BPE (deterministic), and the vocabularies above where its trainers are not.
TOKENIZERS = {
    **make_tokenizers.FAMILIES,
    "bert": wordpiece("BertTokenizer", True),
    "distilbert": wordpiece("DistilBertTokenizer", True),
    "electra": wordpiece("ElectraTokenizer", False),
    "xlm-roberta": xlm_roberta,
    "deberta-v2": deberta_v2,
}


def tiny_config(spec):
    module, key = spec.split(":")
    return importlib.import_module(module).configs()[key]


def labels(data):
    """DATA's label names as reference_train.py derives them from the training rows."""
    splits = reference_train.read_splits(data, "text", "label", "split")
    args = argparse.Namespace(problem_type=reference_train.SINGLE, num_labels=None, label_separator="|")
    names, _ = reference_train.label_encoding(args, splits["train"])
    texts = [text for split in splits.values() for _, text, _ in split]
    return names, texts


def make_model(job, seed):
    """The family's tokenizer and tiny classifier in DIR/model; returns the folder."""
    names, texts = labels(job["data"])
    make_tokenizers.VOCAB = VOCAB  # the size its BPE trainers (RoBERTa, ModernBERT) aim at
    tokenizer = TOKENIZERS[job["family"]](texts)
    folder = os.path.join(job["dir"], "model")
    tokenizer.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)  # what the reference and a user load
    config = tiny_config(job["config"])
    config.vocab_size = len(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    make_tiny_models.perturb(model, 100 + seed)
    model.save_pretrained(folder)
    return folder


def reference(spec):
    for seed, job in enumerate(spec):
        folder = make_model(job, seed)
        d = job["dir"]
        argv = ["--model", folder, "--data", job["data"], *job["flags"]]
        argv += ["--metrics-out", os.path.join(d, "reference_metrics.jsonl")]
        argv += ["--save-weights", os.path.join(d, "reference.safetensors")]
        argv += ["--save-model", os.path.join(d, "reference_model")]
        print(f"{job['family']}: reference_train.py {' '.join(argv)}", flush=True)
        reference_train.main(argv)


def row_logits(model, tokenizer, texts, max_length):
    """Eval-mode logits, one row at a time (no padding): (rows, classes)."""
    model.eval()
    out = []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            out.append(model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[0])
    return torch.stack(out)


def reload(spec):
    for job in spec:
        splits = reference_train.read_splits(job["data"], "text", "label", "split")
        rows = splits["val"]
        texts = [text for _, text, _ in rows]
        model = AutoModelForSequenceClassification.from_pretrained(job["model"])
        tokenizer = AutoTokenizer.from_pretrained(job["model"])
        ours = row_logits(model, tokenizer, texts, job["max_length"])
        ref = AutoModelForSequenceClassification.from_pretrained(job["reference"])
        theirs = row_logits(ref, tokenizer, texts, job["max_length"])
        predictions = [model.config.id2label[i] for i in ours.argmax(-1).tolist()]
        correct = sum(p == label for p, (_, _, label) in zip(predictions, rows))
        result = {
            "class": type(model).__name__,
            "tokenizer": type(tokenizer).__name__,
            "logits": ours.tolist(),
            "reference_logits": theirs.tolist(),
            "predictions": predictions,
            "accuracy": 100 * correct / len(rows),
        }
        with open(job["out"], "w", encoding="utf-8") as f:
            json.dump(result, f)
        print(json.dumps({"family": job["family"], "class": result["class"], "accuracy": result["accuracy"]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", choices=["reference", "reload"])
    ap.add_argument("spec")
    a = ap.parse_args()
    with open(a.spec, encoding="utf-8") as f:
        spec = json.load(f)
    (reference if a.cmd == "reference" else reload)(spec)


if __name__ == "__main__":
    main()

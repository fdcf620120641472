"""What run_classification.py makes of a set of data files: the problem type, the label list, the
warnings it logs, and per split the texts the tokenizer gets and the label ids.

Loads the files with the real `datasets.load_dataset` and runs the script's own lines on them,
cut verbatim from the reference copy of run_classification.py (get_label_list, the label block of
main(), preprocess_function) with a tokenizer that returns its input.

usage: hf_data_load.py SCRIPT SPEC_JSON -> JSON on stdout
SPEC_JSON: {"train": path, "validation": path?, "test": path?, "label_column": str,
            "text_column_names": "a,b"?, "text_column_delimiter": " ", "cache_dir": path,
            "list_dtype": bool?}
With "list_dtype", datasets 5's `List` feature gets the `.dtype == "list"` that datasets 4's
`Sequence` had: without it the script fails on every multi-label file (`'List' object has no
attribute 'dtype'`), so that is the only way to see what it means to do with one.
"""
import json
import logging
import sys
import textwrap
import warnings

warnings.filterwarnings("ignore")
import datasets  # noqa: E402
from datasets import Value, load_dataset  # noqa: E402

datasets.disable_progress_bars()
datasets.utils.logging.set_verbosity_error()


def cut(source, start, end):
    """Lines of `source` from the one starting with `start` to the one containing `end`, dedented."""
    lines = source.splitlines()
    i = next(k for k, l in enumerate(lines) if l.strip().startswith(start))
    j = next(k for k in range(i, len(lines)) if end in lines[k])
    return textwrap.dedent("\n".join(lines[i : j + 1]))


class Args:
    def __init__(self, spec):
        self.do_regression = None
        self.text_column_names = spec.get("text_column_names")
        self.text_column_delimiter = spec.get("text_column_delimiter", " ")


class Warnings(logging.Handler):
    def __init__(self):
        super().__init__()
        self.seen = []

    def emit(self, record):
        if record.levelno >= logging.WARNING:
            self.seen.append(record.getMessage())


def main():
    source = open(sys.argv[1]).read()
    spec = json.loads(sys.argv[2])
    if spec.get("list_dtype"):
        datasets.List.dtype = "list"
    data_files = {k: spec[k] for k in ("train", "validation", "test") if spec.get(k)}
    kind = "csv" if spec["train"].endswith(".csv") else "json"
    try:
        raw_datasets = load_dataset(kind, data_files=data_files, cache_dir=spec["cache_dir"])
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return
    label = spec.get("label_column", "label")
    if label != "label":
        for key in raw_datasets:
            raw_datasets[key] = raw_datasets[key].rename_column(label, "label")
    logger = logging.getLogger("script")
    handler = Warnings()
    logger.addHandler(handler)
    logger.propagate = False
    scope = {"Value": Value, "logger": logger, "raw_datasets": raw_datasets, "data_args": Args(spec)}
    exec(cut(source, "def get_label_list", "return label_list"), scope)
    block = cut(source, "is_regression = (", 'raise ValueError("You need more than one label')
    try:
        exec(block, scope)
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": f"{type(e).__name__}: {e}", "warnings": handler.seen}))
        return
    is_regression, is_multi_label = scope["is_regression"], scope["is_multi_label"]
    label_list = scope["label_list"]
    problem = "regression" if is_regression else (
        "multi_label_classification" if is_multi_label else "single_label_classification")
    scope.update(
        label_to_id=None if is_regression else {v: i for i, v in enumerate(label_list)},
        tokenizer=lambda texts, **_: {"text": list(texts)},
        padding="max_length",
        max_seq_length=128,
    )
    exec(cut(source, "def multi_labels_to_ids", "return ids"), scope)
    exec(cut(source, "def preprocess_function", "return result"), scope)
    splits = {}
    for split in raw_datasets:
        try:
            out = scope["preprocess_function"](raw_datasets[split][:])
        except Exception as e:  # noqa: BLE001
            splits[split] = {"error": f"{type(e).__name__}: {e}"}
            continue
        labels = out.get("label")
        if labels is None and "label" in raw_datasets[split].column_names and is_regression:
            labels = [float(x) for x in raw_datasets[split]["label"]]
        splits[split] = {"text": out["text"], "label": labels}
    print(json.dumps({"problem_type": problem, "label_list": label_list, "warnings": handler.seen,
                      "splits": splits}))


main()

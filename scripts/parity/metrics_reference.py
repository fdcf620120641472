#!/usr/bin/env python3
"""Reference metrics from scikit-learn and scipy, for bertfit's metrics parity test (tests/metrics.rs).

Usage:

    python scripts/parity/metrics_reference.py --input cases.json

--input  a JSON object with three lists of cases:
           {"classification": [{"predictions": [int], "labels": [int], "num_labels": k, "names": [str]}],
            "multilabel": [{"predicted": [0/1], "truth": [0/1], "num_labels": k, "names": [str]}],
            "regression": [{"predictions": [float], "targets": [float]}]}
         (multi-label matrices are flattened row-major, `num_labels` values per example).
Prints one JSON object to stdout with the same three lists; each entry holds the figures under the
key names of bertfit's metric structs (src/metrics/), and a classification entry also holds
`report`, sklearn's `classification_report(..., digits=4)` text.

Zero divisions use sklearn's default `zero_division="warn"` (0.0). A figure scipy or sklearn leaves
undefined (NaN, or pearsonr's refusal of fewer than 2 values) is written as null.
"""

import argparse
import json
import math
import sys
import warnings

import numpy as np
import scipy.stats
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    hamming_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
    root_mean_squared_error,
)


def per_class(names, p, r, f, s):
    return [
        {"label": n, "precision": float(a), "recall": float(b), "f1": float(c), "support": int(d)}
        for n, a, b, c, d in zip(names, p, r, f, s)
    ]


def averages(y_true, y_pred, labels, kinds):
    out = {}
    for avg in kinds:
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg)
        out.update({f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)})
    return out


def classification(case):
    y_pred, y_true = np.array(case["predictions"]), np.array(case["labels"])
    labels = list(range(case["num_labels"]))
    names = case["names"]
    metrics = {"accuracy": float(accuracy_score(y_true, y_pred))}
    metrics.update(averages(y_true, y_pred, labels, ("macro", "weighted")))
    metrics["support"] = len(y_true)
    metrics["per_class"] = per_class(
        names, *precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None)
    )
    metrics["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    report = classification_report(y_true, y_pred, labels=labels, target_names=names, digits=4)
    return {"metrics": metrics, "report": report}


def multilabel(case):
    k = case["num_labels"]
    y_pred = np.array(case["predicted"], dtype=np.int64).reshape(-1, k)
    y_true = np.array(case["truth"], dtype=np.int64).reshape(-1, k)
    labels = list(range(k))
    metrics = {
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "hamming_loss": float(hamming_loss(y_true, y_pred)),
    }
    metrics.update(averages(y_true, y_pred, labels, ("micro", "macro")))
    metrics["support"] = y_true.shape[0]
    metrics["per_label"] = per_class(
        case["names"], *precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None)
    )
    return {"metrics": metrics}


def defined(x):
    x = float(x)
    return None if math.isnan(x) else x


def regression(case):
    y_pred = np.array(case["predictions"], dtype=np.float64)
    y_true = np.array(case["targets"], dtype=np.float64)
    try:
        pearson = defined(scipy.stats.pearsonr(y_pred, y_true).statistic)
    except ValueError:  # fewer than 2 values
        pearson = None
    metrics = {
        "mse": float(mean_squared_error(y_true, y_pred)),
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "pearson": pearson,
        "spearman": defined(scipy.stats.spearmanr(y_pred, y_true).statistic),
        "r2": defined(r2_score(y_true, y_pred)),
        "support": len(y_true),
    }
    return {"metrics": metrics}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True)
    args = parser.parse_args()
    with open(args.input) as f:
        cases = json.load(f)
    # The zero-division and constant-input warnings are expected in these cases; bertfit records
    # them in its structs instead.
    warnings.simplefilter("ignore")
    result = {
        "classification": [classification(c) for c in cases.get("classification", [])],
        "multilabel": [multilabel(c) for c in cases.get("multilabel", [])],
        "regression": [regression(c) for c in cases.get("regression", [])],
    }
    json.dump(result, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

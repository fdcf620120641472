"""Offline stand-in for the `evaluate` package, for scripts/parity/hf/run_classification.py.

`evaluate.load(name)` downloads the metric's code from the Hugging Face hub, which fails offline.
run_reference.sh puts this folder first on PYTHONPATH so that `import evaluate` finds this module.
It covers the metrics run_classification.py loads (accuracy, f1, precision, recall, mse) with the
hub scripts' semantics (evaluate 0.4.x, evaluate-metric/<name>/<name>.py):

- same `_compute` keyword arguments and defaults (f1/precision/recall: average="binary",
  pos_label=1; accuracy: normalize=True; mse: multioutput="uniform_average", squared=True);
- same output dicts ({"accuracy": x}, {"f1": x}, ...), a Python float when the score is one number,
  the numpy array otherwise (average=None);
- inputs go through the metric's declared feature types first, as evaluate stores them in an Arrow
  table before computing: int32 for the classification metrics, float32 for mse. So mse is computed
  on float32-rounded predictions and references, as in the real package.

Only what run_classification.py needs; any other metric name is an error naming it.
"""

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, precision_score, recall_score

__version__ = "0.4.6+bertfit.stand-in"


def _cast(values, dtype, name):
    arr = np.asarray(values)
    if dtype == np.int32 and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name}: non-integer values cannot be cast to int32 (feature type of this metric)")
    return arr.astype(dtype)


def _number(score):
    score = np.asarray(score)
    return float(score) if score.size == 1 else score


class _Metric:
    int_inputs = True

    def __init__(self, name, config_name):
        self.name = name
        self.config_name = config_name or "default"

    def _inputs(self, predictions, references):
        if predictions is None or references is None:
            raise ValueError(f"{self.name}: compute() needs predictions= and references=")
        dtype = np.int32 if self.int_inputs else np.float32
        preds = _cast(predictions, dtype, "predictions")
        refs = _cast(references, dtype, "references")
        if len(preds) != len(refs):
            raise ValueError(f"{self.name}: {len(preds)} predictions but {len(refs)} references")
        multi = self.config_name in ("multilabel", "multilist")
        if not multi and (preds.ndim > 1 or refs.ndim > 1):
            raise ValueError(
                f"{self.name}: 2-D inputs need config_name=\"{'multilist' if not self.int_inputs else 'multilabel'}\""
            )
        if not self.int_inputs:  # evaluate hands float32 values back as Python floats (float64)
            preds, refs = preds.astype(np.float64), refs.astype(np.float64)
        return preds, refs

    def __repr__(self):
        return f"EvaluationModule(name: \"{self.name}\", config_name: \"{self.config_name}\", stand-in)"


class Accuracy(_Metric):
    def compute(self, *, predictions=None, references=None, normalize=True, sample_weight=None):
        preds, refs = self._inputs(predictions, references)
        return {"accuracy": float(accuracy_score(refs, preds, normalize=normalize, sample_weight=sample_weight))}


class F1(_Metric):
    def compute(self, *, predictions=None, references=None, labels=None, pos_label=1, average="binary",
                sample_weight=None):
        preds, refs = self._inputs(predictions, references)
        score = f1_score(refs, preds, labels=labels, pos_label=pos_label, average=average,
                         sample_weight=sample_weight)
        return {"f1": _number(score)}


class Precision(_Metric):
    def compute(self, *, predictions=None, references=None, labels=None, pos_label=1, average="binary",
                sample_weight=None, zero_division="warn"):
        preds, refs = self._inputs(predictions, references)
        score = precision_score(refs, preds, labels=labels, pos_label=pos_label, average=average,
                                sample_weight=sample_weight, zero_division=zero_division)
        return {"precision": _number(score)}


class Recall(_Metric):
    def compute(self, *, predictions=None, references=None, labels=None, pos_label=1, average="binary",
                sample_weight=None, zero_division="warn"):
        preds, refs = self._inputs(predictions, references)
        score = recall_score(refs, preds, labels=labels, pos_label=pos_label, average=average,
                             sample_weight=sample_weight, zero_division=zero_division)
        return {"recall": _number(score)}


class MSE(_Metric):
    int_inputs = False

    def compute(self, *, predictions=None, references=None, sample_weight=None, multioutput="uniform_average",
                squared=True):
        preds, refs = self._inputs(predictions, references)
        mse = mean_squared_error(refs, preds, sample_weight=sample_weight, multioutput=multioutput)
        if not squared:  # sklearn >= 1.6 dropped squared=; RMSE is the square root of each output's MSE
            mse = np.sqrt(mse)
        return {"mse": _number(mse)}


_METRICS = {"accuracy": Accuracy, "f1": F1, "precision": Precision, "recall": Recall, "mse": MSE}


def load(path, config_name=None, cache_dir=None, **kwargs):
    """evaluate.load(path, config_name=None, ...): `path` is a metric name such as "accuracy" or
    "evaluate-metric/accuracy"; cache_dir and the other keyword arguments are accepted and ignored."""
    name = str(path).rstrip("/").split("/")[-1]
    if name.endswith(".py"):
        name = name[:-3]
    if name not in _METRICS:
        raise FileNotFoundError(
            f"evaluate stand-in (scripts/parity/hf/evaluate): no metric {path!r}; it has {sorted(_METRICS)}"
        )
    cls = _METRICS[name]
    if config_name not in (None, "default", "multilabel", "multilist"):
        raise ValueError(f"evaluate stand-in: metric {name!r} has no config {config_name!r}")
    return cls(name, config_name)

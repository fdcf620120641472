"""Opt-in compatibility shim for run_classification.py's multi-label path under datasets 5.x.

The script tests `features["label"].dtype == "list"` (datasets 2.x-4.x: a list column was a
`Sequence`, whose `.dtype` is "list"). datasets 5.2.0 types it `List(Value("string"))`, which has no
`.dtype`, so every JSON multi-label run (and, before it, the regression check) fails with
AttributeError: 'List' object has no attribute 'dtype'.
run_reference.sh puts this folder on PYTHONPATH only when RC_REFERENCE_LIST_DTYPE=1; it gives
`datasets.List` the old read-only `.dtype == "list"` and changes nothing else.
"""
try:
    from datasets.features.features import List as _List

    if not hasattr(_List, "dtype"):
        _List.dtype = property(lambda self: "list")
except Exception:  # never break interpreter start-up
    pass

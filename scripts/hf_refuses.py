#!/usr/bin/env python3
"""Asks the installed transformers whether it accepts run_classification.py command lines: for each
JSON argument (a list of flags and values), HfArgumentParser parses BASE plus that list into the
script's dataclasses and TrainingArguments (whose __post_init__ holds most of HF's checks), and one
line is printed per case:

    ok
    err<TAB>ExceptionType: message

usage: hf_refuses.py SCRIPT CASE_JSON [CASE_JSON ...]   (SCRIPT: run_classification.py's path)
tests/cli.rs runs bertfit on the same lines: what HF refuses, bertfit must refuse by flag name.
"""
import contextlib
import io
import json
import sys

from transformers import HfArgumentParser, TrainingArguments

import hf_training_args


# The least a line needs to get past the script's own dataclass checks.
BASE = ["--model_name_or_path", "m", "--output_dir", "o", "--train_file", "t.csv", "--validation_file", "v.csv"]


def verdict(parser, extra):
    args = [*BASE, *extra]
    try:
        # argparse prints its usage error on stderr before exiting; the verdict line says it.
        with contextlib.redirect_stderr(io.StringIO()) as err:
            parser.parse_args_into_dataclasses(args=args)
    except SystemExit:
        return "err\targparse: " + err.getvalue().strip().splitlines()[-1]
    except Exception as e:  # noqa: BLE001 -- any refusal is the answer, whatever its type
        return f"err\t{type(e).__name__}: {e}".replace("\n", " ")
    return "ok"


def main():
    hf_training_args.SCRIPT = sys.argv[1]
    parser = HfArgumentParser((*hf_training_args.script_dataclasses(), TrainingArguments))
    for case in sys.argv[2:]:
        print(verdict(parser, json.loads(case)))


if __name__ == "__main__":
    main()

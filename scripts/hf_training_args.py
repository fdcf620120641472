#!/usr/bin/env python3
"""Prints every flag of run_classification.py's command line as HfArgumentParser builds it, one per line:

    name<TAB>kind<TAB>default<TAB>choices

for the dataclasses (ModelArguments, DataTrainingArguments, TrainingArguments) of the installed
transformers and of the vendored script (/work/shared/reference/run_classification.py, or the path given
as the first argument; only its two dataclasses are executed, so `datasets`/`evaluate` are not needed).
kind: bool (an optional value: `--x`, `--x false`), bool_value (a value required), int, float, str,
str+ (one or more values), choice; default: Python's repr; choices joined by `|`.
src/cli/run_classification/table.rs must list the same; tests/cli.rs compares them.
"""
import ast
import dataclasses
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser, TrainingArguments

SCRIPT = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/reference/run_classification.py"


def script_dataclasses():
    tree = ast.parse(open(SCRIPT).read())
    wanted = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in ("ModelArguments", "DataTrainingArguments")]
    scope = {"dataclass": dataclass, "field": field}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), SCRIPT, "exec"), scope)
    return scope["ModelArguments"], scope["DataTrainingArguments"]


def kind(action):
    type_name = getattr(action.type, "__name__", "")
    if action.choices is not None:
        return "choice"
    if type_name == "string_to_bool":
        return "bool" if action.nargs == "?" else "bool_value"
    if action.nargs == "+":
        return "str+"
    return {"int": "int", "float": "float"}.get(type_name, "str")


def main():
    parser = HfArgumentParser((*script_dataclasses(), TrainingArguments))
    for action in parser._actions:
        long = action.option_strings[0]
        if long in ("-h",) or long.startswith("--no_"):
            continue  # --help, and the --no_<name> twin of a bool defaulting to True
        name = long[2:]
        choices = "|".join(str(c) for c in action.choices) if action.choices is not None else ""
        default = "MISSING" if action.required else repr(action.default)
        print(f"{name}\t{kind(action)}\t{default}\t{choices}")


if __name__ == "__main__":
    main()

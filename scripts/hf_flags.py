#!/usr/bin/env python3
"""Prints src/cli/hf_flags.txt: every flag a Hugging Face text-classification command line may hold.

The fields of transformers' TrainingArguments (read from the installed transformers), the arguments of
examples/pytorch/text-classification/run_classification.py (ModelArguments, DataTrainingArguments:
that script is not installed with transformers, so its names are listed here), and a few 4.x names
still found in users' scripts. bertfit refuses any of these it does not implement by name.

    python scripts/hf_flags.py > src/cli/hf_flags.txt
"""
import dataclasses

import transformers
from transformers import TrainingArguments

RUN_CLASSIFICATION = """model_name_or_path config_name tokenizer_name cache_dir use_fast_tokenizer model_revision token
trust_remote_code ignore_mismatched_sizes dataset_name dataset_config_name do_regression text_column_names
text_column_delimiter train_split_name validation_split_name test_split_name remove_splits remove_columns
label_column_name max_seq_length preprocessing_num_workers overwrite_cache pad_to_max_length
shuffle_train_dataset shuffle_seed max_train_samples max_eval_samples max_predict_samples metric_name
train_file validation_file test_file""".split()
LEGACY = "overwrite_output_dir group_by_length evaluation_strategy no_cuda use_mps_device logging_dir".split()


def main():
    training = [f.name for f in dataclasses.fields(TrainingArguments) if f.init]
    print(f"# Flags of Hugging Face TrainingArguments (transformers {transformers.__version__}) and of run_classification.py")
    print("# (ModelArguments, DataTrainingArguments), plus 4.x names still in users' scripts. bertfit")
    print("# refuses any of these it does not implement by name instead of reporting an unknown flag.")
    print("# Regenerate with scripts/hf_flags.py; tests/cli.rs checks the list is complete.")
    seen = set()
    for name in training + RUN_CLASSIFICATION + LEGACY:
        if name not in seen:
            seen.add(name)
            print(name)


if __name__ == "__main__":
    main()

//! THE flag table of `bertfit run-classification`: every field of run_classification.py's
//! ModelArguments and DataTrainingArguments and of transformers 5.24's TrainingArguments, in
//! HfArgumentParser's order, with the kind of value argparse takes, HF's default (Python's repr,
//! as `scripts/hf_training_args.py` prints it: tests/cli.rs compares the two so this cannot drift)
//! and what bertfit does with it.

/// The value a flag takes on the command line, as HfArgumentParser declares it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// `bool` field: `--x` alone is true, or `--x VALUE` (HF's string_to_bool); a field whose
    /// default is True also gets `--no_x`.
    Bool,
    /// `bool | None` field: a value is required (`--tf32 true`).
    BoolValue,
    Int,
    Float,
    Str,
    /// `list[str]`: one or more values (`nargs="+"`).
    StrList,
    /// One of these strings (an HF enum).
    Choice(&'static [&'static str]),
}

/// What bertfit does with a flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Disposition {
    /// bertfit implements its meaning (some values may still be refused by name, e.g. an optimizer).
    Same,
    /// Accepted; a value other than HF's default is said once on stderr: it cannot change the
    /// results of a single-binary run (why).
    NoEffect(&'static str),
    /// A value other than HF's default is refused (why / what to use instead).
    Refused(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The dataclass field (`--name` and `--name-with-dashes` on the command line).
    pub name: &'static str,
    pub kind: Kind,
    /// HF's default as Python's repr (`None`, `True`, `8`, `5e-05`, `'linear'`, `[]`); `MISSING`
    /// for a required field.
    pub default: &'static str,
    pub disposition: Disposition,
}

const fn flag(name: &'static str, kind: Kind, default: &'static str, disposition: Disposition) -> Flag {
    Flag { name, kind, default, disposition }
}

/// Flags HF 4.x had that transformers 5.24's parser no longer knows (it refuses them as unknown):
/// refused here too, naming the 5.x way.
pub const REMOVED: &[(&str, &str)] = &[
    ("overwrite_output_dir", "transformers 5 removed it (a run writes over --output_dir's files)"),
    ("warmup_ratio", "transformers 5 removed it: --warmup_steps below 1 is a ratio (--warmup_steps 0.1)"),
    ("evaluation_strategy", "transformers 5 removed it: use --eval_strategy"),
    ("no_cuda", "transformers 5 removed it: use --use_cpu"),
    ("use_mps_device", "transformers 5 removed it"),
    ("logging_dir", "transformers 5 removed it (logs go to the integrations of --report_to)"),
    ("group_by_length", "transformers 5 removed it: use --train_sampling_strategy group_by_length"),
    ("save_safetensors", "transformers 5 removed it (checkpoints are always safetensors)"),
    ("per_gpu_train_batch_size", "removed: use --per_device_train_batch_size"),
    ("per_gpu_eval_batch_size", "removed: use --per_device_eval_batch_size"),
];

use Disposition::{NoEffect, Refused, Same};
use Kind::{Bool, BoolValue, Choice, Float, Int, Str, StrList};

pub const FLAGS: &[Flag] = &[
    flag("model_name_or_path", Str, r"MISSING", Same),
    flag(
        "config_name",
        Str,
        r"None",
        Refused("unless it names the --model_name_or_path folder: bertfit reads the model's own config.json"),
    ),
    flag(
        "tokenizer_name",
        Str,
        r"None",
        Refused("unless it names the --model_name_or_path folder: bertfit reads the model's own tokenizer"),
    ),
    flag(
        "cache_dir",
        Str,
        r"None",
        NoEffect("bertfit reads local folders and the offline HF cache, never downloads"),
    ),
    flag("use_fast_tokenizer", Bool, r"True", NoEffect("bertfit's tokenizer gives the fast tokenizer's ids")),
    flag("model_revision", Str, r"'main'", NoEffect("the model is read from a local folder")),
    flag("token", Str, r"None", NoEffect("nothing is downloaded")),
    flag(
        "trust_remote_code",
        Bool,
        r"False",
        NoEffect("bertfit runs its own BERT, never a checkpoint's code"),
    ),
    flag(
        "ignore_mismatched_sizes",
        Bool,
        r"False",
        Refused("bertfit loads checkpoints strictly; give a model whose head fits or none"),
    ),
    flag("dataset_name", Str, r"None", Refused("no hub access: give --train_file and --validation_file")),
    flag(
        "dataset_config_name",
        Str,
        r"None",
        Refused("no hub access: give --train_file and --validation_file"),
    ),
    flag("do_regression", Bool, r"None", Same),
    flag("text_column_names", Str, r"None", Same),
    flag("text_column_delimiter", Str, r"' '", Same),
    flag("train_split_name", Str, r"None", Same),
    flag("validation_split_name", Str, r"None", Same),
    flag("test_split_name", Str, r"None", Same),
    flag("remove_splits", Str, r"None", Same),
    flag("remove_columns", Str, r"None", Same),
    flag("label_column_name", Str, r"None", Same),
    flag("max_seq_length", Int, r"128", Same),
    flag(
        "preprocessing_num_workers",
        Int,
        r"None",
        NoEffect("tokenization runs in-process; the ids are the same"),
    ),
    flag("overwrite_cache", Bool, r"False", NoEffect("no datasets cache: every run tokenizes afresh")),
    flag("pad_to_max_length", Bool, r"True", Same),
    flag("shuffle_train_dataset", Bool, r"False", Same),
    flag("shuffle_seed", Int, r"42", Same),
    flag("max_train_samples", Int, r"None", Same),
    flag("max_eval_samples", Int, r"None", Same),
    flag("max_predict_samples", Int, r"None", Same),
    flag("metric_name", Str, r"None", Same),
    flag("train_file", Str, r"None", Same),
    flag("validation_file", Str, r"None", Same),
    flag("test_file", Str, r"None", Same),
    flag("output_dir", Str, r"None", Same),
    flag("per_device_train_batch_size", Int, r"8", Same),
    flag("num_train_epochs", Float, r"3.0", Same),
    flag("max_steps", Int, r"-1", Same),
    flag("learning_rate", Float, r"5e-05", Same),
    flag(
        "lr_scheduler_type",
        Choice(&[
            "linear",
            "cosine",
            "cosine_with_restarts",
            "polynomial",
            "constant",
            "constant_with_warmup",
            "inverse_sqrt",
            "reduce_lr_on_plateau",
            "cosine_with_min_lr",
            "cosine_warmup_with_min_lr",
            "warmup_stable_decay",
            "greedy",
        ]),
        r"'linear'",
        Same,
    ),
    flag("lr_scheduler_kwargs", Str, r"None", Refused("bertfit's schedules take no extra arguments")),
    flag("warmup_steps", Float, r"0", Same),
    flag(
        "optim",
        Choice(&[
            "adamw_torch",
            "adamw_torch_fused",
            "adamw_torch_xla",
            "adamw_torch_npu_fused",
            "adafactor",
            "adamw_anyprecision",
            "adamw_torch_4bit",
            "adamw_torch_8bit",
            "ademamix",
            "sgd",
            "adagrad",
            "adamw_bnb_8bit",
            "adamw_8bit",
            "ademamix_8bit",
            "lion_8bit",
            "lion_32bit",
            "paged_adamw_32bit",
            "paged_adamw_8bit",
            "paged_ademamix_32bit",
            "paged_ademamix_8bit",
            "paged_lion_32bit",
            "paged_lion_8bit",
            "rmsprop",
            "rmsprop_bnb",
            "rmsprop_bnb_8bit",
            "rmsprop_bnb_32bit",
            "galore_adamw",
            "galore_adamw_8bit",
            "galore_adafactor",
            "galore_adamw_layerwise",
            "galore_adamw_8bit_layerwise",
            "galore_adafactor_layerwise",
            "lomo",
            "adalomo",
            "grokadamw",
            "schedule_free_radam",
            "schedule_free_adamw",
            "schedule_free_sgd",
            "apollo_adamw",
            "apollo_adamw_layerwise",
            "stable_adamw",
        ]),
        r"'adamw_torch_fused'",
        Same,
    ),
    flag("optim_args", Str, r"None", Refused("bertfit's optimizers take no extra arguments")),
    flag("weight_decay", Float, r"0.0", Same),
    flag("adam_beta1", Float, r"0.9", Same),
    flag("adam_beta2", Float, r"0.999", Same),
    flag("adam_epsilon", Float, r"1e-08", Same),
    flag(
        "optim_target_modules",
        Str,
        r"None",
        Refused("only GaLore/APOLLO optimizers use it; bertfit has neither"),
    ),
    flag("gradient_accumulation_steps", Int, r"1", Same),
    flag(
        "average_tokens_across_devices",
        Bool,
        r"True",
        Refused("bertfit averages the loss per process as HF does by default"),
    ),
    flag("max_grad_norm", Float, r"1.0", Same),
    flag("label_smoothing_factor", Float, r"0.0", Same),
    flag("bf16", Bool, r"False", Same),
    flag("fp16", Bool, r"False", Same),
    flag(
        "bf16_full_eval",
        Bool,
        r"False",
        Refused("bertfit evaluates in the training precision; use --bf16"),
    ),
    flag(
        "fp16_full_eval",
        Bool,
        r"False",
        Refused("bertfit evaluates in the training precision; use --fp16"),
    ),
    flag("tf32", BoolValue, r"None", Same),
    flag(
        "activation_checkpointing",
        Bool,
        r"None",
        NoEffect("bertfit keeps activations; recomputing them gives the same numbers"),
    ),
    flag("activation_checkpointing_kwargs", Str, r"None", NoEffect("bertfit keeps activations")),
    flag(
        "gradient_checkpointing",
        Bool,
        r"None",
        NoEffect("bertfit keeps activations; recomputing them gives the same numbers"),
    ),
    flag("gradient_checkpointing_kwargs", Str, r"None", NoEffect("bertfit keeps activations")),
    flag(
        "torch_compile",
        Bool,
        r"False",
        Refused("bertfit runs eager libtorch kernels; compiled kernels may round differently"),
    ),
    flag("torch_compile_backend", Str, r"None", Refused("bertfit has no torch.compile")),
    flag("torch_compile_mode", Str, r"None", Refused("bertfit has no torch.compile")),
    flag("use_liger_kernel", Bool, r"False", Refused("bertfit has no Liger kernels")),
    flag("liger_kernel_config", Str, r"None", Refused("bertfit has no Liger kernels")),
    flag("use_cache", Bool, r"False", NoEffect("BERT classification has no key/value cache")),
    flag("neftune_noise_alpha", Float, r"None", Refused("bertfit adds no embedding noise")),
    flag("torch_empty_cache_steps", Int, r"None", NoEffect("only frees cached CUDA memory")),
    flag(
        "auto_find_batch_size",
        Bool,
        r"False",
        NoEffect("bertfit does not retry smaller batches: an out-of-memory error ends the run"),
    ),
    flag("logging_strategy", Choice(&["no", "steps", "epoch"]), r"'steps'", Same),
    flag("logging_steps", Float, r"500", Same),
    flag("logging_first_step", Bool, r"False", Same),
    flag("log_on_each_node", Bool, r"True", NoEffect("only rank 0 logs")),
    flag(
        "logging_nan_inf_filter",
        Bool,
        r"True",
        Refused("bertfit logs the loss as computed (HF's default filters nan/inf)"),
    ),
    flag(
        "include_num_input_tokens_seen",
        Bool,
        r"'no'",
        Refused("bertfit does not count input tokens into the logs"),
    ),
    flag(
        "log_level",
        Choice(&["detail", "debug", "info", "warning", "error", "critical", "passive"]),
        r"'passive'",
        NoEffect("bertfit's console output is its own"),
    ),
    flag(
        "log_level_replica",
        Choice(&["detail", "debug", "info", "warning", "error", "critical", "passive"]),
        r"'warning'",
        NoEffect("bertfit's console output is its own"),
    ),
    flag("disable_tqdm", BoolValue, r"None", NoEffect("bertfit's progress display is its own")),
    flag("report_to", Str, r"'none'", NoEffect("bertfit writes metrics.jsonl; no integrations")),
    flag("run_name", Str, r"None", NoEffect("names a run in reporting integrations only")),
    flag("project", Str, r"'huggingface'", NoEffect("names a project in reporting integrations only")),
    flag("trackio_space_id", Str, r"None", NoEffect("no trackio integration")),
    flag("trackio_bucket_id", Str, r"None", NoEffect("no trackio integration")),
    flag("trackio_static_space_id", Str, r"None", NoEffect("no trackio integration")),
    flag("eval_strategy", Choice(&["no", "steps", "epoch"]), r"'no'", Same),
    flag("eval_steps", Float, r"None", Same),
    flag("eval_delay", Float, r"0", Same),
    flag("per_device_eval_batch_size", Int, r"8", Same),
    flag("prediction_loss_only", Bool, r"False", Refused("bertfit always computes the metrics")),
    flag("eval_on_start", Bool, r"False", Same),
    flag("eval_do_concat_batches", Bool, r"True", NoEffect("only how predictions are held in memory")),
    flag(
        "eval_use_gather_object",
        Bool,
        r"False",
        NoEffect("only how predictions are gathered across processes"),
    ),
    flag("eval_accumulation_steps", Int, r"None", NoEffect("only when predictions move off the device")),
    flag(
        "include_for_metrics",
        StrList,
        r"[]",
        NoEffect("run_classification.py's compute_metrics reads only predictions and labels"),
    ),
    flag(
        "batch_eval_metrics",
        Bool,
        r"False",
        Refused("run_classification.py's compute_metrics needs all predictions at once"),
    ),
    flag(
        "save_only_model",
        Bool,
        r"False",
        Refused("bertfit's checkpoints always hold the optimizer, scheduler and RNG states"),
    ),
    flag("save_strategy", Choice(&["no", "steps", "epoch", "best"]), r"'steps'", Same),
    flag("save_steps", Float, r"500", Same),
    flag("save_on_each_node", Bool, r"False", NoEffect("one node writes")),
    flag("save_total_limit", Int, r"None", Same),
    flag(
        "enable_jit_checkpoint",
        Bool,
        r"False",
        NoEffect("bertfit already saves a checkpoint on SIGTERM/Ctrl-C"),
    ),
    flag("push_to_hub", Bool, r"False", Refused("no hub access: upload the output folder yourself")),
    flag("hub_token", Str, r"None", NoEffect("only with --push_to_hub")),
    flag("hub_private_repo", BoolValue, r"None", NoEffect("only with --push_to_hub")),
    flag("hub_model_id", Str, r"None", NoEffect("only with --push_to_hub")),
    flag(
        "hub_strategy",
        Choice(&["end", "every_save", "checkpoint", "all_checkpoints"]),
        r"'every_save'",
        NoEffect("only with --push_to_hub"),
    ),
    flag("hub_always_push", Bool, r"False", NoEffect("only with --push_to_hub")),
    flag("hub_revision", Str, r"None", NoEffect("only with --push_to_hub")),
    flag("load_best_model_at_end", Bool, r"False", Same),
    flag("metric_for_best_model", Str, r"None", Same),
    flag("greater_is_better", BoolValue, r"None", Same),
    flag(
        "ignore_data_skip",
        Bool,
        r"False",
        Refused("a resumed bertfit run always continues the data order where it stopped"),
    ),
    flag(
        "restore_callback_states_from_checkpoint",
        Bool,
        r"False",
        NoEffect("run_classification.py adds no stateful callbacks"),
    ),
    flag(
        "full_determinism",
        Bool,
        r"False",
        Refused("bertfit does not switch libtorch to deterministic algorithms"),
    ),
    flag("seed", Int, r"42", Same),
    flag("data_seed", Int, r"None", Same),
    flag("use_cpu", Bool, r"False", Same),
    flag("accelerator_config", Str, r"None", Refused("bertfit has no accelerate configuration")),
    flag("parallelism_config", Str, r"None", Refused("bertfit has no accelerate parallelism")),
    flag("dataloader_drop_last", Bool, r"False", Refused("bertfit keeps the last, shorter batch")),
    flag(
        "dataloader_num_workers",
        Int,
        r"0",
        NoEffect("batches are made on bertfit's loader thread; the same batches"),
    ),
    flag("dataloader_pin_memory", Bool, r"True", NoEffect("only how batches are copied to the device")),
    flag("dataloader_persistent_workers", Bool, r"False", NoEffect("no worker processes")),
    flag("dataloader_prefetch_factor", Int, r"None", NoEffect("no worker processes")),
    flag(
        "dataloader_multiprocessing_context",
        Choice(&["fork", "spawn", "forkserver"]),
        r"None",
        NoEffect("no worker processes"),
    ),
    flag(
        "dataloader_in_order",
        Bool,
        r"True",
        NoEffect("only the order batches are dispatched across processes"),
    ),
    flag("remove_unused_columns", Bool, r"True", NoEffect("bertfit reads only the named columns")),
    flag("label_names", StrList, r"None", Refused("bertfit's labels are the label column")),
    flag(
        "train_sampling_strategy",
        Choice(&["random", "sequential", "group_by_length", "batch_rebalance"]),
        r"'random'",
        Same,
    ),
    flag(
        "length_column_name",
        Str,
        r"'length'",
        NoEffect("only with a precomputed length column for group_by_length"),
    ),
    flag("ddp_find_unused_parameters", BoolValue, r"None", NoEffect("every BERT parameter is used")),
    flag("ddp_bucket_cap_mb", Int, r"None", NoEffect("only how gradients are bucketed for all-reduce")),
    flag("ddp_broadcast_buffers", BoolValue, r"None", NoEffect("BERT has no buffers that training changes")),
    flag("ddp_static_graph", BoolValue, r"None", NoEffect("only DDP's bookkeeping")),
    flag("ddp_backend", Choice(&["nccl", "gloo", "mpi", "xccl", "hccl", "cncl", "mccl"]), r"None", Same),
    flag("ddp_timeout", Int, r"1800", Same),
    flag("fsdp", Str, r"None", Refused("bertfit shards nothing: use DDP (torchrun/srun)")),
    flag("fsdp_config", Str, r"None", Refused("bertfit shards nothing: use DDP (torchrun/srun)")),
    flag("deepspeed", Str, r"None", Refused("bertfit has no DeepSpeed: use DDP (torchrun/srun)")),
    flag("debug", StrList, r"None", Refused("bertfit has no debug modes")),
    flag(
        "skip_memory_metrics",
        Bool,
        r"True",
        Refused("bertfit does not measure memory into the results files"),
    ),
    flag("do_train", Bool, r"False", Same),
    flag("do_eval", Bool, r"False", Same),
    flag("do_predict", Bool, r"False", Same),
    flag("resume_from_checkpoint", Str, r"None", Same),
    flag("local_rank", Int, r"-1", NoEffect("bertfit reads LOCAL_RANK from the launcher's environment")),
];

/// The flag of this field name (underscores), if any.
pub fn find(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name == name)
}

/// How many flags have each disposition: (same, no effect, refused).
pub fn counts() -> (usize, usize, usize) {
    let count = |p: fn(&Disposition) -> bool| FLAGS.iter().filter(|f| p(&f.disposition)).count();
    (count(|d| *d == Same), count(|d| matches!(d, NoEffect(_))), count(|d| matches!(d, Refused(_))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_removed_names_are_not_flags() {
        let mut names: Vec<_> = FLAGS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FLAGS.len());
        assert!(REMOVED.iter().all(|(n, _)| find(n).is_none()));
    }

    #[test]
    fn choice_defaults_are_among_the_choices() {
        for f in FLAGS {
            if let Choice(choices) = f.kind {
                let d = f.default.trim_matches('\'');
                assert!(f.default == "None" || choices.contains(&d), "{}", f.name);
            }
        }
    }
}

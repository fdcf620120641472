//! The parsed command line (HF's defaults filled in) converted into [`TrainArgs`] with HF Trainer's
//! conventions: what run_classification.py + TrainingArguments would run.
use tch::Device;

use super::data::{columns, data_source, label_format};
use super::value::Parsed;
use crate::data::batch::Padding;
use crate::error::{Error, Result};
use crate::train::args::{Conventions, DataOrder, Logging, Recipe, SaveStrategy, TrainLoss};
use crate::train::optim::AdamKind;
use crate::train::precision::Precision;
use crate::train::schedule::SchedulerType;
use crate::train::TrainArgs;

/// The settings, and the warnings HF would log on the way (said on stderr by the command).
pub struct Converted {
    pub args: TrainArgs,
    pub warnings: Vec<String>,
}

pub fn to_train_args(p: &Parsed) -> Result<Converted> {
    let mut warnings = Vec::new();
    let (data, do_eval) = data_source(p, &mut warnings)?;
    let columns = columns(p)?;
    let label_format = label_format(p, &data, &columns)?;
    let (epochs, epoch_fraction) = epochs(p)?;
    let (shuffle, data_order) = sampling(p)?;
    let (conventions, eval_steps) = conventions(p, epoch_fraction, data_order)?;
    if conventions.eval_on_start && !do_eval {
        // HF's Trainer.evaluate raises at the start of training without an eval dataset.
        return Err(Error::usage("--eval_on_start", "evaluates before training: it needs --do_eval"));
    }
    let (save_strategy, save_steps) = save(p)?;
    let use_cpu = p.bool("use_cpu") == Some(true);
    let resume = p.str("resume_from_checkpoint").map(str::to_string);
    let args = TrainArgs {
        profile_ops: None,
        model: p.str("model_name_or_path").unwrap_or_default().to_string(),
        data,
        columns,
        label_format,
        output_dir: p.str("output_dir").unwrap_or("trainer_output").into(),
        epochs,
        max_steps: max_steps(p)?,
        batch_size: count(p, "per_device_train_batch_size", 1)?,
        eval_batch_size: count(p, "per_device_eval_batch_size", 1)?,
        learning_rate: p.float("learning_rate").unwrap_or(5e-5),
        max_length: count(p, "max_seq_length", 2)?,
        num_labels: None,
        seed: seed(p, "seed")?,
        padding: if p.bool("pad_to_max_length") == Some(false) {
            Padding::Longest
        } else {
            Padding::MaxLength
        },
        shuffle,
        threads: None,
        device: if use_cpu { Device::Cpu } else { Device::cuda_if_available() },
        device_auto: !use_cpu,
        do_train: p.bool("do_train") == Some(true),
        do_eval,
        do_predict: p.bool("do_predict") == Some(true),
        max_samples: [
            opt(p, "max_train_samples")?,
            opt(p, "max_eval_samples")?,
            opt(p, "max_predict_samples")?,
        ],
        shuffle_train_dataset: (p.bool("shuffle_train_dataset") == Some(true))
            .then(|| seed(p, "shuffle_seed"))
            .transpose()?,
        group_by_length: false,
        prefetch: 4,
        streaming: false,
        shuffle_buffer: 10_000,
        token_cache: None,
        // transformers 5 has no overwrite_output_dir: a fresh run writes over the folder's files.
        overwrite: resume.is_none(),
        recipe: Recipe { eval_steps, ..recipe(p)? },
        unpadded: None,
        save_strategy,
        save_steps,
        // HF's rotate_checkpoints keeps every checkpoint for a limit of 0 or below.
        save_total_limit: p.int("save_total_limit").filter(|&n| n > 0).map(|n| n as usize),
        resume_from_checkpoint: resume,
        ddp_timeout: p.int("ddp_timeout").unwrap_or(1800).max(0) as u64,
        ddp_backend: ddp_backend(p)?,
        reproduce_pytorch: false,
        peak_flops: None,
        conventions,
    };
    // The checks `bertfit train` shares name its flags: said here in the user's (HF's).
    args.validate().map_err(super::names::in_hf_terms)?;
    Ok(Converted { args, warnings })
}

/// HF's `lr_scheduler_type` names bertfit implements (the one place to add a schedule).
pub fn scheduler(name: &str) -> Result<SchedulerType> {
    SchedulerType::ALL.into_iter().find(|s| s.hf_name() == name).ok_or_else(|| {
        let names: Vec<&str> = SchedulerType::ALL.iter().map(|s| s.hf_name()).collect();
        Error::usage(
            "--lr_scheduler_type",
            format!("'{name}' is not implemented by bertfit; use one of {}", names.join(", ")),
        )
    })
}

fn recipe(p: &Parsed) -> Result<Recipe> {
    let (optim, fused) = match p.str("optim").unwrap_or_default() {
        "adamw_torch_fused" => (AdamKind::AdamW, true),
        "adamw_torch" => (AdamKind::AdamW, false),
        other => {
            return Err(Error::usage(
                "--optim",
                format!("'{other}' is not implemented by bertfit; use adamw_torch_fused (HF's default) or adamw_torch"),
            ))
        }
    };
    let precision = match (p.bool("bf16"), p.bool("fp16")) {
        (Some(true), Some(true)) => return Err(Error::usage("--bf16", "give --bf16 or --fp16, not both")),
        (Some(true), _) => Precision::Bf16,
        (_, Some(true)) => Precision::Fp16,
        _ => Precision::Fp32,
    };
    let max_grad_norm = p.float("max_grad_norm").filter(|n| *n > 0.0);
    let (warmup_steps, warmup_ratio) = warmup(p)?;
    Ok(Recipe {
        optim,
        weight_decay: p.float("weight_decay").unwrap_or(0.0),
        adam_beta1: p.float("adam_beta1").unwrap_or(0.9),
        adam_beta2: p.float("adam_beta2").unwrap_or(0.999),
        adam_epsilon: p.float("adam_epsilon").unwrap_or(1e-8),
        fused,
        lr_scheduler_type: scheduler(p.str("lr_scheduler_type").unwrap_or("linear"))?,
        warmup_steps,
        warmup_ratio,
        gradient_accumulation_steps: count(p, "gradient_accumulation_steps", 1)?,
        max_grad_norm,
        label_smoothing: p.float("label_smoothing_factor").unwrap_or(0.0),
        precision,
        precision_auto: false,
        tf32: p.bool("tf32") == Some(true),
        eval_steps: None,
        metric_for_best_model: p.str("metric_for_best_model").map(str::to_string),
        greater_is_better: p.bool("greater_is_better"),
        early_stopping_patience: None,
        load_best_model_at_end: p.bool("load_best_model_at_end") == Some(true),
    })
}

/// HF 5's warmup_steps: at least 1 is a step count (int() of it, as HF), below 1 a ratio of the
/// run's optimizer steps (rounded up).
fn warmup(p: &Parsed) -> Result<(Option<usize>, Option<f64>)> {
    let w = p.float("warmup_steps").unwrap_or(0.0);
    if !(w.is_finite() && w >= 0.0) {
        return Err(Error::usage("--warmup_steps", format!("must be 0 or more, got {w}")));
    }
    Ok(match w {
        w if w >= 1.0 => (Some(w.trunc() as usize), None),
        w if w > 0.0 => (None, Some(w)),
        _ => (None, None),
    })
}

/// num_train_epochs: whole epochs, or a fraction HF stops in (`epochs` is then its ceiling).
/// A max_steps above 0 sets the run's length and its epochs whatever this says (HF reads it
/// only without one): a value that could not be an epoch count is then kept as 1, unused.
fn epochs(p: &Parsed) -> Result<(usize, Option<f64>)> {
    let e = p.float("num_train_epochs").unwrap_or(3.0);
    if !(e.is_finite() && e > 0.0 && e <= 1e6) {
        if max_steps(p)?.is_some() {
            return Ok((1, None));
        }
        return Err(Error::usage("--num_train_epochs", format!("must be above 0, got {e}")));
    }
    Ok((e.ceil() as usize, (e.fract() != 0.0).then_some(e)))
}

fn max_steps(p: &Parsed) -> Result<Option<usize>> {
    match p.int("max_steps").unwrap_or(-1) {
        // HF: max_steps > 0 overrides num_train_epochs; -1 (or 0) leaves it.
        v if v <= 0 => Ok(None),
        v => Ok(Some(count_value("--max_steps", v, 1)?)),
    }
}

/// A `*_steps` float of TrainingArguments as a step count: above 1 it must be whole (HF's check);
/// below 1 HF reads a ratio of the run's steps, which bertfit does not implement.
fn steps(p: &Parsed, name: &str) -> Result<usize> {
    let v = p.float(name).unwrap_or(0.0);
    let flag = format!("--{name}");
    // HF fails on inf (int() of it) and never acts on nan (no step is a multiple of it).
    if !v.is_finite() {
        return Err(Error::usage(flag, format!("must be a whole number of steps, got {v}")));
    }
    if v > 1.0 && v != v.trunc() {
        return Err(Error::usage(flag, format!("must be an integer if bigger than 1: {v}")));
    }
    if v <= 0.0 {
        return Err(Error::usage(flag, format!("must be above 0, got {v}")));
    }
    if v < 1.0 {
        return Err(Error::usage(flag, format!("{v} is a ratio of the run's steps in HF, which bertfit does not implement; give a step count")));
    }
    Ok(v as usize)
}

/// logging/eval strategies, HF's conventions, and eval_steps (defaulting to logging_steps, as HF).
fn conventions(
    p: &Parsed,
    epoch_fraction: Option<f64>,
    data_order: DataOrder,
) -> Result<(Conventions, Option<usize>)> {
    let logging = match p.str("logging_strategy").unwrap_or("steps") {
        "steps" => Logging::Steps(steps(p, "logging_steps")?),
        "epoch" => Logging::Epoch,
        _ => Logging::No,
    };
    let eval = p.str("eval_strategy").unwrap_or("no");
    let eval_steps = match eval {
        "steps" if p.float("eval_steps").is_some_and(|v| v != 0.0) => Some(steps(p, "eval_steps")?),
        "steps" => Some(steps(p, "logging_steps")?),
        _ => None,
    };
    let conventions = Conventions {
        eval_each_epoch: eval == "epoch",
        logging,
        logging_first_step: p.bool("logging_first_step") == Some(true),
        final_checkpoint: p.str("save_strategy") != Some("no"),
        epoch_fraction,
        train_loss: TrainLoss::WindowSum,
        data_order,
        metric: metric(p)?,
        eval_delay: p.float("eval_delay").unwrap_or(0.0),
        eval_on_start: p.bool("eval_on_start") == Some(true),
        hf_trainer: true,
    };
    best_model_needs_matching_strategies(p, eval_steps)?;
    Ok((conventions, eval_steps))
}

/// HF's check: load_best_model_at_end saves where it evaluates (save_strategy best does).
fn best_model_needs_matching_strategies(p: &Parsed, eval_steps: Option<usize>) -> Result<()> {
    if p.bool("load_best_model_at_end") != Some(true) || p.str("save_strategy") == Some("best") {
        return Ok(());
    }
    let (eval, save) = (p.str("eval_strategy").unwrap_or("no"), p.str("save_strategy").unwrap_or("steps"));
    if eval != save {
        return Err(Error::usage(
            "--load_best_model_at_end",
            format!("requires the save and eval strategy to match, but found eval_strategy {eval}, save_strategy {save}"),
        ));
    }
    if let (Some(e), "steps") = (eval_steps, save) {
        let s = steps(p, "save_steps")?;
        if s % e != 0 {
            return Err(Error::usage(
                "--load_best_model_at_end",
                format!("requires the saving steps to be a round multiple of the evaluation steps, but found {s}, which is not a round multiple of {e}"),
            ));
        }
    }
    Ok(())
}

fn save(p: &Parsed) -> Result<(SaveStrategy, usize)> {
    let strategy = match p.str("save_strategy").unwrap_or("steps") {
        "steps" => SaveStrategy::Steps,
        "epoch" => SaveStrategy::Epoch,
        "no" => SaveStrategy::No,
        "best" => SaveStrategy::Best,
        other => {
            return Err(Error::usage(
                "--save_strategy",
                format!("'{other}' is not implemented by bertfit; use steps, epoch, best or no"),
            ))
        }
    };
    let steps = if strategy == SaveStrategy::Steps { steps(p, "save_steps")? } else { 500 };
    Ok((strategy, steps))
}

/// metric_name: the `evaluate` metrics bertfit computes.
fn metric(p: &Parsed) -> Result<Option<crate::metrics::MetricName>> {
    use clap::ValueEnum;
    p.str("metric_name")
        .map(|name| {
            crate::metrics::MetricName::from_str(name, false).map_err(|_| {
                Error::usage(
                    "--metric_name",
                    format!(
                        "'{name}' is not implemented by bertfit; use accuracy, f1, precision, recall or mse"
                    ),
                )
            })
        })
        .transpose()
}

/// train_sampling_strategy: random (reshuffled every epoch), sequential (file order) or
/// group_by_length (HF's LengthGroupedSampler); whether the rows are shuffled, and their order.
fn sampling(p: &Parsed) -> Result<(bool, DataOrder)> {
    // accelerate's SeedableRandomSampler, seeded with data_seed, else seed; torch's
    // Generator.manual_seed takes a negative seed as its two's complement.
    let seed = match p.int("data_seed") {
        Some(v) => v as u64,
        None => seed(p, "seed")?,
    };
    match p.str("train_sampling_strategy").unwrap_or("random") {
        "random" => Ok((true, DataOrder::HfTrainer { seed })),
        "sequential" => Ok((false, DataOrder::HfTrainer { seed })),
        "group_by_length" => Ok((true, DataOrder::HfLengthGrouped)),
        other => Err(Error::usage(
            "--train_sampling_strategy",
            format!("'{other}' is not implemented by bertfit (its batch order would differ from HF's); use random, sequential or group_by_length"),
        )),
    }
}

fn ddp_backend(p: &Parsed) -> Result<Option<crate::torch_ext::c10d::BackendKind>> {
    use crate::torch_ext::c10d::BackendKind;
    match p.str("ddp_backend") {
        None => Ok(None),
        Some("gloo") => Ok(Some(BackendKind::Gloo)),
        Some("nccl") => Ok(Some(BackendKind::Nccl)),
        Some(other) => Err(Error::usage(
            "--ddp_backend",
            format!("'{other}' is not implemented by bertfit; use gloo or nccl"),
        )),
    }
}

fn seed(p: &Parsed, name: &str) -> Result<u64> {
    let v = p.int(name).unwrap_or(42);
    u64::try_from(v).map_err(|_| Error::usage(format!("--{name}"), format!("must be 0 or more, got {v}")))
}

fn count_value(flag: &str, v: i64, min: i64) -> Result<usize> {
    crate::cli::flags::count(flag, v, min)
}

fn count(p: &Parsed, name: &str, min: i64) -> Result<usize> {
    count_value(&format!("--{name}"), p.int(name).unwrap_or(0), min)
}

fn opt(p: &Parsed, name: &str) -> Result<Option<usize>> {
    p.int(name).map(|v| count_value(&format!("--{name}"), v, 1)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::run_classification::parser::{parse, Parse};

    /// The data files the tests name (t.csv, v.csv, x.csv), written once: the problem type is read
    /// from the train file's label column.
    fn data_dir() -> &'static std::path::Path {
        static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        DIR.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("bertfit-rc-convert-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            for f in ["t.csv", "v.csv", "x.csv"] {
                std::fs::write(dir.join(f), "sentence,label,y,a,b,c\nx,p,p,a,b,c\ny,q,q,a,b,c\n").unwrap();
            }
            dir
        })
    }

    /// `args` with the test files' names as paths in [`data_dir`].
    fn with_files(args: &[&str]) -> Vec<String> {
        let named = |a: &&str| ["t.csv", "v.csv", "x.csv"].contains(a);
        args.iter()
            .map(|a| if named(a) { data_dir().join(a).display().to_string() } else { a.to_string() })
            .collect()
    }

    fn convert(extra: &[&str]) -> Result<Converted> {
        let mut args = vec![
            "--model_name_or_path",
            "m",
            "--train_file",
            "t.csv",
            "--validation_file",
            "v.csv",
            "--do_train",
        ];
        args.extend(extra);
        let Parse::Run(p) = parse(&with_files(&args))? else { panic!() };
        to_train_args(&p)
    }

    fn args(extra: &[&str]) -> TrainArgs {
        convert(extra).unwrap_or_else(|e| panic!("{extra:?}: {e}")).args
    }

    #[test]
    fn hf_defaults() {
        let a = args(&["--do_train"]);
        assert_eq!(
            (a.learning_rate, a.batch_size, a.eval_batch_size, a.epochs, a.max_length),
            (5e-5, 8, 8, 3, 128)
        );
        assert_eq!(a.recipe.lr_scheduler_type, SchedulerType::Linear);
        assert_eq!(
            (a.recipe.optim, a.recipe.fused, a.recipe.max_grad_norm),
            (AdamKind::AdamW, true, Some(1.0))
        );
        assert_eq!(a.padding, Padding::MaxLength);
        assert_eq!((a.save_strategy, a.save_steps), (SaveStrategy::Steps, 500));
        assert_eq!(a.conventions.logging, Logging::Steps(500));
        assert!(!a.conventions.eval_each_epoch && a.conventions.final_checkpoint);
        assert_eq!(a.conventions.train_loss, TrainLoss::WindowSum);
        assert_eq!(a.output_dir, std::path::PathBuf::from("trainer_output"));
        assert_eq!((a.columns.text.as_str(), a.columns.label.as_str()), ("sentence", "label"));
        assert_eq!((a.do_train, a.do_eval, a.do_predict), (true, false, false));
    }

    #[test]
    fn warmup_steps_below_one_is_a_ratio() {
        let a = args(&["--warmup_steps", "0.1"]);
        assert_eq!((a.recipe.warmup_steps, a.recipe.warmup_ratio), (None, Some(0.1)));
        let a = args(&["--warmup_steps", "2.7"]);
        assert_eq!((a.recipe.warmup_steps, a.recipe.warmup_ratio), (Some(2), None), "int() as HF");
    }

    #[test]
    fn strategies() {
        let a = args(&["--eval_strategy", "steps", "--logging_steps", "7"]);
        assert_eq!((a.recipe.eval_steps, a.do_eval), (Some(7), true), "eval_steps defaults to logging_steps");
        let a = args(&["--eval_strategy", "epoch", "--save_strategy", "no", "--logging_strategy", "epoch"]);
        assert!(a.conventions.eval_each_epoch && !a.conventions.final_checkpoint);
        assert_eq!(a.conventions.logging, Logging::Epoch);
        let e = convert(&["--logging_steps", "0.1"]).err().unwrap().to_string();
        assert!(e.starts_with("--logging_steps: 0.1 is a ratio"), "{e}");
        for v in ["0", "-1"] {
            let e = convert(&["--logging_steps", v]).err().unwrap().to_string();
            assert!(e.starts_with("--logging_steps: must be above 0"), "{e}");
        }
        assert!(convert(&["--save_steps", "2.5"]).err().unwrap().to_string().contains("must be an integer"));
        for (v, limit) in [("0", None), ("-1", None), ("2", Some(2))] {
            assert_eq!(args(&["--save_total_limit", v]).save_total_limit, limit, "--save_total_limit {v}");
        }
        for (flag, strategy) in [
            ("--logging_steps", None),
            ("--save_steps", Some("--save_strategy")),
            ("--eval_steps", Some("--eval_strategy")),
        ] {
            for v in ["inf", "nan", "1e309"] {
                let mut args = vec![flag, v];
                args.extend(strategy.map(|s| [s, "steps"]).into_iter().flatten());
                let e = convert(&args).err().map(|e| e.to_string()).unwrap_or_default();
                assert!(e.starts_with(&format!("{flag}: must be a whole number of steps")), "{args:?}: {e}");
            }
        }
        let e = convert(&["--load_best_model_at_end", "--eval_strategy", "epoch"]).err().unwrap().to_string();
        assert!(e.contains("requires the save and eval strategy to match"), "{e}");
    }

    #[test]
    fn values_hf_runs_are_run() {
        // max_steps overrides num_train_epochs, which HF then does not read.
        let a = args(&["--num_train_epochs", "0", "--max_steps", "3"]);
        assert_eq!((a.epochs, a.max_steps), (1, Some(3)));
        let e = convert(&["--num_train_epochs", "0"]).err().unwrap().to_string();
        assert_eq!(e, "--num_train_epochs: must be above 0, got 0");
        // torch's manual_seed(-1) is its two's complement; --seed -1 fails in HF (numpy).
        assert_eq!(
            args(&["--data_seed", "-1"]).conventions.data_order,
            DataOrder::HfTrainer { seed: u64::MAX }
        );
        assert!(convert(&["--seed", "-1"]).is_err());
        assert_eq!(args(&["--learning_rate", "0"]).learning_rate, 0.0);
        assert_eq!(args(&["--max_grad_norm", "inf"]).recipe.max_grad_norm, Some(f64::INFINITY));
        // What is refused names the flag as the user typed it, not bertfit train's.
        let e = convert(&["--adam_epsilon", "0"]).err().unwrap().to_string();
        assert!(e.starts_with("--adam_epsilon: must be positive (0 makes NaN"), "{e}");
        let e = convert(&["--learning_rate", "-1"]).err().unwrap().to_string();
        assert_eq!(e, "--learning_rate: must be 0 or more, got -1");
    }

    #[test]
    fn save_strategy_best_needs_its_metric() {
        let best =
            ["--save_strategy", "best", "--eval_strategy", "epoch", "--metric_for_best_model", "accuracy"];
        assert_eq!(args(&best).save_strategy, SaveStrategy::Best);
        // load_best_model_at_end needs matching strategies, except with best.
        assert!(convert(&[&best[..], &["--load_best_model_at_end"]].concat()).is_ok());
        let e = convert(&["--save_strategy", "best", "--eval_strategy", "epoch"]).err().unwrap().to_string();
        assert!(e.starts_with("--save_strategy: `args.metric_for_best_model` must be provided"), "{e}");
    }

    #[test]
    fn evaluation_delay_and_start() {
        let a = args(&["--do_eval", "--eval_on_start", "--eval_delay", "2.5"]);
        assert!(a.conventions.eval_on_start);
        assert_eq!(a.conventions.eval_delay, 2.5);
        let e = convert(&["--eval_on_start"]).err().unwrap().to_string();
        assert_eq!(e, "--eval_on_start: evaluates before training: it needs --do_eval");
        // eval_strategy other than no sets do_eval (TrainingArguments.__post_init__).
        assert!(convert(&["--eval_on_start", "--eval_strategy", "epoch"]).is_ok());
    }

    #[test]
    fn epochs_steps_optimizer_precision() {
        let a = args(&[
            "--num_train_epochs",
            "1.5",
            "--max_steps",
            "-1",
            "--max_grad_norm",
            "0",
            "--optim",
            "adamw_torch",
        ]);
        assert_eq!((a.epochs, a.conventions.epoch_fraction, a.max_steps), (2, Some(1.5), None));
        assert_eq!((a.recipe.max_grad_norm, a.recipe.fused), (None, false));
        assert!(convert(&["--optim", "sgd"]).err().unwrap().to_string().starts_with("--optim: 'sgd'"));
        assert_eq!(args(&["--bf16"]).recipe.precision, Precision::Bf16);
        assert_eq!(args(&["--use_cpu"]).device, Device::Cpu);
        assert_eq!(
            args(&["--lr_scheduler_type", "polynomial"]).recipe.lr_scheduler_type,
            SchedulerType::Polynomial
        );
        let e = convert(&["--lr_scheduler_type", "reduce_lr_on_plateau"]).err().unwrap().to_string();
        assert!(e.starts_with("--lr_scheduler_type: 'reduce_lr_on_plateau' is not implemented"), "{e}");
        assert!(convert(&["--metric_name", "matthews_correlation"])
            .err()
            .unwrap()
            .to_string()
            .contains("--metric_name"));
        assert_eq!(args(&["--metric_name", "f1"]).conventions.metric, Some(crate::metrics::MetricName::F1));
        assert!(!args(&["--train_sampling_strategy", "sequential"]).shuffle);
        let grouped = args(&["--train_sampling_strategy", "group_by_length"]);
        assert_eq!(grouped.conventions.data_order, DataOrder::HfLengthGrouped);
        let e = convert(&["--train_sampling_strategy", "batch_rebalance"]).err().unwrap().to_string();
        assert!(e.starts_with("--train_sampling_strategy: 'batch_rebalance' is not implemented"), "{e}");
    }

    #[test]
    fn data_files_and_splits_as_the_script() {
        use crate::data::dataset::DataSource;
        // The file names (the tests' files are in data_dir()).
        let files = |a: TrainArgs| match a.data {
            DataSource::Files { train, validation, test } => {
                let name = |p: std::path::PathBuf| std::path::PathBuf::from(p.file_name().unwrap());
                (name(train), validation.map(name), test.map(name))
            }
            _ => panic!(),
        };
        let (t, v, te) = files(args(&["--do_predict", "--test_file", "x.csv"]));
        assert_eq!(
            (t.to_str(), v.as_deref().and_then(|p| p.to_str()), te.as_deref().and_then(|p| p.to_str())),
            (Some("t.csv"), Some("v.csv"), Some("x.csv"))
        );
        assert!(convert(&["--test_file", "x.csv"])
            .err()
            .unwrap()
            .to_string()
            .contains("--do_predict requires a test dataset"));
        assert!(convert(&["--do_predict"])
            .err()
            .unwrap()
            .to_string()
            .contains("Need either a dataset name or a test file"));
        // Dropping validation: evaluation falls back to the test file with HF's warning.
        let c =
            convert(&["--do_eval", "--do_predict", "--test_file", "x.csv", "--remove_splits", "validation"])
                .unwrap();
        assert_eq!(files(c.args).1.unwrap().to_str(), Some("x.csv"));
        assert!(c.warnings[0].contains("Falling back to test dataset"));
        // validation_split_name test: the test file becomes validation and test is gone, so
        // --do_predict fails as in the script.
        let e = convert(&["--do_predict", "--test_file", "x.csv", "--validation_split_name", "test"])
            .err()
            .unwrap();
        assert!(e.to_string().contains("--do_predict requires a test dataset"), "{e}");
        let c = convert(&["--do_eval", "--test_split_name", "validation"]).unwrap();
        assert!(c.warnings[0].contains("Falling back"));
        let (_, v, te) = files(c.args);
        assert_eq!((v.unwrap().to_str(), te.unwrap().to_str()), (Some("v.csv"), Some("v.csv")));
        let e = convert(&["--train_file", "t.tsv"]).err().unwrap().to_string();
        assert!(e.contains("should be a csv or a json file"), "{e}");
        let mut only_train = vec!["--model_name_or_path", "m", "--train_file", "t.csv"];
        only_train.push("--do_train");
        let Parse::Run(p) = parse(&with_files(&only_train)).unwrap() else { panic!() };
        assert!(to_train_args(&p).err().unwrap().to_string().contains("--validation_file"));
    }

    #[test]
    fn text_and_label_columns() {
        let a = args(&[
            "--text_column_names",
            "a,b,c",
            "--text_column_delimiter",
            " | ",
            "--label_column_name",
            "y",
        ]);
        assert_eq!(
            (a.columns.text.as_str(), a.columns.text_joined.clone(), a.columns.label.as_str()),
            ("a", vec!["b".to_string(), "c".to_string()], "y")
        );
        assert_eq!(a.columns.text_delimiter, " | ");
        assert!(args(&["--remove_columns", "idx"]).columns.text == "sentence");
        let e = convert(&["--remove_columns", "idx,label"]).err().unwrap().to_string();
        assert!(e.starts_with("--remove_columns: removes 'label'"), "{e}");
        assert_eq!(
            args(&["--do_regression"]).label_format.problem,
            crate::data::labels::ProblemType::Regression
        );
        assert_eq!(args(&[]).label_format.list, crate::data::labels::LabelList::Hf);
    }
}

//! HF Trainer's conventions (`TrainArgs.conventions`, which `bertfit run-classification` sets):
//! evaluation only when asked, log_history by logging strategy, the final checkpoint, fractional
//! epochs, HF 5.x's summed window loss, HF's results keys, and trainer_state.json that
//! transformers' `TrainerState.load_from_json` reads.
use std::path::{Path, PathBuf};

use bertfit::cli::{Cli, Command};
use bertfit::train::args::{Conventions, Logging, TrainLoss};
use bertfit::train::report::Silent;
use bertfit::train::TrainArgs;
use serde_json::Value;

use super::common::{generator_lock, python, read_json, small_csv, temp_dir, tiny_model};

/// `bertfit train` flags for a tiny run of 8 training rows in batches of 2 (4 micro-batches an
/// epoch) with accumulation 2: 2 optimizer steps an epoch.
fn args(dir: &Path, out: &str, extra: &[&str]) -> TrainArgs {
    let model = tiny_model(dir, 2, None, &[]);
    let data = small_csv(dir);
    let out = dir.join(out);
    let mut argv: Vec<String> = ["bertfit", "train", "--device", "cpu", "--threads", "1", "--seed", "4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (k, v) in [
        ("--model", model.to_str().unwrap()),
        ("--data", data.to_str().unwrap()),
        ("--output-dir", out.to_str().unwrap()),
        ("--epochs", "2"),
        ("--batch-size", "2"),
        ("--gradient-accumulation-steps", "2"),
        ("--max-length", "16"),
        ("--learning-rate", "1e-3"),
    ] {
        argv.extend([k.to_string(), v.to_string()]);
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    match bertfit::cli::parse(argv.into_iter().map(std::ffi::OsString::from)) {
        Ok(Cli { command: Command::Train(flags) }) => flags.into_args().unwrap(),
        _ => panic!("did not parse"),
    }
}

fn hf() -> Conventions {
    Conventions {
        eval_each_epoch: false,
        logging: Logging::Steps(2),
        logging_first_step: true,
        final_checkpoint: true,
        epoch_fraction: Some(1.5),
        train_loss: TrainLoss::WindowSum,
        metric: None,
        hf_trainer: true,
        ..Conventions::default()
    }
}

fn run(args: &TrainArgs) -> PathBuf {
    // The run seeds libtorch's generator and draws its dropout from it, in this process.
    let _generator = generator_lock();
    bertfit::commands::train::train(args, &mut Silent).unwrap();
    args.output_dir.clone()
}

/// transformers' `TrainerState.load_from_json(path)`: epoch, global_step, max_steps,
/// num_train_epochs and each log_history entry's sorted keys, as JSON.
fn load_with_transformers(path: &Path) -> Value {
    let code = "import json, sys\nfrom transformers import TrainerState\n\
                s = TrainerState.load_from_json(sys.argv[1])\n\
                print(json.dumps({'epoch': s.epoch, 'global_step': s.global_step, 'max_steps': s.max_steps, \
                'num_train_epochs': s.num_train_epochs, 'keys': [sorted(e) for e in s.log_history]}))";
    let out =
        std::process::Command::new(python()).args(["-c", code, path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn hf_conventions_give_hf_files() {
    let dir = temp_dir("conventions_hf");
    let mut a = args(&dir, "out", &["--do-train", "--do-eval", "--save-steps", "100"]);
    a.conventions = hf();
    let out = run(&a);
    // 1.5 epochs of 2 steps: ceil(1.5 * 2) = 3 steps, and the final checkpoint at step 3 only.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    assert_eq!(names, ["checkpoint-3"]);
    let state = read_json(&out.join("trainer_state.json"));
    let log = state["log_history"].as_array().unwrap();
    // Steps 1 (logging_first_step) and 2 (every 2); no per-epoch evaluation; the summary last.
    let training: Vec<&Value> = log.iter().filter(|e| e.get("loss").is_some()).collect();
    assert_eq!(training.iter().map(|e| e["step"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(keys(training[0]), ["epoch", "grad_norm", "learning_rate", "loss", "step"]);
    // HF's epoch: epoch + (micro-batch + 1) / micro-batches per epoch.
    assert_eq!(training[0]["epoch"], 0.5);
    assert_eq!(training[1]["epoch"], 1.0);
    assert!(log.iter().all(|e| e.get("eval_loss").is_none()), "{log:?}");
    let last = log.last().unwrap();
    assert_eq!(
        keys(last),
        [
            "epoch",
            "step",
            "total_flos",
            "train_loss",
            "train_runtime",
            "train_samples_per_second",
            "train_steps_per_second"
        ]
    );
    assert_eq!((state["global_step"].as_u64(), state["max_steps"].as_u64()), (Some(3), Some(3)));
    assert_eq!(state["epoch"], 1.5);
    assert_eq!(state["num_train_epochs"], 2);
    assert!(state.get("bertfit_position").is_none() && out.join("bertfit_state.json").is_file());
    for path in [out.join("trainer_state.json"), out.join("checkpoint-3/trainer_state.json")] {
        let loaded = load_with_transformers(&path);
        assert_eq!(loaded["global_step"], 3, "{loaded}");
        assert_eq!(loaded["max_steps"], 3, "{loaded}");
        assert_eq!(loaded["epoch"], 1.5, "{loaded}");
        assert_eq!(
            loaded["keys"][0],
            serde_json::json!(["epoch", "grad_norm", "learning_rate", "loss", "step"])
        );
    }
    let train = read_json(&out.join("train_results.json"));
    assert_eq!(
        keys(&train),
        [
            "epoch",
            "train_loss",
            "train_runtime",
            "train_samples",
            "train_samples_per_second",
            "train_steps_per_second"
        ]
    );
    assert_eq!((train["epoch"].as_f64(), train["train_samples"].as_u64()), (Some(1.5), Some(8)));
    // HF keeps total_flos out of the results, in trainer_state.json (tests/run_classification.rs
    // compares its value with HF's).
    let state = read_json(&out.join("trainer_state.json"));
    assert!(state["total_flos"].as_f64().unwrap() > 0.0);
    let eval = read_json(&out.join("eval_results.json"));
    for key in [
        "eval_accuracy",
        "eval_loss",
        "eval_runtime",
        "eval_samples_per_second",
        "eval_steps_per_second",
        "eval_samples",
    ] {
        assert!(eval.get(key).is_some(), "{key}: {eval}");
    }
    assert_eq!(eval["epoch"], 1.5);
    let all = read_json(&out.join("all_results.json"));
    assert_eq!(all["eval_samples"], 4);
    assert_eq!(all["train_samples"], 8);
}

#[test]
fn window_sum_reports_the_sum_of_the_micro_batch_losses() {
    let dir = temp_dir("conventions_window_sum");
    let logged = |name: &str, train_loss: TrainLoss| {
        let mut a = args(&dir, name, &["--do-train", "--save-strategy", "no"]);
        a.conventions = Conventions { train_loss, ..Conventions::default() };
        let out = run(&a);
        let state = read_json(&out.join("trainer_state.json"));
        state["log_history"][0]["loss"].as_f64().unwrap()
    };
    // The first step starts from the same weights and dropout draws: the window of 2 sums to
    // twice its mean, exactly (halving is exact).
    let (mean, sum) = (logged("mean", TrainLoss::WindowMean), logged("sum", TrainLoss::WindowSum));
    assert_eq!(sum, 2.0 * mean, "sum {sum}, mean {mean}");
}

#[test]
fn logging_by_epoch_or_never_and_evaluating_only_by_steps() {
    let dir = temp_dir("conventions_logging");
    let mut a =
        args(&dir, "epoch", &["--do-train", "--do-eval", "--eval-steps", "3", "--save-strategy", "no"]);
    a.conventions = Conventions { logging: Logging::Epoch, eval_each_epoch: false, ..Conventions::default() };
    let out = run(&a);
    let log = read_json(&out.join("trainer_state.json"))["log_history"].as_array().unwrap().clone();
    let steps = |key: &str| -> Vec<u64> {
        log.iter().filter(|e| e.get(key).is_some()).map(|e| e["step"].as_u64().unwrap()).collect()
    };
    assert_eq!(steps("loss"), [2, 4], "an entry at each epoch's end: {log:?}");
    assert_eq!(steps("eval_loss"), [3], "evaluations at --eval-steps only: {log:?}");
    let mut a = args(&dir, "never", &["--do-train", "--save-strategy", "no"]);
    a.conventions = Conventions { logging: Logging::No, ..Conventions::default() };
    let out = run(&a);
    let log = read_json(&out.join("trainer_state.json"))["log_history"].as_array().unwrap().clone();
    assert!(log.iter().all(|e| e.get("loss").is_none()), "{log:?}");
}

#[test]
fn the_best_model_needs_evaluations_and_hf_strategies_must_match() {
    let dir = temp_dir("conventions_refusals");
    let mut a = args(&dir, "out", &["--do-train", "--do-eval", "--load-best-model-at-end"]);
    a.conventions = Conventions { eval_each_epoch: false, ..Conventions::default() };
    let e = a.validate().unwrap_err().to_string();
    assert!(e.contains("needs evaluations during training"), "{e}");
    a.conventions = Conventions { hf_trainer: true, ..Conventions::default() };
    let e = a.validate().unwrap_err().to_string();
    assert!(
        e.contains("requires the save and eval strategy to match")
            && e.contains(
                "- Evaluation strategy: IntervalStrategy.EPOCH\n- Save strategy: SaveStrategy.STEPS"
            ),
        "{e}"
    );
}

#[test]
fn a_metric_name_adds_hfs_key_computed_as_evaluate_does() {
    let dir = temp_dir("conventions_metric");
    let mut a = args(&dir, "out", &["--do-train", "--do-eval", "--save-strategy", "no"]);
    a.conventions = Conventions { metric: Some(bertfit::metrics::MetricName::F1), ..Conventions::default() };
    let out = run(&a);
    let eval = read_json(&out.join("eval_results.json"));
    // evaluate's f1: average="binary", pos_label=1: the F1 of class "1" in bertfit's per-class table.
    let f1 = eval["eval_f1"].as_f64().unwrap_or_else(|| panic!("no eval_f1: {eval}"));
    assert_eq!(f1, eval["eval_per_class"][1]["f1"].as_f64().unwrap(), "{eval}");
    // bertfit's own keys stay; HF's speed keys are added.
    assert!(eval.get("eval_f1_macro").is_some() && eval.get("eval_steps_per_second").is_some(), "{eval}");
}

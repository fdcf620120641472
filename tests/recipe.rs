//! The HF training recipe (issue: mixed precision and the full training recipe): AdamW with HF's
//! decay groups, schedules with warmup, gradient accumulation, clipping, label smoothing, bf16 and
//! fp16 autocast with a loss scaler, early stopping and best-model selection, each against PyTorch
//! doing the same through scripts/reference_train.py.
use std::collections::HashMap;
use std::path::Path;

use bertfit::train::precision::{autocast, Precision};
use tch::{Device, Tensor};

use super::common::fixtures::{compare_steps, compare_weights, records, run_both, subset};
use super::common::logits::{parity_texts, write_texts};
use super::common::{
    assert_refused, minilm_with_head, read_json, run_python, temp_dir, tiny_model, write_csv, Flags, TrainRun,
};

/// HF's recipe: AdamW with weight decay, a linear schedule with 4 warmup steps, 2 accumulation
/// steps, clipping at 1.0.
fn recipe(flags: Flags) -> Flags {
    let flags = flags.flag("--optim", "adamw").flag("--weight-decay", "0.01");
    let flags = flags.flag("--lr-scheduler-type", "linear").flag("--warmup-steps", "4");
    flags.flag("--gradient-accumulation-steps", "2").flag("--max-grad-norm", "1.0")
}

/// Every step's rows and loss agree; returns the worst relative loss difference.
fn same_steps(reference: &Path, ours: &Path, steps: usize, tolerance: f64) -> f64 {
    assert_eq!(records(reference, "step").len(), steps);
    let worst = compare_steps(reference, ours);
    for (a, b) in records(reference, "step").iter().zip(records(ours, "step")) {
        let (x, y) = (a["lr"].as_f64().unwrap(), b["lr"].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-12 + 1e-9 * x.abs(), "step {}: lr {x} vs {y}", a["step"]);
    }
    assert!(worst <= tolerance, "losses differ by {worst} relative");
    worst
}

#[test]
fn reproduce_pytorch_with_the_full_recipe_dropout_and_shuffling() {
    let dir = temp_dir("recipe_reproduce");
    let model = tiny_model(&dir, 2, Some(0.1), &[]);
    let data = dir.join("data.csv");
    subset("movies", &data, 320, 48);
    let flags = Flags::parity().flag("--epochs", "2").flag("--seed", "21").flag("--learning-rate", "2e-3");
    let flags = recipe(flags.flag("--label-smoothing", "0.1"));
    let (reference, out, ref_weights) = run_both(&dir, &model, &data, &flags, &["--reproduce-pytorch"]);
    let worst = same_steps(&reference, &out.join("metrics.jsonl"), 20, 1e-4);
    for (a, b) in records(&reference, "epoch").iter().zip(records(&out.join("metrics.jsonl"), "epoch")) {
        assert_eq!(a["val_accuracy"], b["val_accuracy"], "epoch {}", a["epoch"]);
    }
    let weights = compare_weights(&ref_weights, &out.join("model.safetensors"));
    assert!(weights <= 1e-4, "weights differ by {weights} (losses by {worst:e} relative)");
}

/// 30 optimizer steps without dropout against HF's model with torch.optim.AdamW (HF's decay groups)
/// and transformers' schedule; fused and unfused bertfit agree with each other.
fn thirty_steps(name: &str, schedule: &str) {
    let dir = temp_dir(name);
    let model = tiny_model(&dir, 2, Some(0.0), &[]);
    let data = dir.join("data.csv");
    subset("movies", &data, 960, 16);
    let flags = Flags::parity().flag("--epochs", "1").switch("--no-shuffle");
    let flags = recipe(flags.flag("--seed", "4").flag("--learning-rate", "1e-3"));
    let flags = flags.flag("--lr-scheduler-type", schedule);
    let (reference, fused, ref_weights) = run_both(&dir, &model, &data, &flags, &[]);
    let worst = same_steps(&reference, &fused.join("metrics.jsonl"), 30, 1e-4);
    let weights = compare_weights(&ref_weights, &fused.join("model.safetensors"));
    assert!(weights <= 1e-4, "{schedule}: weights differ by {weights} (losses by {worst:e} relative)");

    let unfused = dir.join("unfused");
    let (code, _, err) =
        TrainRun::bare(&model, &data, &unfused).switch("--no-fused").append(&flags.args()).run();
    assert_eq!(code, 0, "{err}");
    let between = compare_weights(&fused.join("model.safetensors"), &unfused.join("model.safetensors"));
    assert!(between <= 1e-5, "fused and unfused differ by {between}");
}

#[test]
fn adamw_linear_warmup_accumulation_clipping_equal_hf() {
    thirty_steps("recipe_linear", "linear");
}

#[test]
fn adamw_cosine_warmup_accumulation_clipping_equal_hf() {
    thirty_steps("recipe_cosine", "cosine");
}

/// 20 steps under CPU autocast against PyTorch's torch.autocast run of the same setup.
fn low_precision_steps(name: &str, precision: &str) {
    let dir = temp_dir(name);
    let model = tiny_model(&dir, 2, Some(0.0), &[]);
    let data = dir.join("data.csv");
    subset("movies", &data, 320, 32);
    let flags = Flags::parity().flag("--epochs", "1").switch("--no-shuffle");
    let flags = flags.flag("--seed", "8").flag("--learning-rate", "1e-3");
    let flags = flags.flag("--optim", "adamw").flag("--precision", precision);
    let (reference, out, _) = run_both(&dir, &model, &data, &flags, &[]);
    same_steps(&reference, &out.join("metrics.jsonl"), 20, 1e-2);
    if precision == "fp16" {
        for (a, b) in records(&reference, "step").iter().zip(records(&out.join("metrics.jsonl"), "step")) {
            assert_eq!(a["skipped"], b["skipped"], "step {} skip", a["step"]);
            assert_eq!(a["scale"], b["scale"], "step {} scale", a["step"]);
        }
    }
}

#[test]
fn bf16_autocast_on_cpu_follows_pytorch() {
    low_precision_steps("recipe_bf16", "bf16");
}

#[test]
fn fp16_autocast_and_loss_scaler_on_cpu_follow_pytorch() {
    low_precision_steps("recipe_fp16", "fp16");
}

/// Low-precision logits of one forward: bertfit's are as close to PyTorch's autocast logits as
/// PyTorch's own autocast logits are to fp32 ones.
#[test]
fn autocast_logits_are_within_pytorchs_own_low_precision_error() {
    let dir = temp_dir("recipe_autocast_logits");
    let model = minilm_with_head(&dir, 2, 1, Some(0.0));
    let texts = write_texts(&dir, &parity_texts(12));
    let out = dir.join("hf.safetensors");
    let args = [
        "--model",
        model.to_str().unwrap(),
        "--texts",
        texts.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    run_python("parity/forward.py", &[&args[..], &["--max-length", "128", "--autocast"]].concat());
    let hf: HashMap<String, Tensor> = Tensor::read_safetensors(&out).unwrap().into_iter().collect();
    for (name, precision) in [("bf16", Precision::Bf16), ("fp16", Precision::Fp16)] {
        let ours = {
            let _guard = autocast(Device::Cpu, precision).unwrap();
            super::common::logits::bertfit_logits(
                &model,
                &hf["input_ids"],
                &hf["attention_mask"],
                &hf["token_type_ids"],
            )
        }
        .to_kind(tch::Kind::Float);
        let theirs = &hf[&format!("logits_{name}")];
        let pytorch_own = (theirs - &hf["logits"]).abs().max().double_value(&[]);
        let ours_vs_theirs = (&ours - theirs).abs().max().double_value(&[]);
        assert!(ours_vs_theirs <= pytorch_own.max(1e-6), "{name}: {ours_vs_theirs} > {pytorch_own}");
    }
}

/// With a metric that stops improving, the run ends after the patience and keeps the best model.
/// Without shuffling and dropout the run is deterministic: the test finds in the evaluation log
/// where HF's EarlyStoppingCallback rule stops (patience 2 evaluations without a lower loss) and
/// which step was best, and checks the run stopped there and saved the weights of that step.
#[test]
fn early_stopping_ends_after_the_patience_and_keeps_the_best_model() {
    let dir = temp_dir("recipe_early_stopping");
    let model = tiny_model(&dir, 2, Some(0.0), &[]);
    let data = dir.join("data.csv");
    subset("movies", &data, 320, 32);
    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let (code, _, err) = TrainRun::new(&model, &data, &out)
            .switch("--no-shuffle")
            .flag("--epochs", "3")
            .flag("--learning-rate", "3e-3")
            .flag("--threads", "2")
            .unset("--seed")
            .append(extra)
            .run();
        assert_eq!(code, 0, "{err}");
        (out, err)
    };
    let (stopped, log) = run(
        "stopped",
        &["--eval-steps", "3", "--metric-for-best-model", "loss", "--early-stopping-patience", "2"],
    );
    let steps = records(&stopped.join("metrics.jsonl"), "step");
    let evals = records(&stopped.join("metrics.jsonl"), "eval");
    // Replay the rule over the logged evaluations.
    let (mut best, mut best_step, mut waited, mut stop_at) = (f64::INFINITY, 0, 0, None);
    for e in &evals {
        let (loss, step) = (e["eval_loss"].as_f64().unwrap(), e["step"].as_u64().unwrap());
        if loss < best {
            (best, best_step, waited) = (loss, step, 0);
        } else {
            waited += 1;
        }
        if waited >= 2 {
            stop_at = Some(step);
            break;
        }
    }
    let stop_at = stop_at.expect("the loss never stopped improving: pick a run that overfits");
    assert!(stop_at < 60, "the run should stop before its 60 steps");
    assert_eq!(steps.len() as u64, stop_at, "stopped at the wrong step: {log}");
    assert!(log.contains(&format!("early stopping at step {stop_at}")), "{log}");
    assert!(
        log.contains(&format!("keeping the best model: eval_loss = {best} at step {best_step}")),
        "{log}"
    );
    // The saved model is the best step's: the same as a run stopped there.
    let (at_best, _) = run("at_best", &["--max-steps", &best_step.to_string()]);
    let diff = compare_weights(&at_best.join("model.safetensors"), &stopped.join("model.safetensors"));
    assert_eq!(
        diff, 0.0,
        "the saved model is not the best one (stopped at step {stop_at}, best step {best_step})"
    );
    let results = read_json(&stopped.join("eval_results.json"));
    assert_eq!(results["eval_loss"].as_f64().unwrap(), best, "eval_results.json describes the kept model");
}

#[test]
fn bad_recipe_values_are_refused_by_flag_and_nothing_is_written() {
    let dir = temp_dir("recipe_bad");
    let model = tiny_model(&dir, 2, None, &[]);
    let data = dir.join("d.csv");
    let rows: Vec<_> = (0..32).map(|i| (format!("text {i}"), (i % 2).to_string(), "train")).collect();
    write_csv(&data, &rows);
    let out = dir.join("out");
    let base = [
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--max-length",
        "16",
        "--epochs",
        "1",
    ];
    for (extra, needles) in [
        (&["--precision", "fp8"][..], &["--precision", "fp8"][..]),
        (&["--optim", "sgd"], &["--optim", "sgd"]),
        (&["--lr-scheduler-type", "cosine_with_min_lr"], &["--lr-scheduler-type", "cosine_with_min_lr"]),
        (&["--warmup-steps", "500"], &["--warmup-steps"]),
        (&["--weight-decay", "-0.1"], &["--weight-decay", "at least 0"]),
        (&["--learning-rate", "NaN"], &["--learning-rate"]),
        (&["--max-grad-norm", "-1"], &["--max-grad-norm", "positive"]),
        (&["--warmup-ratio", "1.5"], &["--warmup-ratio"]),
        (&["--label-smoothing", "1.0"], &["--label-smoothing"]),
        (&["--gradient-accumulation-steps", "0"], &["--gradient-accumulation-steps"]),
        (&["--reproduce-pytorch", "--precision", "bf16"], &["--reproduce-pytorch", "fp32"]),
        (&["--tf32"], &["--tf32", "CUDA"]),
        (&["--save-strategy", "best"], &["--save-strategy", "metric_for_best_model"]),
    ] {
        let args = [&base[..], extra].concat();
        assert_refused(&args, needles);
        assert!(!out.exists(), "{extra:?} wrote {}", out.display());
    }
    // Data the problem type cannot read: the file, row and column are named.
    let multi = dir.join("multi.csv");
    write_csv(
        &multi,
        &[
            ("a".into(), "x|y".into(), "train"),
            ("b".into(), "y".into(), "train"),
            ("c".into(), "x|z".into(), "val"),
        ],
    );
    let args = [&base[..], &["--problem-type", "multi_label_classification"]].concat();
    let args: Vec<&str> =
        args.iter().map(|a| if *a == data.to_str().unwrap() { multi.to_str().unwrap() } else { a }).collect();
    assert_refused(&args, &["multi.csv", "row 3", "column 'label'", "'z'"]);
    let reg = dir.join("reg.csv");
    write_csv(&reg, &[("a".into(), "0.5".into(), "train"), ("b".into(), "high".into(), "train")]);
    let args = [&base[..], &["--problem-type", "regression"]].concat();
    let args: Vec<&str> =
        args.iter().map(|a| if *a == data.to_str().unwrap() { reg.to_str().unwrap() } else { a }).collect();
    assert_refused(&args, &["reg.csv", "row 2", "column 'label'", "not a number"]);
    assert!(!out.exists());
}

//! Training parity per model family: `bertfit train --reproduce-pytorch` against
//! scripts/reference_train.py (AutoModelForSequenceClassification, AutoTokenizer) on a tiny random
//! model of each family that transformers makes, with a tokenizer of the family trained on the rows
//! (scripts/parity/families/training.py). 30 optimizer steps with dropout on (five shuffled epochs,
//! so each epoch's order is drawn after the previous epoch's dropout masks): the same rows per
//! step, the same per-step losses, the same final weights, the same validation accuracy per epoch.
//! The folder bertfit saves then reloads in transformers (AutoModelForSequenceClassification and
//! AutoTokenizer) with the reference model's logits on the validation rows, and its predictions are
//! `bertfit predict`'s, row for row, with bertfit's own validation accuracy.
//!
//! The optimizer is AdamW with weight decay (HF's two parameter groups, whose names differ per
//! family) and epsilon 1e-5: an attention key bias has no gradient in exact arithmetic (softmax
//! ignores a shift of a row), so under Adam's default 1e-8 it moves by up to the learning rate per
//! step on float rounding noise alone, in PyTorch as in bertfit; at 1e-5 that noise stays below
//! 1e-6 while every real gradient is still normalised.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use arrow_array::{Array, StringArray};
use bertfit::data::tokenize::Tokenizer;
use bertfit::model::Family;
use serde_json::{json, Value};

use crate::common::fixtures::{compare_steps, compare_weights, records, subset};
use crate::common::{assert_refused, bertfit, check, run_bertfit, run_python, temp_dir, TrainRun};

/// Each family: its `model_type` and the tiny config training.py builds it from (`module:key`, a
/// script in scripts/parity/families with a `configs()` dict). Adding a family is one line here.
const FAMILIES: &[(&str, &str)] = &[
    ("bert", "make_tiny_models:bert"),
    ("roberta", "make_tiny_models:roberta"),
    ("xlm-roberta", "make_tiny_models:xlm-roberta"),
    ("electra", "make_tiny_models:electra"),
    ("distilbert", "make_tiny_models:distilbert"),
];

const SCRIPT: &str = "parity/families/training.py";
/// Relative per-step loss, absolute weight and logit differences allowed: float rounding only.
const TOLERANCE: f64 = 1e-4;
const MAX_LENGTH: &str = "32";
/// Five epochs of six batches of 8 over 48 TREC questions (six classes), 24 validation rows.
const FLAGS: &[&str] = &[
    "--epochs",
    "5",
    "--batch-size",
    "8",
    "--max-length",
    MAX_LENGTH,
    "--padding",
    "longest",
    "--threads",
    "1",
    "--seed",
    "7",
    "--learning-rate",
    "5e-3",
    "--optim",
    "adamw",
    "--weight-decay",
    "0.01",
    "--adam-epsilon",
    "1e-5",
];

/// Runs `commands` side by side (each test run is one thread of libtorch); their outputs in order.
fn run_all(commands: Vec<std::process::Command>) -> Vec<Output> {
    std::thread::scope(|s| {
        let running: Vec<_> =
            commands.into_iter().map(|mut c| s.spawn(move || c.output().expect("spawn bertfit"))).collect();
        running.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The `predicted_label` column of a `bertfit predict` CSV.
fn predicted_labels(path: &Path) -> Vec<String> {
    let mut labels = Vec::new();
    for batch in bertfit::data::csv::batches(path).unwrap() {
        let batch = batch.unwrap();
        let column = batch.column_by_name("predicted_label").expect("predicted_label column");
        let column = arrow_cast::cast(column, &arrow_schema::DataType::Utf8).unwrap();
        let strings = column.as_any().downcast_ref::<StringArray>().unwrap();
        labels.extend((0..strings.len()).map(|i| strings.value(i).to_string()));
    }
    labels
}

/// The validation rows' texts alone, as `bertfit predict` reads them.
fn write_validation_texts(data: &Path, out: &Path) {
    let ds = bertfit::data::dataset::read_with_split_column(data, &Default::default()).unwrap();
    let rows: Vec<String> =
        ds.validation.examples.iter().map(|e| format!("\"{}\"", e.text.replace('"', "\"\""))).collect();
    std::fs::write(out, format!("text\n{}\n", rows.join("\n"))).unwrap();
}

/// The 30 steps of both trainers and the comparisons of their metrics and weights; returns
/// (loss, weight) differences.
fn compare_training(family: &str, dir: &Path) -> (f64, f64) {
    let (reference, ours) = (dir.join("reference_metrics.jsonl"), dir.join("out/metrics.jsonl"));
    assert_eq!(records(&reference, "step").len(), 30, "{family}: 30 reference steps");
    let losses = compare_steps(&reference, &ours); // also asserts identical rows per step
    let epochs = records(&ours, "epoch");
    assert_eq!(epochs.len(), 5, "{family}: bertfit's epochs");
    for (a, b) in records(&reference, "epoch").iter().zip(&epochs) {
        assert_eq!(
            a["val_accuracy"], b["val_accuracy"],
            "{family}: epoch {} validation accuracy",
            a["epoch"]
        );
    }
    let weights = compare_weights(&dir.join("reference.safetensors"), &dir.join("out/model.safetensors"));
    (losses, weights)
}

fn max_logit_difference(result: &Value) -> f64 {
    let rows = |key: &str| -> Vec<f64> {
        result[key]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().clone())
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (ours, theirs) = (rows("logits"), rows("reference_logits"));
    assert_eq!(ours.len(), theirs.len());
    ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

/// The test's folder: the rows (`data.csv`), and per family the model folder and the reference
/// run training.py made (`<family>/model`, `<family>/reference_*`). Made once per test run.
fn made() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let work = temp_dir("family_training");
        let data = work.join("data.csv");
        subset("trec", &data, 48, 24);
        let jobs: Vec<Value> = FAMILIES
            .iter()
            .map(|(family, config)| {
                json!({"family": family, "config": config, "data": data, "dir": work.join(family), "flags": FLAGS})
            })
            .collect();
        let spec = work.join("reference.json");
        std::fs::write(&spec, Value::Array(jobs).to_string()).unwrap();
        run_python(SCRIPT, &["reference", spec.to_str().unwrap()]);
        work
    })
}

#[test]
fn each_family_trains_as_pytorch_and_reloads_in_transformers() {
    let work = made();
    let data = work.join("data.csv");
    let dirs: Vec<PathBuf> = FAMILIES.iter().map(|(family, _)| work.join(family)).collect();
    let train = dirs.iter().map(|dir| {
        let run = TrainRun::bare(&dir.join("model"), &data, &dir.join("out")).switch("--overwrite");
        run.append(FLAGS).append(&["--reproduce-pytorch"]).command()
    });
    for ((family, _), out) in FAMILIES.iter().zip(run_all(train.collect())) {
        check(&out, &format!("{family}: bertfit train"));
    }
    let texts = work.join("validation.csv");
    write_validation_texts(&data, &texts);
    let predict = dirs.iter().map(|dir| {
        let mut cmd = bertfit();
        let (model, out) = (dir.join("out"), dir.join("predictions.csv"));
        cmd.args(["predict", "--device", "cpu", "--threads", "1", "--max-length", MAX_LENGTH]);
        cmd.arg("--model").arg(model).arg("--data").arg(&texts).arg("--output").arg(out);
        cmd
    });
    for ((family, _), out) in FAMILIES.iter().zip(run_all(predict.collect())) {
        check(&out, &format!("{family}: bertfit predict"));
    }
    let jobs: Vec<Value> = FAMILIES
        .iter()
        .zip(&dirs)
        .map(|((family, _), dir)| {
            json!({"family": family, "model": dir.join("out"), "reference": dir.join("reference_model"),
                   "data": data, "max_length": MAX_LENGTH.parse::<usize>().unwrap(), "out": dir.join("reload.json")})
        })
        .collect();
    let spec = work.join("reload.json");
    std::fs::write(&spec, Value::Array(jobs).to_string()).unwrap();
    run_python(SCRIPT, &["reload", spec.to_str().unwrap()]);

    let mut failed = Vec::new();
    for ((family, _), dir) in FAMILIES.iter().zip(&dirs) {
        let (losses, weights) = compare_training(family, dir);
        let result = crate::common::read_json(&dir.join("reload.json"));
        let class = Family::from_model_type(family).unwrap().architecture();
        assert_eq!(result["class"], class, "{family}: transformers built another class");
        let logits = max_logit_difference(&result);
        let predictions: Vec<String> = result["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        assert_eq!(predictions, predicted_labels(&dir.join("predictions.csv")), "{family}: predictions");
        let distinct: HashSet<&String> = predictions.iter().collect();
        assert!(distinct.len() > 1, "{family}: one class for every row, the comparison shows little");
        let last = records(&dir.join("out/metrics.jsonl"), "epoch").pop().unwrap();
        let accuracy = last["val_accuracy"].as_f64().unwrap();
        assert!(
            (result["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-9,
            "{family}: {result} vs {accuracy}"
        );
        let line = format!(
            "{family}: max rel Δloss {losses:.1e}, max |Δweight| {weights:.1e}, max |Δlogit| {logits:.1e}, \
             val accuracy {accuracy:.2}% ({} classes predicted)",
            distinct.len()
        );
        println!("{line}");
        if [losses, weights, logits].iter().any(|d| d.is_nan() || *d > TOLERANCE) {
            failed.push(line);
        }
    }
    // Every family is compared before the verdict, so a failure shows them all.
    assert!(failed.is_empty(), "over {TOLERANCE}:\n{}", failed.join("\n"));
}

/// `--max-length` must hold the special tokens the tokenizer adds: RoBERTa's pair template
/// `<s> A </s></s> B </s>` has 4 (BERT's 3), and a limit of 3 would give encodings longer than
/// the limit. Both `predict` and `train` refuse it by flag, and take 4.
#[test]
fn max_length_holds_the_tokenizers_special_tokens() {
    let roberta = made().join("roberta/model");
    let tokenizer = Tokenizer::from_dir(&roberta).unwrap();
    assert_eq!((tokenizer.added_tokens(false), tokenizer.added_tokens(true)), (2, 4));
    assert_eq!(tokenizer.encode("what is it ?", Some("who ?"), 4).input_ids.len(), 4);
    let bert = Tokenizer::from_dir(&made().join("bert/model")).unwrap();
    assert_eq!((bert.added_tokens(false), bert.added_tokens(true)), (2, 3));
    bert.check_max_length(3, true).unwrap();

    let data = made().join("data.csv");
    let out = made().join("max_length_predictions.csv");
    let (model, data_str, out_str) =
        (roberta.to_str().unwrap(), data.to_str().unwrap(), out.to_str().unwrap());
    let predict = |n: &'static str| {
        vec!["predict", "--device", "cpu", "--model", model, "--data", data_str, "--output", out_str]
            .into_iter()
            .chain(["--text-pair-column", "text", "--overwrite", "--max-length", n])
            .collect::<Vec<&str>>()
    };
    let needles = ["--max-length", "3 is too small", "adds 4 special tokens to each sentence pair"];
    assert_refused(&predict("3"), &needles);
    let (code, _, stderr) = run_bertfit(&predict("4"));
    assert_eq!(code, 0, "{stderr}");
    let train = TrainRun::tiny(&roberta, &data, &made().join("max_length_train"))
        .flag("--text-pair-column", "text")
        .flag("--max-length", "3");
    let (code, _, stderr) = train.run();
    assert_ne!(code, 0, "train took --max-length 3 for RoBERTa pairs");
    assert!(needles.iter().all(|n| stderr.contains(n)) && !stderr.contains("panicked"), "{stderr}");
}

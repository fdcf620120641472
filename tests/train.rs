//! Training parity: bertfit and `scripts/reference_train.py` (PyTorch) on identical work give the
//! same per-step losses and final weights; the saved folder loads in transformers with equal logits.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bertfit::data::dataset::{read_with_split_column, Columns};
use tch::Tensor;

use super::common::{
    bertfit, check, dataset, minilm_with_head, read_json, run_python, temp_dir, tiny_model, write_csv,
};
use super::parity::max_logit_difference;

/// `n_train` + `n_val` movie snippets as a `text,label,split` CSV, taken evenly through each split
/// (the file is grouped by sentiment, so a prefix would hold one class).
pub fn movie_subset(path: &Path, n_train: usize, n_val: usize) {
    subset("movies", path, n_train, n_val)
}

/// `n_train` + `n_val` rows of one of the setup's datasets (movies, sms, trec), taken evenly.
pub fn subset(name: &str, path: &Path, n_train: usize, n_val: usize) {
    let ds = read_with_split_column(&dataset(name), &Columns::default()).expect("dataset csv");
    let spread = |examples: &[bertfit::data::dataset::Example], n: usize, split: &'static str| {
        let stride = (examples.len() / n.max(1)).max(1);
        examples
            .iter()
            .step_by(stride)
            .take(n)
            .map(|e| (e.text.clone(), e.label.clone(), split))
            .collect::<Vec<_>>()
    };
    let mut rows = spread(&ds.train.examples, n_train, "train");
    rows.extend(spread(&ds.validation.examples, n_val, "val"));
    write_csv(path, &rows);
}

pub fn records(path: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == kind)
        .collect()
}

/// Runs both trainers with the same flags; returns (reference metrics, bertfit output folder, reference weights).
/// `bertfit_only` flags go to bertfit alone.
pub fn run_both(
    dir: &Path,
    model: &Path,
    data: &Path,
    flags: &[&str],
    bertfit_only: &[&str],
) -> (PathBuf, PathBuf, PathBuf) {
    let ref_metrics = dir.join("reference_metrics.jsonl");
    let ref_weights = dir.join("reference.safetensors");
    let mut args = vec!["--model", model.to_str().unwrap(), "--data", data.to_str().unwrap()];
    args.extend(flags);
    let mut py = args.clone();
    py.extend([
        "--metrics-out",
        ref_metrics.to_str().unwrap(),
        "--save-weights",
        ref_weights.to_str().unwrap(),
    ]);
    run_python("reference_train.py", &py);
    let out = dir.join("bertfit_out");
    let mut rs = vec!["train", "--output-dir", out.to_str().unwrap(), "--device", "cpu", "--overwrite"];
    rs.extend(args);
    rs.extend(bertfit_only);
    // Parity is with PyTorch's padded layout; the unpadded one has its own tests (tests/unpadded.rs).
    if !bertfit_only.iter().any(|f| f.starts_with("--reproduce-pytorch") || f.starts_with("--unpadded")) {
        rs.extend(["--unpadded", "false"]);
    }
    let result = bertfit().args(&rs).output().expect("spawn bertfit");
    check(&result, "bertfit train");
    (ref_metrics, out, ref_weights)
}

/// Largest relative difference of the per-step losses; asserts the same steps and rows were taken.
pub fn compare_steps(reference: &Path, ours: &Path) -> f64 {
    let (a, b) = (records(reference, "step"), records(ours, "step"));
    assert_eq!(a.len(), b.len(), "different number of steps");
    let mut worst: f64 = 0.0;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["rows"], y["rows"], "step {} used different examples", x["step"]);
        let (lx, ly) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
        println!("step {:>3}  pytorch {lx:.8}  bertfit {ly:.8}", x["step"]);
        worst = worst.max((lx - ly).abs() / lx.abs().max(1e-12));
    }
    worst
}

/// Largest absolute difference over all parameters of the two state dicts.
pub fn compare_weights(reference: &Path, ours: &Path) -> f64 {
    let a: HashMap<String, Tensor> = Tensor::read_safetensors(reference).unwrap().into_iter().collect();
    let b: HashMap<String, Tensor> = Tensor::read_safetensors(ours).unwrap().into_iter().collect();
    let mut worst: f64 = 0.0;
    for (name, t) in &b {
        let r = a.get(name).unwrap_or_else(|| panic!("reference lacks {name}"));
        worst = worst.max((t - r).abs().max().double_value(&[]));
    }
    assert!(b.len() >= a.len() - 1, "bertfit saved {} tensors, PyTorch {}", b.len(), a.len()); // PyTorch may keep position_ids
    worst
}

const FLAGS: &[&str] = &[
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--max-length",
    "64",
    "--padding",
    "longest",
    "--no-shuffle",
    "--threads",
    "2",
];

#[test]
fn random_config_30_steps_equal_pytorch_and_round_trip_through_transformers() {
    let dir = temp_dir("train_parity_random");
    let model = tiny_model(&dir, 2, Some(0.0), &[]);
    let data = dir.join("data.csv");
    movie_subset(&data, 480, 40);
    let mut flags = FLAGS.to_vec();
    flags.extend(["--learning-rate", "1e-3", "--seed", "7"]);
    let (ref_metrics, out, ref_weights) = run_both(&dir, &model, &data, &flags, &[]);
    let steps = compare_steps(&ref_metrics, &out.join("metrics.jsonl"));
    let weights = compare_weights(&ref_weights, &out.join("model.safetensors"));
    println!("random config: max relative loss difference {steps:e}, max weight difference {weights:e}");
    assert_eq!(records(&ref_metrics, "step").len(), 30);
    assert!(steps <= 1e-4, "losses differ by {steps} relative");
    assert!(weights <= 1e-4, "final weights differ by {weights}");

    // The saved folder is an HF model: transformers loads it and computes bertfit's logits.
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg["id2label"]["0"], "negative");
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    let texts: Vec<String> = super::parity::parity_texts(12);
    let diff = max_logit_difference(&out, &texts, 64);
    println!("round trip: max |logit difference| {diff:e}");
    assert!(diff <= 1e-5, "reloaded logits differ by {diff}");
}

#[test]
fn minilm_30_steps_equal_pytorch() {
    let dir = temp_dir("train_parity_minilm");
    let model = minilm_with_head(&dir, 2, 2, Some(0.0));
    let data = dir.join("data.csv");
    movie_subset(&data, 480, 16);
    let mut flags = FLAGS.to_vec();
    flags.extend(["--learning-rate", "5e-5", "--seed", "3"]);
    let (ref_metrics, out, ref_weights) = run_both(&dir, &model, &data, &flags, &[]);
    let steps = compare_steps(&ref_metrics, &out.join("metrics.jsonl"));
    let weights = compare_weights(&ref_weights, &out.join("model.safetensors"));
    println!("MiniLM: max relative loss difference {steps:e}, max weight difference {weights:e}");
    assert!(steps <= 1e-4, "losses differ by {steps} relative");
    assert!(weights <= 1e-4, "final weights differ by {weights}");
}

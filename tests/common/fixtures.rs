//! Fixtures the training tests share: subsets of the setup's datasets, the per-run fixture of the
//! resume tests, the finished run of the fault tests, metrics.jsonl records, and a bertfit run
//! beside `scripts/reference_train.py` with its step-by-step and weight-by-weight comparison.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bertfit::data::dataset::{read_with_split_column, Columns};
use tch::Tensor;

use super::{
    bertfit, check, dataset, run_python, small_csv, temp_dir, tiny_model, write_csv, Flags, TrainRun,
};

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

/// The tiny model (dropout 0.1) and 320 + 32 movie rows in a fresh `name` folder: 20 steps an
/// epoch at batch 16 (the checkpoint, requeue and tampered-checkpoint tests' fixture).
pub fn resume_fixture(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let model = tiny_model(&dir, 2, Some(0.1), &[]);
    let data = dir.join("data.csv");
    subset("movies", &data, 320, 32);
    (dir, model, data)
}

/// The fault tests' shared fixture: a tiny model, [`small_csv`]'s 12 rows, and a finished
/// run of them into `run` (the arguments `args` gives for model, data and output folder).
pub struct FinishedRun {
    pub model: PathBuf,
    pub data: PathBuf,
    pub out: PathBuf,
}

/// Makes a [`FinishedRun`] in a fresh `name` folder; panics if the run fails.
pub fn finished_run(
    name: &str,
    run: &str,
    args: impl FnOnce(&Path, &Path, &Path) -> Vec<String>,
) -> FinishedRun {
    let dir = temp_dir(name);
    let model = tiny_model(&dir, 2, None, &[]);
    let data = small_csv(&dir);
    let out = dir.join(run);
    check(
        &bertfit().args(args(&model, &data, &out)).output().unwrap(),
        &format!("bertfit train ({run} run)"),
    );
    FinishedRun { model, data, out }
}

/// The records of one `kind` (`step`, `epoch`, `eval`, ...) in a metrics.jsonl.
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
    flags: &Flags,
    bertfit_only: &[&str],
) -> (PathBuf, PathBuf, PathBuf) {
    let ref_metrics = dir.join("reference_metrics.jsonl");
    let ref_weights = dir.join("reference.safetensors");
    let mut py = vec!["--model", model.to_str().unwrap(), "--data", data.to_str().unwrap()];
    let flags = flags.args();
    py.extend(flags.iter().map(String::as_str));
    py.extend([
        "--metrics-out",
        ref_metrics.to_str().unwrap(),
        "--save-weights",
        ref_weights.to_str().unwrap(),
    ]);
    run_python("reference_train.py", &py);
    let out = dir.join("bertfit_out");
    let mut run = TrainRun::bare(model, data, &out).switch("--overwrite").append(&flags).append(bertfit_only);
    // Parity is with PyTorch's padded layout; the unpadded one has its own tests (tests/unpadded.rs).
    if !bertfit_only.iter().any(|f| f.starts_with("--reproduce-pytorch") || f.starts_with("--unpadded")) {
        run = run.append(&["--unpadded", "false"]);
    }
    let result = run.output();
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

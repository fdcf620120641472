//! HF's other two heads: multi-label classification (BCE with logits over multi-hot labels) and
//! regression (MSE on one output). bertfit's run equals HF's BertForSequenceClassification with the
//! same problem_type step for step, and the saved folder loads in transformers with that head.
use std::path::Path;

use bertfit::data::dataset::{read_with_split_column, Columns};

use super::common::fixtures::{compare_steps, compare_weights, records, run_both};
use super::common::{dataset, read_json, run_python, temp_dir, tiny_model, Flags};

/// Movie snippets with a derived label: multi-label sets (sentiment plus length and punctuation
/// tags; some rows have no tag) or a regression score (signed length).
fn derived_csv(path: &Path, n_train: usize, n_val: usize, multi: bool) {
    let ds = read_with_split_column(&dataset("movies"), &Columns::default()).unwrap();
    let mut out = String::from("text,label,split\n");
    for (examples, n, split) in
        [(&ds.train.examples, n_train, "train"), (&ds.validation.examples, n_val, "val")]
    {
        for e in examples.iter().step_by(examples.len() / n).take(n) {
            let len = e.text.chars().count();
            let label = if multi {
                let mut tags = Vec::new();
                if e.label == "positive" && len % 3 != 0 {
                    tags.push("positive");
                }
                if len > 90 {
                    tags.push("long");
                }
                if e.text.contains(',') {
                    tags.push("comma");
                }
                tags.join("|")
            } else {
                let sign = if e.label == "positive" { 1.0 } else { -1.0 };
                format!("{:.3}", sign * len as f64 / 100.0)
            };
            out.push_str(&format!("\"{}\",\"{label}\",{split}\n", e.text.replace('"', "\"\"")));
        }
    }
    std::fs::write(path, out).unwrap();
}

fn same_as_hf(name: &str, problem: &str, multi: bool, num_labels: usize) {
    let dir = temp_dir(name);
    let model = tiny_model(&dir, num_labels, Some(0.0), &[]);
    let data = dir.join("data.csv");
    derived_csv(&data, 160, 32, multi);
    let flags = Flags::parity().flag("--epochs", "2").switch("--no-shuffle");
    let flags = flags.flag("--seed", "3").flag("--learning-rate", "1e-3").flag("--problem-type", problem);
    let (reference, out, ref_weights) = run_both(&dir, &model, &data, &flags, &[]);
    assert_eq!(records(&reference, "step").len(), 20);
    let steps = compare_steps(&reference, &out.join("metrics.jsonl"));
    let weights = compare_weights(&ref_weights, &out.join("model.safetensors"));
    assert!(steps <= 1e-4, "losses differ by {steps} relative");
    assert!(weights <= 1e-4, "weights differ by {weights}");
    for (a, b) in records(&reference, "epoch").iter().zip(records(&out.join("metrics.jsonl"), "epoch")) {
        let (x, y) = (a["val_loss"].as_f64().unwrap(), b["val_loss"].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1e-6), "epoch {} val_loss {x} vs {y}", a["epoch"]);
    }
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg["problem_type"], problem);
    assert_eq!(cfg["id2label"].as_object().unwrap().len(), num_labels);
    // transformers loads the folder with that head and computes the same loss on a batch.
    let reload =
        run_python("parity/reload_head.py", &[out.to_str().unwrap(), data.to_str().unwrap(), problem]);
    assert!(reload.contains(&format!("problem_type {problem}")), "{reload}");
}

#[test]
fn multi_label_equals_hf_bce_with_logits() {
    same_as_hf("problem_multi_label", "multi_label_classification", true, 3);
}

#[test]
fn regression_equals_hf_mse() {
    same_as_hf("problem_regression", "regression", false, 1);
}

//! Training parity: bertfit and `scripts/reference_train.py` (PyTorch) on identical work give the
//! same per-step losses and final weights; the saved folder loads in transformers with equal logits.
use super::common::fixtures::{compare_steps, compare_weights, movie_subset, records, run_both};
use super::common::logits::max_logit_difference;
use super::common::{minilm_with_head, read_json, temp_dir, tiny_model, Flags};

/// One epoch in file order at max length 64, with `lr` and `seed`.
fn flags(lr: &str, seed: &str) -> Flags {
    let flags = Flags::parity().flag("--epochs", "1").flag("--max-length", "64").switch("--no-shuffle");
    flags.flag("--learning-rate", lr).flag("--seed", seed)
}

#[test]
fn random_config_30_steps_equal_pytorch_and_round_trip_through_transformers() {
    let dir = temp_dir("train_parity_random");
    let model = tiny_model(&dir, 2, Some(0.0), &[]);
    let data = dir.join("data.csv");
    movie_subset(&data, 480, 40);
    let (ref_metrics, out, ref_weights) = run_both(&dir, &model, &data, &flags("1e-3", "7"), &[]);
    let steps = compare_steps(&ref_metrics, &out.join("metrics.jsonl"));
    let weights = compare_weights(&ref_weights, &out.join("model.safetensors"));
    assert_eq!(records(&ref_metrics, "step").len(), 30);
    assert!(steps <= 1e-4, "losses differ by {steps} relative");
    assert!(weights <= 1e-4, "final weights differ by {weights}");

    // The saved folder is an HF model: transformers loads it and computes bertfit's logits.
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg["id2label"]["0"], "negative");
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    let texts: Vec<String> = super::common::logits::parity_texts(12);
    let diff = max_logit_difference(&out, &texts, 64);
    assert!(diff <= 1e-5, "reloaded logits differ by {diff}");
}

#[test]
fn minilm_20_steps_equal_pytorch() {
    let dir = temp_dir("train_parity_minilm");
    let model = minilm_with_head(&dir, 2, 2, Some(0.0));
    let data = dir.join("data.csv");
    movie_subset(&data, 320, 16);
    let (ref_metrics, out, ref_weights) = run_both(&dir, &model, &data, &flags("5e-5", "3"), &[]);
    assert_eq!(records(&ref_metrics, "step").len(), 20);
    let steps = compare_steps(&ref_metrics, &out.join("metrics.jsonl"));
    let weights = compare_weights(&ref_weights, &out.join("model.safetensors"));
    assert!(steps <= 1e-4, "losses differ by {steps} relative");
    assert!(weights <= 1e-4, "final weights differ by {weights}");
}

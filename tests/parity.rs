//! Forward parity: bertfit's eval-mode logits against HF transformers' on the same padded batch,
//! for MiniLM's real weights and for a small random config, both loaded from files Python wrote.

use super::common::logits::{max_logit_difference, parity_texts};
use super::common::{make_model, minilm_str, minilm_with_head, temp_dir};

#[test]
fn minilm_logits_equal_hf() {
    let model = minilm_with_head(&temp_dir("parity_minilm"), 3, 3, None);
    let diff = max_logit_difference(&model, &parity_texts(30), 512);
    assert!(diff <= 1e-5, "MiniLM logits differ from HF by {diff}");
}

#[test]
fn random_config_logits_equal_hf() {
    let random = [
        "--random",
        "--vocab-from",
        minilm_str(),
        "--layers",
        "3",
        "--hidden",
        "96",
        "--heads",
        "4",
        "--intermediate",
        "200",
    ];
    let model = make_model(&temp_dir("parity_random"), &random, 5, 11, None, &[]);
    let diff = max_logit_difference(&model, &parity_texts(20), 512);
    assert!(diff <= 1e-5, "random-config logits differ from HF by {diff}");
}

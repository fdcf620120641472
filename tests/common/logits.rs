//! The forward-parity helpers several test modules use: the texts, and bertfit's eval-mode logits
//! against HF transformers' (`scripts/parity/forward.py`) on the very same padded batch.
use std::path::Path;

use bertfit::data::dataset::{read_with_split_column, Columns};
use bertfit::model::{BertConfig, Layout};
use bertfit::weights::{from_pretrained, resolve};
use tch::{Device, Tensor};

use super::{dataset, run_python};

/// Texts of assorted lengths (so the batch is padded), a sentence longer than 512 tokens (so
/// truncation and the last position embedding are used) and an empty one.
pub fn parity_texts(n: usize) -> Vec<String> {
    let ds = read_with_split_column(&dataset("movies"), &Columns::default()).expect("movies.csv");
    let mut texts: Vec<String> = ds.train.examples.iter().take(n).map(|e| e.text.clone()).collect();
    texts.push("a very long review ".repeat(200));
    texts.push(String::new());
    texts
}

pub fn write_texts(dir: &Path, texts: &[String]) -> std::path::PathBuf {
    let path = dir.join("texts.jsonl");
    let lines: Vec<String> = texts.iter().map(|t| serde_json::to_string(t).unwrap()).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Runs HF on `model_dir` and bertfit on the very same input ids; returns the max |Δlogit|.
pub fn max_logit_difference(model_dir: &Path, texts: &[String], max_length: usize) -> f64 {
    let work = model_dir.parent().unwrap();
    let texts_path = write_texts(work, texts);
    let out = work.join("hf_forward.safetensors");
    run_python(
        "parity/forward.py",
        &[
            "--model",
            model_dir.to_str().unwrap(),
            "--texts",
            texts_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--max-length",
            &max_length.to_string(),
        ],
    );
    let hf: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(&out).unwrap().into_iter().collect();
    let ours = bertfit_logits(model_dir, &hf["input_ids"], &hf["attention_mask"], &hf["token_type_ids"]);
    assert_eq!(ours.size(), hf["logits"].size());
    (ours - &hf["logits"]).abs().max().double_value(&[])
}

pub fn bertfit_logits(model_dir: &Path, ids: &Tensor, mask: &Tensor, types: &Tensor) -> Tensor {
    let files = resolve(model_dir.to_str().unwrap()).unwrap();
    let config = BertConfig::from_file(&files.config).unwrap();
    let pre = from_pretrained(&files, &config, Device::Cpu).unwrap();
    assert!(pre.report.newly_initialized.is_empty(), "{:?}", pre.report.newly_initialized);
    tch::no_grad(|| pre.model.forward_t(ids, types, &Layout::padded(mask, Device::Cpu), false))
}

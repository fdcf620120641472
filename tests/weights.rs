//! Loading HF checkpoints as `from_pretrained` does: fp16 and pytorch_model.bin files, legacy names,
//! the classifier's init, unexpected tensors, and names found in the offline HF cache.
use std::collections::HashMap;
use std::path::Path;

use bertfit::model::BertConfig;
use bertfit::weights::{from_pretrained, resolve};
use tch::{Device, Kind, Tensor};

use super::common::logits::{bertfit_logits, max_logit_difference, parity_texts};
use super::common::{assert_refused, minilm, temp_dir, tiny_model, write_csv};

/// Two hand-written, padded inputs: "this is a test", "hello".
fn inputs() -> (Tensor, Tensor, Tensor) {
    let ids =
        Tensor::from_slice(&[101i64, 2023, 2003, 1037, 3231, 102, 101, 7592, 102, 0, 0, 0]).view([2, 6]);
    let mask = ids.ne(0).to_kind(Kind::Int64);
    let types = ids.zeros_like();
    (ids, mask, types)
}

#[test]
fn fp16_and_pytorch_bin_checkpoints_load_with_fp32_weights() {
    for (name, extra) in [("fp16", ["--dtype", "float16"]), ("bin", ["--format", "bin"])] {
        let dir = temp_dir(&format!("weights_{name}"));
        let model = tiny_model(&dir, 3, None, &extra);
        let files = resolve(model.to_str().unwrap()).unwrap();
        let config = BertConfig::from_file(&files.config).unwrap();
        let pre = from_pretrained(&files, &config, Device::Cpu).unwrap();
        for (n, t) in pre.vs.variables() {
            assert_eq!(t.kind(), Kind::Float, "{name}: {n} is {:?}", t.kind());
        }
        let diff = max_logit_difference(&model, &parity_texts(8), 128);
        assert!(diff <= 1e-5, "{name}: logits differ by {diff}");
    }
}

/// Old TF-converted layout: LayerNorm gamma/beta, no `bert.` prefix, `cls.*` heads, buffers.
#[test]
fn legacy_names_and_pretraining_heads_load_to_the_same_model() {
    let dir = temp_dir("weights_legacy");
    let model = tiny_model(&dir, 2, None, &[]);
    let legacy = dir.join("legacy");
    std::fs::create_dir_all(&legacy).unwrap();
    for f in ["config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
        let _ = std::fs::copy(model.join(f), legacy.join(f));
    }
    let tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(model.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let k = k.strip_prefix("bert.").map(str::to_string).unwrap_or(k);
            let k =
                k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta");
            (k, t)
        })
        .chain([
            ("cls.predictions.bias".to_string(), Tensor::zeros([7], (Kind::Float, Device::Cpu))),
            (
                "embeddings.position_ids".to_string(),
                Tensor::arange(512, (Kind::Int64, Device::Cpu)).unsqueeze(0),
            ),
        ])
        .collect();
    Tensor::write_safetensors(&tensors, legacy.join("model.safetensors")).unwrap();
    let (ids, mask, types) = inputs();
    let a = bertfit_logits(&model, &ids, &mask, &types);
    let b = bertfit_logits(&legacy, &ids, &mask, &types);
    assert_eq!((a - b).abs().max().double_value(&[]), 0.0);
}

#[test]
fn an_unexpected_tensor_is_named() {
    let dir = temp_dir("weights_unexpected");
    let model = tiny_model(&dir, 2, None, &[]);
    let mut tensors = Tensor::read_safetensors(model.join("model.safetensors")).unwrap();
    tensors.push(("bert.encoder.adapter.weight".into(), Tensor::zeros([2], (Kind::Float, Device::Cpu))));
    Tensor::write_safetensors(&tensors, model.join("model.safetensors")).unwrap();
    let files = resolve(model.to_str().unwrap()).unwrap();
    let config = BertConfig::from_file(&files.config).unwrap();
    let err = from_pretrained(&files, &config, Device::Cpu).err().expect("refused").to_string();
    assert!(err.contains("model.safetensors") && err.contains("bert.encoder.adapter.weight"), "{err}");
}

/// MiniLM has no classifier: it is initialised as HF does, with the very draw HF makes.
#[test]
fn the_new_classifier_gets_hf_init_from_the_seed() {
    let files = resolve(minilm().to_str().unwrap()).unwrap();
    let mut config = BertConfig::from_file(&files.config).unwrap();
    config.set_labels(&["a".into(), "b".into(), "c".into()]);
    let _generator = super::common::generator_lock();
    tch::manual_seed(123);
    let pre = from_pretrained(&files, &config, Device::Cpu).unwrap();
    assert_eq!(pre.report.newly_initialized, ["classifier.bias", "classifier.weight"]);
    let vars: HashMap<String, Tensor> = pre.vs.variables();
    tch::manual_seed(123);
    let expected = Tensor::empty([3, 384], (Kind::Float, Device::Cpu)).normal_(0.0, 0.02);
    assert_eq!((&vars["classifier.weight"] - expected).abs().max().double_value(&[]), 0.0);
    assert_eq!(vars["classifier.bias"].abs().sum(Kind::Float).double_value(&[]), 0.0);
}

/// `--model org/name` is found in HF_HOME's hub cache, at the snapshot refs/main names.
#[test]
fn a_model_name_resolves_offline_in_the_hf_cache() {
    let dir = temp_dir("weights_hf_cache");
    let model = tiny_model(&dir, 2, None, &[]);
    let repo = dir.join("hf_home/hub/models--acme--tiny-bert");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    for e in std::fs::read_dir(&model).unwrap() {
        let e = e.unwrap();
        std::os::unix::fs::symlink(e.path(), snapshot.join(e.file_name())).unwrap();
    }
    let data = dir.join("data.csv");
    let rows: Vec<(String, String, &str)> =
        (0..8).map(|i| (format!("text {i}"), (i % 2).to_string(), "train")).collect();
    write_csv(&data, &rows);
    let out = dir.join("out");
    let (code, _, err) = run_bertfit_with_env(
        &[
            "train",
            "--model",
            "acme/tiny-bert",
            "--data",
            data.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
            "--epochs",
            "1",
            "--max-length",
            "16",
        ],
        &dir.join("hf_home"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.join("model.safetensors").exists());
    assert_refused(
        &[
            "train",
            "--model",
            "acme/absent",
            "--data",
            data.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &["acme/absent"],
    );
}

/// `common::run_bertfit` with HF_HOME pointing at a cache made for the test.
fn run_bertfit_with_env(args: &[&str], hf_home: &Path) -> (i32, String, String) {
    let out = super::common::bertfit()
        .args(args)
        .env("HF_HOME", hf_home)
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

//! The BERT-like families (BERT, RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT) against transformers.
//! Tiny random models are made in the test by transformers itself (each family's config class,
//! `save_pretrained`: scripts/parity/families/make_tiny_models.py) and loaded through bertfit's own
//! path (`BertConfig::from_file`, `from_pretrained`): eval-mode logits on right-padded rows, padded
//! and unpadded layouts, against transformers'; masked-LM, pre-training and base-model checkpoints
//! load with the classification head initialised as HF does and the other head set aside; the
//! folder bertfit saves reloads in `AutoModelForSequenceClassification` with equal logits.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bertfit::model::{AttentionCore, BertConfig, Family, Layout};
use bertfit::weights::resolve::model_files;
use bertfit::weights::{from_pretrained, save_config, save_weights, Pretrained};
use tch::{Device, Tensor};

use crate::common::{run_python, temp_dir};

const FAMILIES: [&str; 5] = ["bert", "roberta", "xlm-roberta", "electra", "distilbert"];
const SCRIPT: &str = "parity/families/make_tiny_models.py";
/// Eval-mode fp32 logits of the same weights on the same ids: float rounding only.
const TOLERANCE: f64 = 1e-5;

/// The models, made once per test run (one Python process for all families).
pub(crate) fn made() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("families");
        println!("{}", run_python(SCRIPT, &["make", "--out", dir.to_str().unwrap()]));
        dir
    })
}

fn expected(family: &str) -> HashMap<String, Tensor> {
    let path = made().join(family).join("expected.safetensors");
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

pub(crate) fn load(dir: &Path) -> (BertConfig, Pretrained) {
    let files = model_files(dir).unwrap();
    let config = BertConfig::from_file(&files.config).unwrap();
    let pre = from_pretrained(&files, &config, Device::Cpu).unwrap();
    (config, pre)
}

pub(crate) fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// bertfit's eval-mode logits on `e`'s batch, padded or packed.
pub(crate) fn logits(pre: &Pretrained, e: &HashMap<String, Tensor>, packed: Option<AttentionCore>) -> Tensor {
    let mask = &e["attention_mask"];
    let layout = match packed {
        None => Layout::padded(mask, Device::Cpu),
        Some(core) => {
            let layout = Layout::packed(mask, Device::Cpu, core);
            assert!(matches!(layout, Layout::Packed { .. }), "{core:?}: not the packed layout");
            layout
        }
    };
    tch::no_grad(|| pre.model.forward_t(&e["input_ids"], &e["token_type_ids"], &layout, false))
}

#[test]
fn each_family_matches_transformers_padded_and_unpadded() {
    let mut failed = Vec::new();
    for family in FAMILIES {
        let (config, pre) = load(&made().join(family).join("cls"));
        assert_eq!(config.family().model_type(), family);
        assert!(pre.report.newly_initialized.is_empty(), "{family}: {:?}", pre.report.newly_initialized);
        assert!(pre.report.unused.is_empty(), "{family}: {:?}", pre.report.unused);
        let e = expected(family);
        let hf = &e["logits"];
        // Not a vacuous comparison: the rows (of different lengths) differ, and by more than 1e-5.
        assert!(max_abs(&hf.get(0), &hf.get(1)) > 1e-3, "{family}: rows alike");
        let mut diffs = vec![("padded".to_string(), max_abs(&logits(&pre, &e, None), hf))];
        for core in [AttentionCore::Padded, AttentionCore::PerSequence, AttentionCore::Grouped] {
            diffs.push((format!("unpadded {core:?}"), max_abs(&logits(&pre, &e, Some(core)), hf)));
        }
        let line: Vec<String> = diffs.iter().map(|(what, d)| format!("{what} {d:.2e}")).collect();
        let line = format!("{family}: max |Δlogit| {}", line.join(", "));
        println!("{line}");
        if diffs.iter().any(|(_, d)| d.is_nan() || *d >= TOLERANCE) {
            failed.push(line);
        }
    }
    // Every family is compared before the verdict, so a failure shows them all.
    assert!(failed.is_empty(), "over {TOLERANCE}:\n{}", failed.join("\n"));
}

/// The classification model's parameters a checkpoint of another task lacks.
fn new_head(family: &str, kind: &str) -> Vec<&'static str> {
    match (family, kind) {
        ("bert", "mlm") => {
            vec!["bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight"]
        }
        ("bert", _) => vec!["classifier.bias", "classifier.weight"],
        ("distilbert", _) => {
            vec!["classifier.bias", "classifier.weight", "pre_classifier.bias", "pre_classifier.weight"]
        }
        _ => vec![
            "classifier.dense.bias",
            "classifier.dense.weight",
            "classifier.out_proj.bias",
            "classifier.out_proj.weight",
        ],
    }
}

/// The prefix of the checkpoint keys another task's head has (empty: none).
fn other_head(family: &str, kind: &str) -> &'static str {
    match (family, kind) {
        ("bert", "mlm") => "cls.",
        ("roberta" | "xlm-roberta", "mlm") => "lm_head.",
        ("roberta" | "xlm-roberta", "base") => "pooler.",
        ("electra", "mlm") => "discriminator_predictions.",
        ("distilbert", "mlm") => "vocab_",
        _ => "",
    }
}

#[test]
fn masked_lm_pretraining_and_base_checkpoints_load_with_the_head_initialised() {
    for family in FAMILIES {
        for kind in ["mlm", "base"] {
            let dir = made().join(family).join(kind);
            let _generator = crate::common::generator_lock();
            tch::manual_seed(0);
            let (config, pre) = load(&dir);
            let report = &pre.report;
            assert_eq!(report.newly_initialized, new_head(family, kind), "{family} {kind}");
            let prefix = other_head(family, kind);
            assert_eq!(report.unused.is_empty(), prefix.is_empty(), "{family} {kind}: {:?}", report.unused);
            assert!(
                report.unused.iter().all(|k| k.starts_with(prefix)),
                "{family} {kind}: {:?}",
                report.unused
            );
            let vars = pre.vs.variables();
            for name in &report.newly_initialized {
                let t = &vars[name];
                if name.ends_with(".bias") {
                    assert_eq!(t.abs().max().double_value(&[]), 0.0, "{family} {kind}: {name} is not zeros");
                } else {
                    // HF's _init_weights: normal(0, initializer_range).
                    let std = t.std(true).double_value(&[]);
                    let r = config.initializer_range;
                    assert!(std > 0.5 * r && std < 1.5 * r, "{family} {kind}: {name} std {std}, not ~{r}");
                }
            }
            // Everything else came from the checkpoint: the logits are finite.
            let e = expected(family);
            let out = logits(&pre, &e, None);
            assert_eq!(out.size(), [5, 3]);
            assert!(bool::try_from(out.isfinite().all()).unwrap(), "{family} {kind}");
            println!("{family} {kind}: new {:?}, unused {:?}", report.newly_initialized, report.unused);
        }
    }
}

#[test]
fn a_missing_encoder_weight_is_still_refused_by_name() {
    let src = made().join("roberta").join("cls");
    let dir = temp_dir("families_missing");
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(src.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k != "roberta.encoder.layer.1.output.dense.weight")
        .collect();
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    let files = model_files(&dir).unwrap();
    let config = BertConfig::from_file(&files.config).unwrap();
    let err = from_pretrained(&files, &config, Device::Cpu).err().expect("refused").to_string();
    assert!(
        err.contains("missing from the checkpoint: 'roberta.encoder.layer.1.output.dense.weight'"),
        "{err}"
    );
}

#[test]
fn unknown_model_types_are_refused_by_name() {
    let dir = temp_dir("families_model_type");
    let path = dir.join("gpt2.json");
    std::fs::write(&path, r#"{"model_type": "gpt2", "hidden_size": 32}"#).unwrap();
    let err = BertConfig::from_file(&path).unwrap_err().to_string();
    let needle = "model_type 'gpt2' is not supported; bertfit fine-tunes bert, roberta, xlm-roberta, electra, distilbert";
    assert!(err.contains(path.to_str().unwrap()) && err.contains(needle), "{err}");
    assert_eq!(Family::from_model_type("electra"), Ok(Family::Electra));
}

#[test]
fn saved_folders_reload_in_transformers_with_equal_logits() {
    let out = temp_dir("families_saved");
    let mut jobs = Vec::new();
    let mut ours = HashMap::new();
    for family in FAMILIES {
        let (config, pre) = load(&made().join(family).join("cls"));
        let dir = out.join(family);
        std::fs::create_dir_all(&dir).unwrap();
        save_config(&dir, &config).unwrap();
        save_weights(&dir.join("model.safetensors"), &config, &pre.vs.variables()).unwrap();
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(saved["model_type"], family);
        assert_eq!(saved["architectures"][0], config.family().architecture());
        if family == "distilbert" {
            assert_eq!((saved["dim"].as_i64(), saved.get("hidden_size")), (Some(32), None), "{saved}");
        }
        let inputs = made().join(family).join("expected.safetensors");
        let result = out.join(format!("{family}.logits.safetensors"));
        jobs.push(format!("{}:{}:{}", dir.display(), inputs.display(), result.display()));
        ours.insert(family, (logits(&pre, &expected(family), None), result));
    }
    let args: Vec<&str> = std::iter::once("logits").chain(jobs.iter().map(String::as_str)).collect();
    let stdout = run_python(SCRIPT, &args);
    for family in FAMILIES {
        let (bertfit, result) = &ours[family];
        let hf: HashMap<String, Tensor> = Tensor::read_safetensors(result).unwrap().into_iter().collect();
        let diff = max_abs(bertfit, &hf["logits"]);
        println!("{family}: saved folder in transformers, max |Δlogit| {diff:.2e}");
        assert!(diff < TOLERANCE, "{family}: {diff}");
    }
    for family in FAMILIES {
        let class = Family::from_model_type(family).unwrap().architecture();
        assert!(stdout.contains(&format!("\"class\": \"{class}\"")), "{stdout}");
    }
}

/// A WordPiece vocabulary for the tiny models' 120 ids, with `[PAD]` at the family's pad id (1 for
/// RoBERTa and XLM-R, 0 otherwise) and the words of `small_csv`'s rows.
pub(crate) fn write_vocab(dir: &Path, pad_token_id: usize) {
    let mut vocab: Vec<String> =
        ["[CLS]", "[SEP]", "[UNK]", "[MASK]"].iter().map(|s| s.to_string()).collect();
    vocab.insert(pad_token_id, "[PAD]".into());
    for word in ["a", "short", "review", "number", "held", "out", "text"] {
        vocab.push(word.into());
    }
    vocab.extend((0..10).map(|i| i.to_string()));
    vocab.extend((vocab.len()..120).map(|i| format!("unused{i}")));
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
}

/// `bertfit train` from each family's masked-LM (or pre-training) checkpoint: the trainer builds
/// the family's classifier, says the head it initialised and the one it set aside, trains, and
/// saves a folder transformers loads as the family's *ForSequenceClassification with bertfit's
/// logits.
#[test]
fn train_starts_from_each_familys_masked_lm_checkpoint() {
    let work = temp_dir("families_train");
    let data = crate::common::small_csv(&work);
    let mut jobs = Vec::new();
    let mut ours = Vec::new();
    for family in FAMILIES {
        let model = work.join(family).join("model");
        std::fs::create_dir_all(&model).unwrap();
        let mlm = made().join(family).join("mlm");
        for file in ["config.json", "model.safetensors"] {
            std::fs::copy(mlm.join(file), model.join(file)).unwrap();
        }
        let pad = if family.contains("roberta") { 1 } else { 0 };
        write_vocab(&model, pad);
        let out = work.join(family).join("out");
        let run = crate::common::TrainRun::tiny(&model, &data, &out).flag("--epochs", "1");
        if family == "roberta" {
            // One token type, and a tokenizer that gives none (config.json's model_type says
            // RoBERTa): sentence pairs run, every token of type 0.
            let (code, _, stderr) = run.clone().flag("--text-pair-column", "text").run();
            assert_eq!(code, 0, "{stderr}");
        }
        let (code, _, stderr) = run.run();
        assert_eq!(code, 0, "{family}: {stderr}");
        let class = Family::from_model_type(family).unwrap().architecture();
        let head = new_head(family, "mlm");
        let said_new = format!("Some weights of {class} were not initialized");
        assert!(stderr.contains(&said_new) && head.iter().all(|n| stderr.contains(n)), "{family}: {stderr}");
        let said_unused =
            format!("were not used when initializing {class}: [\"{}", other_head(family, "mlm"));
        assert!(stderr.contains(&said_unused), "{family}: {stderr}");
        let (_, pre) = load(&out);
        assert!(pre.report.newly_initialized.is_empty() && pre.report.unused.is_empty(), "{family}");
        let inputs = made().join(family).join("expected.safetensors");
        let result = work.join(family).join("hf.safetensors");
        jobs.push(format!("{}:{}:{}", out.display(), inputs.display(), result.display()));
        ours.push((family, logits(&pre, &expected(family), None), result));
    }
    let args: Vec<&str> = std::iter::once("logits").chain(jobs.iter().map(String::as_str)).collect();
    run_python(SCRIPT, &args);
    for (family, bertfit, result) in ours {
        let hf: HashMap<String, Tensor> = Tensor::read_safetensors(&result).unwrap().into_iter().collect();
        let diff = max_abs(&bertfit, &hf["logits"]);
        println!("{family}: trained from its masked-LM checkpoint, reloaded in transformers: max |Δlogit| {diff:.2e}");
        assert!(diff < TOLERANCE, "{family}: {diff}");
    }
}

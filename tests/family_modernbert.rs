//! ModernBERT against transformers. Tiny random models made in the test by transformers itself
//! (scripts/parity/families/make_tiny_modernbert.py: ModernBertConfig with 3 layers, layer 0
//! global and 1, 2 local with a window of 2 positions either side, rows of up to 12 tokens; one
//! model per `classifier_pooling`), loaded through bertfit's own path: eval-mode logits padded
//! and on every packed attention core, right- and left-padded, against transformers' ("sdpa"
//! attention); the masked-LM checkpoint keeps its `head.*` and gets a classifier drawn as HF
//! draws it; the saved folder reloads in `AutoModelForSequenceClassification` with equal logits;
//! `bertfit train` runs from the masked-LM checkpoint, padded under `--reproduce-pytorch` and
//! unpadded by default.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bertfit::model::{AttentionCore, BertConfig, Layout};
use bertfit::weights::resolve::model_files;
use bertfit::weights::{from_pretrained, save_config, save_weights, Pretrained};
use tch::{Device, Tensor};

use crate::common::{run_python, temp_dir};

const POOLINGS: [&str; 2] = ["cls", "mean"];
const SCRIPT: &str = "parity/families/make_tiny_modernbert.py";
/// Eval-mode fp32 logits of the same weights on the same ids: float rounding only.
const TOLERANCE: f64 = 1e-5;
const CORES: [AttentionCore; 4] =
    [AttentionCore::Padded, AttentionCore::PerSequence, AttentionCore::Grouped, AttentionCore::Varlen];

pub(crate) fn made() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("family_modernbert");
        println!("{}", run_python(SCRIPT, &["make", "--out", dir.to_str().unwrap()]));
        dir
    })
}

fn expected(pooling: &str) -> HashMap<String, Tensor> {
    let path = made().join(pooling).join("expected.safetensors");
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

fn load(dir: &Path) -> (BertConfig, Pretrained) {
    let files = model_files(dir).unwrap();
    let config = BertConfig::from_file(&files.config).unwrap();
    let pre = from_pretrained(&files, &config, Device::Cpu).unwrap();
    (config, pre)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// bertfit's eval-mode logits on `e`'s batch (`left_`: the left-padded one), padded or packed.
fn logits(
    pre: &Pretrained,
    e: &HashMap<String, Tensor>,
    left: &str,
    packed: Option<AttentionCore>,
) -> Tensor {
    let (ids, mask) = (&e[&format!("{left}input_ids")], &e[&format!("{left}attention_mask")]);
    let layout = match packed {
        None => Layout::padded(mask, Device::Cpu),
        Some(core) => Layout::packed(mask, Device::Cpu, core),
    };
    tch::no_grad(|| pre.model.forward_t(ids, &e["token_type_ids"], &layout, false))
}

#[test]
fn modernbert_matches_transformers_padded_and_on_every_packed_core() {
    let mut failed = Vec::new();
    for pooling in POOLINGS {
        let (config, pre) = load(&made().join(pooling).join("cls"));
        assert_eq!(config.family().model_type(), "modernbert");
        assert!(pre.report.newly_initialized.is_empty() && pre.report.unused.is_empty(), "{pooling}");
        let e = expected(pooling);
        for left in ["", "left_"] {
            let hf = &e[&format!("{left}logits")];
            // Not a vacuous comparison: the rows (of different lengths) differ by more than 1e-5.
            assert!(max_abs(&hf.get(0), &hf.get(1)) > 1e-3, "{pooling}: rows alike");
            let mut diffs = vec![("padded".to_string(), max_abs(&logits(&pre, &e, left, None), hf))];
            for core in CORES {
                diffs.push((format!("unpadded {core:?}"), max_abs(&logits(&pre, &e, left, Some(core)), hf)));
            }
            let line: Vec<String> = diffs.iter().map(|(what, d)| format!("{what} {d:.2e}")).collect();
            let padding = if left.is_empty() { "right" } else { "left" };
            let line = format!("modernbert {pooling} ({padding} padding): max |Δlogit| {}", line.join(", "));
            println!("{line}");
            if diffs.iter().any(|(_, d)| d.is_nan() || *d >= TOLERANCE) {
                failed.push(line);
            }
        }
    }
    assert!(failed.is_empty(), "over {TOLERANCE}:\n{}", failed.join("\n"));
}

#[test]
fn masked_lm_checkpoint_keeps_its_head_and_the_new_parts_are_drawn_as_hf_draws_them() {
    for pooling in POOLINGS {
        let e = expected(pooling);
        for (kind, new, unused) in [
            ("mlm", vec!["classifier.bias", "classifier.weight"], vec!["decoder.bias"]),
            (
                "base",
                vec![
                    "classifier.bias",
                    "classifier.weight",
                    "head.dense.bias",
                    "head.dense.weight",
                    "head.norm.bias",
                    "head.norm.weight",
                ],
                vec![],
            ),
        ] {
            // The mean model has no head biases (classifier_bias, norm_bias false).
            let new: Vec<&str> = new
                .into_iter()
                .filter(|n| pooling == "cls" || !n.starts_with("head.") || n.ends_with("weight"))
                .collect();
            let _generator = crate::common::generator_lock();
            tch::manual_seed(7); // the script's INIT_SEED
            let (_, pre) = load(&made().join(pooling).join(kind));
            assert_eq!(pre.report.newly_initialized, new, "{pooling} {kind}");
            assert_eq!(pre.report.unused, unused, "{pooling} {kind}");
            // Every head and classifier tensor, kept or drawn, is what transformers holds after
            // from_pretrained from the same seed.
            let vars = pre.vs.variables();
            let mut compared = 0;
            for (key, hf) in &e {
                let Some(name) = key.strip_prefix(&format!("init_{kind}.")) else { continue };
                let diff = max_abs(&vars[name], hf);
                assert!(diff < 1e-7, "{pooling} {kind}: {name} differs from transformers' by {diff}");
                compared += 1;
            }
            assert!(compared >= 4, "{pooling} {kind}: {compared} tensors compared");
            let out = logits(&pre, &e, "", None);
            assert!(bool::try_from(out.isfinite().all()).unwrap(), "{pooling} {kind}");
        }
    }
}

#[test]
fn modernbert_config_keys_are_read_and_refused_by_name() {
    let read = |json: &str| BertConfig::from_json(json, Path::new("m/config.json"));
    let cfg = read(r#"{"model_type": "modernbert"}"#).unwrap();
    // ModernBertConfig's defaults: ModernBERT-base's sizes.
    assert_eq!((cfg.vocab_size, cfg.intermediate_size, cfg.num_hidden_layers), (50368, 1152, 22));
    assert_eq!((cfg.pad_token_id, cfg.classifier_dropout_prob()), (50283, 0.0));
    assert!(cfg.check_pairs(true).is_ok(), "no token types: pairs need none");
    for (json, key) in [
        (r#""classifier_pooling": "max""#, "classifier_pooling"),
        (r#""layer_types": ["full_attention"]"#, "layer_types"),
        (r#""local_attention": -4"#, "local_attention"),
        (r#""norm_eps": 0"#, "norm_eps"),
        (r#""mlp_dropout": 1.5"#, "mlp_dropout"),
        (r#""hidden_activation": "tanh""#, "hidden_activation"),
        (r#""norm_bias": "no""#, "norm_bias"),
        (
            r#""rope_parameters": {"full_attention": {"rope_type": "linear", "rope_theta": 1.0}}"#,
            "rope_parameters.full_attention.rope_type",
        ),
        (r#""global_attn_every_n_layers": 0"#, "global_attn_every_n_layers"),
        (r#""hidden_size": 36, "num_attention_heads": 4"#, "hidden_size"),
    ] {
        let err = read(&format!(r#"{{"model_type": "modernbert", {json}}}"#)).unwrap_err().to_string();
        assert!(err.contains("m/config.json") && err.contains(&format!("key '{key}")), "{json}: {err}");
    }
}

#[test]
fn saved_folders_reload_in_transformers_with_equal_logits() {
    let out = temp_dir("family_modernbert_saved");
    let mut jobs = Vec::new();
    let mut ours = Vec::new();
    for pooling in POOLINGS {
        let (config, pre) = load(&made().join(pooling).join("cls"));
        let dir = out.join(pooling);
        std::fs::create_dir_all(&dir).unwrap();
        save_config(&dir, &config).unwrap();
        save_weights(&dir.join("model.safetensors"), &config, &pre.vs.variables()).unwrap();
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(saved["architectures"][0], "ModernBertForSequenceClassification");
        // ModernBertConfig's keys, not BertConfig's.
        for absent in ["hidden_act", "type_vocab_size", "layer_norm_eps", "hidden_dropout_prob"] {
            assert!(saved.get(absent).is_none(), "{pooling}: {absent} in {saved}");
        }
        assert_eq!(saved["classifier_pooling"], pooling);
        let inputs = made().join(pooling).join("expected.safetensors");
        let result = out.join(format!("{pooling}.logits.safetensors"));
        jobs.push(format!("{}:{}:{}", dir.display(), inputs.display(), result.display()));
        ours.push((pooling, logits(&pre, &expected(pooling), "", None), result));
    }
    let args: Vec<&str> = std::iter::once("logits").chain(jobs.iter().map(String::as_str)).collect();
    let stdout = run_python(SCRIPT, &args);
    assert!(stdout.contains("\"class\": \"ModernBertForSequenceClassification\""), "{stdout}");
    for (pooling, bertfit, result) in ours {
        let hf: HashMap<String, Tensor> = Tensor::read_safetensors(&result).unwrap().into_iter().collect();
        let diff = max_abs(&bertfit, &hf["logits"]);
        println!("modernbert {pooling}: saved folder in transformers, max |Δlogit| {diff:.2e}");
        assert!(diff < TOLERANCE, "{pooling}: {diff}");
    }
}

/// `bertfit train` from the masked-LM checkpoints (dropouts 0.1 everywhere): the cls model
/// padded under `--reproduce-pytorch`, the mean model unpadded (the CPU's default, the grouped
/// core); the classifier said as initialised and the decoder as unused; the saved folders reload
/// in transformers with bertfit's logits.
#[test]
fn train_runs_from_the_masked_lm_checkpoint_padded_and_unpadded() {
    let work = temp_dir("family_modernbert_train");
    let data = crate::common::small_csv(&work);
    let mut jobs = Vec::new();
    let mut ours = Vec::new();
    for (pooling, reproduce) in [("cls", true), ("mean", false)] {
        let model = work.join(pooling).join("model");
        std::fs::create_dir_all(&model).unwrap();
        let mlm = made().join(pooling).join("mlm");
        for file in ["config.json", "model.safetensors"] {
            std::fs::copy(mlm.join(file), model.join(file)).unwrap();
        }
        crate::families::write_vocab(&model, 0);
        let out = work.join(pooling).join("out");
        let mut run = crate::common::TrainRun::tiny(&model, &data, &out).flag("--epochs", "1");
        if reproduce {
            run = run.switch("--reproduce-pytorch");
        }
        let (code, _, stderr) = run.run();
        assert_eq!(code, 0, "{pooling}: {stderr}");
        let said_new = "Some weights of ModernBertForSequenceClassification were not initialized";
        assert!(stderr.contains(said_new) && stderr.contains("classifier.weight"), "{pooling}: {stderr}");
        assert!(
            !stderr.contains("\"head.dense.weight\""),
            "{pooling}: the head is the checkpoint's: {stderr}"
        );
        assert!(stderr.contains("[\"decoder.bias\"]"), "{pooling}: {stderr}");
        let (_, pre) = load(&out);
        assert!(pre.report.newly_initialized.is_empty() && pre.report.unused.is_empty(), "{pooling}");
        let inputs = made().join(pooling).join("expected.safetensors");
        let result = work.join(pooling).join("hf.safetensors");
        jobs.push(format!("{}:{}:{}", out.display(), inputs.display(), result.display()));
        ours.push((pooling, logits(&pre, &expected(pooling), "", None), result));
    }
    let args: Vec<&str> = std::iter::once("logits").chain(jobs.iter().map(String::as_str)).collect();
    run_python(SCRIPT, &args);
    for (pooling, bertfit, result) in ours {
        let hf: HashMap<String, Tensor> = Tensor::read_safetensors(&result).unwrap().into_iter().collect();
        let diff = max_abs(&bertfit, &hf["logits"]);
        println!("modernbert {pooling}: trained, reloaded in transformers: max |Δlogit| {diff:.2e}");
        assert!(diff < TOLERANCE, "{pooling}: {diff}");
    }
}

//! DeBERTa-v2/v3 (`model_type` "deberta-v2") against transformers. Tiny random models are made in
//! the test by transformers itself (DebertaV2Config in v3's shape and in v2's:
//! scripts/parity/families/make_tiny_deberta.py) and loaded through bertfit's own path: eval-mode
//! logits on right- and left-padded rows whose relative positions reach the log buckets, padded
//! and on every packed attention core; masked-LM and base checkpoints load with the pooler and
//! classifier initialised as HF does; the saved folder reloads in transformers with equal logits;
//! `bertfit train` runs end to end (unpadded by default on the CPU, and `--reproduce-pytorch`).
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bertfit::model::{AttentionCore, Family};
use bertfit::weights::{save_config, save_weights, Pretrained};
use tch::Tensor;

use crate::common::{run_python, temp_dir};
use crate::families::{load, logits, max_abs, write_vocab};

const SCRIPT: &str = "parity/families/make_tiny_deberta.py";
const SHAPES: [&str; 2] = ["v3", "v2"];
/// Eval-mode fp32 logits of the same weights on the same ids: float rounding only.
const TOLERANCE: f64 = 1e-5;

pub(crate) fn made() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("family_deberta");
        println!("{}", run_python(SCRIPT, &["make", "--out", dir.to_str().unwrap()]));
        dir
    })
}

/// The batch (and HF's logits) as `families::logits` reads it; `left`: the left-padded copy.
fn expected(shape: &str, left: bool) -> HashMap<String, Tensor> {
    let path = made().join(shape).join("expected.safetensors");
    let all: HashMap<String, Tensor> = Tensor::read_safetensors(path).unwrap().into_iter().collect();
    let prefix = if left { "left_" } else { "" };
    ["input_ids", "attention_mask", "token_type_ids", "logits"]
        .into_iter()
        .map(|k| (k.to_string(), all[&format!("{prefix}{k}")].shallow_clone()))
        .collect()
}

/// Max |Δlogit| against transformers of the padded layout and of each packed core, on `e`.
fn diffs(pre: &Pretrained, e: &HashMap<String, Tensor>) -> Vec<(String, f64)> {
    let hf = &e["logits"];
    let mut diffs = vec![("padded".to_string(), max_abs(&logits(pre, e, None), hf))];
    for core in
        [AttentionCore::Padded, AttentionCore::PerSequence, AttentionCore::Grouped, AttentionCore::Varlen]
    {
        diffs.push((format!("unpadded {core:?}"), max_abs(&logits(pre, e, Some(core)), hf)));
    }
    diffs
}

#[test]
fn deberta_matches_transformers_padded_and_unpadded() {
    let mut failed = Vec::new();
    for shape in SHAPES {
        let (config, pre) = load(&made().join(shape).join("cls"));
        assert_eq!(config.family(), Family::DebertaV2);
        assert!(pre.report.newly_initialized.is_empty(), "{shape}: {:?}", pre.report.newly_initialized);
        assert!(pre.report.unused.is_empty(), "{shape}: {:?}", pre.report.unused);
        for left in [false, true] {
            let e = expected(shape, left);
            let hf = &e["logits"];
            // Not a vacuous comparison: the rows (of different lengths) differ, and by more than 1e-5.
            assert!(max_abs(&hf.get(0), &hf.get(1)) > 1e-3, "{shape}: rows alike");
            let d = diffs(&pre, &e);
            let line: Vec<String> = d.iter().map(|(what, d)| format!("{what} {d:.2e}")).collect();
            let padding = if left { "left" } else { "right" };
            let line = format!("deberta {shape} ({padding}-padded): max |Δlogit| {}", line.join(", "));
            println!("{line}");
            if d.iter().any(|(_, d)| d.is_nan() || *d >= TOLERANCE) {
                failed.push(line);
            }
        }
    }
    assert!(failed.is_empty(), "over {TOLERANCE}:\n{}", failed.join("\n"));
}

#[test]
fn deberta_masked_lm_and_base_checkpoints_load_with_the_head_initialised() {
    let head = ["classifier.bias", "classifier.weight", "pooler.dense.bias", "pooler.dense.weight"];
    for (shape, mlm_head) in [("v3", "cls.predictions."), ("v2", "lm_predictions.")] {
        for (kind, other) in [("mlm", mlm_head), ("base", "")] {
            let _generator = crate::common::generator_lock();
            tch::manual_seed(0);
            let (config, pre) = load(&made().join(shape).join(kind));
            let report = &pre.report;
            assert_eq!(report.newly_initialized, head, "{shape} {kind}");
            assert_eq!(report.unused.is_empty(), other.is_empty(), "{shape} {kind}: {:?}", report.unused);
            assert!(
                report.unused.iter().all(|k| k.starts_with(other)),
                "{shape} {kind}: {:?}",
                report.unused
            );
            let vars = pre.vs.variables();
            for name in &report.newly_initialized {
                let t = &vars[name];
                if name.ends_with(".bias") {
                    assert_eq!(t.abs().max().double_value(&[]), 0.0, "{shape} {kind}: {name} is not zeros");
                } else {
                    // HF's _init_weights: normal(0, initializer_range).
                    let std = t.std(true).double_value(&[]);
                    let r = config.initializer_range;
                    assert!(std > 0.5 * r && std < 1.5 * r, "{shape} {kind}: {name} std {std}, not ~{r}");
                }
            }
            let out = logits(&pre, &expected(shape, false), None);
            assert_eq!(out.size(), [5, 3]);
            assert!(bool::try_from(out.isfinite().all()).unwrap(), "{shape} {kind}");
            println!(
                "deberta {shape} {kind}: new {:?}, unused {:?}",
                report.newly_initialized, report.unused
            );
        }
    }
}

/// HF's `_keys_to_ignore_on_load_unexpected = ["position_embeddings"]`: a v3 checkpoint that
/// carries an absolute position table (position_biased_input false) loads, the table set aside;
/// any other tensor without a place is still refused by name.
#[test]
fn deberta_v3_checkpoint_with_a_position_table_loads_it_set_aside() {
    let src = made().join("v3").join("cls");
    let dir = temp_dir("family_deberta_positions");
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let mut tensors: Vec<(String, Tensor)> =
        Tensor::read_safetensors(src.join("model.safetensors")).unwrap().into_iter().collect();
    let table = "deberta.embeddings.position_embeddings.weight";
    tensors.push((table.into(), Tensor::ones([40, 32], (tch::Kind::Float, tch::Device::Cpu))));
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    let (_, pre) = load(&dir);
    assert_eq!(pre.report.unused, [table]);
    let e = expected("v3", false);
    assert!(max_abs(&logits(&pre, &e, None), &e["logits"]) < TOLERANCE);
    tensors.push((
        "deberta.embeddings.extra.weight".into(),
        Tensor::ones([2], (tch::Kind::Float, tch::Device::Cpu)),
    ));
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    let files = bertfit::weights::resolve::model_files(&dir).unwrap();
    let config = bertfit::model::BertConfig::from_file(&files.config).unwrap();
    let err = bertfit::weights::from_pretrained(&files, &config, tch::Device::Cpu).err().expect("refused");
    assert!(err.to_string().contains("no place for: 'deberta.embeddings.extra.weight'"), "{err}");
}

/// transformers' logits for each (model folder, batch) in one Python process.
fn hf_logits(jobs: &[(PathBuf, &'static str, PathBuf)]) -> (Vec<Tensor>, String) {
    let specs: Vec<String> = jobs
        .iter()
        .map(|(dir, shape, out)| {
            let inputs = made().join(shape).join("expected.safetensors");
            format!("{}:{}:{}", dir.display(), inputs.display(), out.display())
        })
        .collect();
    let args: Vec<&str> = std::iter::once("logits").chain(specs.iter().map(String::as_str)).collect();
    let stdout = run_python(SCRIPT, &args);
    let read = |out: &PathBuf| {
        Tensor::read_safetensors(out).unwrap().into_iter().find(|(k, _)| k == "logits").unwrap().1
    };
    (jobs.iter().map(|(_, _, out)| read(out)).collect(), stdout)
}

/// A model folder, the batch its logits are compared on, where transformers' go, and bertfit's.
type Job = ((PathBuf, &'static str, PathBuf), (String, Tensor));

/// bertfit's save of each shape's classifier (config.json as HF writes it, model.safetensors).
fn saved_folders(out: &Path) -> Vec<Job> {
    let mut jobs = Vec::new();
    for shape in SHAPES {
        let (config, pre) = load(&made().join(shape).join("cls"));
        let dir = out.join(shape);
        std::fs::create_dir_all(&dir).unwrap();
        save_config(&dir, &config).unwrap();
        save_weights(&dir.join("model.safetensors"), &config, &pre.vs.variables()).unwrap();
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(saved["model_type"], "deberta-v2");
        assert_eq!(saved["architectures"][0], "DebertaV2ForSequenceClassification");
        let ours = logits(&pre, &expected(shape, false), None);
        let result = out.join(format!("{shape}.logits.safetensors"));
        jobs.push(((dir, shape, result), (format!("{shape} saved"), ours)));
    }
    jobs
}

/// `bertfit train` from the v3 masked-LM checkpoint, unpadded (the CPU's default) and under
/// `--reproduce-pytorch` (padded, PyTorch's dropout draws): the trainer says the head it
/// initialised and the one it set aside, trains, and saves a folder.
fn trained_folders(work: &Path) -> Vec<Job> {
    let data = crate::common::small_csv(work);
    let model = work.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(made().join("v3").join("mlm").join(file), model.join(file)).unwrap();
    }
    write_vocab(&model, 0);
    let mut jobs = Vec::new();
    for (name, flags) in [("unpadded", vec![]), ("reproduce", vec!["--reproduce-pytorch"])] {
        let out = work.join(name);
        let run = crate::common::TrainRun::tiny(&model, &data, &out).flag("--epochs", "1").append(&flags);
        let (code, _, stderr) = run.run();
        assert_eq!(code, 0, "{name}: {stderr}");
        let said_new = "Some weights of DebertaV2ForSequenceClassification were not initialized";
        assert!(stderr.contains(said_new) && stderr.contains("pooler.dense.weight"), "{name}: {stderr}");
        let said_unused =
            "were not used when initializing DebertaV2ForSequenceClassification: [\"cls.predictions.";
        assert!(stderr.contains(said_unused), "{name}: {stderr}");
        let (_, pre) = load(&out);
        assert!(pre.report.newly_initialized.is_empty() && pre.report.unused.is_empty(), "{name}");
        let ours = logits(&pre, &expected("v3", false), None);
        let result = work.join(format!("{name}.hf.safetensors"));
        jobs.push(((out, "v3", result), (format!("v3 trained {name}"), ours)));
    }
    jobs
}

/// The folders bertfit saves, as they are and after `bertfit train`, reload in
/// AutoModelForSequenceClassification as DebertaV2ForSequenceClassification with bertfit's logits
/// (one Python process for all four).
#[test]
fn deberta_saved_and_trained_folders_reload_in_transformers_with_equal_logits() {
    let mut jobs = saved_folders(&temp_dir("family_deberta_saved"));
    jobs.extend(trained_folders(&temp_dir("family_deberta_train")));
    let (specs, ours): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
    let (hf, stdout) = hf_logits(&specs);
    for ((what, ours), hf) in ours.iter().zip(&hf) {
        let diff = max_abs(ours, hf);
        println!("deberta {what}: folder reloaded in transformers, max |Δlogit| {diff:.2e}");
        assert!(diff < TOLERANCE, "{what}: {diff}");
    }
    assert_eq!(stdout.matches("\"class\": \"DebertaV2ForSequenceClassification\"").count(), 4, "{stdout}");
}

/// The grouped core (the CPU's default) on rows of very different lengths, cut into several
/// groups each padded to its own longest: logits and every gradient equal the padded layout's
/// (itself equal to transformers' above), relative positions reaching the log buckets. The
/// transformers batch above is one group (rows of at most 12 tokens), so this is where the
/// grouped DeBERTa path is checked.
#[test]
fn deberta_grouped_core_over_several_groups_equals_the_padded_layout() {
    use bertfit::model::{cross_entropy, BertConfig, Layout, SequenceClassifier};
    use tch::{Device, Kind};
    let json = r#"{"model_type": "deberta-v2", "vocab_size": 200, "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 48,
        "relative_attention": true, "position_buckets": 16, "max_relative_positions": 64,
        "pos_att_type": ["p2c", "c2p"], "position_biased_input": false, "share_att_key": true,
        "norm_rel_ebd": "layer_norm", "max_position_embeddings": 128, "type_vocab_size": 0,
        "id2label": {"0": "a", "1": "b"}}"#;
    let cfg = BertConfig::from_json(json, Path::new("grouped.json")).unwrap();
    let _generator = crate::common::generator_lock();
    tch::manual_seed(4);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = SequenceClassifier::new(vs.root(), &cfg);
    bertfit::weights::init::init_weights(&vs.variables(), &cfg, |_| true);
    let lengths = [3i64, 120, 5, 96, 2, 110, 7];
    let t = 120;
    let mask = crate::common::right_padding_mask(&lengths, t);
    let ids = Tensor::randint_low(3, 200, [lengths.len() as i64, t], (Kind::Int64, Device::Cpu)) * &mask;
    let types = ids.zeros_like();
    let labels = Tensor::from_slice(&[0i64, 1, 1, 0, 1, 0, 1]);
    let run = |layout: &Layout| {
        vs.variables().into_values().for_each(|mut v| v.zero_grad());
        let logits = model.forward_t(&ids, &types, layout, false);
        cross_entropy(&logits, &labels).backward();
        let mut grads: Vec<(String, Tensor)> =
            vs.variables().into_iter().map(|(n, v)| (n, v.grad().copy())).collect();
        grads.sort_by(|a, b| a.0.cmp(&b.0));
        (logits.detach(), grads)
    };
    let grouped = Layout::packed(&mask, Device::Cpu, AttentionCore::Grouped);
    let Layout::Packed { packing, .. } = &grouped else { panic!("not packed") };
    let groups = packing.length_groups().map(|g| g.num_groups()).unwrap_or(0);
    assert!(groups >= 2, "the rows should be cut into several groups, got {groups}");
    let (want, want_grads) = run(&Layout::padded(&mask, Device::Cpu));
    let (got, got_grads) = run(&grouped);
    let d = max_abs(&got, &want);
    assert!(d <= TOLERANCE, "logits differ by {d:e} ({groups} groups)");
    for ((name, g), (_, w)) in got_grads.iter().zip(&want_grads) {
        let d = max_abs(g, w);
        let largest = w.abs().max().double_value(&[]);
        assert!(d <= 1e-5 * largest.max(1e-3), "{name}: gradients differ by {d:e} (largest {largest:e})");
    }
}

/// The unpadded decision's measurement (run by hand: `cargo test --release --test integration
/// deberta_packed_against_padded_timing -- --ignored --nocapture`): a training step (forward and
/// backward) of a DeBERTa-v3-xsmall-wide model (4 layers) on 16 rows of 16..128 tokens, padded
/// and on each packed core, one thread.
#[test]
#[ignore]
fn deberta_packed_against_padded_timing() {
    use bertfit::model::{BertConfig, Layout, SequenceClassifier};
    use tch::{Device, Kind};
    let json = r#"{"model_type": "deberta-v2", "vocab_size": 1000, "hidden_size": 384,
        "num_hidden_layers": 4, "num_attention_heads": 6, "intermediate_size": 1536,
        "relative_attention": true, "position_buckets": 256, "max_relative_positions": 512,
        "pos_att_type": ["p2c", "c2p"], "position_biased_input": false, "share_att_key": true,
        "norm_rel_ebd": "layer_norm"}"#;
    let cfg = BertConfig::from_json(json, Path::new("timing.json")).unwrap();
    let _generator = crate::common::generator_lock();
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = SequenceClassifier::new(vs.root(), &cfg);
    bertfit::weights::init::init_weights(&vs.variables(), &cfg, |_| true);
    let lengths: Vec<i64> = (0..16).map(|i| 16 + (i * 37) % 113).collect();
    let t = *lengths.iter().max().unwrap();
    let mask = crate::common::right_padding_mask(&lengths, t);
    let ids = Tensor::randint_low(5, 1000, [16, t], (Kind::Int64, Device::Cpu)) * &mask;
    let types = ids.zeros_like();
    let step = |layout: &Layout| {
        let logits = model.forward_t(&ids, &types, layout, true);
        logits.sum(Kind::Float).backward();
    };
    let mut report = Vec::new();
    for (name, packed) in [
        ("padded", None),
        ("packed Padded", Some(AttentionCore::Padded)),
        ("packed PerSequence", Some(AttentionCore::PerSequence)),
        ("packed Grouped", Some(AttentionCore::Grouped)),
    ] {
        let layout = || match packed {
            None => Layout::padded(&mask, Device::Cpu),
            Some(core) => Layout::packed(&mask, Device::Cpu, core),
        };
        step(&layout());
        let start = std::time::Instant::now();
        for _ in 0..3 {
            step(&layout());
        }
        report.push(format!("{name} {:.0} ms", start.elapsed().as_secs_f64() * 1000.0 / 3.0));
    }
    println!("deberta training step, 16 rows of 16..128 tokens: {}", report.join(", "));
}

//! Every family on every path bertfit has (issue 21), with the real `bertfit` binary on each
//! family's tiny random *ForSequenceClassification model (made by transformers: families.rs,
//! family_modernbert.rs, family_deberta.rs) and a 3-class CSV of 12 + 6 rows:
//!   precision: fp32, bf16 and fp16 (autocast, fp16 with its loss scaler) train with finite losses
//!     that stay near fp32's yet differ from them, and the saved folders predict as transformers;
//!   checkpoints: a run resumed from its step-2 checkpoint ends with the uninterrupted run's
//!     remaining losses and weights, bitwise (padded layout, dropout and shuffling on);
//!   predict/evaluate: `bertfit predict` gives transformers' softmax of the saved folder and
//!     `bertfit evaluate` the accuracy of transformers' predictions;
//!   data-parallel: 2 ranks started by the real `torchrun` train as one process on the combined
//!     batch (DDP's equality test's tolerance, tests/dist.rs).
//! Each test loops over every family and reports all failures at once; the transformers side is
//! one Python process for all folders (paths_reference.py).
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::fixtures::{compare_weights, records};
use crate::common::{bertfit, outcome, python, read_json, run_python, temp_dir, write_csv, TrainRun};

/// A family on every path: its model_type, its tiny classification model (made once per test
/// process) and its pad id (for the vocabulary `write_vocab` writes).
struct Family {
    name: &'static str,
    model: fn() -> PathBuf,
    pad: usize,
}

/// One line per family.
const FAMILIES: &[Family] = &[
    Family { name: "bert", model: || crate::families::made().join("bert/cls"), pad: 0 },
    Family { name: "roberta", model: || crate::families::made().join("roberta/cls"), pad: 1 },
    Family { name: "xlm-roberta", model: || crate::families::made().join("xlm-roberta/cls"), pad: 1 },
    Family { name: "electra", model: || crate::families::made().join("electra/cls"), pad: 0 },
    Family { name: "distilbert", model: || crate::families::made().join("distilbert/cls"), pad: 0 },
    Family { name: "modernbert", model: || crate::family_modernbert::made().join("cls/cls"), pad: 0 },
    // DeBERTa-v3's shape (the published v3 checkpoints': no absolute positions, no token types).
    Family { name: "deberta-v2", model: || crate::family_deberta::made().join("v3/cls"), pad: 0 },
];
const SCRIPT: &str = "parity/families/paths_reference.py";
const PRECISIONS: [&str; 3] = ["fp32", "bf16", "fp16"];
/// Probabilities of the same fp32 weights on the same rows (predict computes in fp32).
const PROBS: f64 = 1e-5;
/// Step losses under autocast against fp32's, relative: bf16 keeps 8 mantissa bits, fp16 11.
fn loss_tolerance(precision: &str) -> f64 {
    if precision == "bf16" {
        3e-2
    } else {
        5e-3
    }
}

/// The family's model as a training folder: its config and weights and a vocabulary for them.
fn model_dir(work: &Path, family: &str, src: &Path, pad: usize) -> PathBuf {
    let model = work.join(family).join("model");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(file), model.join(file)).unwrap();
    }
    crate::families::write_vocab(&model, pad);
    model
}

/// 12 training rows (balanced) and 6 validation rows with the models' 3 labels, in `write_vocab`'s
/// words.
fn csv(dir: &Path) -> PathBuf {
    let labels = ["neg", "neu", "pos"];
    let mut rows: Vec<(String, String, &str)> = (0..12)
        .map(|i| (format!("a short review number {i} {}", i % 5), labels[i % 3].to_string(), "train"))
        .collect();
    // Validation labels 3:2:1, so that even a model that predicts one class has an accuracy
    // naming which (1/2, 1/3 or 1/6).
    let val = [0, 0, 0, 1, 1, 2];
    rows.extend(
        val.iter()
            .enumerate()
            .map(|(i, &l)| (format!("held out text {i} {}", 9 - i), labels[l].to_string(), "val")),
    );
    let path = dir.join("data.csv");
    write_csv(&path, &rows);
    path
}

/// The run every path makes: batch 4, 2 epochs (6 steps), learning rate 1e-3 (tests/dist.rs's), seeded; dropout
/// as the model's config says (0.1), shuffled.
fn run(model: &Path, data: &Path, out: &Path) -> TrainRun {
    TrainRun::tiny(model, data, out).flag("--epochs", "2").flag("--learning-rate", "1e-3").flag("--seed", "3")
}

/// Step losses of a finished run's metrics.jsonl.
fn losses(out: &Path) -> Vec<f64> {
    records(&out.join("metrics.jsonl"), "step").iter().map(|r| r["loss"].as_f64().unwrap()).collect()
}

/// Runs `bertfit` with `args`; `Err` names `what` with its stderr when it fails.
fn bertfit_ok(args: &[&str], what: &str) -> Result<String, String> {
    let (code, stdout, stderr) = outcome(&bertfit().args(args).output().unwrap());
    if code == 0 {
        Ok(stdout)
    } else {
        Err(failure(what, code, &stderr))
    }
}

/// A failed command named with its exit code and the end of its stderr, on one line.
fn failure(what: &str, code: i32, stderr: &str) -> String {
    let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
    format!("{what}: exit {code}: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
}

fn train(run: &TrainRun, what: &str) -> Result<(), String> {
    let (code, _, stderr) = run.run();
    if code == 0 {
        Ok(())
    } else {
        Err(failure(what, code, &stderr))
    }
}

/// The runs the precision and predict/evaluate paths share (one Python process for both): per
/// family and precision (fp32, bf16, fp16) a trained folder work/FAMILY/PRECISION with its `bertfit
/// predict` CSV and transformers' JSON of it (hf.json), or why training or predict failed.
struct Trained {
    work: PathBuf,
    data: PathBuf,
    failed: HashMap<(String, String), String>,
}

impl Trained {
    fn out(&self, family: &str, precision: &str) -> PathBuf {
        self.work.join(family).join(precision)
    }
}

/// Made once per test process, by whichever of the two tests comes first.
fn trained() -> &'static Trained {
    static RUNS: OnceLock<Trained> = OnceLock::new();
    RUNS.get_or_init(|| {
        let work = temp_dir("family_paths_trained");
        let data = csv(&work);
        let mut failed = HashMap::new();
        let mut jobs = Vec::new();
        for &Family { name: family, model: src, pad } in FAMILIES {
            let model = model_dir(&work, family, &src(), pad);
            for precision in PRECISIONS {
                let out = work.join(family).join(precision);
                let done = train(&run(&model, &data, &out).flag("--precision", precision), "train")
                    .and_then(|_| predict(&out, &data));
                match done {
                    Ok(()) => jobs.push(format!(
                        "{}:{}:{}",
                        out.display(),
                        data.display(),
                        out.join("hf.json").display()
                    )),
                    Err(e) => {
                        failed.insert((family.to_string(), precision.to_string()), e);
                    }
                }
            }
        }
        let args: Vec<&str> = jobs.iter().map(String::as_str).collect();
        run_python(SCRIPT, &args);
        Trained { work, data, failed }
    })
}

/// `bertfit predict` of the saved folder `out` on `data` into out/predicted.csv (fp32).
fn predict(out: &Path, data: &Path) -> Result<(), String> {
    let (o, d, p) = (out.to_str().unwrap(), data.to_str().unwrap(), out.join("predicted.csv"));
    let args = [
        "predict",
        "--model",
        o,
        "--data",
        d,
        "--output",
        p.to_str().unwrap(),
        "--device",
        "cpu",
        "--max-length",
        "16",
        "--batch-size",
        "8",
        "--threads",
        "1",
    ];
    bertfit_ok(&args, "predict").map(drop)
}

/// Between bertfit's predicted.csv in `out` and transformers' hf.json there: the largest |Δp|,
/// the rows whose predicted label is not transformers' argmax, and the labels predicted.
fn compare_predictions(out: &Path) -> (f64, usize, std::collections::BTreeSet<String>) {
    let hf = read_json(&out.join("hf.json"));
    let labels: Vec<&str> = hf["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let text = std::fs::read_to_string(out.join("predicted.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let probs = hf["probs"].as_array().unwrap();
    assert_eq!(rows.len(), probs.len(), "{}: rows", out.display());
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name}"));
    let mut worst = 0f64;
    for (j, label) in labels.iter().enumerate() {
        let col = column(&format!("prob_{label}"));
        for (row, p) in rows.iter().zip(probs) {
            worst = worst.max((row[col].parse::<f64>().unwrap() - p[j].as_f64().unwrap()).abs());
        }
    }
    let predicted = column("predicted_label");
    let argmax = |p: &serde_json::Value| {
        let p: Vec<f64> = p.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap()
    };
    let differ = rows.iter().zip(probs).filter(|(row, p)| row[predicted] != labels[argmax(p)]).count();
    (worst, differ, rows.iter().map(|r| r[predicted].to_string()).collect())
}

/// Prints each family's line and panics listing every failure.
fn verdict(path: &str, lines: Vec<(String, bool)>) {
    let mut failed = Vec::new();
    for (line, ok) in lines {
        println!("{path}: {line}");
        if !ok {
            failed.push(line);
        }
    }
    assert!(failed.is_empty(), "{path} failed for:\n{}", failed.join("\n"));
}

/// The fp16 run's steps: (loss, skipped, scale after the step).
fn scaled_steps(out: &Path) -> Vec<(f64, bool, f64)> {
    records(&out.join("metrics.jsonl"), "step")
        .iter()
        .map(|r| (r["loss"].as_f64().unwrap(), r["skipped"] == true, r["scale"].as_f64().unwrap_or(0.0)))
        .collect()
}

/// How many leading steps of a run in `precision` compare with fp32's: all in bf16; in fp16 up to
/// the first step GradScaler skipped (inf/NaN gradients: PyTorch skips the same ModernBERT step at
/// scale 65536), after which fp32 has an update the fp16 run has not. `Err`: a skipped step that
/// did not halve the scale, or no step taken at all.
fn comparable_steps(out: &Path, precision: &str) -> Result<(usize, usize), String> {
    if precision != "fp16" {
        return Ok((losses(out).len(), 0));
    }
    let steps = scaled_steps(out);
    let mut scale = 65536.0; // GradScaler's init_scale
    for (i, (_, skipped, after)) in steps.iter().enumerate() {
        let expected = if *skipped { scale / 2.0 } else { scale };
        if *after != expected {
            return Err(format!("step {}: scale {after}, GradScaler's {expected}", i + 1));
        }
        scale = *after;
    }
    let skipped = steps.iter().filter(|s| s.1).count();
    if skipped == steps.len() {
        return Err("every step skipped".into());
    }
    let first = steps.iter().position(|s| s.1).map_or(steps.len(), |i| i + 1);
    Ok((first, skipped))
}

#[test]
fn each_family_trains_in_bf16_and_fp16_and_its_saved_folder_predicts_as_transformers() {
    let t = trained();
    let mut lines = Vec::new();
    for &Family { name: family, .. } in FAMILIES {
        let key = |p: &str| (family.to_string(), p.to_string());
        if let Some(e) = t.failed.get(&key("fp32")) {
            lines.push((format!("{family}: fp32 {e}"), false));
            continue;
        }
        let fp32 = losses(&t.out(family, "fp32"));
        for precision in ["bf16", "fp16"] {
            if let Some(e) = t.failed.get(&key(precision)) {
                lines.push((format!("{family} {precision}: {e}"), false));
                continue;
            }
            let out = t.out(family, precision);
            let (compared, skipped) = match comparable_steps(&out, precision) {
                Ok(c) => c,
                Err(e) => {
                    lines.push((format!("{family} {precision}: {e}"), false));
                    continue;
                }
            };
            let ours = losses(&out);
            let rel =
                ours[..compared].iter().zip(&fp32).map(|(a, b)| (a - b).abs() / b.abs()).fold(0f64, f64::max);
            let finite = ours.len() == 6 && ours.iter().all(|l| l.is_finite());
            let args = read_json(&out.join("training_args.json"));
            let (probs, differ, _) = compare_predictions(&out);
            // rel > 0: autocast ran (the same fp32 run would give the same losses bit for bit).
            let ok = finite
                && rel > 0.0
                && rel <= loss_tolerance(precision)
                && args["recipe"]["precision"] == *precision
                && probs < PROBS
                && differ == 0;
            let line = format!(
                "{family} {precision}: {} finite losses ({skipped} steps skipped by the loss scaler), \
                 max rel Δloss vs fp32 over the first {compared} {rel:.1e} (≤ {:.0e}), predict vs \
                 transformers max |Δp| {probs:.1e}",
                ours.len(),
                loss_tolerance(precision)
            );
            lines.push((line, ok));
        }
    }
    verdict("precision", lines);
}

#[test]
fn each_familys_predict_and_evaluate_equal_transformers_on_the_saved_folder() {
    let t = trained();
    let mut lines = Vec::new();
    for &Family { name: family, .. } in FAMILIES {
        if let Some(e) = t.failed.get(&(family.to_string(), "fp32".to_string())) {
            lines.push((format!("{family}: {e}"), false));
            continue;
        }
        let out = t.out(family, "fp32");
        let (probs, differ, predicted) = compare_predictions(&out);
        let hf = read_json(&out.join("hf.json"));
        let (o, d) = (out.to_str().unwrap(), t.data.to_str().unwrap());
        let args = ["evaluate", "--model", o, "--data", d, "--device", "cpu", "--max-length", "16", "--json"];
        let line = match bertfit_ok(&args, "evaluate") {
            Err(e) => (format!("{family}: {e}"), false),
            Ok(stdout) => {
                let ours: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
                let (acc, theirs) = (ours["eval_accuracy"].as_f64(), hf["accuracy"].as_f64());
                let ok = probs < PROBS && differ == 0 && acc == theirs && ours["eval_samples"] == 6;
                let class = hf["class"].as_str().unwrap_or("?");
                let line = format!(
                    "{family} ({class}): predict max |Δp| {probs:.1e}, labels {predicted:?}, {differ} rows \
                     not transformers' argmax, evaluate accuracy {acc:?} vs \
                     transformers' {theirs:?}"
                );
                (line, ok)
            }
        };
        lines.push(line);
    }
    verdict("predict/evaluate", lines);
}

#[test]
fn each_family_resumed_from_a_checkpoint_ends_with_the_uninterrupted_weights_bitwise() {
    let work = temp_dir("family_paths_checkpoint");
    let data = csv(&work);
    let mut lines = Vec::new();
    for &Family { name: family, model: src, pad } in FAMILIES {
        let model = model_dir(&work, family, &src(), pad);
        let (full, resumed) = (work.join(family).join("full"), work.join(family).join("resumed"));
        // Padded here (the other paths run the CPU's default unpadded layout).
        let base = run(&model, &data, &full).flag("--save-steps", "2").flag("--unpadded", "false");
        let ckpt = full.join("checkpoint-2");
        let done = train(&base, "uninterrupted run").and_then(|_| {
            let again = run(&model, &data, &resumed)
                .flag("--save-steps", "2")
                .flag("--unpadded", "false")
                .flag("--resume-from-checkpoint", ckpt.to_str().unwrap());
            train(&again, "resumed run")
        });
        lines.push(match done {
            Err(e) => (format!("{family}: {e}"), false),
            Ok(()) => {
                let (a, b) = (losses(&full), losses(&resumed));
                let tail: Vec<f64> = records(&resumed.join("metrics.jsonl"), "step")
                    .iter()
                    .filter(|r| r["step"].as_u64().unwrap() > 2)
                    .map(|r| r["loss"].as_f64().unwrap())
                    .collect();
                let diff =
                    compare_weights(&full.join("model.safetensors"), &resumed.join("model.safetensors"));
                let ok = a.len() == 6 && tail == a[2..] && diff == 0.0 && b.len() >= 4;
                (format!("{family}: steps 3-6 losses equal: {}, max |Δweight| {diff:e}", tail == a[2..]), ok)
            }
        });
    }
    verdict("checkpoints", lines);
}

/// The model with every dropout probability 0 (the DDP equality is arithmetic only, as in
/// tests/dist.rs): each family names its dropouts its own way, all `*dropout*` keys.
fn without_dropout(model: &Path) {
    let path = model.join("config.json");
    let mut config = read_json(&path);
    for (key, value) in config.as_object_mut().unwrap() {
        if key.contains("dropout") && value.is_number() {
            *value = serde_json::json!(0.0);
        }
    }
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// `torchrun --standalone --nproc_per_node 2 --no-python bertfit ARGS`: torchrun's own launcher
/// and variables (TORCHELASTIC_USE_AGENT_STORE included).
fn torchrun(args: &[String]) -> Result<(), String> {
    let torchrun = python().with_file_name("torchrun");
    let out = Command::new(torchrun)
        .args(["--standalone", "--nproc_per_node", "2", "--no-python"])
        .arg(crate::common::bin())
        .args(args)
        .env_remove("MASTER_PORT")
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&out);
    if code == 0 {
        Ok(())
    } else {
        Err(failure("torchrun", code, &stderr))
    }
}

#[test]
fn each_family_on_two_torchrun_ranks_trains_as_one_process_on_the_combined_batch() {
    let work = temp_dir("family_paths_ddp");
    let data = csv(&work);
    let mut lines = Vec::new();
    for &Family { name: family, model: src, pad } in FAMILIES {
        let model = model_dir(&work, family, &src(), pad);
        without_dropout(&model);
        // File order: DistributedSampler gives rank r the rows r, r+2, ..., the 1-process batch's.
        let flags = |out: &Path, batch: &str| {
            run(&model, &data, out)
                .flag("--batch-size", batch)
                .switch("--no-shuffle")
                .flag("--optim", "adamw")
                .flag("--ddp-timeout", "120")
                // An attention key bias has no gradient but rounding noise (softmax ignores a
                // shift shared by all keys); Adam at its default epsilon (1e-8) turns noise of
                // either sign into steps of the learning rate, which two summation orders (one
                // batch, two all-reduced halves) take apart. 1e-6 leaves such noise at noise.
                .flag("--adam-epsilon", "1e-6")
        };
        let (one, two) = (work.join(family).join("one"), work.join(family).join("two"));
        let done =
            train(&flags(&one, "4"), "1 process, batch 4").and_then(|_| torchrun(&flags(&two, "2").args()));
        lines.push(match done {
            Err(e) => (format!("{family}: {e}"), false),
            Ok(()) => {
                let (a, b) = (losses(&one), losses(&two));
                let rel = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / x.abs()).fold(0f64, f64::max);
                let ranks = records(&two.join("metrics.jsonl"), "step")[0]["rank_rows"].clone();
                let diff = compare_weights(&one.join("model.safetensors"), &two.join("model.safetensors"));
                let ok = a.len() == 6 && a.len() == b.len() && rel <= 1e-5 && diff <= 1e-5;
                let line = format!(
                    "{family}: rank rows {ranks}, max rel Δloss {rel:.1e}, max |Δweight| {diff:.1e} (≤ 1e-5)"
                );
                (line, ok)
            }
        });
    }
    verdict("data-parallel", lines);
}

//! `bertfit run-classification` against the real `run_classification.py` (transformers 5.24's
//! example, vendored verbatim in scripts/parity/hf/ and run offline by its run_reference.sh) on the
//! same command lines. One set of runs is shared by every comparison: each case runs once through
//! each program, on tiny data (scripts/parity/hf/make_rc_data.py) and a tiny random BertModel
//! without a head (as most published encoders are), so both draw the same new classifier from
//! seed 42. Its dropout is 0 and bertfit orders the rows as HF Trainer does, so the two runs see
//! the same batches and the same weights: their losses must agree to 1e-3 (relative), and the
//! predictions file byte for byte.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use super::common::{bertfit, check, python, read_json, repo, temp_dir, tiny_model};

/// Relative tolerance on losses (the bar); the observed gaps are printed by the tests.
const LOSS_RTOL: f64 = 1e-3;

/// One command line, run by both programs (each adds its own `--output_dir`).
struct Case {
    name: &'static str,
    args: Vec<String>,
    /// The reference needs scripts/parity/hf/compat_list_dtype: with datasets 5.x its multi-label
    /// path fails before training (`List` has no `.dtype`; see scripts/parity/hf/FACTS.md).
    list_shim: bool,
}

struct Runs {
    cases: Vec<Case>,
    hf: PathBuf,
    ours: PathBuf,
}

fn cases(data: &Path, model: &Path) -> Vec<Case> {
    let d = |f: &str| data.join(f).to_string_lossy().into_owned();
    let files = |set: &str, ext: &str, test: bool| {
        let mut v = vec![
            "--train_file".to_string(),
            d(&format!("{set}/train.{ext}")),
            "--validation_file".into(),
            d(&format!("{set}/validation.{ext}")),
        ];
        if test {
            v.extend(["--test_file".into(), d(&format!("{set}/test.{ext}")), "--do_predict".into()]);
        }
        v
    };
    let base = |extra: &[&str], data: Vec<String>| {
        let mut v: Vec<String> = [
            "--model_name_or_path",
            model.to_str().unwrap(),
            "--max_seq_length",
            "32",
            "--num_train_epochs",
            "1",
            "--do_train",
            "--do_eval",
            "--disable_tqdm",
            "true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(data);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let case = |name, args| Case { name, args, list_shim: false };
    let words = |flags: &'static str| flags.split_whitespace().collect::<Vec<_>>();
    vec![
        // The examples README's command line, shrunk (its length and epochs).
        case(
            "readme",
            base(
                &["--per_device_train_batch_size", "32", "--learning_rate", "2e-5"],
                files("trec", "csv", false),
            ),
        ),
        case(
            "recipe",
            base(
                &words(
                    "--per_device_train_batch_size 16 --lr_scheduler_type cosine --warmup_steps 0.1 \
                     --weight_decay 0.01 --gradient_accumulation_steps 2 --max_grad_norm 0.5 \
                     --optim adamw_torch --learning_rate 1e-3 --logging_steps 1",
                ),
                files("trec", "csv", true),
            ),
        ),
        case(
            "eval_steps",
            base(
                &words(
                    "--per_device_train_batch_size 16 --eval_strategy steps --eval_steps 2 \
                     --logging_steps 2",
                ),
                files("trec", "csv", false),
            ),
        ),
        case("regression", base(&["--learning_rate", "1e-3"], files("regression", "csv", true))),
        Case {
            name: "multilabel",
            args: base(&["--learning_rate", "1e-3"], files("multilabel", "json", true)),
            list_shim: true,
        },
        case("jsonl", base(&["--per_device_train_batch_size", "16"], files("jsonl", "json", true))),
        case(
            "two_columns",
            base(
                &[
                    "--text_column_names",
                    "title,body",
                    "--text_column_delimiter",
                    " | ",
                    "--learning_rate",
                    "1e-3",
                ],
                files("two_columns", "csv", true),
            ),
        ),
        case("missing_label", base(&["--learning_rate", "1e-3"], files("missing_label", "csv", true))),
        case("unseen_subset", base(&["--max_train_samples", "48"], files("unseen_subset", "csv", false))),
        // An evaluation before the first step, then none before step 3 (eval_delay): 0, 4, 6, ...
        case(
            "eval_start_delay",
            base(
                &words(
                    "--per_device_train_batch_size 16 --eval_strategy steps --eval_steps 2 --eval_delay 3 \
                     --eval_on_start --logging_steps 2",
                ),
                files("trec", "csv", false),
            ),
        ),
        // HF's LengthGroupedSampler: a torch.randperm from the run's generator (seeded again by
        // Trainer.__init__ after the model is made), grouped by length in megabatches of 8 x 2 rows.
        case(
            "group_by_length",
            base(
                &words(
                    "--train_sampling_strategy group_by_length --pad_to_max_length false \
                     --per_device_train_batch_size 8 --gradient_accumulation_steps 2 --num_train_epochs 2 \
                     --logging_steps 1",
                ),
                files("trec", "csv", false),
            ),
        ),
        // save_strategy best: a checkpoint at each new best only (accuracy stays flat here: one),
        // and the best model kept at the end.
        case(
            "save_best",
            base(
                &words(
                    "--per_device_train_batch_size 16 --save_strategy best --eval_strategy steps \
                     --eval_steps 2 --metric_for_best_model accuracy --load_best_model_at_end \
                     --learning_rate 5e-3 --logging_steps 2",
                ),
                files("trec", "csv", false),
            ),
        ),
        // A best-model metric without load_best_model_at_end: HF keeps the last model.
        case(
            "metric_without_load_best",
            base(
                &words("--eval_strategy epoch --metric_for_best_model accuracy --num_train_epochs 2"),
                files("trec", "csv", false),
            ),
        ),
        // Dataset.shuffle (NumPy's order) over every row, then the first 50 of it.
        case(
            "shuffled_subset",
            base(
                &words(
                    "--shuffle_train_dataset --shuffle_seed 7 --max_train_samples 50 \
                     --max_eval_samples 10 --logging_steps 1",
                ),
                files("trec", "csv", true),
            ),
        ),
        // max_steps past num_train_epochs' steps: HF trains them all (3 epochs of 3 steps) and
        // reads no num_train_epochs (0 here). A clip at inf logs the norm and scales nothing; a
        // negative data_seed seeds torch's generator with its two's complement.
        case(
            "max_steps",
            base(
                &words(
                    "--per_device_train_batch_size 32 --max_steps 9 --num_train_epochs 0 \
                     --max_grad_norm inf --data_seed -1 --learning_rate 1e-3 --logging_steps 2",
                ),
                files("trec", "csv", false),
            ),
        ),
    ]
}

/// The data, the model and every case through both programs, once for all the tests here.
fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = temp_dir("run_classification");
        let data = dir.join("data");
        let out = Command::new(python())
            .arg(repo().join("scripts/parity/hf/make_rc_data.py"))
            .args([data.to_str().unwrap(), "--train", "96", "--eval", "32", "--test", "16"])
            .output()
            .unwrap();
        check(&out, "make_rc_data.py");
        let model = tiny_model(&dir, 2, Some(0.0), &["--no-classifier"]);
        let (hf, ours) = (dir.join("hf"), dir.join("bertfit"));
        let cases = cases(&data, &model);
        for case in &cases {
            run_reference(case, &hf.join(case.name));
            run_ours(case, &ours.join(case.name));
        }
        Runs { cases, hf, ours }
    })
}

fn run_reference(case: &Case, out: &Path) {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/parity/hf/run_reference.sh")).args(&case.args).arg("--output_dir").arg(out);
    if case.list_shim {
        cmd.env("RC_REFERENCE_LIST_DTYPE", "1");
    }
    let result = cmd.output().unwrap();
    check(&result, &format!("run_classification.py ({})", case.name));
    std::fs::write(out.join("console.log"), [result.stdout, result.stderr].concat()).unwrap();
}

fn run_ours(case: &Case, out: &Path) {
    let result =
        bertfit().arg("run-classification").args(&case.args).arg("--output_dir").arg(out).output().unwrap();
    check(&result, &format!("bertfit run-classification ({})", case.name));
    std::fs::write(out.join("console.log"), [result.stdout, result.stderr].concat()).unwrap();
}

/// The names in a folder (sub-folders with a trailing `/`).
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                format!("{name}/")
            } else {
                name
            }
        })
        .collect()
}

/// HF's files bertfit does not write, and why: `training_args.bin` is a pickle of the Python
/// TrainingArguments object (bertfit writes training_args.json); a checkpoint's `rng_state.pth`
/// holds Python's, NumPy's and torch's generator states, which bertfit's run has no counterpart
/// of (HF's resume goes on without it, saying so; bertfit's own state is in its checkpoint).
const NOT_WRITTEN: [&str; 2] = ["training_args.bin", "rng_state.pth"];

/// Every file and folder HF writes, bertfit writes too (in the output folder and in each
/// checkpoint), except those in [`NOT_WRITTEN`].
#[test]
fn the_same_files_are_written() {
    let runs = runs();
    for case in &runs.cases {
        let (hf, ours) = (runs.hf.join(case.name), runs.ours.join(case.name));
        let missing: Vec<_> = names(&hf)
            .difference(&names(&ours))
            .filter(|n| !NOT_WRITTEN.contains(&n.as_str()))
            .cloned()
            .collect();
        assert!(missing.is_empty(), "{}: bertfit lacks {missing:?} (HF wrote {:?})", case.name, names(&hf));
        for folder in names(&hf).iter().filter(|n| n.starts_with("checkpoint-")) {
            let (a, b) = (names(&hf.join(folder)), names(&ours.join(folder)));
            let missing: Vec<_> = a.difference(&b).filter(|n| !NOT_WRITTEN.contains(&n.as_str())).collect();
            assert!(missing.is_empty(), "{}: bertfit's {folder} lacks {missing:?}", case.name);
        }
    }
}

/// `predict_results.txt` byte for byte: single-label names, regression `{:3.3f}`, multi-label
/// Python lists of names.
#[test]
fn predictions_are_byte_identical() {
    let runs = runs();
    let mut compared = 0;
    for case in &runs.cases {
        let hf = runs.hf.join(case.name).join("predict_results.txt");
        if !hf.exists() {
            continue;
        }
        let ours = std::fs::read_to_string(runs.ours.join(case.name).join("predict_results.txt")).unwrap();
        assert_eq!(ours, std::fs::read_to_string(&hf).unwrap(), "{}: predict_results.txt differs", case.name);
        compared += 1;
    }
    assert!(compared >= 5, "only {compared} cases predicted");
}

/// Keys whose values are wall-clock figures: present in both, not compared.
fn is_timing(key: &str) -> bool {
    key.ends_with("_runtime") || key.ends_with("_per_second")
}

/// Compares two results objects key by key; returns the largest relative loss gap.
fn compare_metrics(what: &str, hf: &Value, ours: &Value, rows: f64) -> f64 {
    let (hf, ours) = (hf.as_object().unwrap(), ours.as_object().unwrap());
    let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(keys(ours), keys(hf), "{what}: keys differ");
    let mut worst: f64 = 0.0;
    for (key, h) in hf {
        if is_timing(key) {
            continue;
        }
        let (h, o) = (h.as_f64().unwrap(), ours[key].as_f64().unwrap());
        // grad_norm too: bertfit reads the word-embedding gradient's norm from its written rows
        // (vendor-notes.md, "Word-embedding gradients as rows"), another order of the same sum.
        if key.contains("loss") || key.ends_with("mse") || key == "grad_norm" {
            let gap = (h - o).abs() / h.abs().max(1e-12);
            assert!(gap <= LOSS_RTOL, "{what}: {key} {o} vs HF's {h} (relative gap {gap:.2e})");
            worst = worst.max(gap);
        } else if key.ends_with("accuracy") || key.ends_with("f1") || key.ends_with("combined_score") {
            // A score over `rows` examples: one example decided the other way is the most a
            // last-bit difference in a near-tie logit can change.
            assert!((h - o).abs() <= 1.0 / rows + 1e-9, "{what}: {key} {o} vs HF's {h}");
        } else {
            // Counts, epochs, total_flos: exact.
            assert_eq!(o, h, "{what}: {key}");
        }
    }
    worst
}

/// train/eval/all_results.json: the same keys, the same counts and FLOPs, losses within 1e-3.
#[test]
fn results_files_hold_the_same_keys_and_values() {
    let runs = runs();
    let mut worst: f64 = 0.0;
    for case in &runs.cases {
        for file in ["train_results.json", "eval_results.json", "all_results.json"] {
            let hf = runs.hf.join(case.name).join(file);
            let ours = runs.ours.join(case.name).join(file);
            assert!(ours.exists(), "{}: no {file}", case.name);
            let what = format!("{} {file}", case.name);
            worst = worst.max(compare_metrics(&what, &read_json(&hf), &read_json(&ours), 32.0));
        }
    }
    println!("largest relative loss gap over all results: {worst:.2e}");
}

/// trainer_state.json: the same global_step, max_steps, epoch and log_history (entry by entry,
/// the same keys; losses and gradient norms within 1e-3).
#[test]
fn trainer_state_logs_the_same_history() {
    let runs = runs();
    for case in &runs.cases {
        let hf = read_json(&runs.hf.join(case.name).join("trainer_state.json"));
        let ours = read_json(&runs.ours.join(case.name).join("trainer_state.json"));
        for key in
            ["global_step", "max_steps", "epoch", "num_train_epochs", "logging_steps", "train_batch_size"]
        {
            assert_eq!(ours[key], hf[key], "{}: trainer_state.json {key}", case.name);
        }
        let (h, o) = (hf["log_history"].as_array().unwrap(), ours["log_history"].as_array().unwrap());
        assert_eq!(o.len(), h.len(), "{}: log_history entries", case.name);
        for (i, (h, o)) in h.iter().zip(o).enumerate() {
            compare_metrics(&format!("{} log_history[{i}]", case.name), h, o, 32.0);
        }
    }
}

/// What each program said about the labels: HF's warning for a label seen only in validation or
/// test, word for word, and the same label list in the saved config.
#[test]
fn labels_are_listed_and_warned_as_hf_does() {
    let runs = runs();
    for case in &runs.cases {
        let config = |dir: &Path| read_json(&dir.join(case.name).join("config.json"));
        let (hf, ours) = (config(&runs.hf), config(&runs.ours));
        for key in ["id2label", "label2id", "problem_type"] {
            assert_eq!(ours[key], hf[key], "{}: config.json {key}", case.name);
        }
    }
    let log = |dir: &Path| std::fs::read_to_string(dir.join("missing_label/console.log")).unwrap();
    let warning = "Labels {'ABBR'} in validation set but not in training set, adding them to the label list";
    assert!(log(&runs.hf).contains(warning), "the reference's own warning changed");
    assert!(log(&runs.ours).contains(warning), "bertfit's log lacks HF's warning:\n{}", log(&runs.ours));
}

/// The summary a user reads: for each case, the loss both programs reached.
#[test]
fn every_case_ran_through_both() {
    let runs = runs();
    let mut table = BTreeMap::new();
    for case in &runs.cases {
        let loss =
            |dir: &Path| read_json(&dir.join(case.name).join("all_results.json"))["eval_loss"].as_f64();
        table.insert(case.name, (loss(&runs.hf), loss(&runs.ours)));
    }
    for (name, (hf, ours)) in &table {
        println!("{name:>14}: eval_loss HF {hf:?} bertfit {ours:?}");
        assert!(hf.is_some() && ours.is_some(), "{name}: no eval_loss");
    }
}

/// `--metric_name f1` on six classes: run_classification.py trains, then fails at its first
/// evaluation (scikit-learn's binary average); bertfit says so before training and writes nothing.
#[test]
fn a_binary_metric_on_six_classes_is_refused_before_training() {
    let dir = runs().hf.parent().unwrap().to_path_buf();
    let trec = dir.join("data").join("trec");
    let out = dir.join("f1_on_six_classes");
    let file = |name: &str| trec.join(name).to_string_lossy().into_owned();
    let result = bertfit()
        .arg("run-classification")
        .args(["--model_name_or_path", dir.join("model").to_str().unwrap(), "--do_train", "--do_eval"])
        .args(["--train_file", &file("train.csv"), "--validation_file", &file("validation.csv")])
        .args(["--metric_name", "f1", "--max_seq_length", "32", "--output_dir", out.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{err}");
    assert!(
        err.contains("--metric_name: f1 averages as binary") && err.contains("{0, 1, 2, 3, 4, 5}"),
        "{err}"
    );
    assert!(!out.join("model.safetensors").exists() && !out.join("checkpoint-12").exists());
}

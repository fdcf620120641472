//! Bad input is refused with a message naming the file and the row, column or key, a non-zero exit
//! and no panic.
use std::path::Path;

use super::common::{assert_refused, repo, temp_dir, tiny_model, write_csv};

fn rows(
    n: usize,
    split: &'static str,
    label: impl Fn(usize) -> String,
) -> Vec<(String, String, &'static str)> {
    (0..n).map(|i| (format!("example text number {i}"), label(i), split)).collect()
}

fn train_args<'a>(model: &'a str, data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--model",
        model,
        "--data",
        data,
        "--output-dir",
        out,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-length",
        "16",
    ]
}

#[test]
fn bad_data_files_are_named_with_row_and_column() {
    let dir = temp_dir("cli_bad_data");
    let model = tiny_model(&dir, 2, None, &[]);
    let m = model.to_str().unwrap();
    let out = dir.join("out");
    let o = out.to_str().unwrap();

    let missing = dir.join("absent.csv");
    assert_refused(&train_args(m, missing.to_str().unwrap(), o), &["absent.csv"]);

    let no_label = dir.join("no_label.csv");
    std::fs::write(&no_label, "text,split\nhello,train\n").unwrap();
    assert_refused(&train_args(m, no_label.to_str().unwrap(), o), &["no_label.csv", "no column 'label'"]);

    let outside = dir.join("outside.csv");
    let mut r = rows(8, "train", |i| (i % 2).to_string());
    r[5].1 = "7".into();
    write_csv(&outside, &r);
    let mut args = train_args(m, outside.to_str().unwrap(), o);
    args.extend(["--num-labels", "2"]);
    assert_refused(&args, &["outside.csv", "row 6", "column 'label'", "label 7"]);

    let no_train = dir.join("no_train.csv");
    write_csv(&no_train, &rows(4, "val", |i| (i % 2).to_string()));
    assert_refused(&train_args(m, no_train.to_str().unwrap(), o), &["no_train.csv", "train split is empty"]);

    let bad_split = dir.join("bad_split.csv");
    let mut r = rows(4, "train", |i| (i % 2).to_string());
    r[2].2 = "holdout";
    write_csv(&bad_split, &r);
    assert_refused(
        &train_args(m, bad_split.to_str().unwrap(), o),
        &["bad_split.csv", "row 3", "column 'split'", "holdout"],
    );

    let unseen = dir.join("unseen.csv");
    let mut r = rows(6, "train", |i| if i % 2 == 0 { "pos".into() } else { "neg".into() });
    r.push(("a validation text".into(), "neutral".into(), "val"));
    write_csv(&unseen, &r);
    assert_refused(&train_args(m, unseen.to_str().unwrap(), o), &["unseen.csv", "row 7", "'neutral'"]);

    let ragged = dir.join("ragged.csv");
    std::fs::write(&ragged, "text,label,split\nfine,0,train\nbroken,1\nok,1,train\n").unwrap();
    assert_refused(&train_args(m, ragged.to_str().unwrap(), o), &["ragged.csv", "row 2"]);

    assert!(!out.join("config.json").exists(), "a refused run must not write a model");
}

#[test]
fn bad_model_files_are_named_with_the_key() {
    let dir = temp_dir("cli_bad_model");
    let model = tiny_model(&dir, 2, None, &[]);
    let data = dir.join("data.csv");
    write_csv(&data, &rows(8, "train", |i| (i % 2).to_string()));
    let d = data.to_str().unwrap();
    let out = dir.join("out");
    let o = out.to_str().unwrap();

    // config.json that does not match the weights: a wrong shape, named by tensor.
    let wrong = dir.join("wrong_shape");
    copy_dir(&model, &wrong);
    let cfg = std::fs::read_to_string(wrong.join("config.json"))
        .unwrap()
        .replace("\"intermediate_size\": 48", "\"intermediate_size\": 50");
    std::fs::write(wrong.join("config.json"), cfg).unwrap();
    assert_refused(
        &train_args(wrong.to_str().unwrap(), d, o),
        &["model.safetensors", "intermediate.dense.weight", "[48, 32]", "[50, 32]"],
    );

    // A checkpoint with fewer layers than config.json says: missing tensors, named.
    let missing = dir.join("missing_layer");
    copy_dir(&model, &missing);
    let cfg = std::fs::read_to_string(missing.join("config.json"))
        .unwrap()
        .replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    std::fs::write(missing.join("config.json"), cfg).unwrap();
    assert_refused(
        &train_args(missing.to_str().unwrap(), d, o),
        &["missing from the checkpoint", "bert.encoder.layer.2."],
    );

    // A truncated safetensors file.
    let truncated = dir.join("truncated");
    copy_dir(&model, &truncated);
    let bytes = std::fs::read(truncated.join("model.safetensors")).unwrap();
    std::fs::write(truncated.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&train_args(truncated.to_str().unwrap(), d, o), &["truncated/model.safetensors"]);

    // A config.json that is not valid, and one with an impossible value.
    let bad_cfg = dir.join("bad_config");
    copy_dir(&model, &bad_cfg);
    std::fs::write(bad_cfg.join("config.json"), "{\"hidden_size\": 32, \"num_attention_heads\": 5}").unwrap();
    assert_refused(&train_args(bad_cfg.to_str().unwrap(), d, o), &["bad_config/config.json", "hidden_size"]);

    // No such model folder or cache entry.
    assert_refused(
        &train_args("no-such-org/no-such-model", d, o),
        &["no-such-org/no-such-model", "Hugging Face cache"],
    );

    // Flags that cannot work are named.
    let mut args = train_args(model.to_str().unwrap(), d, o);
    args.extend(["--learning-rate", "inf"]);
    assert_refused(&args, &["--learning-rate"]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Ctrl-C (SIGINT) ends a run after the current step: the model trained so far is saved as an HF
/// folder, metrics.jsonl keeps every step, and the exit code is 130.
#[test]
fn ctrl_c_saves_the_model_trained_so_far() {
    let dir = temp_dir("cli_interrupt");
    let model = tiny_model(&dir, 2, None, &[]);
    let data = dir.join("data.csv");
    write_csv(&data, &rows(400, "train", |i| (i % 2).to_string()));
    let out = dir.join("out");
    let child = super::common::bertfit()
        .args(["train", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap()])
        .args([
            "--output-dir",
            out.to_str().unwrap(),
            "--epochs",
            "1000",
            "--batch-size",
            "4",
            "--max-length",
            "16",
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The log grows as metrics.jsonl.partial and becomes metrics.jsonl when the run ends.
    let metrics = out.join("metrics.jsonl");
    let growing = out.join("metrics.jsonl.partial");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&growing).map(|m| m.lines().count() < 3).unwrap_or(true) {
        assert!(started.elapsed().as_secs() < 120, "no training steps within 120 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted after step") && !err.contains("panicked"), "{err}");
    for f in ["config.json", "model.safetensors", "vocab.txt", "training_args.json"] {
        assert!(out.join(f).exists(), "{f} missing after the interrupt");
    }
    let steps = std::fs::read_to_string(&metrics).unwrap().lines().filter(|l| l.contains("\"step\"")).count();
    assert!(steps >= 3, "{steps} steps logged");
}

/// `bertfit run-classification`'s flag table lists what transformers' HfArgumentParser builds for
/// run_classification.py: every flag, its kind, default and choices (scripts/hf_training_args.py).
#[test]
fn run_classification_flag_table_matches_transformers() {
    use bertfit::cli::run_classification::table::{Kind, FLAGS};
    let python = super::common::run_python("hf_training_args.py", &[]);
    let ours: Vec<String> = FLAGS
        .iter()
        .map(|f| {
            let (kind, choices) = match f.kind {
                Kind::Bool => ("bool", String::new()),
                Kind::BoolValue => ("bool_value", String::new()),
                Kind::Int => ("int", String::new()),
                Kind::Float => ("float", String::new()),
                Kind::Str => ("str", String::new()),
                Kind::StrList => ("str+", String::new()),
                Kind::Choice(c) => ("choice", c.join("|")),
            };
            format!("{}\t{kind}\t{}\t{choices}", f.name, f.default)
        })
        .collect();
    let theirs: Vec<&str> = python.lines().collect();
    assert_eq!(ours, theirs, "src/cli/run_classification/table.rs differs from transformers");
}

/// Refusals before any model or data is read: each names its flag.
#[test]
fn run_classification_refuses_by_flag_name() {
    let m = ["run-classification", "--model_name_or_path", "m"];
    let with = |extra: &[&'static str]| [&m[..], extra].concat();
    assert_refused(&with(&["--warmup_ratio", "0.1"]), &["--warmup_ratio:", "--warmup_steps 0.1"]);
    assert_refused(&with(&["--overwrite_output_dir"]), &["--overwrite_output_dir:"]);
    assert_refused(
        &with(&["--output", "o"]),
        &["ambiguous option: --output could match --output_dir, --output-dir"],
    );
    assert_refused(&with(&["--lerning_rate", "1"]), &["--lerning_rate:", "did you mean --learning_rate?"]);
    assert_refused(&with(&["--deepspeed", "ds.json"]), &["--deepspeed:", "DeepSpeed"]);
    assert_refused(&with(&["--seed", "x"]), &["--seed: invalid int value: 'x'"]);
    assert_refused(&with(&["--optim", "adamw"]), &["--optim: invalid choice: 'adamw'"]);
    assert_refused(&with(&["--train_file", "t.csv", "--do_train"]), &["--validation_file"]);
    assert_refused(
        &["run-classification", "--do_train"],
        &["--model_name_or_path: the following arguments are required"],
    );
}

/// What transformers itself refuses on a run_classification.py command line (its parser and
/// TrainingArguments' checks, asked through scripts/hf_refuses.py), bertfit refuses too, naming
/// the flag, flags without effect here included: a line that fails in HF must not run here.
#[test]
fn run_classification_refuses_what_transformers_refuses() {
    let dir = temp_dir("cli_rc_hf_refuses");
    let (train, val, out) = (dir.join("t.csv"), dir.join("v.csv"), dir.join("out"));
    for f in [&train, &val] {
        std::fs::write(f, "sentence,label\na b,x\nc d,y\n").unwrap();
    }
    // (the flags after HF's base line, the flag bertfit's error must name)
    let cases: &[(&[&str], &str)] = &[
        (&["--torch_empty_cache_steps", "0"], "--torch_empty_cache_steps"),
        (&["--torch_empty_cache_steps", "-3"], "--torch_empty_cache_steps"),
        (&["--dataloader_prefetch_factor", "2"], "--dataloader_prefetch_factor"),
        (&["--logging_steps", "inf"], "--logging_steps"),
        (&["--logging_steps", "0"], "--logging_steps"),
        (&["--logging_steps", "2.5"], "--logging_steps"),
        (&["--save_strategy", "steps", "--save_steps", "inf"], "--save_steps"),
        (&["--eval_strategy", "steps", "--eval_steps", "inf"], "--eval_steps"),
        (&["--eval_strategy", "steps", "--eval_steps", "2.5"], "--eval_steps"),
        (&["--warmup_steps", "-1"], "--warmup_steps"),
        (&["--bf16", "--fp16"], "--bf16"),
        (&["--seed", "x"], "--seed"),
    ];
    let script = repo().join("scripts/parity/hf/run_classification.py");
    let mut argv = vec![script.to_str().unwrap().to_string()];
    argv.extend(cases.iter().map(|(extra, _)| serde_json::to_string(extra).unwrap()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let verdicts = super::common::run_python("hf_refuses.py", &argv);
    let verdicts: Vec<&str> = verdicts.lines().collect();
    assert_eq!(verdicts.len(), cases.len(), "{verdicts:?}");
    for ((extra, flag), verdict) in cases.iter().zip(&verdicts) {
        // The case list must hold what HF refuses, or the test shows nothing.
        assert!(verdict.starts_with("err\t"), "transformers accepts {extra:?}: {verdict}");
        let mut args = vec![
            "run-classification",
            "--model_name_or_path",
            "m",
            "--output_dir",
            out.to_str().unwrap(),
            "--train_file",
            train.to_str().unwrap(),
            "--validation_file",
            val.to_str().unwrap(),
        ];
        args.extend(*extra);
        let err = assert_refused(&args, &[&format!("{flag}:")]);
        assert!(!err.contains("no such folder"), "{extra:?} got as far as the model: {err}");
    }
    assert!(!out.exists(), "a refused run wrote its output folder");
}

#[test]
fn run_classification_help_lists_every_flag() {
    let (code, out, _) = super::common::run_bertfit(&["run-classification", "--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("What replaces `python run_classification.py ARGS`"), "{out}");
    for f in bertfit::cli::run_classification::table::FLAGS {
        assert!(out.contains(&format!("  --{} ", f.name)), "--help lacks --{}", f.name);
    }
    assert!(out.contains("--report_to STR\n      default 'none'; accepted, no effect here"));
}

/// A run with HF's defaults: training_args.json shows them, `--warmup_steps 0.1` is a ratio, a
/// repeated NoEffect flag is said once, an abbreviation and a JSON args file read the same.
#[test]
fn run_classification_runs_with_hf_defaults() {
    let dir = temp_dir("cli_run_classification");
    let model = tiny_model(&dir, 2, None, &[]);
    let mut csv = String::from("sentence,label\n");
    for i in 0..6 {
        csv.push_str(&format!("a short sentence number {i},{}\n", i % 2));
    }
    std::fs::write(dir.join("train.csv"), &csv).unwrap();
    std::fs::write(dir.join("dev.csv"), &csv).unwrap();
    let out = dir.join("out");
    let (m, o) = (model.to_str().unwrap(), out.to_str().unwrap());
    let (t, v) = (dir.join("train.csv"), dir.join("dev.csv"));
    let (t, v) = (t.to_str().unwrap(), v.to_str().unwrap());
    let args = [
        "run-classification",
        "--model_name_or_path",
        m,
        "--train_file",
        t,
        "--validation_file",
        v,
        "--do_train",
        "--output-dir",
        o,
        "--max_st",
        "2",
        "--warmup_steps",
        "0.1",
        "--use_cpu",
        "--report_to",
        "wandb",
        "--report_to=tensorboard",
    ];
    let (code, _, err) = super::common::run_bertfit(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("--report_to has no effect here").count(), 1, "{err}");
    let a = super::common::read_json(&out.join("training_args.json"));
    assert_eq!(a["recipe"]["warmup_ratio"], 0.1);
    assert_eq!(a["recipe"]["warmup_steps"], serde_json::Value::Null);
    assert_eq!(
        (a["learning_rate"].as_f64(), a["batch_size"].as_u64(), a["epochs"].as_u64()),
        (Some(5e-5), Some(8), Some(3))
    );
    assert_eq!(
        (a["recipe"]["lr_scheduler_type"].as_str(), a["recipe"]["max_grad_norm"].as_f64()),
        (Some("linear"), Some(1.0))
    );
    assert_eq!(
        (a["max_length"].as_u64(), a["padding"].as_str(), a["max_steps"].as_u64()),
        (Some(128), Some("max-length"), Some(2))
    );
    assert_eq!(a["recipe"]["optim"], "adamw");
    // The same settings from a JSON args file (HfArgumentParser.parse_json_file).
    let json = dir.join("args.json");
    let body = serde_json::json!({"model_name_or_path": m, "train_file": t, "validation_file": v,
        "do_train": true, "output_dir": dir.join("out2"), "max_steps": 2, "warmup_steps": 0.1, "use_cpu": true, "max_seq_length": 100_000});
    std::fs::write(&json, body.to_string()).unwrap();
    let (code, _, err) = super::common::run_bertfit(&["run-classification", json.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let b = super::common::read_json(&dir.join("out2").join("training_args.json"));
    // max_seq_length above the tokenizer's model_max_length (512) is capped, with the script's warning.
    assert!(err.contains("Using max_seq_length=512."), "{err}");
    assert_eq!(b["max_length"], 512);
    assert_eq!(
        (b["recipe"].clone(), b["learning_rate"].clone()),
        (a["recipe"].clone(), a["learning_rate"].clone())
    );
}

//! The trainer's shape (issue: one trainer with room for what comes next): every pass PyTorch draws
//! for is drawn for, `--reproduce-pytorch` with the reference's own defaults is the reference's run,
//! HF's flag names work, and unsupported HF flags are refused by name.
use std::path::Path;

use super::common::fixtures::{compare_steps, records, run_both, subset};
use super::common::{minilm_str, read_json, run_bertfit, run_python, temp_dir, tiny_model, write_csv, Flags};

/// Steps, rows and validation accuracy of both runs agree.
fn assert_same_run(reference: &Path, ours: &Path, steps: usize) {
    assert_eq!(records(reference, "step").len(), steps);
    let worst = compare_steps(reference, ours); // asserts the same rows at every step
    for (a, b) in records(reference, "epoch").iter().zip(records(ours, "epoch")) {
        assert_eq!(a["val_accuracy"], b["val_accuracy"], "epoch {} validation accuracy", a["epoch"]);
    }
    assert!(worst <= 1e-4, "losses differ by {worst} relative");
}

/// No validation rows: PyTorch still iterates the empty validation DataLoader each epoch, which
/// draws its base seed; from epoch 2 on the order depends on that draw.
#[test]
fn no_validation_rows_still_draw_what_pytorch_draws() {
    let dir = temp_dir("trainer_no_validation");
    let model = tiny_model(&dir, 2, Some(0.1), &[]);
    let data = dir.join("data.csv");
    subset("movies", &data, 160, 0);
    let flags = Flags::parity().flag("--epochs", "3").flag("--seed", "5").flag("--learning-rate", "1e-3");
    let (reference, out, _) = run_both(&dir, &model, &data, &flags, &["--reproduce-pytorch"]);
    assert_same_run(&reference, &out.join("metrics.jsonl"), 30);
    assert!(records(&out.join("metrics.jsonl"), "epoch").iter().all(|e| e["val_accuracy"].is_null()));
}

/// `--reproduce-pytorch` with the reference's defaults (no --padding on either side): bertfit pads
/// to --max-length as the seed script does, so dropout masks are drawn over the same shapes.
#[test]
fn reproduce_pytorch_with_the_reference_defaults_is_the_reference_run() {
    let dir = temp_dir("trainer_default_flags");
    let model = tiny_model(&dir, 6, Some(0.1), &[]);
    let data = dir.join("trec.csv");
    subset("trec", &data, 160, 60);
    let flags = Flags::of(&[
        ("--epochs", "3"),
        ("--max-length", "40"),
        ("--seed", "11"),
        ("--learning-rate", "2e-3"),
        ("--threads", "2"),
    ]);
    let (reference, out, _) = run_both(&dir, &model, &data, &flags, &["--reproduce-pytorch"]);
    assert_same_run(&reference, &out.join("metrics.jsonl"), 30);
    let saved = read_json(&out.join("training_args.json"));
    assert_eq!(saved["padding"], "max-length");
}

/// The rows of `path` split into train / validation / test files as HF's run_classification.py
/// expects them (`text`, `label` columns).
fn split_files(dir: &Path) -> [std::path::PathBuf; 3] {
    let all = dir.join("all.csv");
    subset("movies", &all, 96, 40);
    let text = std::fs::read_to_string(&all).unwrap();
    let mut files = [
        (dir.join("train.csv"), Vec::new()),
        (dir.join("val.csv"), Vec::new()),
        (dir.join("test.csv"), Vec::new()),
    ];
    let mut reader = text.lines();
    reader.next();
    let mut val_seen = 0;
    for line in reader {
        // write_csv quotes every text: the split is the last field.
        let (rest, split) = line.rsplit_once(',').unwrap();
        let k = if split == "train" {
            0
        } else {
            val_seen += 1;
            if val_seen % 2 == 0 {
                1
            } else {
                2
            }
        };
        files[k].1.push(rest.to_string());
    }
    files.map(|(path, rows)| {
        std::fs::write(&path, format!("text,label\n{}\n", rows.join("\n"))).unwrap();
        path
    })
}

/// A command line from transformers' text-classification README (run_classification.py), with
/// local files and MiniLM for the dataset and model.
#[test]
fn an_hf_run_classification_command_line_runs() {
    let dir = temp_dir("trainer_hf_flags");
    let [train, val, test] = split_files(&dir);
    let out = dir.join("out");
    let (code, stdout, stderr) = run_bertfit(&[
        "train",
        "--model_name_or_path",
        minilm_str(),
        "--train_file",
        train.to_str().unwrap(),
        "--validation_file",
        val.to_str().unwrap(),
        "--test_file",
        test.to_str().unwrap(),
        "--shuffle_train_dataset",
        "--metric_name",
        "accuracy",
        "--text_column_name",
        "text",
        "--text_column_delimiter",
        "\\n",
        "--label_column_name",
        "label",
        "--do_train",
        "--do_eval",
        "--do_predict",
        "--max_seq_length",
        "64",
        "--per_device_train_batch_size",
        "32",
        "--per-device-eval-batch-size",
        "7",
        "--learning_rate",
        "2e-5",
        "--num_train_epochs",
        "1",
        "--output_dir",
        out.to_str().unwrap(),
        "--overwrite_output_dir",
        "--device",
        "auto",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.lines().next().unwrap_or("").starts_with("bertfit: device cpu (--device auto"),
        "{stderr}"
    );
    assert!(stdout.contains("Epoch 1, Loss: ") && stdout.contains("Validation Accuracy: "), "{stdout}");
    let results = read_json(&out.join("eval_results.json"));
    let acc = results["eval_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{results}");
    assert_eq!(results["eval_samples"], 20);
    assert!(results["eval_loss"].as_f64().unwrap() > 0.0);
    let predictions = std::fs::read_to_string(out.join("predict_results.txt")).unwrap();
    let lines: Vec<&str> = predictions.lines().collect();
    assert_eq!(lines[0], "index\tprediction");
    assert_eq!(lines.len(), 21, "{predictions}");
    assert!(
        lines[1..].iter().all(|l| l.ends_with("\tpositive") || l.ends_with("\tnegative")),
        "{predictions}"
    );
    assert!(out.join("model.safetensors").exists());

    // Without --do_train nothing is trained or saved, and evaluation still runs.
    let eval_only = dir.join("eval_only");
    let (code, _, stderr) = run_bertfit(&[
        "train",
        "--model",
        out.to_str().unwrap(),
        "--train_file",
        train.to_str().unwrap(),
        "--validation_file",
        val.to_str().unwrap(),
        "--do_eval",
        "--max_seq_length",
        "64",
        "--output_dir",
        eval_only.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let again = read_json(&eval_only.join("eval_results.json"));
    assert_eq!(again["eval_accuracy"], results["eval_accuracy"], "the saved model evaluates the same");
    assert!(!eval_only.join("model.safetensors").exists());
}

#[test]
fn hf_flags_bertfit_does_not_implement_are_refused_by_name() {
    let dir = temp_dir("trainer_hf_refused");
    let data = dir.join("d.csv");
    let rows: Vec<_> = (0..8).map(|i| (format!("text {i}"), (i % 2).to_string(), "train")).collect();
    write_csv(&data, &rows);
    let out = dir.join("out");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let train = |flag: &str, value: &str| {
        run_bertfit(&["train", "--model", minilm_str(), "--data", d, "--output-dir", o, flag, value])
    };
    for (flag, value) in [("--deepspeed", "ds.json"), ("--push_to_hub", "true"), ("--dataset_name", "imdb")] {
        let (code, _, stderr) = train(flag, value);
        assert_ne!(code, 0);
        assert!(
            stderr.contains(&format!(
                "{flag}: is a Hugging Face training flag that bertfit does not implement"
            )),
            "{stderr}"
        );
        assert!(!out.exists(), "a refused command line wrote {}", out.display());
    }
    // Values HF accepts but bertfit cannot honour are refused by flag, too.
    let (code, _, stderr) = train("--num_train_epochs", "2.5");
    assert_ne!(code, 0);
    assert!(stderr.contains("--epochs: must be a whole number"), "{stderr}");
}

/// src/cli/hf_flags.txt lists every TrainingArguments field of the installed transformers.
#[test]
fn the_hf_flag_list_is_complete() {
    let listed = run_python("hf_flags.py", &[]);
    let ours: Vec<&str> = bertfit::cli::hf::hf_flag_names().collect();
    let theirs: Vec<&str> = listed.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(ours, theirs, "regenerate src/cli/hf_flags.txt with scripts/hf_flags.py");
    assert!(ours.contains(&"per_device_train_batch_size") && ours.contains(&"max_seq_length"));
}

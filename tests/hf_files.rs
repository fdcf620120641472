//! HF's files in the output folder: `tokenizer.json` in every model folder (the final one and each
//! checkpoint) equal to what transformers writes and loaded by `AutoTokenizer` as the fast
//! tokenizer, for a lower-cased and a cased vocabulary; the model card `README.md` of `bertfit
//! train`; a checkpoint's manifest listing `tokenizer.json` and the checkpoint resuming.
use std::path::{Path, PathBuf};

use super::common::{
    latest_checkpoint, make_model, minilm, read_json, run_bertfit, run_python, small_csv, temp_dir,
    tiny_model, TrainRun,
};

/// A tiny run of `model` on the small CSV into `dir/out`, with `extra` flags; panics if it fails.
fn train(dir: &Path, model: &Path, extra: &[&str]) -> PathBuf {
    let data = small_csv(dir);
    let out = dir.join("out");
    let args = TrainRun::new(model, &data, &out).extra(extra).args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = run_bertfit(&args);
    assert_eq!(code, 0, "bertfit train failed:\n{err}");
    out
}

/// `scripts/parity/hf_files.py tokenizer`: transformers loads `folder`'s tokenizer.json as the fast
/// tokenizer, encodes tricky texts as the slow tokenizer does, and saves the same file itself.
fn check_tokenizer_json(dir: &Path, folder: &Path) {
    let work = dir.join("py");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let out =
        run_python("parity/hf_files.py", &["tokenizer", folder.to_str().unwrap(), work.to_str().unwrap()]);
    println!("{}: {}", folder.display(), out.trim());
    assert!(out.starts_with("ok"), "{out}");
}

#[test]
fn tokenizer_json_is_transformers_own_lower_cased() {
    let dir = temp_dir("hf_files_uncased");
    let model = tiny_model(&dir, 2, None, &[]);
    let out = train(&dir, &model, &[]);
    check_tokenizer_json(&dir, &out);
    // bertfit reads the folder as before (tokenizer.json is for transformers only).
    let (m, data, preds) = (out.to_str().unwrap(), dir.join("data.csv"), dir.join("preds.csv"));
    let (d, p) = (data.to_str().unwrap(), preds.to_str().unwrap());
    let (code, _, err) =
        run_bertfit(&["predict", "--model", m, "--data", d, "--output", p, "--device", "cpu"]);
    assert_eq!(code, 0, "bertfit predict failed:\n{err}");
    let (code, _, err) = run_bertfit(&["evaluate", "--model", m, "--data", d, "--device", "cpu"]);
    assert_eq!(code, 0, "bertfit evaluate failed:\n{err}");
}

#[test]
fn tokenizer_json_is_transformers_own_cased() {
    let dir = temp_dir("hf_files_cased");
    // MiniLM's vocabulary with do_lower_case false (strip_accents null: follows it, so kept).
    let vocab = dir.join("cased_vocab");
    std::fs::create_dir_all(&vocab).unwrap();
    for name in ["vocab.txt", "special_tokens_map.json"] {
        std::fs::copy(minilm().join(name), vocab.join(name)).unwrap();
    }
    let mut config = read_json(&minilm().join("tokenizer_config.json"));
    config["do_lower_case"] = false.into();
    std::fs::write(vocab.join("tokenizer_config.json"), config.to_string()).unwrap();
    let random = ["--random", "--vocab-from", vocab.to_str().unwrap(), "--layers", "2", "--hidden", "32"];
    let model =
        make_model(&dir, &[&random[..], &["--heads", "2", "--intermediate", "48"]].concat(), 2, 5, None, &[]);
    let out = train(&dir, &model, &[]);
    assert_eq!(read_json(&out.join("tokenizer.json"))["normalizer"]["lowercase"], false);
    check_tokenizer_json(&dir, &out);
}

#[test]
fn model_card_names_the_run() {
    let dir = temp_dir("hf_files_card");
    let model = tiny_model(&dir, 2, None, &[]);
    let extra = [
        "--do-train",
        "--do-eval",
        "--optim",
        "adamw",
        "--lr-scheduler-type",
        "linear",
        "--warmup-steps",
        "1",
    ];
    let out = train(&dir, &model, &extra);
    let card: serde_json::Value =
        serde_json::from_str(&run_python("parity/hf_files.py", &["card", out.to_str().unwrap()])).unwrap();
    let front = &card["front"];
    assert_eq!(front["library_name"], "transformers");
    assert_eq!(front["base_model"], model.to_str().unwrap());
    assert_eq!(front["tags"], serde_json::json!(["generated_from_trainer"]));
    assert!(front.get("license").is_none(), "the tiny model has no license: {front}");
    let headings: Vec<&str> =
        card["headings"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    assert_eq!(
        headings,
        [
            "# out",
            "## Model description",
            "## Intended uses & limitations",
            "## Training and evaluation data",
            "## Training procedure",
            "### Training hyperparameters",
            "### Framework versions"
        ]
    );
    let h = &card["hyperparameters"];
    assert_eq!(h["learning_rate"], "0.002");
    assert_eq!(h["train_batch_size"], "16");
    assert_eq!(h["eval_batch_size"], "16");
    assert_eq!(h["seed"], "9");
    assert_eq!(
        h["optimizer"],
        "Use adamw_torch with betas=(0.9,0.999) and epsilon=1e-08 and optimizer_args=No additional optimizer \
         arguments"
    );
    assert_eq!(h["lr_scheduler_type"], "linear");
    assert_eq!(h["lr_scheduler_warmup_steps"], "1.0");
    assert_eq!(h["num_epochs"], "2.0");
    let eval = &card["eval"];
    let loss = read_json(&out.join("eval_results.json"))["eval_loss"].as_f64().unwrap();
    assert_eq!(eval["Loss"], format!("{loss:.4}"));
    assert!(eval.get("Accuracy").is_some(), "{eval}");
    assert!(card["versions"].as_object().unwrap().keys().any(|k| k.starts_with("bertfit ")), "{card}");
}

#[test]
fn a_checkpoint_has_tokenizer_json_in_its_manifest_and_resumes() {
    let dir = temp_dir("hf_files_checkpoint");
    let model = tiny_model(&dir, 2, None, &[]);
    let out = train(&dir, &model, &["--save-steps", "1"]);
    let ckpt = latest_checkpoint(&out).expect("a checkpoint");
    let file = ckpt.join("tokenizer.json");
    assert!(file.is_file(), "{} has no tokenizer.json", ckpt.display());
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(out.join("tokenizer.json")).unwrap());
    let manifest = read_json(&ckpt.join("bertfit_manifest.json"));
    let entry = &manifest["tokenizer.json"];
    assert_eq!(entry["bytes"].as_u64(), Some(std::fs::metadata(&file).unwrap().len()), "{manifest}");

    let first = out.join("checkpoint-1");
    let resumed_dir = dir.join("resumed");
    std::fs::create_dir_all(&resumed_dir).unwrap();
    let resumed = train(
        &resumed_dir,
        &model,
        &["--save-steps", "1", "--resume-from-checkpoint", first.to_str().unwrap()],
    );
    assert!(resumed.join("tokenizer.json").is_file());
    check_tokenizer_json(&dir, &first);
}

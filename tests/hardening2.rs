//! Issue 20, second hardening round, outside training: numeric flags bounded in one place, `plot`
//! on a diverged run and on bad `--output` paths, damaged safetensors told in words, vocab.txt line
//! ends as transformers reads them, id2label and model_type checks, TOML value types, and what
//! `predict` / `evaluate` leave behind. Every case runs the real binary on a file the test makes
//! or damages.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::files::names;
use crate::common::{assert_refused, bertfit, read_json, run_bertfit, small_csv, temp_dir, tiny_model};

/// One tiny model for the whole module (made once by transformers); tests copy it to damage it.
fn model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| tiny_model(&temp_dir("hardening2_model"), 2, None, &[]))
}

/// A copy of the tiny model in `dir/model`.
fn model_copy(dir: &Path) -> PathBuf {
    let to = dir.join("model");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(model()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs bertfit, killing it after `limit`: (exit code, stderr, how long it ran). A run that
/// hangs is a failure naming the command, not a test that never ends.
fn run_within(args: &[&str], limit: Duration) -> (i32, String, Duration) {
    let started = Instant::now();
    let mut child = bertfit().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("bertfit {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned(), started.elapsed())
}

/// A text-only CSV of `n` rows for predict.
fn write_texts(path: &Path, n: usize) {
    let mut text = String::from("text\n");
    for i in 0..n {
        text.push_str(&format!("\"a sentence to classify, number {i}, with a few more words\"\n"));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn threads_out_of_range_are_refused_by_every_subcommand_within_seconds() {
    let dir = temp_dir("hardening2_threads");
    let data = small_csv(&dir);
    let texts = dir.join("texts.csv");
    write_texts(&texts, 4);
    let (m, d, t) = (s(model()), s(&data), s(&texts));
    let out = dir.join("out");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let too_many = (cores * 4 + 1).to_string();
    for value in ["0", "-1", "100000", too_many.as_str(), "99999999999"] {
        let predict_out = dir.join("p.csv");
        let runs: [Vec<&str>; 3] = [
            vec!["predict", "--model", m, "--data", t, "--output", s(&predict_out), "--device", "cpu"],
            vec!["evaluate", "--model", m, "--data", d, "--device", "cpu"],
            vec![
                "train",
                "--model",
                m,
                "--data",
                d,
                "--output-dir",
                s(&out),
                "--device",
                "cpu",
                "--epochs",
                "1",
            ],
        ];
        for mut args in runs {
            args.extend(["--threads", value]);
            let (code, err, took) = run_within(&args, Duration::from_secs(60));
            assert_ne!(code, 0, "{args:?} was accepted:\n{err}");
            assert!(took < Duration::from_secs(20), "{args:?} took {took:?}");
            assert!(err.contains("--threads: must be in 1..="), "{args:?}:\n{err}");
            for bad in ["panicked", "Exception", "frame #", "libtorch"] {
                assert!(!err.contains(bad), "{args:?}: {bad:?} in\n{err}");
            }
            assert!(!out.exists() && !predict_out.exists(), "{args:?} wrote output");
        }
    }
    // The bound's edge is accepted.
    let edge = (cores * 4).to_string();
    let p = dir.join("edge.csv");
    let (code, err, _) = run_within(
        &["predict", "--model", m, "--data", t, "--output", s(&p), "--device", "cpu", "--threads", &edge],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn plot_finishes_on_losses_at_the_limit_of_f64() {
    let dir = temp_dir("hardening2_plot_limit");
    let mut log = String::new();
    for step in 1..=30u32 {
        let loss = match step % 3 {
            0 => 1e308,
            1 => -1e308,
            _ => 0.5,
        };
        log.push_str(&format!(
            "{{\"kind\":\"step\",\"epoch\":{},\"step\":{step},\"loss\":{loss:e},\"lr\":{}}}\n",
            1 + step / 16,
            if step % 2 == 0 { "1e308" } else { "2e-5" }
        ));
    }
    log.push_str(
        "{\"kind\":\"epoch\",\"epoch\":1,\"loss\":1e308,\"val_accuracy\":50.0,\"val_loss\":-1e308}\n",
    );
    std::fs::write(dir.join("metrics.jsonl"), log).unwrap();
    let png = dir.join("plot.png");
    let (code, err, took) = run_within(&["plot", s(&dir), "--output", s(&png)], Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert!(took < Duration::from_secs(30), "plot took {took:?}");
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 1000, "not a PNG: {} bytes", bytes.len());
}

#[test]
fn plot_output_paths_are_refused_in_words() {
    let dir = temp_dir("hardening2_plot_output");
    std::fs::write(
        dir.join("metrics.jsonl"),
        "{\"kind\":\"step\",\"epoch\":1,\"step\":1,\"loss\":0.7}\n{\"kind\":\"step\",\"epoch\":1,\"step\":2,\"loss\":0.6}\n",
    )
    .unwrap();
    let missing = dir.join("no/such/folder/plot.png");
    let gif = dir.join("plot.gif");
    let bare = dir.join("plot");
    let cases: [(&Path, &[&str]); 4] = [
        (&dir, &["is a folder", "training.png"]),
        (&missing, &["the folder", "does not exist"]),
        (&gif, &["the extension .gif", ".png, .jpg, .jpeg, .bmp"]),
        (&bare, &["no extension", ".png, .jpg, .jpeg, .bmp"]),
    ];
    for (output, words) in cases {
        let mut needles = vec!["--output: ", s(output)];
        needles.extend(words);
        let err = assert_refused(&["plot", s(&dir), "--output", s(output)], &needles);
        assert!(!err.contains("ImageError") && !err.contains("backend error"), "{err}");
        assert!(!gif.exists() && !bare.exists() && !missing.exists());
    }
    // The default, and an allowed extension in capitals, are drawn.
    let (code, _, err) = run_bertfit(&["plot", s(&dir), "--output", s(&dir.join("plot.PNG"))]);
    assert_eq!(code, 0, "{err}");
}

/// model.safetensors split into its JSON header and its data.
fn read_safetensors(path: &Path) -> (serde_json::Map<String, Value>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header.as_object().unwrap().clone(), bytes[8 + n..].to_vec())
}

fn write_safetensors(path: &Path, header: &serde_json::Map<String, Value>, data: &[u8]) {
    let text = serde_json::to_string(header).unwrap();
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend(text.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// The tensors of a header by their data offsets: (begin, end, name).
fn by_offset(header: &serde_json::Map<String, Value>) -> Vec<(u64, u64, String)> {
    let mut v: Vec<(u64, u64, String)> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, e)| {
            let o = e["data_offsets"].as_array().unwrap();
            (o[0].as_u64().unwrap(), o[1].as_u64().unwrap(), k.clone())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn damaged_safetensors_are_told_in_words_naming_file_and_tensor() {
    let dir = temp_dir("hardening2_safetensors");
    let texts = dir.join("texts.csv");
    write_texts(&texts, 3);
    let (header, data) = read_safetensors(&model().join("model.safetensors"));
    let spans = by_offset(&header);
    let (middle, last) = (spans[spans.len() / 2].clone(), spans[spans.len() - 1].clone());
    let f32_name = "classifier.weight";
    let shape = header[f32_name]["shape"].clone();
    assert_eq!(header[f32_name]["dtype"], "F32");

    type Damage = Box<dyn Fn(&mut serde_json::Map<String, Value>, &mut Vec<u8>)>;
    let cases: Vec<(&str, Damage, Vec<String>)> = vec![
        (
            "f16_over_f32",
            Box::new(move |h, _| h[f32_name]["dtype"] = "F16".into()),
            vec![
                format!("tensor '{f32_name}': shape"),
                "of F16 needs".into(),
                "does not match the data".into(),
            ],
        ),
        (
            "shape_times_dtype",
            Box::new(move |h, _| h[f32_name]["shape"] = serde_json::json!([shape[0], 31])),
            vec![format!("tensor '{f32_name}': shape [2, 31] of F32 needs 248 bytes")],
        ),
        (
            "end_past_file",
            {
                let name = last.2.clone();
                Box::new(move |h, _| {
                    let o = &mut h[&name]["data_offsets"];
                    *o = serde_json::json!([o[0].as_u64().unwrap() + 64, o[1].as_u64().unwrap() + 64]);
                })
            },
            vec![format!("tensor '{}' ends at data byte", last.2), "the file is truncated".into()],
        ),
        (
            "unknown_dtype",
            Box::new(move |h, _| h[f32_name]["dtype"] = "F8_E4M3".into()),
            vec![format!("tensor '{f32_name}' has dtype 'F8_E4M3'"), "which bertfit cannot read".into()],
        ),
        (
            "dropped_tensor",
            {
                let name = middle.2.clone();
                Box::new(move |h, _| {
                    h.remove(&name);
                })
            },
            vec![
                format!("data bytes {}..{}", middle.0, middle.1),
                "belong to no tensor".into(),
                "dropped".into(),
            ],
        ),
        (
            "trailing_garbage",
            Box::new(|_, d| d.extend([7u8; 100])),
            vec!["100 bytes follow the last tensor's data".into(), format!("tensor '{}'", last.2)],
        ),
        (
            "truncated",
            Box::new(|_, d| d.truncate(d.len() * 2 / 3)),
            vec!["ends at data byte".into(), "the file is truncated".into()],
        ),
    ];
    for (name, damage, words) in cases {
        let case = dir.join(name);
        std::fs::create_dir_all(&case).unwrap();
        let m = model_copy(&case);
        let (mut h, mut d) = (header.clone(), data.clone());
        damage(&mut h, &mut d);
        let weights = m.join("model.safetensors");
        write_safetensors(&weights, &h, &d);
        let out = case.join("out.csv");
        let mut needles = vec![format!("{}: ", weights.display()), "caused by: ".to_string()];
        needles.extend(words);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        let err = assert_refused(
            &["predict", "--model", s(&m), "--data", s(&texts), "--output", s(&out), "--device", "cpu"],
            &needles,
        );
        assert!(!out.exists(), "{name}: wrote output");
        // The raw code is the cause, not the message.
        let message = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
        for code in ["TensorInvalidInfo", "MetadataIncompleteBuffer", "InvalidOffset", "InvalidHeader"] {
            assert!(!message.contains(code), "{name}: the message is the code: {err}");
        }
    }
}

/// predict's output of `model` on `texts`.
fn predictions(model: &Path, texts: &Path, out: &Path) -> String {
    let (code, _, err) = run_bertfit(&[
        "predict",
        "--model",
        s(model),
        "--data",
        s(texts),
        "--output",
        s(out),
        "--device",
        "cpu",
    ]);
    assert_eq!(code, 0, "{err}");
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn vocab_line_ends_are_read_as_transformers_reads_them() {
    let dir = temp_dir("hardening2_vocab");
    let texts = dir.join("texts.csv");
    std::fs::write(&texts, "text\n\"Hello, World! unaffable tokenization\"\n\"[UNK] straße\"\n").unwrap();
    let want = predictions(model(), &texts, &dir.join("lf.csv"));
    let vocab = std::fs::read_to_string(model().join("vocab.txt")).unwrap();
    assert!(!vocab.contains('\r'));
    for (name, ends) in [("crlf", "\r\n"), ("cr", "\r")] {
        let case = dir.join(name);
        let m = model_copy(&case);
        std::fs::write(m.join("vocab.txt"), vocab.replace('\n', ends)).unwrap();
        assert_eq!(predictions(&m, &texts, &case.join("out.csv")), want, "{name} line ends");
    }
    // A byte-order mark would become part of the first token in transformers: refused by name.
    let case = dir.join("bom");
    let m = model_copy(&case);
    std::fs::write(m.join("vocab.txt"), format!("\u{feff}{vocab}")).unwrap();
    assert_refused(
        &[
            "predict",
            "--model",
            s(&m),
            "--data",
            s(&texts),
            "--output",
            s(&case.join("o.csv")),
            "--device",
            "cpu",
        ],
        &["vocab.txt: starts with a byte-order mark"],
    );
}

/// A copy of the model with its config.json edited by `edit`.
fn model_with_config(dir: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    let m = model_copy(dir);
    let mut cfg = read_json(&m.join("config.json"));
    edit(&mut cfg);
    std::fs::write(m.join("config.json"), serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    m
}

#[test]
fn repeated_label_names_and_other_model_types_are_refused() {
    let dir = temp_dir("hardening2_config");
    let texts = dir.join("texts.csv");
    write_texts(&texts, 2);
    let data = small_csv(&dir);

    let dup = model_with_config(&dir.join("dup"), |c| {
        c["id2label"] = serde_json::json!({"0": "spam", "1": "spam"});
        c["label2id"] = serde_json::json!({"spam": 1});
    });
    let out = dir.join("dup.csv");
    let needles = ["config.json: key 'id2label': ids 0 and 1 both name the label 'spam'"];
    assert_refused(
        &["predict", "--model", s(&dup), "--data", s(&texts), "--output", s(&out), "--device", "cpu"],
        &needles,
    );
    assert_refused(&["evaluate", "--model", s(&dup), "--data", s(&data), "--device", "cpu"], &needles);
    assert!(!out.exists());

    // An architecture bertfit does not build, refused by name; a supported family whose weights
    // are BERT's (the `bert.` prefix) is refused by the weights' names.
    let gpt2 = model_with_config(&dir.join("gpt2"), |c| c["model_type"] = "gpt2".into());
    let needles = ["config.json: model_type 'gpt2' is not supported; bertfit fine-tunes bert, roberta"];
    assert_refused(
        &["predict", "--model", s(&gpt2), "--data", s(&texts), "--output", s(&out), "--device", "cpu"],
        &needles,
    );
    let roberta = model_with_config(&dir.join("roberta"), |c| c["model_type"] = "roberta".into());
    assert_refused(
        &["predict", "--model", s(&roberta), "--data", s(&texts), "--output", s(&out), "--device", "cpu"],
        &["tensor(s) the model has no place for: 'bert."],
    );
    let train_out = dir.join("train_out");
    assert_refused(
        &["train", "--model", s(&gpt2), "--data", s(&data), "--output-dir", s(&train_out), "--device", "cpu"],
        &needles,
    );
    // Negative control: the unedited copy predicts.
    let plain = model_with_config(&dir.join("plain"), |_| {});
    predictions(&plain, &texts, &dir.join("plain.csv"));
}

/// `train` with the TOML `file` for a model that does not exist: a value the file gets wrong is
/// refused before the model is looked for.
fn toml_args<'a>(out: &'a Path, file: &'a Path) -> [&'a str; 9] {
    ["train", "--model", "no-such-model", "--data", "d.csv", "--output-dir", s(out), "--config", s(file)]
}

#[test]
fn toml_values_of_the_wrong_type_are_refused_by_key() {
    let dir = temp_dir("hardening2_toml");
    let out = dir.join("out");
    let cases: [(&str, &[&str]); 5] = [
        (
            "learning_rate = \"1e-3\"\n",
            &["key 'learning_rate'", "--learning-rate takes a number", "not a string"],
        ),
        ("do_train = \"true\"\n", &["key 'do_train'", "--do-train takes true or false"]),
        ("num_train_epochs = \"3\"\n", &["key 'num_train_epochs'", "--epochs takes a number"]),
        ("seed = true\n", &["key 'seed'", "--seed takes a whole number", "not a boolean"]),
        ("device = 0\n", &["key 'device'", "--device takes text, written in quotes"]),
    ];
    for (i, (text, needles)) in cases.iter().enumerate() {
        let file = dir.join(format!("{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let mut want = vec![s(&file)];
        want.extend(needles.iter());
        assert_refused(&toml_args(&out, &file), &want);
    }
    // The same values with their TOML types get past the file (and stop at the missing model).
    let file = dir.join("typed.toml");
    std::fs::write(
        &file,
        "learning_rate = 1e-3\ndo_train = true\nnum_train_epochs = 3\nseed = 7\ndevice = \"cpu\"\n",
    )
    .unwrap();
    let err = assert_refused(&toml_args(&out, &file), &["no-such-model"]);
    assert!(!err.contains("key '"), "{err}");
}

/// The partial files of predict in `dir` (`.NAME.bertfit-partial-PID`).
fn partials(dir: &Path) -> Vec<String> {
    names(dir).into_iter().filter(|n| n.contains(".bertfit-partial-")).collect()
}

#[test]
fn predict_leaves_no_partial_file_after_a_signal_and_sweeps_stale_ones() {
    let dir = temp_dir("hardening2_partial");
    let texts = dir.join("texts.csv");
    write_texts(&texts, 200_000);
    let outdir = dir.join("out");
    std::fs::create_dir_all(&outdir).unwrap();
    let out = outdir.join("pred.csv");

    // Left by runs that died: one of a process that is gone (above the kernel's pid_max), one of
    // a live process (this test), one that is not bertfit's name.
    let dead = outdir.join(".pred.csv.bertfit-partial-99999999");
    let alive = outdir.join(format!(".pred.csv.bertfit-partial-{}", std::process::id()));
    let foreign = outdir.join("pred.csv.bertfit-partial-99999999");
    for f in [&dead, &alive, &foreign] {
        std::fs::write(f, "half a file").unwrap();
    }
    let mut child = bertfit()
        .args(["predict", "--model", s(model()), "--data", s(&texts), "--output", s(&out)])
        .args(["--device", "cpu", "--threads", "1", "--batch-size", "8"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let own = format!(".pred.csv.bertfit-partial-{}", child.id());
    let started = Instant::now();
    while !outdir.join(&own).exists() {
        assert!(child.try_wait().unwrap().is_none(), "predict ended before it wrote");
        assert!(started.elapsed() < Duration::from_secs(60), "no partial file after 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill only sends a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_within(&mut child, Duration::from_secs(30));
    let err = {
        use std::io::Read;
        let mut e = String::new();
        child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
        e
    };
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!out.exists(), "an interrupted prediction wrote its output");
    assert!(err.contains("removed") && err.contains(s(&dead)), "the sweep was not reported:\n{err}");
    let left = partials(&outdir);
    let want = [
        alive.file_name().unwrap().to_string_lossy().into_owned(),
        "pred.csv.bertfit-partial-99999999".into(),
    ];
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(left, want, "only the live process's and the foreign file stay");
}

fn wait_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the child did not end within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn predict_into_a_missing_folder_names_the_folder() {
    let dir = temp_dir("hardening2_missing_folder");
    let texts = dir.join("texts.csv");
    write_texts(&texts, 2);
    let out = dir.join("absent/pred.csv");
    let err = assert_refused(
        &["predict", "--model", s(model()), "--data", s(&texts), "--output", s(&out), "--device", "cpu"],
        &["--output: ", "the folder", "absent does not exist"],
    );
    assert!(!err.contains("bertfit-partial"), "names the partial file:\n{err}");
}

/// `evaluate` of the shared model on `data` on the CPU, results into `out`.
fn evaluate_args<'a>(data: &'a Path, out: &'a Path) -> [&'a str; 9] {
    ["evaluate", "--model", s(model()), "--data", s(data), "--device", "cpu", "--output-dir", s(out)]
}

#[test]
fn evaluate_into_a_folder_with_results_follows_the_overwrite_rule() {
    let dir = temp_dir("hardening2_evaluate");
    let data = small_csv(&dir);
    let results = dir.join("results");
    std::fs::create_dir_all(&results).unwrap();
    // A training folder's results: evaluate must not replace one without --overwrite.
    let old_eval = "{\"eval_accuracy\": 0.123, \"eval_loss\": 9.0}";
    let old_all = "{\"eval_accuracy\": 0.123, \"eval_loss\": 9.0, \"train_loss\": 1.5}";
    std::fs::write(results.join("eval_results.json"), old_eval).unwrap();
    std::fs::write(results.join("all_results.json"), old_all).unwrap();
    let args = evaluate_args(&data, &results);
    assert_refused(
        &args,
        &[
            "--output-dir: ",
            s(&results),
            "holds a previous run",
            "all_results.json",
            "eval_results.json",
            "--overwrite",
        ],
    );
    assert_eq!(std::fs::read_to_string(results.join("eval_results.json")).unwrap(), old_eval);
    assert_eq!(std::fs::read_to_string(results.join("all_results.json")).unwrap(), old_all);

    // With --overwrite: replaced, and all_results.json agrees (its other keys kept), as HF's
    // save_metrics leaves them.
    let mut with = args.to_vec();
    with.push("--overwrite");
    let (code, _, err) = run_bertfit(&with);
    assert_eq!(code, 0, "{err}");
    let eval = read_json(&results.join("eval_results.json"));
    let all = read_json(&results.join("all_results.json"));
    assert_ne!(eval["eval_accuracy"], 0.123);
    assert_eq!(all["train_loss"], 1.5);
    for (k, v) in eval.as_object().unwrap() {
        assert_eq!(&all[k], v, "all_results.json's {k}");
    }
    // An empty folder needs no --overwrite.
    let fresh = dir.join("fresh");
    let (code, _, err) = run_bertfit(&evaluate_args(&data, &fresh));
    assert_eq!(code, 0, "{err}");
    assert!(fresh.join("eval_results.json").is_file());
}

//! Issue 10: no panic, no abort, nothing lost. Bad files are refused with the file and key (or
//! row) named, a non-zero exit and no panic, and the previous run in the output folder is left as
//! it was (hashed before and after). A final save killed at any point, or failing on a full disk,
//! leaves the complete old model or the complete new one, and transformers loads it.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::common::files::{copy_tree, hash_tree, leftovers, model_hashes};
use super::common::fixtures::{finished_run, FinishedRun};
use super::common::{
    assert_refused, bertfit, check, run_bertfit, run_python, temp_dir, user_mount_namespaces,
    watch_save_points, write_csv, TrainRun,
};

/// A tiny model folder, a small CSV and a finished run of it (`out`: the previous run), made once
/// and shared (read only).
fn fixture() -> &'static FinishedRun {
    static FIXTURE: OnceLock<FinishedRun> = OnceLock::new();
    FIXTURE.get_or_init(|| finished_run("hardening_fixture", "previous", |m, d, o| train(m, d, o, &[])))
}

/// `train` arguments for one short CPU run (two steps); `extra` appended.
fn train(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    TrainRun::tiny(model, data, out).flag("--epochs", "1").flag("--max-steps", "2").append(extra).args()
}

/// A copy of the shared previous run in `dir/out`, for a test to run into.
fn previous_run_in(dir: &Path) -> PathBuf {
    let out = dir.join("out");
    copy_tree(&fixture().out, &out);
    out
}

/// A copy of the tiny model in `dir/model` whose config.json has `key` set to `value`.
fn model_with(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> PathBuf {
    let model = dir.join("model");
    let _ = std::fs::remove_dir_all(&model);
    copy_tree(&fixture().model, &model);
    let path = model.join("config.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(json.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    model
}

/// Runs `train` into a copy of a previous run and asserts: refused, every needle in stderr, no
/// panic, the previous run's files unchanged.
fn refused_into_previous(dir: &Path, model: &Path, extra: &[&str], needles: &[&str]) -> String {
    refused_into_previous_on(dir, model, &fixture().data, extra, needles)
}

/// `refused_into_previous` on another data file.
fn refused_into_previous_on(
    dir: &Path,
    model: &Path,
    data: &Path,
    extra: &[&str],
    needles: &[&str],
) -> String {
    let out = previous_run_in(dir);
    let before = hash_tree(&out);
    let args = train(model, data, &out, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = assert_refused(&args, needles);
    assert_eq!(hash_tree(&out), before, "previous run changed:\n{err}");
    assert!(leftovers(dir).is_empty() && leftovers(&out).is_empty(), "temporary files left");
    std::fs::remove_dir_all(&out).unwrap();
    err
}

#[test]
fn config_sizes_are_bounded_and_named() {
    let dir = temp_dir("hardening_config");
    use serde_json::json;
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("vocab_size", json!(0), "must be in 1..="),
        ("vocab_size", json!(-30522), "must be in 1..="),
        ("vocab_size", json!(1_000_000_000_000i64), "must be in 1..="),
        ("hidden_size", json!(1_000_000_000), "must be in 1..="),
        ("num_hidden_layers", json!(0), "must be in 1..="),
        ("num_attention_heads", json!(3), "not a multiple"),
        ("intermediate_size", json!("3072"), "must be an integer"),
        ("max_position_embeddings", json!(1e30), "must be an integer"),
        ("type_vocab_size", json!(-1), "must be in 1..="),
        ("num_labels", json!(1_000_000_000), "more than bertfit's limit"),
        ("layer_norm_eps", json!(-1.0), "must be positive"),
    ];
    for (key, value, why) in cases {
        let model = model_with(&dir, |c| {
            c.insert(key.into(), value.clone());
        });
        let config = model.join("config.json");
        let err = refused_into_previous(&dir, &model, &[], &[config.to_str().unwrap(), key, why]);
        println!("{key} = {value}: {}", err.lines().last().unwrap_or_default());
    }
    // Every size within its limit, their product far over the parameter cap.
    let model = model_with(&dir, |c| {
        c.insert("intermediate_size".into(), json!(65536));
        c.insert("num_hidden_layers".into(), json!(256));
        c.insert("hidden_size".into(), json!(16384));
        c.insert("num_attention_heads".into(), json!(16));
    });
    refused_into_previous(&dir, &model, &[], &["config.json", "parameters"]);
    // 200,001 classes in id2label.
    let model = model_with(&dir, |c| {
        let labels: serde_json::Map<String, serde_json::Value> =
            (0..200_001).map(|i| (i.to_string(), json!(format!("l{i}")))).collect();
        c.insert("id2label".into(), labels.into());
    });
    refused_into_previous(&dir, &model, &[], &["config.json", "id2label", "limit of 100000"]);
}

#[test]
fn vocab_larger_than_the_embedding_is_refused() {
    let dir = temp_dir("hardening_vocab");
    let model = model_with(&dir, |_| {});
    let vocab = model.join("vocab.txt");
    let mut text = std::fs::read_to_string(&vocab).unwrap();
    for i in 0..10 {
        text.push_str(&format!("[unused_extra_{i}]\n"));
    }
    std::fs::write(&vocab, text).unwrap();
    let err = refused_into_previous(
        &dir,
        &model,
        &[],
        &[
            vocab.to_str().unwrap(),
            "30532 entries",
            model.join("config.json").to_str().unwrap(),
            "'vocab_size' is 30522",
        ],
    );
    println!("{}", err.lines().last().unwrap_or_default());
}

#[test]
fn nan_weights_are_named_by_key() {
    let dir = temp_dir("hardening_nan");
    let model = model_with(&dir, |_| {});
    let weights = model.join("model.safetensors");
    let key = "bert.encoder.layer.1.output.dense.weight";
    let mut tensors = tch::Tensor::read_safetensors(&weights).unwrap();
    let (_, t) = tensors.iter_mut().find(|(k, _)| k == key).expect("tiny model has the key");
    let _ = t.get(3).get(5).fill_(f64::NAN);
    tch::Tensor::write_safetensors(&tensors, &weights).unwrap();
    let err =
        refused_into_previous(&dir, &model, &[], &[weights.to_str().unwrap(), key, "1 NaN or infinite"]);
    assert!(!err.contains("learning rate"), "{err}");
    println!("{}", err.lines().last().unwrap_or_default());
}

/// The one cache entry in `cache`.
fn cache_entry(cache: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

fn run_with_cache(dir: &Path, cache: &Path) -> String {
    let f = fixture();
    let out = dir.join("out");
    let args = train(&f.model, &f.data, &out, &["--token-cache", cache.to_str().unwrap()]);
    let (code, _, err) = run_bertfit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_token_cache_entries_are_rebuilt_not_used() {
    use bertfit::data::token_cache::{parse, write_entry, Expect};
    let dir = temp_dir("hardening_token_cache");
    let cache = dir.join("cache");
    assert!(run_with_cache(&dir, &cache).contains("token cache: wrote"));
    let entry = cache_entry(&cache);
    let good = std::fs::read(&entry).unwrap();
    assert!(run_with_cache(&dir, &cache).contains("token cache: reused"));

    let expect = Expect { rows: vec![8, 4], vocab_size: 30522, max_length: 16 };
    let splits = parse(&good, &expect).expect("the entry bertfit wrote is valid");
    let mut bad_id = splits.clone();
    bad_id[0][2].input_ids[1] = 999_999;
    let mut too_long = splits.clone();
    too_long[1][0].input_ids = vec![101; 40];
    too_long[1][0].token_type_ids = vec![0; 40];
    let mut too_few = splits.clone();
    too_few[0].pop();
    fn refs(s: &[Vec<bertfit::data::tokenize::Encoding>]) -> Vec<Vec<&bertfit::data::tokenize::Encoding>> {
        s.iter().map(|split| split.iter().collect()).collect()
    }
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    // (what, how the entry is spoiled, what the warning says)
    type Spoil<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Spoil, &str)> = vec![
        ("truncated", Box::new(|| std::fs::write(&entry, &good[..good.len() / 2]).unwrap()), "checksum"),
        ("one bit flipped", Box::new(|| std::fs::write(&entry, &flipped).unwrap()), "checksum"),
        ("empty", Box::new(|| std::fs::write(&entry, b"").unwrap()), "not a bertfit token cache"),
        ("id outside vocab", Box::new(|| write_entry(&entry, &refs(&bad_id)).unwrap()), "token id 999999"),
        ("over max length", Box::new(|| write_entry(&entry, &refs(&too_long)).unwrap()), "40 tokens"),
        ("a row missing", Box::new(|| write_entry(&entry, &refs(&too_few)).unwrap()), "7 rows"),
    ];
    for (what, spoil, why) in cases {
        spoil();
        let err = run_with_cache(&dir, &cache);
        assert!(
            err.contains(entry.to_str().unwrap()) && err.contains(why) && err.contains("rebuilding"),
            "{what}: {err}"
        );
        println!("{what}: {}", err.lines().find(|l| l.contains("rebuilding")).unwrap_or_default());
        assert_eq!(std::fs::read(&entry).unwrap(), good, "{what}: the rebuilt entry differs");
    }
}

/// Spawns a training run into `out` with the save pause hook on; kills it (SIGKILL) when the save
/// reaches `kill_at`, or lets it finish when `None`. Returns the save points it announced.
fn run_until(out: &Path, extra: &[&str], kill_at: Option<&str>) -> Vec<String> {
    let f = fixture();
    let child = bertfit()
        .args(train(&f.model, &f.data, out, extra))
        .env("BERTFIT_TEST_SAVE_PAUSE_MS", if kill_at.is_some() { "1500" } else { "0" })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (points, log, status) =
        watch_save_points(child, |points| points.last().map(String::as_str) == kill_at);
    if kill_at.is_none() {
        assert!(status.success(), "{log}");
    } else {
        assert!(points.last().map(String::as_str) == kill_at, "never reached {kill_at:?}:\n{log}");
    }
    points
}

#[test]
fn kill_during_final_save_leaves_old_or_new_model() {
    let dir = temp_dir("hardening_kill");
    // A new model that differs from the previous one in every weight file.
    let new_flags = ["--learning-rate", "0.001", "--seed", "7"];
    let reference = dir.join("reference");
    let points = run_until(&reference, &new_flags, None);
    assert!(points.len() >= 5 && points.contains(&"before-swap".to_string()), "{points:?}");
    let new = model_hashes(&reference);
    let old = model_hashes(&fixture().out);
    assert_eq!(new.keys().collect::<Vec<_>>(), old.keys().collect::<Vec<_>>());
    assert_ne!(new["model.safetensors"], old["model.safetensors"], "the new run must change the weights");

    let mut folders = Vec::new();
    let swap_at = points.iter().position(|p| p == "after-swap").expect("after-swap point");
    for (i, point) in points.iter().enumerate() {
        let case = dir.join(format!("kill_{i}"));
        std::fs::create_dir_all(&case).unwrap();
        let out = previous_run_in(&case);
        let carried = out.join("checkpoint-3");
        std::fs::create_dir_all(&carried).unwrap();
        std::fs::write(carried.join("notes.txt"), "kept").unwrap();
        run_until(&out, &new_flags, Some(point));
        let got = model_hashes(&out);
        let expected = if i >= swap_at { &new } else { &old };
        assert_eq!(
            &got,
            expected,
            "killed at {point}: not the complete {} model",
            if i >= swap_at { "new" } else { "old" }
        );
        assert_eq!(std::fs::read_to_string(carried.join("notes.txt")).unwrap(), "kept", "killed at {point}");
        // The crash left its staging folder; the next save's recovery clears it.
        let left = leftovers(&case);
        let done = bertfit::output::recover(&out).unwrap();
        assert!(leftovers(&case).is_empty() && leftovers(&out).is_empty(), "killed at {point}: {done:?}");
        assert_eq!(model_hashes(&out), got, "recovery changed the model");
        println!(
            "killed at {point:<24} -> {} model, left {left:?}, recovery removed {}",
            if i >= swap_at { "new" } else { "old" },
            done.removed.len()
        );
        folders.push(out.to_string_lossy().into_owned());
    }
    let args: Vec<&str> = folders.iter().map(String::as_str).collect();
    let loaded = run_python("parity/load_saved.py", &args);
    assert_eq!(loaded.lines().filter(|l| l.starts_with("ok ")).count(), folders.len(), "{loaded}");
    print!("{loaded}");
}

#[test]
fn injected_write_failure_keeps_previous_model() {
    let dir = temp_dir("hardening_fail_write");
    let f = fixture();
    for file in ["model.safetensors", "vocab.txt", "config.json"] {
        let out = previous_run_in(&dir);
        let before = model_hashes(&out);
        let args = train(&f.model, &f.data, &out, &[]);
        let output = bertfit().args(&args).env("BERTFIT_TEST_FAIL_WRITE", file).output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && !err.contains("panicked"), "{err}");
        let named = out.join(file);
        assert!(err.contains(named.to_str().unwrap()) && err.contains("No space left on device"), "{err}");
        assert_eq!(model_hashes(&out), before, "{file}: previous model changed");
        assert!(leftovers(&dir).is_empty() && leftovers(&out).is_empty(), "{file}: temporary files left");
        println!("{file}: {}", err.lines().last().unwrap_or_default());
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// A real full disk: a 5 MB tmpfs (in a user and mount namespace) holding the previous model
/// (about 4 MB), so the new model.safetensors cannot fit.
#[test]
fn full_tmpfs_keeps_previous_model() {
    if !user_mount_namespaces() {
        return;
    }
    let dir = temp_dir("hardening_tmpfs");
    let f = fixture();
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let args = train(&f.model, &f.data, &mnt.join("out"), &[]);
    let script = r#"
        set -e
        mnt="$1"; prev="$2"; shift 2
        mount -t tmpfs -o size=5m tmpfs "$mnt"
        cp -a "$prev" "$mnt/out"
        ( cd "$mnt/out" && sha256sum config.json model.safetensors vocab.txt tokenizer_config.json ) > "$mnt/../before"
        set +e
        "$@" 2> "$mnt/../stderr"
        echo "exit $?" > "$mnt/../exit"
        set -e
        ( cd "$mnt/out" && sha256sum config.json model.safetensors vocab.txt tokenizer_config.json ) > "$mnt/../after"
        ls -A "$mnt" "$mnt/out" > "$mnt/../listing"
        df -k "$mnt" | tail -1 > "$mnt/../df"
    "#;
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"])
        .arg(&mnt)
        .arg(&f.out)
        .arg(env!("CARGO_BIN_EXE_bertfit"))
        .args(&args)
        .output()
        .unwrap();
    check(&out, "tmpfs script");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let (stderr, exit) = (read("stderr"), read("exit"));
    println!("{exit}{}\n{}", stderr.lines().last().unwrap_or_default(), read("df"));
    assert_ne!(exit.trim(), "exit 0", "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("No space left on device") && stderr.contains("model.safetensors"), "{stderr}");
    assert_eq!(read("before"), read("after"), "previous model changed");
    assert!(!read("listing").contains(".bertfit-"), "temporary files left:\n{}", read("listing"));
}

/// A `text,label,split` Parquet file in row groups of `group_rows` rows; a `None` text is a null.
fn write_parquet(path: &Path, rows: &[(Option<String>, i64, &str)], group_rows: usize) {
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;
    let text: StringArray = rows.iter().map(|r| r.0.clone()).collect();
    let label: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
    let split: StringArray = rows.iter().map(|r| Some(r.2)).collect();
    let columns: Vec<(&str, ArrayRef)> =
        vec![("text", Arc::new(text)), ("label", Arc::new(label)), ("split", Arc::new(split))];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(group_rows)).build();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// `--streaming` reads every cell in its first pass: a bad text in the last row is refused before
/// the first step, naming file, row and column, and the previous run is left as it was (no
/// metrics.jsonl.partial with step lines, no checkpoint). The Parquet case is the one the
/// label-only first pass let through (texts are another column chunk, decoded only while
/// training, after the first row groups had made steps); arrow-csv checks every field of a
/// record batch, so the CSV case (past its first 8192-row batch) was refused before as well and
/// is kept as a guard.
#[test]
fn streaming_refuses_a_bad_last_row_before_any_step() {
    let dir = temp_dir("hardening_stream_bad_row");
    let model = &fixture().model;
    let streamed = ["--streaming", "--no-shuffle", "--save-strategy", "steps", "--save-steps", "1"];

    // Parquet: 4 val rows, then train rows; row groups of 4 rows; the last row's text is null.
    let parquet = dir.join("late_null.parquet");
    let mut rows: Vec<(Option<String>, i64, &str)> =
        (0..4).map(|i| (Some(format!("held out {i}")), i % 2, "val")).collect();
    rows.extend((0..16).map(|i| (Some(format!("a short review number {i}")), i % 2, "train")));
    rows.last_mut().unwrap().0 = None;
    write_parquet(&parquet, &rows, 4);
    let err = refused_into_previous_on(
        &dir,
        model,
        &parquet,
        &streamed,
        &[parquet.to_str().unwrap(), "row 20", "column 'text'", "null"],
    );
    assert!(!err.contains("step"), "a step ran:\n{err}");
    println!("parquet: {}", err.lines().last().unwrap_or_default());

    // CSV past its first record batch: the last row's text is not UTF-8.
    let csv = dir.join("late_bytes.csv");
    let mut bytes = b"text,label,split\n".to_vec();
    for i in 0..8200 {
        bytes.extend(format!("\"a short review number {i}\",{},train\n", i % 2).as_bytes());
    }
    bytes.extend(b"\"bad \xff\xfe text\",1,train\n");
    std::fs::write(&csv, bytes).unwrap();
    let err = refused_into_previous_on(
        &dir,
        model,
        &csv,
        &streamed,
        &[csv.to_str().unwrap(), "row 8201", "column 'text'", "UTF-8"],
    );
    assert!(!err.contains("step"), "a step ran:\n{err}");
    println!("csv: {}", err.lines().last().unwrap_or_default());
}

/// Labels that differ only in case or whitespace are two classes: a warning (not an error) names
/// both spellings and where the second was first seen, for check-data and train.
#[test]
fn near_duplicate_labels_are_warned_about() {
    let dir = temp_dir("hardening_near_dup");
    let data = dir.join("dup.csv");
    let labels = ["spam", "ham", "Spam ", "ham", "spam", "h am"];
    let mut rows: Vec<(String, String, &str)> =
        labels.iter().enumerate().map(|(i, l)| (format!("message {i}"), l.to_string(), "train")).collect();
    rows.push(("held out".into(), "spam".into(), "val"));
    write_csv(&data, &rows);
    let f = fixture();
    let (code, out, err) =
        run_bertfit(&["check-data", "--model", f.model.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("train: 6 rows"), "{out}");
    let warning = format!(
        "warning: {}: row 3, column 'label': label 'Spam' differs from 'spam' (first seen at row 1)",
        data.display()
    );
    assert!(err.contains(&warning), "{err}");
    assert!(
        err.contains("row 6, column 'label': label 'h am' differs from 'ham' (first seen at row 2)"),
        "{err}"
    );
    println!("{err}");
    // Training: two classes (the tiny model's head has two).
    let two = dir.join("two.csv");
    write_csv(
        &two,
        &rows.iter().filter(|r| r.1.contains('S') || r.1.contains('s')).cloned().collect::<Vec<_>>(),
    );
    let warning = format!(
        "warning: {}: row 2, column 'label': label 'Spam' differs from 'spam' (first seen at row 1)",
        two.display()
    );
    for extra in [&[][..], &["--streaming"][..]] {
        let args = train(&f.model, &two, &dir.join("out"), extra);
        let (code, _, err) = run_bertfit(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0, "{err}");
        assert!(err.contains(&warning), "train {extra:?}:\n{err}");
    }
}

/// A Parquet file named .csv and a CSV named .parquet (or .tsv-like text) are refused by name, not
/// read as the other format and not met with the other reader's parse error.
#[test]
fn data_files_named_as_the_other_format_are_refused() {
    let dir = temp_dir("hardening_misnamed");
    let f = fixture();
    let parquet_as_csv = dir.join("data.csv");
    let rows: Vec<(Option<String>, i64, &str)> =
        (0..6).map(|i| (Some(format!("text {i}")), i % 2, "train")).collect();
    write_parquet(&parquet_as_csv, &rows, 100);
    let parquet_as_tsv = dir.join("data.tsv");
    std::fs::copy(&parquet_as_csv, &parquet_as_tsv).unwrap();
    let csv_as_parquet = dir.join("data.parquet");
    std::fs::copy(&f.data, &csv_as_parquet).unwrap();
    let cases = [
        (&parquet_as_csv, "this is a Parquet file but its name ends in .csv; rename it to .parquet"),
        (&parquet_as_tsv, "this is a Parquet file but its name ends in .tsv; rename it to .parquet"),
        (&csv_as_parquet, "this is a text (CSV) file but its name ends in .parquet; rename it to .csv"),
    ];
    for (path, why) in cases {
        let needle = format!("{}: {why}", path.display());
        let args = ["check-data", "--model", f.model.to_str().unwrap(), "--data", path.to_str().unwrap()];
        let err = assert_refused(&args, &[&needle]);
        println!("{}", err.trim());
        refused_into_previous_on(&dir, &f.model, path, &[], &[&needle]);
    }
}

/// A file where a folder is expected: the path is named once, with each cause printed once.
#[test]
fn a_file_where_a_folder_is_expected_is_named_once() {
    let dir = temp_dir("hardening_file_not_folder");
    let f = fixture();
    let file = dir.join("a_file");
    std::fs::write(&file, "not a folder").unwrap();
    let file_s = file.to_str().unwrap();
    let below = file.join("sub");
    let out = dir.join("out");
    let model = f.model.to_str().unwrap();
    let flag = |name: &str| format!("{name}: {file_s} is a file, expected a folder");
    let model_flag = format!("model '{file_s}': is a file, expected a folder");
    let cases: Vec<(Vec<String>, String)> = vec![
        (train(&f.model, &f.data, &file, &[]), flag("--output-dir")),
        (train(&f.model, &f.data, &below, &[]), flag("--output-dir")),
        (train(&f.model, &f.data, &out, &["--token-cache", file_s]), flag("--token-cache")),
        (train(&file, &f.data, &out, &[]), model_flag.clone()),
        (
            vec![
                "check-data".into(),
                "--model".into(),
                file_s.into(),
                "--data".into(),
                f.data.to_str().unwrap().into(),
            ],
            model_flag,
        ),
    ];
    for (args, needle) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = assert_refused(&args, &[needle]);
        assert_eq!(err.matches("is a file, expected a folder").count(), 1, "{err}");
        assert!(!err.contains("caused by"), "{err}");
        println!("{}", err.lines().last().unwrap_or_default());
    }
    assert!(!out.exists(), "a refused run made its output folder");
    // The class: an I/O error's cause is printed once (it was once in the message and again as
    // `caused by:`). A folder named like a data file: reading it fails with EISDIR.
    let folder = dir.join("folder.csv");
    std::fs::create_dir_all(&folder).unwrap();
    let args = ["check-data", "--model", model, "--data", folder.to_str().unwrap()];
    let err = assert_refused(&args, &[folder.to_str().unwrap(), "Is a directory"]);
    assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
    println!("{}", err.trim());
}

/// check-data reads only the tokenizer: a model folder without weights is enough for it, while
/// train on the same folder names the missing weights file.
#[test]
fn check_data_needs_no_weights() {
    let dir = temp_dir("hardening_check_no_weights");
    let f = fixture();
    let model = dir.join("tokenizer_only");
    copy_tree(&f.model, &model);
    for weights in ["model.safetensors", "pytorch_model.bin"] {
        let _ = std::fs::remove_file(model.join(weights));
    }
    let (code, out, err) =
        run_bertfit(&["check-data", "--model", model.to_str().unwrap(), "--data", f.data.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("train: 8 rows") && out.contains("validation: 4 rows"), "{out}");
    print!("{out}");
    let args = train(&model, &f.data, &dir.join("out"), &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = assert_refused(&args, &[model.to_str().unwrap(), "model.safetensors"]);
    println!("{}", err.lines().last().unwrap_or_default());
}

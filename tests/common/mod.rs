//! Shared test plumbing: where the Python side and the assets are, temp folders, running scripts.
//!
//! `scripts/test.sh` sets BERTFIT_PYTHON and BERTFIT_ASSETS after `scripts/setup.sh`; the defaults are
//! setup.sh's cache paths. A test that needs them fails (it does not skip) when they are missing.
#![allow(dead_code)]
pub mod files;
pub mod fixtures;
pub mod logits;
pub mod train_run;
pub mod zygote;

pub use train_run::{Flags, TrainRun};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn cache_dir() -> PathBuf {
    match std::env::var_os("BERTFIT_CACHE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/bertfit"),
    }
}

pub fn python() -> PathBuf {
    let p = std::env::var_os("BERTFIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("venv/bin/python"));
    assert!(p.exists(), "{} not found: run scripts/setup.sh (or scripts/test.sh)", p.display());
    p
}

pub fn assets() -> PathBuf {
    let p =
        std::env::var_os("BERTFIT_ASSETS").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("assets"));
    assert!(p.exists(), "{} not found: run scripts/setup.sh (or scripts/test.sh)", p.display());
    p
}

pub fn minilm() -> PathBuf {
    assets().join("all-MiniLM-L6-v2")
}

pub fn dataset(name: &str) -> PathBuf {
    assets().join("data").join(format!("{name}.csv"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Held by the tests that seed or draw from libtorch's one default generator in this process
/// (in-process training, random heads compared with transformers'): the tests run in parallel
/// threads, and a draw of one between another's seed and its draws changes what that one sees
/// (the lib's unit tests have the same lock, `bertfit::random::generator_lock`).
pub fn generator_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The (B, width) int64 attention mask of right-padded rows: row i has `lengths[i]` ones, then
/// zeros; on the CPU.
pub fn right_padding_mask(lengths: &[i64], width: i64) -> tch::Tensor {
    use tch::{Device, Kind, Tensor};
    Tensor::arange(width, (Kind::Int64, Device::Cpu))
        .unsqueeze(0)
        .lt_tensor(&Tensor::from_slice(lengths).unsqueeze(1))
        .to_kind(Kind::Int64)
}

/// A fresh folder under the target dir, emptied first (tests run in parallel: use unique names).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Runs `scripts/<script>` with the parity Python; panics with its output if it fails.
/// Through the fork server when scripts/test.sh runs one ([`zygote`]), else as a new process.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let path = repo().join("scripts").join(script);
    let env = [("HF_HUB_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")];
    let argv: Vec<String> = std::iter::once(path.to_string_lossy().into_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .collect();
    let out = zygote::output(&argv, &env);
    check(&out, script);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bertfit binary under test: the one built alongside this test, or `BERTFIT_TEST_BIN` (to
/// check that a test fails against an older build: `BERTFIT_TEST_BIN=old/bertfit cargo test ...`).
pub fn bin() -> PathBuf {
    std::env::var_os("BERTFIT_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bertfit")))
}

/// The bertfit binary under test ([`bin`]) as a command.
pub fn bertfit() -> Command {
    Command::new(bin())
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An HF BertForSequenceClassification folder written by transformers (`scripts/parity/make_model.py`)
/// into `dir/model`: `source` picks the weights (`--from DIR` or `--random` with sizes), the classifier
/// is made in Python from `seed`, and `dropout` (if given) sets both dropout probabilities.
pub fn make_model(
    dir: &Path,
    source: &[&str],
    num_labels: usize,
    seed: u64,
    dropout: Option<f64>,
    extra: &[&str],
) -> PathBuf {
    let (labels, seed, dropout) = (num_labels.to_string(), seed.to_string(), dropout.map(|d| d.to_string()));
    let mut args = source.to_vec();
    args.extend(["--num-labels", &labels, "--seed", &seed]);
    if let Some(d) = &dropout {
        args.extend(["--dropout", d.as_str()]);
    }
    args.extend(extra);
    let made = made_model(args.iter().map(|a| a.to_string()).collect());
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(made).unwrap() {
        let from = entry.unwrap().path();
        std::fs::copy(&from, model.join(from.file_name().unwrap())).unwrap();
    }
    model
}

/// The folder `make_model.py ARGS` wrote, made once per test process for each distinct ARGS:
/// the script is seeded, so the same arguments give the same files, and a copy saves a Python
/// start that imports torch and transformers (3-6 s; the suite asks for a model about 80 times,
/// mostly the same few).
fn made_model(args: Vec<String>) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    type Slots = Mutex<HashMap<Vec<String>, Arc<OnceLock<PathBuf>>>>;
    static MADE: OnceLock<Slots> = OnceLock::new();
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    // The map's lock is held only to find the slot: another model is made meanwhile, and a test
    // asking for the same one waits on its slot. A failed make leaves the slot empty.
    let slot = MADE.get_or_init(Default::default).lock().unwrap().entry(args.clone()).or_default().clone();
    slot.get_or_init(|| {
        let out = temp_dir(&format!("made_models/{}", COUNT.fetch_add(1, Ordering::Relaxed)));
        let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
        full.extend(["--out", out.to_str().unwrap()]);
        run_python("parity/make_model.py", &full);
        out
    })
    .clone()
}

/// A small random config (2 layers, hidden 32, 2 heads) with MiniLM's vocabulary.
pub fn tiny_model(dir: &Path, num_labels: usize, dropout: Option<f64>, extra: &[&str]) -> PathBuf {
    let random = [
        "--random",
        "--vocab-from",
        minilm_str(),
        "--layers",
        "2",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--intermediate",
        "48",
    ];
    make_model(dir, &random, num_labels, 5, dropout, extra)
}

/// MiniLM's pretrained weights with a classifier head made in Python.
pub fn minilm_with_head(dir: &Path, num_labels: usize, seed: u64, dropout: Option<f64>) -> PathBuf {
    make_model(dir, &["--from", minilm_str()], num_labels, seed, dropout, &[])
}

/// The MiniLM folder as a `&str` for argument lists.
pub fn minilm_str() -> &'static str {
    Box::leak(minilm().to_string_lossy().into_owned().into_boxed_str())
}

/// Writes a `text,label,split` CSV from (text, label, split) rows, quoting every text.
pub fn write_csv(path: &Path, rows: &[(String, String, &str)]) {
    let mut s = String::from("text,label,split\n");
    for (text, label, split) in rows {
        s.push_str(&format!("\"{}\",{label},{split}\n", text.replace('"', "\"\"")));
    }
    std::fs::write(path, s).unwrap();
}

/// The smallest labelled CSV a run needs, written as `dir/data.csv`: 8 train rows and 4
/// validation rows, labels 0/1 alternating (the shared fixture of the fault tests).
pub fn small_csv(dir: &Path) -> PathBuf {
    let path = dir.join("data.csv");
    let mut rows: Vec<(String, String, &str)> =
        (0..8).map(|i| (format!("a short review number {i}"), (i % 2).to_string(), "train")).collect();
    rows.extend((0..4).map(|i| (format!("held out text {i}"), (i % 2).to_string(), "val")));
    write_csv(&path, &rows);
    path
}

/// Runs bertfit and returns (exit code, stdout, stderr).
pub fn run_bertfit(args: &[&str]) -> (i32, String, String) {
    outcome(&bertfit().args(args).output().expect("spawn bertfit"))
}

/// A finished process as (exit code, or -1 if a signal ended it; stdout; stderr).
pub fn outcome(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a refused run: non-zero exit, no panic, and every `needle` in stderr.
pub fn assert_refused(args: &[&str], needles: &[&str]) -> String {
    let (code, _out, err) = run_bertfit(args);
    assert_ne!(code, 0, "expected failure for {args:?}, stderr:\n{err}");
    assert!(!err.contains("panicked"), "bertfit panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    err
}

/// The newest complete checkpoint folder in `dir`, if any.
pub fn latest_checkpoint(dir: &Path) -> Option<PathBuf> {
    bertfit::train::checkpoint::list(dir).pop().map(|(_, p)| p)
}

/// Runs `scripts/<script>` as `torchrun --standalone --nproc_per_node <nproc>` (the parity venv's
/// torchrun, with run_python's environment); panics with its output if it fails.
pub fn run_torchrun(nproc: usize, script: &str, args: &[&str]) -> String {
    let torchrun = python().with_file_name("torchrun");
    assert!(torchrun.exists(), "{} not found: run scripts/setup.sh", torchrun.display());
    let out = Command::new(torchrun)
        .args(["--standalone", "--nproc_per_node", &nproc.to_string()])
        .arg(repo().join("scripts").join(script))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .output()
        .expect("spawn torchrun");
    check(&out, &format!("torchrun {script}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `scripts/launch-local.sh <nproc> -- <args>` with this build's binary (the ranks' output is
/// the launcher's).
pub fn launch_local(nproc: usize, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(repo().join("scripts/launch-local.sh"))
        .arg(nproc.to_string())
        .arg("--")
        .args(args)
        .env("BERTFIT_BIN", env!("CARGO_BIN_EXE_bertfit"))
        .env_remove("MASTER_PORT")
        .output()
        .expect("spawn launch-local.sh")
}

/// Whether `unshare --user --map-root-user --mount` works here (the real full-disk and read-only
/// tests mount a tmpfs in one); says so on stderr when it does not.
pub fn user_mount_namespaces() -> bool {
    let probe = Command::new("unshare").args(["--user", "--map-root-user", "--mount", "true"]).output();
    let works = probe.is_ok_and(|o| o.status.success());
    if !works {
        eprintln!("unshare --user --mount is not available here: the injected-failure test covers this");
    }
    works
}

/// Reads a running bertfit's stderr (piped) for the save points its test hook announces
/// (`bertfit-test: save point NAME`), SIGKILLs it as soon as `kill_when(points so far)` holds, and
/// waits for it. Returns (the points, its stderr up to then, its exit status).
pub fn watch_save_points(
    mut child: std::process::Child,
    kill_when: impl Fn(&[String]) -> bool,
) -> (Vec<String>, String, std::process::ExitStatus) {
    use std::io::{BufRead, BufReader};
    let stderr = BufReader::new(child.stderr.take().expect("stderr piped"));
    let (mut points, mut log) = (Vec::new(), String::new());
    for line in stderr.lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Some(point) = line.strip_prefix("bertfit-test: save point ") {
            points.push(point.to_string());
            if kill_when(&points) {
                child.kill().unwrap();
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    (points, log, status)
}

//! What a requeued cluster job relies on, on real processes and real signals: a run stopped by
//! SIGTERM twice and resumed with `--resume-from-checkpoint auto` each time is the uninterrupted
//! run (weights by hash, every step logged once); two ranks stopped mid-epoch (only one of them
//! signalled) resume to the uninterrupted two-rank run; `latest` refuses another run's
//! checkpoint by name and `--overwrite` sets the old run's checkpoints aside; a resume at the end
//! trains nothing; rotation keeps the newest and the best; a second run into a busy folder is
//! refused naming the first.
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::common::fixtures::{records, resume_fixture};
use super::common::{bertfit, read_json, run_bertfit, TrainRun};

fn args(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    TrainRun::new(model, data, out).extra(extra).args()
}

fn run_ok(args: &[String]) -> String {
    let out = bertfit().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{args:?}:\n{err}");
    err
}

fn sha256(path: &Path) -> String {
    bertfit::train::identity::sha256_file(path).unwrap_or_else(|e| panic!("{e}"))
}

/// A bertfit process whose stderr lines arrive on a channel (tagged with `tag`).
fn spawn_watched(cmd: &mut Command, tag: usize, tx: &mpsc::Sender<(usize, String)>) -> Child {
    let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            let _ = tx.send((tag, line));
        }
    });
    child
}

/// Waits for the `n`th `bertfit-test: step pause` line of process `tag`; returns every line seen.
fn wait_for_steps(rx: &mpsc::Receiver<(usize, String)>, tag: usize, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut seen, mut lines) = (0, Vec::new());
    while seen < n {
        let (t, line) = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("process {tag} did not reach step {n}:\n{}", lines.join("\n")));
        if t == tag && line.contains("bertfit-test: step pause") {
            seen += 1;
        }
        lines.push(format!("[{t}] {line}"));
    }
    lines
}

fn term(child: &Child) {
    // SAFETY: signalling a child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// Runs `args` with a paused step loop and stops it with SIGTERM after `steps` steps; asserts
/// bertfit's clean stop (exit 130, a checkpoint saved).
fn train_and_stop(args: &[String], steps: usize) -> String {
    train_and_stop_after(args, steps, || {})
}

/// As [`train_and_stop`], calling `during` (with the run still going) before the signal.
fn train_and_stop_after(args: &[String], steps: usize, during: impl FnOnce()) -> String {
    let (tx, rx) = mpsc::channel();
    let mut child = spawn_watched(bertfit().args(args).env("BERTFIT_TEST_STEP_PAUSE_MS", "150"), 0, &tx);
    let mut lines = wait_for_steps(&rx, 0, steps);
    during();
    term(&child);
    let status = child.wait().unwrap();
    while let Ok((_, l)) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(l);
    }
    let log = lines.join("\n");
    assert_eq!(status.code(), Some(130), "{log}");
    log
}

/// (step, loss) of every step record of a metrics.jsonl.
fn steps(out: &Path) -> Vec<(u64, f64)> {
    records(&out.join("metrics.jsonl"), "step")
        .iter()
        .map(|r| (r["step"].as_u64().unwrap(), r["loss"].as_f64().unwrap()))
        .collect()
}

#[test]
fn stopped_twice_and_resumed_with_auto_is_the_uninterrupted_run_logged_once() {
    let (dir, model, data) = resume_fixture("requeue_twice");
    let full = dir.join("full");
    // `auto` on a fresh folder starts the run.
    run_ok(&args(&model, &data, &full, &["--resume-from-checkpoint", "auto"]));
    let cut = dir.join("cut");
    let launch = args(&model, &data, &cut, &["--resume-from-checkpoint", "auto", "--prefetch", "1"]);
    train_and_stop(&launch, 6);
    let second = train_and_stop(&launch, 17);
    assert!(second.contains("resuming from"), "{second}");
    let third = run_ok(&launch);
    assert!(third.contains("resuming from"), "{third}");
    assert_eq!(sha256(&full.join("model.safetensors")), sha256(&cut.join("model.safetensors")));
    let (want, got) = (steps(&full), steps(&cut));
    assert_eq!(want.len(), 40);
    assert_eq!(got, want, "metrics.jsonl after two stops holds each step once, with the run's losses");
    assert_eq!(records(&cut.join("metrics.jsonl"), "resume").len(), 2);
    assert_eq!(records(&cut.join("metrics.jsonl"), "epoch").len(), 2);
    // A requeue of the finished job changes nothing.
    let before = std::fs::metadata(cut.join("model.safetensors")).unwrap().modified().unwrap();
    let again = run_ok(&launch);
    assert!(again.contains("finished at step 40: nothing to do"), "{again}");
    assert_eq!(std::fs::metadata(cut.join("model.safetensors")).unwrap().modified().unwrap(), before);
}

#[test]
fn a_resume_at_the_end_trains_nothing() {
    let (dir, model, data) = resume_fixture("requeue_at_end");
    let out = dir.join("out");
    let run = args(&model, &data, &out, &["--max-steps", "10", "--save-steps", "5"]);
    run_ok(&run);
    let hash = sha256(&out.join("model.safetensors"));
    let err = run_ok(&[&run[..], &["--resume-from-checkpoint".into(), "latest".into()]].concat());
    assert!(
        err.contains("the checkpoint is at step 10 of 10: the run is complete, nothing left to train"),
        "{err}"
    );
    assert_eq!(sha256(&out.join("model.safetensors")), hash, "the finished model was replaced");
    let logged: Vec<u64> = steps(&out).into_iter().map(|(s, _)| s).collect();
    assert_eq!(logged, (1..=10).collect::<Vec<_>>());
}

#[test]
fn latest_refuses_another_runs_checkpoint_and_overwrite_sets_the_old_run_aside() {
    let (dir, model, data) = resume_fixture("requeue_identity");
    let out = dir.join("out");
    run_ok(&args(&model, &data, &out, &["--save-steps", "5"]));
    // Another learning rate, resumed from the folder's newest checkpoint: refused by name.
    let other = args(&model, &data, &out, &["--save-steps", "5", "--learning-rate", "1e-3"]);
    let latest = [&other[..], &["--resume-from-checkpoint".into(), "latest".into()]].concat();
    let (code, _, err) = run_bertfit(&latest.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("checkpoint-40 is from another run"), "{err}");
    assert!(err.contains("learning_rate: 0.002 (checkpoint) vs 0.001 (this run)"), "{err}");
    // The same row count, one text edited: another data file.
    let edited = dir.join("edited.csv");
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&edited, text.replacen("\"", "\"edited ", 1)).unwrap();
    let changed = args(&model, &edited, &out, &["--save-steps", "5", "--resume-from-checkpoint", "latest"]);
    let (code, _, err) = run_bertfit(&changed.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("file data/file: sha256"), "{err}");
    // --overwrite with another seed, stopped before its first periodic checkpoint: `latest` is
    // this run's stop checkpoint, not the old run's checkpoint-40.
    let seed10 = args(&model, &data, &out, &["--save-steps", "5", "--seed", "10", "--prefetch", "1"]);
    let aside = out.join(bertfit::output::SET_ASIDE);
    train_and_stop_after(&[&seed10[..], &["--overwrite".into()]].concat(), 3, || {
        assert!(aside.join("checkpoint-40").is_dir(), "the old run's checkpoints are not set aside");
        assert!(out.join("model.safetensors").is_file(), "the old model went before the new one came");
    });
    // The stop saved this run's model: the old run's checkpoints are gone with it.
    assert!(!aside.exists());
    let left = bertfit::train::checkpoint::list(&out);
    let stop = left.last().map_or(0, |(s, _)| *s);
    assert!(left.len() == 1 && stop < 5, "the old run's checkpoints are still where latest looks: {left:?}");
    let err = run_ok(&[&seed10[..], &["--resume-from-checkpoint".into(), "latest".into()]].concat());
    assert!(err.contains(&format!("checkpoint-{stop} (step {stop})")), "{err}");
    let state = read_json(&out.join("checkpoint-40/bertfit_state.json"));
    assert_eq!(state["bertfit_identity"]["settings"]["seed"], 10);
}

#[test]
fn rotation_with_a_limit_of_one_keeps_the_newest_and_the_best() {
    let (dir, model, data) = resume_fixture("requeue_rotation");
    let out = dir.join("out");
    // The "best" by the largest loss is an early evaluation, so best and newest differ.
    let best = [
        "--save-steps",
        "5",
        "--eval-steps",
        "5",
        "--save-total-limit",
        "1",
        "--metric-for-best-model",
        "loss",
        "--greater-is-better",
        "true",
        "--prefetch",
        "1",
    ];
    let run = args(&model, &data, &out, &best);
    let log = train_and_stop(&run, 13);
    let state = read_json(&out.join("trainer_state.json"));
    let (best_step, newest) =
        (state["best_global_step"].as_u64().unwrap(), state["global_step"].as_u64().unwrap());
    let mut left: Vec<u64> =
        bertfit::train::checkpoint::list(&out).into_iter().map(|(s, _)| s as u64).collect();
    left.sort();
    assert_ne!(best_step, newest, "the test needs a best model that is not the newest:\n{log}");
    assert_eq!(left, [best_step, newest], "--save-total-limit 1 kept {left:?}:\n{log}");
}

#[test]
fn a_second_run_into_a_busy_folder_is_refused_naming_the_first() {
    let (dir, model, data) = resume_fixture("requeue_lock");
    let out = dir.join("out");
    let (tx, rx) = mpsc::channel();
    let run = args(&model, &data, &out, &["--prefetch", "1"]);
    let mut first = spawn_watched(bertfit().args(&run).env("BERTFIT_TEST_STEP_PAUSE_MS", "300"), 0, &tx);
    wait_for_steps(&rx, 0, 1);
    let second = [&run[..], &["--overwrite".into()]].concat();
    let (code, _, err) = run_bertfit(&second.iter().map(String::as_str).collect::<Vec<_>>());
    term(&first);
    let _ = first.wait();
    assert_ne!(code, 0, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(&format!("is in use by another bertfit run (PID {} on host", first.id())), "{err}");
    // The first run's log is its own: every step once, nothing of the refused run.
    let logged: Vec<u64> = steps(&out).into_iter().map(|(s, _)| s).collect();
    assert_eq!(logged, (1..=logged.len() as u64).collect::<Vec<_>>());
}

/// One rank of a 2-process run on this machine, torchrun's variables only.
fn rank(args: &[String], r: usize, port: u16) -> Command {
    let mut cmd = bertfit();
    cmd.args(args);
    for k in ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_NODELIST", "SLURM_NODELIST"] {
        cmd.env_remove(k);
    }
    cmd.env("RANK", r.to_string())
        .env("LOCAL_RANK", r.to_string())
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string());
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Both ranks to the end; panics with their output unless both exit `code`.
fn both(children: Vec<Child>, code: i32, rx: &mpsc::Receiver<(usize, String)>) {
    let codes: Vec<Option<i32>> = children.into_iter().map(|mut c| c.wait().unwrap().code()).collect();
    let log: Vec<String> = rx.try_iter().map(|(t, l)| format!("[{t}] {l}")).collect();
    assert_eq!(codes, [Some(code), Some(code)], "{}", log.join("\n"));
}

fn two_ranks(args: &[String], pause: Option<&str>) -> (Vec<Child>, mpsc::Receiver<(usize, String)>) {
    let (tx, rx) = mpsc::channel();
    let port = free_port();
    let children = (0..2)
        .map(|r| {
            let mut cmd = rank(args, r, port);
            if let Some(ms) = pause {
                cmd.env("BERTFIT_TEST_STEP_PAUSE_MS", ms);
            }
            spawn_watched(&mut cmd, r, &tx)
        })
        .collect();
    (children, rx)
}

#[test]
fn two_ranks_stopped_mid_epoch_resume_to_the_uninterrupted_run() {
    let (dir, model, data) = resume_fixture("requeue_two_ranks");
    let flags = ["--batch-size", "8", "--ddp-timeout", "60", "--prefetch", "1"];
    let full = dir.join("full");
    let (children, rx) = two_ranks(&args(&model, &data, &full, &flags), None);
    both(children, 0, &rx);
    let cut = dir.join("cut");
    let (children, rx) = two_ranks(&args(&model, &data, &cut, &flags), Some("150"));
    wait_for_steps(&rx, 0, 7);
    // Only rank 1 is told: the ranks agree on the stop and rank 0 saves for both.
    term(&children[1]);
    both(children, 130, &rx);
    let stopped = super::common::latest_checkpoint(&cut).expect("no checkpoint after the stop");
    let step: u64 = read_json(&stopped.join("trainer_state.json"))["global_step"].as_u64().unwrap();
    assert!((7..20).contains(&step), "stopped at step {step}, not mid-epoch 1");
    let resume = [&flags[..], &["--resume-from-checkpoint", "latest"]].concat();
    let (children, rx) = two_ranks(&args(&model, &data, &cut, &resume), None);
    both(children, 0, &rx);
    assert_eq!(sha256(&full.join("model.safetensors")), sha256(&cut.join("model.safetensors")));
    let rows = |out: &Path| -> Vec<serde_json::Value> {
        records(&out.join("metrics.jsonl"), "step").iter().map(|r| r["rank_rows"].clone()).collect()
    };
    assert_eq!(rows(&cut), rows(&full), "the ranks' rows after the resume");
    assert_eq!(steps(&cut), steps(&full));
}

#[test]
fn latest_with_no_checkpoint_is_refused_and_leaves_no_folder() {
    let (dir, model, data) = resume_fixture("requeue_latest_none");
    let out = dir.join("never");
    let run = args(&model, &data, &out, &["--resume-from-checkpoint", "latest"]);
    let (code, _, err) = run_bertfit(&run.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("holds no complete checkpoint"), "{err}");
    assert!(!out.exists(), "the refused run left {}", out.display());
}

/// A run folder whose name is not UTF-8 (a byte 0xff) resumes like any other, its best model
/// included (the resume used to look for "model ''").
#[test]
fn a_folder_whose_name_is_not_utf8_resumes() {
    use std::os::unix::ffi::OsStrExt;
    let (dir, model, data) = resume_fixture("requeue_not_utf8");
    let out = dir.join(std::ffi::OsStr::from_bytes(b"run-\xff"));
    let flags = ["--save-steps", "5", "--eval-steps", "5", "--load-best-model-at-end"];
    let run = |extra: &[&str]| {
        let o = TrainRun::new(&model, &data, &out).extra(&[&flags[..], extra].concat()).output();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, err) = run(&["--max-steps", "7"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(&["--max-steps", "12", "--resume-from-checkpoint", "latest"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("(step 5)"), "{err}");
    assert!(out.join("model.safetensors").is_file());
}

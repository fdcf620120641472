//! Runs that survive interruption: a run resumed from a mid-epoch checkpoint ends with the very
//! weights of the uninterrupted run (bitwise, CPU fp32, dropout and shuffling on) after the same
//! remaining losses; SIGTERM writes a checkpoint and a resume reaches the same end; a checkpoint
//! of another run is refused by what differs.
use std::path::Path;
use std::process::Command;

use super::common::fixtures::{compare_weights, records, resume_fixture};
use super::common::{read_json, TrainRun};

/// The resume tests' run: [`TrainRun::new`] on two threads.
fn run(model: &Path, data: &Path, out: &Path) -> TrainRun {
    TrainRun::new(model, data, out).flag("--threads", "2")
}

fn train(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let (code, _, err) = run(model, data, out).append(extra).run();
    (code, err)
}

fn losses_from(path: &Path, first_step: u64) -> Vec<(u64, f64)> {
    records(path, "step")
        .iter()
        .map(|r| (r["step"].as_u64().unwrap(), r["loss"].as_f64().unwrap()))
        .filter(|(s, _)| *s >= first_step)
        .collect()
}

#[test]
fn a_resumed_run_is_the_uninterrupted_run_bitwise() {
    for (name, extra) in [
        ("ckpt_resume_memory", &["--gradient-accumulation-steps", "1"][..]),
        (
            "ckpt_resume_accumulation",
            &["--gradient-accumulation-steps", "2", "--optim", "adamw", "--lr-scheduler-type", "linear"][..],
        ),
        ("ckpt_resume_streaming", &["--streaming", "--shuffle-buffer", "64"][..]),
    ] {
        let (dir, model, data) = resume_fixture(name);
        let full = dir.join("full");
        let save = [&["--save-steps", "7"][..], extra].concat();
        let (code, err) = train(&model, &data, &full, &save);
        assert_eq!(code, 0, "{err}");
        let ckpt = full.join("checkpoint-7");
        assert!(ckpt.join("trainer_state.json").is_file(), "{name}: no checkpoint-7 in {}", full.display());
        let state = read_json(&ckpt.join("trainer_state.json"));
        assert_eq!(state["global_step"], 7);
        let resumed = dir.join("resumed");
        let resume = [&["--resume-from-checkpoint", ckpt.to_str().unwrap()][..], &save].concat();
        let (code, err) = train(&model, &data, &resumed, &resume);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(
            losses_from(&full.join("metrics.jsonl"), 8),
            losses_from(&resumed.join("metrics.jsonl"), 8),
            "{name}: the remaining steps differ"
        );
        let diff = compare_weights(&full.join("model.safetensors"), &resumed.join("model.safetensors"));
        assert_eq!(diff, 0.0, "{name}: final weights differ");
    }
}

#[test]
fn sigterm_writes_a_checkpoint_and_latest_resumes_to_the_same_end() {
    let (dir, model, data) = resume_fixture("ckpt_sigterm");
    let full = dir.join("full");
    let (code, err) = train(&model, &data, &full, &[]);
    assert_eq!(code, 0, "{err}");

    let cut = dir.join("cut");
    let child = run(&model, &data, &cut)
        .flag("--prefetch", "1")
        .command()
        .env("BERTFIT_TEST_STEP_PAUSE_MS", "150")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let latest = super::common::latest_checkpoint(&cut);
    assert!(latest.is_some(), "no checkpoint after SIGTERM: {err}");

    let (code, err) = train(&model, &data, &cut, &["--resume-from-checkpoint", "latest"]);
    assert_eq!(code, 0, "{err}");
    let diff = compare_weights(&full.join("model.safetensors"), &cut.join("model.safetensors"));
    assert_eq!(diff, 0.0, "SIGTERM at {latest:?}, resumed: final weights differ");
}

#[test]
fn a_checkpoint_of_another_run_is_refused_by_what_differs() {
    let (dir, model, data) = resume_fixture("ckpt_other_run");
    let full = dir.join("full");
    let (code, err) = train(&model, &data, &full, &["--save-steps", "5", "--save-total-limit", "2"]);
    assert_eq!(code, 0, "{err}");
    let kept: Vec<String> = std::fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    assert_eq!(kept.len(), 2, "--save-total-limit 2 kept {kept:?}");
    let ckpt = super::common::latest_checkpoint(&full).unwrap();
    let other = dir.join("other");
    let resume = ["--resume-from-checkpoint", ckpt.to_str().unwrap(), "--gradient-accumulation-steps", "2"];
    let (code, err) = train(&model, &data, &other, &resume);
    assert_ne!(code, 0);
    assert!(
        err.contains("--resume-from-checkpoint") && err.contains("gradient_accumulation_steps: 1 vs 2"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let missing = dir.join("not_a_checkpoint");
    std::fs::create_dir_all(&missing).unwrap();
    let (code, err) = train(&model, &data, &other, &["--resume-from-checkpoint", missing.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("not_a_checkpoint") && err.contains("trainer_state.json"), "{err}");
}

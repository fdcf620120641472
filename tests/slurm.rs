//! The job scripts on a real one-node SLURM (Debian's slurm-wlm and munge, started by
//! `scripts/slurm/cluster.sh start`, which scripts/test.sh runs before the suite and stops after
//! it): a train.sbatch job on CPU runs to completion; each way a job is stopped (scontrol
//! requeue, `scancel --signal=TERM JOBID`, the time limit's `--signal=B:TERM@N`) saves a
//! checkpoint on the signal, and the job that continues (requeued, or resubmitted where SLURM does
//! not requeue) ends with the model of an uninterrupted job, byte for byte (sha256); the same for a
//! 2-task job stopped mid-epoch; a requeued sweep task resumes its own folder; two 2-task jobs
//! share the node at once. Tiny runs on CPU. Without a cluster these tests fail (they never skip),
//! saying how to start one.
//!
//! The jobs run the binary under test (`common::bin()`: this build's, or BERTFIT_TEST_BIN) through
//! BERTFIT_BIN. What they rely on in bertfit itself: `--resume-from-checkpoint auto` (the scripts
//! add it to every launch), metrics.jsonl keeping the steps before a resume, and (the 2-task job)
//! every rank resuming its own share of the epoch.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::common;

/// Pause after each step of a run the test stops: long enough to signal it mid-epoch.
const STEP_PAUSE_MS: &str = "300";

// ---------------------------------------------------------------------------------------------
// The cluster and its commands.

/// Checks once that a cluster answers (SLURM_CONF set, sinfo works); panics saying how to start one.
fn cluster() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let how = "these tests need a real SLURM: start one with \
                   `eval \"$(scripts/slurm/cluster.sh start)\"` and run them with that SLURM_CONF \
                   (scripts/test.sh does both, and stops it at the end)";
        assert!(std::env::var_os("SLURM_CONF").is_some(), "SLURM_CONF is not set; {how}");
        match Command::new("sinfo").args(["-h", "-o", "%T"]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("sinfo failed: {}; {how}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => panic!("sinfo: {e}; {how}"),
        }
    });
}

/// Runs a SLURM command; panics with its output when it fails.
fn slurm(program: &str, args: &[&str]) -> String {
    cluster();
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    common::check(&out, &format!("{program} {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A job's state as scontrol shows it.
#[derive(Debug, Clone)]
struct JobInfo {
    state: String,
    exit_code: String,
    restarts: u32,
}

impl JobInfo {
    fn finished(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL"
        )
    }
}

fn job_info(id: &str) -> JobInfo {
    let line = slurm("scontrol", &["show", "job", "-o", id]);
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("scontrol show job {id}: no {key} in {line}"))
            .to_string()
    };
    JobInfo {
        state: field("JobState"),
        exit_code: field("ExitCode"),
        restarts: field("Restarts").parse().unwrap(),
    }
}

/// Polls job `id` until `done` holds; panics naming `what` and the job's log after `limit`.
fn wait_job(id: &str, limit: Duration, what: &str, log: &Path, done: impl Fn(&JobInfo) -> bool) -> JobInfo {
    let started = Instant::now();
    loop {
        let info = job_info(id);
        if done(&info) {
            return info;
        }
        assert!(
            started.elapsed() < limit,
            "job {id}: {what} not seen within {limit:?} (now {info:?}); log {}:\n{}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits for job `id` to end; asserts it COMPLETED with exit 0.
fn wait_completed(id: &str, log: &Path) -> JobInfo {
    let info = wait_job(id, Duration::from_secs(240), "the end", log, JobInfo::finished);
    assert_eq!(
        (info.state.as_str(), info.exit_code.as_str()),
        ("COMPLETED", "0:0"),
        "job {id}: log {}:\n{}",
        log.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    info
}

/// A requeued job is held about 120 s (BeginTime); the test releases it early, with `updates`
/// (e.g. a longer TimeLimit) applied first. Not in the same second as the requeue: slurmd revokes
/// the old run's credentials up to that second (whole seconds), and a run started within it is
/// killed for good ("Job credential revoked", seen here).
fn release_requeued(id: &str, log: &Path, updates: &[&str]) {
    wait_job(id, Duration::from_secs(120), "the requeue", log, |j| j.restarts >= 1 && j.state == "PENDING");
    std::thread::sleep(Duration::from_secs(2));
    let job = format!("JobId={id}");
    if !updates.is_empty() {
        let mut args = vec!["update", job.as_str()];
        args.extend_from_slice(updates);
        slurm("scontrol", &args);
    }
    slurm("scontrol", &["update", &job, "StartTime=now"]);
}

/// Waits until `log` holds `count` lines with `needle` (a run's progress); panics with the log.
fn wait_lines(log: &Path, needle: &str, count: usize, id: &str) {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return;
        }
        let info = job_info(id);
        assert!(
            !info.finished() && started.elapsed() < Duration::from_secs(180),
            "job {id} ({info:?}): {count} x {needle:?} not seen in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// What the jobs train, and the uninterrupted references.

struct Fixture {
    dir: PathBuf,
    model: PathBuf,
    data: PathBuf,
    /// BERTFIT_BIN for the jobs: this build's binary, with the test's step pause on the first
    /// attempt of a job only, so a requeued attempt runs at full speed.
    bin: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        cluster();
        let dir = common::temp_dir("slurm");
        let model = common::tiny_model(&dir, 2, None, &[]);
        let data = dir.join("data.csv");
        crate::common::fixtures::subset("movies", &data, 128, 16);
        let bin = dir.join("bertfit-first-attempt-pauses");
        let script = format!(
            "#!/bin/bash\n# Pause only on a job's first attempt (SLURM_RESTART_COUNT unset or 0).\n\
             if [[ ${{SLURM_RESTART_COUNT:-0}} != 0 ]]; then unset BERTFIT_TEST_STEP_PAUSE_MS; fi\n\
             exec \"{}\" \"$@\"\n",
            common::bin().display()
        );
        std::fs::write(&bin, script).unwrap();
        common::check(&Command::new("chmod").arg("+x").arg(&bin).output().unwrap(), "chmod");
        Fixture { dir, model, data, bin }
    })
}

/// The `bertfit train` flags of every job (the scripts add --device and --resume-from-checkpoint).
/// Two shuffled epochs with dropout: a resume must restore the order and the generator exactly.
fn train_flags(out: &Path) -> Vec<String> {
    let f = fixture();
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let mut v =
        vec!["--model".into(), p(&f.model), "--data".into(), p(&f.data), "--output-dir".into(), p(out)];
    v.extend(
        ["--epochs", "2", "--batch-size", "8", "--max-length", "32", "--threads", "1", "--seed", "7"]
            .map(String::from),
    );
    v
}

/// A train.sbatch job of `tasks` tasks on one node, no GPUs, into `out`; `pause` makes its first
/// attempt pause after each step. Returns the job id and its log.
fn submit_train(name: &str, tasks: usize, out: &Path, pause: bool) -> (String, PathBuf) {
    let f = fixture();
    let log = f.dir.join(format!("{name}.out"));
    let _ = std::fs::remove_file(&log);
    let mut args: Vec<String> = vec![
        "--parsable".into(),
        format!("--job-name={name}"),
        "--nodes=1".into(),
        format!("--ntasks-per-node={tasks}"),
        "--gpus-per-node=0".into(),
        "--cpus-per-task=1".into(),
        "--time=10".into(),
        format!("--output={}", log.display()),
    ];
    args.push("scripts/slurm/train.sbatch".into());
    args.extend(train_flags(out));
    (sbatch(&args, pause.then_some(STEP_PAUSE_MS)), log)
}

/// `sbatch ARGS` from the repository root (train.sbatch finds common.sh there), with this build's
/// binary and, if `pause_ms`, the step pause (sbatch copies the environment into the job);
/// returns the job id.
fn sbatch(args: &[String], pause_ms: Option<&str>) -> String {
    cluster();
    let mut cmd = Command::new("sbatch");
    cmd.args(args).current_dir(common::repo()).env("BERTFIT_BIN", &fixture().bin);
    for k in ["MASTER_PORT", "MASTER_ADDR", "WORLD_SIZE", "RANK", "BERTFIT_DRY_RUN"] {
        cmd.env_remove(k);
    }
    match pause_ms {
        Some(ms) => cmd.env("BERTFIT_TEST_STEP_PAUSE_MS", ms),
        None => cmd.env_remove("BERTFIT_TEST_STEP_PAUSE_MS"),
    };
    let out = cmd.output().expect("spawn sbatch");
    common::check(&out, "sbatch");
    String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap().to_string()
}

/// An uninterrupted job of `tasks` tasks, submitted once and shared by the tests that compare
/// with it; each test waits for it only when it needs its model.
struct Reference {
    id: String,
    log: PathBuf,
    out: PathBuf,
    done: OnceLock<String>,
}

impl Reference {
    fn submit(tasks: usize) -> Reference {
        let out = fixture().dir.join(format!("reference-{tasks}"));
        let (id, log) = submit_train(&format!("reference-{tasks}"), tasks, &out, false);
        Reference { id, log, out, done: OnceLock::new() }
    }

    /// The sha256 of its model.safetensors, once the job completed.
    fn model_hash(&self) -> &str {
        self.done.get_or_init(|| {
            wait_completed(&self.id, &self.log);
            model_hash(&self.out)
        })
    }
}

/// Both references are submitted by the first test that needs either, so they run alongside it.
fn references() -> &'static [Reference; 2] {
    static REFS: OnceLock<[Reference; 2]> = OnceLock::new();
    REFS.get_or_init(|| [Reference::submit(1), Reference::submit(2)])
}

fn model_hash(out: &Path) -> String {
    let bytes = std::fs::read(out.join("model.safetensors"))
        .unwrap_or_else(|e| panic!("{}: {e}", out.join("model.safetensors").display()));
    format!("{:x}", Sha256::digest(&bytes))
}

// ---------------------------------------------------------------------------------------------
// Signal to saved checkpoint.

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Waits for the first checkpoint in `out`; returns its folder and when its last file was written
/// (seconds since the epoch), which is when the save on the signal was complete.
fn wait_checkpoint(out: &Path, id: &str, log: &Path) -> (PathBuf, f64) {
    let started = Instant::now();
    loop {
        if let Some(ckpt) = common::latest_checkpoint(out) {
            let newest = std::fs::read_dir(&ckpt)
                .unwrap()
                .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
                .max()
                .unwrap();
            return (ckpt, newest.duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
        }
        let info = job_info(id);
        assert!(
            started.elapsed() < Duration::from_secs(120) && !info.finished(),
            "job {id}: no checkpoint in {} after the stop ({info:?}); log:\n{}",
            out.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The step of a checkpoint folder (`checkpoint-<step>`).
fn checkpoint_step(ckpt: &Path) -> usize {
    ckpt.file_name().unwrap().to_str().unwrap().trim_start_matches("checkpoint-").parse().unwrap()
}

/// Asserts the stop was clean (bertfit's "stopped, saved" exit, no quit-at-once) and the checkpoint
/// was saved within a minute of the signal (a liveness bound, not a speed check).
fn report_stop(path: &str, log: &Path, ckpt: &Path, signalled_at: f64, saved_at: f64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(!text.contains("second stop signal"), "{path}: bertfit got two signals:\n{text}");
    assert!(!text.contains(": Killed"), "{path}: a task was killed:\n{text}");
    let seconds = saved_at - signalled_at;
    assert!(
        (-0.5..60.0).contains(&seconds),
        "{path}: signal to checkpoint {seconds:.2} s ({} at step {}; the step in progress, at most one \
         test pause, then the save, which metrics.jsonl times at {})",
        ckpt.file_name().unwrap().to_string_lossy(),
        checkpoint_step(ckpt),
        save_seconds(ckpt).map_or("?".into(), |s| format!("{s:.3} s"))
    );
}

/// How long the write of checkpoint `ckpt` took, from its run's `checkpoint` record.
fn save_seconds(ckpt: &Path) -> Option<f64> {
    let out = ckpt.parent()?;
    let text = ["metrics.jsonl", "metrics.jsonl.partial"]
        .iter()
        .find_map(|name| std::fs::read_to_string(out.join(name)).ok())?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|r| r["kind"] == "checkpoint" && r["step"] == checkpoint_step(ckpt))
        .and_then(|r| r["seconds"].as_f64())
}

/// What train.sbatch's TERM trap did: passed the stop to the job step (`forwarded`: the batch shell
/// alone got the signal), or left it to SLURM, which had signalled the tasks itself (a second
/// SIGTERM would have made bertfit quit without saving).
fn assert_trap(log: &Path, forwarded: bool) {
    let text = std::fs::read_to_string(log).unwrap();
    let (sent, left) = (
        text.contains("bertfit job: SIGTERM for job step(s)"),
        text.contains("SLURM signals the tasks itself"),
    );
    assert_eq!((sent, left), (forwarded, !forwarded), "train.sbatch's trap:\n{text}");
}

/// After a resume: the run loaded the checkpoint saved on the signal (a `checkpoint_load` record)
/// and kept every step of the run once.
fn assert_resumed_from(out: &Path, step: usize, steps_total: usize) {
    let metrics = out.join("metrics.jsonl");
    let loads = crate::common::fixtures::records(&metrics, "checkpoint_load");
    assert!(
        loads.iter().any(|r| r["step"] == step),
        "{}: no checkpoint_load of step {step}: {loads:?}",
        metrics.display()
    );
    let steps: Vec<u64> = crate::common::fixtures::records(&metrics, "step")
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (1..=steps_total as u64).collect();
    assert_eq!(steps, want, "{}: every step once", metrics.display());
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn a_cpu_train_job_completes_and_its_folder_loads_in_transformers() {
    let reference = &references()[0];
    reference.model_hash();
    let log = std::fs::read_to_string(&reference.log).unwrap();
    // The script chose the CPU for a job without GPUs (the header asks for 4 per node).
    assert!(!log.contains("cuda"), "{log}");
    let loaded = common::run_python("parity/load_saved.py", &[reference.out.to_str().unwrap()]);
    assert!(loaded.starts_with("ok "), "{loaded}");
}

/// `scontrol requeue`: SLURM itself sends SIGTERM to the tasks (and the batch shell, which must not
/// send a second one); the requeued job resumes and ends with the uninterrupted job's model.
#[test]
fn scontrol_requeue_saves_and_the_requeued_job_ends_equal() {
    let reference = &references()[0];
    let out = fixture().dir.join("requeue");
    let (id, log) = submit_train("requeue", 1, &out, true);
    wait_lines(&log, "bertfit-test: step pause", 5, &id);
    let signalled_at = unix_now();
    slurm("scontrol", &["requeue", &id]);
    let (ckpt, saved_at) = wait_checkpoint(&out, &id, &log);
    release_requeued(&id, &log, &[]);
    wait_completed(&id, &log);
    report_stop("scontrol requeue", &log, &ckpt, signalled_at, saved_at);
    assert_trap(&log, false);
    assert!(checkpoint_step(&ckpt) < 16, "not mid-epoch: {}", ckpt.display());
    assert_eq!(model_hash(&out), reference.model_hash(), "requeued job's model differs");
    assert_resumed_from(&out, checkpoint_step(&ckpt), 32);
}

/// `scancel --signal=TERM JOBID` signals the steps' tasks: bertfit saves and exits 130, SLURM does
/// not requeue; the same sbatch command again (as the README says) continues to the same model.
#[test]
fn scancel_signal_term_saves_and_the_resubmitted_job_ends_equal() {
    let reference = &references()[0];
    let out = fixture().dir.join("scancel");
    let (id, log) = submit_train("scancel", 1, &out, true);
    wait_lines(&log, "bertfit-test: step pause", 5, &id);
    let signalled_at = unix_now();
    slurm("scancel", &["--signal=TERM", &id]);
    let (ckpt, saved_at) = wait_checkpoint(&out, &id, &log);
    let info = wait_job(&id, Duration::from_secs(60), "the end", &log, JobInfo::finished);
    assert_eq!((info.state.as_str(), info.exit_code.as_str()), ("FAILED", "130:0"), "{info:?}");
    report_stop("scancel --signal=TERM", &log, &ckpt, signalled_at, saved_at);

    let (again, log2) = submit_train("scancel-again", 1, &out, false);
    wait_completed(&again, &log2);
    assert_eq!(model_hash(&out), reference.model_hash(), "resubmitted job's model differs");
    assert_resumed_from(&out, checkpoint_step(&ckpt), 32);
}

/// The time limit: `--signal=B:TERM@N` reaches the batch shell alone, which passes SIGTERM to the
/// job step's tasks (not to srun, which would SIGKILL them), waits for the save and requeues.
#[test]
fn the_time_limit_signal_saves_and_the_job_requeues_itself() {
    let reference = &references()[0];
    let out = fixture().dir.join("timelimit");
    // A 1-minute limit with the signal due 55 s before it: SLURM checks limits about every 30 s,
    // so it comes 5-35 s in; the first attempt pauses 1.5 s a step (32 steps, about 50 s).
    let f = fixture();
    let log = f.dir.join("timelimit.out");
    let _ = std::fs::remove_file(&log);
    let mut args: Vec<String> = [
        "--parsable",
        "--job-name=timelimit",
        "--nodes=1",
        "--ntasks-per-node=1",
        "--gpus-per-node=0",
        "--cpus-per-task=1",
        "--time=1",
        "--signal=B:TERM@55",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--output={}", log.display()));
    args.push("scripts/slurm/train.sbatch".into());
    args.extend(train_flags(&out));
    let id = sbatch(&args, Some("1500"));
    let (ckpt, saved_at) = wait_checkpoint(&out, &id, &log);
    // The batch shell logged when it got the signal (date +%s.%N).
    let text = std::fs::read_to_string(&log).unwrap();
    let signalled_at: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("train.sbatch: SIGTERM at "))
        .and_then(|rest| rest.split_whitespace().next()?.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("no 'train.sbatch: SIGTERM at' line in the log:\n{text}"));
    // The job logs its start; the time-limit signal is due 5 s after it.
    let _started: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("train.sbatch: started at "))
        .and_then(|rest| rest.split_whitespace().next()?.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("no 'train.sbatch: started at' line:\n{text}"));
    // The requeued attempt must not meet the 1-minute limit again while it finishes.
    release_requeued(&id, &log, &["TimeLimit=10"]);
    wait_completed(&id, &log);
    report_stop("time limit (--signal=B:TERM@55)", &log, &ckpt, signalled_at, saved_at);
    assert_trap(&log, true);
    assert_eq!(model_hash(&out), reference.model_hash(), "requeued job's model differs");
    assert_resumed_from(&out, checkpoint_step(&ckpt), 32);
}

/// A 2-task job stopped mid-epoch and requeued: every rank must resume its own share of the
/// epoch, so the model equals the uninterrupted 2-task job's.
#[test]
fn a_two_task_job_requeued_mid_epoch_ends_equal() {
    let reference = &references()[1];
    let out = fixture().dir.join("requeue-2");
    let (id, log) = submit_train("requeue-2", 2, &out, true);
    // Mid-way through the first 8-step epoch (each rank that pauses prints the line).
    wait_lines(&log, "bertfit-test: step pause", 4, &id);
    let signalled_at = unix_now();
    slurm("scontrol", &["requeue", &id]);
    let (ckpt, saved_at) = wait_checkpoint(&out, &id, &log);
    release_requeued(&id, &log, &[]);
    wait_completed(&id, &log);
    report_stop("scontrol requeue, 2 tasks", &log, &ckpt, signalled_at, saved_at);
    assert_trap(&log, false);
    assert!(checkpoint_step(&ckpt) < 8, "not mid-epoch: {}", ckpt.display());
    assert_eq!(model_hash(&out), reference.model_hash(), "requeued 2-task job's model differs");
    assert_resumed_from(&out, checkpoint_step(&ckpt), 16);
}

/// A sweep array task requeued mid-run resumes its own folder (and keeps its first log): its grid
/// line overrides a shared flag, and it ends with the model of the uninterrupted 1-task job.
#[test]
fn a_requeued_sweep_task_resumes_its_own_folder() {
    let reference = &references()[0];
    let f = fixture();
    let sweep = f.dir.join("sweep");
    let _ = std::fs::remove_dir_all(&sweep);
    std::fs::create_dir_all(&sweep).unwrap();
    let grid = f.dir.join("grid.txt");
    // Line 1 restores the references' seed over the shared one: the same run as reference-1.
    std::fs::write(&grid, "--seed 8\n--seed 7\n").unwrap();
    let mut shared = train_flags(Path::new("unused"));
    let at = shared.iter().position(|a| a == "--output-dir").unwrap();
    shared.drain(at..at + 2);
    let seed = shared.iter().position(|a| a == "--seed").unwrap();
    shared[seed + 1] = "99".into();
    shared.extend(["--device".into(), "cpu".into()]);
    let log = f.dir.join("sweep-%A_%a.out");
    let mut args: Vec<String> =
        ["--parsable", "--array=0-1", "--job-name=sweep", "--gpus=0", "--cpus-per-task=1", "--time=10"]
            .map(String::from)
            .to_vec();
    args.push(format!("--output={}", log.display()));
    args.push("scripts/slurm/sweep.sbatch".into());
    args.push(grid.to_str().unwrap().into());
    args.push(sweep.to_str().unwrap().into());
    args.extend(shared);
    let array = sbatch(&args, Some(STEP_PAUSE_MS));
    let task = format!("{array}_1");
    let task_log = sweep.join("task-1.log");
    let task_out = sweep.join("task-1");
    wait_lines(&task_log, "bertfit-test: step pause", 5, &task);
    slurm("scontrol", &["requeue", &task]);
    let (ckpt, _) = wait_checkpoint(&task_out, &task, &task_log);
    release_requeued(&task, &task_log, &[]);
    wait_completed(&task, &task_log);
    wait_completed(&format!("{array}_0"), &sweep.join("task-0.log"));
    let text = std::fs::read_to_string(&task_log).unwrap();
    assert_eq!(text.matches("=== sweep task 1").count(), 2, "one log for both attempts:\n{text}");
    assert!(text.contains("--seed 7") && !text.contains("--seed 99"), "the line's seed wins:\n{text}");
    assert_eq!(model_hash(&task_out), reference.model_hash(), "requeued sweep task's model differs");
    assert_eq!(std::fs::read_to_string(sweep.join("task-1.status")).unwrap().trim(), "0");
    assert_resumed_from(&task_out, checkpoint_step(&ckpt), 32);
    // The last task to finish wrote the summary with both tasks.
    let summary = std::fs::read_to_string(sweep.join("summary.tsv")).unwrap();
    assert_eq!(summary.lines().count(), 3, "{summary}");
}

/// Two 2-task jobs of bertfit started straight under srun (no MASTER_PORT: the port comes from
/// each job's id) run on the node at the same time and both finish.
#[test]
fn two_two_task_jobs_share_the_node() {
    let f = fixture();
    let submit = |name: &str| {
        let out = f.dir.join(name);
        let log = f.dir.join(format!("{name}.out"));
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_dir_all(&out);
        let mut train = vec![common::bin().display().to_string(), "train".into()];
        train.extend(train_flags(&out));
        train.extend(["--device".into(), "cpu".into()]);
        let wrap = format!("srun {}", train.join(" "));
        let args: Vec<String> = vec![
            "--parsable".into(),
            format!("--job-name={name}"),
            "--nodes=1".into(),
            "--ntasks=2".into(),
            "--cpus-per-task=1".into(),
            "--time=10".into(),
            format!("--output={}", log.display()),
            format!("--wrap={wrap}"),
        ];
        // Long enough (16 steps of 0.8 s) that the two overlap even when one starts slowly.
        (sbatch(&args, Some("800")), log)
    };
    let (a, log_a) = submit("together-a");
    let (b, log_b) = submit("together-b");
    // Both are running their steps at one moment.
    wait_lines(&log_a, "bertfit-test: step pause", 2, &a);
    wait_lines(&log_b, "bertfit-test: step pause", 2, &b);
    let (ia, ib) = (job_info(&a), job_info(&b));
    assert!(ia.state == "RUNNING" && ib.state == "RUNNING", "not at once: {ia:?} {ib:?}");
    wait_completed(&a, &log_a);
    wait_completed(&b, &log_b);
}

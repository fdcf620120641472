//! Data-parallel pieces: the process group across real processes (`bertfit dist-selftest` launched
//! as torchrun would), its failures, and DistributedSampler against PyTorch's own.
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bertfit::data::sampler::Shard;
use bertfit::dist::DistributedSampler;

use crate::common;

/// A port nobody listens on right now (the OS picks it; released before use).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `bertfit dist-selftest` as rank `rank` of `world`, with torchrun's variables only.
fn rank_cmd(rank: usize, world: usize, port: u16, extra: &[&str]) -> Command {
    let mut cmd = common::bertfit();
    cmd.arg("dist-selftest").args(extra);
    for k in ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_NODELIST", "SLURM_NODELIST"] {
        cmd.env_remove(k);
    }
    cmd.env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string());
    cmd
}

struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
}

fn finish(children: Vec<Child>) -> Vec<Finished> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            Finished {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .collect()
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn two_ranks_all_reduce_broadcast_and_barrier() {
    let port = free_port();
    let ranks: Vec<Child> = (0..2).map(|r| spawn(rank_cmd(r, 2, port, &["--ddp-timeout", "60"]))).collect();
    for (r, f) in finish(ranks).iter().enumerate() {
        assert_eq!(f.code, 0, "rank {r} failed:\n{}\n{}", f.stdout, f.stderr);
        // (1 + 2) * [1, 2, 3]; rank 0's 7s broadcast; max of ranks 0 and 1.
        assert!(
            f.stdout.contains("all-reduce sum [3.0, 6.0, 9.0] broadcast [7.0, 7.0, 7.0, 7.0, 7.0] max 1: ok"),
            "rank {r}:\n{}",
            f.stdout
        );
    }
}

#[test]
fn three_ranks_agree() {
    let port = free_port();
    let ranks: Vec<Child> = (0..3).map(|r| spawn(rank_cmd(r, 3, port, &["--ddp-timeout", "60"]))).collect();
    for (r, f) in finish(ranks).iter().enumerate() {
        assert_eq!(f.code, 0, "rank {r} failed:\n{}\n{}", f.stdout, f.stderr);
        assert!(f.stdout.contains("all-reduce sum [6.0, 12.0, 18.0]"), "rank {r}:\n{}", f.stdout);
    }
}

#[test]
fn an_unreachable_master_is_named() {
    let port = free_port();
    let start = Instant::now();
    let f = finish(vec![spawn(rank_cmd(1, 2, port, &["--ddp-timeout", "3"]))]).remove(0);
    assert_ne!(f.code, 0);
    assert!(
        f.stderr.contains(&format!("rank 1 cannot reach the master (rank 0) at 127.0.0.1:{port} within 3s")),
        "{}",
        f.stderr
    );
    assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());
}

/// Rank 0 waiting for a rank 1 that never comes says so (every second through the test hook,
/// every 30 s by default) and gives up within --ddp-timeout, naming it.
#[test]
fn a_master_waiting_for_a_worker_says_so_and_gives_up_in_time() {
    let port = free_port();
    let mut cmd = rank_cmd(0, 2, port, &["--ddp-timeout", "3"]);
    cmd.env("BERTFIT_TEST_WAIT_NOTICE_S", "1");
    let start = Instant::now();
    let f = finish(vec![spawn(cmd)]).remove(0);
    let took = start.elapsed();
    assert_ne!(f.code, 0);
    let notice = format!(
        "rank 0: waiting for rank 1 to join at 127.0.0.1:{port}: 2s so far, limit 3s (--ddp-timeout)"
    );
    assert!(f.stderr.contains(&notice), "{}", f.stderr);
    assert!(f.stderr.contains("rank 0: rank 1 did not join the rendezvous"), "{}", f.stderr);
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn a_port_in_use_is_named() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let f = finish(vec![spawn(rank_cmd(0, 2, port, &["--ddp-timeout", "5"]))]).remove(0);
    assert_ne!(f.code, 0);
    assert!(
        f.stderr.contains(&format!("rank 0 cannot serve the rendezvous store on 127.0.0.1:{port}")),
        "{}",
        f.stderr
    );
    assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
}

#[test]
fn mismatched_world_sizes_are_named() {
    let port = free_port();
    let ranks = vec![
        spawn(rank_cmd(0, 2, port, &["--ddp-timeout", "20"])),
        spawn(rank_cmd(1, 3, port, &["--ddp-timeout", "20"])),
    ];
    let done = finish(ranks);
    assert_ne!(done[0].code, 0);
    assert_ne!(done[1].code, 0);
    assert!(
        done[0].stderr.contains("mismatched world sizes: rank 0 has WORLD_SIZE=2 but rank 1 has 3"),
        "{}",
        done[0].stderr
    );
    assert!(
        done[1].stderr.contains("mismatched world sizes: rank 1 has WORLD_SIZE=3 but rank 0 has 2"),
        "{}",
        done[1].stderr
    );
}

/// Starts 2 ranks all-reducing in a loop, kills `victim` once both are looping, and checks that
/// the survivor exits non-zero within 60 s naming the lost rank.
fn kill_one(victim: usize) {
    let port = free_port();
    let mut ranks: Vec<Child> =
        (0..2).map(|r| spawn(rank_cmd(r, 2, port, &["--ddp-timeout", "30", "--loops", "0"]))).collect();
    let (tx, rx) = mpsc::channel();
    for (r, child) in ranks.iter_mut().enumerate() {
        let out = child.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                let _ = tx.send((r, line));
            }
        });
    }
    let mut looping = [false, false];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(looping[0] && looping[1]) {
        let (r, line) =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("ranks never looped");
        if line.contains("loop 2") {
            looping[r] = true;
        }
    }
    ranks[victim].kill().unwrap();
    let killed_at = Instant::now();
    let survivor = ranks.remove(1 - victim);
    let f = finish(vec![survivor]).remove(0);
    let took = killed_at.elapsed();
    let _ = ranks[0].wait();
    assert_ne!(f.code, 0, "the survivor exited 0:\n{}", f.stderr);
    assert!(took < Duration::from_secs(60), "the survivor took {took:?}");
    assert!(f.stderr.contains(&format!("lost rank {victim}")), "{}", f.stderr);
    assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
}

#[test]
fn a_killed_worker_is_named_by_the_master() {
    kill_one(1);
}

#[test]
fn a_killed_master_is_named_by_the_worker() {
    kill_one(0);
}

#[test]
fn distributed_sampler_matches_pytorch() {
    let mut cases = Vec::new();
    for (n, world) in [(10, 4), (103, 4), (7, 3), (2, 3), (1, 2), (0, 2), (1000, 8), (64, 2)] {
        for (seed, epoch) in [(0, 0), (42, 3)] {
            for shuffle in [false, true] {
                for drop_last in [false, true] {
                    cases.push(serde_json::json!({
                        "n": n, "world": world, "seed": seed, "epoch": epoch,
                        "shuffle": shuffle, "drop_last": drop_last,
                    }));
                }
            }
        }
    }
    let out = common::run_python(
        "parity/distributed_sampler.py",
        &[&serde_json::Value::Array(cases.clone()).to_string()],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), cases.len());
    for line in lines {
        let c: serde_json::Value = serde_json::from_str(line).unwrap();
        let world = c["world"].as_u64().unwrap() as usize;
        let n = c["n"].as_u64().unwrap() as usize;
        for rank in 0..world {
            let s = DistributedSampler {
                shard: Shard { rank, world_size: world },
                shuffle: c["shuffle"].as_bool().unwrap(),
                seed: c["seed"].as_u64().unwrap(),
                drop_last: c["drop_last"].as_bool().unwrap(),
            };
            let ours = s.epoch_indices(n, c["epoch"].as_u64().unwrap() as usize);
            let theirs: Vec<usize> =
                c["ranks"][rank].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            assert_eq!(ours, theirs, "rank {rank} of case {c}");
            assert_eq!(s.num_samples(n), theirs.len(), "num_samples of case {c}");
        }
    }
}

fn script(path: &str) -> std::path::PathBuf {
    common::repo().join("scripts").join(path)
}

#[test]
fn job_scripts_parse() {
    for s in ["launch-local.sh", "slurm/train.sbatch", "slurm/sweep.sbatch", "slurm/common.sh"] {
        let out = Command::new("bash").arg("-n").arg(script(s)).output().unwrap();
        common::check(&out, s);
    }
}

/// A dry run of train.sbatch: BERTFIT_DRY_RUN=1, BERTFIT_BIN=bertfit, the given SLURM variables
/// and no others (no GPUs unless given, no requeue count, no rendezvous variables).
fn train_dry_run(vars: &[(&str, &str)], flags: &[&str]) -> (String, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(script("slurm/train.sbatch"))
        .args(flags)
        .env("BERTFIT_DRY_RUN", "1")
        .env("BERTFIT_BIN", "bertfit");
    for (k, _) in std::env::vars() {
        if k.starts_with("SLURM_") {
            cmd.env_remove(k);
        }
    }
    for k in ["MASTER_ADDR", "MASTER_PORT", "CUDA_VISIBLE_DEVICES"] {
        cmd.env_remove(k);
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().unwrap();
    common::check(&out, "train.sbatch dry run");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn train_sbatch_dry_run_for_two_nodes_of_four_gpus() {
    let (text, _) = train_dry_run(
        &[
            ("SLURM_JOB_NODELIST", "node[07-08]"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_NTASKS_PER_NODE", "4(x2)"),
            ("SLURM_JOB_ID", "4242"),
            ("SLURM_GPUS_ON_NODE", "4"),
        ],
        &["--model", "m", "--data", "d.csv", "--output-dir", "runs/x"],
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    // The port: src/dist/env.rs's rule for job 4242, step 0 (its unit test checks the same number).
    assert_eq!(bertfit::dist::env::slurm_port(4242, 0), 26420);
    for (rank, line) in lines.iter().enumerate() {
        let (node, local) = (if rank < 4 { "node07" } else { "node08" }, rank % 4);
        let want = format!(
            "task {rank} on {node}: RANK={rank} LOCAL_RANK={local} WORLD_SIZE=8 LOCAL_WORLD_SIZE=4 \
             MASTER_ADDR=node07 MASTER_PORT=26420 bertfit train --model m --data d.csv --output-dir runs/x \
             --resume-from-checkpoint auto --device cuda:{local}"
        );
        assert_eq!(*line, want);
    }
    // Every launch resumes the same way, a requeued one included.
    let (text, _) = train_dry_run(
        &[
            ("SLURM_JOB_NODELIST", "a1,b1"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_NNODES", "2"),
            ("SLURM_JOB_ID", "7"),
            ("SLURM_RESTART_COUNT", "1"),
            ("CUDA_VISIBLE_DEVICES", "0"),
        ],
        &["--output-dir", "runs/x"],
    );
    assert!(text.contains("task 1 on b1: RANK=1 LOCAL_RANK=0 WORLD_SIZE=2"), "{text}");
    assert!(text.contains("--resume-from-checkpoint auto --device cuda:0"), "{text}");
}

/// The README's dry run (no SLURM_NTASKS) outside an allocation, a CPU allocation, and the user's
/// own --device / --resume-from-checkpoint, which the script must not repeat (bertfit refuses a
/// repeated flag).
#[test]
fn train_sbatch_dry_run_on_cpus_outside_an_allocation_and_with_the_users_flags() {
    let readme =
        [("SLURM_JOB_NODELIST", "node[07-08]"), ("SLURM_NNODES", "2"), ("SLURM_NTASKS_PER_NODE", "4")];
    let (text, notes) = train_dry_run(&readme, &["--model", "m", "--output-dir", "runs/x"]);
    assert_eq!(text.lines().count(), 8, "{text}\n{notes}");
    assert!(notes.contains("SLURM_NTASKS is not set; assuming 8"), "{notes}");
    assert!(notes.contains("SLURM_JOB_ID is not set; assuming 0"), "{notes}");
    for line in text.lines() {
        assert!(line.ends_with("--resume-from-checkpoint auto --device cpu"), "no GPUs, so the CPU: {line}");
    }
    // Nothing set at all: this host, one task.
    let (text, notes) = train_dry_run(&[], &["--output-dir", "x"]);
    assert_eq!(text.lines().count(), 1, "{text}\n{notes}");
    assert!(notes.contains("SLURM_JOB_NODELIST is not set"), "{notes}");
    // The user's flags win, in either spelling.
    let gpus = [("SLURM_NTASKS", "2"), ("SLURM_GPUS_ON_NODE", "2")];
    for flags in [
        &["--device", "cpu", "--resume-from-checkpoint", "latest"][..],
        &["--device=cpu", "--resume_from_checkpoint=latest"][..],
    ] {
        let (text, _) = train_dry_run(&gpus, flags);
        for line in text.lines() {
            assert_eq!(line.matches("--device").count(), 1, "{line}");
            assert!(!line.contains("cuda") && !line.contains("auto"), "{line}");
            assert_eq!(line.matches("resume").count(), 1, "{line}");
        }
    }
}

#[test]
fn sweep_sbatch_dry_run_and_summary() {
    let dir = common::temp_dir("dist_sweep");
    let grid = dir.join("grid.txt");
    std::fs::write(
        &grid,
        "--learning-rate 1e-5\n# a comment\n\n--learning_rate=2e-5 --seed 3 --no-shuffle\n",
    )
    .unwrap();
    let out_dir = dir.join("out");
    let run = |id: Option<&str>, extra: &[&str], shared: &[&str]| {
        let mut cmd = Command::new("bash");
        cmd.arg(script("slurm/sweep.sbatch")).args(extra).arg(&grid).arg(&out_dir).args(shared);
        cmd.env("BERTFIT_DRY_RUN", "1").env("BERTFIT_BIN", "bertfit");
        match id {
            Some(id) => cmd.env("SLURM_ARRAY_TASK_ID", id),
            None => cmd.env_remove("SLURM_ARRAY_TASK_ID"),
        };
        let out = cmd.output().unwrap();
        common::check(&out, "sweep.sbatch");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let o = out_dir.display();
    assert_eq!(
        run(Some("1"), &[], &["--model", "m"]),
        format!(
            "task 1: bertfit train --model m --learning_rate=2e-5 --seed 3 --no-shuffle --output-dir {o}/task-1 \
             --resume-from-checkpoint auto\n"
        )
    );
    assert_eq!(run(None, &[], &["--model", "m"]).lines().count(), 2);
    // A line's flag replaces the shared one with its value, whatever the spelling; a shared switch
    // the line repeats goes too; the rest stay in order.
    let shared = ["--model", "m", "--learning-rate", "5e-5", "--no-shuffle", "--seed=1", "--data", "d.csv"];
    assert_eq!(
        run(Some("1"), &[], &shared),
        format!(
            "task 1: bertfit train --model m --data d.csv --learning_rate=2e-5 --seed 3 --no-shuffle \
             --output-dir {o}/task-1 --resume-from-checkpoint auto\n"
        )
    );
    assert_eq!(
        run(Some("0"), &[], &shared),
        format!(
            "task 0: bertfit train --model m --no-shuffle --seed=1 --data d.csv --learning-rate 1e-5 \
             --output-dir {o}/task-0 --resume-from-checkpoint auto\n"
        )
    );
    // The summary from status files and metrics.
    std::fs::create_dir_all(out_dir.join("task-0")).unwrap();
    std::fs::write(out_dir.join("task-0.status"), "0\n").unwrap();
    std::fs::write(out_dir.join("task-0/metrics.jsonl"), "{\"a\":1}\n{\"eval_accuracy\":0.9}\n").unwrap();
    std::fs::write(out_dir.join("task-1.status"), "1\n").unwrap();
    run(None, &["--summary"], &["--model", "m"]);
    let table = std::fs::read_to_string(out_dir.join("summary.tsv")).unwrap();
    assert_eq!(
        table,
        "task\tstatus\tflags\tlast_metrics\n0\t0\t--learning-rate 1e-5\t{\"eval_accuracy\":0.9}\n\
         1\t1\t--learning_rate=2e-5 --seed 3 --no-shuffle\t\n"
    );
}

/// Without BERTFIT_BIN the scripts take the binary the README's set-up built
/// ($CARGO_TARGET_DIR/release/bertfit), and without one they say which variable to set (it was
/// "a rank exited with status 127").
#[test]
fn launch_local_finds_the_built_binary_or_names_bertfit_bin() {
    let dir = common::temp_dir("dist_find_binary");
    let release = dir.join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    let fake = release.join("bertfit");
    std::fs::write(&fake, "#!/bin/sh\necho \"found rank $RANK: $*\"\n").unwrap();
    common::check(&Command::new("chmod").arg("+x").arg(&fake).output().unwrap(), "chmod");
    let launch = |target: &Path| {
        Command::new("bash")
            .arg(script("launch-local.sh"))
            .args(["2", "--", "dist-selftest"])
            .env_remove("BERTFIT_BIN")
            .env("CARGO_TARGET_DIR", target)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    };
    let out = launch(&dir.join("target"));
    common::check(&out, "launch-local.sh with CARGO_TARGET_DIR");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("found rank 0: dist-selftest") && text.contains("found rank 1"), "{text}");
    let out = launch(&dir.join("nothing-here"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("BERTFIT_BIN") && !err.contains("status 127"), "{err}");
}

#[test]
fn launch_local_runs_every_rank_and_fails_when_one_fails() {
    let launch = |args: &[&str]| {
        Command::new("bash")
            .arg(script("launch-local.sh"))
            .args(args)
            .env("BERTFIT_BIN", common::bin())
            .env_remove("MASTER_PORT")
            .env("BERTFIT_KILL_GRACE", "5")
            .output()
            .unwrap()
    };
    let out = launch(&["2", "--", "dist-selftest", "--ddp-timeout", "60"]);
    common::check(&out, "launch-local.sh 2 -- dist-selftest");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(": ok").count(), 2, "{text}");
    // No NCCL here (or no GPU): every rank fails, and so does the launcher.
    let out = launch(&["2", "--", "dist-selftest", "--backend", "nccl", "--ddp-timeout", "20"]);
    assert!(!out.status.success());
}

#[test]
fn ddp_gradients_equal_one_process_on_the_whole_batch() {
    let port = free_port();
    let ranks: Vec<Child> =
        (0..2).map(|r| spawn(rank_cmd(r, 2, port, &["--ddp-timeout", "60", "--ddp-check"]))).collect();
    for (r, f) in finish(ranks).iter().enumerate() {
        assert_eq!(f.code, 0, "rank {r} failed:\n{}\n{}", f.stdout, f.stderr);
        let line =
            f.stdout.lines().find(|l| l.contains("ddp gradients")).unwrap_or_else(|| panic!("{}", f.stdout));
        let diff: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(diff <= 1e-6, "rank {r}: {line}");
    }
}

#[test]
fn launch_local_forwards_sigterm_to_every_rank() {
    let mut launcher = Command::new("bash")
        .arg(script("launch-local.sh"))
        .args(["2", "--", "dist-selftest", "--ddp-timeout", "60", "--loops", "0"])
        .env("BERTFIT_BIN", common::bin())
        .env_remove("MASTER_PORT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = launcher.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines().map_while(|l| l.ok());
    let mut looping = [false, false];
    while !(looping[0] && looping[1]) {
        let line = lines.next().expect("the ranks stopped before looping");
        for (r, seen) in looping.iter_mut().enumerate() {
            *seen |= line.starts_with(&format!("rank {r}: loop 1"));
        }
    }
    let pid = launcher.id().to_string();
    let sent = Instant::now();
    common::check(&Command::new("kill").args(["-TERM", &pid]).output().unwrap(), "kill -TERM");
    let status = launcher.wait().unwrap();
    // The ranks do not handle SIGTERM (dist-selftest has no handler): they die of it, 128 + 15.
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(sent.elapsed() < Duration::from_secs(20), "took {:?}", sent.elapsed());
}

/// SIGTERM to launch-local.sh during training: each rank gets exactly one stop (none quits at once),
/// the run saves a checkpoint, and the launcher exits 130 without calling the ranks' clean exit a
/// failure (it used to signal again, and rank 0 quit without its save).
#[test]
fn launch_local_sigterm_stops_every_rank_once_and_exits_130() {
    let dir = common::temp_dir("dist_launch_sigterm");
    let model = common::tiny_model(&dir, 2, None, &[]);
    let data = dir.join("data.csv");
    crate::common::fixtures::subset("movies", &data, 128, 16);
    let out_dir = dir.join("out");
    let flags = ddp_train_args(&model, &data, &out_dir, "8", &[]);
    let mut launcher = Command::new("bash")
        .arg(script("launch-local.sh"))
        .arg("2")
        .arg("--")
        .args(&flags[1..])
        .env("BERTFIT_BIN", common::bin())
        .env("BERTFIT_TEST_STEP_PAUSE_MS", "300")
        .env_remove("MASTER_PORT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = launcher.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // A few steps in (every rank pauses after each step), mid-epoch.
    let mut pauses = 0;
    while pauses < 4 {
        let line = rx.recv_timeout(Duration::from_secs(120)).expect("the ranks did not start training");
        pauses += usize::from(line.contains("bertfit-test: step pause"));
    }
    let pid = launcher.id().to_string();
    common::check(&Command::new("kill").args(["-TERM", &pid]).output().unwrap(), "kill -TERM");
    let status = launcher.wait().unwrap();
    let text = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{text}");
    assert_eq!(text.matches("stopping after the current step").count(), 2, "one stop per rank:\n{text}");
    assert!(!text.contains("second stop signal"), "{text}");
    assert!(!text.contains("a rank exited with status"), "{text}");
    let ckpt = common::latest_checkpoint(&out_dir).unwrap_or_else(|| panic!("no checkpoint:\n{text}"));
    assert!(ckpt.join("training_state.safetensors").exists(), "{}", ckpt.display());
}

#[test]
fn a_worker_waits_quietly_for_a_late_master() {
    let port = free_port();
    let worker = spawn(rank_cmd(1, 2, port, &["--ddp-timeout", "60"]));
    std::thread::sleep(Duration::from_secs(4));
    let master = spawn(rank_cmd(0, 2, port, &["--ddp-timeout", "60"]));
    let done = finish(vec![master, worker]);
    for f in &done {
        assert_eq!(f.code, 0, "{}\n{}", f.stdout, f.stderr);
    }
    // TCPStore's retries log a stack trace each; they are muted while connecting.
    assert!(!done[1].stderr.contains("Exception raised from"), "{}", done[1].stderr);
}

#[test]
fn nccl_without_a_gpu_or_without_nccl_says_so() {
    if bertfit::torch_ext::c10d::has_nccl() {
        // A build with the CUDA headers (scripts/requirements.lock pins them): on a machine
        // without a GPU, ProcessGroupNCCL's own refusal comes back as an error naming the rank.
        if tch::Cuda::is_available() {
            return;
        }
        let port = free_port();
        let flags = ["--backend", "nccl", "--ddp-timeout", "10"];
        let ranks = finish(vec![spawn(rank_cmd(0, 2, port, &flags)), spawn(rank_cmd(1, 2, port, &flags))]);
        for (rank, f) in ranks.iter().enumerate() {
            assert_ne!(f.code, 0);
            assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
            assert!(
                f.stderr.contains(&format!("rank {rank}: cannot start the Nccl backend"))
                    && f.stderr.contains("ProcessGroupNCCL is only supported with GPUs"),
                "{}",
                f.stderr
            );
        }
        return;
    }
    let f = finish(vec![spawn(rank_cmd(0, 2, free_port(), &["--backend", "nccl", "--ddp-timeout", "5"]))])
        .remove(0);
    assert_ne!(f.code, 0);
    assert!(
        f.stderr.contains("error: this build has no NCCL; rebuild bertfit with the CUDA headers"),
        "{}",
        f.stderr
    );
}

/// Data-parallel training: 2 processes with batch B each (Gloo, 127.0.0.1) make the run of 1
/// process with batch 2B over the same examples: DistributedSampler without shuffling gives rank r
/// the examples r, r+2, ...; the 2B batch's mean loss is the mean of the ranks' losses, its
/// gradient the average of theirs. Dropout off, so only the arithmetic differs.
#[test]
fn two_processes_train_as_one_process_with_the_combined_batch() {
    let dir = common::temp_dir("dist_train");
    let model = common::tiny_model(&dir, 2, Some(0.0), &[]);
    let data = dir.join("data.csv");
    crate::common::fixtures::subset("movies", &data, 256, 32);
    let flags = |out: &Path, batch: &str| ddp_train_args(&model, &data, out, batch, &[]);
    let one = dir.join("one");
    let out = Command::new(env!("CARGO_BIN_EXE_bertfit")).args(flags(&one, "16")).output().unwrap();
    common::check(&out, "one process, batch 16");
    let two = dir.join("two");
    let out = Command::new("bash")
        .arg(script("launch-local.sh"))
        .arg("2")
        .arg("--")
        .args(&flags(&two, "8")[1..])
        .env("BERTFIT_BIN", env!("CARGO_BIN_EXE_bertfit"))
        .env_remove("MASTER_PORT")
        .output()
        .unwrap();
    common::check(&out, "launch-local.sh 2, batch 8 each");
    let (a, b) = (one.join("metrics.jsonl"), two.join("metrics.jsonl"));
    let (ra, rb) =
        (crate::common::fixtures::records(&a, "step"), crate::common::fixtures::records(&b, "step"));
    assert_eq!(ra.len(), 32);
    assert_eq!(ra.len(), rb.len());
    let mut worst: f64 = 0.0;
    for (x, y) in ra.iter().zip(&rb) {
        let (lx, ly) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
        worst = worst.max((lx - ly).abs() / lx.abs());
    }
    let weights = crate::common::fixtures::compare_weights(
        &one.join("model.safetensors"),
        &two.join("model.safetensors"),
    );
    assert!(worst <= 1e-5, "losses differ by {worst}");
    assert!(weights <= 1e-5, "weights differ by {weights}");
}

/// The `bertfit train` arguments of the data-parallel runs: the tiny model on `data`, output to
/// `out`, 2 epochs in file order (DistributedSampler then gives rank r the rows r, r+2, ..., which
/// one process with the combined batch takes too), AdamW at 1e-3, one thread per process; `extra`
/// appended.
fn ddp_train_args(model: &Path, data: &Path, out: &Path, batch: &str, extra: &[&str]) -> Vec<String> {
    common::TrainRun::new(model, data, out)
        .flag("--batch-size", batch)
        .unset("--seed")
        .flag("--padding", "longest")
        .switch("--no-shuffle")
        .flag("--learning-rate", "1e-3")
        .flag("--optim", "adamw")
        .flag("--ddp-timeout", "120")
        .append(extra)
        .args()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn as_str(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Each step's rows per rank, from a record's `rank_rows`.
fn rank_rows(record: &serde_json::Value) -> Vec<Vec<u64>> {
    let ranks = record["rank_rows"].as_array().unwrap_or_else(|| panic!("no rank_rows in {record}"));
    ranks.iter().map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()).collect()
}

/// bertfit with 2 processes makes PyTorch DDP's run with 2 processes: `torchrun --nproc_per_node 2`
/// of scripts/reference_train.py (DistributedDataParallel over Gloo, DistributedSampler) against
/// `launch-local.sh 2` of bertfit with --reproduce-pytorch, dropout and shuffling on, the same seed,
/// 2 epochs, 131 training rows (DistributedSampler pads each rank to 66), accumulation over 2
/// micro-batches with clipping: the same rows on every rank at every step, the same step losses (the
/// mean over ranks, as both log it) and the same validation figures (every rank evaluates the whole
/// validation set in both). The negative control: the reference with one extra draw from the default
/// generator before training keeps its shards (DistributedSampler has a generator of its own) but
/// draws other dropout masks, and its losses part from bertfit's.
#[test]
fn two_processes_are_pytorch_ddps_run_with_dropout_and_shuffling() {
    let dir = common::temp_dir("dist_pytorch_ddp");
    let model = common::tiny_model(&dir, 2, Some(0.1), &[]);
    let data = dir.join("data.csv");
    crate::common::fixtures::subset("movies", &data, 131, 48);
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let flags = [
        "--model",
        m,
        "--data",
        d,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--gradient-accumulation-steps",
        "2",
        "--max-grad-norm",
        "1.0",
        "--optim",
        "adamw",
        "--weight-decay",
        "0.01",
        "--lr-scheduler-type",
        "linear",
        "--max-length",
        "48",
        "--padding",
        "longest",
        "--seed",
        "11",
        "--learning-rate",
        "5e-3",
        "--threads",
        "1",
    ];
    let reference = |name: &str, extra: &[&str]| {
        let metrics = dir.join(name);
        let mut args = flags.to_vec();
        args.extend(["--metrics-out", metrics.to_str().unwrap()]);
        args.extend(extra);
        common::run_torchrun(2, "reference_train.py", &args);
        crate::common::fixtures::records(&metrics, "step")
            .into_iter()
            .chain(crate::common::fixtures::records(&metrics, "epoch"))
            .collect::<Vec<_>>()
    };
    let theirs = reference("reference.jsonl", &[]);
    let out = dir.join("bertfit");
    let mut ours = strings(&["train", "--output-dir", out.to_str().unwrap(), "--device", "cpu"]);
    ours.extend(strings(&flags));
    ours.extend(strings(&["--reproduce-pytorch", "--ddp_backend", "gloo", "--ddp-timeout", "120"]));
    common::check(&common::launch_local(2, &as_str(&ours)), "launch-local.sh 2 -- train --reproduce-pytorch");
    assert_eq!(common::read_json(&out.join("training_args.json"))["ddp_backend"], "gloo");

    let metrics = out.join("metrics.jsonl");
    let (a, b) = (
        theirs.iter().filter(|r| r["kind"] == "step").collect::<Vec<_>>(),
        crate::common::fixtures::records(&metrics, "step"),
    );
    // 66 rows per rank in batches of 4: 17 micro-batches, 9 windows per epoch.
    assert_eq!(a.len(), 18, "PyTorch's steps");
    assert_eq!(a.len(), b.len(), "steps");
    let mut worst: f64 = 0.0;
    for (x, y) in a.iter().zip(&b) {
        let (rx, ry) = (rank_rows(x), rank_rows(y));
        assert_eq!(rx.len(), 2);
        assert_eq!(rx, ry, "step {}: rows per rank", x["step"]);
        assert_eq!(x["rows"], y["rows"], "step {}: rank 0's rows", x["step"]);
        assert_ne!(rx[0], rx[1], "step {}: both ranks took the same rows", x["step"]);
        let (lx, ly) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
        worst = worst.max((lx - ly).abs() / lx.abs());
    }
    // Shuffled: the epochs' first steps differ.
    assert_ne!(rank_rows(a[0]), rank_rows(a[9]));
    let (ea, eb) = (
        theirs.iter().filter(|r| r["kind"] == "epoch").collect::<Vec<_>>(),
        crate::common::fixtures::records(&metrics, "epoch"),
    );
    assert_eq!(ea.len(), 2);
    for (x, y) in ea.iter().zip(&eb) {
        assert_eq!(x["val_accuracy"], y["val_accuracy"], "epoch {} validation accuracy", x["epoch"]);
        let (vx, vy) = (x["val_loss"].as_f64().unwrap(), y["val_loss"].as_f64().unwrap());
        assert!((vx - vy).abs() <= 1e-4 * vx.abs(), "epoch {} validation loss {vx} vs {vy}", x["epoch"]);
        assert!(y["allreduce_seconds"].as_f64().unwrap() > 0.0, "{y}");
    }
    assert!(worst <= 1e-4, "losses differ by {worst} relative");

    let shifted = reference("reference_extra_draw.jsonl", &["--extra-random-draw"]);
    let shifted: Vec<_> = shifted.iter().filter(|r| r["kind"] == "step").collect();
    let mut apart: f64 = 0.0;
    for (x, y) in shifted.iter().zip(&b) {
        assert_eq!(rank_rows(x), rank_rows(y), "the extra draw moved the shards");
        let (lx, ly) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
        apart = apart.max((lx - ly).abs() / lx.abs());
    }
    assert!(apart > 1e-3, "dropout masks do not show in the losses ({apart})");
}

/// `--ddp-backend nccl` (HF's ddp_backend) on the CPU is refused before anything is read.
#[test]
fn nccl_backend_on_the_cpu_is_refused() {
    let dir = common::temp_dir("dist_nccl_cpu");
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    for flag in ["--ddp-backend", "--ddp_backend"] {
        common::assert_refused(
            &[
                "train",
                "--model",
                "absent",
                "--data",
                "absent.csv",
                "--output-dir",
                o,
                "--device",
                "cpu",
                flag,
                "nccl",
            ],
            &["--ddp-backend: nccl runs collectives on CUDA devices, and this run's device is the CPU"],
        );
    }
    common::assert_refused(
        &["train", "--model", "absent", "--data", "absent.csv", "--output-dir", o, "--ddp-backend", "mpi"],
        &["invalid value 'mpi'"],
    );
}

/// Resuming with another world size where the data position allows it: a checkpoint written at the
/// end of epoch 1 by 2 ranks x batch 4 continues on 1 process x batch 8 (the same global batch).
/// Without shuffling, DistributedSampler gives rank r rows r, r+2, ..., so each 2-rank step takes
/// the 8 rows the 1-process step takes: epoch 2's losses equal the uninterrupted 2-rank run's (dropout
/// off; with shuffling the resumed epoch would be a valid continuation in RandomSampler's order, not
/// this one). A checkpoint written mid-epoch is refused with another world size, naming both.
#[test]
fn resume_across_world_sizes_at_an_epoch_boundary() {
    let dir = common::temp_dir("dist_resume_world");
    let model = common::tiny_model(&dir, 2, Some(0.0), &[]);
    let data = dir.join("data.csv");
    crate::common::fixtures::subset("movies", &data, 256, 32);
    let flags = |out: &Path, batch: &str| {
        ddp_train_args(&model, &data, out, batch, &["--lr-scheduler-type", "linear"])
    };
    let two = dir.join("two");
    let mut args = flags(&two, "4");
    args.extend(strings(&["--save-strategy", "epoch"]));
    common::check(&common::launch_local(2, &as_str(&args)), "2 x batch 4, saving every epoch");
    let boundary = two.join("checkpoint-32");
    assert!(boundary.join("trainer_state.json").is_file(), "no checkpoint at the end of epoch 1");

    let one = dir.join("one");
    let mut args = flags(&one, "8");
    args.extend(strings(&["--resume-from-checkpoint", boundary.to_str().unwrap()]));
    let out = common::bertfit().args(&args).output().unwrap();
    common::check(&out, "1 x batch 8 resuming the 2-rank checkpoint");
    let uninterrupted: Vec<_> = crate::common::fixtures::records(&two.join("metrics.jsonl"), "step")
        .into_iter()
        .filter(|r| r["epoch"] == 2)
        .collect();
    let resumed: Vec<_> = crate::common::fixtures::records(&one.join("metrics.jsonl"), "step")
        .into_iter()
        .filter(|r| r["epoch"] == 2)
        .collect();
    assert_eq!(uninterrupted.len(), 32);
    assert_eq!(resumed.len(), 32);
    let mut worst: f64 = 0.0;
    for (x, y) in uninterrupted.iter().zip(&resumed) {
        assert_eq!(x["step"], y["step"]);
        let mut rows: Vec<u64> = rank_rows(x).concat();
        rows.sort();
        let mut theirs: Vec<u64> =
            y["rows"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        theirs.sort();
        assert_eq!(rows, theirs, "step {}: the 2 ranks' rows vs the 1 process's", x["step"]);
        let (lx, ly) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
        worst = worst.max((lx - ly).abs() / lx.abs());
    }
    assert!(worst <= 1e-5, "losses differ by {worst}");

    // Mid-epoch: a 1-process checkpoint after 3 of 32 steps, resumed by 2 ranks.
    let mid = dir.join("mid");
    let mut args = flags(&mid, "8");
    args.extend(strings(&["--save-strategy", "steps", "--save-steps", "3", "--max-steps", "3"]));
    common::check(&common::bertfit().args(&args).output().unwrap(), "1 process, a checkpoint at step 3");
    let mut args = flags(&dir.join("mid_resumed"), "4");
    args.extend(strings(&["--resume-from-checkpoint", mid.join("checkpoint-3").to_str().unwrap()]));
    let out = common::launch_local(2, &as_str(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a mid-epoch world-size change was accepted:\n{err}");
    assert!(
        err.contains("was written mid-epoch (epoch 1, after 3 batches per rank) by a run of world size 1, and this run has world size 2"),
        "{err}"
    );
    assert!(err.contains("--save-strategy epoch"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A world of one (torchrun --nproc_per_node 1) runs as a plain process unless a backend is named;
/// with `--ddp-backend gloo` it joins a real process group of one (what gpu-check.sh times with
/// NCCL), averages gradients through it, and computes the plain run's losses exactly.
#[test]
fn a_world_of_one_joins_a_group_only_when_a_backend_is_named() {
    let dir = common::temp_dir("dist_world_of_one");
    let model = common::tiny_model(&dir, 2, Some(0.0), &[]);
    let data = dir.join("data.csv");
    crate::common::fixtures::subset("movies", &data, 48, 16);
    let run = |name: &str, extra: &[&str], launched: bool| -> Vec<serde_json::Value> {
        let out = dir.join(name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bertfit"));
        cmd.args(
            common::TrainRun::new(&model, &data, &out)
                .flag("--epochs", "1")
                .flag("--batch-size", "8")
                .flag("--max-length", "32")
                .flag("--learning-rate", "1e-3")
                .unset("--seed")
                .flag("--save-strategy", "no")
                // In order: a group shards with DistributedSampler, whose shuffle is not RandomSampler's.
                .switch("--no-shuffle")
                .append(extra)
                .args(),
        );
        if launched {
            cmd.env("RANK", "0").env("WORLD_SIZE", "1").env("MASTER_ADDR", "127.0.0.1");
            cmd.env("MASTER_PORT", free_port().to_string());
        }
        common::check(&cmd.output().unwrap(), name);
        let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let plain = run("plain", &[], false);
    let unnamed = run("world-of-one", &[], true);
    let joined = run("world-of-one-gloo", &["--ddp-backend", "gloo"], true);
    let epoch =
        |records: &[serde_json::Value]| records.iter().find(|r| r["kind"] == "epoch").unwrap().clone();
    let losses = |records: &[serde_json::Value]| -> Vec<f64> {
        records.iter().filter(|r| r["kind"] == "step").map(|r| r["loss"].as_f64().unwrap()).collect()
    };
    assert!(epoch(&plain)["allreduce_seconds"].is_null());
    assert!(epoch(&unnamed)["allreduce_seconds"].is_null(), "WORLD_SIZE=1 alone joined a group");
    let seconds = epoch(&joined)["allreduce_seconds"].as_f64();
    assert!(seconds.is_some_and(|s| s >= 0.0), "--ddp-backend gloo in a world of one joined no group");
    assert_eq!(losses(&plain).len(), 6);
    assert_eq!(losses(&plain), losses(&unnamed));
    assert_eq!(losses(&plain), losses(&joined), "averaging over a group of one changed the losses");
}

/// A mistyped WORLD_SIZE (2^40, 2^64 - 1) is refused at once naming the variable and the limit;
/// it used to abort on allocation (2^40) or panic on capacity overflow (2^64 - 1).
#[test]
fn a_huge_world_size_is_refused_at_once() {
    for world in ["1099511627776", "18446744073709551615"] {
        let started = Instant::now();
        let out =
            rank_cmd(0, 2, free_port(), &["--ddp-timeout", "5"]).env("WORLD_SIZE", world).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "WORLD_SIZE={world}: {err}");
        assert!(
            err.contains(&format!("WORLD_SIZE: {world} is more than bertfit's limit of 65536 processes")),
            "{err}"
        );
        assert!(!err.contains("panicked") && started.elapsed() < Duration::from_secs(10), "{err}");
    }
}

//! Two hosts on one machine: network namespaces joined by a veth pair (scripts/netns.sh), each rank
//! in its own with its own hostname, the rendezvous at host a's address 198.18.0.1. What a cluster
//! does to a run and the loopback tests cannot show: a hostname that resolves to loopback (Debian's
//! 127.0.1.1 entry), a link cut mid-run, a master that never comes.
//!
//! Needs root (`ip netns`). `BERTFIT_TEST_BIN` (tests/common) runs the ranks with another bertfit binary (to
//! check that these tests fail against an older build); by default, this build's.
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::common;

const MASTER_ADDR: &str = "198.18.0.1";
const MASTER_PORT: &str = "29500";

fn bin() -> PathBuf {
    common::bin()
}

fn netns_sh() -> PathBuf {
    common::repo().join("scripts/netns.sh")
}

/// Two hosts made by `netns.sh up`, removed by `netns.sh down` when dropped (a failed test too).
struct Hosts {
    name: String,
}

impl Hosts {
    /// `mode`: "loopback" (each hostname maps to 127.0.1.1) or "veth" (to its own address).
    fn up(mode: &str) -> Hosts {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!("bf{}x{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst));
        let hosts = Hosts { name };
        let out = Command::new("bash").arg(netns_sh()).args(["up", &hosts.name, mode]).output().unwrap();
        common::check(&out, "netns.sh up");
        hosts
    }

    /// Rank `rank` of 2 on host a (rank 0) or b (rank 1): `bertfit args`, torchrun's variables only.
    fn rank(&self, rank: usize, args: &[impl AsRef<std::ffi::OsStr>]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(netns_sh())
            .args(["exec", &self.name, if rank == 0 { "a" } else { "b" }])
            .arg(bin())
            .args(args);
        for k in ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_NODELIST", "SLURM_NODELIST"] {
            cmd.env_remove(k);
        }
        cmd.env_remove("GLOO_SOCKET_IFNAME")
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", "0")
            .env("WORLD_SIZE", "2")
            .env("MASTER_ADDR", MASTER_ADDR)
            .env("MASTER_PORT", MASTER_PORT);
        cmd
    }

    /// The veth end in host `h` ("a" or "b").
    fn veth(&self, h: &str) -> String {
        format!("{}v{h}", self.name)
    }

    /// A partition: the link down on both sides.
    fn cut(&self) {
        let out = Command::new("bash").arg(netns_sh()).args(["cut", &self.name]).output().unwrap();
        common::check(&out, "netns.sh cut");
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(netns_sh()).args(["down", &self.name]).status();
    }
}

/// A running rank: its stdout and stderr lines as they come (and all of them so far), killed
/// when dropped if still running.
struct Rank {
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl Rank {
    fn spawn(mut cmd: Command) -> Rank {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let streams: [Box<dyn Read + Send>; 2] =
            [Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
        for stream in streams {
            let (tx, log) = (tx.clone(), log.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
                    log.lock().unwrap().push_str(&format!("{line}\n"));
                    let _ = tx.send(line);
                }
            });
        }
        Rank { child, lines, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits up to `limit` for the `n`th line containing `needle`; whether it came.
    fn wait_for_line(&self, needle: &str, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut seen = 0;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            seen += usize::from(line.contains(needle));
            if seen >= n {
                return true;
            }
        }
        false
    }

    /// The exit code (-1 for a signal) once the rank ends within `limit`, else `None`.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn terminate(&self) {
        // SAFETY: signals our own child (netns.sh execs down to bertfit: the same process).
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {}", self.child.id());
    }
}

impl Drop for Rank {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Both ranks end within `limit` of `since`; returns (exit code, seconds after `since`) per rank.
fn finish(ranks: &mut [Rank], since: Instant, limit: Duration) -> Vec<(i32, f64)> {
    let mut out = Vec::new();
    for (r, rank) in ranks.iter_mut().enumerate() {
        let left = limit.saturating_sub(since.elapsed());
        let Some(code) = rank.wait_exit(left) else {
            panic!("rank {r} still running {:?} after the start of the wait:\n{}", limit, rank.log());
        };
        out.push((code, since.elapsed().as_secs_f64()));
    }
    out
}

/// The tiny model and a small data set, made once for the module's training runs.
fn tiny() -> &'static (PathBuf, PathBuf) {
    static MADE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    MADE.get_or_init(|| {
        let dir = common::temp_dir("multihost_model");
        let model = common::tiny_model(&dir, 2, Some(0.0), &[]);
        let data = dir.join("data.csv");
        crate::common::fixtures::subset("movies", &data, 64, 8);
        (model, data)
    })
}

/// `bertfit train` flags for a tiny 2-rank run into `out`; `extra` appended.
fn train_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let (model, data) = tiny();
    common::TrainRun::bare(model, data, out)
        .flag("--batch-size", "2")
        .flag("--max-length", "32")
        .flag("--threads", "1")
        .flag("--logging-steps", "1")
        .append(extra)
        .args()
}

/// Debian maps the hostname to 127.0.1.1: PyTorch's choice binds Gloo to loopback and the two hosts
/// never connect (today's main waited out --ddp-timeout, several times over). bertfit binds the
/// address that reaches MASTER_ADDR instead, and says so naming GLOO_SOCKET_IFNAME.
#[test]
fn selftest_across_hosts_whose_names_resolve_to_loopback() {
    let hosts = Hosts::up("loopback");
    let started = Instant::now();
    let mut ranks: Vec<Rank> =
        (0..2).map(|r| Rank::spawn(hosts.rank(r, &["dist-selftest", "--ddp-timeout", "60"]))).collect();
    let done = finish(&mut ranks, started, Duration::from_secs(30));
    for (r, (code, secs)) in done.iter().enumerate() {
        let log = ranks[r].log();
        assert_eq!(*code, 0, "rank {r} failed after {secs:.1}s:\n{log}");
        // About 1 s on an idle machine: a join that waits on anything shows here.
        assert!(*secs < 20.0, "rank {r} took {secs:.1}s (--ddp-timeout 60):\n{log}");
        let addr = if r == 0 { "198.18.0.1" } else { "198.18.0.2" };
        assert!(log.contains(&format!("rank {r}: Gloo binds to {addr}")), "{log}");
        assert!(log.contains("resolves only to 127.0.1.1") && log.contains("GLOO_SOCKET_IFNAME"), "{log}");
        assert!(log.contains("all-reduce sum [3.0, 6.0, 9.0]"), "{log}");
    }
}

/// GLOO_SOCKET_IFNAME set by the user wins over bertfit's choice, and is named in the log.
#[test]
fn gloo_socket_ifname_wins() {
    let hosts = Hosts::up("loopback");
    let started = Instant::now();
    let mut ranks: Vec<Rank> = (0..2)
        .map(|r| {
            let mut cmd = hosts.rank(r, &["dist-selftest", "--ddp-timeout", "20"]);
            cmd.env("GLOO_SOCKET_IFNAME", hosts.veth(if r == 0 { "a" } else { "b" }));
            Rank::spawn(cmd)
        })
        .collect();
    let done = finish(&mut ranks, started, Duration::from_secs(30));
    for (r, (code, _)) in done.iter().enumerate() {
        let log = ranks[r].log();
        assert_eq!(*code, 0, "rank {r}:\n{log}");
        let veth = hosts.veth(if r == 0 { "a" } else { "b" });
        assert!(
            log.contains(&format!("Gloo binds to interface {veth} (GLOO_SOCKET_IFNAME is set)")),
            "{log}"
        );
    }
}

/// A tiny training run across the two hosts, names resolving to loopback: it trains and saves.
#[test]
fn training_across_hosts_whose_names_resolve_to_loopback() {
    let hosts = Hosts::up("loopback");
    let out = common::temp_dir("multihost_train");
    let args = train_args(&out, &["--epochs", "1", "--ddp-timeout", "20"]);
    let started = Instant::now();
    let mut ranks: Vec<Rank> = (0..2).map(|r| Rank::spawn(hosts.rank(r, &args))).collect();
    let done = finish(&mut ranks, started, Duration::from_secs(90));
    for (r, (code, secs)) in done.iter().enumerate() {
        assert_eq!(*code, 0, "rank {r} failed after {secs:.1}s:\n{}", ranks[r].log());
    }
    assert!(out.join("model.safetensors").exists());
    let steps = crate::common::fixtures::records(&out.join("metrics.jsonl"), "step");
    assert_eq!(steps.len(), 16, "64 rows, 2 ranks of batch 2");
}

/// A partition mid-run (the link down, no RST, no FIN): both ranks end non-zero within 2x
/// --ddp-timeout naming the rank they lost, and the last checkpoint in the folder is complete.
/// Today's main: rank 0 ends after the timeout, rank 1 hangs in a TCPStore read until the kernel
/// gives the connection up (about 16 minutes).
#[test]
fn a_cut_link_ends_both_ranks_within_twice_the_timeout() {
    let hosts = Hosts::up("veth");
    let out = common::temp_dir("multihost_cut");
    let timeout = 20u64;
    let t = timeout.to_string();
    let flags = ["--epochs", "2", "--save-strategy", "steps", "--save-steps", "2", "--ddp-timeout", &t];
    let args = train_args(&out, &flags);
    let mut ranks: Vec<Rank> = (0..2)
        .map(|r| {
            let mut cmd = hosts.rank(r, &args);
            cmd.env("BERTFIT_TEST_STEP_PAUSE_MS", "300");
            Rank::spawn(cmd)
        })
        .collect();
    assert!(
        ranks[0].wait_for_line("bertfit-test: step pause", 5, Duration::from_secs(60)),
        "rank 0 never reached step 5:\n{}",
        ranks[0].log()
    );
    hosts.cut();
    let cut = Instant::now();
    let done = finish(&mut ranks, cut, Duration::from_secs(2 * timeout));
    for (r, (code, _)) in done.iter().enumerate() {
        let log = ranks[r].log();
        assert!(*code != 0, "rank {r} exited 0 after the cut:\n{log}");
        assert!(
            log.contains(&format!("lost rank {}", 1 - r)),
            "rank {r} does not name rank {}:\n{log}",
            1 - r
        );
        assert!(!log.contains("panicked"), "{log}");
    }
    let last =
        common::latest_checkpoint(&out).unwrap_or_else(|| panic!("no checkpoint in {}", out.display()));
    let state = common::read_json(&last.join("trainer_state.json"));
    assert!(state["global_step"].as_u64().unwrap_or(0) >= 2, "{state}");
    for file in ["model.safetensors", "training_state.safetensors"] {
        let tensors = tch::Tensor::read_safetensors(last.join(file))
            .unwrap_or_else(|e| panic!("{}: {e}", last.join(file).display()));
        assert!(!tensors.is_empty(), "{file} is empty");
    }
}

/// A rank waiting for a master that never comes says so (every 30 s; every second here through
/// the test hook) and ends on a single SIGTERM at once, non-zero, saying why. Today's main: silent,
/// and SIGTERM only sets the training loop's flag, which a rank in the rendezvous never reads.
#[test]
fn a_rank_waiting_for_a_master_that_never_comes_says_so_and_stops_on_sigterm() {
    let hosts = Hosts::up("veth");
    let out = common::temp_dir("multihost_wait");
    let mut cmd = hosts.rank(1, &train_args(&out, &["--ddp-timeout", "600"]));
    cmd.env("BERTFIT_TEST_WAIT_NOTICE_S", "1");
    let mut rank = Rank::spawn(cmd);
    let notice = format!("rank 1: waiting for the master (rank 0) at {MASTER_ADDR}:{MASTER_PORT}: ");
    assert!(rank.wait_for_line(&notice, 2, Duration::from_secs(20)), "no waiting notice:\n{}", rank.log());
    assert!(rank.log().contains("limit 600s (--ddp-timeout)"), "{}", rank.log());
    rank.terminate();
    let sent = Instant::now();
    let code = rank.wait_exit(Duration::from_secs(10));
    let took = sent.elapsed();
    let log = rank.log();
    assert!(code.is_some_and(|c| c != 0), "exit {code:?} after SIGTERM:\n{log}");
    assert!(took < Duration::from_secs(2), "took {took:?} after SIGTERM:\n{log}");
    assert!(log.contains("stopped by a signal while waiting for the master (rank 0)"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

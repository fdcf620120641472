//! The client of `scripts/parity/zygote.py`, the fork server scripts/test.sh starts: a parity script
//! run through it is a forked copy of a Python that has already imported torch and transformers,
//! which saves each of the suite's ~100 script runs 2-4.5 CPU seconds of imports.
//!
//! Without the server (`cargo test` alone, or BERTFIT_ZYGOTE unset), scripts start as plain
//! `python SCRIPT ARGS`; the results are the same either way, only the start-up differs.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `argv` (a script and its arguments) with the test's environment plus `env`: in the fork
/// server when one is running, else as a new Python ([`plain`]).
pub fn output(argv: &[String], env: &[(&str, &str)]) -> Output {
    let server = std::env::var_os("BERTFIT_ZYGOTE").and_then(|socket| UnixStream::connect(socket).ok());
    match server {
        Some(stream) => run_on(stream, argv, env),
        None => plain(argv, env),
    }
}

/// `python SCRIPT ARGS` as its own process: what a run through the server must equal.
pub fn plain(argv: &[String], env: &[(&str, &str)]) -> Output {
    Command::new(super::python()).args(argv).envs(env.iter().copied()).output().expect("spawn python")
}

/// Runs `argv` in the server at the other end of `stream` (see [`output`]).
pub fn run_on(mut stream: UnixStream, argv: &[String], env: &[(&str, &str)]) -> Output {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("zygote");
    std::fs::create_dir_all(&dir).expect("create the zygote output folder");
    let stem = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let (stdout, stderr) = (dir.join(format!("{stem}.out")), dir.join(format!("{stem}.err")));
    let mut vars: serde_json::Map<String, serde_json::Value> =
        std::env::vars().map(|(k, v)| (k, v.into())).collect();
    for (k, v) in env {
        vars.insert(k.to_string(), (*v).into());
    }
    let request = serde_json::json!({
        "argv": argv,
        "cwd": std::env::current_dir().expect("the test's working folder"),
        "env": vars,
        "stdout": stdout,
        "stderr": stderr,
    });
    writeln!(stream, "{request}").expect("send the request to the zygote");
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).expect("read the zygote's reply");
    let reply: serde_json::Value = serde_json::from_str(&reply)
        .unwrap_or_else(|e| panic!("zygote: no status for {argv:?} ({e}): {reply:?}"));
    let status = reply["wait_status"].as_i64().expect("wait_status") as i32;
    let read = |p: &PathBuf| {
        let bytes = std::fs::read(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        bytes
    };
    Output { status: ExitStatus::from_raw(status), stdout: read(&stdout), stderr: read(&stderr) }
}

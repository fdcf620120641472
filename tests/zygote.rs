//! The fork server the suite runs its parity scripts through (`scripts/parity/zygote.py`) gives
//! what `python SCRIPT ARGS` gives: the same stdout, stderr and exit status (codes, messages,
//! uncaught exceptions, a signal), arguments, working folder, environment, `__main__`, sibling
//! imports, files left unclosed still written and atexit handlers run.
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::common::{python, repo, temp_dir, zygote};

const PROBE: &str = r#"
import atexit, os, sys
import helper  # a module beside the script, as `python SCRIPT` finds it
print("argv", sys.argv[1:], "name", __name__, "helper", helper.VALUE)
print("env", os.environ.get("ZYGOTE_PROBE"), "stdin", repr(sys.stdin.read()))
print("to stderr", file=sys.stderr)
kept = open(sys.argv[1], "w")  # never closed: its buffer is written as the interpreter ends
kept.write("written at exit")
atexit.register(lambda: print("atexit handler ran"))
mode = sys.argv[2]
if mode == "raise":
    raise ValueError("an uncaught exception")
if mode == "message":
    sys.exit("a message instead of a code")
if mode == "signal":
    os.kill(os.getpid(), 9)
sys.exit(int(mode))
"#;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(socket: &Path) -> Server {
    let script = repo().join("scripts/parity/zygote.py");
    let server = Server(Command::new(python()).arg(script).arg(socket).spawn().expect("start zygote.py"));
    let t0 = Instant::now();
    while !socket.exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "zygote.py made no socket in 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).lines().last().unwrap_or_default().to_string()
}

#[test]
fn a_script_run_through_the_fork_server_is_the_script_run_by_python() {
    let dir = temp_dir("zygote");
    std::fs::write(dir.join("probe.py"), PROBE).unwrap();
    std::fs::write(dir.join("helper.py"), "VALUE = 42\n").unwrap();
    let socket = dir.join("socket");
    let _server = start(&socket);
    let env = [("ZYGOTE_PROBE", "from the caller")];
    for mode in ["0", "3", "raise", "message", "signal"] {
        let written = dir.join(format!("written-{mode}.txt"));
        let paths = [dir.join("probe.py"), written.clone()];
        let argv: Vec<String> = paths.iter().map(|p| p.display().to_string()).chain([mode.into()]).collect();
        let plain = zygote::plain(&argv, &env);
        let _ = std::fs::remove_file(&written);
        let forked = zygote::run_on(UnixStream::connect(&socket).unwrap(), &argv, &env);
        let stdout = String::from_utf8_lossy(&forked.stdout);
        assert!(stdout.contains("name __main__ helper 42"), "{mode}: {stdout}");
        assert!(stdout.contains("env from the caller stdin ''"), "{mode}: {stdout}");
        assert_eq!(forked.status, plain.status, "{mode}: exit status");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert_eq!(text(&forked.stdout), text(&plain.stdout), "{mode}: stdout");
        // An uncaught exception's traceback has the server's frames above the script's.
        assert_eq!(last_line(&forked.stderr), last_line(&plain.stderr), "{mode}: stderr");
        if mode == "signal" {
            assert_eq!(forked.status.signal(), Some(9));
        } else {
            assert_eq!(std::fs::read_to_string(&written).unwrap(), "written at exit", "{mode}");
        }
    }
}

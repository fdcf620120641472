//! How long a run takes from launch to its first training step, and where that time goes.
//!
//! A short job on a warm cluster node is dominated by start-up, so the figure is measured on
//! every run and written to metrics.jsonl as one `startup` record: the phases in order, each
//! the seconds since the previous mark, and `seconds_to_first_step` (launch to the moment the
//! first batch is ready, i.e. before its forward, from the process's creation on Linux).
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{json, Map, Value};

static LAUNCHED: OnceLock<Instant> = OnceLock::new();
/// Seconds from the process's creation to `main` (exec and loading libtorch's shared
/// libraries), when the system says.
static BEFORE_MAIN: OnceLock<Option<f64>> = OnceLock::new();

/// Marks the process's launch; the binary calls it first thing. Without it (the library used
/// directly) the clock starts when the trainer does.
pub fn mark_launch() {
    LAUNCHED.get_or_init(Instant::now);
    BEFORE_MAIN.get_or_init(seconds_since_process_start);
}

/// Linux: /proc/self/stat's start time (field 22, clock ticks since boot) against /proc/uptime;
/// a tick is 10 ms, which is the resolution of the figure.
fn seconds_since_process_start() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let start_ticks: f64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 =
        std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks_per_second > 0).then(|| (uptime - start_ticks / ticks_per_second as f64).max(0.0))
}

/// The marks of one run's start, in order.
#[derive(Debug)]
pub struct Startup {
    origin: Instant,
    last: Instant,
    phases: Vec<(&'static str, f64)>,
    to_first_step: Option<f64>,
    /// The `exec` phase, which `origin` (the start of `main`) does not include.
    before_main: f64,
}

impl Startup {
    /// Starts the phase clock: `exec` is the time before `main` (loading libtorch's libraries),
    /// `process` from `main` to this call (flags, config files).
    pub fn begin() -> Startup {
        let now = Instant::now();
        let origin = *LAUNCHED.get().unwrap_or(&now);
        let mut startup =
            Startup { origin, last: origin, phases: Vec::new(), to_first_step: None, before_main: 0.0 };
        let before_main = BEFORE_MAIN.get().copied().flatten();
        if let Some(s) = before_main {
            startup.phases.push(("exec", s));
        }
        startup.mark("process");
        startup.before_main = before_main.unwrap_or(0.0);
        startup
    }

    /// Ends the phase called `name` now.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.phases.push((name, now.duration_since(self.last).as_secs_f64()));
        self.last = now;
    }

    /// Ends the `first_batch` phase: the first step's inputs are ready, its forward comes next.
    pub fn first_batch_ready(&mut self) {
        self.mark("first_batch");
        self.to_first_step = Some(self.before_main + self.last.duration_since(self.origin).as_secs_f64());
    }

    /// The metrics.jsonl record.
    pub fn record(&self) -> Value {
        let phases: Map<String, Value> = self.phases.iter().map(|(n, s)| (n.to_string(), json!(s))).collect();
        json!({
            "kind": "startup",
            "seconds_to_first_step": self.to_first_step,
            "phases": phases,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_to_the_time_to_the_first_step() {
        let mut s = Startup::begin();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.mark("weights");
        s.first_batch_ready();
        s.mark("first_step");
        let r = s.record();
        let phases = r["phases"].as_object().unwrap();
        let names: Vec<&str> = phases.keys().map(String::as_str).collect();
        assert_eq!(names, ["process", "weights", "first_batch", "first_step"]);
        assert!(phases["weights"].as_f64().unwrap() >= 0.02);
        let before: f64 =
            ["process", "weights", "first_batch"].iter().map(|k| phases[*k].as_f64().unwrap()).sum();
        assert!((r["seconds_to_first_step"].as_f64().unwrap() - before).abs() < 1e-6);
    }
}

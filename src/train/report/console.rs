//! The terminal reporter: the seed script's lines on stdout, progress and notes on stderr.
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::{Reporter, StepRecord};

/// The terminal: the seed's lines on stdout, the rest on stderr. While an epoch runs, a progress
/// bar when stderr is a terminal; otherwise (a batch job's log, CI) a plain line every
/// `logging_steps` optimizer steps and at least every 30 s, since a bar draws nothing there.
pub struct Console {
    bar: Option<ProgressBar>,
    /// `Some` when stderr is not a terminal.
    lines: Option<PlainProgress>,
}

impl Default for Console {
    fn default() -> Self {
        Console::new(50)
    }
}

impl Console {
    pub fn new(logging_steps: usize) -> Self {
        let lines = (!std::io::stderr().is_terminal()).then(|| PlainProgress::new(logging_steps));
        Console { bar: None, lines }
    }

    /// The run's length, so progress lines count steps and time to the run's end rather than the
    /// epoch's (`max_steps`, when given, is its length; early stopping can end it sooner).
    pub fn with_run_length(mut self, epochs: usize, max_steps: Option<usize>) -> Self {
        if let Some(lines) = &mut self.lines {
            lines.run = Some((epochs, max_steps));
        }
        self
    }
}

impl Reporter for Console {
    fn device(&mut self, description: &str) {
        eprintln!("bertfit: {description}");
    }

    fn note(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn epoch_started(&mut self, epoch: usize, steps: usize) {
        if let Some(lines) = &mut self.lines {
            return lines.epoch_started(steps);
        }
        let bar = ProgressBar::new(steps as u64);
        if let Ok(style) =
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps, {msg} ({eta} left)")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(epoch.to_string());
        self.bar = Some(bar);
    }

    fn step(&mut self, record: &StepRecord) {
        if let Some(line) = self.lines.as_mut().and_then(|l| l.step(record)) {
            eprintln!("{line}");
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {:.4}", record.loss));
            bar.inc(1);
        }
    }

    fn epoch_loss(&mut self, epoch: usize, loss: f64) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!("Epoch {epoch}, Loss: {loss:.4}");
    }

    fn validation_accuracy(&mut self, _epoch: usize, percent: f64) {
        println!("Validation Accuracy: {percent:.2}%");
    }

    fn validation_mse(&mut self, _epoch: usize, mse: f64) {
        println!("Validation MSE: {mse:.4}");
    }
}

/// At least this often a progress line, however slow the steps.
const LINE_EVERY: Duration = Duration::from_secs(30);

/// Progress as plain lines: `step 120/1000 (epoch 1), loss 0.4123, lr 2.0e-05, 31.2 samples/s,
/// ETA 7m12s`. Speed and ETA are averages over the epoch so far.
struct PlainProgress {
    logging_steps: usize,
    /// (epochs, max_steps) when known; otherwise counts and ETA run to the epoch's end.
    run: Option<(usize, Option<usize>)>,
    epoch_steps: usize,
    /// Steps and examples of this epoch so far, and when it started.
    done: usize,
    samples: usize,
    started: Instant,
    last_line: Instant,
}

impl PlainProgress {
    fn new(logging_steps: usize) -> Self {
        let now = Instant::now();
        PlainProgress {
            logging_steps: logging_steps.max(1),
            run: None,
            epoch_steps: 0,
            done: 0,
            samples: 0,
            started: now,
            last_line: now,
        }
    }

    fn epoch_started(&mut self, steps: usize) {
        self.epoch_steps = steps;
        self.done = 0;
        self.samples = 0;
        self.started = Instant::now();
    }

    /// The line to print after this step, if one is due.
    fn step(&mut self, r: &StepRecord) -> Option<String> {
        self.done += 1;
        self.samples += r.rows.len();
        let now = Instant::now();
        if !r.step.is_multiple_of(self.logging_steps) && now.duration_since(self.last_line) < LINE_EVERY {
            return None;
        }
        self.last_line = now;
        // Steps of the earlier epochs: the global step less this epoch's.
        let total = match self.run {
            // max_steps, when given, is the run's length whatever --epochs says (HF's rule).
            Some((epochs, max_steps)) => max_steps.unwrap_or(epochs.saturating_mul(self.epoch_steps)),
            None => r.step - self.done + self.epoch_steps,
        };
        let seconds = now.duration_since(self.started).as_secs_f64();
        let eta = total.saturating_sub(r.step) as f64 * seconds / self.done as f64;
        Some(progress_line(r, total, self.samples as f64 / seconds.max(1e-9), eta))
    }
}

/// `step 120/1000 (epoch 1), loss 0.4123, lr 2.0e-05, 31.2 samples/s, ETA 7m12s`.
fn progress_line(r: &StepRecord, total: usize, samples_per_second: f64, eta_seconds: f64) -> String {
    format!(
        "step {}/{total} (epoch {}), loss {:.4}, lr {}, {samples_per_second:.1} samples/s, ETA {}",
        r.step,
        r.epoch,
        r.loss,
        python_exp(r.lr),
        duration(eta_seconds)
    )
}

/// `2.0e-05`, as Python's `f"{lr:.1e}"` writes it (Rust writes `2.0e-5`).
fn python_exp(x: f64) -> String {
    let s = format!("{x:.1e}");
    match s.split_once('e').map(|(m, e)| (m, e.parse::<i32>())) {
        Some((m, Ok(e))) => format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs()),
        _ => s, // NaN, inf
    }
}

/// `45s`, `7m12s`, `2h05m`.
fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "?".to_string();
    }
    let s = seconds.round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: usize, rows: usize) -> StepRecord {
        StepRecord {
            kind: "step",
            epoch: 2,
            step,
            loss: 0.41234,
            lr: 2e-5,
            skipped: None,
            scale: None,
            rows: (0..rows).collect(),
            rank_rows: None,
            flops: None,
            grad_norm: 0.0,
        }
    }

    #[test]
    fn a_line_has_every_field_in_python_notation() {
        let line = progress_line(&record(120, 16), 1000, 31.24, 432.0);
        assert_eq!(line, "step 120/1000 (epoch 2), loss 0.4123, lr 2.0e-05, 31.2 samples/s, ETA 7m12s");
        assert_eq!(python_exp(0.0), "0.0e+00");
        assert_eq!(python_exp(1.5e3), "1.5e+03");
        assert_eq!(
            (duration(45.2), duration(7505.0), duration(f64::NAN)),
            ("45s".into(), "2h05m".into(), "?".into())
        );
    }

    #[test]
    fn lines_come_every_n_steps_and_count_to_the_run_end() {
        let mut p = PlainProgress::new(3);
        p.run = Some((4, Some(10)));
        p.epoch_started(5);
        // Global steps 6..=10 are epoch 2's five steps.
        let due: Vec<usize> = (6..=10).filter(|&s| p.step(&record(s, 8)).is_some()).collect();
        assert_eq!(due, [6, 9]);
        let mut p = PlainProgress::new(3);
        p.epoch_started(5);
        p.done = 2;
        let line = p.step(&record(9, 8)).unwrap();
        assert!(line.starts_with("step 9/11 (epoch 2)"), "{line}"); // no run length: the epoch's end
    }
}

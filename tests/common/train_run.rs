//! One builder for the `bertfit train` command lines the tests run, so that a test states only what
//! differs from the run every other test makes, and one for the flags a parity test gives both
//! bertfit and `scripts/reference_train.py`.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::bertfit;

/// The flags of [`TrainRun::new`]: a small seeded CPU run (the fault and resume tests' run).
pub const DEFAULTS: &[(&str, &str)] = &[
    ("--device", "cpu"),
    ("--epochs", "2"),
    ("--batch-size", "16"),
    ("--max-length", "48"),
    ("--learning-rate", "2e-3"),
    ("--seed", "9"),
    ("--threads", "1"),
];

/// The flags of [`Flags::parity`]: what the parity tests share (each sets its epochs, seed and
/// learning rate).
pub const PARITY: &[(&str, &str)] =
    &[("--batch-size", "16"), ("--max-length", "48"), ("--padding", "longest"), ("--threads", "2")];

/// Flags in order, each once: bertfit refuses a repeated flag, so [`flag`](Self::flag) replaces a
/// value already set, in its place.
#[derive(Clone, Debug, Default)]
pub struct Flags(Vec<(String, Option<String>)>);

impl Flags {
    /// `pairs` as flags with values.
    pub fn of(pairs: &[(&str, &str)]) -> Self {
        pairs.iter().fold(Self::default(), |flags, (name, value)| flags.flag(name, value))
    }

    /// [`PARITY`]: the flags a parity test gives bertfit and the reference alike (run_both).
    pub fn parity() -> Self {
        Self::of(PARITY)
    }

    /// Sets `name` to `value`.
    pub fn flag(mut self, name: &str, value: &str) -> Self {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = Some(value.to_string()),
            None => self.0.push((name.to_string(), Some(value.to_string()))),
        }
        self
    }

    /// Adds a flag that takes no value (`--overwrite`, `--no-shuffle`).
    pub fn switch(mut self, name: &str) -> Self {
        if !self.0.iter().any(|(n, _)| n == name) {
            self.0.push((name.to_string(), None));
        }
        self
    }

    /// Drops a flag, leaving its value to the program's default.
    pub fn unset(mut self, name: &str) -> Self {
        self.0.retain(|(n, _)| n != name);
        self
    }

    /// The flags as arguments.
    pub fn args(&self) -> Vec<String> {
        self.0.iter().flat_map(|(name, value)| std::iter::once(name.clone()).chain(value.clone())).collect()
    }
}

/// `bertfit train --model MODEL --data DATA --output-dir OUT`, its [`Flags`], then any arguments
/// appended as they are.
///
/// [`new`](Self::new) starts from [`DEFAULTS`], [`tiny`](Self::tiny) from the fault tests' run, and
/// [`bare`](Self::bare) from `--device cpu` alone, for a run that leaves everything else to
/// bertfit's defaults or names every flag itself (the parity runs, whose flags are the reference
/// script's).
#[derive(Clone, Debug)]
pub struct TrainRun {
    model: PathBuf,
    data: PathBuf,
    out: PathBuf,
    flags: Flags,
    tail: Vec<String>,
}

impl TrainRun {
    /// The run with [`DEFAULTS`].
    pub fn new(model: &Path, data: &Path, out: &Path) -> Self {
        Self::with(model, data, out, Flags::of(DEFAULTS))
    }

    /// The fault tests' tiny run: batch 4, max length 16, one thread, `--overwrite`; the learning
    /// rate, seed and epochs left to bertfit (a test sets the epochs and when it stops).
    pub fn tiny(model: &Path, data: &Path, out: &Path) -> Self {
        Self::bare(model, data, out)
            .flag("--batch-size", "4")
            .flag("--max-length", "16")
            .flag("--threads", "1")
            .switch("--overwrite")
    }

    /// The run with `--device cpu` and nothing else set.
    pub fn bare(model: &Path, data: &Path, out: &Path) -> Self {
        Self::with(model, data, out, Flags::of(&[("--device", "cpu")]))
    }

    fn with(model: &Path, data: &Path, out: &Path, flags: Flags) -> Self {
        let (model, data, out) = (model.to_path_buf(), data.to_path_buf(), out.to_path_buf());
        Self { model, data, out, flags, tail: Vec::new() }
    }

    /// Sets `name` to `value`, in the place of the flag's earlier value if it has one.
    pub fn flag(mut self, name: &str, value: &str) -> Self {
        self.flags = self.flags.flag(name, value);
        self
    }

    /// Adds a flag that takes no value.
    pub fn switch(mut self, name: &str) -> Self {
        self.flags = self.flags.switch(name);
        self
    }

    /// Drops a flag set so far, leaving its value to bertfit.
    pub fn unset(mut self, name: &str) -> Self {
        self.flags = self.flags.unset(name);
        self
    }

    /// Appends a test's own argument list; a flag set so far that the list names is dropped first,
    /// so the list's value is the one used.
    pub fn extra(mut self, extra: &[&str]) -> Self {
        self.flags.0.retain(|(n, _)| !extra.contains(&n.as_str()));
        self.append(extra)
    }

    /// Appends arguments as they are, after every flag set so far.
    pub fn append<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.tail.extend(args.iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// The command line, `train` first (the paths must be UTF-8; [`command`](Self::command) takes any).
    pub fn args(&self) -> Vec<String> {
        self.os_args()
            .into_iter()
            .map(|a| a.into_string().unwrap_or_else(|a| panic!("{a:?} is not UTF-8: use command()")))
            .collect()
    }

    fn os_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["train".into(), "--model".into(), self.model.clone().into()];
        args.extend([
            "--data".into(),
            self.data.clone().into(),
            "--output-dir".into(),
            self.out.clone().into(),
        ]);
        args.extend(self.flags.args().into_iter().chain(self.tail.iter().cloned()).map(OsString::from));
        args
    }

    /// The bertfit binary under test with these arguments.
    pub fn command(&self) -> Command {
        let mut cmd = bertfit();
        cmd.args(self.os_args());
        cmd
    }

    /// Runs it to the end: its output, whatever the exit status.
    pub fn output(&self) -> Output {
        self.command().output().expect("spawn bertfit")
    }

    /// Runs it to the end: (exit code, stdout, stderr), as [`run_bertfit`](super::run_bertfit).
    pub fn run(&self) -> (i32, String, String) {
        super::outcome(&self.output())
    }
}

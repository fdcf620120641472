//! The `metrics.jsonl` reporter.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CheckpointRecord, EpochRecord, Reporter, StepRecord};
use crate::error::{Error, Result};

/// `metrics.jsonl`: one JSON line per step, evaluation and epoch, written as they happen to
/// `metrics.jsonl.partial` beside it (a crash keeps everything up to the last step there) and renamed
/// to `metrics.jsonl` when the run ends, so a run that fails leaves a previous run's log alone.
/// A resumed run continues the log: the interrupted runs' records up to the checkpoint are kept,
/// those after it (steps that are trained again) dropped, and a `resume` record marks the seam.
pub struct JsonLines {
    path: PathBuf,
    partial: PathBuf,
    file: Option<File>,
    /// The first write error; returned by `finish`, since reporting a step cannot fail it.
    error: Option<std::io::Error>,
}

impl JsonLines {
    pub fn new(path: &Path) -> Self {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        JsonLines { path: path.to_path_buf(), partial: PathBuf::from(partial), file: None, error: None }
    }

    fn write<T: Serialize>(&mut self, record: &T) {
        let line = serde_json::to_string(record).unwrap_or_default();
        self.write_line(&line);
    }

    fn write_line(&mut self, line: &str) {
        if self.error.is_some() {
            return;
        }
        if self.file.is_none() {
            let opened = OpenOptions::new().create(true).write(true).truncate(true).open(&self.partial);
            match opened {
                Ok(f) => self.file = Some(f),
                Err(e) => return self.error = Some(e),
            }
        }
        if let Some(Err(e)) = self.file.as_mut().map(|f| writeln!(f, "{line}")) {
            self.error = Some(e);
        }
    }
}

impl Reporter for JsonLines {
    fn step(&mut self, record: &StepRecord) {
        self.write(record);
    }

    fn epoch_finished(&mut self, record: &EpochRecord) {
        self.write(record);
    }

    fn evaluated(&mut self, record: &serde_json::Value) {
        self.write(record);
    }

    fn startup(&mut self, record: &serde_json::Value) {
        self.write(record);
    }

    fn peak(&mut self, record: &crate::train::mfu::PeakRecord) {
        self.write(record);
    }

    fn checkpoint(&mut self, record: &CheckpointRecord) {
        self.write(record);
    }

    fn resumed(&mut self, step: usize, epoch: usize, checkpoint: &Path) {
        if self.file.is_some() || self.error.is_some() {
            return; // (records of this run already written: nothing earlier to keep)
        }
        // A crash leaves the newest log in .partial; a stop signal or a finished run, renamed.
        let old = [&self.partial, &self.path].into_iter().find(|p| p.is_file());
        let text = match old.map(std::fs::read_to_string) {
            Some(Ok(text)) => text,
            Some(Err(e)) => return self.error = Some(e),
            None => String::new(),
        };
        for line in kept_before(&text, step, epoch) {
            self.write_line(line);
        }
        self.write(&serde_json::json!({
            "kind": "resume",
            "step": step,
            "epoch": epoch,
            "checkpoint": checkpoint.display().to_string(),
        }));
    }

    fn finish(&mut self) -> Result<()> {
        let Some(mut file) = self.file.take() else { return Ok(()) };
        let done = file.flush().and_then(|_| file.sync_all());
        if let Some(e) = self.error.take().or(done.err()) {
            return Err(Error::io(&self.partial, e));
        }
        std::fs::rename(&self.partial, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// The lines of an earlier (interrupted) run's log that a run resumed from the checkpoint taken
/// at `step` in `epoch` keeps. The log is in time order, so that is every line up to the
/// checkpoint's own record (the last one at `step`: a step may have been trained twice). Where
/// that record is missing (a log cut short), records with a step up to `step`, summaries of
/// finished epochs and records with neither (start-up, earlier resume marks). Lines cut short by
/// a crash are dropped.
fn kept_before(text: &str, step: usize, epoch: usize) -> Vec<&str> {
    let records: Vec<(&str, serde_json::Value)> =
        text.lines().filter_map(|l| serde_json::from_str(l).ok().map(|v| (l, v))).collect();
    let n = |v: &serde_json::Value, key: &str| v.get(key).and_then(serde_json::Value::as_u64);
    let kind = |v: &serde_json::Value| v.get("kind").and_then(|k| k.as_str()).map(str::to_string);
    let seam = records
        .iter()
        .rposition(|(_, v)| kind(v).as_deref() == Some("checkpoint") && n(v, "step") == Some(step as u64));
    let keep = |v: &serde_json::Value| match (kind(v).as_deref(), n(v, "step"), n(v, "epoch")) {
        (Some("epoch"), _, Some(e)) => (e as usize) < epoch,
        (_, Some(s), _) => s as usize <= step,
        _ => true,
    };
    match seam {
        Some(i) => records[..=i].iter().map(|(l, _)| *l).collect(),
        None => records.iter().filter(|(_, v)| keep(v)).map(|(l, _)| *l).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_log_keeps_what_came_before_the_checkpoints_record() {
        let log = [
            r#"{"kind":"startup"}"#,
            r#"{"kind":"step","epoch":1,"step":1}"#,
            r#"{"kind":"step","epoch":1,"step":2}"#,
            r#"{"kind":"eval","epoch":1,"step":2}"#,
            r#"{"kind":"checkpoint","step":2}"#,
            r#"{"kind":"epoch","epoch":1}"#,
            r#"{"kind":"step","epoch":2,"step":3}"#,
            r#"{"kind":"step","epo"#,
        ]
        .join("\n");
        // The checkpoint at step 2 was taken at the end of epoch 1's last step, before its
        // evaluation was logged again: everything up to its record stays, nothing after.
        assert_eq!(kept_before(&log, 2, 1), log.lines().take(5).collect::<Vec<_>>());
        // No record of the checkpoint (a log cut short): by step and finished epochs.
        let cut: Vec<&str> = log.lines().filter(|l| !l.contains("checkpoint")).collect();
        let cut_log = cut.join("\n");
        let kept = kept_before(&cut_log, 2, 2);
        assert_eq!(kept, [cut[0], cut[1], cut[2], cut[3], cut[4]]);
        assert!(kept_before("", 5, 1).is_empty());
    }
}

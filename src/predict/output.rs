//! The output file: CSV/TSV (arrow-csv) or Parquet (ArrowWriter, snappy), chosen by extension,
//! written to a temporary file beside the target and renamed over it only once complete, so a
//! failed or interrupted run never leaves a half-written output (nor destroys an existing one).
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::data::table::{format_of, Format};
use crate::error::{Error, Result};

enum Writer {
    Csv(arrow_csv::Writer<BufWriter<File>>),
    Parquet(ArrowWriter<BufWriter<File>>),
}

pub struct Output {
    target: PathBuf,
    tmp: PathBuf,
    schema: SchemaRef,
    writer: Option<Writer>,
    rows: usize,
}

/// What marks a partial output file: `.<name>.bertfit-partial-<pid>` beside the target.
pub const PARTIAL_MARKER: &str = ".bertfit-partial-";

/// The partial file this process is writing, removed by [`remove_partial_on_signal`]'s handler.
static PARTIAL: Mutex<Option<PathBuf>> = Mutex::new(None);

fn set_partial(path: Option<PathBuf>) {
    // A poisoned lock only means a panic elsewhere; the path is still right.
    *PARTIAL.lock().unwrap_or_else(|e| e.into_inner()) = path;
}

/// Exit status of a prediction stopped by Ctrl-C or SIGTERM (the shell's 128 + SIGINT, as
/// training's).
pub const INTERRUPTED: i32 = 130;

/// Ctrl-C, SIGTERM or SIGHUP during a prediction remove the partial output file and end the
/// process with exit status 130 (there is nothing to save: the output is written whole or not at
/// all). Installed once per process; where a handler is already installed (a process that also
/// trains), that one stays and the next run's sweep ([`sweep_stale_partials`]) removes the file.
pub fn remove_partial_on_signal() {
    use std::io::Write;
    let handler = || {
        if let Some(path) = PARTIAL.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = std::fs::remove_file(&path);
        }
        let _ = writeln!(std::io::stderr(), "\nstopped: no output written (exit {INTERRUPTED})");
        // SAFETY: _exit only ends the process; the partial file is gone and nothing else is open
        // for writing that a destructor would need to finish.
        unsafe { libc::_exit(INTERRUPTED) };
    };
    let _ = ctrlc::set_handler(handler);
}

/// Whether process `pid` is gone (kill(pid, 0) says no such process). A process of another user
/// (EPERM) is alive.
fn process_is_gone(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// The writer's pid of a partial file's name, if the name is one bertfit gives
/// (`.<name>.bertfit-partial-<pid>`).
fn partial_owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix('.')?;
    let (stem, pid) = rest.rsplit_once(PARTIAL_MARKER)?;
    if stem.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the partial output files that runs which died (SIGKILL, a power cut) left in the folder
/// of `target`: only files named as bertfit names them, only those of processes that no longer
/// exist. Returns the files removed.
pub fn sweep_stale_partials(target: &Path) -> Vec<PathBuf> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(partial_owner) else { continue };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && pid != std::process::id() as i32 && process_is_gone(pid) {
            let path = entry.path();
            if std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed.sort();
    removed
}

/// Refuses an output that exists (unless `overwrite`), whose extension is not a known format, or
/// whose folder does not exist.
pub fn check_target(target: &Path, overwrite: bool) -> Result<Format> {
    let format = format_of(target).ok().filter(|f| *f != Format::Json).ok_or_else(|| {
        Error::usage("--output", format!("{}: use a .csv, .tsv or .parquet file", target.display()))
    })?;
    if target.exists() && !overwrite {
        return Err(Error::usage(
            "--output",
            format!("{} already exists; pass --overwrite to replace it", target.display()),
        ));
    }
    if target.is_dir() {
        return Err(Error::usage("--output", format!("{} is a folder", target.display())));
    }
    // The partial file is made beside the target: say so of the folder, not of the partial file.
    if let Some(dir) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !dir.is_dir() {
            let what = if dir.exists() { "is not a folder" } else { "does not exist; create it first" };
            return Err(Error::usage(
                "--output",
                format!("{}: the folder {} {what}", target.display(), dir.display()),
            ));
        }
    }
    Ok(format)
}

impl Output {
    /// Creates the temporary file for `target` with the columns of `schema`.
    pub fn create(target: &Path, schema: SchemaRef, overwrite: bool) -> Result<Output> {
        let format = check_target(target, overwrite)?;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = target.with_file_name(format!(".{name}{PARTIAL_MARKER}{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(target, e))?;
        set_partial(Some(tmp.clone()));
        let out = BufWriter::new(file);
        let writer = match format {
            Format::Csv => {
                let tsv = matches!(
                    target.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(),
                    Some("tsv") | Some("tab")
                );
                let delimiter = if tsv { b'\t' } else { b',' };
                Writer::Csv(
                    arrow_csv::WriterBuilder::new().with_header(true).with_delimiter(delimiter).build(out),
                )
            }
            // check_target refuses a JSON output before the file is made; kept an error regardless.
            Format::Json => {
                let _ = std::fs::remove_file(&tmp);
                set_partial(None);
                return Err(Error::usage(
                    "--output",
                    "JSON output is not written: use .csv, .tsv or .parquet",
                ));
            }
            Format::Parquet => {
                let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
                match ArrowWriter::try_new(out, schema.clone(), Some(props)) {
                    Ok(w) => Writer::Parquet(w),
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        set_partial(None);
                        return Err(Error::data(target, format!("cannot write Parquet: {e}")));
                    }
                }
            }
        };
        Ok(Output { target: target.to_path_buf(), tmp, schema, writer: Some(writer), rows: 0 })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let result = match self.writer.as_mut() {
            Some(Writer::Csv(w)) => w.write(batch).map_err(|e| e.to_string()),
            Some(Writer::Parquet(w)) => w.write(batch).map_err(|e| e.to_string()),
            None => Err("the output is already closed".to_string()),
        };
        self.rows += batch.num_rows();
        result.map_err(|msg| Error::data(&self.target, format!("cannot write: {msg}")))
    }

    /// Finishes the file and renames it onto the target; returns the rows written.
    pub fn commit(mut self) -> Result<usize> {
        let done = self
            .finish()
            .and_then(|()| std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e)));
        if done.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        set_partial(None);
        done.map(|()| self.rows)
    }

    /// Writes the footer (Parquet) or the header of an empty CSV, flushes and syncs.
    fn finish(&mut self) -> Result<()> {
        let target = self.target.clone();
        let err = |msg: String| Error::data(&target, format!("cannot write: {msg}"));
        let file = match self.writer.take() {
            Some(Writer::Csv(mut w)) => {
                if self.rows == 0 {
                    // arrow-csv writes the header with the first batch: an empty input still gets one.
                    w.write(&RecordBatch::new_empty(self.schema.clone())).map_err(|e| err(e.to_string()))?;
                }
                w.into_inner().into_inner().map_err(|e| err(e.to_string()))?
            }
            Some(Writer::Parquet(w)) => {
                let out = w.into_inner().map_err(|e| err(e.to_string()))?;
                out.into_inner().map_err(|e| err(e.to_string()))?
            }
            None => return Err(err("the output is already closed".into())),
        };
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))
    }
}

impl Drop for Output {
    /// Not committed: the partial file goes (after a commit it has been renamed away).
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.writer = None;
            let _ = std::fs::remove_file(&self.tmp);
            set_partial(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bertfits_partial_names_of_dead_processes_are_swept() {
        assert_eq!(partial_owner(".out.csv.bertfit-partial-123"), Some(123));
        for name in [
            "out.csv.bertfit-partial-123",
            "..bertfit-partial-1",
            ".out.csv.bertfit-partial-",
            ".x.bertfit-partial-12a",
        ] {
            assert_eq!(partial_owner(name), None, "{name}");
        }
        let dir = crate::test_support::fresh_dir("sweep");
        // A pid above the kernel's pid_max (2^22) belongs to no process.
        let dead = dir.join(".p.csv.bertfit-partial-99999999");
        let mine = dir.join(format!(".p.csv.bertfit-partial-{}", std::process::id()));
        let other = dir.join("p.csv.bertfit-partial-99999999");
        for f in [&dead, &mine, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        assert_eq!(sweep_stale_partials(&dir.join("p.csv")), vec![dead.clone()]);
        assert!(!dead.exists() && mine.exists() && other.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

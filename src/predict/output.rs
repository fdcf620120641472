//! The output file: CSV/TSV (arrow-csv) or Parquet (ArrowWriter, snappy), chosen by extension,
//! written to a temporary file beside the target and renamed over it only once complete, so a
//! failed or interrupted run never leaves a half-written output (nor destroys an existing one).
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

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

/// Refuses an output that exists (unless `overwrite`) or whose extension is not a known format.
pub fn check_target(target: &Path, overwrite: bool) -> Result<Format> {
    let format = format_of(target).map_err(|_| {
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
    Ok(format)
}

impl Output {
    /// Creates the temporary file for `target` with the columns of `schema`.
    pub fn create(target: &Path, schema: SchemaRef, overwrite: bool) -> Result<Output> {
        let format = check_target(target, overwrite)?;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = target.with_file_name(format!(".{name}.bertfit-partial-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
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
            Format::Parquet => {
                let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
                match ArrowWriter::try_new(out, schema.clone(), Some(props)) {
                    Ok(w) => Writer::Parquet(w),
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
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
        }
    }
}

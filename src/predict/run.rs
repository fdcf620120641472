//! `bertfit predict`: a saved classifier over every row of a data file, each row written out with
//! all its columns and the model's answer (see `head.rs` for the columns added).
//!
//! Memory does not grow with the file. A loader thread (`data::loader::Batches`) reads one record
//! batch of every column at a time (`table::BATCH_ROWS` rows), tokenizes its texts, hands the record
//! batch to the writer's side through a small queue, then sends its model batches, at most
//! `prefetch` ahead of the forward passes. Within a record batch the examples are batched longest
//! first, which pads far less than file order (each example's result does not depend on its batch
//! mates: padding is masked); the writer puts each result back at its row and writes a record batch
//! out as soon as all of its rows are predicted, so the output keeps the input's row order.
use std::cmp::Reverse;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};

use super::input::Input;
use super::output::{check_target, remove_partial_on_signal, sweep_stale_partials, Output};
use super::saved::SavedModel;
use super::settings::InferenceArgs;
use crate::data::loader::Batches;
use crate::data::tokenize::Encoding;
use crate::error::{Error, Result};
use crate::train::report::Reporter;

/// Validated settings of `bertfit predict`.
#[derive(Debug, Clone)]
pub struct PredictArgs {
    pub run: InferenceArgs,
    pub data: PathBuf,
    pub output: PathBuf,
    pub text_column: String,
    pub text_pair_column: Option<String>,
    pub overwrite: bool,
}

/// What a prediction run did.
#[derive(Debug, Clone)]
pub struct PredictSummary {
    pub rows: usize,
    pub seconds: f64,
    pub output: PathBuf,
}

impl PredictSummary {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
}

/// A record batch waiting for its rows' logits.
struct Pending {
    batch: RecordBatch,
    /// Data row (1-based) of its first row.
    first_row: usize,
    /// `rows * num_outputs` logits, filled as model batches come back.
    logits: Vec<f32>,
    filled: usize,
}

impl Pending {
    fn holds(&self, row: usize) -> bool {
        row >= self.first_row && row < self.first_row + self.batch.num_rows()
    }
}

/// The two queues of one pass. Field order is drop order: the record-batch queue goes first, so a
/// loader blocked on sending into it wakes (and ends) before `batches` joins its thread.
struct Pass {
    records: Receiver<Pending>,
    batches: Batches,
}

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Predicts every row of `args.data` into `args.output`. Nothing is written unless the whole run
/// succeeds; the output replaces an existing file only with `overwrite`.
pub fn predict(args: &PredictArgs, reporter: &mut dyn Reporter) -> Result<PredictSummary> {
    let started = Instant::now();
    check_target(&args.output, args.overwrite)?;
    for stale in sweep_stale_partials(&args.output) {
        reporter.note(&format!("removed {}, left by a prediction that did not finish", stale.display()));
    }
    remove_partial_on_signal();
    let input = Input::open(&args.data, &args.text_column, args.text_pair_column.as_deref())?;
    let mut model = args.run.load_model(reporter)?;
    model.check_max_length(args.run.max_length, args.text_pair_column.is_some())?;
    let schema = output_schema(&input, &model)?;
    let mut output = Output::create(&args.output, schema.clone(), args.overwrite)?;

    let mut pass = start(args, &input, &model)?;
    let outputs = model.head.num_outputs();
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let (mut done, mut last_report) = (0usize, Instant::now());
    for loaded in pass.batches.by_ref() {
        let loaded = loaded?;
        let logits = model.logits(&loaded.batch, reporter)?;
        for (k, &row) in loaded.rows.iter().enumerate() {
            // The loader queues a record batch before any of its model batches: it is there.
            while pending.back().is_none_or(|p| p.first_row + p.batch.num_rows() <= row) {
                let next =
                    pass.records.recv().map_err(|_| Error::Runtime("the loader stopped early".into()))?;
                pending.push_back(next);
            }
            let p = pending.iter_mut().find(|p| p.holds(row)).ok_or_else(|| {
                Error::Runtime(format!("row {row} arrived after its record batch was written"))
            })?;
            let at = (row - p.first_row) * outputs;
            p.logits[at..at + outputs].copy_from_slice(&logits[k * outputs..(k + 1) * outputs]);
            p.filled += 1;
        }
        while pending.front().is_some_and(|p| p.filled == p.batch.num_rows()) {
            if let Some(p) = pending.pop_front() {
                done += p.batch.num_rows();
                output.write(&with_predictions(&schema, &model, p)?)?;
            }
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            reporter.note(&format!("predicted {done} rows ({rate:.1} rows/s)"));
        }
    }
    let Pass { records, batches } = pass;
    drop(records);
    batches.finish(false)?;
    if !pending.is_empty() {
        return Err(Error::Runtime(format!("{} record batch(es) were not fully predicted", pending.len())));
    }
    let rows = output.commit()?;
    reporter.finish()?;
    Ok(PredictSummary { rows, seconds: started.elapsed().as_secs_f64(), output: args.output.clone() })
}

/// The input's columns, then the head's; a name the input already uses is refused.
fn output_schema(input: &Input, model: &SavedModel) -> Result<SchemaRef> {
    let added = model.head.fields();
    for f in &added {
        if input.schema.field_with_name(f.name()).is_ok() {
            return Err(Error::data(
                &input.path,
                format!("already has a column '{}', which predict adds; rename it", f.name()),
            ));
        }
    }
    let fields: Vec<Field> = input.schema.fields().iter().map(|f| f.as_ref().clone()).chain(added).collect();
    Ok(Arc::new(Schema::new_with_metadata(fields, input.schema.metadata().clone())))
}

fn with_predictions(schema: &SchemaRef, model: &SavedModel, p: Pending) -> Result<RecordBatch> {
    let mut columns = p.batch.columns().to_vec();
    columns.extend(model.head.columns(&p.logits));
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Runtime(format!("cannot assemble the output rows from row {}: {e}", p.first_row)))
}

/// Starts the loader thread: record batches into one queue, model batches into the other.
fn start(args: &PredictArgs, input: &Input, model: &SavedModel) -> Result<Pass> {
    let settings = args.run.loader_settings(model.tokenizer.pad_token_id());
    // Two record batches queued at most: with the one being tokenized and the one being filled,
    // four record batches are held in all, whatever the file's size.
    let (records_tx, records) = sync_channel::<Pending>(2);
    let (input, tokenizer) = (input.clone(), model.tokenizer.clone());
    let (batch_size, outputs) = (args.run.batch_size.max(1), model.head.num_outputs());
    let batches = Batches::spawn("bertfit-predict", settings, None, move |sink| {
        let mut first_row = 1usize;
        for batch in input.batches()? {
            let batch = batch?;
            let n = batch.num_rows();
            if n == 0 {
                continue;
            }
            let texts = input.texts(&batch, &input.text, first_row)?;
            let pairs = match &input.text_pair {
                Some(c) => Some(input.texts(&batch, c, first_row)?),
                None => None,
            };
            let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let pair_refs: Option<Vec<&str>> = pairs.as_ref().map(|p| p.iter().map(String::as_str).collect());
            let encodings =
                tokenizer.encode_batch(&text_refs, pair_refs.as_deref(), sink.settings().max_length);
            let pending = Pending { batch, first_row, logits: vec![0.0; n * outputs], filled: 0 };
            records_tx.send(pending).map_err(|_| Error::Runtime("the writer stopped".into()))?;
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| Reverse(encodings[i].input_ids.len()));
            for chunk in order.chunks(batch_size) {
                let chunk_encodings: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
                sink.send(&chunk_encodings, None, chunk.iter().map(|&i| first_row + i).collect())?;
            }
            first_row += n;
        }
        Ok(())
    })?;
    Ok(Pass { records, batches })
}

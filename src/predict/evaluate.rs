//! `bertfit evaluate`: a saved classifier's loss and accuracy on labelled rows (the validation rows
//! of a file with a split column, or every row of a validation file), with HF Trainer's metric
//! names (`eval_loss`, `eval_accuracy` as a fraction, `eval_runtime`, `eval_samples`,
//! `eval_samples_per_second`).
//!
//! Labels are read through the model's own `id2label`: a cell naming one of its labels is that
//! class, otherwise an integer cell in `0..num_labels` is the class id itself (bertfit and HF save
//! integer-labelled models with names "0", "1", ... or "LABEL_0", ...); anything else is an error
//! naming file, row and column. Rows stream through a loader thread as in `predict`.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::head::ProblemType;
use super::settings::InferenceArgs;
use crate::data::dataset::{for_each_split_row, Columns, DataSource, Read, Split};
use crate::data::labels::Target;
use crate::data::pipeline::{Batches, Sink};
use crate::data::table::{for_each_row, Row, Wanted};
use crate::data::tokenize::{BertTokenizer, Encoding};
use crate::error::{Error, Result};
use crate::train::report::Reporter;
use crate::train::Evaluation;
use crate::weights::write_atomic;

/// Where the labelled rows are.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalData {
    /// The rows whose split column says val (validation, dev).
    SplitColumn(PathBuf),
    /// Every row of this file.
    File(PathBuf),
}

impl EvalData {
    pub fn path(&self) -> &Path {
        match self {
            EvalData::SplitColumn(p) | EvalData::File(p) => p,
        }
    }
}

/// Validated settings of `bertfit evaluate`.
#[derive(Debug, Clone)]
pub struct EvaluateArgs {
    pub run: InferenceArgs,
    pub data: EvalData,
    pub columns: Columns,
    /// Where eval_results.json is written, if anywhere.
    pub output_dir: Option<PathBuf>,
}

/// The model's classes, for reading label cells.
#[derive(Debug, Clone)]
pub struct ModelLabels {
    pub names: Vec<String>,
    ids: HashMap<String, i64>,
    /// config.json, named in errors.
    config: PathBuf,
}

impl ModelLabels {
    pub fn new(names: &[String], config: &Path) -> Self {
        let ids = names.iter().enumerate().map(|(i, n)| (n.clone(), i as i64)).collect();
        ModelLabels { names: names.to_vec(), ids, config: config.to_path_buf() }
    }

    /// The class id of a label cell: a label name first, else an integer class id.
    pub fn id(&self, cell: &str, path: &Path, row: usize, column: &str) -> Result<i64> {
        let v = cell.trim();
        if let Some(&id) = self.ids.get(v) {
            return Ok(id);
        }
        match v.parse::<i64>() {
            Ok(id) if (0..self.names.len() as i64).contains(&id) => Ok(id),
            _ => Err(Error::DataRow {
                path: path.into(),
                row,
                column: column.into(),
                msg: format!(
                    "label '{v}' is not one of the model's labels {:?} (id2label in {}) nor a class id 0..{}",
                    self.names,
                    self.config.display(),
                    self.names.len().saturating_sub(1)
                ),
            }),
        }
    }
}

/// Loss and accuracy of the model on the labelled rows; writes eval_results.json if asked.
pub fn evaluate(
    args: &EvaluateArgs,
    reporter: &mut dyn Reporter,
) -> Result<(Evaluation, Map<String, Value>)> {
    let model = args.run.load_model(reporter)?;
    if model.head.problem != ProblemType::SingleLabel {
        return Err(Error::usage(
            "--model",
            format!(
                "{}: evaluate measures single-label classifiers; this model's problem_type is {}",
                model.dir.display(),
                model.head.problem.name()
            ),
        ));
    }
    model.check_max_length(args.run.max_length, args.columns.text_pair.is_some())?;
    let labels = ModelLabels::new(&model.head.labels, &model.dir.join("config.json"));
    let started = Instant::now();
    let mut batches = start(args, model.tokenizer.clone(), labels, model.tokenizer.pad_token_id())?;
    let outputs = model.head.num_outputs();
    let mut results: Vec<(usize, Vec<f32>, i64)> = Vec::new(); // (row, logits, label)
    let mut loss_sum = 0.0;
    for loaded in batches.by_ref() {
        let loaded = loaded?;
        let logits = model.logits(&loaded.batch)?;
        let gold: Vec<i64> = match &loaded.batch.labels {
            Some(l) => Vec::<i64>::try_from(l)?,
            None => return Err(Error::Runtime("an evaluation batch without labels".into())),
        };
        for ((row, l), &y) in loaded.rows.iter().zip(logits.chunks_exact(outputs)).zip(&gold) {
            loss_sum += cross_entropy(l, y as usize);
            results.push((*row, l.to_vec(), y));
        }
    }
    batches.finish(false)?;
    if results.is_empty() {
        let msg = match &args.data {
            EvalData::SplitColumn(_) => format!("no validation rows (no row has {}=val)", args.columns.split),
            EvalData::File(_) => "no data rows".to_string(),
        };
        return Err(Error::data(args.data.path(), msg));
    }
    results.sort_unstable_by_key(|r| r.0);
    let n = results.len();
    let flat: Vec<f32> = results.iter().flat_map(|r| r.1.iter().copied()).collect();
    let gold: Vec<i64> = results.iter().map(|r| r.2).collect();
    let evaluation = Evaluation {
        split: Split::Validation,
        problem: crate::data::labels::ProblemType::SingleLabelClassification,
        loss: Some(loss_sum / n as f64),
        logits: tch::Tensor::from_slice(&flat).view([n as i64, outputs as i64]),
        labels: Some(tch::Tensor::from_slice(&gold)),
        rows: results.iter().map(|r| r.0).collect(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let metrics = metrics(&evaluation, &model.head.labels)?;
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let text = serde_json::to_string_pretty(&metrics).unwrap_or_default();
        write_atomic(&dir.join("eval_results.json"), text.as_bytes())?;
    }
    reporter.finish()?;
    Ok((evaluation, metrics))
}

/// HF Trainer's evaluation metrics, in its key order, then precision, recall and F1 (macro,
/// weighted, per class) and the confusion matrix, as scikit-learn computes them.
pub fn metrics(e: &Evaluation, names: &[String]) -> Result<Map<String, Value>> {
    let n = e.rows.len();
    let mut m = Map::new();
    m.insert("eval_accuracy".into(), json!(e.accuracy()));
    m.insert("eval_loss".into(), json!(e.loss));
    m.insert("eval_runtime".into(), json!(e.seconds));
    m.insert("eval_samples".into(), json!(n));
    m.insert("eval_samples_per_second".into(), json!(n as f64 / e.seconds.max(1e-9)));
    for (k, v) in e.metrics("eval", names)? {
        m.entry(k).or_insert(v);
    }
    Ok(m)
}

/// `***** eval metrics *****` as HF's `log_metrics` prints it.
pub fn render(metrics: &Map<String, Value>) -> String {
    let width = metrics.keys().map(String::len).max().unwrap_or(0);
    let mut s = String::from("***** eval metrics *****\n");
    for (k, v) in metrics {
        s.push_str(&format!("  {k:<width$} = {v}\n"));
    }
    s
}

/// -log softmax(logits)[label], in f64.
fn cross_entropy(logits: &[f32], label: usize) -> f64 {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    max + sum.ln() - logits.get(label).copied().unwrap_or(f32::NAN) as f64
}

/// Examples tokenized this many at a time and batched longest first within them.
const CHUNK: usize = 4096;

/// Collects rows into chunks, tokenizes each, and sends its batches longest first.
struct Chunker<'a> {
    sink: &'a Sink,
    tokenizer: &'a BertTokenizer,
    batch_size: usize,
    /// (text, pair, class id, data row)
    rows: Vec<(String, Option<String>, i64, usize)>,
}

impl Chunker<'_> {
    fn push(&mut self, r: Row, label: i64) -> Result<()> {
        self.rows.push((r.text, r.text_pair, label, r.row));
        if self.rows.len() == CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let rows = std::mem::take(&mut self.rows);
        if rows.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        // A pair column gives every row a second text (an empty cell is an empty text).
        let pairs: Option<Vec<&str>> = rows.iter().map(|r| r.1.as_deref()).collect();
        let encodings =
            self.tokenizer.encode_batch(&texts, pairs.as_deref(), self.sink.settings().max_length);
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| Reverse(encodings[i].input_ids.len()));
        for chunk in order.chunks(self.batch_size) {
            let e: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let labels: Vec<Target> = chunk.iter().map(|&i| Target::Class(rows[i].2)).collect();
            self.sink.send(&e, Some(&labels), chunk.iter().map(|&i| rows[i].3).collect())?;
        }
        Ok(())
    }
}

fn start(
    args: &EvaluateArgs,
    tokenizer: std::sync::Arc<BertTokenizer>,
    labels: ModelLabels,
    pad_id: i64,
) -> Result<Batches> {
    let settings = args.run.loader_settings(pad_id);
    let (data, columns, batch_size) = (args.data.clone(), args.columns.clone(), args.run.batch_size.max(1));
    Batches::spawn("bertfit-evaluate", settings, None, move |sink| {
        let mut out = Chunker { sink, tokenizer: &tokenizer, batch_size, rows: Vec::with_capacity(CHUNK) };
        let label_column = columns.label.clone();
        match &data {
            EvalData::SplitColumn(path) => {
                let source = DataSource::SplitColumn(path.clone());
                for_each_split_row(&source, &columns, &[Split::Validation], Read::Examples, |_, p, r| {
                    let id = labels.id(&r.label, p, r.row, &label_column)?;
                    out.push(r, id)
                })?;
            }
            EvalData::File(path) => {
                let wanted = Wanted {
                    text: Some(&columns.text),
                    text_pair: columns.text_pair.as_deref(),
                    label: Some(&columns.label),
                    split: None,
                };
                for_each_row(path, &wanted, |r| {
                    let id = labels.id(&r.label, path, r.row, &label_column)?;
                    out.push(r, id)
                })?;
            }
        }
        out.flush()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_by_name_then_by_id_and_unknown_ones_name_the_cell() {
        let m = ModelLabels::new(&["spam".into(), "ham".into()], Path::new("m/config.json"));
        let p = Path::new("d.csv");
        assert_eq!(m.id(" ham ", p, 1, "label").unwrap(), 1);
        assert_eq!(m.id("0", p, 1, "label").unwrap(), 0);
        let err = m.id("eggs", p, 7, "label").unwrap_err().to_string();
        assert!(err.contains("d.csv") && err.contains("row 7") && err.contains("'label'"), "{err}");
        assert!(err.contains("eggs") && err.contains("m/config.json"), "{err}");
        assert!(m.id("2", p, 1, "label").is_err());
    }

    #[test]
    fn cross_entropy_is_log_sum_exp_minus_the_label_logit() {
        let l = [1.0f32, 2.0, 3.0];
        let expected = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 2.0;
        assert!((cross_entropy(&l, 1) - expected).abs() < 1e-12);
    }
}

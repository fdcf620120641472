//! `bertfit evaluate`: a saved model's loss and metrics on labelled rows (the validation rows of
//! a file with a split column, or every row of a validation file), with HF Trainer's metric names
//! (`eval_loss`, `eval_runtime`, `eval_samples`, `eval_samples_per_second`) and the metrics
//! training's own evaluation reports for the model's `problem_type` (`train::Evaluation::metrics`):
//!
//! - single-label: `eval_accuracy` (a fraction), precision / recall / F1 and the confusion matrix;
//!   the loss is the mean cross-entropy.
//! - multi-label: `eval_accuracy` (subset accuracy), micro and macro precision / recall / F1,
//!   Hamming loss, per label; the loss is binary cross-entropy with logits, the mean over every
//!   (row, label) output, as torch's `BCEWithLogitsLoss()`.
//! - regression: MSE, RMSE, MAE, Pearson, Spearman, R^2; the loss is the mean squared error.
//!
//! Losses are computed in f64 from the fp32 logits. Labels are read through the model's own
//! `id2label`: a name naming one of its labels is that class, otherwise an integer in
//! `0..num_labels` is the class id itself (bertfit and HF save integer-labelled models with names
//! "0", "1", ... or "LABEL_0", ...). A multi-label cell holds any number of them in training's
//! syntaxes (`a|b` with `--label-separator`, `[0, 3]`, `['a', 'b']`, or empty for none); a
//! regression cell is a number. Anything else is an error naming file, row, column and the value.
//! Rows stream through a loader thread as in `predict`.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::settings::InferenceArgs;
use crate::data::batch::stack_targets;
use crate::data::dataset::{for_each_split_row, Columns, DataSource, Read, Split};
use crate::data::labels::{LabelFormat, Target};
use crate::data::loader::{Batches, Sink};
use crate::data::table::{for_each_row, Row, Wanted};
use crate::data::tokenize::{Encoding, Tokenizer};
use crate::error::{Error, Result};
use crate::model::config::ProblemType;
use crate::train::report::Reporter;
use crate::train::Evaluation;

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
    /// Replace the results a folder already holds (training's `--overwrite` rule).
    pub overwrite: bool,
    /// Separates the label names of a multi-label cell (training's `--label-separator`).
    pub label_separator: String,
}

/// The model's classes, for reading label cells.
#[derive(Debug, Clone)]
pub struct ModelLabels {
    pub names: Vec<String>,
    ids: HashMap<String, i64>,
    /// config.json, named in errors.
    config: PathBuf,
    /// How a cell is read: the model's problem type, and the multi-label separator.
    format: LabelFormat,
}

impl ModelLabels {
    /// A single-label classifier's labels (see [`ModelLabels::reading`] for the other heads).
    pub fn new(names: &[String], config: &Path) -> Self {
        let ids = names.iter().enumerate().map(|(i, n)| (n.clone(), i as i64)).collect();
        ModelLabels {
            names: names.to_vec(),
            ids,
            config: config.to_path_buf(),
            format: LabelFormat::default(),
        }
    }

    /// Cells read as training reads them for `problem`, multi-label names split by `separator`.
    pub fn reading(mut self, problem: ProblemType, separator: &str) -> Self {
        self.format = LabelFormat { problem, separator: separator.to_string(), ..LabelFormat::default() };
        self
    }

    /// One label cell as the loss takes it (training's `LabelMap::target`, through the model's
    /// labels): a class, the multi-hot row of a multi-label cell, or a regression value.
    pub fn target(&self, cell: &str, path: &Path, row: usize, column: &str) -> Result<Target> {
        let id = |name: &str| self.id(name, path, row, column);
        self.format.target(cell, self.names.len(), id, (path, row, column))
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

/// Loss and metrics of the model on the labelled rows; writes eval_results.json if asked.
pub fn evaluate(
    args: &EvaluateArgs,
    reporter: &mut dyn Reporter,
) -> Result<(Evaluation, Map<String, Value>)> {
    if let Some(dir) = &args.output_dir {
        check_output_dir(dir, args.overwrite)?;
    }
    let mut model = args.run.load_model(reporter)?;
    model.check_max_length(args.run.max_length, args.columns.text_pair.is_some())?;
    let problem = model.head.problem;
    if problem == ProblemType::MultiLabelClassification && args.label_separator.is_empty() {
        return Err(Error::usage("--label-separator", "must not be empty"));
    }
    let labels = ModelLabels::new(&model.head.labels, &model.dir.join("config.json"))
        .reading(problem, &args.label_separator);
    let started = Instant::now();
    let mut batches = start(args, model.tokenizer.clone(), labels, model.tokenizer.pad_token_id())?;
    let outputs = model.head.num_outputs();
    let mut results: Vec<(usize, Vec<f32>, Target)> = Vec::new(); // (row, logits, label)
    for loaded in batches.by_ref() {
        let loaded = loaded?;
        let logits = model.logits(&loaded.batch, reporter)?;
        let gold = match &loaded.batch.labels {
            Some(l) => batch_targets(l, problem, outputs)?,
            None => return Err(Error::Runtime("an evaluation batch without labels".into())),
        };
        for ((row, l), y) in loaded.rows.iter().zip(logits.chunks_exact(outputs)).zip(gold) {
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
    let logits = tch::Tensor::from_slice(&flat).view([n as i64, outputs as i64]);
    let labels = stack_targets(&results.iter().map(|r| r.2.clone()).collect::<Vec<_>>());
    let evaluation = Evaluation {
        split: Split::Validation,
        problem,
        loss: Some(mean_loss(&logits, &labels, problem)),
        logits,
        labels: Some(labels),
        rows: results.iter().map(|r| r.0).collect(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let metrics = metrics(&evaluation, &model.head.labels)?;
    if let Some(dir) = &args.output_dir {
        crate::output::Results::adding_to(dir).save("eval", &metrics)?;
    }
    reporter.finish()?;
    Ok((evaluation, metrics))
}

/// `--output-dir` follows training's rule: a folder holding anything of a run (a model, results,
/// logs, checkpoints) is replaced only with `--overwrite`, so an evaluation does not silently
/// replace a training run's eval_results.json (leaving its all_results.json disagreeing).
fn check_output_dir(dir: &Path, overwrite: bool) -> Result<()> {
    let previous = crate::output::previous_run_files(dir);
    if previous.is_empty() || overwrite {
        return Ok(());
    }
    let names: Vec<String> =
        previous.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    Err(Error::usage(
        "--output-dir",
        format!(
            "{} holds a previous run ({}); pass --overwrite to replace its eval_results.json",
            dir.display(),
            names.join(", ")
        ),
    ))
}

/// HF Trainer's evaluation metrics, in its key order (`eval_accuracy` only where the problem type
/// has one, as training writes it), then the problem type's metrics as training's evaluation
/// reports them: for a classifier precision, recall and F1 (macro, weighted, per class) and the
/// confusion matrix; for multi-label micro and macro figures and the Hamming loss; for regression
/// MSE, RMSE, MAE, Pearson, Spearman and R^2; all as scikit-learn and scipy compute them.
pub fn metrics(e: &Evaluation, names: &[String]) -> Result<Map<String, Value>> {
    let n = e.rows.len();
    let mut m = Map::new();
    if let Some(accuracy) = e.accuracy() {
        m.insert("eval_accuracy".into(), json!(accuracy));
    }
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

/// The head's loss (`model::loss`, no label smoothing) over every row at once, in f64 from the fp32
/// logits: the mean cross-entropy, the mean binary cross-entropy over every (row, label) output,
/// or the mean squared error.
fn mean_loss(logits: &tch::Tensor, labels: &tch::Tensor, problem: ProblemType) -> f64 {
    let logits = logits.to_kind(tch::Kind::Double);
    let labels =
        if labels.is_floating_point() { labels.to_kind(tch::Kind::Double) } else { labels.shallow_clone() };
    crate::model::loss(&logits, &labels, problem, 0.0, tch::Reduction::Mean).double_value(&[])
}

/// A batch's label tensor back as one target per row: (B,) class ids, (B, C) multi-hot rows or
/// (B,) values, as `data::batch` stacks them.
fn batch_targets(labels: &tch::Tensor, problem: ProblemType, outputs: usize) -> Result<Vec<Target>> {
    Ok(match problem {
        ProblemType::SingleLabelClassification => {
            Vec::<i64>::try_from(labels)?.into_iter().map(Target::Class).collect()
        }
        ProblemType::MultiLabelClassification => Vec::<f32>::try_from(&labels.flatten(0, -1))?
            .chunks_exact(outputs.max(1))
            .map(|r| Target::MultiHot(r.to_vec()))
            .collect(),
        ProblemType::Regression => Vec::<f32>::try_from(labels)?.into_iter().map(Target::Value).collect(),
    })
}

/// Examples tokenized this many at a time and batched longest first within them.
const CHUNK: usize = 4096;

/// Collects rows into chunks, tokenizes each, and sends its batches longest first.
struct Chunker<'a> {
    sink: &'a Sink,
    tokenizer: &'a Tokenizer,
    batch_size: usize,
    /// (text, pair, target, data row)
    rows: Vec<(String, Option<String>, Target, usize)>,
}

impl Chunker<'_> {
    fn push(&mut self, r: Row, label: Target) -> Result<()> {
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
            let labels: Vec<Target> = chunk.iter().map(|&i| rows[i].2.clone()).collect();
            self.sink.send(&e, Some(&labels), chunk.iter().map(|&i| rows[i].3).collect())?;
        }
        Ok(())
    }
}

fn start(
    args: &EvaluateArgs,
    tokenizer: std::sync::Arc<Tokenizer>,
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
                    let target = labels.target(&r.label, p, r.row, &label_column)?;
                    out.push(r, target)
                })?;
            }
            EvalData::File(path) => {
                let wanted = Wanted {
                    text: Some(&columns.text),
                    text_joined: &columns.text_joined,
                    delimiter: &columns.text_delimiter,
                    text_pair: columns.text_pair.as_deref(),
                    label: Some(&columns.label),
                    split: None,
                };
                for_each_row(path, &wanted, |r| {
                    let target = labels.target(&r.label, path, r.row, &label_column)?;
                    out.push(r, target)
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
    fn multi_label_and_regression_cells_are_read_as_training_reads_them() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let m = ModelLabels::new(&names, Path::new("m/config.json"))
            .reading(ProblemType::MultiLabelClassification, "|");
        let p = Path::new("d.csv");
        assert_eq!(m.target("c|a", p, 1, "tags").unwrap(), Target::MultiHot(vec![1.0, 0.0, 1.0]));
        assert_eq!(m.target("[1, 2]", p, 1, "tags").unwrap(), Target::MultiHot(vec![0.0, 1.0, 1.0]));
        assert_eq!(m.target("['b']", p, 1, "tags").unwrap(), Target::MultiHot(vec![0.0, 1.0, 0.0]));
        assert_eq!(m.target("", p, 1, "tags").unwrap(), Target::MultiHot(vec![0.0; 3]));
        let err = m.target("a|zz", p, 4, "tags").unwrap_err().to_string();
        assert!(err.contains("d.csv") && err.contains("row 4") && err.contains("'tags'"), "{err}");
        assert!(err.contains("zz") && err.contains("m/config.json"), "{err}");
        assert!(m.target("[3]", p, 1, "tags").is_err());
        let r = ModelLabels::new(&["LABEL_0".into()], Path::new("c")).reading(ProblemType::Regression, "|");
        assert_eq!(r.target(" -1.5 ", p, 1, "score").unwrap(), Target::Value(-1.5));
        let err = r.target("high", p, 9, "score").unwrap_err().to_string();
        assert!(err.contains("row 9") && err.contains("'score'") && err.contains("'high'"), "{err}");
        assert!(r.target("inf", p, 1, "score").is_err());
    }

    #[test]
    fn the_loss_is_the_heads_in_f64() {
        let logits = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0]).view([2, 3]);
        let classes = tch::Tensor::from_slice(&[1i64, 0]);
        let expected = ((1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 2.0 + 3f64.ln()) / 2.0;
        let ce = mean_loss(&logits, &classes, ProblemType::SingleLabelClassification);
        assert!((ce - expected).abs() < 1e-12, "{ce} vs {expected}");
        // -[y log s(x) + (1 - y) log(1 - s(x))] for x = 2, y = 1 and x = -30, y = 1 (no overflow).
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let expected = (-(s(2.0).ln()) + 30.0 + (-30f64).exp().ln_1p()) / 2.0;
        let bce = mean_loss(
            &tch::Tensor::from_slice(&[2.0f32, -30.0]).view([1, 2]),
            &tch::Tensor::from_slice(&[1.0f32, 1.0]).view([1, 2]),
            ProblemType::MultiLabelClassification,
        );
        assert!((bce - expected).abs() < 1e-12, "{bce} vs {expected}");
        let values = tch::Tensor::from_slice(&[1.5f32, 0.0]).view([2, 1]);
        let mse = mean_loss(&values, &tch::Tensor::from_slice(&[-0.5f32, 1.0]), ProblemType::Regression);
        assert_eq!(mse, 2.5);
    }
}

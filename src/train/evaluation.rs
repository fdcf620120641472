//! What an evaluation pass found: the logits and labels of every row, the loss, and the metrics
//! users report for the run's problem type (computed by `crate::metrics`, equal to scikit-learn's).
use std::time::Instant;

use serde_json::{json, Map, Value};
use tch::{Device, Kind, Reduction, Tensor};

use super::precision::autocast;
use super::Trainer;
use crate::data::dataset::Split;
use crate::data::labels::ProblemType;
use crate::error::{Error, Result};
use crate::metrics::{classification_metrics, multilabel_metrics, regression_metrics};
use crate::model::loss;

/// One pass of the model over a split in eval mode.
#[derive(Debug)]
pub struct Evaluation {
    pub split: Split,
    pub problem: ProblemType,
    /// Mean loss per row (`None` without labels or rows).
    pub loss: Option<f64>,
    /// (N, C) float logits on the CPU, rows in file order.
    pub logits: Tensor,
    /// (N,) class ids, (N, C) multi-hot rows or (N,) values, when the split has labels.
    pub labels: Option<Tensor>,
    /// Data rows (1-based) of the logits.
    pub rows: Vec<usize>,
    pub seconds: f64,
}

fn to_vec<T>(t: &Tensor) -> Vec<T>
where
    Vec<T>: TryFrom<Tensor>,
{
    Vec::<T>::try_from(t.flatten(0, -1)).unwrap_or_default()
}

impl Evaluation {
    /// Predicted class ids (single-label): the argmax of each row.
    pub fn predicted_classes(&self) -> Vec<i64> {
        to_vec(&self.logits.argmax(-1, false))
    }

    /// Predicted label sets (multi-label): 1 where the logit is above 0 (sigmoid above 0.5).
    pub fn predicted_sets(&self) -> Vec<u8> {
        to_vec::<u8>(&self.logits.gt(0.0).to_kind(Kind::Uint8))
    }

    /// Accuracy as a fraction (HF's `eval_accuracy`): exact match of the class, or of the whole
    /// label set for multi-label (subset accuracy); `None` for regression, without labels or rows.
    pub fn accuracy(&self) -> Option<f64> {
        self.correct().map(|(c, n)| c as f64 / n as f64)
    }

    /// Accuracy in percent as the seed script computes it (`100 * correct / total`, in that order:
    /// `100 * (correct / total)` can differ in the last bit).
    pub fn accuracy_percent(&self) -> Option<f64> {
        self.correct().map(|(c, n)| 100.0 * c as f64 / n as f64)
    }

    /// Rows predicted right, and rows.
    fn correct(&self) -> Option<(i64, usize)> {
        let labels = self.labels.as_ref()?;
        let n = self.rows.len();
        if n == 0 {
            return None;
        }
        let correct = match self.problem {
            ProblemType::SingleLabelClassification => {
                self.logits.argmax(-1, false).eq_tensor(labels).sum(Kind::Int64).int64_value(&[])
            }
            ProblemType::MultiLabelClassification => {
                let same = self.logits.gt(0.0).eq_tensor(&labels.gt(0.5));
                same.all_dim(-1, false).sum(Kind::Int64).int64_value(&[])
            }
            ProblemType::Regression => return None,
        };
        Some((correct, n))
    }

    /// Every metric for the problem type, keyed `<prefix>_<name>` as HF Trainer keys them
    /// (`eval_accuracy`, `eval_f1_macro`, ...), plus the loss. Empty without labels or rows.
    pub fn metrics(&self, prefix: &str, names: &[String]) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        out.insert(format!("{prefix}_loss"), json!(self.loss));
        let Some(labels) = self.labels.as_ref().filter(|_| !self.rows.is_empty()) else { return Ok(out) };
        let value = match self.problem {
            ProblemType::SingleLabelClassification => {
                let p: Vec<usize> = self.predicted_classes().iter().map(|&x| x as usize).collect();
                let l: Vec<usize> = to_vec::<i64>(labels).iter().map(|&x| x.max(0) as usize).collect();
                serde_json::to_value(classification_metrics(&p, &l, names.len(), Some(names))?)
            }
            ProblemType::MultiLabelClassification => {
                let t = to_vec::<u8>(&labels.gt(0.5).to_kind(Kind::Uint8));
                serde_json::to_value(multilabel_metrics(
                    &self.predicted_sets(),
                    &t,
                    names.len(),
                    Some(names),
                )?)
            }
            ProblemType::Regression => {
                let p = to_vec::<f64>(&self.logits.squeeze_dim(-1).to_kind(Kind::Double));
                let t = to_vec::<f64>(&labels.to_kind(Kind::Double));
                serde_json::to_value(regression_metrics(&p, &t)?)
            }
        };
        if let Ok(Value::Object(m)) = value {
            for (k, v) in m {
                if k != "warnings" {
                    out.insert(format!("{prefix}_{k}"), v);
                }
            }
        }
        Ok(out)
    }

    /// A readable report for the end of a run (sklearn's classification_report for classes).
    pub fn summary(&self, names: &[String]) -> Result<String> {
        let Some(labels) = self.labels.as_ref().filter(|_| !self.rows.is_empty()) else {
            return Ok(String::new());
        };
        Ok(match self.problem {
            ProblemType::SingleLabelClassification => {
                let p: Vec<usize> = self.predicted_classes().iter().map(|&x| x as usize).collect();
                let l: Vec<usize> = to_vec::<i64>(labels).iter().map(|&x| x.max(0) as usize).collect();
                classification_metrics(&p, &l, names.len(), Some(names))?.to_string()
            }
            ProblemType::MultiLabelClassification => {
                let t = to_vec::<u8>(&labels.gt(0.5).to_kind(Kind::Uint8));
                let m = multilabel_metrics(&self.predicted_sets(), &t, names.len(), Some(names))?;
                format!(
                    "subset accuracy {:.4}, micro F1 {:.4}, macro F1 {:.4}, hamming loss {:.4}",
                    m.subset_accuracy, m.f1_micro, m.f1_macro, m.hamming_loss
                )
            }
            ProblemType::Regression => {
                let p = to_vec::<f64>(&self.logits.squeeze_dim(-1).to_kind(Kind::Double));
                let t = to_vec::<f64>(&labels.to_kind(Kind::Double));
                let m = regression_metrics(&p, &t)?;
                format!(
                    "mse {:.4}, rmse {:.4}, mae {:.4}, pearson {:?}, spearman {:?}",
                    m.mse, m.rmse, m.mae, m.pearson, m.spearman
                )
            }
        })
    }

    /// Mean squared error (regression's headline figure).
    pub fn mse(&self) -> Option<f64> {
        let labels = self.labels.as_ref()?;
        if self.problem != ProblemType::Regression || self.rows.is_empty() {
            return None;
        }
        // The head's regression loss, in f64.
        let (logits, labels) = (self.logits.to_kind(Kind::Double), labels.to_kind(Kind::Double));
        Some(loss(&logits, &labels, ProblemType::Regression, 0.0, tch::Reduction::Mean).double_value(&[]))
    }
}

impl Trainer<'_> {
    /// The model in eval mode (no dropout, no gradients) over `split` in file order.
    pub fn evaluate(&mut self, split: Split) -> Result<Evaluation> {
        let started = Instant::now();
        let mut batches = self.data.eval_pass(split, &mut self.rng)?;
        let labelled = self.data.labelled(split);
        let problem = self.args.label_format.problem;
        let (mut logits_all, mut labels_all, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        let mut loss_sum = 0.0;
        tch::no_grad(|| -> Result<()> {
            for loaded in batches.by_ref() {
                let loaded = loaded?;
                let batch = loaded.batch.to_device(self.args.device);
                // HF evaluates under the same autocast as it trains.
                let _autocast = autocast(self.args.device, self.args.recipe.precision)?;
                let layout = self.layouts.for_batch(&loaded.batch.attention_mask);
                let logits = self.model.forward_t(&batch.input_ids, &batch.token_type_ids, &layout, false);
                if let Some(fallback) = self.layouts.fallback(&layout) {
                    self.reporter.note(&fallback.to_string());
                }
                if let Some(l) = &batch.labels {
                    // HF evaluates with the training loss, label smoothing included.
                    let smoothing = self.args.recipe.label_smoothing;
                    let mean = loss(&logits, l, problem, smoothing, Reduction::Mean).double_value(&[]);
                    loss_sum += mean * loaded.rows.len() as f64;
                    labels_all.push(l.to_device(Device::Cpu));
                }
                logits_all.push(logits.to_device(Device::Cpu).to_kind(tch::Kind::Float));
                rows.extend(loaded.rows);
            }
            Ok(())
        })?;
        batches.finish(false)?;
        let expected = self.data.len(split);
        if rows.len() != expected {
            return Err(Error::Runtime(format!(
                "the {} pass saw {} of {expected} rows",
                split.name(),
                rows.len()
            )));
        }
        let width = self.config.num_labels();
        let logits = if logits_all.is_empty() {
            tch::Tensor::zeros([0, width], (tch::Kind::Float, Device::Cpu))
        } else {
            tch::Tensor::cat(&logits_all, 0)
        };
        let n = rows.len();
        Ok(Evaluation {
            split,
            problem,
            loss: (labelled && n > 0).then(|| loss_sum / n as f64),
            logits,
            labels: (labelled && !labels_all.is_empty()).then(|| tch::Tensor::cat(&labels_all, 0)),
            rows,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

//! What a saved classifier's logits mean, from its config.json (`problem_type`, `id2label`), and
//! the output columns they become: pure functions of the logits, so they are unit-tested here.
//!
//! - single_label_classification: `predicted_label` (the id2label name of the argmax) and one
//!   `prob_<label>` per class (softmax), as transformers' text-classification pipeline scores it.
//! - multi_label_classification: `score_<label>` (sigmoid) per label and `predicted_labels`, the
//!   labels scoring above 0.5 joined by `|` (empty when none does).
//! - regression: `predicted_value`, the raw output.
//!
//! Without `problem_type`, a model with one output is a regression and any other a single-label
//! classifier: what HF's `BertForSequenceClassification.forward` assumes when it computes a loss.
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, StringArray};
use arrow_schema::{DataType, Field};

use crate::error::{Error, Result};
use crate::model::config::ProblemType;
use crate::model::BertConfig;

/// The model's outputs: what they are and what each is called.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub problem: ProblemType,
    /// Label names in id order (`LABEL_i`, as HF names them, when config.json has no id2label).
    pub labels: Vec<String>,
}

impl Head {
    /// From a model's config; `path` (its config.json) names it in errors.
    pub fn from_config(cfg: &BertConfig, path: &Path) -> Result<Head> {
        let labels = cfg
            .labels()
            .map_err(|msg| Error::config(path, msg))?
            .unwrap_or_else(|| (0..cfg.num_labels()).map(|i| format!("LABEL_{i}")).collect());
        let problem = match cfg.problem_type.as_deref() {
            Some(name) => ProblemType::from_hf_name(name).ok_or_else(|| {
                Error::config(
                    path,
                    format!(
                        "key 'problem_type': '{name}' is not single_label_classification, \
                         multi_label_classification or regression"
                    ),
                )
            })?,
            None if labels.len() == 1 => ProblemType::Regression,
            None => ProblemType::SingleLabelClassification,
        };
        if problem == ProblemType::Regression && labels.len() != 1 {
            return Err(Error::config(
                path,
                format!("a regression model with {} outputs: bertfit predicts one value", labels.len()),
            ));
        }
        if problem != ProblemType::Regression && labels.is_empty() {
            return Err(Error::config(path, "key 'id2label' is empty: the model has no classes"));
        }
        Ok(Head { problem, labels })
    }

    pub fn num_outputs(&self) -> usize {
        self.labels.len()
    }

    /// The columns `columns` makes, in order.
    pub fn fields(&self) -> Vec<Field> {
        let per_label = |prefix: &str| -> Vec<Field> {
            self.labels.iter().map(|l| Field::new(format!("{prefix}{l}"), DataType::Float32, false)).collect()
        };
        match self.problem {
            ProblemType::SingleLabelClassification => {
                let mut f = vec![Field::new("predicted_label", DataType::Utf8, false)];
                f.extend(per_label("prob_"));
                f
            }
            ProblemType::MultiLabelClassification => {
                let mut f = vec![Field::new("predicted_labels", DataType::Utf8, false)];
                f.extend(per_label("score_"));
                f
            }
            ProblemType::Regression => vec![Field::new("predicted_value", DataType::Float32, false)],
        }
    }

    /// The output columns of `rows` examples from their logits (`rows * num_outputs` values, row
    /// by row).
    pub fn columns(&self, logits: &[f32]) -> Vec<ArrayRef> {
        let c = self.num_outputs();
        let rows: Vec<&[f32]> = logits.chunks_exact(c.max(1)).collect();
        let per_label = |scores: &[Vec<f32>]| -> Vec<ArrayRef> {
            (0..c)
                .map(|j| Arc::new(Float32Array::from_iter_values(scores.iter().map(|s| s[j]))) as ArrayRef)
                .collect()
        };
        match self.problem {
            ProblemType::SingleLabelClassification => {
                let probs: Vec<Vec<f32>> = rows.iter().map(|r| softmax(r)).collect();
                let names = rows.iter().map(|r| self.labels[argmax(r)].as_str());
                let mut out: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(names))];
                out.extend(per_label(&probs));
                out
            }
            ProblemType::MultiLabelClassification => {
                let scores: Vec<Vec<f32>> =
                    rows.iter().map(|r| r.iter().map(|&x| sigmoid(x)).collect()).collect();
                let names = scores.iter().map(|s| {
                    let chosen: Vec<&str> = s
                        .iter()
                        .zip(&self.labels)
                        .filter(|(&p, _)| p > 0.5)
                        .map(|(_, l)| l.as_str())
                        .collect();
                    chosen.join("|")
                });
                let mut out: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(names))];
                out.extend(per_label(&scores));
                out
            }
            ProblemType::Regression => {
                vec![Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r[0])))]
            }
        }
    }
}

/// Index of the largest value; the first one on a tie, as torch.argmax.
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Softmax computed in f64 (shifted by the maximum), rounded to f32.
pub fn softmax(xs: &[f32]) -> Vec<f32> {
    let max = xs.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let exps: Vec<f64> = xs.iter().map(|&x| (x as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

pub fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + (-(x as f64)).exp())) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn head(problem: ProblemType, labels: &[&str]) -> Head {
        Head { problem, labels: labels.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn softmax_and_argmax_match_torch_on_ties_and_large_logits() {
        let p = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((p[0] - 0.5).abs() < 1e-7 && (p[1] - 0.5).abs() < 1e-7 && p[2] == 0.0, "{p:?}");
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        let p = softmax(&[0.0, 2.0_f32.ln()]);
        assert!((p[1] - 2.0 / 3.0).abs() < 1e-7);
    }

    #[test]
    fn single_label_columns_name_the_argmax_and_sum_to_one() {
        let h = head(ProblemType::SingleLabelClassification, &["neg", "pos"]);
        let names: Vec<String> = h.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["predicted_label", "prob_neg", "prob_pos"]);
        let cols = h.columns(&[0.0, 1.0, 2.0, -1.0]);
        let labels = cols[0].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((labels.value(0), labels.value(1)), ("pos", "neg"));
        let p0 = cols[1].as_any().downcast_ref::<Float32Array>().unwrap();
        let p1 = cols[2].as_any().downcast_ref::<Float32Array>().unwrap();
        assert!((p0.value(0) + p1.value(0) - 1.0).abs() < 1e-6);
        assert!(p1.value(0) > 0.7 && p0.value(1) > 0.9);
    }

    #[test]
    fn multi_label_joins_labels_above_one_half() {
        let h = head(ProblemType::MultiLabelClassification, &["a", "b", "c"]);
        let cols = h.columns(&[2.0, -2.0, 0.5, -1.0, -1.0, -1.0]);
        let chosen = cols[0].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((chosen.value(0), chosen.value(1)), ("a|c", ""));
        assert_eq!(cols.len(), 4);
        assert_eq!(h.fields()[1].name(), "score_a");
    }

    #[test]
    fn problem_type_defaults_as_hf_forward_does() {
        let mut cfg = BertConfig::default();
        cfg.set_labels(&["only".to_string()]);
        let h = Head::from_config(&cfg, Path::new("m/config.json")).unwrap();
        assert_eq!(h.problem, ProblemType::Regression);
        assert_eq!(h.columns(&[0.25, -3.0])[0].len(), 2);
        cfg.set_labels(&["x".to_string(), "y".to_string()]);
        assert_eq!(
            Head::from_config(&cfg, Path::new("c")).unwrap().problem,
            ProblemType::SingleLabelClassification
        );
        cfg.problem_type = Some("ranking".into());
        let err = Head::from_config(&cfg, Path::new("m/config.json")).unwrap_err().to_string();
        assert!(err.contains("m/config.json") && err.contains("ranking"), "{err}");
        let plain = BertConfig::default(); // no id2label: HF's two LABEL_i classes
        assert_eq!(Head::from_config(&plain, Path::new("c")).unwrap().labels, ["LABEL_0", "LABEL_1"]);
    }
}

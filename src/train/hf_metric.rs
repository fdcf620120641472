//! The metric run_classification.py computes (`evaluate.load(metric_name)` or the problem type's
//! default: accuracy, multi-label F1, MSE), with `evaluate`'s defaults, keyed as HF's Trainer keys
//! it (`eval_accuracy`, `eval_f1`, ...). Added to bertfit's own metric keys, never in place of them.
use serde_json::{json, Map, Value};
use tch::Kind;

use super::Evaluation;
use crate::data::labels::ProblemType;
use crate::error::{Error, Result};
use crate::metrics::MetricName;

/// run_classification.py's metric when `--metric_name` is not given.
pub fn default_metric(problem: ProblemType) -> MetricName {
    match problem {
        ProblemType::Regression => MetricName::Mse,
        ProblemType::MultiLabelClassification => MetricName::F1,
        ProblemType::SingleLabelClassification => MetricName::Accuracy,
    }
}

fn name(m: MetricName) -> &'static str {
    match m {
        MetricName::Accuracy => "accuracy",
        MetricName::F1 => "f1",
        MetricName::Precision => "precision",
        MetricName::Recall => "recall",
        MetricName::Mse => "mse",
    }
}

/// Before training: a binary-averaged metric (`--metric_name` f1, precision or recall, as
/// `evaluate` averages them by default) on validation rows holding a class id besides 0 and 1,
/// where scikit-learn raises at the first evaluation (in HF, after the training): refused now.
pub fn check_binary_metric(
    metric: Option<MetricName>,
    problem: ProblemType,
    validation_classes: Option<&std::collections::BTreeSet<i64>>,
) -> Result<()> {
    let Some(m @ (MetricName::F1 | MetricName::Precision | MetricName::Recall)) = metric else {
        return Ok(());
    };
    let Some(classes) = validation_classes.filter(|_| problem == ProblemType::SingleLabelClassification)
    else {
        return Ok(());
    };
    if classes.iter().all(|c| (0..=1).contains(c)) {
        return Ok(());
    }
    Err(Error::usage(
        "--metric_name",
        format!(
            "{} averages as binary (evaluate's default, pos_label 1), but the validation rows hold class \
             ids {classes:?}: scikit-learn would raise \"Target is multiclass but average='binary'\" at \
             the first evaluation (run_classification.py fails there, after training); use --metric_name \
             accuracy",
            name(m)
        ),
    ))
}

impl Evaluation {
    /// `<prefix>_<metric>` (and `<prefix>_combined_score` when the metric gives several values;
    /// none of the five does). Empty without labels or rows.
    pub fn hf_metric(&self, prefix: &str, metric: Option<MetricName>) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        let Some(labels) = self.labels.as_ref().filter(|_| !self.rows.is_empty()) else { return Ok(out) };
        let metric = metric.unwrap_or_else(|| default_metric(self.problem));
        let refuse = |why: &str| {
            Error::usage("--metric_name", format!("{} on {}: {why}", name(metric), self.problem.hf_name()))
        };
        let value = match (self.problem, metric) {
            (ProblemType::Regression, MetricName::Mse) => {
                let p = Vec::<f64>::try_from(self.logits.flatten(0, -1).to_kind(Kind::Double))?;
                let t = Vec::<f64>::try_from(labels.flatten(0, -1).to_kind(Kind::Double))?;
                crate::metrics::regression_metrics(&p, &t)?.mse
            }
            (ProblemType::Regression, _) => return Err(refuse("continuous targets are not classes")),
            (_, MetricName::Mse) => return Err(refuse("mse needs regression targets")),
            (ProblemType::SingleLabelClassification, m) => self.binary_score(m).map_err(|w| refuse(&w))?,
            (ProblemType::MultiLabelClassification, m) => self.micro_score(m),
        };
        let values = [(name(metric), value)];
        for (k, v) in values {
            out.insert(format!("{prefix}_{k}"), json!(v));
        }
        if values.len() > 1 {
            let mean = values.iter().map(|(_, v)| v).sum::<f64>() / values.len() as f64;
            out.insert(format!("{prefix}_combined_score"), json!(mean));
        }
        Ok(out)
    }

    /// Single-label: accuracy, or precision / recall / F1 with sklearn's `average="binary"`,
    /// `pos_label=1` (more than two classes is sklearn's ValueError).
    fn binary_score(&self, metric: MetricName) -> std::result::Result<f64, String> {
        let (Some(labels), Some(accuracy)) = (self.labels.as_ref(), self.accuracy()) else {
            return Err("no labels".into());
        };
        if metric == MetricName::Accuracy {
            return Ok(accuracy);
        }
        let p = Vec::<i64>::try_from(self.logits.argmax(-1, false)).map_err(|e| e.to_string())?;
        let t =
            Vec::<i64>::try_from(labels.flatten(0, -1).to_kind(Kind::Int64)).map_err(|e| e.to_string())?;
        if p.iter().chain(&t).any(|&c| !(0..=1).contains(&c)) {
            return Err("Target is multiclass but average='binary'. Please choose another average setting, \
                        one of [None, 'micro', 'macro', 'weighted']."
                .into());
        }
        Ok(binary(&p, &t, metric))
    }

    /// Multi-label: the script passes `average="micro"` over the multi-hot rows; accuracy is the
    /// subset accuracy.
    fn micro_score(&self, metric: MetricName) -> f64 {
        if metric == MetricName::Accuracy {
            return self.accuracy().unwrap_or(0.0);
        }
        let p = self.predicted_sets();
        let t: Vec<u8> = self
            .labels
            .as_ref()
            .and_then(|l| Vec::<u8>::try_from(l.gt(0.5).to_kind(Kind::Uint8).flatten(0, -1)).ok())
            .unwrap_or_default();
        let (p, t): (Vec<i64>, Vec<i64>) =
            (p.iter().map(|&x| x as i64).collect(), t.iter().map(|&x| x as i64).collect());
        binary(&p, &t, metric)
    }
}

/// Precision, recall or F1 of the positive class 1 over paired 0/1 values (0.0 where sklearn
/// divides by zero).
fn binary(p: &[i64], t: &[i64], metric: MetricName) -> f64 {
    let tp = p.iter().zip(t).filter(|(&a, &b)| a == 1 && b == 1).count() as f64;
    let predicted = p.iter().filter(|&&a| a == 1).count() as f64;
    let actual = t.iter().filter(|&&b| b == 1).count() as f64;
    let div = |n: f64, d: f64| if d == 0.0 { 0.0 } else { n / d };
    match metric {
        MetricName::Precision => div(tp, predicted),
        MetricName::Recall => div(tp, actual),
        _ => div(2.0 * tp, predicted + actual),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_metric_on_more_than_two_classes_is_refused_before_training() {
        let single = ProblemType::SingleLabelClassification;
        let six: std::collections::BTreeSet<i64> = (0..6).collect();
        let two: std::collections::BTreeSet<i64> = [0, 1].into();
        let e = check_binary_metric(Some(MetricName::F1), single, Some(&six)).unwrap_err().to_string();
        assert!(
            e.starts_with("--metric_name: f1 averages as binary") && e.contains("{0, 1, 2, 3, 4, 5}"),
            "{e}"
        );
        assert!(check_binary_metric(Some(MetricName::Recall), single, Some(&two)).is_ok());
        assert!(check_binary_metric(Some(MetricName::Accuracy), single, Some(&six)).is_ok());
        assert!(check_binary_metric(None, single, Some(&six)).is_ok());
        let multi = ProblemType::MultiLabelClassification;
        assert!(check_binary_metric(Some(MetricName::F1), multi, Some(&six)).is_ok(), "micro-averaged");
        assert!(check_binary_metric(Some(MetricName::F1), single, None).is_ok(), "streamed: not known");
    }

    #[test]
    fn binary_scores_as_sklearn() {
        // sklearn: precision_score([1,0,1,1], [1,1,0,1]) = 2/3, recall 2/3, f1 2/3.
        let (t, p) = ([1, 0, 1, 1], [1, 1, 0, 1]);
        assert_eq!(binary(&p, &t, MetricName::Precision), 2.0 / 3.0);
        assert_eq!(binary(&p, &t, MetricName::Recall), 2.0 / 3.0);
        assert_eq!(binary(&[0, 0], &[1, 0], MetricName::Precision), 0.0);
        assert_eq!(binary(&[1, 0], &[1, 1], MetricName::F1), 2.0 / 3.0);
    }
}

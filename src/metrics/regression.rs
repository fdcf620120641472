//! Regression metrics, as sklearn's `mean_squared_error`, `root_mean_squared_error`,
//! `mean_absolute_error`, `r2_score` and scipy's `pearsonr`, `spearmanr` give them.
use serde::Serialize;

use super::check_lengths;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionMetrics {
    pub mse: f64,
    pub rmse: f64,
    pub mae: f64,
    /// Pearson's r; `None` (JSON null) where scipy gives NaN or refuses: fewer than 2 examples or
    /// constant predictions or targets (a model that predicts one value has no correlation).
    pub pearson: Option<f64>,
    /// Spearman's rho (Pearson's r of the ranks, ties given their average rank); `None` as `pearson`.
    pub spearman: Option<f64>,
    /// Coefficient of determination; `None` with fewer than 2 examples (sklearn: NaN). Constant
    /// targets give 1.0 for a perfect fit and 0.0 otherwise, as sklearn's `force_finite=True`.
    pub r2: Option<f64>,
    /// Number of examples scored.
    pub support: u64,
}

/// Scores `predictions` against `targets`. Refuses empty or unequal inputs and non-finite values
/// (a NaN prediction means the run diverged; no figure computed from it means anything).
pub fn regression_metrics(predictions: &[f64], targets: &[f64]) -> Result<RegressionMetrics> {
    check_lengths("regression", predictions.len(), targets.len())?;
    for (which, values) in [("prediction", predictions), ("target", targets)] {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Runtime(format!("metrics: {which} of example {i} is {}", values[i])));
        }
    }
    let n = predictions.len() as f64;
    let mse = predictions.iter().zip(targets).map(|(p, t)| (t - p) * (t - p)).sum::<f64>() / n;
    let mae = predictions.iter().zip(targets).map(|(p, t)| (t - p).abs()).sum::<f64>() / n;
    Ok(RegressionMetrics {
        mse,
        rmse: mse.sqrt(),
        mae,
        pearson: pearson(predictions, targets),
        spearman: pearson(&average_ranks(predictions), &average_ranks(targets)),
        r2: r2(predictions, targets),
        support: predictions.len() as u64,
    })
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// scipy's `pearsonr` statistic: centred dot product over the product of norms, clipped to
/// [-1, 1] against rounding. Undefined for constant input (scipy warns and returns NaN).
fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let constant = |v: &[f64]| v.iter().all(|&a| a == v[0]);
    if x.len() < 2 || constant(x) || constant(y) {
        return None;
    }
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    // One square root of the product keeps r exactly 1 for identical series (the product of two
    // roots rounds twice); the two roots are the fallback where the product over- or underflows.
    let den = match (sxx * syy).sqrt() {
        d if d.is_finite() && d > 0.0 => d,
        _ => sxx.sqrt() * syy.sqrt(),
    };
    Some((sxy / den).clamp(-1.0, 1.0))
}

/// 1-based ranks, tied values sharing the mean of their ranks: `scipy.stats.rankdata(method="average")`.
fn average_ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    // Values are finite (checked by the caller), so total_cmp orders them as `<` does.
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut ranks = vec![0.0; xs.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && xs[order[end]] == xs[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean is (start + 1 + end) / 2.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// sklearn's `r2_score` with `force_finite=True`.
fn r2(predictions: &[f64], targets: &[f64]) -> Option<f64> {
    if targets.len() < 2 {
        return None;
    }
    let mt = mean(targets);
    let ss_res: f64 = predictions.iter().zip(targets).map(|(p, t)| (t - p) * (t - p)).sum();
    let ss_tot: f64 = targets.iter().map(|t| (t - mt) * (t - mt)).sum();
    Some(match (ss_res == 0.0, ss_tot == 0.0) {
        (true, _) => 1.0,
        (false, true) => 0.0,
        (false, false) => 1.0 - ss_res / ss_tot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_get_their_average_rank() {
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0, 2.0, 3.0]), vec![4.0, 1.0, 4.0, 2.0, 4.0]);
        // -0.0 == 0.0, as scipy's comparison has it.
        assert_eq!(average_ranks(&[0.0, -0.0, -1.0]), vec![2.5, 2.5, 1.0]);
    }

    #[test]
    fn scores_a_small_case() {
        let m = regression_metrics(&[1.0, 2.0, 3.0], &[1.0, 2.0, 5.0]).unwrap();
        assert_eq!(m.mse, 4.0 / 3.0);
        assert_eq!(m.mae, 2.0 / 3.0);
        assert_eq!(m.spearman, Some(1.0));
        // Targets' mean 8/3, total sum of squares 78/9, residual sum 4.
        assert!((m.r2.unwrap() - (1.0 - 36.0 / 78.0)).abs() < 1e-15);
    }

    #[test]
    fn undefined_figures_are_none() {
        let m = regression_metrics(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((m.pearson, m.spearman), (None, None));
        assert_eq!(m.r2, Some(0.0));
        let one = regression_metrics(&[2.0], &[1.0]).unwrap();
        assert_eq!((one.pearson, one.r2), (None, None));
        assert_eq!(one.mse, 1.0);
    }

    #[test]
    fn refuses_bad_input_without_panicking() {
        assert!(regression_metrics(&[], &[]).is_err());
        assert!(regression_metrics(&[1.0], &[1.0, 2.0]).is_err());
        let err = regression_metrics(&[1.0, f64::NAN], &[1.0, 2.0]).unwrap_err().to_string();
        assert!(err.contains("prediction of example 1 is NaN"), "{err}");
    }
}

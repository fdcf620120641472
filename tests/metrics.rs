//! bertfit's metrics equal scikit-learn's (and scipy's Pearson / Spearman) on fixed predictions,
//! field by field within 1e-12, computed in Python by `scripts/parity/metrics_reference.py`; the
//! classification report equals sklearn's `classification_report(digits=4)` byte for byte.
use bertfit::metrics::{classification_metrics, multilabel_metrics, regression_metrics};
use serde_json::{json, Value};

use crate::common::{run_python, temp_dir};

/// SplitMix64: deterministic cases without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A class drawn with the given (unnormalised) weights.
    fn weighted(&mut self, weights: &[f64]) -> usize {
        let mut u = self.unit() * weights.iter().sum::<f64>();
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i;
            }
            u -= w;
        }
        weights.len() - 1
    }
}

struct ClassCase {
    name: &'static str,
    predictions: Vec<usize>,
    labels: Vec<usize>,
    num_labels: usize,
    names: Vec<String>,
}

/// Labels drawn with `weights`; each prediction is right with probability `p_right`, otherwise a
/// class drawn from `wrong_weights`.
fn class_case(
    rng: &mut Rng,
    name: &'static str,
    n: usize,
    weights: &[f64],
    p_right: f64,
    wrong_weights: &[f64],
) -> ClassCase {
    let labels: Vec<usize> = (0..n).map(|_| rng.weighted(weights)).collect();
    let predictions =
        labels.iter().map(|&t| if rng.unit() < p_right { t } else { rng.weighted(wrong_weights) }).collect();
    let names = (0..weights.len()).map(|i| i.to_string()).collect();
    ClassCase { name, predictions, labels, num_labels: weights.len(), names }
}

fn classification_cases() -> Vec<ClassCase> {
    let mut rng = Rng(8);
    let mut cases = vec![
        class_case(&mut rng, "binary", 64, &[0.7, 0.3], 0.8, &[1.0, 1.0]),
        // Class 2 has labels but is never predicted.
        class_case(&mut rng, "never_predicted", 40, &[1.0, 1.0, 1.0], 0.6, &[1.0, 1.0, 0.0]),
        // Class 3 is predicted but absent from the labels; class 4 is absent from both.
        class_case(&mut rng, "absent_label", 40, &[1.0, 1.0, 1.0, 0.0, 0.0], 0.5, &[1.0, 1.0, 1.0, 2.0, 0.0]),
        class_case(
            &mut rng,
            "six_class_imbalanced",
            500,
            &[50.0, 20.0, 12.0, 10.0, 6.0, 2.0],
            0.7,
            &[4.0, 2.0, 1.0, 1.0, 1.0, 1.0],
        ),
        class_case(&mut rng, "perfect", 20, &[1.0, 2.0, 3.0, 4.0], 1.0, &[1.0]),
        class_case(&mut rng, "one_example", 1, &[1.0, 1.0, 1.0], 0.0, &[0.0, 0.0, 1.0]),
    ];
    // Named classes, one longer than "weighted avg", so the report's column width moves.
    cases[2].names =
        ["ham", "spam", "phishing", "newsletter-and-promotions", "other"].map(String::from).to_vec();
    // 1/32 is a tie at 4 decimals: Python's "%.4f" rounds it half to even (0.0312).
    let mut labels = vec![0; 32];
    labels[0] = 1;
    let mut predictions = vec![1; 32];
    predictions[0] = 0;
    predictions[1] = 0;
    cases.push(ClassCase {
        name: "rounding_tie",
        predictions,
        labels,
        num_labels: 2,
        names: vec!["0".into(), "1".into()],
    });
    cases
}

struct MultiCase {
    name: &'static str,
    predicted: Vec<u8>,
    truth: Vec<u8>,
    num_labels: usize,
}

/// Truth cells set with probability `p_true[j]`; each predicted cell flips the truth with `p_flip`;
/// `never_predicted` columns are forced to 0 in the predictions.
fn multi_case(
    rng: &mut Rng,
    name: &'static str,
    n: usize,
    p_true: &[f64],
    p_flip: f64,
    never_predicted: &[usize],
) -> MultiCase {
    let k = p_true.len();
    let mut truth = Vec::with_capacity(n * k);
    let mut predicted = Vec::with_capacity(n * k);
    for _ in 0..n {
        for (j, &p) in p_true.iter().enumerate() {
            let t = u8::from(rng.unit() < p);
            let flip = u8::from(rng.unit() < p_flip);
            truth.push(t);
            predicted.push(if never_predicted.contains(&j) { 0 } else { t ^ flip });
        }
    }
    MultiCase { name, predicted, truth, num_labels: k }
}

fn multilabel_cases() -> Vec<MultiCase> {
    let mut rng = Rng(9);
    vec![
        // Label 3 never predicted, label 4 never true.
        multi_case(&mut rng, "five_labels", 40, &[0.3, 0.5, 0.2, 0.3, 0.0], 0.2, &[3]),
        // Sparse: many all-zero rows.
        multi_case(&mut rng, "sparse", 30, &[0.1, 0.1, 0.05, 0.1], 0.1, &[]),
        multi_case(&mut rng, "all_zero", 5, &[0.0, 0.0, 0.0], 0.0, &[]),
        multi_case(&mut rng, "perfect", 12, &[0.5, 0.5], 0.0, &[]),
    ]
}

struct RegCase {
    name: &'static str,
    predictions: Vec<f64>,
    targets: Vec<f64>,
}

fn regression_cases() -> Vec<RegCase> {
    let mut rng = Rng(10);
    let normal = |rng: &mut Rng| (0..12).map(|_| rng.unit()).sum::<f64>() - 6.0;
    let targets: Vec<f64> = (0..100).map(|_| 3.0 * normal(&mut rng) + 1.5).collect();
    let predictions = targets.iter().map(|t| 0.8 * t + 0.7 * normal(&mut rng)).collect();
    let continuous = RegCase { name: "continuous", predictions, targets };

    // Integer targets and half-step predictions: many ties in both rankings.
    let targets: Vec<f64> = (0..60).map(|_| rng.below(6) as f64).collect();
    let predictions = targets.iter().map(|t| ((t + 1.5 * (rng.unit() - 0.5)) * 2.0).round() / 2.0).collect();
    let ties = RegCase { name: "ties", predictions, targets };

    vec![
        continuous,
        ties,
        RegCase { name: "two_negative", predictions: vec![1.0, -2.0], targets: vec![0.5, 4.0] },
        RegCase {
            name: "constant_predictions",
            predictions: vec![2.5; 10],
            targets: (0..10).map(f64::from).collect(),
        },
        RegCase {
            name: "constant_targets",
            predictions: (0..10).map(f64::from).collect(),
            targets: vec![3.0; 10],
        },
        RegCase { name: "constant_perfect", predictions: vec![-1.25; 4], targets: vec![-1.25; 4] },
        RegCase { name: "one_example", predictions: vec![0.3], targets: vec![0.1] },
    ]
}

const TOL: f64 = 1e-12;

/// Appends one line to `errs` per difference between bertfit's `got` and the reference `want`:
/// numbers within `TOL` (relative above 1), integers exact, the same keys, lengths, strings and
/// nulls. bertfit's `warnings` key has no Python counterpart and is skipped. Returns the largest
/// difference seen between floats.
fn compare(path: &str, got: &Value, want: &Value, errs: &mut Vec<String>) -> f64 {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) if w.is_u64() => {
            if g.as_u64() != w.as_u64() {
                errs.push(format!("{path}: bertfit {g}, reference {w}"));
            }
            0.0
        }
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            let d = (g - w).abs() / w.abs().max(1.0);
            if d.is_nan() || d > TOL {
                errs.push(format!("{path}: bertfit {g:e}, reference {w:e} (diff {d:e})"));
            }
            d
        }
        (Value::Object(g), Value::Object(w)) => {
            let mut worst = 0f64;
            for key in g.keys().filter(|k| *k != "warnings") {
                if !w.contains_key(key) {
                    errs.push(format!("{path}.{key}: only in bertfit"));
                }
            }
            for (key, wv) in w {
                match g.get(key) {
                    Some(gv) => worst = worst.max(compare(&format!("{path}.{key}"), gv, wv, errs)),
                    None => errs.push(format!("{path}.{key}: missing from bertfit")),
                }
            }
            worst
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .map(|(i, (gv, wv))| compare(&format!("{path}[{i}]"), gv, wv, errs))
            .fold(0.0, f64::max),
        _ if got == want => 0.0,
        _ => {
            errs.push(format!("{path}: bertfit {got}, reference {want}"));
            0.0
        }
    }
}

/// A report line whose last column is a float support ("   1.0") with that count as an integer
/// ("     1"), right-aligned in the same width.
fn int_support(line: &str) -> String {
    match line.strip_suffix(".0") {
        Some(head) => {
            let start = head.rfind(' ').map_or(0, |i| i + 1);
            format!("{}  {}", &head[..start], &head[start..])
        }
        None => line.to_string(),
    }
}

#[test]
fn metrics_match_sklearn_and_scipy() {
    let (classes, multis, regs) = (classification_cases(), multilabel_cases(), regression_cases());
    let input = json!({
        "classification": classes.iter().map(|c| json!({"predictions": c.predictions, "labels": c.labels,
            "num_labels": c.num_labels, "names": c.names})).collect::<Vec<_>>(),
        "multilabel": multis.iter().map(|c| json!({"predicted": c.predicted, "truth": c.truth,
            "num_labels": c.num_labels, "names": (0..c.num_labels).map(|i| i.to_string()).collect::<Vec<_>>()}))
            .collect::<Vec<_>>(),
        "regression": regs.iter().map(|c| json!({"predictions": c.predictions, "targets": c.targets}))
            .collect::<Vec<_>>(),
    });
    let dir = temp_dir("metrics_parity");
    let path = dir.join("cases.json");
    std::fs::write(&path, input.to_string()).unwrap();
    let out = run_python("parity/metrics_reference.py", &["--input", path.to_str().unwrap()]);
    let want: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("metrics_reference.py output: {e}\n{out}"));

    let mut errs = Vec::new();
    let mut worst = 0f64;
    for (c, w) in classes.iter().zip(want["classification"].as_array().unwrap()) {
        let m = classification_metrics(&c.predictions, &c.labels, c.num_labels, Some(&c.names)).unwrap();
        let got = serde_json::to_value(&m).unwrap();
        worst = worst.max(compare(c.name, &got, &w["metrics"], &mut errs));
        // sklearn 1.9 prints the supports as floats ("1.0") when no prediction is right (its counts
        // turn float when there are no true positives); bertfit prints counts as integers.
        let report: Vec<String> = w["report"].as_str().unwrap().lines().map(int_support).collect();
        let report = report.join("\n");
        if m.to_string() != report {
            errs.push(format!("{}: report differs\n--- bertfit\n{m}\n--- sklearn\n{report}", c.name));
        }
    }
    for (c, w) in multis.iter().zip(want["multilabel"].as_array().unwrap()) {
        let m = multilabel_metrics(&c.predicted, &c.truth, c.num_labels, None).unwrap();
        worst = worst.max(compare(c.name, &serde_json::to_value(&m).unwrap(), &w["metrics"], &mut errs));
    }
    for (c, w) in regs.iter().zip(want["regression"].as_array().unwrap()) {
        let m = regression_metrics(&c.predictions, &c.targets).unwrap();
        worst = worst.max(compare(c.name, &serde_json::to_value(&m).unwrap(), &w["metrics"], &mut errs));
    }
    assert_eq!(want["classification"].as_array().unwrap().len(), classes.len());
    assert_eq!(want["multilabel"].as_array().unwrap().len(), multis.len());
    assert_eq!(want["regression"].as_array().unwrap().len(), regs.len());
    assert!(errs.is_empty(), "{} differences from sklearn/scipy:\n{}", errs.len(), errs.join("\n"));
    assert!(
        worst <= TOL,
        "metrics parity: {} classification, {} multi-label, {} regression cases; worst float diff {worst:e}",
        classes.len(),
        multis.len(),
        regs.len()
    );
}

/// The comparison itself must catch one figure off by 1e-9, a missing key and a wrong count.
#[test]
fn metrics_comparison_fails_on_one_wrong_field() {
    let m = classification_metrics(&[0, 1, 1, 2], &[0, 1, 0, 2], 3, None).unwrap();
    let want = serde_json::to_value(&m).unwrap();
    let mut errs = Vec::new();
    compare("case", &want, &want, &mut errs);
    assert!(errs.is_empty(), "{errs:?}");

    let mut off = want.clone();
    off["per_class"][1]["f1"] = json!(m.per_class[1].f1 + 1e-9);
    compare("case", &off, &want, &mut errs);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("case.per_class[1].f1"), "{errs:?}");

    let mut missing = want.clone();
    missing.as_object_mut().unwrap().remove("recall_macro");
    missing["confusion_matrix"][0][0] = json!(2);
    errs.clear();
    compare("case", &missing, &want, &mut errs);
    assert_eq!(errs.len(), 2, "{errs:?}");
}

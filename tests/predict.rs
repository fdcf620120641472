//! `bertfit predict` and `bertfit evaluate` against transformers on the same saved folder
//! (`scripts/parity/predict_reference.py`): the same probabilities and accuracy, every input column
//! and the row order kept, CSV and Parquet alike, and bad inputs refused with nothing written.
use std::path::{Path, PathBuf};

use arrow_array::{Array, StringArray};
use arrow_schema::DataType;

use super::common::{
    assert_refused, dataset, minilm_str, minilm_with_head, read_json, run_bertfit, run_python, temp_dir,
};
use bertfit::data::dataset::{read_with_split_column, Columns};

/// Columns of a CSV or Parquet file, every value as text (floats as arrow prints them).
fn read_table(path: &Path) -> Vec<(String, Vec<String>)> {
    let batches: Vec<arrow_array::RecordBatch> = if path.extension().unwrap() == "parquet" {
        let schema = bertfit::data::parquet::schema(path).unwrap();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        bertfit::data::parquet::batches(path, &names, 1000).unwrap().map(Result::unwrap).collect()
    } else {
        bertfit::data::csv::batches(path).unwrap().map(Result::unwrap).collect()
    };
    let schema = batches[0].schema();
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let mut values = Vec::new();
            for b in &batches {
                let col = arrow_cast::cast(b.column(j), &DataType::Utf8).unwrap();
                let s = col.as_any().downcast_ref::<StringArray>().unwrap();
                values.extend((0..s.len()).map(|i| {
                    if s.is_null(i) {
                        String::new()
                    } else {
                        s.value(i).to_string()
                    }
                }));
            }
            (f.name().clone(), values)
        })
        .collect()
}

fn column<'a>(table: &'a [(String, Vec<String>)], name: &str) -> &'a [String] {
    &table.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no column {name}")).1
}

/// `n` movie snippets with an `id` column first, texts with commas, quotes and newlines, an empty
/// text (if `empty`), and `long` texts far over 64 tokens (several snippets joined).
fn write_rows(path: &Path, n: usize, long: usize, empty: bool) -> Vec<String> {
    let ds = read_with_split_column(&dataset("movies"), &Columns::default()).unwrap();
    let stride = ds.train.examples.len() / n;
    let mut texts: Vec<String> =
        ds.train.examples.iter().step_by(stride).take(n).map(|e| e.text.clone()).collect();
    for i in 0..long {
        let joined: Vec<&str> =
            ds.validation.examples[i * 6..i * 6 + 6].iter().map(|e| e.text.as_str()).collect();
        texts.insert(3 + 5 * i, joined.join(" "));
    }
    texts.push("a \"quoted\", comma text\nover two lines".into());
    if empty {
        texts.push(String::new());
    }
    let mut s = String::from("id,text,source\n");
    for (i, t) in texts.iter().enumerate() {
        s.push_str(&format!("{},\"{}\",movies-{}\n", 1000 + i, t.replace('"', "\"\""), i % 3));
    }
    std::fs::write(path, s).unwrap();
    texts
}

/// bertfit's probabilities against the reference's: the largest absolute difference.
fn compare_probs(table: &[(String, Vec<String>)], reference: &serde_json::Value) -> f64 {
    let labels: Vec<String> =
        reference["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    let probs = reference["probs"].as_array().unwrap();
    let mut worst = 0f64;
    for (j, label) in labels.iter().enumerate() {
        let ours = column(table, &format!("prob_{label}"));
        assert_eq!(ours.len(), probs.len(), "rows");
        for (i, v) in ours.iter().enumerate() {
            let d = (v.parse::<f64>().unwrap() - probs[i][j].as_f64().unwrap()).abs();
            worst = worst.max(d);
        }
    }
    worst
}

fn predict(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--threads",
        "2",
    ];
    args.extend(extra);
    let (code, stdout, stderr) = run_bertfit(&args);
    assert_eq!(code, 0, "bertfit predict failed:\n{stderr}");
    stdout
}

fn reference(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    run_python("parity/predict_reference.py", &args);
    read_json(out)
}

#[test]
fn predict_probabilities_equal_transformers_and_rows_keep_their_columns_and_order() {
    let dir = temp_dir("predict_parity");
    let model = minilm_with_head(&dir, 3, 7, None);
    let data = dir.join("rows.csv");
    let texts = write_rows(&data, 40, 4, true);
    let out = dir.join("predicted.csv");
    let stdout = predict(&model, &data, &out, &["--max-length", "64", "--batch-size", "8"]);
    assert!(stdout.starts_with(&format!("predicted {} rows", texts.len())), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "stdout is the summary line only: {stdout}");

    let table = read_table(&out);
    let names: Vec<&str> = table.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["id", "text", "source", "predicted_label", "prob_class_0", "prob_class_1", "prob_class_2"]
    );
    let ids: Vec<String> = (0..texts.len()).map(|i| (1000 + i).to_string()).collect();
    assert_eq!(column(&table, "id"), ids, "row order");
    assert_eq!(column(&table, "text"), texts, "texts written back unchanged");
    assert_eq!(column(&table, "source")[4], "movies-1");

    let expected = reference(&model, &data, &dir.join("reference.json"), &["--max-length", "64"]);
    let worst = compare_probs(&table, &expected);
    assert!(worst <= 1e-5, "probabilities differ by {worst}");
    let predicted: Vec<String> =
        expected["predicted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(column(&table, "predicted_label"), predicted);

    // The long texts really were truncated: at 512 tokens the reference's answer for them moves.
    let full = reference(&model, &data, &dir.join("reference_512.json"), &["--max-length", "512"]);
    let moved = compare_probs(&table, &full);
    assert!(moved > 1e-3, "the long texts give the same probabilities untruncated ({moved})");
}

#[test]
fn csv_and_parquet_inputs_give_the_same_predictions() {
    let dir = temp_dir("predict_formats");
    let model = minilm_with_head(&dir, 2, 3, None);
    let csv = dir.join("rows.csv");
    let parquet = dir.join("rows.parquet");
    // Row groups of 7 rows: record batches smaller than a model batch, crossing its boundaries.
    let to_parquet = |csv: &Path| {
        run_python(
            "parity/make_parquet.py",
            &["--csv", csv.to_str().unwrap(), "--out", parquet.to_str().unwrap(), "--row-group-size", "7"],
        )
    };
    let flags = ["--max-length", "48", "--batch-size", "4"];
    // In Parquet an empty CSV cell becomes a null, which is a missing text, not an empty one.
    let texts = write_rows(&csv, 30, 2, true);
    to_parquet(&csv);
    let out = dir.join("refused.csv");
    let (m, p, o) = (model.to_str().unwrap(), parquet.to_str().unwrap(), out.to_str().unwrap());
    let row = format!("row {}", texts.len());
    assert_refused(&["predict", "--model", m, "--data", p, "--output", o], &[p, &row, "'text'", "null"]);
    assert!(!out.exists());
    write_rows(&csv, 30, 2, false);
    to_parquet(&csv);
    let from_csv = dir.join("from_csv.tsv");
    let from_parquet = dir.join("from_parquet.parquet");
    predict(&model, &csv, &from_csv, &flags);
    predict(&model, &parquet, &from_parquet, &flags);
    let (a, b) = (read_table(&from_csv), read_table(&from_parquet));
    let names = |t: &[(String, Vec<String>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    // Record batches of 7 rows batch the examples differently from the CSV's one record batch, so
    // the padding differs: equal up to float rounding, not bit for bit.
    assert_eq!(column(&a, "predicted_label"), column(&b, "predicted_label"));
    let mut worst = 0f64;
    for (name, x) in a.iter().filter(|(n, _)| n.starts_with("prob_")) {
        for (u, v) in x.iter().zip(column(&b, name)) {
            worst = worst.max((u.parse::<f64>().unwrap() - v.parse::<f64>().unwrap()).abs());
        }
    }
    assert!(worst <= 1e-6, "{worst}");
    assert_eq!(column(&a, "id"), column(&b, "id"));
}

#[test]
fn a_file_without_the_text_column_or_a_base_model_is_refused_and_nothing_is_written() {
    let dir = temp_dir("predict_refused");
    let data = dir.join("rows.csv");
    std::fs::write(&data, "sentence,label\nhello,1\n").unwrap();
    let out = dir.join("out.csv");
    let args = |model: &str, data: &Path| {
        vec![
            "predict".to_string(),
            "--model".into(),
            model.into(),
            "--data".into(),
            data.to_str().unwrap().into(),
            "--output".into(),
            out.to_str().unwrap().into(),
        ]
    };
    let refuse = |a: Vec<String>, needles: &[&str]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_refused(&a, needles);
    };
    refuse(args(minilm_str(), &data), &[data.to_str().unwrap(), "no column 'text'", "sentence"]);
    // MiniLM is a BertModel: its classifier would be newly initialised.
    let good = dir.join("good.csv");
    std::fs::write(&good, "text\nhello there\n").unwrap();
    refuse(args(minilm_str(), &good), &[minilm_str(), "classifier"]);
    let leftovers: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(leftovers.len(), 2, "only the inputs remain: {leftovers:?}");

    // An existing output is kept unless --overwrite.
    std::fs::write(&out, "precious\n").unwrap();
    let model = minilm_with_head(&dir, 2, 1, None);
    refuse(args(model.to_str().unwrap(), &good), &["--output", "--overwrite"]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious\n");
    let mut a = args(model.to_str().unwrap(), &good);
    a.push("--overwrite".into());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, _, err) = run_bertfit(&a);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("text,predicted_label,prob_class_0"));
}

#[test]
fn evaluate_accuracy_and_loss_equal_the_reference() {
    let dir = temp_dir("predict_evaluate");
    let model = minilm_with_head(&dir, 2, 11, None);
    let ds = read_with_split_column(&dataset("movies"), &Columns::default()).unwrap();
    // Labels as the model names them (class_0 / class_1) and, for some rows, as class ids.
    let mut s = String::from("text,label,split\n");
    let val = ds.validation.examples.iter().step_by(ds.validation.examples.len() / 60).take(60);
    for (i, e) in ds.train.examples.iter().take(5).chain(val).enumerate() {
        let id = usize::from(e.label == "positive");
        let label = if i % 4 == 0 { id.to_string() } else { format!("class_{id}") };
        let split = if i < 5 { "train" } else { "val" };
        s.push_str(&format!("\"{}\",{label},{split}\n", e.text.replace('"', "\"\"")));
    }
    let data = dir.join("data.csv");
    std::fs::write(&data, s).unwrap();
    let results = dir.join("results");
    let ours = evaluate_json(&model, ("--data", &data), "64", "16", &results);
    let expected = reference(
        &model,
        &data,
        &dir.join("reference.json"),
        &["--max-length", "64", "--label-column", "label", "--split-column", "split"],
    );
    assert_eq!(ours["eval_samples"], 60);
    assert_eq!(expected["rows"], 60);
    let (acc, ref_acc) = (ours["eval_accuracy"].as_f64().unwrap(), expected["accuracy"].as_f64().unwrap());
    assert_eq!(acc, ref_acc, "accuracy");
    let (loss, ref_loss) = (ours["eval_loss"].as_f64().unwrap(), expected["loss"].as_f64().unwrap());
    assert!((loss - ref_loss).abs() < 1e-5, "loss {loss} vs {ref_loss}");
    for key in ["eval_runtime", "eval_samples_per_second"] {
        assert!(ours[key].as_f64().unwrap() > 0.0, "{key}");
    }

    // A label the model does not know names file, row and column.
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "text,label\nfine,class_1\nodd,class_9\n").unwrap();
    assert_refused(
        &["evaluate", "--model", model.to_str().unwrap(), "--validation-file", bad.to_str().unwrap()],
        &[bad.to_str().unwrap(), "row 2", "'label'", "class_9"],
    );
}

/// Every leaf of a JSON value by path (`eval_per_class[2].f1`).
fn leaves(
    v: &serde_json::Value,
    path: String,
    out: &mut std::collections::BTreeMap<String, serde_json::Value>,
) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                leaves(x, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, format!("{path}[{i}]"), out);
            }
        }
        other => {
            out.insert(path, other.clone());
        }
    }
}

/// Every leaf of `ours` against `reference`, in both directions: the same fields, numbers within
/// 1e-6 (the loss within `loss_tol`), anything else equal; the two timings only positive.
fn compare_fields(ours: &serde_json::Value, reference: &serde_json::Value, loss_tol: f64) {
    let (mut a, mut b) = (Default::default(), Default::default());
    leaves(ours, String::new(), &mut a);
    leaves(reference, String::new(), &mut b);
    let missing: Vec<&String> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    assert!(missing.is_empty(), "fields bertfit writes that the reference lacks: {missing:?}");
    let extra: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(extra.is_empty(), "fields the reference has that bertfit lacks: {extra:?}");
    for (key, mine) in &a {
        let theirs = &b[key];
        if key == "eval_runtime" || key == "eval_samples_per_second" {
            assert!(mine.as_f64().unwrap() > 0.0 && theirs.as_f64().unwrap() > 0.0, "{key}");
            continue;
        }
        match (mine.as_f64(), theirs.as_f64()) {
            (Some(x), Some(y)) => {
                let tol = if key == "eval_loss" { loss_tol } else { 1e-6 };
                assert!((x - y).abs() <= tol, "{key}: bertfit {x} vs reference {y}");
            }
            _ => assert_eq!(mine, theirs, "{key}"),
        }
    }
}

/// `bertfit evaluate` against transformers + scikit-learn (`scripts/parity/evaluate_reference.py`),
/// field by field: every field of eval_results.json must be in the reference and equal it (1e-6;
/// the loss 1e-5; the two timings are only checked to be positive). The model has 5 classes; the
/// labels use 4 of them, and the classifier's bias keeps two classes from ever being predicted:
/// class 2 has examples (recall 0, precision 0/0), class 4 has none (every ratio 0/0), so
/// scikit-learn's zero_division rule decides their figures. Texts include some longer than
/// --max-length (truncated alike).
#[test]
fn evaluate_metrics_equal_scikit_learn_field_by_field() {
    let dir = temp_dir("predict_evaluate_sklearn");
    let model = super::common::tiny_model(&dir, 5, None, &[]);
    let weights = model.join("model.safetensors");
    let mut tensors = tch::Tensor::read_safetensors(&weights).unwrap();
    let (_, bias) = tensors.iter_mut().find(|(k, _)| k == "classifier.bias").expect("classifier.bias");
    for never in [2, 4] {
        let _ = bias.get(never).fill_(-20.0);
    }
    tch::Tensor::write_safetensors(&tensors, &weights).unwrap();

    let ds = read_with_split_column(&dataset("movies"), &Columns::default()).unwrap();
    let mut s = String::from("text,label\n");
    for (i, e) in ds.train.examples.iter().step_by(97).take(48).enumerate() {
        let text = if i % 7 == 0 { format!("{} {} {}", e.text, e.text, e.text) } else { e.text.clone() };
        // Labels by name and by class id, over classes 0..=3.
        let label = if i % 3 == 0 { (i % 4).to_string() } else { format!("class_{}", i % 4) };
        s.push_str(&format!("\"{}\",{label}\n", text.replace('"', "\"\"")));
    }
    let data = dir.join("labelled.csv");
    std::fs::write(&data, s).unwrap();
    let results = dir.join("results");
    let ours = evaluate_json(&model, ("--validation-file", &data), "24", "8", &results);
    let reference: serde_json::Value = serde_json::from_str(
        run_python(
            "parity/evaluate_reference.py",
            &["--model", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--max-length", "24"],
        )
        .trim(),
    )
    .unwrap();

    // The case is the one meant: class 2 has examples, 2 and 4 are never predicted, 4 has none.
    let matrix = &ours["eval_confusion_matrix"];
    let column = |c: usize| (0..5).map(|t| matrix[t][c].as_u64().unwrap()).sum::<u64>();
    assert_eq!((column(2), column(4)), (0, 0), "{matrix}");
    assert!(ours["eval_per_class"][2]["support"].as_u64().unwrap() > 0);
    assert_eq!(ours["eval_per_class"][4]["support"].as_u64().unwrap(), 0);

    compare_fields(&ours, &reference, 1e-5);
}

/// A tiny random model saved by transformers with `problem_type` set in its config.json.
fn tiny_head(dir: &Path, num_labels: usize, problem: &str) -> PathBuf {
    let model = super::common::tiny_model(dir, num_labels, None, &[]);
    let config = model.join("config.json");
    let mut cfg = read_json(&config);
    cfg["problem_type"] = serde_json::json!(problem);
    std::fs::write(&config, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    model
}

/// Sets the classifier bias of the given outputs.
fn set_bias(model: &Path, bias: &[(i64, f64)]) {
    let weights = model.join("model.safetensors");
    let mut tensors = tch::Tensor::read_safetensors(&weights).unwrap();
    let (_, b) = tensors.iter_mut().find(|(k, _)| k == "classifier.bias").expect("classifier.bias");
    for &(i, v) in bias {
        let _ = b.get(i).fill_(v);
    }
    tch::Tensor::write_safetensors(&tensors, &weights).unwrap();
}

/// The bias that puts output `label`'s decision threshold halfway between the two middle rows'
/// logits (from `bertfit predict`'s sigmoid scores): a random tiny model's logits differ little
/// between rows, so with its own zero bias every row gets the same label set.
fn median_bias(table: &[(String, Vec<String>)], label: &str) -> f64 {
    let mut logits: Vec<f64> = column(table, &format!("score_{label}"))
        .iter()
        .map(|p| {
            let p: f64 = p.parse().unwrap();
            (p / (1.0 - p)).ln()
        })
        .collect();
    logits.sort_by(f64::total_cmp);
    let mid = logits.len() / 2;
    assert!(logits[mid] - logits[mid - 1] > 1e-6, "no gap at the median: {logits:?}");
    -(logits[mid - 1] + logits[mid]) / 2.0
}

/// `bertfit evaluate --json --output-dir results` of `model` on `data` (`--data` or
/// `--validation-file`) on the CPU: the printed metrics, asserted equal to results/eval_results.json.
fn evaluate_json(
    model: &Path,
    (data_flag, data): (&str, &Path),
    max_length: &str,
    batch_size: &str,
    results: &Path,
) -> serde_json::Value {
    let (code, stdout, stderr) = run_bertfit(&[
        "evaluate",
        "--model",
        model.to_str().unwrap(),
        data_flag,
        data.to_str().unwrap(),
        "--max-length",
        max_length,
        "--batch-size",
        batch_size,
        "--device",
        "cpu",
        "--output-dir",
        results.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let ours: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(ours, read_json(&results.join("eval_results.json")));
    ours
}

/// `evaluate_json` on a validation file, and the reference's metrics for the same rows.
fn evaluate_both(dir: &Path, model: &Path, data: &Path) -> (serde_json::Value, serde_json::Value) {
    let ours = evaluate_json(model, ("--validation-file", data), "24", "8", &dir.join("results"));
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());
    let reference = run_python(
        "parity/evaluate_reference.py",
        &["--model", model, "--data", data, "--max-length", "24", "--batch-size", "8"],
    );
    (ours, serde_json::from_str(reference.trim()).unwrap())
}

/// `bertfit evaluate` on a multi-label and a regression model against transformers, scikit-learn
/// and scipy, field by field in both directions (same fields, 1e-6): training's metrics for the
/// problem type, and the loss as torch's BCEWithLogitsLoss() / MSELoss(). Multi-label cells mix
/// `a|b` names, `[0, 1]` ids, `['class_1']` and empty cells; outputs 0 and 1 are predicted for
/// about half the rows (their bias set at the median logit), output 2 never (bias -20), so its
/// precision is 0/0. Regression has no eval_accuracy.
#[test]
fn evaluate_multi_label_and_regression_equal_scikit_learn_field_by_field() {
    let ds = read_with_split_column(&dataset("movies"), &Columns::default()).unwrap();
    let texts: Vec<&str> = ds.train.examples.iter().step_by(89).take(40).map(|e| e.text.as_str()).collect();
    let quote = |t: &str| format!("\"{}\"", t.replace('"', "\"\""));

    let dir = temp_dir("predict_evaluate_multi_label");
    let model = tiny_head(&dir, 3, "multi_label_classification");
    let mut s = String::from("text,label\n");
    for (i, t) in texts.iter().enumerate() {
        let label = match i % 5 {
            0 => "class_0|class_2".to_string(),
            1 => "[0, 1]".to_string(),
            2 => String::new(),
            3 => "['class_1']".to_string(),
            _ => format!("class_{}", i % 3),
        };
        s.push_str(&format!("{},{}\n", quote(t), quote(&label)));
    }
    let data = dir.join("labelled.csv");
    std::fs::write(&data, s).unwrap();
    let scores = dir.join("scores.csv");
    predict(&model, &data, &scores, &["--max-length", "24"]);
    let table = read_table(&scores);
    set_bias(&model, &[(0, median_bias(&table, "class_0")), (1, median_bias(&table, "class_1")), (2, -20.0)]);
    let (ours, reference) = evaluate_both(&dir, &model, &data);
    assert_eq!(ours["eval_samples"], 40);
    let f1_micro = ours["eval_f1_micro"].as_f64().unwrap();
    assert!(f1_micro > 0.0 && f1_micro < 1.0, "f1_micro {f1_micro}");
    // The case is the one meant: some sets right and some wrong, output 2 never predicted.
    let subset = ours["eval_subset_accuracy"].as_f64().unwrap();
    assert!(subset > 0.0 && subset < 1.0, "subset accuracy {subset}");
    assert_eq!(ours["eval_accuracy"], ours["eval_subset_accuracy"]);
    assert_eq!(ours["eval_per_label"][2]["precision"], 0.0);
    assert!(ours["eval_per_label"][2]["support"].as_u64().unwrap() > 0);
    compare_fields(&ours, &reference, 1e-6);

    let dir = temp_dir("predict_evaluate_regression");
    let model = tiny_head(&dir, 1, "regression");
    let mut s = String::from("text,label\n");
    for (i, t) in texts.iter().enumerate() {
        let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
        let value = sign * t.chars().count() as f64 / 100.0;
        // Plain, padded and exponent forms.
        let cell = match i % 3 {
            0 => format!("{value:.3}"),
            1 => format!(" {value:.2} "),
            _ => format!("{value:e}"),
        };
        s.push_str(&format!("{},{}\n", quote(t), quote(&cell)));
    }
    let data = dir.join("labelled.csv");
    std::fs::write(&data, s).unwrap();
    let (ours, reference) = evaluate_both(&dir, &model, &data);
    assert!(ours.get("eval_accuracy").is_none(), "{ours}");
    assert!(ours["eval_pearson"].is_f64() && ours["eval_spearman"].is_f64(), "{ours}");
    compare_fields(&ours, &reference, 1e-6);
}

/// A multi-label cell naming an unknown label and a regression cell that is not a number are
/// refused naming file, row, column and value; nothing is written.
#[test]
fn evaluate_refuses_bad_multi_label_and_regression_cells() {
    let dir = temp_dir("predict_evaluate_bad_cells");
    let cases = [
        ("multi", 3, "multi_label_classification", "tags", "\"class_0|class_1\"", "\"class_2|nope\"", "nope"),
        ("regression", 1, "regression", "score", "0.5", "high", "high"),
    ];
    for (name, labels, problem, column, good, bad_cell, value) in cases {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let model = tiny_head(&sub, labels, problem);
        let bad = sub.join("bad.csv");
        std::fs::write(&bad, format!("text,{column}\nfine,{good}\nodd,{bad_cell}\n")).unwrap();
        let results = sub.join("results");
        let err = assert_refused(
            &[
                "evaluate",
                "--model",
                model.to_str().unwrap(),
                "--validation-file",
                bad.to_str().unwrap(),
                "--label-column",
                column,
                "--device",
                "cpu",
                "--output-dir",
                results.to_str().unwrap(),
            ],
            &[bad.to_str().unwrap(), "row 2", &format!("'{column}'"), &format!("'{value}'")],
        );
        assert!(!results.exists(), "{problem}: something was written to {}", results.display());
        println!("{problem}: {}", err.trim());
    }
}

//! run_classification.py's reading of labels: the type HF `datasets` 5.2 gives the label column
//! of the train file, the problem type the script infers from it, and the label text it uses
//! (`str(label)`).
//!
//! What `datasets` does, observed with datasets 5.2.0 / pandas 2.3.3 (tests/hf_data.rs checks it
//! against the real `load_dataset`):
//! - CSV is read by pandas' `read_csv`. A label column whose cells are all integers is `int64`;
//!   all numbers with any decimal point, exponent or `inf`, or any number with an empty (or
//!   pandas NA: `NA`, `null`, `nan`, ...) cell, is `float64`; all `True`/`False` (`TRUE`, `true`
//!   ...) without a missing cell is `bool`; anything else is `string`. Whitespace around a number
//!   does not matter.
//! - JSON is read by pyarrow: integers `int64`; integers and floats (or an integer beyond int64)
//!   `float64`; booleans `bool`; strings `string`; lists `list`. Null cells do not count. Other
//!   mixes become datasets' `Json` feature, on which the script fails (`'Json' object has no
//!   attribute 'dtype'`): refused here with the rows of both types.
//! - The validation and test files are cast to the train file's types (a `x` under an int64
//!   train column fails the load; `2.0` is `2`; under `float64` an integer `2` is `2.0`).
//!
//! The script: regression when the train label dtype is float32/float64, multi-label when it is a
//! list (with datasets 5.2 the script itself fails there, `'List' object has no attribute
//! 'dtype'`; bertfit reads such a file as the script means to), else single-label.
use std::path::Path;

use serde_json::Value;

use super::json;
use super::labels::ProblemType;
use super::table::{for_each_row, format_of, Format, Wanted};
use crate::error::{Error, Result};

/// The dtype `datasets` gives the label column of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelType {
    Int,
    Float,
    Bool,
    String,
    List,
}

/// The problem type run_classification.py infers from the train file's label column.
pub fn infer_problem_type(path: &Path, label_column: &str) -> Result<ProblemType> {
    Ok(match label_type(path, label_column)? {
        LabelType::Float => ProblemType::Regression,
        LabelType::List => ProblemType::MultiLabelClassification,
        LabelType::Int | LabelType::Bool | LabelType::String => ProblemType::SingleLabelClassification,
    })
}

/// pandas' default NA strings (`read_csv`'s `na_values`): such a cell is a missing value.
const PANDAS_NA: &[&str] = &[
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

fn is_int(cell: &str) -> bool {
    let t = cell.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && t.parse::<i64>().is_ok()
}

fn is_number(cell: &str) -> bool {
    cell.trim().parse::<f64>().is_ok()
}

fn bool_of(cell: &str) -> Option<bool> {
    match cell {
        "True" | "TRUE" | "true" => Some(true),
        "False" | "FALSE" | "false" => Some(false),
        _ => None,
    }
}

/// The dtype of `column` in the file at `path`, as `datasets` infers it (see the module notes).
pub fn label_type(path: &Path, column: &str) -> Result<LabelType> {
    match format_of(path)? {
        Format::Json => json_label_type(path, column),
        _ => table_label_type(path, column),
    }
}

/// pandas' inference over the cells of a CSV column (a Parquet file's are typed already, but
/// run_classification.py reads only CSV and JSON; Parquet gets the same reading of its text).
fn table_label_type(path: &Path, column: &str) -> Result<LabelType> {
    let (mut na, mut ints, mut floats, mut bools, mut other) = (false, false, false, false, false);
    let wanted = Wanted { label: Some(column), ..Wanted::default() };
    for_each_row(path, &wanted, |r| {
        let c = r.label.as_str();
        if PANDAS_NA.contains(&c) {
            na = true;
        } else if is_int(c) {
            ints = true;
        } else if is_number(c) {
            floats = true;
        } else if bool_of(c).is_some() {
            bools = true;
        } else {
            other = true;
        }
        Ok(())
    })?;
    Ok(if other || (bools && (ints || floats || na)) {
        LabelType::String
    } else if bools {
        LabelType::Bool
    } else if ints && !floats && !na {
        LabelType::Int
    } else {
        LabelType::Float
    })
}

/// pyarrow's inference over the values of a JSON column.
fn json_label_type(path: &Path, column: &str) -> Result<LabelType> {
    let mut seen: Vec<(LabelType, usize, &'static str)> = Vec::new();
    for obj in json::objects(path)? {
        let (row, map) = obj?;
        let t = match map.get(column) {
            None | Some(Value::Null) => continue,
            Some(Value::Number(n)) if n.is_i64() => LabelType::Int,
            Some(Value::Number(_)) => LabelType::Float,
            Some(Value::Bool(_)) => LabelType::Bool,
            Some(Value::String(_)) => LabelType::String,
            Some(Value::Array(_)) => LabelType::List,
            Some(v @ Value::Object(_)) => {
                let msg = format!("{} is not a label (a string, number, boolean or list)", json::kind(v));
                return Err(Error::DataRow { path: path.into(), row, column: column.into(), msg });
            }
        };
        if !seen.iter().any(|s| s.0 == t) {
            seen.push((t, row, json::kind(map.get(column).unwrap_or(&Value::Null))));
        }
    }
    let has = |t| seen.iter().any(|s| s.0 == t);
    match seen.len() {
        0 => Err(Error::data(
            path,
            format!("column '{column}' has no labels (every value is null or missing)"),
        )),
        1 => Ok(seen[0].0),
        2 if has(LabelType::Int) && has(LabelType::Float) => Ok(LabelType::Float),
        _ => {
            let (a, b) = (&seen[0], &seen[1]);
            Err(Error::data(
                path,
                format!(
                    "column '{column}' mixes {} (row {}) and {} (row {}): datasets cannot give it one type \
                     (run_classification.py fails on it)",
                    a.2, a.1, b.2, b.1
                ),
            ))
        }
    }
}

/// `str(label)` in Python of a label cell (as the readers write it, see `json.rs`) cast to the
/// train file's label type `t`; `None` if the cell does not cast (datasets fails the load there).
pub fn python_label(cell: &str, t: LabelType) -> Option<String> {
    let c = cell.trim();
    match t {
        LabelType::Int if is_int(c) => c.parse::<i64>().ok().map(|i| i.to_string()),
        // pyarrow casts a float to int64 when no digits are lost.
        LabelType::Int => c
            .parse::<f64>()
            .ok()
            .filter(|v| v.fract() == 0.0 && v.abs() < 9.2e18)
            .map(|v| (v as i64).to_string()),
        LabelType::Float => c.parse::<f64>().ok().map(python_float),
        LabelType::Bool => bool_of(c).map(|b| if b { "True" } else { "False" }.into()),
        LabelType::String | LabelType::List => Some(cell.to_string()),
    }
}

/// Python's `repr(float)` (= `str`): the shortest digits that read back, in fixed notation for
/// exponents -4..16 (always with a point: `1.0`) and scientific outside it (`1e+16`, `1.5e-07`).
pub fn python_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let fixed = format!("{v}");
        if fixed.contains('.') {
            fixed
        } else {
            format!("{fixed}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (2.5, "2.5"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (1e-5, "1e-05"),
            (1e300, "1e+300"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::INFINITY, "inf"),
        ];
        for (v, want) in cases {
            assert_eq!(python_float(v), want, "{v}");
        }
    }

    #[test]
    fn label_cells_cast_to_the_train_type() {
        assert_eq!(python_label(" 007", LabelType::Int).as_deref(), Some("7"));
        assert_eq!(python_label("2.0", LabelType::Int).as_deref(), Some("2"));
        assert_eq!(python_label("2.5", LabelType::Int), None);
        assert_eq!(python_label("x", LabelType::Int), None);
        assert_eq!(python_label("1", LabelType::Float).as_deref(), Some("1.0"));
        assert_eq!(python_label("1e3", LabelType::Float).as_deref(), Some("1000.0"));
        assert_eq!(python_label("true", LabelType::Bool).as_deref(), Some("True"));
        assert_eq!(python_label("3", LabelType::String).as_deref(), Some("3"));
    }

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = crate::test_support::fresh_dir(&format!("hf-{name}"));
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn label_types_follow_pandas_and_pyarrow() {
        let csv = |body: &str| file("t.csv", &format!("sentence,label\n{body}"));
        let cases = [
            ("a,1\nb, 2 \n", LabelType::Int),
            ("a,1\nb,2.5\n", LabelType::Float),
            ("a,1\nb,\n", LabelType::Float),
            ("a,1\nb,NA\n", LabelType::Float),
            ("a,1e3\nb,2\n", LabelType::Float),
            ("a,True\nb,false\n", LabelType::Bool),
            ("a,True\nb,\n", LabelType::String),
            ("a,1\nb,x\n", LabelType::String),
        ];
        for (body, want) in cases {
            assert_eq!(label_type(&csv(body), "label").unwrap(), want, "{body:?}");
        }
        let jsonl = |body: &str| file("t.jsonl", body);
        let cases = [
            ("{\"label\":1}\n{\"label\":2}\n", LabelType::Int),
            ("{\"label\":1}\n{\"label\":2.0}\n", LabelType::Float),
            ("{\"label\":1}\n{\"label\":10000000000000000000}\n", LabelType::Float),
            ("{\"label\":true}\n{\"label\":null}\n", LabelType::Bool),
            ("{\"label\":\"a\"}\n{}\n", LabelType::String),
            ("{\"label\":[\"a\"]}\n{\"label\":[]}\n", LabelType::List),
        ];
        for (body, want) in cases {
            assert_eq!(label_type(&jsonl(body), "label").unwrap(), want, "{body:?}");
        }
        let err = label_type(&jsonl("{\"label\":1}\n{\"label\":\"a\"}\n"), "label").unwrap_err().to_string();
        assert!(err.contains("an integer (row 1)") && err.contains("a string (row 2)"), "{err}");
        assert_eq!(
            infer_problem_type(&jsonl("{\"label\":[1]}\n"), "label").unwrap(),
            ProblemType::MultiLabelClassification
        );
    }
}

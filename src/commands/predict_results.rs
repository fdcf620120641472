//! `predict_results.txt`, byte for byte as run_classification.py writes it: `index\tprediction`,
//! then one line per test row in file order: `id2label[item]` (single-label), the Python list of
//! the predicted label names (multi-label: `f"{index}\t{item}"` of a `list[str]`, so `['a', 'b']`
//! and `[]`), or `f"{item:3.3f}"` of the squeezed float32 prediction (regression).
use crate::data::labels::ProblemType;
use crate::train::Evaluation;

/// The file's text for the predictions in `e`, with the label names in class-id order.
pub fn predict_results(e: &Evaluation, names: &[String]) -> String {
    let name = |i: usize| names.get(i).map_or("?", String::as_str).to_string();
    let items: Vec<String> = match e.problem {
        ProblemType::SingleLabelClassification => {
            e.predicted_classes().iter().map(|&p| name(p as usize)).collect()
        }
        ProblemType::MultiLabelClassification => {
            let width = names.len().max(1);
            e.predicted_sets()
                .chunks(width)
                .map(|row| {
                    let set: Vec<String> = row
                        .iter()
                        .enumerate()
                        .filter(|(_, &v)| v == 1)
                        .map(|(i, _)| python_str_repr(&name(i)))
                        .collect();
                    format!("[{}]", set.join(", "))
                })
                .collect()
        }
        ProblemType::Regression => Vec::<f32>::try_from(e.logits.flatten(0, -1))
            .unwrap_or_default()
            .into_iter()
            .map(python_3_3f)
            .collect(),
    };
    let mut out = String::from("index\tprediction\n");
    for (i, item) in items.iter().enumerate() {
        out.push_str(&format!("{i}\t{item}\n"));
    }
    out
}

/// Python's `f"{x:3.3f}"` of a float32 (numpy widens it to a double first, exactly): both round
/// the exact binary value half to even; Python spells the non-finite values `nan`, `inf`, `-inf`.
pub fn python_3_3f(x: f32) -> String {
    let text = match x {
        x if x.is_nan() => "nan".to_string(),
        x if x.is_infinite() => if x > 0.0 { "inf" } else { "-inf" }.to_string(),
        x => format!("{:.3}", x as f64),
    };
    format!("{text:>3}")
}

/// Python's `repr(str)`: single quotes unless the text holds a `'` and no `"`; backslash, the
/// quote used, `\n`, `\r`, `\t` and other non-printable characters escaped.
pub fn python_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_python_formats_3_3f() {
        // Python: f"{np.float32(v):3.3f}" for each.
        let cases = [(0.0625f32, "0.062"), (0.1875, "0.188"), (-0.0001, "-0.000"), (12.3456, "12.346")];
        for (v, want) in cases {
            assert_eq!(python_3_3f(v), want, "{v}");
        }
        assert_eq!(python_3_3f(f32::NAN), "nan");
        assert_eq!(python_3_3f(f32::NEG_INFINITY), "-inf");
    }

    #[test]
    fn label_names_as_python_repr_writes_them() {
        assert_eq!(python_str_repr("sports"), "'sports'");
        assert_eq!(python_str_repr("it's"), "\"it's\"");
        assert_eq!(python_str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(python_str_repr("x\\y\tz"), "'x\\\\y\\tz'");
        assert_eq!(python_str_repr("é"), "'é'");
    }
}

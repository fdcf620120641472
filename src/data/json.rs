//! JSON data files as HF `datasets`' json loader reads them (`load_dataset("json", ...)`): JSON
//! lines (one object per line, blank lines skipped), or one JSON array of objects, which datasets
//! also accepts (it reads such a file whole, and so does this reader; JSON lines stream).
//!
//! Rows come out as record batches of text columns, as the CSV reader's do, so every reader of
//! `table.rs` (training, streaming, check-data, the token cache, predict) reads JSON unchanged. A
//! cell becomes text as Python's `str()` writes the value `datasets` loads: a string as is, an
//! integer `3`, a float `1.0` / `1e-07`, a boolean `True`, a list `['a', 'b']` / `[0, 3]`; null
//! or a missing key is a null cell. A text column must hold strings: a number there is refused by
//! row and column (run_classification.py would fail in the tokenizer on it).
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A row: the object and its 1-based row number (objects counted, blank lines not).
pub type Object = (usize, Map<String, Value>);

/// How the cells of a column are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Strings only (null stays null; the caller decides if that is allowed).
    Text,
    /// Any value, as Python's `str()` writes it.
    Value,
}

enum Source {
    Lines { lines: std::io::Lines<BufReader<File>>, line: usize },
    Array(std::vec::IntoIter<Value>),
}

/// The objects of a JSON file, in file order.
pub struct Objects {
    path: PathBuf,
    source: Source,
    row: usize,
}

/// Opens `path`: a file whose first non-blank character is `[` is one array (read whole), any
/// other is JSON lines (read a line at a time).
pub fn objects(path: &Path) -> Result<Objects> {
    let mut file = BufReader::new(File::open(path).map_err(|e| Error::io(path, e))?);
    let first = loop {
        let buf = file.fill_buf().map_err(|e| Error::io(path, e))?;
        let Some(&b) = buf.iter().find(|b| !b.is_ascii_whitespace() && !b"\xef\xbb\xbf".contains(b)) else {
            if buf.is_empty() {
                break None;
            }
            let n = buf.len();
            file.consume(n);
            continue;
        };
        break Some(b);
    };
    let source = if first == Some(b'[') {
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| Error::io(path, e))?;
        let items: Vec<Value> = serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|e| Error::data(path, format!("not a JSON array of objects: {e}")))?;
        Source::Array(items.into_iter())
    } else {
        Source::Lines { lines: file.lines(), line: 0 }
    };
    Ok(Objects { path: path.to_path_buf(), source, row: 0 })
}

impl Objects {
    fn parse_next(&mut self) -> Option<Result<Value>> {
        match &mut self.source {
            Source::Array(items) => items.next().map(Ok),
            Source::Lines { lines, line } => loop {
                let text = match lines.next()? {
                    Ok(t) => t,
                    Err(e) => return Some(Err(Error::data(&self.path, format!("line {}: {e}", *line + 1)))),
                };
                *line += 1;
                let text = if *line == 1 { text.trim_start_matches('\u{feff}') } else { &text };
                if text.trim().is_empty() {
                    continue;
                }
                return Some(
                    serde_json::from_str(text)
                        .map_err(|e| Error::data(&self.path, format!("line {line}: not a JSON object: {e}"))),
                );
            },
        }
    }
}

impl Iterator for Objects {
    type Item = Result<Object>;

    fn next(&mut self) -> Option<Self::Item> {
        let value = self.parse_next()?;
        self.row += 1;
        Some(value.and_then(|v| match v {
            Value::Object(map) => Ok((self.row, map)),
            other => Err(Error::data(
                &self.path,
                format!("row {}: expected a JSON object, found {}", self.row, kind(&other)),
            )),
        }))
    }
}

/// The column names: the keys of the first object, then any new key of later objects in the
/// first rows (datasets takes the union of the keys over the file; a key seen only later is read
/// as null in the rows without it).
pub fn keys(path: &Path) -> Result<Vec<String>> {
    let (mut names, mut rows): (Vec<String>, usize) = (Vec::new(), 0);
    for obj in objects(path)?.take(crate::data::table::BATCH_ROWS) {
        rows += 1;
        for k in obj?.1.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    if rows == 0 {
        return Err(Error::data(path, "no JSON objects (expected JSON lines or an array of objects)"));
    }
    Ok(names)
}

/// What a JSON value is, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Python's `str()` of the value `datasets` loads for `v` (`None` for null).
pub fn python_str(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            // Beyond int64 pyarrow reads a number as a double, as it does one with a point.
            None => super::hf::python_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|x| match x {
                    Value::String(s) => format!("'{s}'"),
                    other => python_str(other).unwrap_or_else(|| "None".into()),
                })
                .collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(_) => v.to_string(),
    })
}

/// Streams `columns` as record batches of nullable Utf8 columns of at most `batch_rows` rows.
pub fn batches(
    path: &Path,
    columns: &[(String, Cell)],
    batch_rows: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    let mut objects = objects(path)?;
    let fields: Vec<Field> = columns.iter().map(|(n, _)| Field::new(n, DataType::Utf8, true)).collect();
    let schema = Arc::new(Schema::new(fields));
    let columns = columns.to_vec();
    let path = path.to_path_buf();
    let mut done = false;
    Ok(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut cells: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(batch_rows); columns.len()];
        let mut n = 0;
        while n < batch_rows.max(1) {
            let Some(obj) = objects.next() else { break };
            let (row, map) = match obj {
                Ok(o) => o,
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            };
            for ((name, how), out) in columns.iter().zip(cells.iter_mut()) {
                match (map.get(name), how) {
                    (None | Some(Value::Null), _) => out.push(None),
                    (Some(Value::String(s)), _) => out.push(Some(s.clone())),
                    (Some(v), Cell::Value) => out.push(python_str(v)),
                    (Some(v), Cell::Text) => {
                        done = true;
                        let msg = format!("{} ({v}), expected a string", kind(v));
                        return Some(Err(Error::DataRow {
                            path: path.clone(),
                            row,
                            column: name.clone(),
                            msg,
                        }));
                    }
                }
            }
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let arrays: Vec<ArrayRef> =
            cells.into_iter().map(|c| Arc::new(StringArray::from(c)) as ArrayRef).collect();
        Some(RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::data(&path, e.to_string())))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = crate::test_support::fresh_dir(&format!("json-{name}"));
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn read(p: &Path, cols: &[(&str, Cell)]) -> Result<Vec<Vec<Option<String>>>> {
        let cols: Vec<(String, Cell)> = cols.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        let mut out = vec![Vec::new(); cols.len()];
        for b in batches(p, &cols, 2)? {
            let b = b?;
            for (i, col) in b.columns().iter().enumerate() {
                let a = col.as_any().downcast_ref::<StringArray>().unwrap();
                out[i].extend(a.iter().map(|x| x.map(str::to_string)));
            }
        }
        Ok(out)
    }

    #[test]
    fn lines_and_arrays_read_alike_with_python_str_labels() {
        let lines = write(
            "a.jsonl",
            "\u{feff}{\"t\":\"x\",\"l\":1}\n\n{\"t\":\"y\",\"l\":2.5}\n{\"t\":\"z\",\"l\":true}\n{\"t\":\"w\",\"l\":[\"a\",3]}\n{\"t\":\"v\"}\n",
        );
        let array = write(
            "a.json",
            " [{\"t\":\"x\",\"l\":1},{\"t\":\"y\",\"l\":2.5},\n{\"t\":\"z\",\"l\":true},{\"t\":\"w\",\"l\":[\"a\",3]},{\"t\":\"v\",\"l\":null}]",
        );
        for p in [lines, array] {
            let got = read(&p, &[("t", Cell::Text), ("l", Cell::Value)]).unwrap();
            let want = |v: &[Option<&str>]| v.iter().map(|x| x.map(str::to_string)).collect::<Vec<_>>();
            assert_eq!(got[0], want(&[Some("x"), Some("y"), Some("z"), Some("w"), Some("v")]), "{p:?}");
            assert_eq!(got[1], want(&[Some("1"), Some("2.5"), Some("True"), Some("['a', 3]"), None]));
            assert_eq!(keys(&p).unwrap(), ["t", "l"]);
        }
    }

    #[test]
    fn a_number_in_a_text_column_and_a_bad_line_name_the_row() {
        let p = write("b.jsonl", "{\"t\":\"x\"}\n\n{\"t\":3}\n");
        let err = read(&p, &[("t", Cell::Text)]).unwrap_err().to_string();
        assert!(err.contains("row 2") && err.contains("'t'") && err.contains("an integer"), "{err}");
        let p = write("c.jsonl", "{\"t\":\"x\"}\n{\"t\":\n");
        let err = read(&p, &[("t", Cell::Text)]).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("c.jsonl"), "{err}");
        let p = write("d.json", "[1, 2]");
        let err = read(&p, &[("t", Cell::Text)]).unwrap_err().to_string();
        assert!(err.contains("row 1") && err.contains("expected a JSON object"), "{err}");
    }
}

//! run_classification.py's reading of data files (`LabelList::Hf`, JSON, joined text columns)
//! against the real thing: each case's files are loaded by HF `datasets.load_dataset` and run
//! through the script's own label and preprocessing lines (scripts/parity/hf_data_load.py cuts them from
//! the script), and bertfit must give the same problem type, label list, warnings, texts and
//! label ids.
use std::path::{Path, PathBuf};

use bertfit::data::dataset::{read_dataset_as, Columns, DataSource, SplitData};
use bertfit::data::hf::infer_problem_type;
use bertfit::data::labels::{LabelFormat, LabelList, LabelMap, LabelTally, Target};
use serde_json::{json, Value};

use crate::common;

/// The reference copy of run_classification.py (vendored verbatim).
fn script() -> PathBuf {
    common::repo().join("scripts/parity/hf/run_classification.py")
}

struct Case {
    name: &'static str,
    /// (file name, contents) for train, validation, test (empty name: none).
    files: [(&'static str, &'static str); 3],
    text_columns: &'static str,
    delimiter: &'static str,
    label: &'static str,
}

fn write(dir: &Path, case: &Case) -> [Option<PathBuf>; 3] {
    case.files.map(|(name, text)| {
        (!name.is_empty()).then(|| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        })
    })
}

fn python_side(dir: &Path, case: &Case, paths: &[Option<PathBuf>; 3]) -> Value {
    let mut spec = json!({
        "label_column": case.label,
        "text_column_names": case.text_columns,
        "text_column_delimiter": case.delimiter,
        "cache_dir": dir.join("hf-cache"),
        "list_dtype": true,
    });
    for (key, p) in ["train", "validation", "test"].into_iter().zip(paths) {
        if let Some(p) = p {
            spec[key] = json!(p);
        }
    }
    let helper = common::repo().join("scripts/parity/hf_data_load.py");
    let out = std::process::Command::new(common::python())
        .arg(helper)
        .arg(script())
        .arg(spec.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}\n{}", case.name, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn target_json(t: Target) -> Value {
    match t {
        Target::Class(i) => json!(i),
        Target::MultiHot(v) => json!(v.iter().map(|x| *x as f64).collect::<Vec<_>>()),
        Target::Value(v) => json!(v as f64),
    }
}

fn rust_side(case: &Case, paths: &[Option<PathBuf>; 3]) -> bertfit::error::Result<Value> {
    let train = paths[0].clone().unwrap();
    let names: Vec<String> = case.text_columns.split(',').map(str::to_string).collect();
    let columns = Columns {
        text: names[0].clone(),
        text_joined: names[1..].to_vec(),
        text_delimiter: case.delimiter.into(),
        label: case.label.into(),
        ..Columns::default()
    };
    let problem = infer_problem_type(&train, case.label)?;
    let format = LabelFormat { problem, list: LabelList::Hf, ..LabelFormat::default() };
    let source = DataSource::Files { train, validation: paths[1].clone(), test: paths[2].clone() };
    let ds = read_dataset_as(&source, &columns, LabelList::Hf)?;
    let splits = [("train", &ds.train), ("validation", &ds.validation), ("test", &ds.test)];
    let tally = |s: &SplitData| {
        if s.labelled {
            LabelTally::of(s, case.label, &format)
        } else {
            Ok(LabelTally::default())
        }
    };
    let (t, v, te) = (tally(&ds.train)?, tally(&ds.validation)?, tally(&ds.test)?);
    let map = LabelMap::from_tallies(&t, &[&v, &te], case.label, None)?;
    let warnings: Vec<String> =
        LabelMap::warnings(&t, [&v, &te], case.label).iter().map(|w| w.to_string()).collect();
    let mut out = serde_json::Map::new();
    for ((name, split), p) in splits.into_iter().zip(paths) {
        if p.is_none() {
            continue;
        }
        let texts: Vec<&str> = split.examples.iter().map(|e| e.text.as_str()).collect();
        let labels = map.encode(split, case.label)?;
        out.insert(
            name.into(),
            json!({"text": texts, "label": labels.into_iter().map(target_json).collect::<Vec<_>>()}),
        );
    }
    let label_list = if problem == bertfit::data::labels::ProblemType::Regression {
        Value::Null
    } else {
        json!(map.names)
    };
    Ok(
        json!({"problem_type": problem.hf_name(), "label_list": label_list, "warnings": warnings, "splits": out}),
    )
}

const CASES: &[Case] = &[
    Case {
        name: "csv int labels sort as text; a validation label is added",
        files: [
            ("train.csv", "sentence,label\n\"Hi, there\",2\n \"quoted\" word ,10\n\"two\nlines\",1\ncafé ☕, 2\n"),
            ("validation.csv", "sentence,label\nx,3\ny,+10\n"),
            ("", ""),
        ],
        text_columns: "sentence",
        delimiter: " ",
        label: "label",
    },
    Case {
        name: "csv float labels are regression, integer validation labels cast",
        files: [
            ("train.csv", "sentence,score\na,1.5\nb,2\nc,-3e-2\n"),
            ("validation.csv", "sentence,score\nd,4\n"),
            ("", ""),
        ],
        text_columns: "sentence",
        delimiter: " ",
        label: "score",
    },
    Case {
        name: "csv joined text columns, bool labels, a test file",
        files: [
            ("train.csv", "q,a,label\nwhy?,because,True\nhow,so,false\n"),
            ("validation.csv", "q,a,label\nwho, me ,TRUE\n"),
            ("test.csv", "q,a,label\nwhat,it,False\n"),
        ],
        text_columns: "q,a",
        delimiter: " [SEP] ",
        label: "label",
    },
    Case {
        name: "json lines: string labels, unicode escapes, blank lines, a test label added",
        files: [
            (
                "train.jsonl",
                "{\"sentence\": \"caf\\u00e9 \\\"x\\\"\", \"label\": \"DESC\", \"extra\": 1}\n\n{\"sentence\": \"b\", \"label\": \"ABBR\"}\n{\"label\": \"num\", \"sentence\": \"c\\nd\"}\n",
            ),
            ("validation.jsonl", "{\"sentence\": \"v\", \"label\": \"Zed\"}\n"),
            ("test.jsonl", "{\"sentence\": \"t\", \"label\": \"Zed\"}\n{\"sentence\": \"u\", \"label\": \"ENTY\"}\n"),
        ],
        text_columns: "sentence",
        delimiter: " ",
        label: "label",
    },
    Case {
        name: "json array: int labels, joined columns",
        files: [
            (
                "train.json",
                "[\n {\"a\": \"x\", \"b\": \"y\", \"label\": 0},\n {\"a\": \"p\", \"b\": \"q\", \"label\": 12},\n {\"a\": \"r\", \"b\": \"\", \"label\": 3}\n]\n",
            ),
            ("validation.json", "[{\"a\": \"m\", \"b\": \"n\", \"label\": 3}]"),
            ("", ""),
        ],
        text_columns: "a,b",
        delimiter: "-",
        label: "label",
    },
    Case {
        name: "json lines: float labels are regression",
        files: [
            ("train.jsonl", "{\"sentence\": \"a\", \"label\": 1}\n{\"sentence\": \"b\", \"label\": 0.25}\n"),
            ("validation.jsonl", "{\"sentence\": \"c\", \"label\": 2}\n"),
            ("", ""),
        ],
        text_columns: "sentence",
        delimiter: " ",
        label: "label",
    },
    Case {
        name: "json lines: lists of names are multi-label",
        files: [
            (
                "train.jsonl",
                "{\"sentence\": \"a\", \"label\": [\"wh\", \"long\"]}\n{\"sentence\": \"b\", \"label\": []}\n{\"sentence\": \"c\", \"label\": [\"Short\"]}\n",
            ),
            ("validation.jsonl", "{\"sentence\": \"d\", \"label\": [\"new\", \"wh\"]}\n"),
            ("", ""),
        ],
        text_columns: "sentence",
        delimiter: " ",
        label: "label",
    },
];

#[test]
fn data_files_read_as_run_classification_reads_them() {
    let dir = common::temp_dir("hf_data");
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let case_dir = dir.join(format!("case{i}"));
        std::fs::create_dir_all(&case_dir).unwrap();
        let paths = write(&case_dir, case);
        let mut want = python_side(&case_dir, case, &paths);
        assert!(want.get("error").is_none(), "{}: the script fails: {want}", case.name);
        if want["problem_type"] == "regression" {
            // The targets the loss gets are float32 (HF's too: the batch tensor); the script's
            // lists are float64.
            for split in want["splits"].as_object_mut().unwrap().values_mut() {
                for v in split["label"].as_array_mut().unwrap() {
                    *v = json!(v.as_f64().unwrap() as f32 as f64);
                }
            }
        }
        let got = rust_side(case, &paths).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        if got != want {
            failures.push(format!("{}:\n  bertfit {got}\n  script  {want}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! run_classification.py's data arguments: which local files become which split (its
//! `data_files`, `--remove_splits`, `--*_split_name`), the text and label columns, and the
//! problem type, with the script's errors for what it cannot run.
use std::path::{Path, PathBuf};

use super::value::Parsed;
use crate::data::dataset::{Columns, DataSource};
use crate::data::labels::{LabelFormat, LabelList, ProblemType};
use crate::error::{Error, Result};

/// The files (split name -> path) as the script's `raw_datasets` holds them, and whether it
/// evaluates (`do_eval`, which TrainingArguments turns on for any eval_strategy but `no`).
pub fn data_source(p: &Parsed, warnings: &mut Vec<String>) -> Result<(DataSource, bool)> {
    let mut splits = files(p)?;
    for name in p.str("remove_splits").map(|s| s.split(',').collect::<Vec<_>>()).unwrap_or_default() {
        take(&mut splits, name, "--remove_splits")?;
    }
    for (flag, target) in
        [("train_split_name", "train"), ("validation_split_name", "validation"), ("test_split_name", "test")]
    {
        if let Some(name) = p.str(flag) {
            // The script's `raw[target] = raw[name]; raw.pop(name)` (naming the split itself drops it).
            let path =
                splits_path(&splits, name).ok_or_else(|| no_split(&splits, name, &format!("--{flag}")))?;
            match splits.iter_mut().find(|(n, _)| n == target) {
                Some(slot) => slot.1 = path,
                None => splits.push((target.to_string(), path)),
            }
            take(&mut splits, name, &format!("--{flag}"))?;
        }
    }
    let get = |name: &str| splits_path(&splits, name);
    let do_train = p.bool("do_train") == Some(true);
    let do_eval = p.bool("do_eval") == Some(true) || p.str("eval_strategy").is_some_and(|s| s != "no");
    let do_predict = p.bool("do_predict") == Some(true);
    if do_train && get("train").is_none() {
        return Err(Error::usage("--do_train", "--do_train requires a train dataset."));
    }
    let mut validation = get("validation");
    if do_eval && validation.is_none() {
        if get("test").is_none() {
            return Err(Error::usage(
                "--do_eval",
                "--do_eval requires a validation or test dataset if validation is not defined.",
            ));
        }
        warnings.push("Validation dataset not found. Falling back to test dataset for validation.".into());
        validation = get("test");
    }
    let test = get("test");
    if (do_predict || p.str("test_file").is_some()) && test.is_none() {
        return Err(Error::usage(
            "--do_predict",
            "--do_predict requires a test dataset (a --test_file is read only with --do_predict)",
        ));
    }
    let train = get("train").ok_or_else(|| {
        Error::usage(
            "--train_file",
            "no train split left: run_classification.py reads its label list from the train split",
        )
    })?;
    Ok((DataSource::Files { train, validation, test }, do_eval))
}

fn splits_path(splits: &[(String, PathBuf)], name: &str) -> Option<PathBuf> {
    splits.iter().find(|(n, _)| n == name).map(|(_, p)| p.clone())
}

/// Removes a split by name, or the script's KeyError, worded.
fn take(splits: &mut Vec<(String, PathBuf)>, name: &str, flag: &str) -> Result<PathBuf> {
    let i = splits.iter().position(|(n, _)| n == name).ok_or_else(|| no_split(splits, name, flag))?;
    Ok(splits.remove(i).1)
}

fn no_split(splits: &[(String, PathBuf)], name: &str, flag: &str) -> Error {
    let names: Vec<&str> = splits.iter().map(|(n, _)| n.as_str()).collect();
    Error::usage(flag, format!("no split named '{name}' (the splits are {})", names.join(", ")))
}

/// The script's `data_files`: train and validation always (both required without a dataset
/// name), test only with --do_predict; one extension, csv or json.
fn files(p: &Parsed) -> Result<Vec<(String, PathBuf)>> {
    let (Some(train), Some(validation)) = (p.str("train_file"), p.str("validation_file")) else {
        return Err(Error::usage(
            "--train_file",
            "run_classification.py needs --train_file and --validation_file (\" training/validation file or a dataset name.\")",
        ));
    };
    let ext = |f: &str| f.rsplit('.').next().unwrap_or_default().to_string();
    if !matches!(ext(train).as_str(), "csv" | "json") {
        return Err(Error::usage(
            "--train_file",
            format!("`train_file` should be a csv or a json file, got {train}"),
        ));
    }
    if ext(validation) != ext(train) {
        return Err(Error::usage(
            "--validation_file",
            "`validation_file` should have the same extension (csv or json) as `train_file`.",
        ));
    }
    let mut splits = vec![
        ("train".to_string(), PathBuf::from(train)),
        ("validation".to_string(), PathBuf::from(validation)),
    ];
    if p.bool("do_predict") == Some(true) {
        let Some(test) = p.str("test_file") else {
            return Err(Error::usage(
                "--do_predict",
                "Need either a dataset name or a test file for `do_predict`.",
            ));
        };
        if ext(test) != ext(train) {
            return Err(Error::usage(
                "--test_file",
                "`test_file` should have the same extension (csv or json) as `train_file`.",
            ));
        }
        splits.push(("test".to_string(), PathBuf::from(test)));
    }
    Ok(splits)
}

/// `--text_column_names a,b` (joined with `--text_column_delimiter`; default: the "sentence"
/// column) and `--label_column_name` (default "label"); `--remove_columns` may drop others only.
pub fn columns(p: &Parsed) -> Result<Columns> {
    let names: Vec<String> = match p.str("text_column_names") {
        Some(list) => list.split(',').map(str::to_string).collect(),
        None => vec!["sentence".into()],
    };
    let label = p.str("label_column_name").unwrap_or("label").to_string();
    for removed in p.str("remove_columns").map(|s| s.split(',').collect::<Vec<_>>()).unwrap_or_default() {
        if removed == label || names.iter().any(|n| n == removed) {
            return Err(Error::usage(
                "--remove_columns",
                format!("removes '{removed}', which run_classification.py then reads (it would fail there)"),
            ));
        }
    }
    Ok(Columns {
        text: names[0].clone(),
        text_joined: names[1..].to_vec(),
        text_delimiter: p.str("text_column_delimiter").unwrap_or(" ").to_string(),
        label,
        ..Columns::default()
    })
}

/// `--do_regression`, else the train labels' type as the script reads it (float: regression, a
/// list: multi-label); the label list is the script's.
pub fn label_format(p: &Parsed, data: &DataSource, columns: &Columns) -> Result<LabelFormat> {
    let train: &Path = match data {
        DataSource::Files { train, .. } => train,
        DataSource::SplitColumn(path) => path,
    };
    let problem = match p.bool("do_regression") {
        Some(true) => ProblemType::Regression,
        Some(false) => match crate::data::hf::infer_problem_type(train, &columns.label)? {
            ProblemType::MultiLabelClassification => ProblemType::MultiLabelClassification,
            _ => ProblemType::SingleLabelClassification,
        },
        None => crate::data::hf::infer_problem_type(train, &columns.label)?,
    };
    Ok(LabelFormat { problem, list: LabelList::Hf, ..LabelFormat::default() })
}

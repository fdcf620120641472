//! The `*_results.json` files, as HF's `Trainer.save_metrics(split, metrics)` writes them for
//! run_classification.py: `<split>_results.json` with the split's metrics, and the same keys in
//! `all_results.json`, so the two never disagree. One writer for `bertfit train` and
//! `bertfit evaluate`; each file is replaced whole ([`write_atomic`]).
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::write_atomic;
use crate::error::{Error, Result};

pub const ALL_RESULTS: &str = "all_results.json";

/// What all_results.json holds.
enum Combined {
    /// A training run's: this run's results only (a previous run's keys do not linger).
    ThisRun(Map<String, Value>),
    /// An evaluation's: the folder's all_results.json (a training run's), updated with the new
    /// keys where there is one.
    UpdateExisting,
}

pub struct Results {
    dir: PathBuf,
    combined: Combined,
    /// HF's `save_metrics` bytes: `json.dump(metrics, f, indent=4, sort_keys=True)` (no final
    /// newline), all_results.json the folder's one updated (a stale file keeps its other keys).
    hf_format: bool,
}

impl Results {
    /// The results of the training run writing `dir`.
    pub fn for_run(dir: &Path) -> Results {
        Results { dir: dir.to_path_buf(), combined: Combined::ThisRun(Map::new()), hf_format: false }
    }

    /// Results added to whatever run `dir` holds.
    pub fn adding_to(dir: &Path) -> Results {
        Results { dir: dir.to_path_buf(), combined: Combined::UpdateExisting, hf_format: false }
    }

    /// Writes as HF's `Trainer.save_metrics` does ([`Results::hf_format`]'s field).
    pub fn hf_format(mut self, on: bool) -> Results {
        self.hf_format = on;
        self
    }

    /// `<split>_results.json` in the folder.
    pub fn path(&self, split: &str) -> PathBuf {
        self.dir.join(format!("{split}_results.json"))
    }

    /// Writes `<split>_results.json` and the same keys into all_results.json.
    pub fn save(&mut self, split: &str, metrics: &Map<String, Value>) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let file = format!("{split}_results.json");
        let text = |m: &Map<String, Value>| if self.hf_format { hf_json(m) } else { pretty(m) };
        write_atomic(&self.path(split), text(metrics).as_bytes())?;
        let all = self.dir.join(ALL_RESULTS);
        if self.hf_format {
            let mut map: Map<String, Value> = std::fs::read_to_string(&all)
                .ok()
                .and_then(|old| serde_json::from_str(&old).ok())
                .unwrap_or_default();
            map.extend(metrics.iter().map(|(k, v)| (k.clone(), v.clone())));
            return write_atomic(&all, hf_json(&map).as_bytes());
        }
        let combined = match &mut self.combined {
            Combined::ThisRun(map) => {
                map.extend(metrics.iter().map(|(k, v)| (k.clone(), v.clone())));
                map.clone()
            }
            Combined::UpdateExisting => {
                let old = match std::fs::read_to_string(&all) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(Error::io(&all, e)),
                };
                let mut map: Map<String, Value> = serde_json::from_str(&old).map_err(|e| {
                    Error::data(
                        &all,
                        format!("is not a JSON object ({e}); {file} was written, this file was not"),
                    )
                })?;
                map.extend(metrics.iter().map(|(k, v)| (k.clone(), v.clone())));
                map
            }
        };
        write_atomic(&all, pretty(&combined).as_bytes())
    }
}

fn pretty(map: &Map<String, Value>) -> String {
    serde_json::to_string_pretty(map).unwrap_or_default()
}

/// Python's `json.dumps(map, indent=4, sort_keys=True)`.
fn hf_json(map: &Map<String, Value>) -> String {
    use serde::Serialize;
    let sorted = sort_keys(&Value::Object(map.clone()));
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    let _ = sorted.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sort_keys(&m[k]))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(path: &Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_run_writes_each_split_and_their_union() {
        let dir = crate::test_support::fresh_dir("results-run");
        std::fs::write(dir.join(ALL_RESULTS), r#"{"stale": 1}"#).unwrap();
        let mut r = Results::for_run(&dir);
        r.save("train", &map(json!({"train_loss": 0.5, "epoch": 2.0}))).unwrap();
        r.save("eval", &map(json!({"eval_loss": 0.25, "epoch": 2.0}))).unwrap();
        assert_eq!(read(&dir.join("train_results.json")), json!({"train_loss": 0.5, "epoch": 2.0}));
        assert_eq!(read(&dir.join("eval_results.json")), json!({"eval_loss": 0.25, "epoch": 2.0}));
        assert_eq!(read(&dir.join(ALL_RESULTS)), json!({"train_loss": 0.5, "epoch": 2.0, "eval_loss": 0.25}));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hf_format_is_python_json_dump_indent_4_sorted_and_updates_all_results() {
        let dir = crate::test_support::fresh_dir("results-hf");
        std::fs::write(dir.join(ALL_RESULTS), r#"{"stale": 1}"#).unwrap();
        let mut r = Results::for_run(&dir).hf_format(true);
        r.save("train", &map(json!({"train_loss": 0.5, "epoch": 2.0, "total_flos": 6.0}))).unwrap();
        // Python: json.dumps({"train_loss": 0.5, "epoch": 2.0, "total_flos": 6.0}, indent=4, sort_keys=True)
        let want = "{\n    \"epoch\": 2.0,\n    \"total_flos\": 6.0,\n    \"train_loss\": 0.5\n}";
        assert_eq!(std::fs::read_to_string(dir.join("train_results.json")).unwrap(), want);
        assert_eq!(
            read(&dir.join(ALL_RESULTS)),
            json!({"stale": 1, "train_loss": 0.5, "epoch": 2.0, "total_flos": 6.0})
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_evaluation_updates_an_existing_all_results_only() {
        let dir = crate::test_support::missing_dir("results-eval");
        let mut r = Results::adding_to(&dir);
        r.save("eval", &map(json!({"eval_loss": 0.25}))).unwrap();
        assert!(!dir.join(ALL_RESULTS).exists());
        std::fs::write(dir.join(ALL_RESULTS), r#"{"train_loss": 0.5, "eval_loss": 9.0}"#).unwrap();
        r.save("eval", &map(json!({"eval_loss": 0.25}))).unwrap();
        assert_eq!(read(&dir.join(ALL_RESULTS)), json!({"train_loss": 0.5, "eval_loss": 0.25}));
        std::fs::write(dir.join(ALL_RESULTS), "[1]").unwrap();
        let err = r.save("eval", &map(json!({"eval_loss": 0.25}))).unwrap_err().to_string();
        assert!(err.contains("eval_results.json was written, this file was not"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

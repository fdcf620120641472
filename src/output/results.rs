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
}

impl Results {
    /// The results of the training run writing `dir`.
    pub fn for_run(dir: &Path) -> Results {
        Results { dir: dir.to_path_buf(), combined: Combined::ThisRun(Map::new()) }
    }

    /// Results added to whatever run `dir` holds.
    pub fn adding_to(dir: &Path) -> Results {
        Results { dir: dir.to_path_buf(), combined: Combined::UpdateExisting }
    }

    /// `<split>_results.json` in the folder.
    pub fn path(&self, split: &str) -> PathBuf {
        self.dir.join(format!("{split}_results.json"))
    }

    /// Writes `<split>_results.json` and the same keys into all_results.json.
    pub fn save(&mut self, split: &str, metrics: &Map<String, Value>) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let file = format!("{split}_results.json");
        write_atomic(&self.path(split), pretty(metrics).as_bytes())?;
        let all = self.dir.join(ALL_RESULTS);
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

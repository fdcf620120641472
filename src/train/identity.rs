//! Which run a checkpoint belongs to. A checkpoint continues a run only if the run would compute
//! the same thing: the same model and data files (by content, not by path: a folder may move
//! between nodes, a file may be edited in place) and the same value of every setting that changes
//! the computation (seed, learning rate, schedule, epochs, ...). `--resume-from-checkpoint latest`
//! in a folder that still holds another run's checkpoints is then refused by name instead of
//! training a model that is neither run.
//!
//! The per-rank batch size, the world size and the row counts are the [`super::checkpoint::Fingerprint`]'s:
//! they may change together across a resume at an epoch boundary.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::args::TrainArgs;
use crate::error::{Error, Result};
use crate::weights::resolve::ModelFiles;

/// Settings that do not change what is computed: where things go, how often they are saved or
/// logged, how fast the machine runs. Everything else in training_args.json is compared. The
/// model and data are compared by content (`files`), the world-size-dependent numbers by the
/// fingerprint, so their paths and `batch_size` are left out here too. The device is left out
/// so that a job requeued onto another partition continues (a different device rounds
/// differently, but it trains the same run), and so is the run's length (`epochs`, `max_steps`).
const NOT_COMPUTATION: &[&str] = &[
    "model",
    "data",
    "output_dir",
    "overwrite",
    "resume_from_checkpoint",
    "save_strategy",
    "save_steps",
    "save_total_limit",
    "threads",
    "prefetch",
    "token_cache",
    "device",
    "device_auto",
    "ddp_timeout",
    "ddp_backend",
    "eval_batch_size",
    "do_predict",
    "batch_size",
    // The run's length: a resume may extend a run (a finished one included) or stop it earlier.
    "epochs",
    "max_steps",
];

/// A run's identity (trainer_state.json's `bertfit_identity`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunIdentity {
    /// sha256 of each model and data file, by its role (`model/config.json`, `data/train`, ...).
    pub files: BTreeMap<String, String>,
    /// Every computation setting by its training_args.json name (nested names joined by '.').
    pub settings: BTreeMap<String, Value>,
}

impl RunIdentity {
    /// The identity of the run `args` describes, over the model files `model`.
    pub fn of(args: &TrainArgs, model: &ModelFiles) -> Result<Self> {
        let mut files = BTreeMap::new();
        files.insert("model/config.json".into(), sha256_file(&model.config)?);
        files.insert("model/weights".into(), sha256_file(model.weights.path())?);
        let vocab = model.dir.join("vocab.txt");
        if vocab.is_file() {
            files.insert("model/vocab.txt".into(), sha256_file(&vocab)?);
        }
        for (role, path) in data_roles(&args.data) {
            files.insert(format!("data/{role}"), sha256_file(path)?);
        }
        // The paths are left out (compared by content above); cleared first, so that one that is
        // not UTF-8 cannot fail the serialisation of the rest.
        let mut neutral = args.clone();
        neutral.output_dir = Default::default();
        neutral.token_cache = None;
        neutral.data = crate::data::dataset::DataSource::SplitColumn(Default::default());
        let value = serde_json::to_value(&neutral)
            .map_err(|e| Error::Runtime(format!("the run's settings cannot be written as JSON: {e}")))?;
        let mut settings = BTreeMap::new();
        flatten("", &value, &mut settings);
        settings.retain(|k, _| !NOT_COMPUTATION.contains(&k.as_str()));
        Ok(RunIdentity { files, settings })
    }

    /// What differs between a checkpoint's identity (`self`) and this run's (`now`), one entry
    /// per file or setting: `learning_rate: 0.0001 (checkpoint) vs 0.00002 (this run)`.
    pub fn differences(&self, now: &RunIdentity) -> Vec<String> {
        let hash = |v: Option<&String>| short(v.map(String::as_str));
        let setting = |v: Option<&Value>| v.map_or("(not set)".to_string(), Value::to_string);
        let mut out = compare(&self.files, &now.files, |k, a, b| {
            format!("file {k}: sha256 {} (checkpoint) vs {} (this run)", hash(a), hash(b))
        });
        out.extend(compare(&self.settings, &now.settings, |k, a, b| {
            format!("{k}: {} (checkpoint) vs {} (this run)", setting(a), setting(b))
        }));
        out
    }
}

/// `say(key, then, now)` for every key whose value differs (or is on one side only), in key order.
fn compare<V: PartialEq>(
    then: &BTreeMap<String, V>,
    now: &BTreeMap<String, V>,
    say: impl Fn(&str, Option<&V>, Option<&V>) -> String,
) -> Vec<String> {
    let mut keys: Vec<&String> = then.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| then.get(*k) != now.get(*k))
        .map(|k| say(k, then.get(k), now.get(k)))
        .collect()
}

/// The data files by the role they play.
fn data_roles(data: &crate::data::dataset::DataSource) -> Vec<(&'static str, &Path)> {
    use crate::data::dataset::DataSource;
    match data {
        DataSource::SplitColumn(p) => vec![("file", p.as_path())],
        DataSource::Files { train, validation, test } => [
            Some(("train", train)),
            validation.as_ref().map(|p| ("validation", p)),
            test.as_ref().map(|p| ("test", p)),
        ]
        .into_iter()
        .flatten()
        .map(|(r, p)| (r, p.as_path()))
        .collect(),
    }
}

/// Objects flattened into `a.b` keys, so a difference names the one setting, not its group.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn short(hash: Option<&str>) -> String {
    hash.map_or("(none)".to_string(), |h| h.chars().take(12).collect())
}

/// The file's sha256 in hex, read in 1 MiB pieces (model weights are hundreds of MB).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(lr: f64, data_hash: &str) -> RunIdentity {
        let mut files = BTreeMap::new();
        files.insert("data/file".to_string(), data_hash.to_string());
        let mut settings = BTreeMap::new();
        flatten("", &serde_json::json!({"learning_rate": lr, "recipe": {"optim": "adam"}}), &mut settings);
        RunIdentity { files, settings }
    }

    #[test]
    fn differences_name_the_file_and_the_nested_setting() {
        let a = identity(1e-4, "aaaaaaaaaaaaaaaa");
        assert!(a.differences(&a.clone()).is_empty());
        let mut b = identity(2e-5, "bbbbbbbbbbbbbbbb");
        b.settings.insert("recipe.optim".into(), Value::from("adamw"));
        let d = a.differences(&b);
        assert_eq!(
            d,
            [
                "file data/file: sha256 aaaaaaaaaaaa (checkpoint) vs bbbbbbbbbbbb (this run)",
                "learning_rate: 0.0001 (checkpoint) vs 0.00002 (this run)",
                "recipe.optim: \"adam\" (checkpoint) vs \"adamw\" (this run)",
            ]
        );
    }

    #[test]
    fn a_setting_present_on_one_side_only_is_a_difference() {
        let a = identity(1e-4, "x");
        let mut b = a.clone();
        b.settings.insert("seed".into(), Value::from(7));
        assert_eq!(a.differences(&b), ["seed: (not set) (checkpoint) vs 7 (this run)"]);
    }

    #[test]
    fn sha256_of_a_file() {
        let p = std::env::temp_dir().join(format!("bertfit-identity-{}", std::process::id()));
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_file(&p).unwrap();
    }
}

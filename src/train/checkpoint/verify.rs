//! A checkpoint is checked before anything of it is used: a resumed run trusts it with the model,
//! the optimizer, the data position and the random stream, and a damaged or edited one would
//! otherwise train on with exit 0 into a model that is neither run.
//!
//! - **Manifest** (`bertfit_manifest.json`, written last, checked first): every file's size and
//!   sha256, so a flipped bit, a truncated or replaced file is named before it is read.
//! - **Position**: the data order is this rank's share of this data (its length, every index a
//!   row of the file; one process: a permutation), and the step count agrees with it.
//! - **Optimizer state**: every trainable parameter has its step and moments once a step was
//!   taken, every step count equals the schedule's, and no value is NaN or infinite.
//! - **Best model**: `best_model_checkpoint` is a checkpoint folder of the same run folder.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{Position, TrainerState};
use crate::error::{Error, Result};
use crate::train::identity::sha256_file;

pub const MANIFEST: &str = "bertfit_manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    bytes: u64,
    sha256: String,
}

/// Writes `dir`'s manifest: every file in it (not the manifest itself) with its size and hash.
/// Called once the checkpoint is complete in place, so that a checkpoint with a manifest is one
/// whose every file was written.
pub fn write_manifest(dir: &Path) -> Result<()> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name == MANIFEST || !path.is_file() {
            continue;
        }
        let bytes = entry.metadata().map_err(|e| Error::io(&path, e))?.len();
        files.insert(name, Entry { bytes, sha256: sha256_file(&path)? });
    }
    let text = serde_json::to_string_pretty(&files).unwrap_or_default();
    crate::output::write_atomic(&dir.join(MANIFEST), text.as_bytes())
}

/// Whether `dir`'s files are those its manifest lists, byte for byte; `Ok(false)` when it has no
/// manifest (written before manifests existed, or cut off between the folder and its manifest).
pub fn check_manifest(dir: &Path) -> Result<bool> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let files: BTreeMap<String, Entry> = serde_json::from_str(&text)
        .map_err(|e| Error::config(&path, format!("not a bertfit checkpoint manifest: {e}")))?;
    for (name, want) in &files {
        let file = dir.join(name);
        let damaged = |what: String| {
            Error::weights(
                &file,
                format!("{what}: the checkpoint is damaged or was edited ({MANIFEST} lists it)"),
            )
        };
        let bytes = match std::fs::metadata(&file) {
            Ok(m) => m.len(),
            Err(_) => return Err(damaged("missing".into())),
        };
        if bytes != want.bytes {
            return Err(damaged(format!("{bytes} bytes, written as {}", want.bytes)));
        }
        let got = sha256_file(&file)?;
        if got != want.sha256 {
            return Err(damaged(format!("sha256 {got}, written as {}", want.sha256)));
        }
    }
    Ok(true)
}

/// What the position of a checkpoint must agree with in this run.
pub struct Expected {
    /// Micro-batches of one epoch (this rank's).
    pub batches_per_epoch: usize,
    pub accumulation: usize,
    /// Rows this rank visits per epoch, and the rows of the training file.
    pub rank_rows: usize,
    pub file_rows: usize,
    /// One process: the order is a permutation of the file's rows.
    pub permutation: bool,
}

/// The position in `state` (with this rank's `order`, if the epoch was in memory) against this run.
pub fn check_position(
    path: &Path,
    state: &TrainerState,
    order: Option<&[i64]>,
    expected: &Expected,
) -> Result<()> {
    let bad = |msg: String| Error::config(path, msg);
    let p: &Position = &state.bertfit_position;
    if p.epoch == 0 {
        return Err(bad("bertfit_position.epoch is 0 (epochs count from 1)".into()));
    }
    if p.batches_done > expected.batches_per_epoch {
        return Err(bad(format!(
            "bertfit_position.batches_done is {}, but an epoch has {} batches",
            p.batches_done, expected.batches_per_epoch
        )));
    }
    let per_epoch = expected.batches_per_epoch.div_ceil(expected.accumulation.max(1));
    let steps = (p.epoch - 1)
        .checked_mul(per_epoch)
        .and_then(|s| s.checked_add(p.batches_done.div_ceil(expected.accumulation.max(1))))
        .ok_or_else(|| bad(format!("bertfit_position.epoch {} is beyond any run", p.epoch)))?;
    if state.global_step != steps {
        return Err(bad(format!(
            "global_step is {}, but epoch {} after {} batches is step {steps} ({per_epoch} steps an epoch)",
            state.global_step, p.epoch, p.batches_done
        )));
    }
    if p.scheduled_steps > state.global_step {
        return Err(bad(format!(
            "bertfit_position.scheduled_steps is {}, more than global_step {}",
            p.scheduled_steps, state.global_step
        )));
    }
    let fraction = (p.epoch - 1) as f64 + p.batches_done as f64 / expected.batches_per_epoch.max(1) as f64;
    if (state.epoch - fraction).abs() > 1e-6 {
        return Err(bad(format!("epoch is {}, but the position is epoch {fraction}", state.epoch)));
    }
    let Some(order) = order else { return Ok(()) };
    let order_error = |msg: String| Error::weights(path.with_file_name(super::TRAINING_STATE), msg);
    if order.len() != expected.rank_rows {
        return Err(order_error(format!(
            "the data order has {} rows, this run's epoch {} (the data or the number of processes differs, or the file was edited)",
            order.len(),
            expected.rank_rows
        )));
    }
    if let Some(&i) = order.iter().find(|&&i| i < 0 || i as usize >= expected.file_rows) {
        return Err(order_error(format!(
            "the data order holds row index {i}, outside the training file's {} rows",
            expected.file_rows
        )));
    }
    if expected.permutation {
        let mut seen = vec![false; expected.file_rows];
        if let Some(&i) = order.iter().find(|&&i| std::mem::replace(&mut seen[i as usize], true)) {
            return Err(order_error(format!(
                "the data order holds row index {i} twice: it is not a permutation"
            )));
        }
    }
    Ok(())
}

/// The optimizer's saved state (`optimizer.<param>.<field>` tensors) for the trainable `params`,
/// after `scheduled_steps` optimizer steps.
pub fn check_optimizer_state(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    params: &[String],
    scheduled_steps: usize,
) -> Result<()> {
    let bad = |msg: String| Error::weights(path, format!("optimizer state: {msg}"));
    for name in params {
        for field in ["step", "exp_avg", "exp_avg_sq"] {
            let key = format!("optimizer.{name}.{field}");
            let Some(t) = tensors.get(&key) else {
                if scheduled_steps == 0 {
                    continue;
                }
                return Err(bad(format!(
                    "no '{key}', after {scheduled_steps} steps: Adam would restart from zero moments"
                )));
            };
            let finite = t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 1;
            if !finite {
                return Err(bad(format!("'{key}' holds NaN or infinite values")));
            }
            if field == "step" {
                let step = t.f_double_value(&[])?;
                if step != scheduled_steps as f64 {
                    return Err(bad(format!("'{key}' is {step}, but the run took {scheduled_steps} steps")));
                }
            }
        }
    }
    Ok(())
}

/// `best_model_checkpoint` must be a checkpoint of the same run folder as `dir` (the checkpoint
/// being resumed), at the best step it records.
pub fn check_best(dir: &Path, state: &TrainerState) -> Result<()> {
    let (Some(best), Some(step)) = (&state.best_model_checkpoint, state.best_global_step) else {
        return Ok(());
    };
    let best = Path::new(best);
    let folder = |p: &Path| p.parent().and_then(|q| q.canonicalize().ok());
    // trainer_state.json holds the path as text (lossy for a folder name that is not UTF-8): the
    // same text as this folder's is the same folder too.
    let as_text = |p: &Path| p.parent().map(|q| q.display().to_string());
    let same_run = (folder(best).is_some() && folder(best) == folder(dir))
        || (as_text(best).is_some() && as_text(best) == as_text(dir));
    let named = best.file_name() == Some(std::ffi::OsStr::new(&format!("checkpoint-{step}")));
    if !(same_run && named) {
        return Err(Error::config(
            dir.join(super::TRAINER_STATE),
            format!(
                "best_model_checkpoint is {}, not checkpoint-{step} of this run's folder {}",
                best.display(),
                dir.parent().map_or_else(String::new, |p| p.display().to_string())
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::checkpoint::Fingerprint;

    fn state(global_step: usize, epoch: usize, batches_done: usize, fraction: f64) -> TrainerState {
        TrainerState {
            global_step,
            epoch: fraction,
            log_history: Vec::new(),
            best_metric: None,
            best_global_step: None,
            best_model_checkpoint: None,
            total_flos: 0.0,
            bertfit_position: Position { epoch, batches_done, ..Default::default() },
            bertfit_run: serde_json::from_value::<Fingerprint>(serde_json::json!({
                "model_shape": "", "labels": [], "problem_type": "", "batch_size": 1,
                "gradient_accumulation_steps": 1, "max_length": 2, "padding": "", "shuffle": true,
                "streaming": false, "train_rows": 0, "optim": "", "precision": ""
            }))
            .unwrap(),
            bertfit_identity: None,
        }
    }

    const RUN: Expected =
        Expected { batches_per_epoch: 10, accumulation: 2, rank_rows: 4, file_rows: 4, permutation: true };

    #[test]
    fn the_position_must_agree_with_the_step_and_the_data() {
        let p = Path::new("trainer_state.json");
        // Epoch 2 after 3 micro-batches of 2-step windows: 5 + 2 steps.
        assert!(check_position(p, &state(7, 2, 3, 1.3), Some(&[3, 1, 0, 2]), &RUN).is_ok());
        let e = check_position(p, &state(8, 2, 3, 1.3), None, &RUN).unwrap_err().to_string();
        assert!(e.contains("global_step is 8, but epoch 2 after 3 batches is step 7"), "{e}");
        let e = check_position(p, &state(7, 2, 3, 1.0), None, &RUN).unwrap_err().to_string();
        assert!(e.contains("epoch is 1, but the position is epoch 1.3"), "{e}");
        let ok = state(7, 2, 3, 1.3);
        let e = check_position(p, &ok, Some(&[3, 1, 0]), &RUN).unwrap_err().to_string();
        assert!(e.contains("the data order has 3 rows, this run's epoch 4"), "{e}");
        let e = check_position(p, &ok, Some(&[3, 1, 9, 2]), &RUN).unwrap_err().to_string();
        assert!(e.contains("row index 9, outside the training file's 4 rows"), "{e}");
        let e = check_position(p, &ok, Some(&[0, 0, 0, 0]), &RUN).unwrap_err().to_string();
        assert!(e.contains("row index 0 twice"), "{e}");
        // A rank's share of a padded DistributedSampler order may repeat rows.
        let rank = Expected { permutation: false, ..RUN };
        assert!(check_position(p, &ok, Some(&[0, 0, 1, 2]), &rank).is_ok());
    }

    #[test]
    fn a_manifest_names_the_changed_file() {
        let dir = crate::test_support::fresh_dir("manifest");
        assert!(!check_manifest(&dir).unwrap(), "no manifest: nothing to check");
        std::fs::write(dir.join("a.bin"), [1u8, 2, 3]).unwrap();
        write_manifest(&dir).unwrap();
        assert!(check_manifest(&dir).unwrap());
        std::fs::write(dir.join("a.bin"), [1u8, 2, 4]).unwrap();
        let e = check_manifest(&dir).unwrap_err().to_string();
        assert!(e.contains("a.bin") && e.contains("sha256"), "{e}");
        std::fs::write(dir.join("a.bin"), [1u8]).unwrap();
        let e = check_manifest(&dir).unwrap_err().to_string();
        assert!(e.contains("1 bytes, written as 3"), "{e}");
        std::fs::remove_file(dir.join("a.bin")).unwrap();
        assert!(check_manifest(&dir).unwrap_err().to_string().contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

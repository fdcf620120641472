//! Checkpoints as HF Trainer lays them out: `output_dir/checkpoint-<step>/` holds the model in HF
//! layout, `trainer_state.json` (HF's fields: global_step, epoch, log_history, best_metric,
//! best_model_checkpoint) and, for an exact resume, `training_state.safetensors`: the optimizer's
//! and the loss scaler's state, libtorch's generator state (so dropout continues draw for draw)
//! and the epoch's example order. Each checkpoint is written beside its place and swapped in whole
//! (`output::StagedDir`), so a crash at any moment leaves every earlier checkpoint complete.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::output::{fsync_dir, hooks, TEMP_MARKER};

pub mod hf;
mod restore;
mod save;
pub mod verify;

pub const TRAINER_STATE: &str = "trainer_state.json";
/// bertfit's own part of a checkpoint's (and a final model's) state: where in the run it was
/// taken, the run's fingerprint and identity, whether the run finished. trainer_state.json holds
/// HF's TrainerState fields only, since `TrainerState.load_from_json` takes no others.
pub const BERTFIT_STATE: &str = "bertfit_state.json";
pub const TRAINING_STATE: &str = "training_state.safetensors";
const PREFIX: &str = "checkpoint-";

/// Where in the run a checkpoint was taken (bertfit's part of trainer_state.json).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// The epoch in progress (1-based) and the micro-batches of it already trained on.
    pub epoch: usize,
    pub batches_done: usize,
    /// The epoch's running figures, so its `Epoch N, Loss` line is the uninterrupted run's.
    pub epoch_loss_sum: f64,
    pub epoch_steps: usize,
    pub epoch_samples: usize,
    /// Optimizer updates the schedule has counted (skipped fp16 steps not included).
    pub scheduled_steps: usize,
    /// A streamed epoch's shuffle seed (an in-memory epoch's order is in the tensors).
    pub stream_seed: Option<u64>,
    pub evals_without_improvement: usize,
}

/// What must match for a checkpoint to continue this run; each difference is reported by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fingerprint {
    pub model_shape: String,
    pub labels: Vec<String>,
    pub problem_type: String,
    /// Per rank.
    pub batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub max_length: usize,
    pub padding: String,
    pub shuffle: bool,
    pub streaming: bool,
    /// Training rows each rank visits per epoch (DistributedSampler's `num_samples` across ranks).
    pub train_rows: usize,
    pub optim: String,
    pub precision: String,
    /// Processes of the run (checkpoints written before this field existed: one).
    #[serde(default = "one")]
    pub world_size: usize,
}

fn one() -> usize {
    1
}

/// The fields that depend on the world size, compared by [`Fingerprint::check_resume`] through
/// what they imply when the world size changes.
const PER_WORLD: [&str; 3] = ["batch_size", "train_rows", "world_size"];

impl Fingerprint {
    /// The fields that differ, as `name: checkpoint value vs this run's`.
    pub fn differences(&self, now: &Fingerprint) -> Vec<String> {
        let (a, b) =
            (serde_json::to_value(self).unwrap_or_default(), serde_json::to_value(now).unwrap_or_default());
        let (Value::Object(a), Value::Object(b)) = (a, b) else { return vec!["fingerprint".into()] };
        a.iter().filter(|(k, v)| b.get(*k) != Some(v)).map(|(k, v)| format!("{k}: {v} vs {}", b[k])).collect()
    }

    /// Examples per optimizer step over all ranks.
    pub fn global_batch(&self) -> usize {
        self.batch_size * self.world_size * self.gradient_accumulation_steps
    }

    /// Optimizer steps per epoch (what the schedule counts).
    fn steps_per_epoch(&self) -> usize {
        self.train_rows.div_ceil(self.batch_size.max(1)).div_ceil(self.gradient_accumulation_steps.max(1))
    }

    /// Whether this run (`now`) can continue from a checkpoint of `self` taken at `position`;
    /// `Err` says why not, to follow the checkpoint's folder name in a message.
    ///
    /// The same world size: every field must match. Another world size is allowed only where the
    /// data position allows it: at an epoch boundary (the next epoch's shards are drawn afresh for
    /// the new world), with the same global batch (per-rank batch x world size x accumulation) and
    /// steps per epoch, so every step averages as many examples and the schedule counts the same
    /// steps, and with per-rank row counts that one training file of the same size gives both.
    pub fn check_resume(&self, now: &Fingerprint, position: &Position) -> std::result::Result<(), String> {
        if self.world_size == now.world_size {
            let differences = self.differences(now);
            if differences.is_empty() {
                return Ok(());
            }
            return Err(format!("is from another run; it differs in {}", differences.join("; ")));
        }
        let (then, here) = (self.world_size, now.world_size);
        if position.batches_done > 0 {
            return Err(format!(
                "was written mid-epoch (epoch {}, after {} batches per rank) by a run of world size {then}, \
                 and this run has world size {here}: the rest of that epoch is each rank's shard of an order \
                 that depends on the world size. Resume it with {then} processes, or resume with {here} from \
                 a checkpoint written at an epoch's end (--save-strategy epoch)",
                position.epoch, position.batches_done
            ));
        }
        let mut differences: Vec<String> = self
            .differences(now)
            .into_iter()
            .filter(|d| !PER_WORLD.iter().any(|f| d.starts_with(f)))
            .collect();
        if self.global_batch() != now.global_batch() {
            differences.push(format!(
                "global batch (per-rank batch x world size x accumulation): {} ({} x {then} x {}) vs {} ({} x {here} x {})",
                self.global_batch(),
                self.batch_size,
                self.gradient_accumulation_steps,
                now.global_batch(),
                now.batch_size,
                now.gradient_accumulation_steps
            ));
        } else if self.steps_per_epoch() != now.steps_per_epoch() {
            differences.push(format!(
                "optimizer steps per epoch: {} vs {}",
                self.steps_per_epoch(),
                now.steps_per_epoch()
            ));
        }
        if !self.streaming && !same_file_size(self.train_rows, then, now.train_rows, here) {
            differences.push(format!(
                "training rows: {} per rank of {then} vs {} per rank of {here} (no one file gives both)",
                self.train_rows, now.train_rows
            ));
        }
        if differences.is_empty() {
            Ok(())
        } else {
            Err(format!("is from another run; it differs in {}", differences.join("; ")))
        }
    }
}

/// Whether some row count n gives `a` rows to each of `wa` ranks and `b` to each of `wb`
/// (DistributedSampler pads: a rank gets ceil(n / w), so n lies in ((a - 1) wa, a wa]).
fn same_file_size(a: usize, wa: usize, b: usize, wb: usize) -> bool {
    let low = (a.saturating_sub(1) * wa).max(b.saturating_sub(1) * wb);
    let high = (a * wa).min(b * wb);
    low < high || (a == 0 && b == 0)
}

/// A checkpoint's state as bertfit reads it: HF's trainer_state.json fields that resuming needs,
/// with bertfit_state.json's fields (checkpoints written before bertfit_state.json existed hold
/// them in trainer_state.json; [`read_state`] reads both layouts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    pub global_step: usize,
    /// Fractional epochs done, as HF counts them.
    pub epoch: f64,
    pub log_history: Vec<Value>,
    pub best_metric: Option<f64>,
    pub best_global_step: Option<usize>,
    pub best_model_checkpoint: Option<String>,
    /// HF's; absent in checkpoints written before bertfit wrote it.
    #[serde(default)]
    pub total_flos: f64,
    pub bertfit_position: Position,
    pub bertfit_run: Fingerprint,
    /// Which run wrote it (model and data files, every computation setting); absent in
    /// checkpoints written before run identities existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bertfit_identity: Option<super::identity::RunIdentity>,
}

/// The folder of the checkpoint at `step`.
pub fn folder(output_dir: &Path, step: usize) -> PathBuf {
    output_dir.join(format!("{PREFIX}{step}"))
}

/// Checkpoint folders in `output_dir` by step, oldest first (complete ones only: a checkpoint is
/// swapped in whole, so one with trainer_state.json is complete).
pub fn list(output_dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(output_dir) else { return Vec::new() };
    let mut found: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix(PREFIX)?.parse().ok()?;
            e.path().join(TRAINER_STATE).is_file().then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// `--resume-from-checkpoint PATH|latest`: the folder to continue from.
pub fn resolve(spec: &str, output_dir: &Path) -> Result<PathBuf> {
    if spec == "latest" {
        return list(output_dir).pop().map(|(_, p)| p).ok_or_else(|| {
            Error::usage(
                "--resume-from-checkpoint",
                format!("latest: {} holds no complete checkpoint", output_dir.display()),
            )
        });
    }
    let dir = PathBuf::from(spec);
    if hf::is_hf_checkpoint(&dir) {
        return Ok(dir);
    }
    for file in [TRAINER_STATE, TRAINING_STATE, "config.json", "model.safetensors"] {
        if !dir.join(file).is_file() {
            return Err(Error::usage(
                "--resume-from-checkpoint",
                format!("{} is not a bertfit checkpoint: it has no {file}", dir.display()),
            ));
        }
    }
    Ok(dir)
}

pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join(TRAINER_STATE);
    let mut state = read_json_object(&path)?;
    let own = dir.join(BERTFIT_STATE);
    if own.is_file() {
        state.extend(read_json_object(&own)?);
    }
    serde_json::from_value(Value::Object(state)).map_err(|e| {
        Error::config(&path, format!("not a bertfit trainer state (with {BERTFIT_STATE} beside it): {e}"))
    })
}

/// A JSON object file, as a map.
pub fn read_json_object(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::config(path, format!("not a JSON object: {e}")))
}

/// The tensors of training_state.safetensors by name (on the CPU).
pub fn read_tensors(dir: &Path) -> Result<HashMap<String, Tensor>> {
    let path = dir.join(TRAINING_STATE);
    // Damage is told in words, naming the tensor (weights::safetensors).
    Ok(crate::weights::safetensors::read(&path)?.into_iter().collect())
}

/// Serialises named tensors (any of the kinds a training state holds) as safetensors bytes.
pub fn tensors_to_bytes(named: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in named {
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let (dtype, size) = match t.kind() {
            Kind::Float => (Dtype::F32, 4),
            Kind::Double => (Dtype::F64, 8),
            Kind::Int64 => (Dtype::I64, 8),
            Kind::Int => (Dtype::I32, 4),
            Kind::Uint8 => (Dtype::U8, 1),
            other => return Err(Error::Runtime(format!("training state '{name}': cannot store {other:?}"))),
        };
        let mut bytes = vec![0u8; t.numel() * size];
        t.f_copy_data_u8(&mut bytes, t.numel())?;
        owned.push((name.clone(), dtype, t.size().iter().map(|&d| d as usize).collect(), bytes));
    }
    let views = owned
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| Error::Runtime(format!("training state '{name}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize(views, &None).map_err(|e| Error::Runtime(format!("training state: {e}")))
}

/// Deletes the oldest checkpoints beyond `limit`, never the newest (the one just written, which a
/// resume needs) nor the one named `keep` (the best): as HF's rotation, `limit` 1 with a best
/// model that is not the newest keeps both.
///
/// Each one is first renamed to a temporary name (`.checkpoint-<step>.bertfit-tmp-<pid>-rotated`)
/// and only then deleted: deleting in place removes its files one by one, so a crash midway would
/// leave a `checkpoint-<step>` folder that still looks complete (trainer_state.json is there) but
/// lacks its weights. Renamed away, it is never listed again, and [`crate::output::recover`]
/// clears what a crash leaves of it.
pub fn prune(output_dir: &Path, limit: usize, keep: Option<&Path>) -> Result<()> {
    let mut all = list(output_dir);
    let newest = all.pop();
    let mut excess = (all.len() + usize::from(newest.is_some())).saturating_sub(limit.max(1));
    for (_, dir) in all {
        if excess == 0 {
            break;
        }
        if Some(dir.as_path()) == keep {
            continue;
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let aside = output_dir.join(format!(".{name}{TEMP_MARKER}{}-rotated", std::process::id()));
        hooks::save_point("rotation-before-delete");
        std::fs::rename(&dir, &aside).map_err(|e| Error::io(&dir, e))?;
        fsync_dir(output_dir)?;
        hooks::save_point("rotation-set-aside");
        std::fs::remove_dir_all(&aside).map_err(|e| Error::io(&aside, e))?;
        hooks::save_point("rotation-deleted");
        excess -= 1;
    }
    Ok(())
}

/// Bytes of the files under `dir` (a checkpoint's size on disk, for its metrics record).
pub fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => size_of(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_and_the_best_and_leaves_nothing_aside() {
        let root = crate::test_support::missing_dir("prune");
        for step in [1, 2, 3, 4] {
            let dir = folder(&root, step);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(TRAINER_STATE), "{}").unwrap();
            std::fs::write(dir.join("model.safetensors"), [0u8; 10]).unwrap();
        }
        // A folder without trainer_state.json is not a checkpoint: neither counted nor deleted.
        std::fs::create_dir_all(folder(&root, 9)).unwrap();
        prune(&root, 2, Some(&folder(&root, 1))).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        names.sort();
        assert_eq!(names, ["checkpoint-1", "checkpoint-4", "checkpoint-9"]);
        assert_eq!(size_of(&root), 2 * (2 + 10));
        // A limit of 1 with the best not the newest keeps both (HF's rule): the newest is what a
        // resume needs, the best what the run ends with.
        prune(&root, 1, Some(&folder(&root, 1))).unwrap();
        assert_eq!(list(&root).into_iter().map(|(s, _)| s).collect::<Vec<_>>(), [1, 4]);
        prune(&root, 1, None).unwrap();
        assert_eq!(list(&root).into_iter().map(|(s, _)| s).collect::<Vec<_>>(), [4]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn read_state_takes_bertfits_fields_beside_or_inside_trainer_state() {
        let dir = crate::test_support::fresh_dir("read_state");
        let own = serde_json::json!({
            "bertfit_position": Position { epoch: 2, batches_done: 1, ..Default::default() },
            "bertfit_run": print(4, 1, 8),
        });
        // HF's layout: TrainerState's fields, bertfit's in bertfit_state.json.
        let hf = serde_json::json!({"global_step": 3, "epoch": 1.25, "log_history": [], "max_steps": 9,
            "best_metric": null, "best_global_step": null, "best_model_checkpoint": null, "total_flos": 6.0});
        std::fs::write(dir.join(TRAINER_STATE), hf.to_string()).unwrap();
        std::fs::write(dir.join(BERTFIT_STATE), own.to_string()).unwrap();
        let state = read_state(&dir).unwrap();
        assert_eq!((state.global_step, state.bertfit_position.epoch, state.total_flos), (3, 2, 6.0));
        // The layout before bertfit_state.json: everything in trainer_state.json (no total_flos).
        let mut old = hf.as_object().unwrap().clone();
        old.remove("total_flos");
        old.extend(own.as_object().unwrap().clone());
        std::fs::write(dir.join(TRAINER_STATE), serde_json::Value::Object(old).to_string()).unwrap();
        std::fs::remove_file(dir.join(BERTFIT_STATE)).unwrap();
        let state = read_state(&dir).unwrap();
        assert_eq!((state.global_step, state.bertfit_position.batches_done, state.total_flos), (3, 1, 0.0));
        // HF's own checkpoint (no bertfit fields anywhere) is refused in words.
        std::fs::write(dir.join(TRAINER_STATE), hf.to_string()).unwrap();
        let e = read_state(&dir).unwrap_err().to_string();
        assert!(e.contains("not a bertfit trainer state") && e.contains("bertfit_position"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn print(batch_size: usize, world_size: usize, train_rows: usize) -> Fingerprint {
        Fingerprint {
            model_shape: "m".into(),
            labels: vec!["a".into(), "b".into()],
            problem_type: "single_label_classification".into(),
            batch_size,
            gradient_accumulation_steps: 1,
            max_length: 48,
            padding: "Longest".into(),
            shuffle: false,
            streaming: false,
            train_rows,
            optim: "adam".into(),
            precision: "fp32".into(),
            world_size,
        }
    }

    fn at(epoch: usize, batches_done: usize) -> Position {
        Position { epoch, batches_done, ..Default::default() }
    }

    #[test]
    fn another_world_size_resumes_at_an_epoch_boundary_with_the_same_global_batch() {
        // 256 rows: 2 ranks x 4 (128 rows each) -> 1 rank x 8 (256 rows), and back.
        assert_eq!(print(4, 2, 128).check_resume(&print(8, 1, 256), &at(2, 0)), Ok(()));
        assert_eq!(print(8, 1, 256).check_resume(&print(4, 2, 128), &at(2, 0)), Ok(()));
        // 255 rows over 2 ranks pad to 128 each; 1 rank has 255.
        assert_eq!(print(4, 2, 128).check_resume(&print(8, 1, 255), &at(2, 0)), Ok(()));
        let e = print(4, 2, 128).check_resume(&print(4, 1, 256), &at(2, 0)).unwrap_err();
        assert!(
            e.contains("global batch (per-rank batch x world size x accumulation): 8 (4 x 2 x 1) vs 4"),
            "{e}"
        );
        let e = print(4, 2, 128).check_resume(&print(8, 1, 300), &at(2, 0)).unwrap_err();
        assert!(e.contains("training rows: 128 per rank of 2 vs 300 per rank of 1"), "{e}");
        let mut other = print(8, 1, 256);
        other.max_length = 64;
        let e = print(4, 2, 128).check_resume(&other, &at(2, 0)).unwrap_err();
        assert!(e.contains("max_length: 48 vs 64"), "{e}");
    }

    #[test]
    fn another_world_size_mid_epoch_is_refused_naming_both() {
        let e = print(4, 2, 128).check_resume(&print(8, 1, 256), &at(1, 5)).unwrap_err();
        assert!(e.contains("by a run of world size 2, and this run has world size 1"), "{e}");
        assert!(e.contains("--save-strategy epoch"), "{e}");
    }

    #[test]
    fn the_same_world_size_must_match_in_full() {
        assert_eq!(print(4, 2, 128).check_resume(&print(4, 2, 128), &at(1, 5)), Ok(()));
        let e = print(4, 2, 128).check_resume(&print(8, 2, 128), &at(2, 0)).unwrap_err();
        assert!(e.contains("is from another run; it differs in batch_size: 4 vs 8"), "{e}");
    }

    #[test]
    fn a_fingerprint_without_world_size_is_one_process() {
        let mut v = serde_json::to_value(print(8, 1, 256)).unwrap();
        v.as_object_mut().unwrap().remove("world_size");
        let f: Fingerprint = serde_json::from_value(v).unwrap();
        assert_eq!(f.world_size, 1);
    }
}

//! A checkpoint is verified before it is used: from a real run's mid-epoch checkpoint the test
//! makes a corpus of damaged and edited copies, and each is refused naming the file and what is
//! wrong, with no panic; the clean copy still resumes to the uninterrupted run's weights (sha256).
//! Each edit is tried twice where it matters: with the manifest in place (which names the edited
//! file) and with the manifest removed, as a hand edit that knows about it would do (then the
//! check of the content itself must catch it).
use std::path::{Path, PathBuf};

use bertfit::train::checkpoint::verify::MANIFEST;
use bertfit::train::checkpoint::{read_tensors, tensors_to_bytes, TRAINER_STATE, TRAINING_STATE};
use tch::Tensor;

use super::common::files::copy_tree;
use super::common::{read_json, run_bertfit, TrainRun};

struct Run {
    dir: PathBuf,
    model: PathBuf,
    data: PathBuf,
    full: PathBuf,
}

/// The run's arguments (checkpoints every 7 steps), resuming from `resume` if given.
fn args(run: &Run, out: &Path, resume: Option<&Path>) -> Vec<String> {
    let mut extra = vec!["--save-steps", "7"];
    if let Some(dir) = resume {
        extra.extend(["--resume-from-checkpoint", dir.to_str().unwrap()]);
    }
    TrainRun::new(&run.model, &run.data, out).extra(&extra).args()
}

/// Runs bertfit with `args`: (exit code, stderr).
fn exec(args: &[String]) -> (i32, String) {
    let (code, _, err) = run_bertfit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (code, err)
}

/// A copy of the run's checkpoint-7 as `out/checkpoint-7`, changed by `edit`.
fn tampered(run: &Run, name: &str, keep_manifest: bool, edit: impl FnOnce(&Path)) -> (PathBuf, PathBuf) {
    let out = run.dir.join(name);
    let _ = std::fs::remove_dir_all(&out);
    let ckpt = out.join("checkpoint-7");
    copy_tree(&run.full.join("checkpoint-7"), &ckpt);
    edit(&ckpt);
    if !keep_manifest {
        std::fs::remove_file(ckpt.join(MANIFEST)).unwrap();
    }
    (out, ckpt)
}

fn edit_state(ckpt: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    edit_json(&ckpt.join(TRAINER_STATE), edit);
}

/// bertfit's part of the state (the position, the run's fingerprint and identity).
fn edit_own(ckpt: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    edit_json(&ckpt.join(bertfit::train::checkpoint::BERTFIT_STATE), edit);
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = path.to_path_buf();
    let mut v = read_json(&path);
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn edit_tensors(ckpt: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let mut named: Vec<(String, Tensor)> = read_tensors(ckpt).unwrap().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut named);
    std::fs::write(ckpt.join(TRAINING_STATE), tensors_to_bytes(&named).unwrap()).unwrap();
}

fn replace(named: &mut [(String, Tensor)], key: &str, with: Tensor) {
    let slot = named.iter_mut().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key}"));
    slot.1 = with;
}

/// Resumes from `ckpt` into `out`: refused, no panic, each needle in the message.
fn refused(run: &Run, what: &str, (out, ckpt): (PathBuf, PathBuf), needles: &[&str]) {
    let (code, err) = exec(&args(run, &out, Some(&ckpt)));
    assert_ne!(code, 0, "{what}: resumed:\n{err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: stderr lacks {n:?}:\n{err}");
    }
    println!("{what}: {}", err.lines().find(|l| l.starts_with("error")).unwrap_or_default());
}

#[test]
fn tampered_checkpoints_are_refused_by_name_and_a_clean_one_resumes_bitwise() {
    let (dir, model, data) = super::common::fixtures::resume_fixture("tampered");
    let full = dir.join("full");
    let run = Run { dir: dir.clone(), model, data, full: full.clone() };
    let (code, err) = exec(&args(&run, &full, None));
    assert_eq!(code, 0, "{err}");

    // The manifest names the edited file.
    refused(
        &run,
        "a flipped bit in the weights",
        tampered(&run, "bitflip", true, |c| {
            let path = c.join("model.safetensors");
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 3;
            bytes[last] ^= 0x10;
            std::fs::write(&path, bytes).unwrap();
        }),
        &["checkpoint-7/model.safetensors", "sha256", "damaged or was edited"],
    );
    refused(
        &run,
        "an edited global_step (manifest kept)",
        tampered(&run, "step_manifest", true, |c| edit_state(c, |v| v["global_step"] = 9.into())),
        &["checkpoint-7/trainer_state.json", "damaged or was edited"],
    );
    // Without the manifest the content is checked itself.
    refused(
        &run,
        "an edited global_step",
        tampered(&run, "step", false, |c| edit_state(c, |v| v["global_step"] = 9.into())),
        &["trainer_state.json", "global_step is 9, but epoch 1 after 7 batches is step 7"],
    );
    refused(
        &run,
        "an edited batches_done",
        tampered(&run, "batches", false, |c| {
            edit_own(c, |v| v["bertfit_position"]["batches_done"] = 3.into())
        }),
        &["trainer_state.json", "global_step is 7, but epoch 1 after 3 batches is step 3"],
    );
    refused(
        &run,
        "an edited epoch",
        tampered(&run, "epoch", false, |c| edit_own(c, |v| v["bertfit_position"]["epoch"] = 2.into())),
        &["trainer_state.json", "global_step is 7, but epoch 2 after 7 batches is step 27"],
    );
    refused(
        &run,
        "best_model_checkpoint in another folder",
        tampered(&run, "best", false, |c| {
            edit_state(c, |v| {
                v["best_model_checkpoint"] = "/tmp/elsewhere/checkpoint-7".into();
                v["best_global_step"] = 7.into();
                v["best_metric"] = 0.5.into();
            })
        }),
        &["best_model_checkpoint is /tmp/elsewhere/checkpoint-7, not checkpoint-7 of this run's folder"],
    );
    refused(
        &run,
        "a shortened data order",
        tampered(&run, "short_order", false, |c| {
            edit_tensors(c, |t| replace(t, "data.order", Tensor::from_slice(&[0i64, 1, 2])))
        }),
        &["training_state.safetensors", "the data order has 3 rows, this run's epoch 320"],
    );
    refused(
        &run,
        "an all-zero data order",
        tampered(&run, "zero_order", false, |c| {
            edit_tensors(c, |t| {
                replace(t, "data.order", Tensor::zeros([320], (tch::Kind::Int64, tch::Device::Cpu)))
            })
        }),
        &["training_state.safetensors", "row index 0 twice: it is not a permutation"],
    );
    refused(
        &run,
        "a data order index out of range",
        tampered(&run, "range_order", false, |c| {
            edit_tensors(c, |t| {
                let order: Vec<i64> = (0..320).map(|i| if i == 100 { 5000 } else { i }).collect();
                replace(t, "data.order", Tensor::from_slice(&order))
            })
        }),
        &["training_state.safetensors", "row index 5000, outside the training file's 320 rows"],
    );
    refused(
        &run,
        "a removed optimizer state",
        tampered(&run, "no_optimizer", false, |c| {
            edit_tensors(c, |t| t.retain(|(k, _)| !k.starts_with("optimizer.")))
        }),
        &["training_state.safetensors", "optimizer state: no 'optimizer.", "after 7 steps"],
    );
    refused(
        &run,
        "a NaN in the optimizer state",
        tampered(&run, "nan_optimizer", false, |c| {
            edit_tensors(c, |t| {
                let (_, v) = t.iter_mut().find(|(k, _)| k.ends_with(".exp_avg_sq")).unwrap();
                *v = v.fill(f64::NAN);
            })
        }),
        &["training_state.safetensors", "holds NaN or infinite values"],
    );
    refused(
        &run,
        "a too-short generator state",
        tampered(&run, "short_rng", false, |c| {
            edit_tensors(c, |t| {
                replace(t, "rng.cpu", Tensor::zeros([16], (tch::Kind::Uint8, tch::Device::Cpu)))
            })
        }),
        &[
            "training_state.safetensors",
            "'rng.cpu' is a Uint8 tensor of 16 values; libtorch's CPU generator state is",
        ],
    );

    refused(
        &run,
        "a truncated training state",
        tampered(&run, "truncated_state", false, |c| {
            let path = c.join(TRAINING_STATE);
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        }),
        &["checkpoint-7/training_state.safetensors", "truncated"],
    );

    // The untouched copy resumes to the very weights of the uninterrupted run.
    let (out, ckpt) = tampered(&run, "clean", true, |_| {});
    let (code, err) = exec(&args(&run, &out, Some(&ckpt)));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let hash = |p: &Path| bertfit::train::identity::sha256_file(&p.join("model.safetensors")).unwrap();
    assert_eq!(hash(&out), hash(&full), "the clean checkpoint did not resume bitwise");
}

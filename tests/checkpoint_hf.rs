//! Checkpoints crossing both ways between bertfit and transformers' Trainer (5.24, torch 2.11),
//! against the real thing (scripts/parity/hf_resume.py): torch.save files bertfit writes load in
//! torch.load(weights_only=True) value for value, and torch's read back in bertfit; HF Trainer
//! resumes a bertfit AdamW checkpoint with bertfit's moments, step and schedule and trains on as
//! bertfit does; bertfit resumes an HF Trainer checkpoint and takes the steps HF's own resume takes.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bertfit::weights::pickle::read_torch_object;
use bertfit::weights::torch_save::{to_bytes, PyObj};
use serde_json::{json, Value};
use tch::{Kind, Tensor};

use super::common::fixtures::records;
use super::common::train_run::TrainRun;
use super::common::{assert_refused, read_json, run_python, temp_dir, tiny_model, write_csv};

/// Epochs, batch size and rows of the crossing runs: 12 rows in batches of 4, 3 steps an epoch.
const EPOCHS: &str = "3";
const STEPS: usize = 9;
/// The crossing point: inside the second epoch.
const AT: usize = 4;

/// The tiny model (dropout 0, so both sides' steps are deterministic) and its data, made once.
fn fixture() -> &'static (PathBuf, PathBuf) {
    static DIR: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("checkpoint_hf_fixture");
        let model = tiny_model(&dir, 2, Some(0.0), &[]);
        let words = ["good fun great", "bad awful dull", "great good film", "dull bad plot"];
        let mut rows: Vec<(String, String, &str)> = (0..12)
            .map(|i| (format!("this movie was {} number {i}", words[i % 4]), (i % 2).to_string(), "train"))
            .collect();
        rows.extend((0..4).map(|i| (format!("held out {}", words[i]), (i % 2).to_string(), "val")));
        let data = dir.join("data.csv");
        write_csv(&data, &rows);
        (model, data)
    })
}

/// The flags both sides share, as bertfit's: HF Trainer's recipe (AdamW, linear decay, clipping at
/// 1.0), the rows in file order, batches padded to --max-length.
const SHARED: &[(&str, &str)] = &[
    ("--epochs", EPOCHS),
    ("--batch-size", "4"),
    ("--max-length", "16"),
    ("--learning-rate", "1e-2"),
    ("--weight-decay", "0.01"),
    ("--lr-scheduler-type", "linear"),
    ("--max-grad-norm", "1.0"),
    ("--threads", "1"),
];

fn bertfit_run(out: &Path) -> TrainRun {
    let (model, data) = fixture();
    let mut run = TrainRun::bare(model, data, out)
        .switch("--overwrite")
        .flag("--optim", "adamw")
        .switch("--no-fused")
        .switch("--no-shuffle")
        .flag("--unpadded", "false");
    for (flag, value) in SHARED {
        run = run.flag(flag, value);
    }
    run
}

/// hf_resume.py's flags for the same run.
fn hf_args(command: &str, out: &Path) -> Vec<String> {
    let (model, data) = fixture();
    let mut args: Vec<String> = vec![command.into()];
    for (flag, value) in [("--model", model.as_path()), ("--data", data.as_path()), ("--out", out)] {
        args.extend([flag.to_string(), value.display().to_string()]);
    }
    args.extend(SHARED.iter().flat_map(|(f, v)| [f.to_string(), v.to_string()]));
    args
}

fn hf(args: &[String]) {
    run_python("parity/hf_resume.py", &args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// [[step, loss], ...] from hf_resume.py, by step.
fn hf_losses(path: &Path) -> Vec<(u64, f64)> {
    let v = read_json(path);
    v.as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap())).collect()
}

/// bertfit's step losses from a metrics.jsonl, by step.
fn bertfit_losses(metrics: &Path) -> Vec<(u64, f64)> {
    records(metrics, "step")
        .iter()
        .map(|r| (r["step"].as_u64().unwrap(), r["loss"].as_f64().unwrap()))
        .collect()
}

/// Asserts the same steps with losses within `tol` (relative); returns the largest difference.
fn same_losses(a: &[(u64, f64)], b: &[(u64, f64)], tol: f64) -> f64 {
    let steps = |v: &[(u64, f64)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(steps(a), steps(b), "different steps");
    let worst = a.iter().zip(b).map(|(x, y)| (x.1 - y.1).abs() / x.1.abs().max(1e-12)).fold(0.0, f64::max);
    assert!(worst <= tol, "losses differ by {worst:e} (relative): {a:?} vs {b:?}");
    worst
}

#[test]
fn hf_trainer_resumes_a_bertfit_checkpoint() {
    let dir = temp_dir("checkpoint_hf_to_hf");
    let out = dir.join("bertfit");
    let run = bertfit_run(&out).flag("--save-strategy", "steps").flag("--save-steps", &AT.to_string());
    super::common::check(&run.output(), "bertfit train");
    let ckpt = out.join(format!("checkpoint-{AT}"));
    let (losses, state, info) =
        (dir.join("losses.json"), dir.join("state.safetensors"), dir.join("info.json"));
    let mut args = hf_args("resume", &dir.join("hf"));
    for (flag, path) in
        [("--checkpoint", &ckpt), ("--losses", &losses), ("--state-out", &state), ("--info", &info)]
    {
        args.extend([flag.to_string(), path.display().to_string()]);
    }
    hf(&args);
    let info = read_json(&info);
    // HF resumed from bertfit's checkpoint as it is: its trainer_state.json needed no fix.
    assert_eq!(info["trainer_state_fixes"], json!([]), "bertfit's trainer_state.json is not HF's");
    assert_eq!(info["global_step"], json!(AT));
    assert!((info["epoch"].as_f64().unwrap() - AT as f64 / 3.0).abs() < 1e-12, "{}", info["epoch"]);
    // HF's optimizer after loading optimizer.pt: bertfit's moments and steps, bit for bit, each on
    // the parameter of the same name (the index mapping is HF's grouping).
    let theirs: HashMap<String, Tensor> = Tensor::read_safetensors(&state).unwrap().into_iter().collect();
    let ours: HashMap<String, Tensor> = Tensor::read_safetensors(ckpt.join("training_state.safetensors"))
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.starts_with("optimizer."))
        .collect();
    assert_eq!(theirs.len(), ours.len(), "optimizer state entries");
    for (name, t) in &ours {
        let h = theirs.get(name).unwrap_or_else(|| panic!("HF's optimizer has no {name}"));
        assert!(t.equal(h), "{name} differs");
    }
    let groups = info["param_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        (groups[0]["weight_decay"].as_f64(), groups[1]["weight_decay"].as_f64()),
        (Some(0.01), Some(0.0))
    );
    assert!(groups[0]["params"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| !n.as_str().unwrap().contains("LayerNorm")));
    assert_eq!(info["scheduler"]["last_epoch"], json!(AT));
    // HF trains on from there as bertfit's uninterrupted run did.
    let bertfit_after: Vec<(u64, f64)> =
        bertfit_losses(&out.join("metrics.jsonl")).into_iter().filter(|p| p.0 > AT as u64).collect();
    assert_eq!(bertfit_after.len(), STEPS - AT);
    let worst = same_losses(&bertfit_after, &hf_losses(&losses), 1e-4);
    eprintln!("HF's steps after bertfit's checkpoint-{AT}: worst relative loss difference {worst:e}");
}

#[test]
fn bertfit_resumes_an_hf_trainer_checkpoint() {
    let dir = temp_dir("checkpoint_hf_from_hf");
    let full = dir.join("full.json");
    let mut args = hf_args("train", &dir.join("hf"));
    args.extend(["--save-steps".into(), AT.to_string(), "--losses".into(), full.display().to_string()]);
    hf(&args);
    let ckpt = dir.join("hf").join(format!("checkpoint-{AT}"));
    assert!(!ckpt.join("training_state.safetensors").exists());
    // HF's own resume from its checkpoint, the reference for the steps after it.
    let resumed = dir.join("resumed.json");
    let mut args = hf_args("resume", &dir.join("hf_resume"));
    for (flag, path) in [("--checkpoint", &ckpt), ("--losses", &resumed)] {
        args.extend([flag.to_string(), path.display().to_string()]);
    }
    for (flag, name) in [("--state-out", "state.safetensors"), ("--info", "info.json")] {
        args.extend([flag.to_string(), dir.join(name).display().to_string()]);
    }
    hf(&args);
    let out = dir.join("bertfit");
    let ckpt_arg = ckpt.display().to_string();
    let run = bertfit_run(&out).flag("--resume-from-checkpoint", &ckpt_arg);
    let result = run.output();
    super::common::check(&result, "bertfit train --resume-from-checkpoint <HF checkpoint>");
    let stderr =
        String::from_utf8_lossy(&result.stderr).into_owned() + &String::from_utf8_lossy(&result.stdout);
    assert!(stderr.contains("HF Trainer checkpoint taken inside epoch 2"), "{stderr}");
    let ours = bertfit_losses(&out.join("metrics.jsonl"));
    let worst = same_losses(&hf_losses(&resumed), &ours, 1e-4);
    eprintln!("bertfit's steps after HF's checkpoint-{AT}: worst relative loss difference {worst:e}");
    // HF's resumed steps are its uninterrupted run's (the reference is the run itself).
    let uninterrupted: Vec<(u64, f64)> = hf_losses(&full).into_iter().filter(|p| p.0 > AT as u64).collect();
    same_losses(&uninterrupted, &ours, 1e-4);

    // The negative control: the same resume with the first moments lost is off by more than
    // the tolerance from the second step on.
    let lost = dir.join("lost-moments");
    super::common::files::copy_tree(&ckpt, &lost);
    run_python("parity/hf_resume.py", &["zero-exp-avg", lost.join("optimizer.pt").to_str().unwrap()]);
    let lost_arg = lost.display().to_string();
    let run = bertfit_run(&dir.join("lost_out")).flag("--resume-from-checkpoint", &lost_arg);
    super::common::check(&run.output(), "bertfit train (lost moments)");
    let off = bertfit_losses(&dir.join("lost_out").join("metrics.jsonl"));
    let worst = off.iter().zip(&ours).map(|(x, y)| (x.1 - y.1).abs() / y.1).fold(0.0, f64::max);
    assert!(worst > 1e-4, "losing the moments changed the losses by only {worst:e}");

    // A run that would not continue HF's is refused, naming what differs.
    let refused = |run: TrainRun, needles: &[&str]| {
        let args = run.args();
        assert_refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), needles)
    };
    let again = || bertfit_run(&dir.join("refused")).flag("--resume-from-checkpoint", &ckpt_arg);
    refused(again().flag("--weight-decay", "0.02"), &["--weight-decay", "0.01", "0.02"]);
    refused(again().flag("--optim", "adam"), &["--optim", "AdamW"]);
    refused(again().flag("--epochs", "4"), &["--lr-scheduler-type", "after 4 steps"]);
    refused(again().flag("--learning-rate", "2e-2"), &["--learning-rate", "base_lrs"]);
    refused(again().flag("--batch-size", "3"), &["epoch", "batch size"]);
}

#[test]
fn adam_checkpoints_have_no_hf_optimizer_files() {
    let dir = temp_dir("checkpoint_hf_adam");
    let out = dir.join("out");
    let run = bertfit_run(&out)
        .flag("--optim", "adam")
        .flag("--save-strategy", "steps")
        .flag("--save-steps", &STEPS.to_string());
    super::common::check(&run.output(), "bertfit train --optim adam");
    let ckpt = out.join(format!("checkpoint-{STEPS}"));
    assert!(ckpt.join("training_state.safetensors").is_file());
    assert!(!ckpt.join("optimizer.pt").exists() && !ckpt.join("scheduler.pt").exists());
}

/// hf_resume.py's description of an object (floats and tensors as bytes, so equal means equal).
fn describe(obj: &PyObj) -> Value {
    match obj {
        PyObj::None => Value::Null,
        PyObj::Bool(b) => json!(b),
        PyObj::Str(s) => json!(s),
        PyObj::Int(v) => json!({ "int": v.to_string() }),
        PyObj::Float(v) => json!({ "float": hex(&v.to_be_bytes()) }),
        PyObj::Tuple(items) => json!({ "tuple": items.iter().map(describe).collect::<Vec<_>>() }),
        PyObj::List(items) => json!({ "list": items.iter().map(describe).collect::<Vec<_>>() }),
        PyObj::Dict(items) => {
            json!({ "dict": items.iter().map(|(k, v)| json!([describe(k), describe(v)])).collect::<Vec<_>>() })
        }
        PyObj::Tensor(t) => {
            let t = t.contiguous();
            let mut bytes = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
            t.copy_data_u8(&mut bytes, t.numel());
            let dtype = match t.kind() {
                Kind::Float => "float32",
                Kind::Double => "float64",
                Kind::BFloat16 => "bfloat16",
                Kind::Int64 => "int64",
                Kind::Bool => "bool",
                Kind::Uint8 => "uint8",
                other => panic!("{other:?}"),
            };
            json!({ "tensor": dtype, "shape": t.size(), "bytes": hex(&bytes) })
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every kind of value the writer handles, and tensors of several dtypes, one not contiguous.
fn sample() -> PyObj {
    let s = PyObj::str;
    let ints: Vec<PyObj> =
        [0, 1, 255, 256, 65535, 65536, -1, -129, i32::MAX as i64, i32::MIN as i64, 1 << 40, i64::MIN]
            .into_iter()
            .map(PyObj::Int)
            .collect();
    let floats = [0.0, -0.0, 1e-8, 0.1 + 0.2, f64::MAX, f64::MIN_POSITIVE, -3.5].map(PyObj::Float).into();
    let tensors = vec![
        PyObj::Tensor(Tensor::arange(12, (Kind::Float, tch::Device::Cpu)).reshape([3, 4]).tr()),
        PyObj::Tensor(Tensor::from_slice(&[1.0f64, -2.5])),
        PyObj::Tensor(Tensor::from_slice(&[7i64, -9, 1 << 50])),
        PyObj::Tensor(Tensor::from_slice(&[true, false, true])),
        PyObj::Tensor(Tensor::from_slice(&[0u8, 255])),
        PyObj::Tensor(Tensor::from_slice(&[1.5f32, -2.0]).to_kind(Kind::BFloat16)),
        PyObj::Tensor(Tensor::from(3.0f32).reshape([0i64; 0])),
        PyObj::Tensor(Tensor::zeros([0, 3], (Kind::Float, tch::Device::Cpu))),
    ];
    PyObj::Dict(vec![
        (s("ints"), PyObj::List(ints)),
        (s("floats"), PyObj::Tuple(floats)),
        (s("misc"), PyObj::Tuple(vec![PyObj::None, PyObj::Bool(true), PyObj::Bool(false), s("ünï ✓ \n")])),
        (s("short tuples"), PyObj::List(vec![PyObj::Tuple(vec![]), PyObj::Tuple(vec![PyObj::Int(1)])])),
        (
            PyObj::Int(70000),
            PyObj::Dict(vec![(PyObj::Int(0), PyObj::List(vec![])), (s(""), PyObj::Dict(vec![]))]),
        ),
        (s("tensors"), PyObj::List(tensors)),
    ])
}

#[test]
fn torch_load_reads_what_bertfit_writes_value_for_value() {
    let dir = temp_dir("checkpoint_hf_torch_save");
    let (file, described) = (dir.join("sample.pt"), dir.join("sample.json"));
    let obj = sample();
    std::fs::write(&file, to_bytes(&obj, "sample").unwrap()).unwrap();
    run_python("parity/hf_resume.py", &["torch-load", file.to_str().unwrap(), described.to_str().unwrap()]);
    assert_eq!(read_json(&described), describe(&obj));
    // And bertfit's reader gives back what it wrote.
    assert_eq!(describe(&read_torch_object(&file).unwrap()), describe(&obj));
}

#[test]
fn bertfit_reads_what_torch_save_writes_value_for_value() {
    let dir = temp_dir("checkpoint_hf_torch_load");
    let (file, described) = (dir.join("torch.pt"), dir.join("torch.json"));
    run_python("parity/hf_resume.py", &["torch-save", file.to_str().unwrap(), described.to_str().unwrap()]);
    assert_eq!(describe(&read_torch_object(&file).unwrap()), read_json(&described));
}

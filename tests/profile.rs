//! `bertfit train --profile-ops`: libtorch's profiler over a window of training steps, its chrome
//! trace and per-op table, on a tiny model (2 layers: 5 layer norms per forward).
use std::path::Path;

use serde_json::Value;

use super::common::{assert_refused, read_json, run_bertfit, small_csv, temp_dir, tiny_model};

/// Trains `model` on `small_csv` (8 training rows) at --threads 1; returns stderr.
fn train(dir: &Path, model: &Path, out: &str, extra: &[&str]) -> String {
    let data = small_csv(dir);
    let out = dir.join(out);
    let mut args = vec![
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--max-length",
        "16",
        "--device",
        "cpu",
        "--threads",
        "1",
    ];
    args.extend(extra);
    let (code, _out, err) = run_bertfit(&args);
    assert_eq!(code, 0, "{err}");
    err
}

fn op<'a>(ops: &'a Value, name: &str) -> &'a Value {
    let rows = ops["ops"].as_array().unwrap();
    rows.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no {name} in {ops}"))
}

#[test]
fn profile_ops_records_the_window_of_steps() {
    let dir = temp_dir("profile_ops");
    let model = tiny_model(&dir, 2, None, &[]);
    let prof = dir.join("prof");
    let p = prof.to_str().unwrap();
    // 8 steps of one row: steps 3, 4, 5 are profiled.
    let err = train(
        &dir,
        &model,
        "out",
        &["--epochs", "1", "--batch-size", "1", "--profile-ops", p, "--profile-steps", "3"],
    );
    assert!(err.contains("--profile-ops: 3 training step(s)"), "{err}");
    assert!(err.contains("aten::"), "the top ops are printed:\n{err}");

    let ops = read_json(&prof.join("ops.json"));
    assert_eq!(ops["steps"], 3);
    // Three forwards of 2 layers: 5 layer norms each (embeddings + 2 per layer), and as many backwards.
    assert_eq!(op(&ops, "aten::native_layer_norm")["calls"], 15, "{ops}");
    assert_eq!(op(&ops, "aten::native_layer_norm_backward")["calls"], 15, "{ops}");
    let linear = ["aten::addmm", "aten::mm", "aten::linear"];
    assert!(linear.iter().all(|n| op(&ops, n)["calls"].as_u64().unwrap() > 0));
    // One thread runs every op: their self times fit in the window (nested time counted twice
    // would not), and each op's self time is within its total.
    let wall_ns = ops["wall_ms"].as_f64().unwrap() * 1e6;
    let rows = ops["ops"].as_array().unwrap();
    let self_ns: u64 = rows.iter().map(|r| r["self_ns"].as_u64().unwrap()).sum();
    let total_ns: u64 = rows.iter().map(|r| r["total_ns"].as_u64().unwrap()).sum();
    assert!(self_ns > 0 && (self_ns as f64) <= wall_ns, "self {self_ns} ns, wall {wall_ns} ns");
    assert!(total_ns > self_ns, "nesting was found: total {total_ns} > self {self_ns}");
    assert!(rows.iter().all(|r| r["self_ns"].as_u64() <= r["total_ns"].as_u64()));
    let selfs: Vec<u64> = rows.iter().map(|r| r["self_ns"].as_u64().unwrap()).collect();
    assert!(selfs.windows(2).all(|w| w[0] >= w[1]), "sorted by self time");

    let table = std::fs::read_to_string(prof.join("ops.txt")).unwrap();
    assert!(table.contains("self ms") && table.contains("aten::native_layer_norm"), "{table}");
    assert_eq!(table.lines().count(), rows.len() + 2, "a title, a header and every op:\n{table}");
    let trace = read_json(&prof.join("trace.json"));
    let names: Vec<&str> =
        trace["traceEvents"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(names.contains(&"aten::addmm") && names.contains(&"aten::native_layer_norm"));
}

#[test]
fn profile_ops_window_ends_with_the_epoch_or_never_opens() {
    let dir = temp_dir("profile_ops_short");
    let model = tiny_model(&dir, 2, None, &[]);
    let prof = dir.join("prof");
    let p = prof.to_str().unwrap();
    // 4 steps an epoch: steps 3 and 4, then the window closes before the validation and stays shut.
    let err = train(&dir, &model, "a", &["--epochs", "2", "--batch-size", "2", "--profile-ops", p]);
    assert!(err.contains("2 training step(s) (the epoch ended after 2 of 10 steps)"), "{err}");
    let ops = read_json(&prof.join("ops.json"));
    assert_eq!(op(&ops, "aten::native_layer_norm")["calls"], 10, "no evaluation forward in it: {ops}");

    // Two steps in all: nothing to profile, said so, nothing written.
    let none = dir.join("none");
    let err = train(
        &dir,
        &model,
        "b",
        &["--epochs", "1", "--batch-size", "4", "--profile-ops", none.to_str().unwrap()],
    );
    assert!(err.contains("nothing profiled, the run had 2 step(s)"), "{err}");
    assert!(!none.exists());

    let d = dir.join("data.csv");
    let base = ["train", "--model", model.to_str().unwrap(), "--data", d.to_str().unwrap(), "--output-dir"];
    let out = dir.join("c");
    let mut args = base.to_vec();
    args.extend([out.to_str().unwrap(), "--profile-ops", p, "--profile-steps", "0"]);
    assert_refused(&args, &["--profile-steps", "at least 1"]);
    let mut args = base.to_vec();
    args.extend([out.to_str().unwrap(), "--profile-steps", "3"]);
    assert_refused(&args, &["--profile-ops"]);
}

//! FLOP accounting and MFU in metrics.jsonl, the peak it is measured against (--peak-flops, the
//! per-machine cache, `bertfit bench-peak`), and `--precision auto`'s choice.
use std::path::Path;

use bertfit::data::tokenize::Tokenizer;
use bertfit::machine::cpu::CpuInfo;
use bertfit::machine::peak_cache::{key, lookup, replace};
use bertfit::machine::Peak;
use serde_json::Value;

use super::common::fixtures::records;
use super::common::{bertfit, check, read_json, small_csv, temp_dir, tiny_model};

fn train(
    dir: &Path,
    model: &Path,
    out: &str,
    peak_file: &Path,
    extra: &[&str],
) -> (std::process::Output, std::path::PathBuf) {
    let data = small_csv(dir);
    let out = dir.join(out);
    let mut cmd = bertfit();
    cmd.env("BERTFIT_PEAK_FILE", peak_file).args([
        "train",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--epochs",
        "1",
    ]);
    cmd.args(["--batch-size", "2", "--max-length", "16", "--model"]).arg(model).arg("--data").arg(&data);
    cmd.arg("--output-dir").arg(&out).args(extra);
    (cmd.output().unwrap(), out)
}

/// The hand count of train::mfu for the tiny model (2 layers, hidden 32, intermediate 48, 2
/// labels): 6·N per token, 12·L·H per token pair, 6·(pooler + classifier) per sequence.
fn hand_count(lengths: &[usize]) -> f64 {
    let (h, i, l, c) = (32.0, 48.0, 2.0, 2.0);
    let n = l * (4.0 * h * h + 2.0 * h * i);
    lengths
        .iter()
        .map(|&t| t as f64)
        .map(|t| 6.0 * n * t + 12.0 * l * h * t * t + 6.0 * (h * h + h * c))
        .sum()
}

#[test]
fn steps_and_epochs_report_useful_flops_and_mfu_against_the_given_peak() {
    let dir = temp_dir("mfu-flag");
    let model = tiny_model(&dir, 2, None, &[]);
    let peak_file = dir.join("peak.json");
    let (out, run) = train(&dir, &model, "out", &peak_file, &["--peak-flops", "1e9"]);
    check(&out, "train --peak-flops");
    let metrics = run.join("metrics.jsonl");
    let peak = &records(&metrics, "peak")[0];
    assert_eq!((peak["source"].as_str(), peak["flops_per_second"].as_f64()), (Some("flag"), Some(1e9)));
    assert_eq!(peak["dtype"], "fp32");
    assert!(!peak_file.exists(), "a given peak measures nothing and caches nothing");

    // Each step's FLOPs are the hand count over its rows' real token counts.
    let tokenizer = Tokenizer::from_dir(&model).unwrap();
    let texts: Vec<String> = (0..8).map(|i| format!("a short review number {i}")).collect();
    let steps = records(&metrics, "step");
    assert_eq!(steps.len(), 4);
    let mut total = 0.0;
    for s in &steps {
        let lengths: Vec<usize> = s["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| tokenizer.encode(&texts[r.as_u64().unwrap() as usize - 1], None, 16).input_ids.len())
            .collect();
        let flops = s["flops"].as_f64().unwrap();
        assert_eq!(flops, hand_count(&lengths), "step {s}");
        let (rate, mfu) = (s["flops_per_second"].as_f64().unwrap(), s["mfu"].as_f64().unwrap());
        assert!(rate > 0.0 && ((mfu - rate / 1e9) / mfu).abs() < 1e-12, "{s}");
        total += flops;
    }
    let epoch = &records(&metrics, "epoch")[0];
    assert_eq!(epoch["flops"].as_f64(), Some(total));
    let (rate, seconds) =
        (epoch["flops_per_second"].as_f64().unwrap(), epoch["train_seconds"].as_f64().unwrap());
    assert!(((rate * seconds - total) / total).abs() < 1e-9, "{epoch}");
    assert!(((epoch["mfu"].as_f64().unwrap() - rate / 1e9) / rate).abs() < 1e-9, "{epoch}");
}

#[test]
fn the_peak_is_measured_once_per_machine_then_cached_and_bench_peak_replaces_it() {
    let dir = temp_dir("mfu-cache");
    let model = tiny_model(&dir, 2, None, &[]);
    let peak_file = dir.join("cache").join("peak.json");
    let (out, run) = train(&dir, &model, "first", &peak_file, &[]);
    check(&out, "first run");
    let first = &records(&run.join("metrics.jsonl"), "peak")[0];
    assert_eq!((first["source"].as_str(), first["threads"].as_i64()), (Some("measured"), Some(1)));
    let cached = lookup(&peak_file, &key("cpu", "fp32", 1)).expect("the probe's figure is cached");
    assert_eq!(Some(cached.flops_per_second), first["flops_per_second"].as_f64());

    let (out, run) = train(&dir, &model, "second", &peak_file, &[]);
    check(&out, "second run");
    let second = &records(&run.join("metrics.jsonl"), "peak")[0];
    assert_eq!(second["source"], "cached");
    assert_eq!(second["flops_per_second"], first["flops_per_second"]);

    // bench-peak measures again and replaces even a higher figure.
    let fake = Peak { flops_per_second: 1e20, ..cached };
    replace(&peak_file, &key("cpu", "fp32", 1), &fake).unwrap();
    let out = bertfit()
        .env("BERTFIT_PEAK_FILE", &peak_file)
        .args(["bench-peak", "--device", "cpu", "--threads", "1", "--dtypes", "fp32"])
        .output()
        .unwrap();
    check(&out, "bench-peak");
    let text = String::from_utf8_lossy(&out.stdout);
    // The probe's size grows until a product is long enough to time (up to 2048 on a CPU).
    let line =
        text.lines().find(|l| l.trim_start().starts_with("fp32 GEMM ")).unwrap_or_else(|| panic!("{text}"));
    let shape = line.trim_start()["fp32 GEMM ".len()..].split(':').next().unwrap();
    let n: i64 = shape.split('x').next().unwrap().parse().unwrap();
    assert!(
        shape == format!("{n}x{n}x{n}") && (256..=2048).contains(&n) && (n as u64).is_power_of_two(),
        "{text}"
    );
    assert!(line.ends_with("TFLOP/s"), "{text}");
    assert!(text.contains(&format!("cached in {}", peak_file.display())), "{text}");
    let replaced = lookup(&peak_file, &key("cpu", "fp32", 1)).unwrap();
    assert!(replaced.flops_per_second < 1e20, "{replaced:?}");
}

/// A cached peak a run outpaces (MFU above 100%) was probed on a busy machine: the run says so
/// and drops it, and the next run measures again. A --peak-flops figure is the user's: kept.
#[test]
fn a_cached_peak_a_run_outpaces_is_said_and_measured_again() {
    let dir = temp_dir("mfu-outpaced");
    let model = tiny_model(&dir, 2, None, &[]);
    let peak_file = dir.join("peak.json");
    seed_peak(&peak_file, "fp32", 1e6, 2048);
    seed_peak(&peak_file, "bf16", 1e6, 2048);
    let (out, run) = train(&dir, &model, "outpaced", &peak_file, &[]);
    check(&out, "a run against a 1 MFLOP/s peak");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("above the fp32 GEMM peak its MFU is measured against (0.0 GFLOP/s"), "{err}");
    assert!(err.contains(&format!("dropped from {}", peak_file.display())), "{err}");
    let epoch = &records(&run.join("metrics.jsonl"), "epoch")[0];
    assert!(epoch["mfu"].as_f64().unwrap() > 1.0, "{epoch}");
    assert_eq!(lookup(&peak_file, &key("cpu", "fp32", 1)), None, "the outpaced figure is dropped");
    assert!(lookup(&peak_file, &key("cpu", "bf16", 1)).is_some(), "other entries stay");

    let (out, run) = train(&dir, &model, "after", &peak_file, &[]);
    check(&out, "the next run");
    let peak = &records(&run.join("metrics.jsonl"), "peak")[0];
    assert_eq!(peak["source"], "measured");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("GEMM peak its MFU"));

    seed_peak(&peak_file, "fp32", 1e6, 2048);
    let (out, _) = train(&dir, &model, "flag", &peak_file, &["--peak-flops", "1e6"]);
    check(&out, "--peak-flops 1e6");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("GEMM peak its MFU"));
    assert!(lookup(&peak_file, &key("cpu", "fp32", 1)).is_some(), "a --peak-flops run leaves the cache");
}

fn seed_peaks(path: &Path, bf16: f64, fp32: f64) {
    for (dtype, rate) in [("bf16", bf16), ("fp32", fp32)] {
        seed_peak(path, dtype, rate, 2048);
    }
}

/// Caches `rate` as the 1-thread CPU peak of `dtype`, as probed at `n`³.
fn seed_peak(path: &Path, dtype: &str, rate: f64, n: i64) {
    let p = Peak {
        flops_per_second: rate,
        dtype: dtype.into(),
        device: "cpu".into(),
        threads: 1,
        shape: [n; 3],
        measured_at: 0,
    };
    replace(path, &key("cpu", dtype, 1), &p).unwrap();
}

fn precision_of(run: &Path) -> String {
    let args: Value = read_json(&run.join("training_args.json"));
    args["recipe"]["precision"].as_str().unwrap_or_else(|| panic!("{args}")).to_string()
}

#[test]
fn precision_auto_picks_bf16_only_where_measured_fast_and_says_why() {
    let dir = temp_dir("mfu-auto");
    let model = tiny_model(&dir, 2, None, &[]);
    let has_bf16 = CpuInfo::read().has_bf16();
    for (name, bf16, fp32) in [("fast", 5e11, 1e11), ("slow", 1.2e11, 1e11)] {
        let peak_file = dir.join(format!("{name}.json"));
        seed_peaks(&peak_file, bf16, fp32);
        let (out, run) = train(&dir, &model, name, &peak_file, &["--precision", "auto"]);
        check(&out, name);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = match (has_bf16, name) {
            (false, _) => ("fp32", "no bf16 instructions"),
            (true, "fast") => ("bf16", "bf16 GEMM 0.50 TFLOP/s, fp32 0.10 TFLOP/s: 5.0x"),
            (true, _) => ("fp32", "1.2x; CPU bf16 instructions"),
        };
        assert!(
            stderr.contains(&format!("--precision auto: {}", want.0)) && stderr.contains(want.1),
            "{stderr}"
        );
        assert_eq!(precision_of(&run), want.0, "training_args.json records the choice");
        // MFU is against the peak of the dtype the run computes in.
        let peak = &records(&run.join("metrics.jsonl"), "peak")[0];
        assert_eq!(peak["dtype"], want.0);
    }
    // PyTorch's run is fp32, whatever the machine.
    let peak_file = dir.join("fast.json");
    let (out, run) =
        train(&dir, &model, "reproduce", &peak_file, &["--precision", "auto", "--reproduce-pytorch"]);
    check(&out, "reproduce");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--precision auto: fp32 (--reproduce-pytorch"));
    assert_eq!(precision_of(&run), "fp32");
    // HF's switches name a precision: not together with auto.
    let (out, _) = train(&dir, &model, "both", &peak_file, &["--precision", "auto", "--bf16"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("conflicts with --precision auto"));
}

/// An fp16 run on a CPU without AVX512-FP16 says its GEMMs are slow, with the figure it measures
/// MFU against; an fp32 run says nothing of it.
#[test]
fn fp16_on_a_cpu_without_fp16_gemms_says_it_is_slow() {
    let dir = temp_dir("mfu-fp16-note");
    let model = tiny_model(&dir, 2, None, &[]);
    let peak_file = dir.join("peak.json");
    seed_peak(&peak_file, "fp16", 2.5e9, 512);
    seed_peak(&peak_file, "fp32", 1e11, 2048);
    let (out, _) = train(&dir, &model, "fp16", &peak_file, &["--precision", "fp16", "--max-steps", "1"]);
    check(&out, "fp16");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said = stderr.contains("GEMMs measure 2.5 GFLOP/s here (512x512x512)");
    assert_eq!(said, !CpuInfo::read().avx512_fp16, "{stderr}");
    let (out, _) = train(&dir, &model, "fp32", &peak_file, &["--max-steps", "1"]);
    check(&out, "fp32");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("GFLOP/s"), "fp32 says nothing of fp16");
}

//! metrics.jsonl through `bertfit plot`'s reader, and what it reads drawn in memory (no file
//! written): a reader that panics or an axis that never finishes (libFuzzer's -timeout) is a crash.
#![no_main]
use bertfit::plot::{read_metrics, render, span};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let path = input_file("metrics.jsonl", data);
    if let Ok(metrics) = read_metrics(&path) {
        let (lo, hi) = span(metrics.steps.iter().map(|s| s.loss));
        assert!(lo.is_finite() && hi.is_finite() && hi > lo, "axis {lo}..{hi}");
        // Drawing costs milliseconds: keep the logs small enough that the fuzzer stays fast.
        if metrics.steps.len() + metrics.epochs.len() <= 2000 {
            let _ = render(&metrics);
        }
    }
});

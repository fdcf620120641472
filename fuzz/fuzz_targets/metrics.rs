//! metrics.jsonl through `bertfit plot`'s reader, and what it reads drawn in memory (no file
//! written): a reader that panics or an axis that never finishes (libFuzzer's -timeout) is a crash.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("bodies.rs");

fuzz_target!(|data: &[u8]| bodies::metrics(data));

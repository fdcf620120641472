//! The fuzz targets' regression test: each target's body (fuzz/fuzz_targets/bodies.rs, the code the
//! fuzzer runs) over every checked-in seed (fuzz/seeds/<target>/) and known input
//! (fuzz/known/<target>-*), and over the local corpus and crash artifacts
//! (fuzz/corpus/<target>/, fuzz/artifacts/<target>/, not committed) when there are any. A body
//! that panics on one fails its test naming the file. Fuzzing itself is `scripts/fuzz.sh SECONDS`.
//!
//! The fuzz build runs with debug assertions (an integer overflow is a crash); this release build
//! runs without them, so an overflow that wraps silently here is caught only by the fuzzer.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::common::repo;

include!("../fuzz/fuzz_targets/bodies.rs");

/// Every fuzz target: `TARGETS`, their names, and a test each that replays its inputs
/// ([`replay`]) through its body in bodies.rs, so that the list and the tests cannot differ.
macro_rules! targets {
    ($($target:ident),* $(,)?) => {
        const TARGETS: &[&str] = &[$(stringify!($target)),*];
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), bodies::$target);
            }
        )*
    };
}

targets!(checkpoint, config, csv, metrics, parquet, pickle, safetensors, token_cache, tokenizer);

/// The files in `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// `target`'s inputs: its seeds (there must be some), known inputs, local artifacts and corpus.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = repo().join("fuzz");
    let mut inputs = files(&fuzz.join("seeds").join(target));
    assert!(!inputs.is_empty(), "no seeds in fuzz/seeds/{target}/ (`scripts/fuzz.sh --seeds` writes them)");
    let prefix = format!("{target}-");
    inputs.extend(
        files(&fuzz.join("known"))
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix)),
    );
    inputs.extend(files(&fuzz.join("artifacts").join(target)));
    inputs.extend(files(&fuzz.join("corpus").join(target)));
    inputs
}

/// Runs `body` over each of `target`'s inputs; fails naming the inputs it panicked on (the first 20)
/// with their panic messages.
fn replay(target: &str, body: fn(&[u8])) {
    let inputs = inputs(target);
    let mut panicked = Vec::new();
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| body(&data))) {
            let message = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("(not a string)");
            panicked.push(format!("{}: {message}", path.strip_prefix(repo()).unwrap_or(path).display()));
        }
    }
    let _ = std::fs::remove_dir_all(bodies::scratch());
    let count = panicked.len();
    if count > 20 {
        panicked.truncate(20);
        panicked.push(format!("... and {} more", count - 20));
    }
    assert!(
        count == 0,
        "fuzz target `{target}` panicked on {count} of its {} inputs:\n{}",
        inputs.len(),
        panicked.join("\n")
    );
}

#[test]
fn every_target_and_known_input_is_replayed() {
    let targets: Vec<String> = files(&repo().join("fuzz/fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|t| t != "bodies")
        .collect();
    assert_eq!(targets, TARGETS, "fuzz/fuzz_targets/ and this file's targets differ");
    let unclaimed: Vec<PathBuf> = files(&repo().join("fuzz/known"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            !TARGETS.iter().any(|t| name.starts_with(&format!("{t}-")))
        })
        .collect();
    assert!(unclaimed.is_empty(), "fuzz/known/ inputs not named <target>-*: {unclaimed:?}");
}

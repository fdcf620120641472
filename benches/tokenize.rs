//! Tokenizer throughput on the movie-review snippets (all splits), max_length 512: `encode` one text
//! at a time on one thread, and `encode_batch` on rayon's threads (all cores). Throughput is counted
//! in texts; `scripts/bench_tokenize.sh` turns the estimates into texts/s and MB/s and sets them
//! beside HF's `BertTokenizerFast` on the same texts.
//!
//! Needs `source scripts/env.sh` (BERTFIT_ASSETS) or BERTFIT_MODEL / BERTFIT_DATA pointing at an
//! HF model folder and a `text,label,split` file.
use std::hint::black_box;
use std::path::PathBuf;

use bertfit::data::dataset::{read_with_split_column, Columns};
use bertfit::data::tokenize::Tokenizer;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const MAX_LENGTH: usize = 512;

fn asset(var: &str, under_assets: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return p.into();
    }
    let assets = std::env::var_os("BERTFIT_ASSETS")
        .unwrap_or_else(|| panic!("set {var} or BERTFIT_ASSETS (source scripts/env.sh)"));
    PathBuf::from(assets).join(under_assets)
}

/// Every text of the file, train, validation and test, in file order within each split.
fn texts() -> Vec<String> {
    let path = asset("BERTFIT_DATA", "data/movies.csv");
    let ds = read_with_split_column(&path, &Columns::default())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    [ds.train, ds.validation, ds.test].into_iter().flat_map(|s| s.examples).map(|e| e.text).collect()
}

fn tokenize(c: &mut Criterion) {
    let model = asset("BERTFIT_MODEL", "all-MiniLM-L6-v2");
    let tokenizer = Tokenizer::from_dir(&model)
        .unwrap_or_else(|e| panic!("cannot read the tokenizer of {}: {e}", model.display()));
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    eprintln!("tokenize: {} texts, {bytes} bytes of UTF-8, max_length {MAX_LENGTH}", texts.len());

    let mut group = c.benchmark_group("tokenize");
    group.throughput(Throughput::Elements(texts.len() as u64));
    // One iteration tokenizes the whole file (tens of ms): a few samples are enough.
    group.sample_size(10);
    group.bench_function("encode_1_thread", |b| {
        b.iter(|| {
            for t in &refs {
                black_box(tokenizer.encode(black_box(t), None, MAX_LENGTH));
            }
        })
    });
    group.bench_function("encode_batch_all_cores", |b| {
        b.iter(|| black_box(tokenizer.encode_batch(black_box(&refs), None, MAX_LENGTH)))
    });
    group.finish();
}

criterion_group!(benches, tokenize);
criterion_main!(benches);

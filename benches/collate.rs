//! `collate` of a batch of 16 tokenized movie snippets, padded to the longest example (the default)
//! and to 512 (the seed script's padding). Needs `source scripts/env.sh` (BERTFIT_ASSETS) or
//! BERTFIT_MODEL / BERTFIT_DATA.
use std::hint::black_box;
use std::path::PathBuf;

use bertfit::data::batch::{collate, Padding};
use bertfit::data::dataset::{read_with_split_column, Columns};
use bertfit::data::labels::Target;
use bertfit::data::tokenize::Tokenizer;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tch::Device;

const MAX_LENGTH: usize = 512;
const BATCH: usize = 16;

fn asset(var: &str, under_assets: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return p.into();
    }
    let assets = std::env::var_os("BERTFIT_ASSETS")
        .unwrap_or_else(|| panic!("set {var} or BERTFIT_ASSETS (source scripts/env.sh)"));
    PathBuf::from(assets).join(under_assets)
}

fn bench_collate(c: &mut Criterion) {
    let model = asset("BERTFIT_MODEL", "all-MiniLM-L6-v2");
    let data = asset("BERTFIT_DATA", "data/movies.csv");
    let tokenizer = Tokenizer::from_dir(&model)
        .unwrap_or_else(|e| panic!("cannot read the tokenizer of {}: {e}", model.display()));
    let ds = read_with_split_column(&data, &Columns::default())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", data.display()));
    // The first 16 training rows: a typical batch of the shuffled loader.
    let texts: Vec<&str> = ds.train.examples.iter().take(BATCH).map(|e| e.text.as_str()).collect();
    let encodings = tokenizer.encode_batch(&texts, None, MAX_LENGTH);
    let refs: Vec<_> = encodings.iter().collect();
    let labels: Vec<Target> = (0..refs.len() as i64).map(|i| Target::Class(i % 2)).collect();
    let pad = tokenizer.pad_token_id();
    let longest = refs.iter().map(|e| e.input_ids.len()).max().unwrap_or(0);
    eprintln!("collate: batch {}, longest {longest} tokens, max_length {MAX_LENGTH}", refs.len());

    let mut group = c.benchmark_group("collate");
    group.throughput(Throughput::Elements(refs.len() as u64));
    for (name, padding) in [("longest", Padding::Longest), ("max_length_512", Padding::MaxLength)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(collate(black_box(&refs), Some(&labels), padding, MAX_LENGTH, pad, Device::Cpu))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_collate);
criterion_main!(benches);

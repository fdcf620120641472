//! Forward + backward time per batch, padded (`Layout::padded`) against unpadded (`Layout::packed`
//! with each attention core), MiniLM with a new 2-class head, batch 32, CPU. A figure, not a test:
//! `scripts/bench_unpadded.sh` runs it. Two cases:
//! - the movie snippets at max length 128, in a shuffled order, padded to each batch's longest;
//! - long texts (consecutive movie snippets joined into ~300-500 tokens) at max length 512;
//! - mixed long texts (BERTFIT_LONG_DATA, a CSV from scripts/make_long_texts.py: short and long
//!   reviews in one shuffled batch) at max length 512.
//!
//! Batches and methods alternate within each repeat so load on the other core hits them alike;
//! the figure is the median over repeats of the mean time per batch.
//! Settings: BERTFIT_ASSETS (or BERTFIT_MODEL / BERTFIT_DATA), BENCH_THREADS (2), BENCH_BATCHES
//! (batches per case, 6), BENCH_REPEATS (5).
use std::path::PathBuf;
use std::time::Instant;

use bertfit::data::batch::{collate, Batch, Padding};
use bertfit::data::dataset::{read_with_split_column, Columns};
use bertfit::data::labels::Target;
use bertfit::data::tokenize::Tokenizer;
use bertfit::model::{cross_entropy, AttentionCore, BertConfig, Layout};
use bertfit::weights::{from_pretrained, resolve, Pretrained};
use tch::{Device, Tensor};

const BATCH: usize = 32;

fn asset(var: &str, under_assets: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return p.into();
    }
    let assets = std::env::var_os("BERTFIT_ASSETS")
        .unwrap_or_else(|| panic!("set {var} or BERTFIT_ASSETS (source scripts/env.sh)"));
    PathBuf::from(assets).join(under_assets)
}

fn env_usize(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Padded,
    Unpadded(AttentionCore),
}

const METHODS: [Method; 4] = [
    Method::Padded,
    Method::Unpadded(AttentionCore::Padded),
    Method::Unpadded(AttentionCore::PerSequence),
    Method::Unpadded(AttentionCore::Grouped),
];

/// One training step's compute without the optimizer: forward, loss, backward.
fn step(pre: &Pretrained, batch: &Batch, method: Method) {
    let labels = batch.labels.as_ref().expect("labelled batch");
    let layout = match method {
        Method::Padded => Layout::padded(&batch.attention_mask, Device::Cpu),
        Method::Unpadded(core) => Layout::packed(&batch.attention_mask, Device::Cpu, core),
    };
    let logits = pre.model.forward_t(&batch.input_ids, &batch.token_type_ids, &layout, true);
    cross_entropy(&logits, labels).backward();
    pre.vs.trainable_variables().iter_mut().for_each(Tensor::zero_grad);
}

/// Seconds per batch for each method, median over repeats.
fn time_case(pre: &Pretrained, batches: &[Batch], repeats: usize) -> Vec<f64> {
    for b in batches.iter().take(2) {
        for m in METHODS {
            step(pre, b, m); // warm-up: allocator, kernels
        }
    }
    let mut samples = vec![Vec::new(); METHODS.len()];
    for r in 0..repeats {
        let mut totals = vec![0.0; METHODS.len()];
        for b in batches {
            for k in 0..METHODS.len() {
                let i = (k + r) % METHODS.len(); // rotate who goes first
                let t = Instant::now();
                step(pre, b, METHODS[i]);
                totals[i] += t.elapsed().as_secs_f64();
            }
        }
        for (s, t) in samples.iter_mut().zip(totals) {
            s.push(t / batches.len() as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect()
}

/// A fixed pseudo-random order (xorshift), like a shuffled loader's.
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut v = items.to_vec();
    let mut x = seed;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn report(name: &str, batches: &[Batch], secs: &[f64]) {
    let real: i64 = batches.iter().map(|b| b.attention_mask.sum(tch::Kind::Int64).int64_value(&[])).sum();
    let computed: i64 = batches.iter().map(|b| b.attention_mask.numel() as i64).sum();
    let padding = 100.0 * (1.0 - real as f64 / computed as f64);
    let widths: Vec<i64> = batches.iter().map(|b| b.attention_mask.size()[1]).collect();
    println!(
        "{name}: {} batches of {BATCH}, padded widths {widths:?}, {padding:.0}% of padded tokens are padding",
        batches.len()
    );
    for (m, s) in METHODS.iter().zip(secs) {
        println!("  {:<28} {:>8.1} ms/batch   padded/this = {:.2}x", format!("{m:?}"), s * 1e3, secs[0] / s);
    }
}

fn main() {
    let threads = env_usize("BENCH_THREADS", 2);
    let n_batches = env_usize("BENCH_BATCHES", 6);
    let repeats = env_usize("BENCH_REPEATS", 5);
    tch::set_num_threads(threads as i32);
    let model = asset("BERTFIT_MODEL", "all-MiniLM-L6-v2");
    let data = asset("BERTFIT_DATA", "data/movies.csv");
    let files = resolve(model.to_str().expect("utf-8 path")).expect("model folder");
    let config = BertConfig::from_file(&files.config).expect("config.json");
    let pre = from_pretrained(&files, &config, Device::Cpu).expect("weights");
    let tokenizer = Tokenizer::from_dir(&model).expect("tokenizer");
    let ds = read_with_split_column(&data, &Columns::default()).expect("dataset");
    let texts: Vec<&str> = ds.train.examples.iter().map(|e| e.text.as_str()).collect();
    let pad = tokenizer.pad_token_id();
    println!("MiniLM, batch {BATCH}, {threads} threads, CPU; forward (train mode, dropout 0.1) + loss + backward per batch");

    let make = |texts: &[String], max_length: usize| -> Vec<Batch> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let enc = tokenizer.encode_batch(&refs, None, max_length);
        enc.chunks(BATCH)
            .take(n_batches)
            .map(|c| {
                let refs: Vec<_> = c.iter().collect();
                let labels: Vec<Target> = (0..refs.len() as i64).map(|i| Target::Class(i % 2)).collect();
                collate(&refs, Some(&labels), Padding::Longest, max_length, pad, Device::Cpu)
            })
            .collect()
    };

    let case = std::env::var("BENCH_CASE").unwrap_or_default(); // "short", "long", "mixed" or all
    if case.is_empty() || case == "short" {
        run_short(&pre, &texts, &make, repeats);
    }
    if case.is_empty() || case == "long" {
        run_long(&pre, &texts, &tokenizer, &make, repeats);
    }
    if case.is_empty() || case == "mixed" {
        if let Some(path) = std::env::var_os("BERTFIT_LONG_DATA") {
            let long =
                read_with_split_column(&PathBuf::from(path), &Columns::default()).expect("long-text dataset");
            let texts: Vec<String> = long.train.examples.iter().map(|e| e.text.clone()).collect();
            let batches = make(&shuffled(&texts, 11), 512);
            report(
                "mixed long texts (make_long_texts.py), max length 512",
                &batches,
                &time_case(&pre, &batches, repeats),
            );
        } else {
            println!("mixed long texts: skipped (set BERTFIT_LONG_DATA; scripts/bench_unpadded.sh does)");
        }
    }
}

fn run_short(
    pre: &Pretrained,
    texts: &[&str],
    make: &dyn Fn(&[String], usize) -> Vec<Batch>,
    repeats: usize,
) {
    let n_batches = env_usize("BENCH_BATCHES", 6);
    let short: Vec<String> =
        shuffled(texts, 42).into_iter().take(BATCH * n_batches).map(String::from).collect();
    let short_batches = make(&short, 128);
    report("movie snippets, max length 128", &short_batches, &time_case(pre, &short_batches, repeats));
}

fn run_long(
    pre: &Pretrained,
    texts: &[&str],
    tokenizer: &Tokenizer,
    make: &dyn Fn(&[String], usize) -> Vec<Batch>,
    repeats: usize,
) {
    let n_batches = env_usize("BENCH_BATCHES", 6);

    // Long texts: join consecutive snippets until a random target of 300-500 tokens (~words * 1.3).
    let mut long = Vec::new();
    let mut cur = String::new();
    let mut target = 300;
    for (i, t) in shuffled(texts, 7).into_iter().enumerate() {
        cur.push_str(t);
        cur.push(' ');
        if tokenizer.encode(&cur, None, 512).input_ids.len() >= target {
            long.push(std::mem::take(&mut cur));
            target = 300 + (i * 7919) % 200;
            if long.len() == BATCH * n_batches {
                break;
            }
        }
    }
    let long_batches = make(&long, 512);
    report(
        "joined snippets (300-500 tokens), max length 512",
        &long_batches,
        &time_case(pre, &long_batches, repeats),
    );
}

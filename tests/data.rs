//! Data at scale: CSV and Parquet give the same batches, padding and length grouping change no
//! per-example result, separate split files and the token cache give the same run, streaming
//! reads every row, and each bad input is refused with its file, row and column.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bertfit::data::batch::Padding;
use bertfit::data::dataset::{read_dataset, Columns, DataSource, Split};
use bertfit::data::labels::{LabelMap, LabelTally};
use bertfit::data::loader::{Batches, LoadedBatch, LoaderSettings};
use bertfit::data::prepared::{batches_of, Prepared};
use bertfit::data::sampler::{group_by_length, randperm, Mt19937, Shard};
use bertfit::data::stream::{self, StreamSpec};
use bertfit::data::tokenize::Tokenizer;
use bertfit::model::{BertConfig, Layout};
use bertfit::weights::{from_pretrained, resolve};
use tch::{Device, Tensor};

use super::common::fixtures::records;
use super::common::{
    assert_refused, check, dataset, minilm, minilm_str, python, read_json, run_bertfit, run_python, temp_dir,
    write_csv,
};

fn sms_parquet(dir: &Path) -> PathBuf {
    let out = dir.join("sms.parquet");
    let csv = dataset("sms");
    run_python(
        "parity/make_parquet.py",
        &["--csv", csv.to_str().unwrap(), "--out", out.to_str().unwrap(), "--row-group-size", "1000"],
    );
    out
}

fn settings(padding: Padding, max_length: usize) -> LoaderSettings {
    LoaderSettings { padding, max_length, pad_id: 0, prefetch: 2, pin_for: None }
}

fn label_map(split: &bertfit::data::dataset::SplitData) -> LabelMap {
    LabelMap::from_tallies(&LabelTally::of(split, "label", &Default::default()).unwrap(), &[], "label", None)
        .unwrap()
}

fn all_batches(mut b: Batches) -> Vec<LoadedBatch> {
    let v: Vec<LoadedBatch> = b.by_ref().map(|x| x.unwrap()).collect();
    b.finish(false).unwrap();
    v
}

fn same_batches(a: &[LoadedBatch], b: &[LoadedBatch]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.rows, y.rows);
        for (p, q) in [
            (&x.batch.input_ids, &y.batch.input_ids),
            (&x.batch.attention_mask, &y.batch.attention_mask),
            (&x.batch.token_type_ids, &y.batch.token_type_ids),
            (x.batch.labels.as_ref().unwrap(), y.batch.labels.as_ref().unwrap()),
        ] {
            assert_eq!(p.size(), q.size());
            assert!(p.equal(q), "batch tensors differ at rows {:?}", x.rows);
        }
    }
}

#[test]
fn csv_and_parquet_give_identical_batches_in_memory_and_streamed() {
    let dir = temp_dir("data_csv_parquet");
    let parquet = sms_parquet(&dir);
    let csv = dataset("sms");
    let columns = Columns::default();
    let tokenizer = Arc::new(Tokenizer::from_dir(&minilm()).unwrap());
    let (a, b) = (
        read_dataset(&DataSource::SplitColumn(csv.clone()), &columns).unwrap(),
        read_dataset(&DataSource::SplitColumn(parquet.clone()), &columns).unwrap(),
    );
    assert_eq!(a.train.examples, b.train.examples);
    assert_eq!(a.validation.examples, b.validation.examples);
    let labels = label_map(&a.train);
    let order = randperm(a.train.examples.len(), &mut Mt19937::new(1));
    let batches: Vec<Vec<usize>> = order.chunks(16).map(<[usize]>::to_vec).collect();
    let load = |ds: &bertfit::data::dataset::Dataset| {
        let set = Arc::new(Prepared::new(&ds.train, Some(&labels), "label", 128).unwrap());
        all_batches(batches_of(&set, batches.clone(), &tokenizer, settings(Padding::Longest, 128)).unwrap())
    };
    same_batches(&load(&a), &load(&b));

    let labels = Arc::new(labels);
    let stream = |path: &PathBuf| {
        let spec = StreamSpec {
            source: DataSource::SplitColumn(path.clone()),
            columns: columns.clone(),
            split: Split::Train,
            batch_size: 16,
            shuffle: Some((7, 500)),
            shard: Shard::WHOLE,
        };
        all_batches(
            stream::stream(spec, tokenizer.clone(), Some(labels.clone()), settings(Padding::Longest, 128))
                .unwrap(),
        )
    };
    let (x, y) = (stream(&csv), stream(&parquet));
    same_batches(&x, &y);
    // Streaming visits every training row exactly once, shuffled.
    let mut rows: Vec<usize> = x.iter().flat_map(|b| b.rows.clone()).collect();
    let in_file_order: Vec<usize> = a.train.examples.iter().map(|e| e.row).collect();
    assert_ne!(rows, in_file_order);
    rows.sort();
    assert_eq!(rows, in_file_order);
}

/// Every example's logits are the same whether its batch is padded to 512, to the batch's
/// longest, or grouped with examples of similar length.
#[test]
fn padding_and_length_grouping_change_no_per_example_logit() {
    let files = resolve(minilm().to_str().unwrap()).unwrap();
    let mut config = BertConfig::from_file(&files.config).unwrap();
    config.set_labels(&["negative".into(), "positive".into()]);
    let _generator = super::common::generator_lock();
    tch::manual_seed(0);
    let pre = from_pretrained(&files, &config, Device::Cpu).unwrap();
    let tokenizer = Arc::new(Tokenizer::from_dir(&minilm()).unwrap());
    let ds = read_dataset(&DataSource::SplitColumn(dataset("movies")), &Columns::default()).unwrap();
    let mut split = ds.validation.clone();
    split.examples = split.examples.into_iter().step_by(20).take(48).collect();
    let labels = label_map(&ds.train);
    let set = Arc::new(Prepared::new(&split, Some(&labels), "label", 512).unwrap());
    let n = set.len();
    let logits_by_row = |batches: Vec<Vec<usize>>, padding: Padding| -> HashMap<usize, Tensor> {
        let loader = batches_of(&set, batches, &tokenizer, settings(padding, 512)).unwrap();
        let mut out = HashMap::new();
        for loaded in all_batches(loader) {
            let b = &loaded.batch;
            let logits = tch::no_grad(|| {
                pre.model.forward_t(
                    &b.input_ids,
                    &b.token_type_ids,
                    &Layout::padded(&b.attention_mask, Device::Cpu),
                    false,
                )
            });
            for (k, row) in loaded.rows.iter().enumerate() {
                out.insert(*row, logits.get(k as i64));
            }
        }
        out
    };
    let order: Vec<usize> = (0..n).collect();
    let plain: Vec<Vec<usize>> = order.chunks(16).map(<[usize]>::to_vec).collect();
    let padded = logits_by_row(plain.clone(), Padding::MaxLength);
    let longest = logits_by_row(plain, Padding::Longest);
    let grouped_order = group_by_length(&randperm(n, &mut Mt19937::new(2)), &set.lengths(&tokenizer), 16);
    let grouped = logits_by_row(grouped_order.chunks(16).map(<[usize]>::to_vec).collect(), Padding::Longest);
    let mut worst: f64 = 0.0;
    for (row, p) in &padded {
        for other in [&longest, &grouped] {
            worst = worst.max((p - &other[row]).abs().max().double_value(&[]));
        }
    }
    assert_eq!(padded.len(), n);
    assert!(worst <= 1e-5, "per-example logits differ by {worst}");
}

fn tiny_run(dir: &Path, name: &str, data_args: &[&str], extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec![
        "train",
        "--model",
        minilm_str(),
        "--output-dir",
        out.to_str().unwrap(),
        "--overwrite",
        "--epochs",
        "1",
        "--max-steps",
        "4",
        "--max-length",
        "32",
        // One thread: these runs are compared for exact equality, and MKL's dynamic threading may
        // use fewer threads under load, which changes a reduction's order in the last bit.
        "--threads",
        "1",
    ];
    args.extend(data_args);
    args.extend(extra);
    let (code, _, err) = run_bertfit(&args);
    assert_eq!(code, 0, "{err}");
    out
}

/// Separate train/validation files, Parquet input and the token cache all make the same run as
/// the one CSV with a split column.
#[test]
fn split_files_parquet_and_token_cache_make_the_same_run() {
    let dir = temp_dir("data_same_run");
    let ds = read_dataset(&DataSource::SplitColumn(dataset("sms")), &Columns::default()).unwrap();
    let rows = |split: &[bertfit::data::dataset::Example], name: &'static str, n: usize| {
        split.iter().step_by(7).take(n).map(|e| (e.text.clone(), e.label.clone(), name)).collect::<Vec<_>>()
    };
    let (train, val) = (rows(&ds.train.examples, "train", 96), rows(&ds.validation.examples, "val", 32));
    let one = dir.join("one.csv");
    write_csv(&one, &[train.clone(), val.clone()].concat());
    let (train_csv, val_tsv) = (dir.join("train.csv"), dir.join("val.tsv"));
    write_csv(&train_csv, &train);
    let tsv: String = std::iter::once("text\tlabel\tsplit".to_string())
        .chain(val.iter().map(|(t, l, s)| format!("{}\t{l}\t{s}", t.replace(['\t', '"', '\n'], " "))))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&val_tsv, tsv + "\n").unwrap();
    let val_clean = dir.join("val_clean.csv");
    let clean: Vec<_> =
        val.iter().map(|(t, l, s)| (t.replace(['\t', '"', '\n'], " "), l.clone(), *s)).collect();
    write_csv(&val_clean, &[train.clone(), clean].concat());
    let one_parquet = dir.join("one.parquet");
    run_python(
        "parity/make_parquet.py",
        &[
            "--csv",
            val_clean.to_str().unwrap(),
            "--out",
            one_parquet.to_str().unwrap(),
            "--row-group-size",
            "50",
        ],
    );
    let cache = dir.join("cache");
    let runs = [
        tiny_run(&dir, "csv", &["--data", val_clean.to_str().unwrap()], &[]),
        tiny_run(
            &dir,
            "files",
            &["--train-file", train_csv.to_str().unwrap(), "--validation-file", val_tsv.to_str().unwrap()],
            &[],
        ),
        tiny_run(&dir, "parquet", &["--data", one_parquet.to_str().unwrap()], &[]),
        tiny_run(
            &dir,
            "cached1",
            &["--data", val_clean.to_str().unwrap()],
            &["--token-cache", cache.to_str().unwrap()],
        ),
        tiny_run(
            &dir,
            "cached2",
            &["--data", val_clean.to_str().unwrap()],
            &["--token-cache", cache.to_str().unwrap()],
        ),
    ];
    let reference = records(&runs[0].join("metrics.jsonl"), "step");
    for out in &runs[1..] {
        let steps = records(&out.join("metrics.jsonl"), "step");
        assert_eq!(steps.len(), reference.len());
        for (a, b) in reference.iter().zip(&steps) {
            assert_eq!(a["loss"], b["loss"], "{}: step {}", out.display(), a["step"]);
        }
        let (x, y) =
            (records(&runs[0].join("metrics.jsonl"), "epoch"), records(&out.join("metrics.jsonl"), "epoch"));
        assert_eq!(x[0]["val_accuracy"], y[0]["val_accuracy"], "{}", out.display());
    }
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "the second run reuses the cache entry");
    assert_eq!(read_json(&runs[2].join("config.json"))["id2label"]["1"], "spam");
}

#[test]
fn check_data_reports_rows_labels_and_lengths() {
    let (code, out, err) = run_bertfit(&[
        "check-data",
        "--model",
        minilm_str(),
        "--data",
        dataset("sms").to_str().unwrap(),
        "--max-length",
        "64",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("train: 4459 rows"), "{out}");
    assert!(out.contains("ham 3854"), "{out}");
    assert!(out.contains("tokens per row: p50 20"), "{out}");
    assert!(out.contains("truncated at --max-length 64: 78 rows"), "{out}");
}

/// A split's own file beside --data is refused, not ignored (clap waives `requires` for a flag
/// that conflicts with one given, so `--data` once let --validation-file pass unread).
#[test]
fn split_files_beside_data_are_refused() {
    let dir = temp_dir("data_split_files_beside_data");
    let data = dir.join("data.csv");
    std::fs::write(&data, "text,label,split\nx,a,train\ny,b,train\n").unwrap();
    let data = data.to_str().unwrap();
    let out = dir.join("out");
    for flag in ["--validation-file", "--test-file"] {
        assert_refused(
            &["check-data", "--model", minilm_str(), "--data", data, flag, data],
            &[flag, "--data"],
        );
        assert_refused(
            &[
                "train",
                "--model",
                minilm_str(),
                "--data",
                data,
                flag,
                data,
                "--output-dir",
                out.to_str().unwrap(),
            ],
            &[flag, "--data"],
        );
    }
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}

/// Each bad input is refused by check-data and by train with its file, row (or row group) and
/// column, and a non-zero exit.
#[test]
fn bad_data_is_named_by_file_row_and_column() {
    let dir = temp_dir("data_bad");
    run_python("parity/make_bad_parquet.py", &[dir.to_str().unwrap()]);
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).unwrap();
        p(name)
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            p("float_label.parquet"),
            vec!["float_label.parquet".into(), "column 'label' has type Float64".into()],
        ),
        (p("int_text.parquet"), vec!["int_text.parquet".into(), "column 'text' has type Int64".into()]),
        (
            p("null_text.parquet"),
            vec!["null_text.parquet".into(), "row 3".into(), "column 'text'".into(), "null".into()],
        ),
        (p("null_label.parquet"), vec!["null_label.parquet".into(), "row 2".into(), "column 'label'".into()]),
        (p("empty.parquet"), vec!["empty.parquet".into(), "no data rows".into()]),
        (p("unseen.parquet"), vec!["unseen.parquet".into(), "row 5".into(), "'meh'".into()]),
        (
            write("non_utf8.csv", b"text,label,split\nfine,a,train\nbad \xff byte,b,train\n"),
            vec!["non_utf8.csv".into(), "row 2".into(), "column 'text'".into(), "UTF-8".into()],
        ),
        (
            write("ragged.csv", b"text,label,split\nfine,a,train\nextra,b,train,oops\n"),
            vec!["ragged.csv".into(), "row 2".into()],
        ),
        (
            write("dup.csv", b"text,label,label,split\nx,a,a,train\n"),
            vec!["dup.csv".into(), "'label' twice".into()],
        ),
        (
            write("no_split_col.csv", b"text,label\nx,a\n"),
            vec!["no_split_col.csv".into(), "no column 'split'".into(), "--validation-file".into()],
        ),
        (write("empty.csv", b""), vec!["empty.csv".into()]),
        (
            write("only_val.csv", b"text,label,split\nx,a,val\ny,b,val\n"),
            vec!["only_val.csv".into(), "train split is empty".into()],
        ),
        (write("data.xlsx", b"{}"), vec!["data.xlsx".into(), "unknown data format".into()]),
        (write("data.json", b"{}\n"), vec!["data.json".into(), "no column 'text'".into()]),
    ];
    let good = sms_parquet(&dir);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = write("truncated.parquet", &bytes[..bytes.len() * 2 / 3]);
    let out = dir.join("out");
    let mut all = cases;
    all.push((truncated, vec!["truncated.parquet".into()]));
    for (file, needles) in &all {
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_refused(&["check-data", "--model", minilm_str(), "--data", file], &needles);
        assert_refused(
            &[
                "train",
                "--model",
                minilm_str(),
                "--data",
                file,
                "--output-dir",
                out.to_str().unwrap(),
                "--max-length",
                "16",
            ],
            &needles,
        );
    }
    // Streaming finds the same problems (the label-only first pass, then the rows themselves).
    for name in ["null_text.parquet", "unseen.parquet"] {
        assert_refused(
            &[
                "train",
                "--model",
                minilm_str(),
                "--data",
                &p(name),
                "--output-dir",
                out.to_str().unwrap(),
                "--streaming",
            ],
            &[name],
        );
    }
    assert!(!out.join("config.json").exists());
}

/// HF Trainer's epoch order (accelerate's SeedableRandomSampler): `torch.randperm(n,
/// generator=torch.Generator().manual_seed(seed + epoch))`, computed by torch itself.
#[test]
fn seedable_random_sampler_matches_hf_trainers_order() {
    use bertfit::data::sampler::{Sampler, SeedableRandomSampler};
    let code = "import torch\nfor e in range(3):\n    g = torch.Generator().manual_seed(42 + e)\n    \
                print(' '.join(map(str, torch.randperm(37, generator=g).tolist())))";
    let out = std::process::Command::new(python()).args(["-c", code]).output().unwrap();
    check(&out, "torch.randperm");
    let torch = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut rng = bertfit::random::RandomStream::manual_seed(0);
    let sampler = SeedableRandomSampler { seed: 42 };
    let ours: Vec<String> = (0..3)
        .map(|e| sampler.indices(37, e, &mut rng).iter().map(usize::to_string).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(ours, torch.lines().collect::<Vec<_>>());
}

/// `--shuffle_train_dataset` (🤗 datasets' `Dataset.shuffle(seed)`): NumPy's
/// `default_rng(seed).permutation(n)`, computed by NumPy itself, over sizes that exercise every
/// mask width of its bounded draws and seeds of one and two 32-bit words.
#[test]
fn shuffle_train_dataset_order_is_numpys() {
    let cases =
        [(0usize, 42u64), (1, 42), (2, 0), (37, 42), (1000, 7), (70_000, 123_456_789), (513, (1 << 32) + 5)];
    let code = format!(
        "import numpy as np\nfor n, s in {cases:?}:\n    print(' '.join(map(str, np.random.default_rng(s).permutation(n).tolist())))"
    );
    let out = std::process::Command::new(python()).args(["-c", &code]).output().unwrap();
    check(&out, "numpy permutation");
    let numpy = String::from_utf8_lossy(&out.stdout).into_owned();
    let ours: Vec<String> = cases
        .iter()
        .map(|&(n, s)| {
            bertfit::data::numpy_rng::permutation(n, s)
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let numpy: Vec<&str> = numpy.split('\n').take(cases.len()).collect();
    for ((case, ours), numpy) in cases.iter().zip(&ours).zip(numpy) {
        assert!(ours == numpy, "{case:?}: the orders differ");
    }
}

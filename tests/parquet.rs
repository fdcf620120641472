//! The Parquet reader against files pyarrow wrote (`scripts/parity/make_parquet.py`): the values
//! are the CSV's, in order; only the requested columns are decoded; broken files give errors that
//! name the file (and row group), never a panic.
use std::path::{Path, PathBuf};

use arrow_array::{
    Array, ArrayRef, DictionaryArray, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    StringViewArray,
};
use arrow_schema::DataType;
use bertfit::data::{csv, parquet};
use serde_json::Value;

use super::common::{dataset, run_python, temp_dir};

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Converts `csv` to Parquet; returns the file and its layout (see make_parquet.py).
fn make(csv: &Path, out: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--csv", csv.to_str().unwrap(), "--out", out.to_str().unwrap()];
    all.extend(args);
    serde_json::from_str(&run_python("parity/make_parquet.py", &all)).expect("layout JSON")
}

/// Any column as optional strings: what the CSV reader gives for the same cells.
fn strings(a: &ArrayRef) -> Vec<Option<String>> {
    let at = |i: usize, f: &dyn Fn(usize) -> String| if a.is_null(i) { None } else { Some(f(i)) };
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_any().downcast_ref::<StringArray>().unwrap();
            (0..a.len()).map(|i| at(i, &|i| s.value(i).to_string())).collect()
        }
        DataType::LargeUtf8 => {
            let s = a.as_any().downcast_ref::<LargeStringArray>().unwrap();
            (0..a.len()).map(|i| at(i, &|i| s.value(i).to_string())).collect()
        }
        DataType::Utf8View => {
            let s = a.as_any().downcast_ref::<StringViewArray>().unwrap();
            (0..a.len()).map(|i| at(i, &|i| s.value(i).to_string())).collect()
        }
        DataType::Int64 => {
            let s = a.as_any().downcast_ref::<Int64Array>().unwrap();
            (0..a.len()).map(|i| at(i, &|i| s.value(i).to_string())).collect()
        }
        DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
            let d = a.as_any().downcast_ref::<DictionaryArray<arrow_array::types::Int32Type>>().unwrap();
            let keys: &Int32Array = d.keys();
            let values = d.values().as_any().downcast_ref::<StringArray>().unwrap();
            (0..a.len()).map(|i| at(i, &|i| values.value(keys.value(i) as usize).to_string())).collect()
        }
        other => panic!("unexpected type {other:?}"),
    }
}

/// Every column of the file, concatenated over batches, as strings; also the batch sizes.
fn read_parquet(
    path: &Path,
    names: &[String],
    batch_rows: usize,
) -> (Vec<Vec<Option<String>>>, Vec<usize>, Vec<DataType>) {
    let mut out = vec![Vec::new(); names.len()];
    let mut sizes = Vec::new();
    let mut types = Vec::new();
    for batch in parquet::batches(path, names, batch_rows).unwrap() {
        let batch: RecordBatch = batch.unwrap();
        let got: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(got, names.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        types = batch.columns().iter().map(|c| c.data_type().clone()).collect();
        sizes.push(batch.num_rows());
        for (o, c) in out.iter_mut().zip(batch.columns()) {
            o.extend(strings(c));
        }
    }
    (out, sizes, types)
}

fn read_csv(path: &Path, names: &[String]) -> Vec<Vec<Option<String>>> {
    let mut out = vec![Vec::new(); names.len()];
    for batch in csv::batches(path).unwrap() {
        let batch = batch.unwrap();
        for (o, n) in out.iter_mut().zip(names) {
            o.extend(strings(batch.column_by_name(n).unwrap()));
        }
    }
    out
}

#[test]
fn sms_reads_back_as_the_csv() {
    let dir = temp_dir("parquet_sms");
    let sms = dataset("sms");
    let names = cols(&["text", "label", "split"]);
    let expected = read_csv(&sms, &names);
    assert_eq!(expected[0].len(), 5574);

    let variants: &[(&str, &[&str], [DataType; 3])] = &[
        ("snappy", &["--compression", "snappy"], [DataType::Utf8, DataType::Utf8, DataType::Utf8]),
        ("zstd", &["--compression", "zstd"], [DataType::Utf8, DataType::Utf8, DataType::Utf8]),
        ("gzip", &["--compression", "gzip"], [DataType::Utf8, DataType::Utf8, DataType::Utf8]),
        ("none", &["--compression", "none"], [DataType::Utf8, DataType::Utf8, DataType::Utf8]),
        ("large", &["--large-string"], [DataType::LargeUtf8, DataType::LargeUtf8, DataType::LargeUtf8]),
        ("view", &["--string-view"], [DataType::Utf8View, DataType::Utf8View, DataType::Utf8View]),
        (
            "category",
            &["--compression", "zstd", "--label-type", "category"],
            [
                DataType::Utf8,
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                DataType::Utf8,
            ],
        ),
    ];
    for (name, args, types) in variants {
        let file = dir.join(format!("{name}.parquet"));
        let mut args = args.to_vec();
        args.extend(["--row-group-size", "1000"]);
        let layout = make(&sms, &file, &args);
        assert_eq!(layout["row_groups"].as_array().unwrap().len(), 6, "{name}");

        let schema = parquet::schema(&file).unwrap();
        let schema_types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(&schema_types, types, "{name}: footer schema");

        // 700 does not divide 1000: batches stop at row group ends (5 x (700, 300) + (574)).
        let (got, sizes, got_types) = read_parquet(&file, &names, 700);
        assert_eq!(&got_types, types, "{name}: batch types");
        assert!(sizes.iter().all(|&n| 0 < n && n <= 700), "{name}: batch sizes {sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 5574, "{name}");
        for (c, col) in names.iter().enumerate() {
            assert_eq!(got[c].len(), expected[c].len(), "{name}: column {col}");
            if let Some(i) = (0..got[c].len()).find(|&i| got[c][i] != expected[c][i]) {
                panic!("{name}: column {col}, row {}: {:?} != {:?}", i + 1, got[c][i], expected[c][i]);
            }
        }
    }
}

#[test]
fn integer_labels_and_nulls() {
    let dir = temp_dir("parquet_int");
    // sms with ham/spam as 0/1, a few empty labels and texts (nulls in Parquet and in arrow-csv).
    let mut s =
        std::fs::read_to_string(dataset("sms")).unwrap().replace(",ham,", ",0,").replace(",spam,", ",1,");
    s.push_str(",1,train\n\"last\",,test\n");
    let csv_path = dir.join("sms_int.csv");
    std::fs::write(&csv_path, s).unwrap();
    let file = dir.join("sms_int.parquet");
    make(&csv_path, &file, &["--label-type", "int", "--row-group-size", "2000"]);

    let names = cols(&["label", "text"]);
    let expected = read_csv(&csv_path, &names);
    let (got, _, types) = read_parquet(&file, &names, 4096);
    assert_eq!(types, [DataType::Int64, DataType::Utf8]);
    assert_eq!(got, expected);
    assert_eq!(got[0][5575], None);
    assert_eq!(got[1][5574], None);
}

#[test]
fn projection_returns_only_the_requested_columns_in_the_requested_order() {
    let dir = temp_dir("parquet_projection");
    let file = dir.join("sms.parquet");
    make(&dataset("sms"), &file, &["--row-group-size", "3000"]);
    let schema = parquet::schema(&file).unwrap();
    let all: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(all, ["text", "label", "split"]);

    for want in [vec!["label"], vec!["split", "text"], vec!["label", "text", "split"], vec![]] {
        let want = cols(&want);
        let mut rows = 0;
        let it = parquet::batches(&file, &want, 8192).unwrap();
        is_send(&it); // so a loader thread can own the reader
        for batch in it {
            let batch = batch.unwrap();
            let got: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            assert_eq!(got, want);
            rows += batch.num_rows();
        }
        assert_eq!(rows, 5574, "{want:?}");
    }
}

fn is_send<T: Send>(_: &T) {}

fn err_text<T>(r: bertfit::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Reads the whole file (footer, then every batch); the first error as text, or None.
fn read_all(path: &Path, names: &[String]) -> Option<String> {
    match parquet::batches(path, names, 100) {
        Err(e) => Some(e.to_string()),
        Ok(it) => it.filter_map(|b| b.err()).map(|e| e.to_string()).next(),
    }
}

#[test]
fn missing_unknown_and_non_parquet_files() {
    let dir = temp_dir("parquet_errors");
    let names = cols(&["text", "label"]);

    let missing = dir.join("missing.parquet");
    let e = err_text(parquet::batches(&missing, &names, 10));
    assert!(e.starts_with(&format!("{}: ", missing.display())) && e.contains("No such file"), "{e}");

    // A CSV named .parquet is named as what it is (issue 10), not read as CSV.
    let renamed = dir.join("sms.parquet");
    std::fs::copy(dataset("sms"), &renamed).unwrap();
    let e = err_text(parquet::schema(&renamed));
    let want = "this is a text (CSV) file but its name ends in .parquet; rename it to .csv";
    assert_eq!(e, format!("{}: {want}", renamed.display()));
    let e = err_text(parquet::batches(&renamed, &names, 10));
    assert!(e.contains(want), "{e}");

    let empty = dir.join("empty.parquet");
    std::fs::write(&empty, b"").unwrap();
    let e = err_text(parquet::schema(&empty));
    assert!(e.starts_with(&format!("{}: not a Parquet file or truncated (", empty.display())), "{e}");

    let brotli = dir.join("brotli.parquet");
    make(&dataset("sms"), &brotli, &["--compression", "brotli", "--row-group-size", "5000"]);
    assert_eq!(parquet::schema(&brotli).unwrap().fields().len(), 3, "the footer is not compressed");
    let e = read_all(&brotli, &cols(&["label"])).expect("an error");
    assert!(
        e.starts_with(&format!(
            "{}: row group 0 (rows 1-5000 of 5574): column 'label' is compressed with brotli",
            brotli.display()
        )),
        "{e}"
    );

    let good = dir.join("good.parquet");
    make(&dataset("sms"), &good, &[]);
    let e = err_text(parquet::batches(&good, &cols(&["text", "labels"]), 10));
    assert_eq!(
        e,
        format!("{}: no column 'labels' (the file has [\"text\", \"label\", \"split\"])", good.display())
    );
}

/// A small file with several row groups, for the many-mutations tests.
fn small_file(dir: &Path) -> (PathBuf, Vec<u8>, Value) {
    let csv_path = dir.join("small.csv");
    let s = std::fs::read_to_string(dataset("sms")).unwrap();
    let head: Vec<&str> = s.lines().take(301).collect();
    std::fs::write(&csv_path, head.join("\n") + "\n").unwrap();
    let file = dir.join("small.parquet");
    let layout = make(&csv_path, &file, &["--row-group-size", "60", "--label-type", "category"]);
    let bytes = std::fs::read(&file).unwrap();
    (file, bytes, layout)
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    let dir = temp_dir("parquet_truncated");
    let (_, bytes, _) = small_file(&dir);
    let names = cols(&["text", "label", "split"]);
    let cut = dir.join("cut.parquet");
    let path = cut.display().to_string();
    // Every length near both ends (magic, footer length, footer), and a stride through the middle.
    let n = bytes.len();
    let lens = (0..64.min(n)).chain((64..n).step_by(97)).chain(n.saturating_sub(600)..n);
    for len in lens {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let e = read_all(&cut, &names).unwrap_or_else(|| panic!("cut at {len} of {n}: read without error"));
        assert!(e.starts_with(&format!("{path}: ")), "cut at {len}: {e}");
        assert!(e.contains("not a Parquet file or truncated"), "cut at {len}: {e}");
    }
}

#[test]
fn corrupt_page_names_the_row_group() {
    let dir = temp_dir("parquet_corrupt");
    let (_, bytes, layout) = small_file(&dir);
    let names = cols(&["text", "label", "split"]);
    let bad = dir.join("bad.parquet");
    let path = bad.display().to_string();

    // Garbage over the first page header of the text column in row group 2 (rows 121-180).
    let chunk = &layout["row_groups"][2]["columns"]["text"];
    let start = chunk["start"].as_u64().unwrap() as usize;
    let mut b = bytes.clone();
    b[start..start + 16].fill(0xff);
    std::fs::write(&bad, &b).unwrap();
    let mut rows = 0;
    let mut err = None;
    for batch in parquet::batches(&bad, &names, 1000).unwrap() {
        match batch {
            Ok(batch) => rows += batch.num_rows(),
            Err(e) => err = Some(e.to_string()),
        }
    }
    let e = err.expect("an error");
    assert_eq!(rows, 120, "the two good row groups come first");
    assert!(e.starts_with(&format!("{path}: row group 2 (rows 121-180 of 300): cannot read: ")), "{e}");

    // The same page, not projected: the file reads (projected columns are the only ones decoded).
    let mut rows = 0;
    for batch in parquet::batches(&bad, &cols(&["label", "split"]), 1000).unwrap() {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, 300);
}

#[test]
fn flipped_bytes_never_panic() {
    let dir = temp_dir("parquet_fuzz");
    let (_, bytes, layout) = small_file(&dir);
    let names = cols(&["text", "label", "split"]);
    let bad = dir.join("flipped.parquet");
    let path = bad.display().to_string();
    let n = bytes.len();
    // Mostly the footer (thrift) and page headers, where a flipped byte changes a length or offset.
    let mut positions: Vec<usize> = (n.saturating_sub(800)..n).collect();
    for g in layout["row_groups"].as_array().unwrap() {
        for c in g["columns"].as_object().unwrap().values() {
            let s = c["start"].as_u64().unwrap() as usize;
            positions.extend(s..(s + 32).min(n));
        }
    }
    positions.extend((0..n).step_by(61));
    let (mut ok, mut errors, mut group_errors) = (0, 0, 0);
    for (i, &pos) in positions.iter().enumerate() {
        // One flip per byte, cycling: a low bit (varint values), the high bit (varint continuation), all.
        let flip = [0x01u8, 0x80, 0xff][i % 3];
        let mut b = bytes.clone();
        b[pos] ^= flip;
        std::fs::write(&bad, &b).unwrap();
        // A flipped byte may also give a valid file with other values: Ok is fine, a panic is not.
        match read_all(&bad, &names) {
            None => ok += 1,
            Some(e) => {
                assert!(e.starts_with(&format!("{path}: ")), "byte {pos} ^ {flip:#x}: {e}");
                errors += 1;
                group_errors += e.contains(": row group ") as usize;
            }
        }
    }
    assert!(
        errors > 0 && group_errors > 0,
        "{} mutations: {ok} read, {errors} errors ({group_errors} naming a row group)",
        positions.len()
    );
}

//! The CSV reader, in memory and streamed: any bytes give rows or an error, never a panic.
#![no_main]
use bertfit::data::dataset::{read_with_split_column, Columns, DataSource};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let path = input_file("data.csv", data);
    let columns = Columns::default();
    let _ = read_with_split_column(&path, &columns);
    let _ = bertfit::data::stream::scan(&DataSource::SplitColumn(path), &columns, None, &Default::default());
});

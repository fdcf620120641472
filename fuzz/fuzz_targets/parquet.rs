//! The Parquet reader, in memory and streamed: any bytes give rows or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("bodies.rs");

fuzz_target!(|data: &[u8]| bodies::parquet(data));

//! A --token-cache entry: any bytes are valid encodings for the expected splits or a reason to
//! rebuild. The checksum would stop most mutations at once, so when the first byte's low bit is
//! set the input's last 32 bytes are replaced by the right checksum first, to reach the checks
//! behind it.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("bodies.rs");

fuzz_target!(|data: &[u8]| bodies::token_cache(data));

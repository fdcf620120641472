//! vocab.txt and tokenizer_config.json: the input is split at its first 0xFF byte (never in
//! UTF-8) into the two files; a tokenizer that loads then encodes a few texts (and the input's
//! tail as text) at a small max length.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("bodies.rs");

fuzz_target!(|data: &[u8]| bodies::tokenizer(data));

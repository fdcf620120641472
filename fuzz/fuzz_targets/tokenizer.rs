//! vocab.txt and tokenizer_config.json: the input is split at its first 0xFF byte (never in
//! UTF-8) into the two files; a tokenizer that loads then encodes a few texts (and the input's
//! tail as text) at a small max length.
#![no_main]
use bertfit::data::tokenize::Tokenizer;
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let (vocab, config) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let dir = scratch().join("model");
    std::fs::create_dir_all(&dir).expect("scratch model folder");
    std::fs::write(dir.join("vocab.txt"), vocab).expect("write vocab.txt");
    let config_path = dir.join("tokenizer_config.json");
    match config {
        Some(c) => std::fs::write(&config_path, c).expect("write tokenizer_config.json"),
        None => {
            let _ = std::fs::remove_file(&config_path);
        }
    }
    let Ok(tok) = Tokenizer::from_dir(&dir) else { return };
    let tail = String::from_utf8_lossy(config.unwrap_or(vocab));
    for text in ["hello world", "Ünïcödé 漢字 [MASK] test", tail.as_ref()] {
        let _ = tok.encode(text, None, 8);
        let _ = tok.encode(text, Some("a pair"), 5);
    }
    let _ = tok.encode_batch(&["plain ascii", tail.as_ref()], None, 3);
});

//! A --token-cache entry: any bytes are valid encodings for the expected splits or a reason to
//! rebuild. The checksum would stop most mutations at once, so when the first byte's low bit is
//! set the input's last 32 bytes are replaced by the right checksum first, to reach the checks
//! behind it.
#![no_main]
use bertfit::data::token_cache::{parse, Expect};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= 40 {
        let body = bytes.len() - 32;
        let sum = Sha256::digest(&bytes[..body]);
        bytes[body..].copy_from_slice(&sum);
    }
    let expect = Expect { rows: vec![3, (mode >> 4) as usize], vocab_size: 100, max_length: 8 };
    if let Ok(splits) = parse(&bytes, &expect) {
        assert_eq!(splits.len(), 2);
        for (split, rows) in splits.iter().zip(&expect.rows) {
            assert_eq!(split.len(), *rows);
            for e in split {
                assert!(e.input_ids.len() <= 8 && e.input_ids.iter().all(|&id| (0..100).contains(&id)));
                assert_eq!(e.input_ids.len(), e.token_type_ids.len());
            }
        }
    }
});

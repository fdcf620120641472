//! A checkpoint folder as a resume reads it before trusting it: trainer_state.json (bertfit's
//! position, the best model's folder), training_state.safetensors (optimizer state, generator
//! state, data order) and the manifest. The input is the three files, each behind a 4-byte
//! little-endian length; every check must return (an error or Ok), never panic or hang.
#![no_main]
use bertfit::train::checkpoint::{read_state, read_tensors, TRAINER_STATE, TRAINING_STATE};
use bertfit::train::checkpoint::verify::{self, Expected, MANIFEST};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

/// The next length-prefixed part of `data`.
fn part<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    if data.len() < 4 {
        return std::mem::take(data);
    }
    let n = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let rest = &data[4..];
    let n = n.min(rest.len());
    *data = &rest[n..];
    &rest[..n]
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let dir = scratch().join("checkpoint-7");
    let _ = std::fs::create_dir_all(&dir);
    for name in [TRAINER_STATE, TRAINING_STATE, MANIFEST] {
        let _ = std::fs::write(dir.join(name), part(&mut data));
    }
    let _ = verify::check_manifest(&dir);
    let state = read_state(&dir).ok();
    let tensors = read_tensors(&dir).unwrap_or_default();
    let order = tensors.get("data.order").and_then(|t| Vec::<i64>::try_from(t).ok());
    let expected = Expected { batches_per_epoch: 20, accumulation: 2, rank_rows: 320, file_rows: 320, permutation: true };
    if let Some(state) = &state {
        let _ = verify::check_best(&dir, state);
        let _ = verify::check_position(&dir.join(TRAINER_STATE), state, order.as_deref(), &expected);
        let params = ["classifier.weight".to_string(), "classifier.bias".to_string()];
        let steps = state.bertfit_position.scheduled_steps;
        let _ = verify::check_optimizer_state(&dir.join(TRAINING_STATE), &tensors, &params, steps);
    }
});

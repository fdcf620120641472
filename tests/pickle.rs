//! The pickle reader against files torch itself wrote (scripts/parity/make_pickles.py): each tensor equal
//! to what torch saved, code-running pickles refused without running, broken files reported by name.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bertfit::weights::pickle::read_pytorch_checkpoint;
use tch::Tensor;

use super::common::{read_json, run_python, temp_dir};

/// The fixtures, written once per test run: importing torch and transformers takes seconds.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("pickle_fixtures");
        run_python("parity/make_pickles.py", &[dir.to_str().expect("temp dir is UTF-8")]);
        dir
    })
}

fn manifest_keys(field: &str) -> Vec<String> {
    let manifest = read_json(&fixtures().join("manifest.json"));
    let keys = manifest[field].as_array().unwrap_or_else(|| panic!("manifest.json has no {field}"));
    keys.iter().map(|k| k.as_str().expect("keys are strings").to_string()).collect()
}

fn read_ok(path: &Path) -> Vec<(String, Tensor)> {
    read_pytorch_checkpoint(path).unwrap_or_else(|e| panic!("{e}"))
}

/// The error's text; it must name the file.
fn read_err(path: &Path) -> String {
    match read_pytorch_checkpoint(path) {
        Ok(tensors) => panic!("{}: read {} tensors, expected an error", path.display(), tensors.len()),
        Err(e) => {
            let msg = e.to_string();
            let name = path.file_name().and_then(|n| n.to_str()).expect("fixture names are UTF-8");
            assert!(msg.contains(name), "error does not name the file: {msg}");
            msg
        }
    }
}

/// Same names in the pickle's order, and per tensor the same dtype, shape and exact values.
fn assert_same(got: &[(String, Tensor)], expected: &Path, keys: &[String]) {
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, keys, "names or their order differ");
    let expected: HashMap<String, Tensor> =
        Tensor::read_safetensors(expected).unwrap_or_else(|e| panic!("{e}")).into_iter().collect();
    assert_eq!(expected.len(), got.len());
    for (name, tensor) in got {
        let want = &expected[name];
        assert_eq!(tensor.kind(), want.kind(), "{name}: dtype");
        assert_eq!(tensor.size(), want.size(), "{name}: shape");
        assert!(tensor.is_contiguous(), "{name}: not contiguous");
        assert!(tensor.equal(want), "{name}: values differ");
    }
}

#[test]
fn small_state_dicts_match_torch_in_every_format() {
    let keys = manifest_keys("small_keys");
    let expected = fixtures().join("small.safetensors");
    for file in ["small_zip.pt", "small_p4_zip.pt", "small_legacy.pt", "small_big_endian_zip.pt"] {
        assert_same(&read_ok(&fixtures().join(file)), &expected, &keys);
    }
}

#[test]
fn bert_checkpoints_match_torch_in_both_formats() {
    let keys = manifest_keys("bert_keys");
    let expected = fixtures().join("bert.safetensors");
    for dir in ["bert_zip", "bert_legacy"] {
        assert_same(&read_ok(&fixtures().join(dir).join("pytorch_model.bin")), &expected, &keys);
    }
}

#[test]
fn a_training_checkpoint_gives_its_state_dict() {
    let keys = manifest_keys("small_keys");
    for file in ["nested_zip.pt", "nested_legacy.pt"] {
        assert_same(&read_ok(&fixtures().join(file)), &fixtures().join("small.safetensors"), &keys);
    }
}

#[test]
fn tensors_sharing_a_storage_come_back_independent() {
    let mut tensors = read_ok(&fixtures().join("small_zip.pt"));
    let before: HashMap<String, Tensor> = tensors.iter().map(|(n, t)| (n.clone(), t.copy())).collect();
    for (name, tensor) in tensors.iter_mut() {
        if name == "f32" || name == "shared_a" {
            let _ = tensor.fill_(0.0);
        }
    }
    for (name, tensor) in &tensors {
        if name == "f32_tied" || name == "shared_b" {
            assert!(tensor.equal(&before[name]), "{name} changed with the tensor it shares a storage with");
        }
    }
}

#[test]
fn non_tensor_values_are_an_error_listing_their_keys() {
    for file in ["not_state_dict_zip.pt", "not_state_dict_legacy.pt"] {
        let msg = read_err(&fixtures().join(file));
        assert!(msg.contains("'step' (int)") && msg.contains("'note' (str)"), "{msg}");
    }
}

#[test]
fn code_running_pickles_are_refused_without_running() {
    let manifest = read_json(&fixtures().join("manifest.json"));
    let global = manifest["evil_global"].as_str().expect("manifest has evil_global"); // posix.system on Linux
    for file in ["malicious_zip.pt", "malicious_legacy.pt", "malicious_plain_zip.pt"] {
        let msg = read_err(&fixtures().join(file));
        assert!(msg.contains(&format!("pickle global '{global}' is not allowed")), "{msg}");
    }
    assert!(!fixtures().join("pwned").exists(), "a malicious pickle ran its payload");
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    let dir = temp_dir("pickle_truncated");
    for file in
        ["small_zip.pt", "small_legacy.pt", "bert_zip/pytorch_model.bin", "bert_legacy/pytorch_model.bin"]
    {
        let bytes = std::fs::read(fixtures().join(file)).expect("fixture");
        let cut = dir.join(file.replace('/', "_"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        read_err(&cut);
    }
}

#[test]
fn every_prefix_of_a_legacy_file_is_an_error() {
    // The legacy format is read by offsets inside one buffer: each cut lands in a different length check.
    let bytes = std::fs::read(fixtures().join("small_legacy.pt")).expect("fixture");
    let cut = temp_dir("pickle_prefixes").join("cut.pt");
    for len in 0..bytes.len() {
        std::fs::write(&cut, &bytes[..len]).expect("write");
        read_err(&cut);
    }
}

#[test]
fn corrupt_bytes_never_panic() {
    // Flipped bits turn lengths, memo indices and opcodes into nonsense: each must be an error or a
    // (possibly different) valid file, never a panic or an out-of-bounds read.
    let bytes = std::fs::read(fixtures().join("small_legacy.pt")).expect("fixture");
    let bad = temp_dir("pickle_corrupt").join("corrupt.pt");
    for i in 0..bytes.len() {
        for mask in [0x01, 0x10, 0x80, 0xff] {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= mask;
            std::fs::write(&bad, &corrupt).expect("write");
            let _ = read_pytorch_checkpoint(&bad);
        }
    }
}

#[test]
fn files_that_are_not_checkpoints_are_errors() {
    let dir = temp_dir("pickle_not_checkpoints");
    let cases: [(&str, &[u8]); 4] = [
        ("empty.bin", b""),
        ("config.json", b"{\"hidden_size\": 32}\n"),
        // A valid pickle, but not torch's: no magic number first.
        ("plain.pkl", b"\x80\x02}q\x00."),
        ("garbage.bin", &[0x80, 0x02, 0xff, 0xff, 0xff]),
    ];
    for (name, bytes) in cases {
        std::fs::write(dir.join(name), bytes).expect("write");
        let msg = read_err(&dir.join(name));
        assert!(msg.contains("not a PyTorch checkpoint"), "{msg}");
    }
    let msg = read_err(&fixtures().join("no_pickle.zip"));
    assert!(msg.contains("data.pkl"), "{msg}");
    let missing = dir.join("missing.bin");
    assert!(read_pytorch_checkpoint(&missing).is_err());
}

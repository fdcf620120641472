//! What the fault tests compare on disk: trees hashed file by file, a saved model's files, and the
//! names only an unfinished save leaves behind.
use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The files of a saved model: what must be wholly old or wholly new after a save.
pub const MODEL_FILES: &[&str] =
    &["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];

/// Every file under `dir` (relative path -> sha256), leftovers of saves included.
pub fn hash_tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let digest = Sha256::digest(std::fs::read(&path).unwrap());
                let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
                out.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned(), hex);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The hashes of `dir`'s model files ([`MODEL_FILES`]).
pub fn model_hashes(dir: &Path) -> BTreeMap<String, String> {
    hash_tree(dir).into_iter().filter(|(k, _)| MODEL_FILES.contains(&k.as_str())).collect()
}

/// The entries of `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Names in `dir` that only a save that did not finish (or did not clean up) leaves.
pub fn leftovers(dir: &Path) -> Vec<String> {
    names(dir).into_iter().filter(|n| n.contains(".bertfit-")).collect()
}

pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let to = dst.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &to);
        } else {
            std::fs::copy(&path, &to).unwrap();
        }
    }
}

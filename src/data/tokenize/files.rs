//! The tokenizer's files in an HF model folder: which exist, and copying them into a saved model
//! (with the `tokenizer.json` transformers' fast tokenizer loads, `tokenizer_json.rs`).
use std::path::{Path, PathBuf};

use super::tokenizer_json::{tokenizer_json, TOKENIZER_FILE};
use super::{JsonTokenizer, WordPieceTokenizer, CONFIG_FILE, SPECIAL_TOKENS_FILE, VOCAB_FILE};
use crate::output::{hooks, write_atomic};
use crate::{Error, Result};

impl WordPieceTokenizer {
    /// The tokenizer files of the model folder (those that exist): what tokenization depends on
    /// (not `tokenizer.json`, which bertfit writes but never reads).
    pub fn files(&self) -> Vec<PathBuf> {
        [VOCAB_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE]
            .iter()
            .map(|f| self.dir.join(f))
            .filter(|p| p.exists())
            .collect()
    }

    /// Copies the tokenizer files (`vocab.txt`, `tokenizer_config.json`, `special_tokens_map.json`
    /// when present) into `out`, so the saved model folder loads in transformers. A folder that had
    /// no `tokenizer_config.json` gets one with the settings used here. Then `tokenizer.json` is
    /// written from the saved files, so `AutoTokenizer` loads the fast tokenizer without converting.
    pub fn save_files(&self, out: &Path) -> Result<()> {
        copy_files(&self.dir, out, &[VOCAB_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE])?;
        let config = out.join(CONFIG_FILE);
        if !self.dir.join(CONFIG_FILE).exists() {
            let mut json = serde_json::json!({
                "tokenizer_class": "BertTokenizer",
                "do_lower_case": self.do_lower_case,
                "strip_accents": self.strip_accents,
                "tokenize_chinese_chars": true,
            });
            if let Some(n) = self.model_max_length {
                json["model_max_length"] = n.into();
            }
            let text = serde_json::to_string_pretty(&json).unwrap_or_default();
            write_atomic(&config, (text + "\n").as_bytes())?;
            hooks::save_point(CONFIG_FILE);
        }
        // (No save point of its own: the fault tests count the save points of a model save.)
        write_atomic(&out.join(TOKENIZER_FILE), tokenizer_json(out)?.as_bytes())?;
        Ok(())
    }

    /// The `vocab.txt` this tokenizer was read from.
    pub fn vocab_path(&self) -> PathBuf {
        self.dir.join(VOCAB_FILE)
    }
}

/// The files transformers may read from a `tokenizer.json` folder (the other vocabulary files
/// too, so that a slow tokenizer or an older transformers finds what it looks for).
const JSON_FOLDER_FILES: &[&str] = &[
    TOKENIZER_FILE,
    CONFIG_FILE,
    SPECIAL_TOKENS_FILE,
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spm.model",
    "tokenizer.model",
];

impl JsonTokenizer {
    /// The tokenizer files of the model folder that exist (what tokenization depends on).
    pub fn files(&self) -> Vec<PathBuf> {
        [TOKENIZER_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE]
            .iter()
            .map(|f| self.dir().join(f))
            .filter(|p| p.exists())
            .collect()
    }

    /// Copies `tokenizer.json`, `tokenizer_config.json` and the folder's other tokenizer files
    /// (those that exist) into `out`, as they are: `AutoTokenizer` loads the same tokenizer there.
    pub fn save_files(&self, out: &Path) -> Result<()> {
        copy_files(self.dir(), out, JSON_FOLDER_FILES)
    }
}

/// Copies the files `names` of `from` that exist into `out` (a save point each).
fn copy_files(from: &Path, out: &Path, names: &[&str]) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    for &name in names {
        let (src, dst) = (from.join(name), out.join(name));
        if !src.exists() {
            continue;
        }
        if same_file(&src, &dst) {
            continue; // saving into the folder it was read from: the file is already there
        }
        // Read whole and written atomically (the files are small): a full disk leaves no
        // half-copied vocabulary.
        let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        write_atomic(&dst, &bytes)?;
        hooks::save_point(name);
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

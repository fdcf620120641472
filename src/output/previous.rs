//! The overwrite guard's question: does this folder hold a previous run? Yes if it has anything
//! bertfit writes, not only config.json: a run that failed before its final save still left
//! training_args.json and metrics.jsonl, and checkpoints or results may be all that is there.
use std::path::{Path, PathBuf};

use super::{fsync_dir, OLD_MARKER, TEMP_MARKER};
use crate::error::{Error, Result};

/// File names bertfit (or HF's Trainer, whose folders look the same) writes into an output folder.
/// Not the model card `README.md`: a folder with only a README is someone's folder, not a run.
pub const WRITTEN_FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "training_args.json",
    "training_args.bin",
    "metrics.jsonl",
    "metrics.jsonl.partial",
    "predict_results.txt",
    "trainer_state.json",
    "bertfit_state.json",
];

fn written_by_bertfit(name: &str) -> bool {
    WRITTEN_FILES.contains(&name)
        || name.ends_with("_results.json")
        || name.starts_with("checkpoint-")
        || name.starts_with("predictions")
        || name.contains(TEMP_MARKER)
        || name.contains(OLD_MARKER)
}

/// The entries of `dir` that a previous run wrote, sorted. A folder that exists but cannot be
/// read counts as holding one (`[dir]`): what cannot be seen must not be overwritten.
pub fn previous_run_files(dir: &Path) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Vec::new(),
        Err(_) => return vec![dir.to_path_buf()],
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| written_by_bertfit(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Where `--overwrite` puts the previous run's checkpoints until the new run's model is saved.
pub const SET_ASIDE: &str = ".bertfit-overwritten";

/// `--overwrite`: `entries` of `dir` (the previous run's checkpoints) moved into
/// `dir/.bertfit-overwritten/`, replacing what an earlier overwrite left there, so that nothing
/// of that run is taken for this one's (`--resume-from-checkpoint latest` would find them) while
/// nothing is lost if this run fails before its model is saved. The rest of the previous run
/// (its model) stays in place until this run's final save replaces it whole.
/// [`remove_set_aside`] deletes them once this run's model is saved.
pub fn set_aside(dir: &Path, entries: &[PathBuf]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    remove_set_aside(dir)?;
    let aside = dir.join(SET_ASIDE);
    std::fs::create_dir(&aside).map_err(|e| Error::io(&aside, e))?;
    for path in entries {
        let Some(name) = path.file_name() else { continue };
        std::fs::rename(path, aside.join(name)).map_err(|e| Error::io(path, e))?;
    }
    fsync_dir(dir)
}

/// Deletes what [`set_aside`] moved aside, if anything.
pub fn remove_set_aside(dir: &Path) -> Result<()> {
    let aside = dir.join(SET_ASIDE);
    match std::fs::remove_dir_all(&aside) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&aside, e)),
        _ => Ok(()),
    }
}

/// True if `dir` has any file or folder bertfit writes (see [`previous_run_files`]).
pub fn holds_previous_run(dir: &Path) -> bool {
    !previous_run_files(dir).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_bertfit_file_counts() {
        let root = crate::test_support::missing_dir("previous");
        assert!(!holds_previous_run(&root), "a missing folder holds nothing");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("notes.txt"), "").unwrap();
        std::fs::write(root.join("README.md"), "").unwrap();
        assert!(!holds_previous_run(&root));
        for name in
            ["metrics.jsonl", "eval_results.json", "checkpoint-500", "training_args.json", "tokenizer.json"]
        {
            let p = root.join(name);
            std::fs::write(&p, "").unwrap();
            assert_eq!(previous_run_files(&root), vec![p.clone()]);
            std::fs::remove_file(&p).unwrap();
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn overwrite_sets_entries_aside_until_removed() {
        let root = crate::test_support::missing_dir("aside");
        std::fs::create_dir_all(root.join("checkpoint-4")).unwrap();
        std::fs::write(root.join("config.json"), "{}").unwrap();
        set_aside(&root, &[root.join("checkpoint-4")]).unwrap();
        assert_eq!(previous_run_files(&root), [root.join("config.json")]);
        assert!(root.join(SET_ASIDE).join("checkpoint-4").is_dir());
        remove_set_aside(&root).unwrap();
        remove_set_aside(&root).unwrap(); // (nothing there: fine)
        assert!(!root.join(SET_ASIDE).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}

//! Where a model's files are: a local HF folder, or a model name looked up offline in the Hugging Face
//! cache, the way `from_pretrained` resolves it with HF_HUB_OFFLINE=1.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The files of one HF model folder.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub weights: WeightsFile,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WeightsFile {
    Safetensors(PathBuf),
    /// `pytorch_model.bin`, read by our own pickle reader, which never executes code.
    PytorchBin(PathBuf),
}

impl WeightsFile {
    pub fn path(&self) -> &Path {
        match self {
            WeightsFile::Safetensors(p) | WeightsFile::PytorchBin(p) => p,
        }
    }
}

/// `spec` is a folder path, or a hub name such as `bert-base-uncased` or `org/name`.
pub fn resolve(spec: &str) -> Result<ModelFiles> {
    model_files(&resolve_dir(spec)?)
}

/// The model's folder (a local one, or the cache snapshot of a hub name) without looking for the
/// weights: what reading only the tokenizer needs (`check-data`).
pub fn resolve_dir(spec: &str) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        return Ok(as_path.to_path_buf());
    }
    if as_path.exists() {
        return Err(Error::ModelNotFound {
            name: spec.into(),
            msg: "is a file, expected a folder (the model folder, holding config.json)".into(),
        });
    }
    let looks_like_hub_name = !spec.is_empty()
        && !spec.starts_with('.')
        && !spec.starts_with('/')
        && spec.split('/').count() <= 2
        && spec.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if !looks_like_hub_name {
        return Err(Error::ModelNotFound { name: spec.into(), msg: "no such folder".into() });
    }
    let caches = hub_caches();
    let repo_dir_name = format!("models--{}", spec.replace('/', "--"));
    for cache in &caches {
        let repo = cache.join(&repo_dir_name);
        if repo.is_dir() {
            return snapshot_dir(&repo);
        }
    }
    let searched: Vec<String> = caches.iter().map(|c| c.display().to_string()).collect();
    Err(Error::ModelNotFound {
        name: spec.into(),
        msg: format!(
            "not a folder, and not in the Hugging Face cache (searched {}); nothing is downloaded: \
             pass a local model folder",
            searched.join(", ")
        ),
    })
}

/// The hub cache folders, in huggingface_hub's order of precedence.
pub fn hub_caches() -> Vec<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut out = Vec::new();
    if let Some(p) = env("HF_HUB_CACHE").or_else(|| env("HUGGINGFACE_HUB_CACHE")) {
        out.push(p);
    }
    if let Some(p) = env("HF_HOME") {
        out.push(p.join("hub"));
    } else if let Some(p) = env("XDG_CACHE_HOME") {
        out.push(p.join("huggingface").join("hub"));
    }
    if let Some(home) = env("HOME") {
        out.push(home.join(".cache").join("huggingface").join("hub"));
    }
    out.dedup();
    out
}

/// `snapshots/<rev>` named by `refs/main`, else the only snapshot there is.
fn snapshot_dir(repo: &Path) -> Result<PathBuf> {
    let refs_main = repo.join("refs").join("main");
    if let Ok(rev) = std::fs::read_to_string(&refs_main) {
        let dir = repo.join("snapshots").join(rev.trim());
        if dir.is_dir() {
            return Ok(dir);
        }
        return Err(Error::weights(
            &refs_main,
            format!("names revision {} but {} is missing", rev.trim(), dir.display()),
        ));
    }
    let snapshots = repo.join("snapshots");
    let entries = std::fs::read_dir(&snapshots).map_err(|e| Error::io(&snapshots, e))?;
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    match dirs.len() {
        1 => Ok(dirs.remove(0)),
        0 => Err(Error::weights(&snapshots, "no snapshot in this cache entry")),
        _ => Err(Error::weights(
            &snapshots,
            format!("{} snapshots and no refs/main: pass the snapshot folder you mean", dirs.len()),
        )),
    }
}

pub fn model_files(dir: &Path) -> Result<ModelFiles> {
    let config = dir.join("config.json");
    if !config.is_file() {
        return Err(Error::weights(dir, "no config.json in this model folder"));
    }
    let safetensors = dir.join("model.safetensors");
    let bin = dir.join("pytorch_model.bin");
    let weights = if safetensors.is_file() {
        WeightsFile::Safetensors(safetensors)
    } else if bin.is_file() {
        WeightsFile::PytorchBin(bin)
    } else if dir.join("model.safetensors.index.json").is_file()
        || dir.join("pytorch_model.bin.index.json").is_file()
    {
        return Err(Error::weights(
            dir,
            "sharded checkpoints are not supported yet (BERT models fit in one file)",
        ));
    } else {
        return Err(Error::weights(dir, "no model.safetensors or pytorch_model.bin in this model folder"));
    };
    Ok(ModelFiles { dir: dir.to_path_buf(), config, weights })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = crate::test_support::fresh_dir(&format!("resolve-{name}"));
        d
    }

    #[test]
    fn finds_the_refs_main_snapshot_in_hf_home() {
        let home = scratch("hfhome");
        let repo = home.join("hub/models--acme--tiny-bert");
        let snap = repo.join("snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("snapshots/old")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        std::fs::write(snap.join("pytorch_model.bin"), "").unwrap();
        std::env::set_var("HF_HOME", &home);
        let files = resolve("acme/tiny-bert").unwrap();
        assert_eq!(files.dir, snap);
        assert_eq!(files.weights, WeightsFile::PytorchBin(snap.join("pytorch_model.bin")));
        let err = resolve("acme/absent").unwrap_err().to_string();
        assert!(err.contains("acme/absent") && err.contains("hub"), "{err}");
    }

    #[test]
    fn a_folder_without_weights_is_named() {
        let d = scratch("noweights");
        std::fs::write(d.join("config.json"), "{}").unwrap();
        let err = resolve(d.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains(d.to_str().unwrap()) && err.contains("model.safetensors"), "{err}");
    }
}

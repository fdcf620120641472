//! Typed errors. Every variant names what the user must look at: a file, a row, a column, a key.
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {msg}", path.display())]
    Config { path: PathBuf, msg: String },

    /// A checkpoint that does not fit the model: `key` is the HF state-dict name.
    #[error("{}: {msg}", path.display())]
    Weights { path: PathBuf, msg: String },

    /// A model file that a library could not read, told in words (`msg` names the tensor where
    /// one is to blame); the library's own error (a safetensors code, a libtorch message) is kept
    /// as the cause.
    #[error("{}: {msg}", path.display())]
    Damaged {
        path: PathBuf,
        msg: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("model '{name}': {msg}")]
    ModelNotFound { name: String, msg: String },

    #[error("{}: {msg}", path.display())]
    Tokenizer { path: PathBuf, msg: String },

    /// A problem with one cell of a data file. `row` is 1-based and counts data rows (header excluded).
    #[error("{}: row {row}, column '{column}': {msg}", path.display())]
    DataRow { path: PathBuf, row: usize, column: String, msg: String },

    /// A problem with a whole data file (missing column, empty split, unreadable format).
    #[error("{}: {msg}", path.display())]
    Data { path: PathBuf, msg: String },

    /// A command-line setting that cannot work, named by its flag.
    #[error("{flag}: {msg}")]
    Usage { flag: String, msg: String },

    /// The run was stopped by a signal; what was trained so far is saved in `saved`.
    #[error("interrupted after step {step}: a checkpoint and the model trained so far are saved in {}; continue with --resume-from-checkpoint latest", saved.display())]
    Interrupted { step: usize, saved: PathBuf },

    /// A failure of bertfit's own machinery (a thread that could not start or died).
    #[error("{0}")]
    Runtime(String),

    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// An exception libtorch threw inside bertfit's C++ shim (`csrc/`), with its message.
    #[error("libtorch: {0}")]
    TorchExt(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An error and its causes, one per line, each cause once: most variants already end their message
/// with their source's (`{path}: {source}`), and a cause whose text is already shown is not
/// repeated as a `caused by:` line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(&format!("\n  caused by: {text}"));
        }
        source = s.source();
    }
    out
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn weights(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Weights { path: path.into(), msg: msg.into() }
    }
    pub fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Config { path: path.into(), msg: msg.into() }
    }
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data { path: path.into(), msg: msg.into() }
    }
    pub fn damaged(
        path: impl Into<PathBuf>,
        msg: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Damaged { path: path.into(), msg: msg.into(), source: Box::new(source) }
    }
    pub fn usage(flag: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Usage { flag: flag.into(), msg: msg.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "File exists (os error 17)");
        let text = chain(&Error::io("/tmp/out", io));
        assert_eq!(text, "/tmp/out: File exists (os error 17)");
        // A cause the message does not show is still printed.
        #[derive(Debug, thiserror::Error)]
        #[error("reading the cache")]
        struct Outer(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        assert_eq!(chain(&Outer(io)), "reading the cache\n  caused by: gone");
    }
}

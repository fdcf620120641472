//! `bertfit plot`: a training run's metrics.jsonl as a PNG.
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct PlotFlags {
    /// A training output folder (bertfit train's --output-dir) holding metrics.jsonl.
    pub dir: PathBuf,
    /// The PNG to write. Default: DIR/training.png.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

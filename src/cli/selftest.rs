//! `bertfit dist-selftest` (hidden): a launch check and the distributed tests' probe.
use clap::Args;

use crate::dist::selftest::SelftestOptions;
use crate::torch_ext::c10d::BackendKind;

#[derive(Debug, Args)]
pub struct DistSelftestFlags {
    /// gloo (CPU) or nccl (GPU).
    #[arg(long, value_enum, default_value_t = BackendKind::Gloo)]
    pub backend: BackendKind,
    /// Seconds a rendezvous or collective may take (HF's --ddp_timeout).
    #[arg(long, default_value_t = 1800)]
    pub ddp_timeout: u64,
    /// After the checks, all-reduce this many times (0: until a rank fails).
    #[arg(long)]
    pub loops: Option<usize>,
    /// After the checks, time this many all-reduces of MiniLM-sized gradients.
    #[arg(long, default_value_t = 0)]
    pub bench: usize,
    /// After the checks, compare data-parallel gradients with one process on the whole batch.
    #[arg(long)]
    pub ddp_check: bool,
}

impl DistSelftestFlags {
    pub fn options(&self) -> SelftestOptions {
        SelftestOptions {
            backend: self.backend,
            timeout: std::time::Duration::from_secs(self.ddp_timeout),
            loops: self.loops.map(|n| if n == 0 { None } else { Some(n) }).unwrap_or(Some(0)),
            bench: self.bench,
            ddp_check: self.ddp_check,
        }
    }
}

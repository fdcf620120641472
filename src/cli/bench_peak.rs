//! `bertfit bench-peak`: measure this machine's GEMM peak per dtype (what MFU is measured
//! against) and replace the cached figures.
use clap::Args;

use super::flags::DeviceFlags;

#[derive(Debug, Args)]
pub struct BenchPeakFlags {
    #[command(flatten)]
    pub device: DeviceFlags,
    /// The dtypes to measure, comma-separated: fp32, bf16, fp16.
    #[arg(long, value_delimiter = ',', default_value = "fp32,bf16")]
    pub dtypes: Vec<GemmDtype>,
    /// Measure without writing the cache.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GemmDtype {
    Fp32,
    Bf16,
    Fp16,
}

impl GemmDtype {
    pub fn kind(self) -> tch::Kind {
        match self {
            GemmDtype::Fp32 => tch::Kind::Float,
            GemmDtype::Bf16 => tch::Kind::BFloat16,
            GemmDtype::Fp16 => tch::Kind::Half,
        }
    }
}

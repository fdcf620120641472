//! `bertfit bench-peak`: measures the GEMM peak of each dtype asked for on the device, prints
//! them with the CPU's bf16 instructions, and replaces the cached figures that training runs
//! measure their MFU against (run it after a hardware change, or when the first probe ran on a
//! busy machine: the cache otherwise keeps the best figure seen).
use std::path::PathBuf;

use tch::Device;

use crate::cli::bench_peak::BenchPeakFlags;
use crate::machine::cpu::CpuInfo;
use crate::machine::peak::{device_name, dtype_name, measure_peak};
use crate::machine::peak_cache::{cache_path, key, replace};
use crate::Result;

/// Measures, caches (unless `--no-cache`) and returns the lines to print.
pub fn run(flags: &BenchPeakFlags) -> Result<Vec<String>> {
    let device = flags.device.device()?;
    if let Some(t) = flags.device.threads()? {
        tch::set_num_threads(t);
    }
    let threads = tch::get_num_threads() as i64;
    let mut lines = vec![describe(device, threads)];
    let path: Option<PathBuf> = (!flags.no_cache).then(cache_path).flatten();
    for dtype in &flags.dtypes {
        let peak = measure_peak(device, dtype.kind())?;
        lines.push(format!(
            "{:>5} GEMM {}x{}x{}: {:.3} TFLOP/s",
            dtype_name(dtype.kind()),
            peak.shape[0],
            peak.shape[1],
            peak.shape[2],
            peak.flops_per_second / 1e12
        ));
        if let Some(p) = &path {
            replace(p, &key(&device_name(device), &peak.dtype, threads), &peak)?;
        }
    }
    if let Some(p) = path {
        lines.push(format!("cached in {}", p.display()));
    }
    Ok(lines)
}

fn describe(device: Device, threads: i64) -> String {
    match device {
        Device::Cpu => {
            let cpu = CpuInfo::read();
            format!(
                "device cpu ({}), {threads} threads, bf16 instructions: {}",
                if cpu.model_name.is_empty() { "model unknown" } else { &cpu.model_name },
                cpu.bf16_features()
            )
        }
        other => format!("device {}", device_name(other)),
    }
}

//! The machine's measured matrix-product peak: the FLOP/s one large GEMM reaches in a dtype on a
//! device with the run's threads. MFU (model FLOPs utilisation) divides a run's useful FLOP/s
//! ([`crate::model::flops`]) by it. Measured rather than taken from a data sheet because the
//! same CPU model differs between machines (turbo, AVX-512 frequency, how many cores a VM gets),
//! and because the figure that matters is what libtorch's own GEMM (MKL, oneDNN, cuBLAS) reaches.
use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// A measured (or given) peak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    pub flops_per_second: f64,
    /// "fp32", "bf16" or "fp16": the dtype of the GEMM.
    pub dtype: String,
    /// "cpu" or "cuda:N".
    pub device: String,
    /// libtorch's intra-op threads during the probe (CPU).
    pub threads: i64,
    /// The GEMM's (m, k, n).
    pub shape: [i64; 3],
    /// Seconds since the Unix epoch when it was measured.
    pub measured_at: u64,
}

/// Where a run's peak came from, as its `peak` record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeakSource {
    /// Probed now (and written to the cache).
    Measured,
    /// Read from the per-machine cache ([`super::peak_cache`]).
    Cached,
    /// `--peak-flops`.
    Flag,
}

impl fmt::Display for PeakSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeakSource::Measured => "measured now",
            PeakSource::Cached => "measured earlier on this machine",
            PeakSource::Flag => "--peak-flops",
        })
    }
}

/// The name of a GEMM dtype as records write it.
pub fn dtype_name(kind: Kind) -> &'static str {
    match kind {
        Kind::BFloat16 => "bf16",
        Kind::Half => "fp16",
        _ => "fp32",
    }
}

/// `cpu` or `cuda:N`, as the flags and training_args.json spell a device.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}

/// The probe's square GEMMs start at this size and double from it.
const FIRST_SIZE: i64 = 256;
/// A product that takes less than this is still mostly call overhead and cache warm-up, so the
/// probe doubles the size; one that takes this long is timed as it is.
const LONG_ENOUGH_SECONDS: f64 = 0.05;
/// The timed repeats stop once they have taken this long together (at least two are timed).
const REPEAT_BUDGET_SECONDS: f64 = 1.0;

/// Times square GEMMs of `kind` on `device` with libtorch's current thread count and returns the
/// best rate: the peak is what the GEMM reaches when nothing else is in the way, and the best of
/// several repeats is the least disturbed by other processes.
///
/// The size doubles from 256 until one product takes 50 ms, up to 2048 on a CPU (17 GFLOP per
/// product, about a quarter second on 2 cores in fp32) and 8192 on CUDA; then it is timed up to
/// 6 times (CUDA 10) within a second. The bound matters where a dtype has no fast kernel: CPU
/// fp16 GEMMs without AVX512-FP16 run near 0.4 GFLOP/s at 2048³, where a fixed 2048³ probe took
/// six minutes before a `--precision fp16` run could start.
pub fn measure_peak(device: Device, kind: Kind) -> Result<Peak> {
    let largest: i64 = if device.is_cuda() { 8192 } else { 2048 };
    let repeats = if device.is_cuda() { 10 } else { 6 };
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    // Constant operands: a GEMM's time does not depend on its values (no denormals here), and
    // drawing random ones would move the run's random stream.
    let operands = |n: i64| -> Result<(Tensor, Tensor)> {
        let a = Tensor::f_full([n, n], 0.5, (kind, device)).map_err(probe_error)?;
        let b = Tensor::f_full([n, n], 0.25, (kind, device)).map_err(probe_error)?;
        Ok((a, b))
    };
    let time = |a: &Tensor, b: &Tensor| -> Result<f64> {
        sync();
        let t = Instant::now();
        let c = a.f_mm(b).map_err(probe_error)?;
        sync();
        let seconds = t.elapsed().as_secs_f64();
        drop(c);
        Ok(seconds)
    };
    let mut n = FIRST_SIZE.min(largest);
    let (a, b, first) = loop {
        let (a, b) = operands(n)?;
        // A size's first product warms it up (its buffers, the library's kernel choice).
        time(&a, &b)?;
        let seconds = time(&a, &b)?;
        if seconds >= LONG_ENOUGH_SECONDS || n >= largest {
            break (a, b, seconds);
        }
        n *= 2;
    };
    let (mut best, mut spent) = (first, first);
    for i in 1..repeats {
        if i >= 2 && spent >= REPEAT_BUDGET_SECONDS {
            break;
        }
        let seconds = time(&a, &b)?;
        best = best.min(seconds);
        spent += seconds;
    }
    let flops = 2.0 * (n as f64).powi(3);
    Ok(Peak {
        flops_per_second: flops / best.max(1e-12),
        dtype: dtype_name(kind).into(),
        device: device_name(device),
        threads: tch::get_num_threads() as i64,
        shape: [n, n, n],
        measured_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

fn probe_error(e: tch::TchError) -> Error {
    Error::Runtime(format!("the GEMM peak probe failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_measures_a_positive_rate_and_names_itself() {
        let p = measure_peak(Device::Cpu, Kind::Float).unwrap();
        assert!(p.flops_per_second > 1e8 && p.flops_per_second.is_finite(), "{p:?}");
        assert_eq!((p.dtype.as_str(), p.device.as_str()), ("fp32", "cpu"));
        let n = p.shape[0];
        assert!(p.shape == [n; 3] && (256..=2048).contains(&n) && (n as u64).is_power_of_two(), "{p:?}");
        assert!(p.threads >= 1);
    }

    /// Without AVX512-FP16, libtorch's CPU fp16 GEMM runs at a few GFLOP/s or less: the probe stops
    /// growing well before 2048³, whose products took 40 s each (the run then waited minutes).
    #[test]
    fn a_slow_dtype_is_probed_at_a_small_size() {
        if crate::machine::cpu::CpuInfo::read().avx512_fp16 {
            eprintln!("skipped: this CPU has AVX512-FP16, so fp16 GEMMs are fast here");
            return;
        }
        let p = measure_peak(Device::Cpu, Kind::Half).unwrap();
        assert_eq!(p.dtype, "fp16");
        assert!(p.shape[0] <= 1024 && p.flops_per_second > 0.0, "{p:?}");
    }
}

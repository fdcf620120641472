//! `--precision auto`: bf16 where the device is measured to compute it fast, else fp32. The
//! default stays fp32 (exact parity with PyTorch's fp32 run); auto is for users who want speed.
//!
//! The rule, from measurements, not from device names:
//! - `--reproduce-pytorch` asks for PyTorch's fp32 run: fp32.
//! - A CPU without bf16 instructions (avx512_bf16, amx_bf16) emulates bf16 products in fp32,
//!   slower than fp32 itself: fp32, without measuring.
//! - Otherwise the bf16 and fp32 GEMM peaks are measured (cached per machine,
//!   [`crate::machine::peak_cache`]) and bf16 is chosen when its GEMM is at least
//!   [`BF16_MIN_GEMM_RATIO`] times fp32's. A training step also spends time outside the matmuls
//!   (casts, layer norms, softmax, the fp32 optimizer), so a GEMM that is only a little faster
//!   does not make the step faster.
use tch::{Device, Kind};

use super::precision::Precision;
use crate::machine::cpu::CpuInfo;
use crate::machine::{Peak, PeakSource};
use crate::Result;

/// bf16 GEMM rate over fp32 GEMM rate from which auto picks bf16. Measured (BENCHMARKS.md): an
/// AMX CPU's bf16 GEMM ran at 3.6-4x fp32's and bf16 trained 1.4-2.1x faster; an AVX512-BF16 CPU
/// without AMX (AMD EPYC) measured 1.5-2.2x, the spread of single probes, and bf16 trained
/// 1.4-1.7x faster. 2x, the first rule, picked fp32 there on a low probe.
pub const BF16_MIN_GEMM_RATIO: f64 = 1.3;

/// What auto chose, and the sentence the run says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoChoice {
    pub precision: Precision,
    pub why: String,
}

/// Chooses for `device`; `peak` gives a dtype's GEMM peak (measured or cached).
pub fn choose(
    device: Device,
    reproduce_pytorch: bool,
    cpu: &CpuInfo,
    mut peak: impl FnMut(Kind) -> Result<(Peak, PeakSource)>,
) -> Result<AutoChoice> {
    let fp32 = |why: String| Ok(AutoChoice { precision: Precision::Fp32, why });
    if reproduce_pytorch {
        return fp32("--precision auto: fp32 (--reproduce-pytorch computes PyTorch's fp32 run)".into());
    }
    if device == Device::Cpu && !cpu.has_bf16() {
        return fp32(
            "--precision auto: fp32 (this CPU has no bf16 instructions: avx512_bf16 or amx_bf16)".into(),
        );
    }
    let (bf16, _) = peak(Kind::BFloat16)?;
    let (f32_peak, _) = peak(Kind::Float)?;
    let ratio = bf16.flops_per_second / f32_peak.flops_per_second.max(1.0);
    let figures = format!(
        "bf16 GEMM {:.2} TFLOP/s, fp32 {:.2} TFLOP/s: {ratio:.1}x{}",
        bf16.flops_per_second / 1e12,
        f32_peak.flops_per_second / 1e12,
        if device == Device::Cpu {
            format!("; CPU bf16 instructions: {}", cpu.bf16_features())
        } else {
            String::new()
        }
    );
    if ratio >= BF16_MIN_GEMM_RATIO {
        Ok(AutoChoice { precision: Precision::Bf16, why: format!("--precision auto: bf16 ({figures})") })
    } else {
        fp32(format!("--precision auto: fp32 ({figures}, under {BF16_MIN_GEMM_RATIO}x)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peak(rate: f64) -> Result<(Peak, PeakSource)> {
        let p = Peak {
            flops_per_second: rate,
            dtype: String::new(),
            device: String::new(),
            threads: 2,
            shape: [1; 3],
            measured_at: 0,
        };
        Ok((p, PeakSource::Cached))
    }

    fn with_bf16() -> CpuInfo {
        CpuInfo { amx_bf16: true, avx512_bf16: true, ..CpuInfo::default() }
    }

    fn rates(bf16: f64, fp32: f64) -> impl FnMut(Kind) -> Result<(Peak, PeakSource)> {
        move |k| peak(if k == Kind::BFloat16 { bf16 } else { fp32 })
    }

    #[test]
    fn picks_bf16_only_where_its_gemm_is_measurably_faster() {
        let c = choose(Device::Cpu, false, &with_bf16(), rates(1.8e12, 0.36e12)).unwrap();
        assert_eq!(c.precision, Precision::Bf16);
        assert!(c.why.contains("5.0x") && c.why.contains("amx_bf16"), "{}", c.why);
        // An AVX512-BF16 CPU's low probe (AMD EPYC, 0.288 against 0.193) still picks bf16.
        let c = choose(Device::Cpu, false, &with_bf16(), rates(0.288e12, 0.193e12)).unwrap();
        assert_eq!(c.precision, Precision::Bf16, "{}", c.why);
        let c = choose(Device::Cpu, false, &with_bf16(), rates(0.42e12, 0.36e12)).unwrap();
        assert_eq!(c.precision, Precision::Fp32);
        assert!(c.why.contains("under 1.3x"), "{}", c.why);
        // CUDA decides by the same measurement (no CPU flags involved).
        let c = choose(Device::Cuda(0), false, &CpuInfo::default(), rates(700e12, 50e12)).unwrap();
        assert_eq!(c.precision, Precision::Bf16);
    }

    #[test]
    fn fp32_without_measuring_on_a_cpu_without_bf16_or_under_reproduce() {
        let never = |_: Kind| -> Result<(Peak, PeakSource)> { panic!("must not measure") };
        let c = choose(Device::Cpu, false, &CpuInfo::default(), never).unwrap();
        assert_eq!(c.precision, Precision::Fp32);
        assert!(c.why.contains("no bf16 instructions"), "{}", c.why);
        let c = choose(Device::Cpu, true, &with_bf16(), never).unwrap();
        assert_eq!(c.precision, Precision::Fp32);
        assert!(c.why.contains("--reproduce-pytorch"), "{}", c.why);
    }
}

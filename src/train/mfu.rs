//! A run's useful FLOP/s and its MFU (model FLOPs utilisation): the model's matmul FLOPs over the
//! real tokens ([`crate::model::ModelFlops`]) per second of wall time, as a fraction of the
//! machine's measured GEMM peak in the run's compute dtype ([`crate::machine::peak`]).
//!
//! A step's time is the wall time since the previous step ended (its batch wait and backward
//! included; evaluations and checkpoint writes between steps excluded). On CUDA the host runs
//! ahead of the GPU between the loss reads, so single steps' figures there are queueing times;
//! the epoch's figure (its FLOPs over its training seconds, which end in a sync) is the one to
//! read.
use std::time::Instant;

use serde::Serialize;
use tch::Kind;

use super::args::TrainArgs;
use super::precision::Precision;
use crate::machine::cpu::CpuInfo;
use crate::machine::peak_cache::{cache_path, cached_or_measured, forget_below, key};
use crate::machine::{Peak, PeakSource};
use crate::model::ModelFlops;
use crate::Result;

/// The `peak` record of metrics.jsonl: what MFU is measured against.
#[derive(Debug, Clone, Serialize)]
pub struct PeakRecord {
    pub kind: &'static str,
    #[serde(flatten)]
    pub peak: Peak,
    pub source: PeakSource,
}

/// The GEMM dtype of a precision: autocast runs the matmuls in its dtype.
pub fn compute_kind(precision: Precision) -> Kind {
    precision.autocast_kind().unwrap_or(Kind::Float)
}

/// The run's peak: `--peak-flops`, else the cached or measured GEMM peak of the run's device,
/// compute dtype and threads.
pub fn run_peak(args: &TrainArgs) -> Result<PeakRecord> {
    let kind = compute_kind(args.recipe.precision);
    let (peak, source) = match args.peak_flops {
        Some(rate) => (
            Peak {
                flops_per_second: rate,
                dtype: crate::machine::peak::dtype_name(kind).into(),
                device: crate::machine::peak::device_name(args.device),
                threads: tch::get_num_threads() as i64,
                shape: [0; 3],
                measured_at: 0,
            },
            PeakSource::Flag,
        ),
        None => cached_or_measured(args.device, kind)?,
    };
    Ok(PeakRecord { kind: "peak", peak, source })
}

/// A note for fp16 autocast on a CPU without AVX512-FP16, where libtorch has no fast fp16 GEMM
/// kernel (0.4-3 GFLOP/s on the development VM against 60-190 in fp32; MiniLM trained 19x slower
/// than in fp32): a user who knows fp16 from GPUs does not expect that. `cpu` is read only for
/// such a run. The figure is the run's peak when it was measured; a `--peak-flops` is not one.
/// libtorch's generic fp16 GEMM runs faster on the small products of a small model than on the
/// probe's square ones (a hidden-64 model measured 2.3x the 512³ figure), so the note says that
/// MFU against it is no utilisation.
pub fn slow_cpu_fp16_note(
    device: tch::Device,
    precision: Precision,
    peak: &PeakRecord,
    cpu: impl FnOnce() -> CpuInfo,
) -> Option<String> {
    if device != tch::Device::Cpu || compute_kind(precision) != Kind::Half {
        return None;
    }
    let cpu = cpu();
    if cpu.avx512_fp16 {
        return None;
    }
    let faster = if cpu.has_bf16() {
        format!("--precision bf16 (this CPU has {}) or fp32", cpu.bf16_features())
    } else {
        "fp32".to_string()
    };
    let p = &peak.peak;
    let speed = match peak.source {
        PeakSource::Flag => "have no fast kernel".to_string(),
        PeakSource::Measured | PeakSource::Cached => format!(
            "measure {:.1} GFLOP/s here ({}x{}x{}), with no fast kernel (their rate changes with the \
             product's size, so MFU against that figure can pass 100%)",
            p.flops_per_second / 1e9,
            p.shape[0],
            p.shape[1],
            p.shape[2]
        ),
    };
    Some(format!(
        "note: --precision fp16 on a CPU without AVX512-FP16: libtorch's fp16 GEMMs {speed}; {faster} \
         trains faster"
    ))
}

/// The note for an epoch whose useful rate passed the probed peak its MFU is measured against
/// (MFU above 100%): the probe ran while the machine was busy (a first run's probe beside other
/// work, or a test suite's). The figure is dropped from the cache, so the next run measures
/// again. `None` when the rate is within the peak, or the peak is `--peak-flops`'s.
pub fn peak_passed_note(peak: &PeakRecord, rate: f64) -> Option<String> {
    let p = &peak.peak;
    if peak.source == PeakSource::Flag || rate <= p.flops_per_second {
        return None;
    }
    let path = cache_path();
    let key = key(&p.device, &p.dtype, p.threads);
    let dropped = path.as_deref().map(|path| (path, forget_below(path, &key, rate)));
    let then = match dropped {
        Some((path, Ok(true))) => {
            format!("it is dropped from {}, so the next run measures again", path.display())
        }
        _ => "measure it again on an idle machine".to_string(),
    };
    Some(format!(
        "note: this epoch did {:.1} GFLOP/s of useful work, above the {} GEMM peak its MFU is \
         measured against ({:.1} GFLOP/s, {}): that probe ran while the machine was busy; {then} \
         (or run `bertfit bench-peak`)",
        rate / 1e9,
        p.dtype,
        p.flops_per_second / 1e9,
        peak.source
    ))
}

/// Counts a run's useful FLOPs and times its steps.
#[derive(Debug)]
pub struct FlopMeter {
    model: ModelFlops,
    peak: f64,
    last_step_end: Instant,
}

/// One step's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepFlops {
    pub flops: f64,
    pub flops_per_second: f64,
    pub mfu: f64,
}

impl FlopMeter {
    pub fn new(model: ModelFlops, peak_flops_per_second: f64) -> Self {
        FlopMeter { model, peak: peak_flops_per_second, last_step_end: Instant::now() }
    }

    /// The training FLOPs of a micro-batch whose rows hold `lengths` real tokens.
    pub fn training_flops(&self, lengths: impl IntoIterator<Item = usize>) -> f64 {
        self.model.training(lengths)
    }

    /// A step of `flops` just ended: its rate over the time since the last one ended.
    pub fn step_ended(&mut self, flops: f64) -> StepFlops {
        let now = Instant::now();
        let seconds = now.duration_since(self.last_step_end).as_secs_f64().max(1e-9);
        self.last_step_end = now;
        self.rate(flops, seconds)
    }

    /// Work between steps (evaluation, checkpoint) is not the next step's time.
    pub fn pause_ended(&mut self) {
        self.last_step_end = Instant::now();
    }

    /// `flops` done in `seconds`, against the peak.
    pub fn rate(&self, flops: f64, seconds: f64) -> StepFlops {
        let flops_per_second = flops / seconds.max(1e-9);
        StepFlops { flops, flops_per_second, mfu: flops_per_second / self.peak.max(1.0) }
    }
}

/// Real tokens per row of a (B, T) attention mask on the host.
pub fn row_lengths(attention_mask: &tch::Tensor) -> Vec<usize> {
    let sums = attention_mask.sum_dim_intlist([1i64].as_slice(), false, Kind::Int64);
    Vec::<i64>::try_from(&sums).unwrap_or_default().into_iter().map(|n| n.max(0) as usize).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BertConfig;

    #[test]
    fn rates_are_flops_over_seconds_against_the_peak() {
        let m = FlopMeter::new(ModelFlops::of(&BertConfig::default()), 1e12);
        let r = m.rate(5e11, 2.0);
        assert_eq!((r.flops, r.flops_per_second, r.mfu), (5e11, 2.5e11, 0.25));
    }

    #[test]
    fn fp16_on_a_cpu_without_avx512_fp16_is_said_to_be_slow() {
        let peak = |source| PeakRecord {
            kind: "peak",
            peak: Peak {
                flops_per_second: 2.2e9,
                dtype: "fp16".into(),
                device: "cpu".into(),
                threads: 2,
                shape: [512; 3],
                measured_at: 0,
            },
            source,
        };
        let measured = peak(PeakSource::Measured);
        let cpu = |bf16: bool, fp16: bool| {
            move || CpuInfo { avx512_bf16: bf16, avx512_fp16: fp16, ..CpuInfo::default() }
        };
        let said =
            slow_cpu_fp16_note(tch::Device::Cpu, Precision::Fp16, &measured, cpu(true, false)).unwrap();
        assert!(said.contains("2.2 GFLOP/s") && said.contains("512x512x512"), "{said}");
        assert!(said.contains("MFU against that figure can pass 100%"), "{said}");
        assert!(said.contains("--precision bf16 (this CPU has avx512_bf16) or fp32"), "{said}");
        let said =
            slow_cpu_fp16_note(tch::Device::Cpu, Precision::Fp16, &measured, cpu(false, false)).unwrap();
        assert!(said.ends_with("fp32 trains faster"), "{said}");
        // A --peak-flops figure was not measured: the note gives none.
        let said =
            slow_cpu_fp16_note(tch::Device::Cpu, Precision::Fp16, &peak(PeakSource::Flag), cpu(true, false))
                .unwrap();
        assert!(said.contains("GEMMs have no fast kernel") && !said.contains("GFLOP/s"), "{said}");
        assert_eq!(slow_cpu_fp16_note(tch::Device::Cpu, Precision::Fp16, &measured, cpu(true, true)), None);
        assert_eq!(slow_cpu_fp16_note(tch::Device::Cpu, Precision::Bf16, &measured, cpu(true, false)), None);
        assert_eq!(
            slow_cpu_fp16_note(tch::Device::Cuda(0), Precision::Fp16, &measured, cpu(true, false)),
            None
        );
    }

    #[test]
    fn row_lengths_count_the_mask_ones() {
        let mask = tch::Tensor::from_slice2(&[[1i64, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]]);
        assert_eq!(row_lengths(&mask), vec![3, 4, 1]);
    }
}

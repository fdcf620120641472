//! The CPU's model name and the instruction sets that decide whether bf16 is a speed feature:
//! AVX512-BF16 (bf16 dot products in vector registers) and AMX-BF16 (tile matrix units), which
//! oneDNN, libtorch's bf16 matmul backend, uses when the CPU has them. Without either, libtorch
//! emulates bf16 products in fp32 and bf16 is slower than fp32.
use std::fs;

/// What /proc/cpuinfo says of the first CPU (Linux; elsewhere everything is unknown/false).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// "model name", e.g. "Intel(R) Xeon(R) Processor"; empty when unknown.
    pub model_name: String,
    pub avx512_bf16: bool,
    pub amx_bf16: bool,
    pub avx512_fp16: bool,
}

impl CpuInfo {
    pub fn read() -> Self {
        fs::read_to_string("/proc/cpuinfo").map(|t| Self::parse(&t)).unwrap_or_default()
    }

    /// Parses /proc/cpuinfo's text (its first processor block is enough: every core of a machine
    /// has the same flags).
    pub fn parse(text: &str) -> Self {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        let flags = field("flags");
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        CpuInfo {
            model_name: field("model name"),
            avx512_bf16: has("avx512_bf16"),
            amx_bf16: has("amx_bf16"),
            avx512_fp16: has("avx512_fp16"),
        }
    }

    /// Whether the CPU computes bf16 products in hardware.
    pub fn has_bf16(&self) -> bool {
        self.avx512_bf16 || self.amx_bf16
    }

    /// The instruction sets behind [`CpuInfo::has_bf16`], for messages ("avx512_bf16, amx_bf16").
    pub fn bf16_features(&self) -> String {
        let names: Vec<&str> = [("avx512_bf16", self.avx512_bf16), ("amx_bf16", self.amx_bf16)]
            .into_iter()
            .filter_map(|(n, on)| on.then_some(n))
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_model_and_bf16_flags() {
        let text = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n\
                    flags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n\nprocessor\t: 1\n";
        let c = CpuInfo::parse(text);
        assert_eq!(c.model_name, "Intel(R) Xeon(R) Processor");
        assert!(c.avx512_bf16 && c.amx_bf16 && !c.avx512_fp16 && c.has_bf16());
        assert_eq!(c.bf16_features(), "avx512_bf16, amx_bf16");
        // "avx512_bf16" must be a whole flag, not a prefix of another.
        let c = CpuInfo::parse("model name : X\nflags : avx512f avx512_bf16x\n");
        assert!(!c.has_bf16());
        assert_eq!(c.bf16_features(), "none");
        assert_eq!(CpuInfo::parse(""), CpuInfo::default());
    }
}

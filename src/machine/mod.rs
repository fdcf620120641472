//! What the machine a run is on can do: its CPU's instruction sets (`cpu.rs`) and the matrix
//! product rate it reaches, measured (`peak.rs`) and remembered per machine (`peak_cache.rs`), so
//! every run can report its FLOP/s as a fraction of that peak (MFU); and how its memory allocator
//! is set for a process that allocates the same large tensors every step (`malloc.rs`).
pub mod cpu;
pub mod malloc;
pub mod peak;
pub mod peak_cache;

pub use peak::{measure_peak, Peak, PeakSource};

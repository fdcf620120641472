//! Bounds of the numeric flags every subcommand shares and of the launchers' variables, in one
//! place: each subcommand's `into_args` calls these before anything runs, and so does the reading
//! of torchrun's and SLURM's variables (`dist::env`), so an out-of-range value is refused in
//! words, naming the flag or variable and the range, instead of reaching libtorch (whose
//! `set_num_threads(0)` throws a C++ exception and whose `set_num_threads(100000)` starts that
//! many threads and hangs) or an allocation (a WORLD_SIZE of 2^40 sized per-rank tables).
use crate::error::{Error, Result};

/// `--threads` may be at most this many times the machine's cores: more than one thread per core
/// helps nothing in libtorch's intra-op pool, a few per core is harmless, thousands hang.
pub const THREADS_PER_CORE: usize = 4;

/// The cores this process may run on (its CPU affinity, as `nproc`); 1 when unknown.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The largest `--threads` accepted on this machine.
pub fn max_threads() -> usize {
    available_cores() * THREADS_PER_CORE
}

/// `--threads`: `None` keeps libtorch's default (one per core); otherwise 1 ..= cores x 4.
pub fn threads(flag: &str, value: Option<i64>) -> Result<Option<i32>> {
    let Some(v) = value else { return Ok(None) };
    let (cores, max) = (available_cores(), max_threads());
    if v < 1 || v > max as i64 {
        return Err(Error::usage(
            flag,
            format!(
                "must be in 1..={max} (this machine has {cores} core(s); at most {THREADS_PER_CORE} \
                 threads per core), got {v}"
            ),
        ));
    }
    // max is far below i32::MAX on any machine; the conversion cannot fail in practice.
    i32::try_from(v).map(Some).map_err(|_| Error::usage(flag, format!("{v} is too large")))
}

/// The most processes a run may have. Every rank keeps per-rank tables (a step's rows, the
/// rendezvous keys), so a mistyped WORLD_SIZE of 2^40 would exhaust memory before any message;
/// 65,536 is far beyond any data-parallel fine-tuning job (PyTorch's largest runs use tens of
/// thousands of GPUs).
pub const MAX_WORLD_SIZE: usize = 65_536;

/// A world size (`var`: WORLD_SIZE or SLURM_NTASKS): 1 ..= [`MAX_WORLD_SIZE`].
pub fn world_size(var: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::usage(var, "must be at least 1"));
    }
    if n > MAX_WORLD_SIZE {
        return Err(Error::usage(
            var,
            format!("{n} is more than bertfit's limit of {MAX_WORLD_SIZE} processes"),
        ));
    }
    Ok(())
}

/// A rank or local rank (`var`) of a world of `world` processes: below it, and below the limit.
pub fn rank(var: &str, rank: usize, world: usize, world_var: &str) -> Result<()> {
    if rank >= MAX_WORLD_SIZE {
        return Err(Error::usage(
            var,
            format!("{rank} is not below bertfit's limit of {MAX_WORLD_SIZE} processes"),
        ));
    }
    if rank >= world {
        return Err(Error::usage(
            var,
            format!("{rank} is not below {world_var}={world} (ranks count from 0)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_bounded_by_the_cores() {
        assert_eq!(threads("--threads", None).unwrap(), None);
        assert_eq!(threads("--threads", Some(1)).unwrap(), Some(1));
        assert_eq!(threads("--threads", Some(max_threads() as i64)).unwrap(), Some(max_threads() as i32));
        for bad in [0, -1, max_threads() as i64 + 1, 100_000, i64::MAX, i64::MIN] {
            let err = threads("--threads", Some(bad)).unwrap_err().to_string();
            assert!(err.starts_with("--threads: must be in 1..="), "{bad}: {err}");
        }
    }
}

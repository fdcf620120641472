//! Bounds of the numeric flags every subcommand shares, in one place: each subcommand's
//! `into_args` calls these before anything runs, so an out-of-range value is refused in words,
//! naming the flag and the range, instead of reaching libtorch (whose `set_num_threads(0)` throws
//! a C++ exception and whose `set_num_threads(100000)` starts that many threads and hangs).
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

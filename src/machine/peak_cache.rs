//! Measured peaks remembered per machine, so the probe runs once per (machine, device, dtype,
//! threads) and not at every start. A JSON file: `$BERTFIT_PEAK_FILE`, else
//! `$XDG_CACHE_HOME/bertfit/peak.json`, else `~/.cache/bertfit/peak.json`. `bertfit bench-peak`
//! measures again and replaces the entries (after a hardware change, or when the first probe ran
//! on a busy machine). A cache that cannot be read is measured over, never an error: it only
//! saves time.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use tch::{Device, Kind};

use super::cpu::CpuInfo;
use super::peak::{device_name, dtype_name, measure_peak, Peak, PeakSource};
use crate::output::write_atomic;
use crate::Result;

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    /// Key ([`key`]) to peak.
    peaks: BTreeMap<String, Peak>,
}

/// The peak of `kind` GEMMs on `device` with libtorch's current threads: from the cache, else
/// measured now and cached (a cache that cannot be written is said by the caller, not fatal).
pub fn cached_or_measured(device: Device, kind: Kind) -> Result<(Peak, PeakSource)> {
    let key = key(&device_name(device), dtype_name(kind), tch::get_num_threads() as i64);
    let path = cache_path();
    if let Some(peak) = path.as_deref().and_then(|p| lookup(p, &key)) {
        return Ok((peak, PeakSource::Cached));
    }
    let peak = measure_peak(device, kind)?;
    if let Some(p) = path {
        // Only a time saver: a read-only home is no reason to stop a run.
        let _ = store(&p, &key, &peak);
    }
    Ok((peak, PeakSource::Measured))
}

/// The cache file's path, if a location is known.
pub fn cache_path() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("BERTFIT_PEAK_FILE")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("bertfit").join("peak.json")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("bertfit").join("peak.json")))
}

/// What a peak depends on: the machine (host name and CPU model), the device, the dtype and the
/// thread count.
pub fn key(device: &str, dtype: &str, threads: i64) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}|{}|{device}|{dtype}|threads={threads}", host.trim(), CpuInfo::read().model_name)
}

/// The cached peak for `key` in the file at `path`, if there is one.
pub fn lookup(path: &Path, key: &str) -> Option<Peak> {
    read(path).peaks.remove(key)
}

/// Records `peak` under `key` unless a higher figure is there already: a lower one means the
/// probe was disturbed (other processes on the cores), and a peak is the best the machine does.
pub fn store(path: &Path, key: &str, peak: &Peak) -> Result<()> {
    let file = read(path);
    match file.peaks.get(key) {
        Some(old) if old.flops_per_second >= peak.flops_per_second => Ok(()),
        _ => write(path, file, key, peak),
    }
}

/// Drops the figure under `key` if it is below `rate`, a useful rate a run achieved: no run
/// outpaces a true peak, so that probe was disturbed (other work on the cores), and the next run
/// measures again. A higher figure (another process's newer probe) stays. Whether one was dropped.
pub fn forget_below(path: &Path, key: &str, rate: f64) -> Result<bool> {
    let mut file = read(path);
    if !file.peaks.get(key).is_some_and(|p| p.flops_per_second < rate) {
        return Ok(false);
    }
    file.peaks.remove(key);
    save(path, &file)?;
    Ok(true)
}

/// Puts `peak` under `key` whatever was there (`bertfit bench-peak`), keeping the file's other
/// entries.
pub fn replace(path: &Path, key: &str, peak: &Peak) -> Result<()> {
    write(path, read(path), key, peak)
}

/// `file` with `peak` under `key`, written.
fn write(path: &Path, mut file: CacheFile, key: &str, peak: &Peak) -> Result<()> {
    file.peaks.insert(key.to_string(), peak.clone());
    save(path, &file)
}

/// `file` written atomically: processes starting together (the ranks of one job) each leave a
/// whole file.
fn save(path: &Path, file: &CacheFile) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(file).map_err(|e| crate::Error::Runtime(e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

fn read(path: &Path) -> CacheFile {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peak(rate: f64) -> Peak {
        Peak {
            flops_per_second: rate,
            dtype: "fp32".into(),
            device: "cpu".into(),
            threads: 2,
            shape: [8, 8, 8],
            measured_at: 1,
        }
    }

    #[test]
    fn stores_and_finds_by_key_keeping_other_entries() {
        let dir = crate::test_support::fresh_dir("peak-cache");
        let path = dir.join("sub").join("peak.json");
        assert_eq!(lookup(&path, "a"), None);
        store(&path, "a", &peak(1.0)).unwrap();
        store(&path, "b", &peak(2.0)).unwrap();
        store(&path, "a", &peak(3.0)).unwrap();
        assert_eq!(lookup(&path, "a"), Some(peak(3.0)));
        // A lower figure (a disturbed probe) does not replace a higher one; `replace` does.
        store(&path, "a", &peak(0.5)).unwrap();
        assert_eq!(lookup(&path, "a"), Some(peak(3.0)));
        replace(&path, "a", &peak(0.5)).unwrap();
        assert_eq!(lookup(&path, "a"), Some(peak(0.5)));
        replace(&path, "a", &peak(3.0)).unwrap();
        assert_eq!(lookup(&path, "b"), Some(peak(2.0)));
        // A damaged cache is no cache (and is replaced on the next store).
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(lookup(&path, "a"), None);
        store(&path, "a", &peak(4.0)).unwrap();
        assert_eq!(lookup(&path, "a"), Some(peak(4.0)));
    }

    #[test]
    fn a_figure_a_run_outpaced_is_forgotten_and_a_higher_one_kept() {
        let dir = crate::test_support::fresh_dir("peak-cache-forget");
        let path = dir.join("peak.json");
        store(&path, "a", &peak(80.0)).unwrap();
        store(&path, "b", &peak(2.0)).unwrap();
        assert!(!forget_below(&path, "a", 80.0).unwrap(), "a run at the peak proves nothing");
        assert!(!forget_below(&path, "none", 1e9).unwrap());
        assert_eq!(lookup(&path, "a"), Some(peak(80.0)));
        assert!(forget_below(&path, "a", 87.0).unwrap());
        assert_eq!((lookup(&path, "a"), lookup(&path, "b")), (None, Some(peak(2.0))));
    }

    #[test]
    fn keys_differ_by_device_dtype_and_threads() {
        let k = key("cpu", "fp32", 2);
        assert!(k.ends_with("|cpu|fp32|threads=2"), "{k}");
        assert_ne!(k, key("cpu", "bf16", 2));
        assert_ne!(k, key("cpu", "fp32", 1));
    }
}

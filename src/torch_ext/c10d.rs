//! Safe wrappers over `csrc/c10d.cpp`: PyTorch's c10d (TCPStore, ProcessGroupGloo,
//! ProcessGroupNCCL) as the torch wheel's libraries export it. `crate::dist` builds on these.
//!
//! Same contract as the parent module: every call returns NULL or a malloc'd message that becomes
//! [`Error::TorchExt`]; tensors are passed as `at::Tensor*`.
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::time::Duration;

use tch::Tensor;

use crate::error::{Error, Result};

type RawTensor = *mut c_void;
type RawGroup = *mut c_void;

mod ffi {
    use super::*;

    // Linked by build.rs (`static=bertfit_c10d`).
    extern "C" {
        pub fn bf_c10d_free_error(msg: *mut c_char);
        pub fn bf_c10d_has_nccl() -> c_int;
        pub fn bf_c10d_store_new(
            master_addr: *const c_char,
            port: c_int,
            rank: c_int,
            world_size: c_int,
            store_timeout_ms: i64,
            out: *mut RawGroup,
        ) -> *mut c_char;
        pub fn bf_c10d_store_set(
            g: RawGroup,
            key: *const c_char,
            value: *const c_char,
            len: usize,
        ) -> *mut c_char;
        pub fn bf_c10d_store_get(
            g: RawGroup,
            key: *const c_char,
            buf: *mut c_char,
            cap: usize,
            len: *mut usize,
        ) -> *mut c_char;
        pub fn bf_c10d_store_add(g: RawGroup, key: *const c_char, delta: i64, out: *mut i64) -> *mut c_char;
        pub fn bf_c10d_store_set_timeout(g: RawGroup, timeout_ms: i64) -> *mut c_char;
        pub fn bf_c10d_backend_init(g: RawGroup, backend: c_int, timeout_ms: i64) -> *mut c_char;
        pub fn bf_c10d_group_free(g: RawGroup);
        pub fn bf_c10d_allreduce(
            g: RawGroup,
            tensors: *const RawTensor,
            n: usize,
            op: c_int,
            timeout_ms: i64,
        ) -> *mut c_char;
        pub fn bf_c10d_broadcast(
            g: RawGroup,
            tensors: *const RawTensor,
            n: usize,
            root: c_int,
            timeout_ms: i64,
        ) -> *mut c_char;
        pub fn bf_c10d_barrier(g: RawGroup, timeout_ms: i64) -> *mut c_char;
    }
}

fn check(msg: *mut c_char) -> Result<()> {
    if msg.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string the shim allocated; freed once, here.
    let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned();
    unsafe { ffi::bf_c10d_free_error(msg) };
    Err(Error::TorchExt(text))
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::TorchExt(format!("{s:?} contains a NUL byte")))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn raw_list(ts: &[Tensor]) -> Vec<RawTensor> {
    ts.iter().map(|t| t.as_ptr() as RawTensor).collect()
}

/// Whether this build compiled ProcessGroupNCCL in.
pub fn has_nccl() -> bool {
    // SAFETY: reads a constant.
    unsafe { ffi::bf_c10d_has_nccl() != 0 }
}

/// Which c10d backend runs the collectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Gloo,
    Nccl,
}

/// `c10d::ReduceOp` (Avg is NCCL only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    Avg = 1,
    Product = 2,
    Min = 3,
    Max = 4,
}

/// A TCPStore (served by rank 0) and, once [`Group::init_backend`] ran, a c10d backend over it.
pub struct Group {
    raw: RawGroup,
    /// Set when a collective failed: the backend's worker threads may still be blocked on a dead
    /// peer, and destroying it would wait for them, so a broken group is leaked instead.
    broken: bool,
}

// SAFETY: the C++ objects are used from one thread at a time (`&mut self` for every call).
unsafe impl Send for Group {}

impl Group {
    /// Serves (rank 0) or connects to the store at `master_addr:port`, retrying for `timeout`.
    pub fn connect(
        master_addr: &str,
        port: u16,
        rank: usize,
        world_size: usize,
        timeout: Duration,
    ) -> Result<Self> {
        let addr = cstring(master_addr)?;
        let mut raw: RawGroup = std::ptr::null_mut();
        // SAFETY: valid C string, out-pointer written on success only.
        check(unsafe {
            ffi::bf_c10d_store_new(
                addr.as_ptr(),
                c_int::from(port),
                rank as c_int,
                world_size as c_int,
                millis(timeout),
                &mut raw,
            )
        })?;
        Ok(Group { raw, broken: false })
    }

    pub fn store_set(&mut self, key: &str, value: &[u8]) -> Result<()> {
        let k = cstring(key)?;
        // SAFETY: valid group, key and (pointer, length).
        check(unsafe {
            ffi::bf_c10d_store_set(self.raw, k.as_ptr(), value.as_ptr() as *const c_char, value.len())
        })
    }

    /// The value of `key`, waiting for it up to the store's timeout.
    pub fn store_get(&mut self, key: &str) -> Result<Vec<u8>> {
        let k = cstring(key)?;
        let mut buf = vec![0u8; 256];
        let mut len = 0usize;
        // SAFETY: buf has `cap` writable bytes; the shim writes at most that many.
        check(unsafe {
            ffi::bf_c10d_store_get(self.raw, k.as_ptr(), buf.as_mut_ptr() as *mut c_char, buf.len(), &mut len)
        })?;
        if len > buf.len() {
            buf.resize(len, 0);
            // SAFETY: as above, with room for the whole value now.
            check(unsafe {
                ffi::bf_c10d_store_get(
                    self.raw,
                    k.as_ptr(),
                    buf.as_mut_ptr() as *mut c_char,
                    buf.len(),
                    &mut len,
                )
            })?;
        }
        buf.truncate(len);
        Ok(buf)
    }

    pub fn store_add(&mut self, key: &str, delta: i64) -> Result<i64> {
        let k = cstring(key)?;
        let mut out = 0i64;
        // SAFETY: valid group and key; out written on success.
        check(unsafe { ffi::bf_c10d_store_add(self.raw, k.as_ptr(), delta, &mut out) })?;
        Ok(out)
    }

    pub fn set_store_timeout(&mut self, timeout: Duration) -> Result<()> {
        // SAFETY: valid group.
        check(unsafe { ffi::bf_c10d_store_set_timeout(self.raw, millis(timeout)) })
    }

    /// Creates the backend: blocks until every rank connected, or `timeout` passed.
    pub fn init_backend(&mut self, kind: BackendKind, timeout: Duration) -> Result<()> {
        let k = match kind {
            BackendKind::Gloo => 0,
            BackendKind::Nccl => 1,
        };
        // SAFETY: valid group.
        self.guard(unsafe { ffi::bf_c10d_backend_init(self.raw, k, millis(timeout)) })
    }

    /// In-place all-reduce of same-shaped tensors.
    pub fn all_reduce(&mut self, tensors: &[Tensor], op: ReduceOp, timeout: Duration) -> Result<()> {
        let raw = raw_list(tensors);
        // SAFETY: live tensors, the list's own length.
        self.guard(unsafe {
            ffi::bf_c10d_allreduce(self.raw, raw.as_ptr(), raw.len(), op as c_int, millis(timeout))
        })
    }

    /// In-place broadcast from `root`.
    pub fn broadcast(&mut self, tensors: &[Tensor], root: usize, timeout: Duration) -> Result<()> {
        let raw = raw_list(tensors);
        // SAFETY: live tensors, the list's own length.
        self.guard(unsafe {
            ffi::bf_c10d_broadcast(self.raw, raw.as_ptr(), raw.len(), root as c_int, millis(timeout))
        })
    }

    pub fn barrier(&mut self, timeout: Duration) -> Result<()> {
        // SAFETY: valid group.
        self.guard(unsafe { ffi::bf_c10d_barrier(self.raw, millis(timeout)) })
    }

    fn guard(&mut self, msg: *mut c_char) -> Result<()> {
        let r = check(msg);
        if r.is_err() {
            self.broken = true;
        }
        r
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.broken {
            // SAFETY: created by bf_c10d_store_new, freed once.
            unsafe { ffi::bf_c10d_group_free(self.raw) };
        }
    }
}

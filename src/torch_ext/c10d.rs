//! Safe wrappers over `csrc/c10d.cpp`: PyTorch's c10d (TCPStore, ProcessGroupGloo,
//! ProcessGroupNCCL) as the torch wheel's libraries export it. `crate::dist` builds on these.
//!
//! Same contract as the parent module: every call returns NULL or a malloc'd message that the
//! parent's one `check` turns into [`Error::TorchExt`]; tensors are passed as `at::Tensor*`; the
//! backend and reduce-op codes are the `#[repr(i32)]` twins of `bf_backend` and `bf_reduce_op` in
//! `csrc/c10d.h`.
//!
//! The calls that wait on the network outside a collective (connecting to the store, its reads and
//! writes, creating the Gloo backend) run on a helper thread while the caller polls a [`Patience`]:
//! a TCPStore read on a partitioned link blocks until the kernel gives the connection up (about 16
//! minutes with Linux's defaults), whatever the store's timeout says, and a blocked C++ call cannot
//! see a stop request. When the patience gives up, the call is abandoned on its thread and the
//! group is never touched again (nor freed): its error goes up and the process is expected to end.
//! Collectives stay on the caller's thread: Gloo and NCCL bound them by their own timeouts.
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tch::Tensor;

use super::check;
use crate::error::{Error, Result};

type RawTensor = *mut c_void;
type RawGroup = *mut c_void;

mod ffi {
    use super::*;

    // Linked by build.rs (`static=bertfit_c10d`).
    extern "C" {
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
        pub fn bf_c10d_backend_init(
            g: RawGroup,
            backend: BackendKind,
            timeout_ms: i64,
            gloo_ifnames: *const c_char,
            gloo_host: *const c_char,
        ) -> *mut c_char;
        pub fn bf_c10d_group_free(g: RawGroup);
        pub fn bf_c10d_allreduce(
            g: RawGroup,
            tensors: *const RawTensor,
            n: usize,
            op: ReduceOp,
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

/// Which c10d backend runs the collectives (`bf_backend`; `--ddp-backend`'s choices: gloo, nccl).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    Gloo = 0,
    Nccl = 1,
}

/// `c10d::ReduceOp` (`bf_reduce_op`; Avg is NCCL only).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    Avg = 1,
    Product = 2,
    Min = 3,
    Max = 4,
}

/// Where Gloo binds (the caller chooses: `crate::dist::group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlooDevice {
    /// Network interfaces by name, comma-separated (GLOO_SOCKET_IFNAME): one device each.
    Interfaces(String),
    /// An address (or a name resolving to one) of this host.
    Host(String),
}

/// How long a caller waits for a call running on a helper thread: called about every
/// [`POLL`] with the time waited so far; an `Err` abandons the call and is what the call returns.
/// It may also print (a waiting rank saying so).
pub type Patience<'a> = &'a mut dyn FnMut(Duration) -> Result<()>;

/// How often a waiting caller consults its [`Patience`] (a stop request is seen within this).
pub const POLL: Duration = Duration::from_millis(100);

/// A group pointer that may cross to a helper thread.
#[derive(Clone, Copy)]
struct RawSend(RawGroup);

// SAFETY: the C++ group is touched by one thread at a time: the caller waits for the helper thread
// it hands the pointer to, and after abandoning a call it never touches (nor frees) the group again.
unsafe impl Send for RawSend {}

impl RawSend {
    /// Through a method, so a closure captures the whole (Send) wrapper, not its raw field.
    fn get(self) -> RawGroup {
        self.0
    }
}

/// Runs `call` on a helper thread and waits for it under `patience`. `Ok(result)`: the call ended
/// (with its own result). `Err`: the patience gave up (or the thread could not start); the call
/// goes on alone and `discard` gets its result if it ever comes, so nothing it made leaks.
fn on_helper_thread<T: Send + 'static>(
    call: impl FnOnce() -> T + Send + 'static,
    discard: impl FnOnce(T) + Send + 'static,
    patience: Patience,
) -> Result<T> {
    // One slot: the helper's send never blocks, and fails once the caller has gone (abandoned),
    // which hands the result to `discard`.
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("bertfit-c10d".into())
        .spawn(move || {
            if let Err(mpsc::SendError(unclaimed)) = tx.send(call()) {
                discard(unclaimed);
            }
        })
        .map_err(|e| Error::Runtime(format!("cannot start a thread for a c10d call: {e}")))?;
    let started = Instant::now();
    loop {
        match rx.recv_timeout(POLL) {
            Ok(result) => return Ok(result),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Runtime("a c10d call's thread ended without an answer".into()))
            }
            Err(RecvTimeoutError::Timeout) => patience(started.elapsed())?,
        }
    }
}

/// A TCPStore (served by rank 0) and, once [`Group::init_backend`] ran, a c10d backend over it.
pub struct Group {
    raw: RawGroup,
    /// Set when a collective failed: the backend's worker threads may still be blocked on a dead
    /// peer, and destroying it would wait for them, so a broken group is leaked instead.
    broken: bool,
    /// Why the group may not be used any more: a call on it was abandoned and may still be
    /// running on its helper thread.
    abandoned: Option<String>,
}

// SAFETY: the C++ objects are used from one thread at a time (`&mut self` for every call; a call on
// a helper thread is waited for, or abandoned together with the group).
unsafe impl Send for Group {}

impl Group {
    /// Serves (rank 0) or connects to the store at `master_addr:port`, retrying for `timeout`
    /// (c10d's own limit), while `patience` allows.
    pub fn connect(
        master_addr: &str,
        port: u16,
        rank: usize,
        world_size: usize,
        timeout: Duration,
        patience: Patience,
    ) -> Result<Self> {
        let addr = cstring(master_addr)?;
        let (rank, world_size) = (rank as c_int, world_size as c_int);
        let connect = move || {
            let mut raw: RawGroup = std::ptr::null_mut();
            // SAFETY: valid C string (owned by this closure), out-pointer written on success only.
            let msg = unsafe {
                ffi::bf_c10d_store_new(
                    addr.as_ptr(),
                    c_int::from(port),
                    rank,
                    world_size,
                    millis(timeout),
                    &mut raw,
                )
            };
            check(msg).map(|()| RawSend(raw))
        };
        // A store that connects after its caller gave up is closed again (nothing uses it).
        // SAFETY: created by bf_c10d_store_new, freed once, by the thread that made it.
        let discard = |r: Result<RawSend>| {
            if let Ok(g) = r {
                unsafe { ffi::bf_c10d_group_free(g.get()) }
            }
        };
        let raw = on_helper_thread(connect, discard, patience)??;
        Ok(Group { raw: raw.get(), broken: false, abandoned: None })
    }

    /// Runs `call` on the group from a helper thread under `patience` (see the module's notes).
    fn detached<T: Send + 'static>(
        &mut self,
        call: impl FnOnce(RawGroup) -> Result<T> + Send + 'static,
        patience: Patience,
    ) -> Result<T> {
        self.usable()?;
        let raw = RawSend(self.raw);
        match on_helper_thread(move || call(raw.get()), drop, patience) {
            Ok(result) => result,
            Err(e) => {
                self.abandoned = Some(e.to_string());
                self.broken = true;
                Err(e)
            }
        }
    }

    pub fn store_set(&mut self, key: &str, value: &[u8], patience: Patience) -> Result<()> {
        let (k, value) = (cstring(key)?, value.to_vec());
        // SAFETY: valid group, key and (pointer, length), all owned by the closure.
        self.detached(
            move |g| {
                check(unsafe {
                    ffi::bf_c10d_store_set(g, k.as_ptr(), value.as_ptr() as *const c_char, value.len())
                })
            },
            patience,
        )
    }

    /// The value of `key`, waiting for it up to the store's timeout (and `patience`).
    pub fn store_get(&mut self, key: &str, patience: Patience) -> Result<Vec<u8>> {
        let k = cstring(key)?;
        self.detached(move |g| get(g, &k), patience)
    }

    pub fn store_add(&mut self, key: &str, delta: i64, patience: Patience) -> Result<i64> {
        let k = cstring(key)?;
        self.detached(
            move |g| {
                let mut out = 0i64;
                // SAFETY: valid group and key; out written on success.
                check(unsafe { ffi::bf_c10d_store_add(g, k.as_ptr(), delta, &mut out) })?;
                Ok(out)
            },
            patience,
        )
    }

    /// The timeout of the store's reads (a local setting: no network, no helper thread).
    pub fn set_store_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.usable()?;
        // SAFETY: valid group, not in use elsewhere.
        check(unsafe { ffi::bf_c10d_store_set_timeout(self.raw, millis(timeout)) })
    }

    /// Creates the backend: blocks until every rank connected, or `timeout` passed (or `patience`
    /// gave up). `timeout` is also the backend's default for collectives. Gloo binds to `gloo`.
    pub fn init_backend(
        &mut self,
        kind: BackendKind,
        timeout: Duration,
        gloo: &GlooDevice,
        patience: Patience,
    ) -> Result<()> {
        let (ifnames, host) = match gloo {
            GlooDevice::Interfaces(names) => (cstring(names)?, cstring("")?),
            GlooDevice::Host(host) => (cstring("")?, cstring(host)?),
        };
        let init = move |g: RawGroup, k: BackendKind| {
            // SAFETY: valid group; the C strings are owned by this closure.
            check(unsafe {
                ffi::bf_c10d_backend_init(g, k, millis(timeout), ifnames.as_ptr(), host.as_ptr())
            })
        };
        let r = match kind {
            // Gloo's creation is a rendezvous over the store and the network: it may block.
            BackendKind::Gloo => self.detached(move |g| init(g, BackendKind::Gloo), patience),
            // NCCL's creation stays on the caller's thread: it records per-thread CUDA state, and
            // connects lazily, at the first collective.
            BackendKind::Nccl => init(self.raw, BackendKind::Nccl),
        };
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    /// In-place all-reduce of same-shaped tensors.
    pub fn all_reduce(&mut self, tensors: &[Tensor], op: ReduceOp, timeout: Duration) -> Result<()> {
        self.usable()?;
        let raw = raw_list(tensors);
        // SAFETY: live tensors, the list's own length.
        self.guard(unsafe { ffi::bf_c10d_allreduce(self.raw, raw.as_ptr(), raw.len(), op, millis(timeout)) })
    }

    /// In-place broadcast from `root`.
    pub fn broadcast(&mut self, tensors: &[Tensor], root: usize, timeout: Duration) -> Result<()> {
        self.usable()?;
        let raw = raw_list(tensors);
        // SAFETY: live tensors, the list's own length.
        self.guard(unsafe {
            ffi::bf_c10d_broadcast(self.raw, raw.as_ptr(), raw.len(), root as c_int, millis(timeout))
        })
    }

    pub fn barrier(&mut self, timeout: Duration) -> Result<()> {
        self.usable()?;
        // SAFETY: valid group.
        self.guard(unsafe { ffi::bf_c10d_barrier(self.raw, millis(timeout)) })
    }

    /// Whether a call on the group was abandoned (the group is then unusable).
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.is_some()
    }

    /// An error once a call on the group was abandoned: the helper thread may still be inside it.
    fn usable(&self) -> Result<()> {
        match &self.abandoned {
            Some(why) => Err(Error::TorchExt(format!("the process group is unusable after: {why}"))),
            None => Ok(()),
        }
    }

    fn guard(&mut self, msg: *mut c_char) -> Result<()> {
        let r = check(msg);
        if r.is_err() {
            self.broken = true;
        }
        r
    }
}

/// `store.get(key)` on the calling thread: a first read into a small buffer, a second one when the
/// value is longer.
fn get(g: RawGroup, k: &CStr) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let mut len = 0usize;
    // SAFETY: buf has `cap` writable bytes; the shim writes at most that many.
    check(unsafe {
        ffi::bf_c10d_store_get(g, k.as_ptr(), buf.as_mut_ptr() as *mut c_char, buf.len(), &mut len)
    })?;
    if len > buf.len() {
        buf.resize(len, 0);
        // SAFETY: as above, with room for the whole value now.
        check(unsafe {
            ffi::bf_c10d_store_get(g, k.as_ptr(), buf.as_mut_ptr() as *mut c_char, buf.len(), &mut len)
        })?;
    }
    buf.truncate(len);
    Ok(buf)
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.broken {
            // SAFETY: created by bf_c10d_store_new, freed once, not in use on any other thread.
            unsafe { ffi::bf_c10d_group_free(self.raw) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_call_that_ends_returns_its_result() {
        let r = on_helper_thread(|| 7, drop, &mut |_| Ok(())).unwrap();
        assert_eq!(r, 7);
    }

    #[test]
    fn an_abandoned_call_returns_the_patience_error_and_its_result_is_discarded() {
        let discarded = Arc::new(AtomicBool::new(false));
        let seen = discarded.clone();
        let slow = || {
            std::thread::sleep(Duration::from_millis(600));
            5
        };
        let started = Instant::now();
        let r = on_helper_thread(slow, move |v| seen.store(v == 5, Ordering::SeqCst), &mut |waited| {
            if waited >= Duration::from_millis(200) {
                Err(Error::Runtime("gave up".into()))
            } else {
                Ok(())
            }
        });
        assert_eq!(r.unwrap_err().to_string(), "gave up");
        assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(800));
        assert!(discarded.load(Ordering::SeqCst), "the late result was not handed to discard");
    }
}

//! libtorch's profiler (`csrc/profiler.cpp`): the Kineto path `torch.profiler.profile` takes.
//!
//! [`ActiveProfiler::start`] records every ATen op run on this thread (and on the threads that
//! inherit its state: autograd's), plus CUDA kernels on a CUDA device; [`ActiveProfiler::stop`]
//! hands back a [`Profile`] whose events are read once into [`OpEvent`]s and which can write the
//! chrome trace. Dropping a profiler that was not stopped stops it, so an error in the profiled
//! steps leaves libtorch unprofiled.
use std::ffi::{c_char, c_int, CStr, CString};
use std::marker::PhantomData;
use std::path::Path;

use tch::Device;

use super::check;
use crate::error::{Error, Result};

/// `bf_event_device`: where an event ran.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventDevice {
    Cpu = 0,
    Cuda = 1,
    Other = 2,
}

#[repr(C)]
struct RawProfile {
    _opaque: [u8; 0],
}

mod ffi {
    use super::*;

    extern "C" {
        pub fn bf_profiler_start(cuda: c_int) -> *mut c_char;
        pub fn bf_profiler_stop(out: *mut *mut RawProfile) -> *mut c_char;
        pub fn bf_profile_len(p: *const RawProfile) -> usize;
        pub fn bf_profile_event(
            p: *const RawProfile,
            i: usize,
            name: *mut *const c_char,
            device: *mut c_int,
            thread: *mut u64,
            start_ns: *mut u64,
            duration_ns: *mut u64,
        ) -> *mut c_char;
        pub fn bf_profile_save(p: *mut RawProfile, path: *const c_char) -> *mut c_char;
        pub fn bf_profile_free(p: *mut RawProfile);
    }
}

/// One recorded op or kernel (libtorch's `KinetoEvent`): its name (`aten::addmm`,
/// `autograd::engine::evaluate_function: AddmmBackward0`, a CUDA kernel's), where it ran, the
/// thread (or CUDA stream) that started it, and when, in ns on the profiler's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpEvent {
    pub name: String,
    pub device: EventDevice,
    pub thread: u64,
    pub start_ns: u64,
    pub duration_ns: u64,
}

/// The profiler while it records. Thread-bound, as libtorch's profiler state is.
#[must_use = "the profiler records until stopped or dropped"]
pub struct ActiveProfiler {
    stopped: bool,
    _not_send: PhantomData<*const ()>,
}

impl ActiveProfiler {
    /// Starts recording CPU ops, and CUDA kernels when `device` is a CUDA device. Fails when a
    /// profiler is already recording.
    pub fn start(device: Device) -> Result<Self> {
        let cuda = matches!(device, Device::Cuda(_)) as c_int;
        check(unsafe { ffi::bf_profiler_start(cuda) })?;
        Ok(ActiveProfiler { stopped: false, _not_send: PhantomData })
    }

    /// Stops recording: the events since [`ActiveProfiler::start`].
    pub fn stop(mut self) -> Result<Profile> {
        self.stopped = true;
        let mut raw: *mut RawProfile = std::ptr::null_mut();
        check(unsafe { ffi::bf_profiler_stop(&mut raw) })?;
        if raw.is_null() {
            return Err(Error::TorchExt("the profiler returned no profile".into()));
        }
        Ok(Profile { raw })
    }
}

impl Drop for ActiveProfiler {
    fn drop(&mut self) {
        if !self.stopped {
            let mut raw: *mut RawProfile = std::ptr::null_mut();
            // Nothing to report from drop: the profile is discarded either way.
            let _ = check(unsafe { ffi::bf_profiler_stop(&mut raw) });
            if !raw.is_null() {
                unsafe { ffi::bf_profile_free(raw) };
            }
        }
    }
}

/// A finished recording, owned by the shim until dropped.
pub struct Profile {
    raw: *mut RawProfile,
}

impl Profile {
    /// Every event, in libtorch's order.
    pub fn events(&self) -> Result<Vec<OpEvent>> {
        let n = unsafe { ffi::bf_profile_len(self.raw) };
        (0..n).map(|i| self.event(i)).collect()
    }

    fn event(&self, i: usize) -> Result<OpEvent> {
        let mut name: *const c_char = std::ptr::null();
        let mut device: c_int = EventDevice::Other as c_int;
        let (mut thread, mut start_ns, mut duration_ns) = (0, 0, 0);
        check(unsafe {
            ffi::bf_profile_event(
                self.raw,
                i,
                &mut name,
                &mut device,
                &mut thread,
                &mut start_ns,
                &mut duration_ns,
            )
        })?;
        // SAFETY: on success `name` points at a NUL-terminated string the profile owns.
        let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
        let device = match device {
            0 => EventDevice::Cpu,
            1 => EventDevice::Cuda,
            _ => EventDevice::Other,
        };
        Ok(OpEvent { name, device, thread, start_ns, duration_ns })
    }

    /// Writes the chrome trace (chrome://tracing, ui.perfetto.dev) to `path`.
    pub fn save_chrome_trace(&self, path: &Path) -> Result<()> {
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::TorchExt(format!("{}: a path with a NUL byte", path.display())))?;
        check(unsafe { ffi::bf_profile_save(self.raw, c_path.as_ptr()) })
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        unsafe { ffi::bf_profile_free(self.raw) };
    }
}

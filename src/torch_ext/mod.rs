//! Safe wrappers over `csrc/torch_ext.cpp`: the libtorch calls tch 0.24 does not bind.
//!
//! This is the only module with `extern "C"`. Every shim function returns NULL or a malloc'd message
//! (a C++ exception caught in C++, `csrc/guard.h`), which `check` turns into [`Error::TorchExt`],
//! here and in [`c10d`]. The integer codes that cross the boundary are the `#[repr(i32)]` enums
//! below, each the twin of a C `enum` in `csrc/torch_ext.h` (whose numbers are c10's own, checked by
//! `static_assert`s in `csrc/torch_ext.cpp`). Tensors are passed as tch's
//! `C_tensor` pointers, which are `at::Tensor*` (torch-sys `torch_api.h`: `typedef torch::Tensor *tensor`).
//! In-place functions take `&Tensor`: they write through the storage the tch handles share, as tch's
//! shallow clones (e.g. VarStore variables) do.
pub mod c10d;
pub mod profiler;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::marker::PhantomData;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

type RawTensor = *mut c_void;

mod ffi {
    use super::*;

    // Linked by build.rs (the cc crate emits `static=bertfit_torch_ext`).
    extern "C" {
        pub fn bf_free_error(msg: *mut c_char);
        pub fn bf_autocast_get(
            device_type: DeviceType,
            enabled: *mut c_int,
            dtype: *mut c_int,
            cache_enabled: *mut c_int,
        ) -> *mut c_char;
        pub fn bf_autocast_set(device_type: DeviceType, enabled: c_int, dtype: Dtype) -> *mut c_char;
        pub fn bf_autocast_set_cache_enabled(enabled: c_int) -> *mut c_char;
        pub fn bf_autocast_increment_nesting(nesting: *mut c_int) -> *mut c_char;
        pub fn bf_autocast_decrement_nesting(nesting: *mut c_int) -> *mut c_char;
        pub fn bf_autocast_clear_cache() -> *mut c_char;
        pub fn bf_fused_adam_(
            decoupled: c_int,
            params: *const RawTensor,
            n_params: usize,
            grads: *const RawTensor,
            n_grads: usize,
            exp_avgs: *const RawTensor,
            n_exp_avgs: usize,
            exp_avg_sqs: *const RawTensor,
            n_exp_avg_sqs: usize,
            max_exp_avg_sqs: *const RawTensor,
            n_max_exp_avg_sqs: usize,
            state_steps: *const RawTensor,
            n_state_steps: usize,
            lr: f64,
            beta1: f64,
            beta2: f64,
            weight_decay: f64,
            eps: f64,
            amsgrad: c_int,
            maximize: c_int,
            grad_scale: RawTensor,
            found_inf: RawTensor,
        ) -> *mut c_char;
        pub fn bf_amp_foreach_non_finite_check_and_unscale_(
            grads: *const RawTensor,
            n: usize,
            found_inf: RawTensor,
            inv_scale: RawTensor,
        ) -> *mut c_char;
        pub fn bf_foreach_norm(
            tensors: *const RawTensor,
            n: usize,
            ord: f64,
            out: *mut RawTensor,
        ) -> *mut c_char;
        pub fn bf_linalg_vector_norm(self_: RawTensor, ord: f64, out: *mut RawTensor) -> *mut c_char;
        pub fn bf_foreach_mul_tensor_(tensors: *const RawTensor, n: usize, other: RawTensor) -> *mut c_char;
        pub fn bf_foreach_add_scalar_(tensors: *const RawTensor, n: usize, scalar: f64) -> *mut c_char;
        pub fn bf_foreach_sub_same_(tensors: *const RawTensor, n: usize, other: RawTensor) -> *mut c_char;
        pub fn bf_addcmul_(self_: RawTensor, t1: RawTensor, t2: RawTensor, value: f64) -> *mut c_char;
        pub fn bf_addcdiv_(self_: RawTensor, t1: RawTensor, t2: RawTensor, value: f64) -> *mut c_char;
        pub fn bf_add_alpha(
            self_: RawTensor,
            other: RawTensor,
            alpha: f64,
            out: *mut RawTensor,
        ) -> *mut c_char;
        pub fn bf_set_grad_none(t: RawTensor) -> *mut c_char;
        pub fn bf_set_grad(t: RawTensor, grad: RawTensor) -> *mut c_char;
        pub fn bf_cpu_rng_get_state(out: *mut RawTensor) -> *mut c_char;
        pub fn bf_cpu_rng_set_state(state: RawTensor) -> *mut c_char;
        pub fn bf_set_allow_tf32(allow: c_int) -> *mut c_char;
        pub fn bf_philox_dropout(input: RawTensor, p: f64, seed: i64, out: *mut RawTensor) -> *mut c_char;
        pub fn bf_philox_selfcheck(seed: u64, block: u64, count: i64, threshold: u32) -> i64;
        pub fn bf_bucketed_linear(
            input: RawTensor,
            weight: RawTensor,
            bias: RawTensor,
            bucket: i64,
            dtype: Dtype,
            out: *mut RawTensor,
        ) -> *mut c_char;
        pub fn bf_varlen_attention(
            kernel: VarlenKernel,
            query: RawTensor,
            key: RawTensor,
            value: RawTensor,
            cu_seqlens: RawTensor,
            max_seqlen: i64,
            dropout_p: f64,
            scale: f64,
            out: *mut RawTensor,
        ) -> *mut c_char;
    }
}

/// Turns a shim function's return value (`csrc/guard.h`) into a Result, freeing the message. The
/// one place a shim error becomes an [`Error`], for `c10d` too.
fn check(msg: *mut c_char) -> Result<()> {
    if msg.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string the shim allocated; it is freed once, here.
    let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned();
    unsafe { ffi::bf_free_error(msg) };
    Err(Error::TorchExt(text))
}

fn raw(t: &Tensor) -> RawTensor {
    t.as_ptr() as RawTensor
}

fn raw_list(ts: &[Tensor]) -> Vec<RawTensor> {
    ts.iter().map(raw).collect()
}

/// A tensor the shim allocated with `new at::Tensor`; tch's Drop deletes it.
///
/// SAFETY (caller): `p` must come from the shim's out-pointer after a successful call.
unsafe fn adopt(p: RawTensor) -> Result<Tensor> {
    if p.is_null() {
        return Err(Error::TorchExt("the shim returned a null tensor".into()));
    }
    Ok(Tensor::from_ptr(p as *mut _))
}

// ---------------------------------------------------------------------------------------------
// Autocast

/// `bf_device_type`: the c10::DeviceType numbers of the devices autocast supports here.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceType {
    Cpu = 0,
    Cuda = 1,
}

/// `bf_dtype`: the c10::ScalarType numbers (c10/core/ScalarType.h) of the dtypes autocast can run in.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    Half = 5,
    Float = 6,
    Double = 7,
    BFloat16 = 15,
}

fn device_type(device: Device) -> Result<DeviceType> {
    match device {
        Device::Cpu => Ok(DeviceType::Cpu),
        Device::Cuda(_) => Ok(DeviceType::Cuda),
        other => Err(Error::TorchExt(format!("autocast: only CPU and CUDA are supported, not {other:?}"))),
    }
}

fn scalar_type(kind: Kind) -> Result<Dtype> {
    match kind {
        Kind::Half => Ok(Dtype::Half),
        Kind::Float => Ok(Dtype::Float),
        Kind::Double => Ok(Dtype::Double),
        Kind::BFloat16 => Ok(Dtype::BFloat16),
        other => {
            Err(Error::TorchExt(format!("autocast: {other:?} is not a floating dtype autocast can use")))
        }
    }
}

/// The dtype libtorch reports, read as a plain int (it may be any c10::ScalarType).
fn kind_of(scalar_type: c_int) -> Result<Kind> {
    match scalar_type {
        x if x == Dtype::Half as c_int => Ok(Kind::Half),
        x if x == Dtype::Float as c_int => Ok(Kind::Float),
        x if x == Dtype::Double as c_int => Ok(Kind::Double),
        x if x == Dtype::BFloat16 as c_int => Ok(Kind::BFloat16),
        other => Err(Error::TorchExt(format!("autocast dtype is c10::ScalarType {other}, unknown here"))),
    }
}

/// Autocast settings of one device type on this thread (libtorch keeps them thread-local).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutocastState {
    pub enabled: bool,
    pub dtype: Kind,
    /// Global to the device types, as `torch.is_autocast_cache_enabled()`.
    pub cache_enabled: bool,
}

/// `torch.is_autocast_enabled(device)`, `torch.get_autocast_dtype(device)`, `torch.is_autocast_cache_enabled()`.
pub fn autocast_state(device: Device) -> Result<AutocastState> {
    let dt = device_type(device)?;
    let (mut enabled, mut dtype, mut cache) = (0, 0, 0);
    check(unsafe { ffi::bf_autocast_get(dt, &mut enabled, &mut dtype, &mut cache) })?;
    Ok(AutocastState { enabled: enabled != 0, dtype: kind_of(dtype)?, cache_enabled: cache != 0 })
}

/// `torch.set_autocast_enabled(device, enabled)` and `torch.set_autocast_dtype(device, dtype)`.
pub fn set_autocast(device: Device, enabled: bool, dtype: Kind) -> Result<()> {
    let (dt, st) = (device_type(device)?, scalar_type(dtype)?);
    check(unsafe { ffi::bf_autocast_set(dt, enabled as c_int, st) })
}

/// `torch.set_autocast_cache_enabled(enabled)`.
pub fn set_autocast_cache_enabled(enabled: bool) -> Result<()> {
    check(unsafe { ffi::bf_autocast_set_cache_enabled(enabled as c_int) })
}

/// `torch.autocast_increment_nesting()`: the new nesting level.
pub fn autocast_increment_nesting() -> Result<i32> {
    let mut n = 0;
    check(unsafe { ffi::bf_autocast_increment_nesting(&mut n) })?;
    Ok(n)
}

/// `torch.autocast_decrement_nesting()`: the new nesting level.
pub fn autocast_decrement_nesting() -> Result<i32> {
    let mut n = 0;
    check(unsafe { ffi::bf_autocast_decrement_nesting(&mut n) })?;
    Ok(n)
}

/// `torch.clear_autocast_cache()`.
pub fn clear_autocast_cache() -> Result<()> {
    check(unsafe { ffi::bf_autocast_clear_cache() })
}

/// `with torch.autocast(device, dtype):` as a value: entering sets the state, dropping restores it
/// exactly as `torch.autocast.__exit__` does (leaving the outermost level clears the cast cache).
/// The state is thread-local, so the guard is neither `Send` nor `Sync`; drop guards in reverse order.
#[must_use = "autocast ends when the guard is dropped"]
pub struct AutocastGuard {
    device: Device,
    prev: AutocastState,
    _not_send: PhantomData<*const ()>,
}

impl AutocastGuard {
    /// Enters autocast on `device` (CPU or CUDA) with `dtype` (`Kind::BFloat16` or `Kind::Half`).
    pub fn new(device: Device, dtype: Kind) -> Result<Self> {
        if !matches!(dtype, Kind::BFloat16 | Kind::Half) {
            return Err(Error::TorchExt(format!("autocast runs in BFloat16 or Half, not {dtype:?}")));
        }
        let prev = autocast_state(device)?;
        set_autocast(device, true, dtype)?;
        // torch.autocast keeps the cache setting it was built with: by default the current one.
        autocast_increment_nesting()?;
        set_autocast_cache_enabled(prev.cache_enabled)?;
        Ok(Self { device, prev, _not_send: PhantomData })
    }

    pub fn device(&self) -> Device {
        self.device
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // These calls only flip thread-local flags; they have nothing to throw. A failure could not be
        // reported from drop anyway, so each step is attempted regardless of the others.
        if let Ok(0) = autocast_decrement_nesting() {
            let _ = clear_autocast_cache();
        }
        let _ = set_autocast(self.device, self.prev.enabled, self.prev.dtype);
        let _ = set_autocast_cache_enabled(self.prev.cache_enabled);
    }
}

/// `with torch.autocast(device, enabled=False):` for a few ops: autocast off on `device` until
/// dropped, its dtype, nesting level and cast cache left as they are (the forward around it keeps
/// its cached weight casts).
#[must_use = "autocast resumes when the guard is dropped"]
pub struct AutocastPaused {
    device: Device,
    prev: AutocastState,
    _not_send: PhantomData<*const ()>,
}

impl AutocastPaused {
    pub fn new(device: Device) -> Result<Self> {
        let prev = autocast_state(device)?;
        set_autocast(device, false, prev.dtype)?;
        Ok(Self { device, prev, _not_send: PhantomData })
    }
}

impl Drop for AutocastPaused {
    fn drop(&mut self) {
        // A thread-local flag: nothing to throw, and nothing to report from drop.
        let _ = set_autocast(self.device, self.prev.enabled, self.prev.dtype);
    }
}

// ---------------------------------------------------------------------------------------------
// Fused Adam / AdamW

/// The tensor lists and hyper-parameters of one `_fused_adam_` / `_fused_adamw_` call. All lists have
/// one entry per parameter (`max_exp_avg_sqs` is empty unless `amsgrad`); `state_steps` are float32
/// scalars on the parameters' device, already incremented for this step (torch.optim does so).
pub struct FusedAdamArgs<'a> {
    pub params: &'a [Tensor],
    pub grads: &'a [Tensor],
    pub exp_avgs: &'a [Tensor],
    pub exp_avg_sqs: &'a [Tensor],
    pub max_exp_avg_sqs: &'a [Tensor],
    pub state_steps: &'a [Tensor],
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub amsgrad: bool,
    pub maximize: bool,
    /// The loss scale the gradients still carry (the kernel divides by it), if any.
    pub grad_scale: Option<&'a Tensor>,
    /// A float32 scalar: when non-zero the kernel leaves every tensor unchanged.
    pub found_inf: Option<&'a Tensor>,
}

/// `torch._fused_adam_` (`decoupled_weight_decay == false`) or `torch._fused_adamw_`.
pub fn fused_adam_(a: &FusedAdamArgs, decoupled_weight_decay: bool) -> Result<()> {
    let (p, g, m, v, vmax, s) = (
        raw_list(a.params),
        raw_list(a.grads),
        raw_list(a.exp_avgs),
        raw_list(a.exp_avg_sqs),
        raw_list(a.max_exp_avg_sqs),
        raw_list(a.state_steps),
    );
    let opt = |t: Option<&Tensor>| t.map_or(std::ptr::null_mut(), raw);
    check(unsafe {
        ffi::bf_fused_adam_(
            decoupled_weight_decay as c_int,
            p.as_ptr(),
            p.len(),
            g.as_ptr(),
            g.len(),
            m.as_ptr(),
            m.len(),
            v.as_ptr(),
            v.len(),
            vmax.as_ptr(),
            vmax.len(),
            s.as_ptr(),
            s.len(),
            a.lr,
            a.beta1,
            a.beta2,
            a.weight_decay,
            a.eps,
            a.amsgrad as c_int,
            a.maximize as c_int,
            opt(a.grad_scale),
            opt(a.found_inf),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// AMP loss scaling

/// `torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale)`: multiplies every
/// gradient by `inv_scale` and sets `found_inf` (float32 scalar) to 1 if any holds an inf or NaN.
/// (`torch._amp_update_scale_` is tch's own `Tensor::f_internal_amp_update_scale_`.)
pub fn amp_foreach_non_finite_check_and_unscale_(
    grads: &[Tensor],
    found_inf: &Tensor,
    inv_scale: &Tensor,
) -> Result<()> {
    let g = raw_list(grads);
    check(unsafe {
        ffi::bf_amp_foreach_non_finite_check_and_unscale_(g.as_ptr(), g.len(), raw(found_inf), raw(inv_scale))
    })
}

// ---------------------------------------------------------------------------------------------
// Foreach and scalar-argument ops

/// `torch._foreach_norm(tensors, ord)`: one norm (a device scalar) per tensor.
pub fn foreach_norm(tensors: &[Tensor], ord: f64) -> Result<Vec<Tensor>> {
    let ts = raw_list(tensors);
    let mut out: Vec<RawTensor> = vec![std::ptr::null_mut(); ts.len()];
    check(unsafe { ffi::bf_foreach_norm(ts.as_ptr(), ts.len(), ord, out.as_mut_ptr()) })?;
    // SAFETY: on success every slot holds a tensor the shim allocated.
    out.into_iter().map(|p| unsafe { adopt(p) }).collect()
}

/// `torch.get_rng_state()`: libtorch's default CPU generator state (uint8).
pub fn cpu_rng_state() -> Result<Tensor> {
    let mut out: RawTensor = std::ptr::null_mut();
    check(unsafe { ffi::bf_cpu_rng_get_state(&mut out) })?;
    // SAFETY: set by the shim on success.
    unsafe { adopt(out) }
}

/// `torch.set_rng_state(state)`.
pub fn set_cpu_rng_state(state: &Tensor) -> Result<()> {
    check(unsafe { ffi::bf_cpu_rng_set_state(raw(state)) })
}

/// TF32 tensor-core matmuls and convolutions on CUDA (`--tf32`).
pub fn set_allow_tf32(allow: bool) -> Result<()> {
    check(unsafe { ffi::bf_set_allow_tf32(allow as c_int) })
}

/// `torch.linalg.vector_norm(t, ord)` over all elements (not in tch 0.24).
pub fn linalg_vector_norm(t: &Tensor, ord: f64) -> Result<Tensor> {
    let mut out: RawTensor = std::ptr::null_mut();
    check(unsafe { ffi::bf_linalg_vector_norm(raw(t), ord, &mut out) })?;
    // SAFETY: set by the shim on success.
    unsafe { adopt(out) }
}

/// `torch._foreach_mul_(tensors, other)` with a scalar tensor `other`.
pub fn foreach_mul_tensor_(tensors: &[Tensor], other: &Tensor) -> Result<()> {
    let ts = raw_list(tensors);
    check(unsafe { ffi::bf_foreach_mul_tensor_(ts.as_ptr(), ts.len(), raw(other)) })
}

/// `torch._foreach_add_(tensors, scalar)`.
pub fn foreach_add_scalar_(tensors: &[Tensor], scalar: f64) -> Result<()> {
    let ts = raw_list(tensors);
    check(unsafe { ffi::bf_foreach_add_scalar_(ts.as_ptr(), ts.len(), scalar) })
}

/// `torch._foreach_sub_(tensors, [other] * len(tensors))`.
pub fn foreach_sub_same_(tensors: &[Tensor], other: &Tensor) -> Result<()> {
    let ts = raw_list(tensors);
    check(unsafe { ffi::bf_foreach_sub_same_(ts.as_ptr(), ts.len(), raw(other)) })
}

/// `self.addcmul_(t1, t2, value=value)` (tch's `addcmul_` has no `value`).
pub fn addcmul_(self_: &Tensor, t1: &Tensor, t2: &Tensor, value: f64) -> Result<()> {
    check(unsafe { ffi::bf_addcmul_(raw(self_), raw(t1), raw(t2), value) })
}

/// `self.addcdiv_(t1, t2, value=value)` (tch's `addcdiv_` has no `value`).
pub fn addcdiv_(self_: &Tensor, t1: &Tensor, t2: &Tensor, value: f64) -> Result<()> {
    check(unsafe { ffi::bf_addcdiv_(raw(self_), raw(t1), raw(t2), value) })
}

/// `self.add(other, alpha=alpha)`: one fused kernel, whose rounding differs from `self + alpha * other`.
pub fn add_alpha(self_: &Tensor, other: &Tensor, alpha: f64) -> Result<Tensor> {
    let mut out: RawTensor = std::ptr::null_mut();
    check(unsafe { ffi::bf_add_alpha(raw(self_), raw(other), alpha, &mut out) })?;
    // SAFETY: set by the shim on success.
    unsafe { adopt(out) }
}

/// `tensor.grad = None`: frees the gradient instead of zeroing it (PyTorch's `zero_grad()` default).
pub fn set_grad_none(t: &Tensor) -> Result<()> {
    check(unsafe { ffi::bf_set_grad_none(raw(t)) })
}

/// `tensor.grad = grad` (a handle: the two share storage).
pub fn set_grad(t: &Tensor, grad: &Tensor) -> Result<()> {
    check(unsafe { ffi::bf_set_grad(raw(t), raw(grad)) })
}

/// Dropout of a CPU tensor with a mask drawn from Philox in parallel (`csrc/dropout.cpp` says why
/// not libtorch's): each element zeroed with probability `p`, the rest scaled by 1 / (1 - p);
/// differentiable. The mask depends on `seed` and the element's index only.
pub fn philox_dropout(input: &Tensor, p: f64, seed: i64) -> Result<Tensor> {
    let mut out: RawTensor = std::ptr::null_mut();
    check(unsafe { ffi::bf_philox_dropout(raw(input), p, seed, &mut out) })?;
    // SAFETY: set by the shim on success.
    unsafe { adopt(out) }
}

/// Where the dropout's lane-parallel Philox draws (`csrc/dropout.cpp`) differ from
/// `at::Philox4_32`'s own over the first `count` keep flags of `block` at `threshold`, with every
/// compiled version this CPU runs: the first differing index, or `None`.
pub fn philox_selfcheck(seed: u64, block: u64, count: i64, threshold: u32) -> Option<i64> {
    // SAFETY: plain values in and out; the shim allocates and frees its own buffers.
    let first = unsafe { ffi::bf_philox_selfcheck(seed, block, count, threshold) };
    (first >= 0).then_some(first)
}

/// `input (N, in)` times `weight (out, in)` transposed plus `bias`, computed in `dtype` (bf16 or
/// fp16) over N rounded up to a multiple of `bucket` with zero rows, and the first N rows returned,
/// in `dtype`; differentiable (`csrc/linear.cpp` says why and how it matches autocast's linear).
pub fn bucketed_linear(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    bucket: i64,
    dtype: Kind,
) -> Result<Tensor> {
    let mut out: RawTensor = std::ptr::null_mut();
    let bias = bias.map_or(std::ptr::null_mut(), raw);
    check(unsafe {
        ffi::bf_bucketed_linear(raw(input), raw(weight), bias, bucket, scalar_type(dtype)?, &mut out)
    })?;
    // SAFETY: set by the shim on success.
    unsafe { adopt(out) }
}

// ---------------------------------------------------------------------------------------------
// Varlen attention

/// libtorch's attention kernels that take packed sequences with cumulative lengths (`bf_varlen_kernel`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VarlenKernel {
    /// `at::_flash_attention_forward`: FlashAttention-2, CUDA (sm80+ for bf16), fp16/bf16 only.
    Flash = 0,
    /// `at::_efficient_attention_forward`: the memory-efficient kernel, CUDA, fp32 as well.
    Efficient = 1,
}

/// Attention of each packed sequence over itself: query/key/value (N, nh, hs), sequence b the rows
/// `cu_seqlens[b] .. cu_seqlens[b + 1]` (int32 (B + 1,) on their device), `max_seqlen` the longest
/// -> (N, nh, hs). Differentiable. Neither kernel exists on the CPU: there it returns libtorch's
/// "could not run ... on the CPU backend" as an error.
#[allow(clippy::too_many_arguments)]
pub fn varlen_attention(
    kernel: VarlenKernel,
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    cu_seqlens: &Tensor,
    max_seqlen: i64,
    dropout: f64,
    scale: f64,
) -> Result<Tensor> {
    let mut out: RawTensor = std::ptr::null_mut();
    check(unsafe {
        ffi::bf_varlen_attention(
            kernel,
            raw(query),
            raw(key),
            raw(value),
            raw(cu_seqlens),
            max_seqlen,
            dropout,
            scale,
            &mut out,
        )
    })?;
    // SAFETY: set by the shim on success.
    unsafe { adopt(out) }
}

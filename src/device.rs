//! Tensors sent to a device without waiting: the one copy helper the loader's batches and the
//! model's per-batch layouts share (it sits below both, so `model/` need not import `data/`).
use tch::{Device, Tensor};

/// `t` on `device`, the copy queued without waiting (a no-op on the CPU). tch's `to_device` is
/// a blocking copy, which on CUDA waits for everything queued before it: done per batch, the host
/// would stop getting ahead of the GPU. From pinned memory the copy runs while the host goes on;
/// from ordinary (pageable) memory CUDA stages the bytes before the call returns, so `t` may be
/// dropped right after.
pub fn to_device_async(t: &Tensor, device: Device) -> Tensor {
    if device == Device::Cpu {
        t.shallow_clone()
    } else {
        t.to_device_(device, t.kind(), true, false)
    }
}

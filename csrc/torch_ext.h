// bertfit's C shim over the parts of libtorch that tch 0.24 does not bind.
//
// Rules every function follows:
// - the error path of guard.h: NULL on success, or a malloc'd message (free it with bf_free_error)
//   when libtorch threw; no C++ exception ever crosses into Rust;
// - a `bf_tensor` is tch's C_tensor, i.e. an `at::Tensor*`; lists are (pointer array, length) pairs, each
//   with its own length so that libtorch's own checks see (and report) mismatched lists;
// - in-place functions (trailing `_`) write through the tensors' shared storage;
// - a new tensor handed back through an out-pointer is `new at::Tensor`, which tch's Drop deletes.
#pragma once

#include "guard.h"

#ifdef __cplusplus
extern "C" {
#endif

// The device types autocast runs on: c10::DeviceType's numbers (torch_ext.cpp checks them).
typedef enum { BF_DEVICE_CPU = 0, BF_DEVICE_CUDA = 1 } bf_device_type;

// The dtypes autocast can be set to: c10::ScalarType's numbers (torch_ext.cpp checks them).
typedef enum { BF_DTYPE_HALF = 5, BF_DTYPE_FLOAT = 6, BF_DTYPE_DOUBLE = 7, BF_DTYPE_BFLOAT16 = 15 } bf_dtype;

// Autocast (thread-local state, as in PyTorch). bf_autocast_get writes the dtype as an int: it is
// whatever c10::ScalarType libtorch holds, which Rust checks against bf_dtype before trusting it.
char *bf_autocast_get(bf_device_type device_type, int *enabled, int *dtype, int *cache_enabled);
char *bf_autocast_set(bf_device_type device_type, int enabled, bf_dtype dtype);
char *bf_autocast_set_cache_enabled(int enabled);
char *bf_autocast_increment_nesting(int *nesting);
char *bf_autocast_decrement_nesting(int *nesting);
char *bf_autocast_clear_cache(void);

// at::_fused_adam_ (decoupled == 0) or at::_fused_adamw_ (decoupled != 0). grad_scale and found_inf
// may be NULL.
char *bf_fused_adam_(int decoupled, bf_tensor *params, size_t n_params, bf_tensor *grads, size_t n_grads,
                     bf_tensor *exp_avgs, size_t n_exp_avgs, bf_tensor *exp_avg_sqs, size_t n_exp_avg_sqs,
                     bf_tensor *max_exp_avg_sqs, size_t n_max_exp_avg_sqs, bf_tensor *state_steps,
                     size_t n_state_steps, double lr, double beta1, double beta2, double weight_decay,
                     double eps, int amsgrad, int maximize, bf_tensor grad_scale, bf_tensor found_inf);

// at::_amp_foreach_non_finite_check_and_unscale_ (tch binds no in-place foreach op; its
// `_amp_update_scale_` is used from Rust as tch's `f_internal_amp_update_scale_`).
char *bf_amp_foreach_non_finite_check_and_unscale_(bf_tensor *grads, size_t n, bf_tensor found_inf,
                                                   bf_tensor inv_scale);

// Foreach ops: _foreach_norm (out: n new tensors), _foreach_mul_(list, tensor),
// _foreach_add_(list, scalar), _foreach_sub_(list, [other] * n).
char *bf_foreach_norm(bf_tensor *tensors, size_t n, double ord, bf_tensor *out);
// *out = torch.linalg.vector_norm(self, ord) over all elements.
char *bf_linalg_vector_norm(bf_tensor self, double ord, bf_tensor *out);
char *bf_foreach_mul_tensor_(bf_tensor *tensors, size_t n, bf_tensor other);
char *bf_foreach_add_scalar_(bf_tensor *tensors, size_t n, double scalar);
char *bf_foreach_sub_same_(bf_tensor *tensors, size_t n, bf_tensor other);

// Scalar-argument forms tch leaves out: self.addcmul_(t1, t2, value=value),
// self.addcdiv_(t1, t2, value=value), *out = self.add(other, alpha=alpha).
char *bf_addcmul_(bf_tensor self, bf_tensor t1, bf_tensor t2, double value);
char *bf_addcdiv_(bf_tensor self, bf_tensor t1, bf_tensor t2, double value);
char *bf_add_alpha(bf_tensor self, bf_tensor other, double alpha, bf_tensor *out);

// `tensor.grad = None` (PyTorch's zero_grad(set_to_none=True)).
char *bf_set_grad_none(bf_tensor t);
char *bf_set_grad(bf_tensor t, bf_tensor grad);

// `torch.get_rng_state()` / `torch.set_rng_state(state)`: the default CPU generator's state as a
// uint8 tensor (what a checkpoint stores so dropout continues exactly).
char *bf_cpu_rng_get_state(bf_tensor *out);
char *bf_cpu_rng_set_state(bf_tensor state);

// `torch.backends.cuda.matmul.allow_tf32` and `torch.backends.cudnn.allow_tf32`.
char *bf_set_allow_tf32(int allow);

// The varlen attention kernels: at::_flash_attention_forward (FlashAttention-2: CUDA, fp16/bf16)
// and at::_efficient_attention_forward (memory-efficient: CUDA, fp32 too).
typedef enum { BF_VARLEN_FLASH = 0, BF_VARLEN_EFFICIENT = 1 } bf_varlen_kernel;

// Attention over packed sequences without padding (what the nested-tensor SDPA path calls):
// query/key/value (total, nh, hs), sequence b being rows cu_seqlens[b] .. cu_seqlens[b + 1]
// (int32, B + 1 entries, on the same device), max_seqlen the longest; no mask, not causal.
// Both kernels are differentiable (autograd's FlashAttentionBackward0 / EfficientAttentionBackward0).
// *out: (total, nh, hs).
char *bf_varlen_attention(bf_varlen_kernel kernel, bf_tensor query, bf_tensor key, bf_tensor value, bf_tensor cu_seqlens,
                          int64_t max_seqlen, double dropout_p, double scale, bf_tensor *out);

// libtorch's profiler (the Kineto path torch.profiler takes), for `bertfit train --profile-ops`
// (csrc/profiler.cpp). Start records every ATen op on this thread and the threads that inherit its
// state (autograd's), plus CUDA kernels when `cuda` != 0; stop hands back the events, which stay
// readable until bf_profile_free.
typedef struct bf_profile bf_profile;
typedef enum { BF_EVENT_CPU = 0, BF_EVENT_CUDA = 1, BF_EVENT_OTHER = 2 } bf_event_device;
char *bf_profiler_start(int cuda);
char *bf_profiler_stop(bf_profile **out);
size_t bf_profile_len(const bf_profile *p);
// Event i (< bf_profile_len): *name points into the profile (NUL-terminated, valid until freed),
// *device is a bf_event_device;
// times in ns on the profiler's clock; thread is the start thread's id.
char *bf_profile_event(const bf_profile *p, size_t i, const char **name, int *device,
                       uint64_t *thread, uint64_t *start_ns, uint64_t *duration_ns);
// The chrome trace (chrome://tracing, Perfetto) as torch.profiler's export_chrome_trace writes it.
char *bf_profile_save(bf_profile *p, const char *path);
void bf_profile_free(bf_profile *p);

#ifdef __cplusplus
}
#endif

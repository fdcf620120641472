// See torch_ext.h for what each function does and guard.h for the error path they all share.
#include "torch_ext.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <mutex>
#include <optional>
#include <vector>

namespace {

using bf::guarded;
using bf::tensor;

std::vector<at::Tensor> list(bf_tensor *ts, size_t n) {
    std::vector<at::Tensor> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) out.push_back(tensor(ts[i]));
    return out;
}

std::optional<at::Tensor> optional_tensor(bf_tensor t) {
    if (t == nullptr) return std::nullopt;
    return tensor(t);
}

// The header's enums are c10's own numbers.
static_assert(BF_DEVICE_CPU == static_cast<int>(c10::DeviceType::CPU), "bf_device_type");
static_assert(BF_DEVICE_CUDA == static_cast<int>(c10::DeviceType::CUDA), "bf_device_type");
static_assert(BF_DTYPE_HALF == static_cast<int>(c10::ScalarType::Half), "bf_dtype");
static_assert(BF_DTYPE_FLOAT == static_cast<int>(c10::ScalarType::Float), "bf_dtype");
static_assert(BF_DTYPE_DOUBLE == static_cast<int>(c10::ScalarType::Double), "bf_dtype");
static_assert(BF_DTYPE_BFLOAT16 == static_cast<int>(c10::ScalarType::BFloat16), "bf_dtype");

c10::DeviceType device_type_of(bf_device_type device_type) {
    TORCH_CHECK(device_type == BF_DEVICE_CPU || device_type == BF_DEVICE_CUDA,
                "autocast: only CPU and CUDA are supported, got device type ", static_cast<int>(device_type));
    return static_cast<c10::DeviceType>(device_type);
}

}  // namespace

extern "C" {

void bf_free_error(char *msg) {
    if (msg != bf::kOutOfMemory) std::free(msg);
}

// torch.autocast.__enter__/__exit__ (torch/amp/autocast_mode.py) use exactly these calls.
char *bf_autocast_get(bf_device_type device_type, int *enabled, int *dtype, int *cache_enabled) {
    return guarded([&] {
        auto d = device_type_of(device_type);
        *enabled = at::autocast::is_autocast_enabled(d) ? 1 : 0;
        *dtype = static_cast<int>(at::autocast::get_autocast_dtype(d));
        *cache_enabled = at::autocast::is_autocast_cache_enabled() ? 1 : 0;
    });
}

char *bf_autocast_set(bf_device_type device_type, int enabled, bf_dtype dtype) {
    return guarded([&] {
        auto d = device_type_of(device_type);
        at::autocast::set_autocast_enabled(d, enabled != 0);
        at::autocast::set_autocast_dtype(d, static_cast<at::ScalarType>(dtype));
    });
}

char *bf_autocast_set_cache_enabled(int enabled) {
    return guarded([&] { at::autocast::set_autocast_cache_enabled(enabled != 0); });
}

char *bf_autocast_increment_nesting(int *nesting) {
    return guarded([&] { *nesting = at::autocast::increment_nesting(); });
}

char *bf_autocast_decrement_nesting(int *nesting) {
    return guarded([&] { *nesting = at::autocast::decrement_nesting(); });
}

char *bf_autocast_clear_cache(void) {
    return guarded([&] { at::autocast::clear_cache(); });
}

char *bf_fused_adam_(int decoupled, bf_tensor *params, size_t n_params, bf_tensor *grads, size_t n_grads,
                     bf_tensor *exp_avgs, size_t n_exp_avgs, bf_tensor *exp_avg_sqs, size_t n_exp_avg_sqs,
                     bf_tensor *max_exp_avg_sqs, size_t n_max_exp_avg_sqs, bf_tensor *state_steps,
                     size_t n_state_steps, double lr, double beta1, double beta2, double weight_decay,
                     double eps, int amsgrad, int maximize, bf_tensor grad_scale, bf_tensor found_inf) {
    return guarded([&] {
        auto p = list(params, n_params);
        auto g = list(grads, n_grads);
        auto m = list(exp_avgs, n_exp_avgs);
        auto v = list(exp_avg_sqs, n_exp_avg_sqs);
        auto vmax = list(max_exp_avg_sqs, n_max_exp_avg_sqs);
        auto s = list(state_steps, n_state_steps);
        auto scale = optional_tensor(grad_scale);
        auto inf = optional_tensor(found_inf);
        if (decoupled != 0) {
            at::_fused_adamw_(p, g, m, v, vmax, s, lr, beta1, beta2, weight_decay, eps, amsgrad != 0,
                              maximize != 0, scale, inf);
        } else {
            at::_fused_adam_(p, g, m, v, vmax, s, lr, beta1, beta2, weight_decay, eps, amsgrad != 0,
                             maximize != 0, scale, inf);
        }
    });
}

char *bf_amp_foreach_non_finite_check_and_unscale_(bf_tensor *grads, size_t n, bf_tensor found_inf,
                                                   bf_tensor inv_scale) {
    return guarded([&] {
        auto g = list(grads, n);
        at::_amp_foreach_non_finite_check_and_unscale_(g, tensor(found_inf), tensor(inv_scale));
    });
}

char *bf_foreach_norm(bf_tensor *tensors, size_t n, double ord, bf_tensor *out) {
    return guarded([&] {
        auto norms = at::_foreach_norm(list(tensors, n), ord);
        TORCH_CHECK(norms.size() == n, "_foreach_norm returned ", norms.size(), " norms for ", n, " tensors");
        for (size_t i = 0; i < n; ++i) out[i] = new at::Tensor(std::move(norms[i]));
    });
}

char *bf_linalg_vector_norm(bf_tensor self, double ord, bf_tensor *out) {
    return guarded([&] { *out = new at::Tensor(at::linalg_vector_norm(tensor(self), ord)); });
}

char *bf_foreach_mul_tensor_(bf_tensor *tensors, size_t n, bf_tensor other) {
    return guarded([&] { at::_foreach_mul_(list(tensors, n), tensor(other)); });
}

char *bf_foreach_add_scalar_(bf_tensor *tensors, size_t n, double scalar) {
    return guarded([&] { at::_foreach_add_(list(tensors, n), scalar); });
}

// torch.optim's fused path: torch._foreach_sub_(steps, [found_inf] * len(steps)).
char *bf_foreach_sub_same_(bf_tensor *tensors, size_t n, bf_tensor other) {
    return guarded([&] {
        std::vector<at::Tensor> others(n, tensor(other));
        at::_foreach_sub_(list(tensors, n), others);
    });
}

char *bf_addcmul_(bf_tensor self, bf_tensor t1, bf_tensor t2, double value) {
    return guarded([&] { tensor(self).addcmul_(tensor(t1), tensor(t2), value); });
}

char *bf_addcdiv_(bf_tensor self, bf_tensor t1, bf_tensor t2, double value) {
    return guarded([&] { tensor(self).addcdiv_(tensor(t1), tensor(t2), value); });
}

char *bf_add_alpha(bf_tensor self, bf_tensor other, double alpha, bf_tensor *out) {
    return guarded([&] { *out = new at::Tensor(tensor(self).add(tensor(other), alpha)); });
}

char *bf_set_grad_none(bf_tensor t) {
    return guarded([&] { tensor(t).mutable_grad() = at::Tensor(); });
}

char *bf_set_grad(bf_tensor t, bf_tensor grad) {
    return guarded([&] { tensor(t).mutable_grad() = tensor(grad); });
}

char *bf_cpu_rng_get_state(bf_tensor *out) {
    return guarded([&] {
        auto gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        *out = new at::Tensor(gen.get_state());
    });
}

char *bf_cpu_rng_set_state(bf_tensor state) {
    return guarded([&] {
        auto gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(tensor(state));
    });
}

char *bf_set_allow_tf32(int allow) {
    return guarded([&] {
        at::globalContext().setAllowTF32CuBLAS(allow != 0);
        at::globalContext().setAllowTF32CuDNN(allow != 0);
    });
}

char *bf_varlen_attention(bf_varlen_kernel kernel, bf_tensor query, bf_tensor key, bf_tensor value, bf_tensor cu_seqlens,
                          int64_t max_seqlen, double dropout_p, double scale, bf_tensor *out) {
    return guarded([&] {
        const at::Tensor &q = tensor(query), &k = tensor(key), &v = tensor(value);
        const at::Tensor &cu = tensor(cu_seqlens);
        TORCH_CHECK(kernel == BF_VARLEN_FLASH || kernel == BF_VARLEN_EFFICIENT, "varlen attention: kernel ",
                    static_cast<int>(kernel), " is neither flash nor efficient");
        if (kernel == BF_VARLEN_FLASH) {
            auto result = at::_flash_attention_forward(q, k, v, cu, cu, max_seqlen, max_seqlen, dropout_p,
                                                       /*is_causal=*/false, /*return_debug_mask=*/false, scale);
            *out = new at::Tensor(std::get<0>(result));
        } else {
            // The memory-efficient kernel reads varlen input as one batch row: (1, total, nh, hs). Its
            // backward needs the log-sum-exp, which it only computes when asked (as SDPA asks: when a
            // gradient will flow).
            bool needs_grad = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
            auto result = at::_efficient_attention_forward(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0),
                                                           /*bias=*/std::nullopt, cu, cu, max_seqlen, max_seqlen,
                                                           dropout_p, /*custom_mask_type=*/0, needs_grad, scale);
            *out = new at::Tensor(std::get<0>(result).squeeze(0));
        }
    });
}

}  // extern "C"

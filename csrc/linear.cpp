// A linear layer for CPU autocast in bf16 / fp16 whose GEMMs only ever see row counts that are a
// multiple of a bucket.
//
// Why: oneDNN (libtorch's reduced-precision CPU GEMM) builds a kernel per new shape, about 1 ms
// each, and the packed token count is new nearly every step. Padding the rows through ATen ops
// (`constant_pad_nd` then `narrow`) made four extra passes per layer and direction: a zero fill of
// the whole padded input, the copy into it, and in the backward the pad's slice copy and the
// narrow's zeroed gradient plus its copy; with autocast's own casts of the input and of its
// gradient, 4% of a bf16 step. Here the input is cast straight into the padded buffer (one pass,
// the tail zeroed), the output is a view of the padded product's first rows, and the backward
// pads the incoming gradient once (cast and pad in one copy) and returns a view of the padded
// input gradient, cast once to the input's dtype.
//
// What it computes is what autocast's `linear` computes: the input and weight cast to `dtype`,
// `addmm` in `dtype`, the weight gradient a `dtype` product cast to the weight's dtype. The extra
// rows are zero, so they add exact zeros to the weight gradient. The bias gradient is autocast's
// too: the padded output gradient summed in `dtype` (ATen accumulates in fp32), then cast. (`sum`
// with an fp32 dtype would first copy the whole gradient to fp32: 2% of a bf16 step at length 512.)
// Every product and sum runs on the shapes autocast's ops would see on the zero-padded input, so
// the results are theirs bit for bit (unit test in src/model/layers.rs).
#include "linear.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

namespace {

using bf::guarded;
using bf::tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// `x` (n, k) cast to `dtype` into a new (rows, k) buffer whose rows past n are zero; `x` itself
// when it is that already.
at::Tensor padded_copy(const at::Tensor &x, int64_t rows, at::ScalarType dtype) {
    const int64_t n = x.size(0);
    if (rows == n && x.scalar_type() == dtype && x.is_contiguous()) return x;
    at::Tensor out = at::empty({rows, x.size(1)}, x.options().dtype(dtype));
    out.narrow(0, 0, n).copy_(x);
    if (rows > n) out.narrow(0, n, rows - n).zero_();
    return out;
}

struct BucketedLinear : public torch::autograd::Function<BucketedLinear> {
    static at::Tensor forward(AutogradContext *ctx, const at::Tensor &input, const at::Tensor &weight,
                              const at::Tensor &bias, bool has_bias, int64_t bucket, int64_t dtype_code) {
        // A custom function's forward is not an op: named here, the profiler's table (--profile-ops)
        // shows its own work as a row instead of leaving it out of every row.
        RECORD_FUNCTION("bertfit::bucketed_linear", std::vector<c10::IValue>());
        // The ops below run in the dtypes given, whatever autocast would pick.
        c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
        const auto dtype = static_cast<at::ScalarType>(dtype_code);
        TORCH_CHECK(input.dim() == 2 && weight.dim() == 2 && input.size(1) == weight.size(1),
                    "bucketed linear: input (N, in) and weight (out, in), got ", input.sizes(), " and ",
                    weight.sizes());
        TORCH_CHECK(bucket > 0, "bucketed linear: bucket must be positive, got ", bucket);
        const int64_t n = input.size(0);
        const int64_t rows = (n + bucket - 1) / bucket * bucket;
        at::Tensor x = padded_copy(input, rows, dtype);
        at::Tensor w = weight.to(dtype);
        at::Tensor y = has_bias ? at::addmm(bias.to(dtype), x, w.t()) : at::mm(x, w.t());
        ctx->save_for_backward({x, w});
        ctx->saved_data["n"] = n;
        ctx->saved_data["input_dtype"] = static_cast<int64_t>(input.scalar_type());
        ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
        ctx->saved_data["bias_dtype"] =
            static_cast<int64_t>(has_bias ? bias.scalar_type() : at::ScalarType::Undefined);
        return y.narrow(0, 0, n);
    }

    static variable_list backward(AutogradContext *ctx, variable_list grad_outputs) {
        c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
        auto saved = ctx->get_saved_variables();
        const at::Tensor &x = saved[0], &w = saved[1];
        const int64_t n = ctx->saved_data["n"].toInt();
        const auto dtype_of = [&](const char *key) {
            return static_cast<at::ScalarType>(ctx->saved_data[key].toInt());
        };
        const at::Tensor &grad = grad_outputs[0];
        at::Tensor g = padded_copy(grad, x.size(0), x.scalar_type());
        at::Tensor grad_input, grad_weight, grad_bias;
        if (ctx->needs_input_grad(0)) grad_input = at::mm(g, w).narrow(0, 0, n).to(dtype_of("input_dtype"));
        if (ctx->needs_input_grad(1)) grad_weight = at::mm(g.t(), x).to(dtype_of("weight_dtype"));
        if (ctx->needs_input_grad(2) && dtype_of("bias_dtype") != at::ScalarType::Undefined)
            grad_bias = g.sum(0).to(dtype_of("bias_dtype"));
        return {grad_input, grad_weight, grad_bias, at::Tensor(), at::Tensor(), at::Tensor()};
    }
};

}  // namespace

extern "C" {

char *bf_bucketed_linear(bf_tensor input, bf_tensor weight, bf_tensor bias, int64_t bucket, int dtype,
                         bf_tensor *out) {
    return guarded([&] {
        // A custom function's tensor arguments must be defined: no bias is an empty placeholder.
        const bool has_bias = bias != nullptr;
        at::Tensor b = has_bias ? tensor(bias) : at::empty({0}, tensor(weight).options().requires_grad(false));
        *out = new at::Tensor(BucketedLinear::apply(tensor(input), tensor(weight), b, has_bias, bucket, dtype));
    });
}

}  // extern "C"

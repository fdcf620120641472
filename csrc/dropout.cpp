// Dropout on CPU tensors with masks drawn by Philox (PyTorch's own counter-based engine,
// ATen/core/PhiloxRNGEngine.h) in parallel, in one pass that also applies the mask, keeping the
// mask as one byte per element for the backward.
//
// Why: libtorch's CPU dropout draws its mask with `bernoulli_`, which runs serially through the
// mt19937 generator, two 32-bit draws per element (a double uniform), then divides and multiplies
// in two more passes over a float mask it keeps for the backward. On long sequences the attention
// weights' masks (B * heads * T^2 elements per layer) made that a fifth of a training step
// (BENCHMARKS.md, "Where the time goes"). Here each block of kBlock elements has its own Philox
// subsequence, so blocks are drawn on every libtorch thread at once and the mask depends only on the
// seed, never on the thread count.
#include "dropout.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/OpMathType.h>
#include <ATen/core/PhiloxRNGEngine.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdint>

namespace {

using bf::guarded;
using bf::tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Elements per Philox subsequence: large enough that starting a block costs nothing against its
// draws, small enough to spread a layer's mask over the threads.
constexpr int64_t kBlock = 16384;

// Element i of the tensor is kept when the i-th 32-bit Philox output of the tensor's stream (block
// i / kBlock, offset i % kBlock within it) is below `threshold`: keep probability threshold / 2^32,
// within 2.4e-10 of 1 - p.
uint32_t keep_threshold(double p) {
    double keep = std::ldexp(1.0 - p, 32);
    return keep >= 4294967295.0 ? UINT32_MAX : static_cast<uint32_t>(std::llround(keep));
}

// out[i] = keep[i] ? in[i] * scale : 0 for i in [begin, end); scalar_t is float, double, bf16 or
// fp16; the product is taken in float (double for double) and rounded once.
template <typename scalar_t>
void scale_kept(const scalar_t *in, scalar_t *out, const uint8_t *keep, int64_t begin, int64_t end,
                at::opmath_type<scalar_t> scale) {
    using acc_t = at::opmath_type<scalar_t>;
    for (int64_t i = begin; i < end; ++i)
        out[i] = static_cast<scalar_t>(static_cast<acc_t>(in[i]) * (keep[i] ? scale : acc_t(0)));
}

// The forward: each block draws its mask, then applies it while the block is in cache.
template <typename scalar_t>
void draw_and_apply(const scalar_t *in, scalar_t *out, uint8_t *keep, int64_t n, double p, uint64_t seed) {
    const uint32_t threshold = keep_threshold(p);
    const auto scale = static_cast<at::opmath_type<scalar_t>>(p >= 1.0 ? 0.0 : 1.0 / (1.0 - p));
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
        for (int64_t b = first; b < last; ++b) {
            at::Philox4_32 engine(seed, static_cast<uint64_t>(b), 0);
            const int64_t begin = b * kBlock, end = std::min(n, begin + kBlock);
            for (int64_t i = begin; i < end; ++i) keep[i] = engine() < threshold ? 1 : 0;
            scale_kept<scalar_t>(in, out, keep, begin, end, scale);
        }
    });
}

// The backward: grad_in[i] = keep[i] ? grad_out[i] * scale : 0.
template <typename scalar_t>
void apply_kept(const scalar_t *grad_out, scalar_t *grad_in, const uint8_t *keep, int64_t n, double scale) {
    const auto s = static_cast<at::opmath_type<scalar_t>>(scale);
    at::parallel_for(0, n, kBlock, [&](int64_t begin, int64_t end) {
        scale_kept<scalar_t>(grad_out, grad_in, keep, begin, end, s);
    });
}

struct PhiloxDropout : public torch::autograd::Function<PhiloxDropout> {
    static at::Tensor forward(AutogradContext *ctx, const at::Tensor &input, double p, int64_t seed) {
        TORCH_CHECK(input.device().is_cpu(), "philox dropout: a CPU tensor, got one on ", input.device());
        TORCH_CHECK(p >= 0.0 && p <= 1.0, "philox dropout: p must be in [0, 1], got ", p);
        at::Tensor x = input.contiguous();
        at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
        at::Tensor keep = at::empty(x.sizes(), x.options().dtype(at::kByte));
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "philox_dropout", [&] {
            draw_and_apply<scalar_t>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                                     keep.mutable_data_ptr<uint8_t>(), x.numel(), p, static_cast<uint64_t>(seed));
        });
        ctx->save_for_backward({keep});
        ctx->saved_data["scale"] = p >= 1.0 ? 0.0 : 1.0 / (1.0 - p);
        return out;
    }

    static variable_list backward(AutogradContext *ctx, variable_list grad_outputs) {
        at::Tensor keep = ctx->get_saved_variables()[0];
        double scale = ctx->saved_data["scale"].toDouble();
        at::Tensor g = grad_outputs[0].contiguous();
        at::Tensor grad_in = at::empty_like(g, at::MemoryFormat::Contiguous);
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, g.scalar_type(), "philox_dropout_backward", [&] {
            apply_kept<scalar_t>(g.const_data_ptr<scalar_t>(), grad_in.mutable_data_ptr<scalar_t>(),
                                 keep.const_data_ptr<uint8_t>(), g.numel(), scale);
        });
        return {grad_in, at::Tensor(), at::Tensor()};
    }
};

}  // namespace

extern "C" {

char *bf_philox_dropout(bf_tensor input, double p, int64_t seed, bf_tensor *out) {
    return guarded([&] { *out = new at::Tensor(PhiloxDropout::apply(tensor(input), p, seed)); });
}

}  // extern "C"

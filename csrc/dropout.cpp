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
#include <ATen/record_function.h>
#include <ATen/Parallel.h>
#include <ATen/OpMathType.h>
#include <ATen/core/PhiloxRNGEngine.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#if !defined(__x86_64__)
#error "csrc/dropout.cpp's vector draws are written for x86-64, the one target bertfit builds for"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

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

// The draws, many counters at once. at::Philox4_32(seed, subsequence b, offset 0) gives output j of
// block b as word j % 4 of Philox-4x32-10 at counter {j / 4, 0, b_lo, b_hi} under key {seed_lo,
// seed_hi} (ATen/core/PhiloxRNGEngine.h: `rand`, `single_round`, `incr`; j / 4 < kBlock / 4 never
// carries into the second word). The engine computes one counter at a time with scalar 32x32->64
// multiplies; the AVX-512 and AVX2 versions below compute 16 or 8 counters per vector (the high
// halves of the products from two `mul_epu32`, even and odd lanes), the same bits
// (`bf_philox_selfcheck` compares each version with the engine). The build targets plain x86-64,
// so these are compiled per instruction set and picked at run time, as ATen picks its kernels.
constexpr uint32_t kPhilox10A = 0x9E3779B9, kPhilox10B = 0xBB67AE85;
constexpr uint32_t kPhiloxSA = 0xD2511F53, kPhiloxSB = 0xCD9E8D57;

// keep[j] for j in [from, count) of block `block`, by the engine: the tail of the vector versions,
// and the whole block on other CPUs.
void draw_tail(uint64_t seed, uint64_t block, int64_t from, int64_t count, uint32_t threshold, uint8_t *keep) {
    if (from >= count) return;
    at::Philox4_32 engine(seed, block, static_cast<uint64_t>(from / 4));
    for (int64_t j = from; j < count; ++j) keep[j] = engine() < threshold ? 1 : 0;
}

void draw_block_base(uint64_t seed, uint64_t block, int64_t count, uint32_t threshold, uint8_t *keep) {
    draw_tail(seed, block, 0, count, threshold, keep);
}

// GCC 12's own avx512fintrin.h seeds `_mm512_mul_epu32`'s and `_mm512_srli_epi64`'s unused merge
// operand with `_mm512_undefined_epi32()`, which -Wmaybe-uninitialized reports once inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) inline __m512i mulhi_epu32_512(__m512i a, __m512i b) {
    const __m512i even = _mm512_srli_epi64(_mm512_mul_epu32(a, b), 32);
    const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(b, 32));
    return _mm512_mask_blend_epi32(0xAAAA, even, odd);
}

// 16 counters per vector: 64 keep flags per pass, interleaved to the engine's order (counter l's
// four words at 4l .. 4l + 3) with byte unpacks.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void draw_block_avx512(
    uint64_t seed, uint64_t block, int64_t count, uint32_t threshold, uint8_t *keep) {
    const auto key0 = static_cast<uint32_t>(seed), key1 = static_cast<uint32_t>(seed >> 32);
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sa = _mm512_set1_epi32(static_cast<int>(kPhiloxSA));
    const __m512i sb = _mm512_set1_epi32(static_cast<int>(kPhiloxSB));
    const __m512i b_lo = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(block)));
    const __m512i b_hi = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(block >> 32)));
    const __m512i below = _mm512_set1_epi32(static_cast<int>(threshold));
    const __m128i one = _mm_set1_epi8(1);
    int64_t j = 0;
    for (; j + 64 <= count; j += 64) {
        __m512i x0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(j / 4)), lanes);
        __m512i x1 = _mm512_setzero_si512(), x2 = b_lo, x3 = b_hi;
        uint32_t k0 = key0, k1 = key1;
        for (int round = 0; round < 10; ++round) {
            const __m512i lo0 = _mm512_mullo_epi32(x0, sa), hi0 = mulhi_epu32_512(x0, sa);
            const __m512i lo1 = _mm512_mullo_epi32(x2, sb), hi1 = mulhi_epu32_512(x2, sb);
            x0 = _mm512_xor_si512(_mm512_xor_si512(hi1, x1), _mm512_set1_epi32(static_cast<int>(k0)));
            x2 = _mm512_xor_si512(_mm512_xor_si512(hi0, x3), _mm512_set1_epi32(static_cast<int>(k1)));
            x1 = lo1;
            x3 = lo0;
            k0 += kPhilox10A;
            k1 += kPhilox10B;
        }
        // Word w of the 16 counters as 16 bytes of 0/1.
        const __m128i w0 = _mm_maskz_mov_epi8(_mm512_cmplt_epu32_mask(x0, below), one);
        const __m128i w1 = _mm_maskz_mov_epi8(_mm512_cmplt_epu32_mask(x1, below), one);
        const __m128i w2 = _mm_maskz_mov_epi8(_mm512_cmplt_epu32_mask(x2, below), one);
        const __m128i w3 = _mm_maskz_mov_epi8(_mm512_cmplt_epu32_mask(x3, below), one);
        const __m128i w01_lo = _mm_unpacklo_epi8(w0, w1), w01_hi = _mm_unpackhi_epi8(w0, w1);
        const __m128i w23_lo = _mm_unpacklo_epi8(w2, w3), w23_hi = _mm_unpackhi_epi8(w2, w3);
        auto *out = reinterpret_cast<__m128i *>(keep + j);
        _mm_storeu_si128(out + 0, _mm_unpacklo_epi16(w01_lo, w23_lo));
        _mm_storeu_si128(out + 1, _mm_unpackhi_epi16(w01_lo, w23_lo));
        _mm_storeu_si128(out + 2, _mm_unpacklo_epi16(w01_hi, w23_hi));
        _mm_storeu_si128(out + 3, _mm_unpackhi_epi16(w01_hi, w23_hi));
    }
    draw_tail(seed, block, j, count, threshold, keep);
}

#pragma GCC diagnostic pop

__attribute__((target("avx2"))) inline __m256i mulhi_epu32_256(__m256i a, __m256i b) {
    const __m256i even = _mm256_srli_epi64(_mm256_mul_epu32(a, b), 32);
    const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32));
    return _mm256_blend_epi32(even, odd, 0xAA);
}

// 8 counters per vector, 32 keep flags per pass; AVX2 has no unsigned compare, so both sides are
// offset by 2^31 and compared signed.
__attribute__((target("avx2"))) void draw_block_avx2(uint64_t seed, uint64_t block, int64_t count,
                                                     uint32_t threshold, uint8_t *keep) {
    const auto key0 = static_cast<uint32_t>(seed), key1 = static_cast<uint32_t>(seed >> 32);
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i sa = _mm256_set1_epi32(static_cast<int>(kPhiloxSA));
    const __m256i sb = _mm256_set1_epi32(static_cast<int>(kPhiloxSB));
    const __m256i b_lo = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(block)));
    const __m256i b_hi = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(block >> 32)));
    const __m256i flip = _mm256_set1_epi32(static_cast<int>(0x80000000u));
    const __m256i below = _mm256_set1_epi32(static_cast<int>(threshold ^ 0x80000000u));
    int64_t j = 0;
    for (; j + 32 <= count; j += 32) {
        __m256i x0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(j / 4)), lanes);
        __m256i x1 = _mm256_setzero_si256(), x2 = b_lo, x3 = b_hi;
        uint32_t k0 = key0, k1 = key1;
        for (int round = 0; round < 10; ++round) {
            const __m256i lo0 = _mm256_mullo_epi32(x0, sa), hi0 = mulhi_epu32_256(x0, sa);
            const __m256i lo1 = _mm256_mullo_epi32(x2, sb), hi1 = mulhi_epu32_256(x2, sb);
            x0 = _mm256_xor_si256(_mm256_xor_si256(hi1, x1), _mm256_set1_epi32(static_cast<int>(k0)));
            x2 = _mm256_xor_si256(_mm256_xor_si256(hi0, x3), _mm256_set1_epi32(static_cast<int>(k1)));
            x1 = lo1;
            x3 = lo0;
            k0 += kPhilox10A;
            k1 += kPhilox10B;
        }
        const __m256i words[4] = {x0, x1, x2, x3};
        for (int w = 0; w < 4; ++w) {
            const __m256i kept = _mm256_cmpgt_epi32(below, _mm256_xor_si256(words[w], flip));
            const int bits = _mm256_movemask_ps(_mm256_castsi256_ps(kept));
            for (int l = 0; l < 8; ++l) keep[j + 4 * l + w] = static_cast<uint8_t>((bits >> l) & 1);
        }
    }
    draw_tail(seed, block, j, count, threshold, keep);
}

using DrawBlock = void (*)(uint64_t, uint64_t, int64_t, uint32_t, uint8_t *);

// Which compiled versions this CPU runs, found once; each level runs the ones below it too.
enum class Isa { base, avx2, avx512 };

Isa isa() {
    static const Isa found = [] {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
            return Isa::avx512;
        return __builtin_cpu_supports("avx2") ? Isa::avx2 : Isa::base;
    }();
    return found;
}

DrawBlock draw_block() {
    switch (isa()) {
        case Isa::avx512: return &draw_block_avx512;
        case Isa::avx2: return &draw_block_avx2;
        default: return &draw_block_base;
    }
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

// The float and bf16 passes as loops the compiler vectorizes, in the versions below: bf16 <-> float
// by bits (a bf16 is a float's high half; back with c10's round-to-nearest-even and its NaN), so
// the results are the generic loop's, bit for bit.
static inline __attribute__((always_inline)) void scale_kept_f32(const float *in, float *out, const uint8_t *keep,
                                                                 int64_t begin, int64_t end, float scale) {
    for (int64_t i = begin; i < end; ++i) out[i] = in[i] * (keep[i] ? scale : 0.0f);
}

static inline __attribute__((always_inline)) void scale_kept_bf16(const uint16_t *in, uint16_t *out,
                                                                  const uint8_t *keep, int64_t begin,
                                                                  int64_t end, float scale) {
    for (int64_t i = begin; i < end; ++i) {
        const uint32_t in_bits = static_cast<uint32_t>(in[i]) << 16;
        float x;
        std::memcpy(&x, &in_bits, sizeof x);
        const float y = x * (keep[i] ? scale : 0.0f);
        uint32_t u;
        std::memcpy(&u, &y, sizeof u);
        const auto rounded = static_cast<uint16_t>((u + ((u >> 16) & 1) + 0x7FFFu) >> 16);
        out[i] = y != y ? static_cast<uint16_t>(0x7FC0) : rounded;
    }
}

// The apply loops in the same three versions.
#define BF_APPLY_VERSIONS(name, elem_t)                                                               \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void name##_avx512(                 \
        const elem_t *in, elem_t *out, const uint8_t *keep, int64_t begin, int64_t end, float scale) { \
        name(in, out, keep, begin, end, scale);                                                        \
    }                                                                                                 \
    __attribute__((target("avx2"))) void name##_avx2(const elem_t *in, elem_t *out, const uint8_t *keep, \
                                                      int64_t begin, int64_t end, float scale) {      \
        name(in, out, keep, begin, end, scale);                                                        \
    }                                                                                                 \
    void name##_base(const elem_t *in, elem_t *out, const uint8_t *keep, int64_t begin, int64_t end,  \
                     float scale) {                                                                   \
        name(in, out, keep, begin, end, scale);                                                        \
    }                                                                                                 \
    void name##_best(const elem_t *in, elem_t *out, const uint8_t *keep, int64_t begin, int64_t end,  \
                     float scale) {                                                                   \
        switch (isa()) {                                                                              \
            case Isa::avx512: return name##_avx512(in, out, keep, begin, end, scale);                 \
            case Isa::avx2: return name##_avx2(in, out, keep, begin, end, scale);                     \
            default: return name##_base(in, out, keep, begin, end, scale);                            \
        }                                                                                             \
    }

BF_APPLY_VERSIONS(scale_kept_f32, float)
BF_APPLY_VERSIONS(scale_kept_bf16, uint16_t)
#undef BF_APPLY_VERSIONS

template <>
void scale_kept<float>(const float *in, float *out, const uint8_t *keep, int64_t begin, int64_t end, float scale) {
    scale_kept_f32_best(in, out, keep, begin, end, scale);
}

template <>
void scale_kept<c10::BFloat16>(const c10::BFloat16 *in, c10::BFloat16 *out, const uint8_t *keep, int64_t begin,
                               int64_t end, float scale) {
    static_assert(sizeof(c10::BFloat16) == sizeof(uint16_t), "bf16 is 16 bits");
    scale_kept_bf16_best(reinterpret_cast<const uint16_t *>(in), reinterpret_cast<uint16_t *>(out), keep, begin,
                         end, scale);
}

// The forward: each block draws its mask, then applies it while the block is in cache.
template <typename scalar_t>
void draw_and_apply(const scalar_t *in, scalar_t *out, uint8_t *keep, int64_t n, double p, uint64_t seed) {
    const uint32_t threshold = keep_threshold(p);
    const auto scale = static_cast<at::opmath_type<scalar_t>>(p >= 1.0 ? 0.0 : 1.0 / (1.0 - p));
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    const DrawBlock draw = draw_block();
    at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
        for (int64_t b = first; b < last; ++b) {
            const int64_t begin = b * kBlock, end = std::min(n, begin + kBlock);
            draw(seed, static_cast<uint64_t>(b), end - begin, threshold, keep + begin);
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
        // A custom function's forward is not an op: named here, the profiler's table (--profile-ops)
        // shows its own work as a row instead of leaving it out of every row.
        RECORD_FUNCTION("bertfit::philox_dropout", std::vector<c10::IValue>());
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

int64_t bf_philox_selfcheck(uint64_t seed, uint64_t block, int64_t count, uint32_t threshold) {
    // The engine's draws (the base version is the engine itself) against each vector version this
    // CPU can run; the first index where one differs, or -1.
    std::vector<uint8_t> want(count), got(count);
    draw_block_base(seed, block, count, threshold, want.data());
    std::vector<DrawBlock> versions;
    if (isa() >= Isa::avx2) versions.push_back(&draw_block_avx2);
    if (isa() >= Isa::avx512) versions.push_back(&draw_block_avx512);
    for (DrawBlock draw : versions) {
        std::fill(got.begin(), got.end(), 2);
        draw(seed, block, count, threshold, got.data());
        for (int64_t j = 0; j < count; ++j)
            if (got[j] != want[j]) return j;
    }
    return -1;
}

char *bf_philox_dropout(bf_tensor input, double p, int64_t seed, bf_tensor *out) {
    return guarded([&] { *out = new at::Tensor(PhiloxDropout::apply(tensor(input), p, seed)); });
}

}  // extern "C"

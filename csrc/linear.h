// A linear layer in bf16 / fp16 on the CPU over rows padded to a bucket (linear.cpp says why).
#pragma once

#include "guard.h"

#ifdef __cplusplus
extern "C" {
#endif

// *out = input (N, in) times weight (out, in) transposed plus bias (out,) (may be null), computed
// in `dtype` (bf16 or fp16) over N rounded up to a multiple of `bucket` (the extra rows zero) and
// returned as its first N rows, in `dtype`; differentiable in all three (gradients in their own
// dtypes). CPU tensors only.
char *bf_bucketed_linear(bf_tensor input, bf_tensor weight, bf_tensor bias, int64_t bucket, int dtype,
                         bf_tensor *out);

#ifdef __cplusplus
}
#endif

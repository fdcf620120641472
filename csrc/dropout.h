// Dropout with Philox masks on CPU tensors (dropout.cpp says why libtorch's own is not used there).
#pragma once

#include "guard.h"

#ifdef __cplusplus
extern "C" {
#endif

// *out = input with each element zeroed with probability p and the rest multiplied by 1 / (1 - p),
// differentiable (the backward applies the same mask). The mask is a function of `seed` and the
// element's index only: the same for any number of threads. CPU tensors of float, double, bf16 or
// fp16.
char *bf_philox_dropout(bf_tensor input, double p, int64_t seed, bf_tensor *out);

// The first of `count` keep flags of Philox block `block` where the lane-parallel draws differ from
// at::Philox4_32's own (each compiled version this CPU runs), or -1: for a unit test.
int64_t bf_philox_selfcheck(uint64_t seed, uint64_t block, int64_t count, uint32_t threshold);

#ifdef __cplusplus
}
#endif

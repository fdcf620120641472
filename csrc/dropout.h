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

#ifdef __cplusplus
}
#endif

// The one error path of bertfit's C shim (every csrc/*.cpp), and what their headers share.
//
// Every shim function that can fail returns NULL on success, or a malloc'd message when libtorch
// (or c10d) threw; Rust turns it into an error and frees it with bf_free_error. No C++ exception
// ever crosses into Rust. A `bf_tensor` is tch's C_tensor, i.e. an `at::Tensor*`.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *bf_tensor;

// Frees a message a shim function returned (defined in torch_ext.cpp).
void bf_free_error(char *msg);

#ifdef __cplusplus
}

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <exception>

namespace bf {

// Returned when the message itself cannot be allocated; never handed to free (bf_free_error checks
// for it). `inline`, so both static libraries share one object and one address.
inline const char kOutOfMemory[] = "out of memory while reporting a libtorch error";

// A malloc'd copy of `msg`, or kOutOfMemory when malloc fails.
inline char *dup_message(const char *msg) {
    size_t len = std::strlen(msg);
    char *out = static_cast<char *>(std::malloc(len + 1));
    if (out == nullptr) return const_cast<char *>(kOutOfMemory);
    std::memcpy(out, msg, len + 1);
    return out;
}

// The tensor a `bf_tensor` points to; a null one is an error, not a crash.
inline at::Tensor &tensor(bf_tensor t) {
    TORCH_CHECK(t != nullptr, "bertfit shim: null tensor");
    return *static_cast<at::Tensor *>(t);
}

// Runs `f`, turning any exception into a message (c10's without its C++ backtrace).
template <typename F>
char *guarded(F &&f) {
    try {
        f();
        return nullptr;
    } catch (const c10::Error &e) {
        return dup_message(e.what_without_backtrace());
    } catch (const std::exception &e) {
        return dup_message(e.what());
    } catch (...) {
        return dup_message("unknown C++ exception");
    }
}

}  // namespace bf
#endif

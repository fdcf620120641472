// Declaration-only stand-in for gloo's <gloo/context.h> (see algorithm.h): ProcessGroupGloo.hpp
// holds gloo::Context through std::shared_ptr (whose layout does not depend on the type) and its
// inline setTimeout names Context::setTimeout. That inline body is compiled only into libtorch
// (which owns ProcessGroupGloo's vtable), so the declaration is never linked against.
#pragma once
#include <chrono>

namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};
}  // namespace gloo

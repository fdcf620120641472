// Declaration-only stand-in for gloo's <gloo/common/error.h> (see ../algorithm.h). Gloo's
// exceptions reach bertfit as std::exception (gloo::Exception derives from std::runtime_error).
#pragma once
namespace gloo {
struct Exception;
struct IoException;
}  // namespace gloo

// Declaration-only stand-in for gloo's <gloo/algorithm.h>. The torch wheel ships no gloo headers,
// but ProcessGroupGloo.hpp includes them; bertfit calls nothing of gloo directly (libtorch_cpu.so
// holds the real gloo), so the types that header names only need to be declared.
#pragma once
namespace gloo {
class Algorithm;
}  // namespace gloo

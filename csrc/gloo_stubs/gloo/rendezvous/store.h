// Declaration-only stand-in for gloo's <gloo/rendezvous/store.h> (see ../algorithm.h).
// ProcessGroupGloo.hpp defines GlooStore inline, overriding these virtuals, so they are declared
// with gloo's signatures. bertfit never constructs a GlooStore (libtorch does, with the real
// class), so this declaration's vtable is never used.
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace gloo {
namespace rendezvous {
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) = 0;
};
}  // namespace rendezvous
}  // namespace gloo

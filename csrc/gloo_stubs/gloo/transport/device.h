// Declaration-only stand-in for gloo's <gloo/transport/device.h> (see ../algorithm.h): devices
// and buffers appear in ProcessGroupGloo.hpp only behind std::shared_ptr / std::unique_ptr.
#pragma once
namespace gloo {
namespace transport {
class Device;
class UnboundBuffer;
}  // namespace transport
}  // namespace gloo

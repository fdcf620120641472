// libtorch's profiler for `bertfit train --profile-ops`: the calls torch.profiler.profile makes
// (torch/autograd/profiler.py: _prepare_profiler, _enable_profiler, _disable_profiler), with the
// events copied out of the KinetoEvents once, so that Rust reads plain fields. See torch_ext.h.
#include "torch_ext.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

using bf::guarded;
namespace prof = torch::profiler::impl;
namespace kineto = torch::autograd::profiler;

struct Event {
    std::string name;
    bf_event_device device;
    uint64_t thread, start_ns, duration_ns;
};

bf_event_device device_of(c10::DeviceType d) {
    if (d == c10::DeviceType::CPU) return BF_EVENT_CPU;
    if (d == c10::DeviceType::CUDA) return BF_EVENT_CUDA;
    return BF_EVENT_OTHER;
}

}  // namespace

struct bf_profile {
    std::unique_ptr<kineto::ProfilerResult> result;
    std::vector<Event> events;
};

extern "C" {

char *bf_profiler_start(int cuda) {
    return guarded([&] {
        // No shapes, memory, stacks or FLOP counts: the cheapest recording, so the profile
        // disturbs the timings it measures as little as the profiler allows.
        prof::ProfilerConfig config(prof::ProfilerState::KINETO);
        std::set<prof::ActivityType> activities{prof::ActivityType::CPU};
        if (cuda != 0) activities.insert(prof::ActivityType::CUDA);
        kineto::prepareProfiler(config, activities);
        kineto::enableProfiler(config, activities);
    });
}

char *bf_profiler_stop(bf_profile **out) {
    return guarded([&] {
        auto profile = std::make_unique<bf_profile>();
        profile->result = kineto::disableProfiler();
        TORCH_CHECK(profile->result != nullptr, "the profiler returned no result (was it started?)");
        const auto &events = profile->result->events();
        profile->events.reserve(events.size());
        for (const auto &e : events) {
            profile->events.push_back(
                Event{e.name(), device_of(e.deviceType()), e.startThreadId(), e.startNs(), e.durationNs()});
        }
        *out = profile.release();
    });
}

size_t bf_profile_len(const bf_profile *p) { return p == nullptr ? 0 : p->events.size(); }

char *bf_profile_event(const bf_profile *p, size_t i, const char **name, int *device,
                       uint64_t *thread, uint64_t *start_ns, uint64_t *duration_ns) {
    return guarded([&] {
        TORCH_CHECK(p != nullptr, "bertfit shim: null profile");
        TORCH_CHECK(i < p->events.size(), "profile event ", i, " of ", p->events.size());
        const Event &e = p->events[i];
        *name = e.name.c_str();
        *device = static_cast<int>(e.device);
        *thread = e.thread;
        *start_ns = e.start_ns;
        *duration_ns = e.duration_ns;
    });
}

char *bf_profile_save(bf_profile *p, const char *path) {
    return guarded([&] {
        TORCH_CHECK(p != nullptr && path != nullptr, "bertfit shim: null profile or path");
        p->result->save(path);
    });
}

void bf_profile_free(bf_profile *p) { delete p; }

}  // extern "C"

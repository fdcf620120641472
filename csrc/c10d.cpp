// See c10d.h for what each function does and guard.h for the error path they all share.
//
// Built with USE_C10D_GLOO against declaration-only stand-ins for gloo's headers (gloo_stubs/):
// the real gloo lives inside libtorch_cpu.so and is reached only through ProcessGroupGloo.
// BERTFIT_HAVE_NCCL is defined by build.rs when the CUDA/NCCL headers ProcessGroupNCCL.hpp needs
// were found; without it a request for NCCL fails with a message saying so.
#include "c10d.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef BERTFIT_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace {

using bf::guarded;

// The header's reductions are c10d's own numbers.
static_assert(BF_REDUCE_SUM == static_cast<int>(c10d::ReduceOp::SUM), "bf_reduce_op");
static_assert(BF_REDUCE_AVG == static_cast<int>(c10d::ReduceOp::AVG), "bf_reduce_op");
static_assert(BF_REDUCE_PRODUCT == static_cast<int>(c10d::ReduceOp::PRODUCT), "bf_reduce_op");
static_assert(BF_REDUCE_MIN == static_cast<int>(c10d::ReduceOp::MIN), "bf_reduce_op");
static_assert(BF_REDUCE_MAX == static_cast<int>(c10d::ReduceOp::MAX), "bf_reduce_op");

struct Group {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::Backend> backend;
    int rank = 0;
    int world_size = 1;
};

Group &group(bf_group g) {
    TORCH_CHECK(g != nullptr, "bertfit c10d shim: null group");
    return *static_cast<Group *>(g);
}

c10d::Backend &backend(bf_group g) {
    auto &grp = group(g);
    TORCH_CHECK(grp.backend, "bertfit c10d shim: the group has no backend yet");
    return *grp.backend;
}

std::vector<at::Tensor> list(bf_tensor *ts, size_t n) {
    std::vector<at::Tensor> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        TORCH_CHECK(ts[i] != nullptr, "bertfit c10d shim: null tensor");
        out.push_back(*static_cast<at::Tensor *>(ts[i]));
    }
    return out;
}

// The network devices Gloo binds to. bertfit chooses in Rust (src/dist/group/gloo_device.rs):
// `ifnames` (GLOO_SOCKET_IFNAME, comma-separated as PyTorch reads it: one device each) when not
// empty, else `host`, an address or host name that resolves to an address of this host.
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices(const std::string &ifnames,
                                                                     const std::string &host) {
    std::vector<std::shared_ptr<::gloo::transport::Device>> out;
    std::stringstream names(ifnames);
    for (std::string name; std::getline(names, name, ',');) {
        if (!name.empty()) out.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    }
    if (out.empty()) {
        TORCH_CHECK(!host.empty(), "bertfit c10d shim: no interface and no address for Gloo");
        out.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
    }
    return out;
}

// While a rank waits for the master's store, TCPStore logs every failed connect attempt with a full
// C++ stack trace (dozens of lines a second or two). The outcome is reported as one error, so these
// logs are muted for the duration, unless TORCH_CPP_LOG_LEVEL asks for c10's logs explicitly.
struct QuietConnect {
    int saved = FLAGS_caffe2_log_level;
    bool active = std::getenv("TORCH_CPP_LOG_LEVEL") == nullptr;
    QuietConnect() {
        if (active) FLAGS_caffe2_log_level = std::max(saved, 3);  // 3: FATAL only
    }
    ~QuietConnect() {
        if (active) FLAGS_caffe2_log_level = saved;
    }
};

void wait(const c10::intrusive_ptr<c10d::Work> &work, int64_t timeout_ms) {
    work->wait(std::chrono::milliseconds(timeout_ms));
}

}  // namespace

extern "C" {

int bf_c10d_has_nccl(void) {
#ifdef BERTFIT_HAVE_NCCL
    return 1;
#else
    return 0;
#endif
}

char *bf_c10d_store_new(const char *master_addr, int port, int rank, int world_size,
                        int64_t store_timeout_ms, bf_group *out) {
    return guarded([&] {
        TORCH_CHECK(port > 0 && port < 65536, "port ", port, " is out of range");
        c10d::TCPStoreOptions opts;
        opts.port = static_cast<std::uint16_t>(port);
        opts.isServer = rank == 0;
        opts.numWorkers = static_cast<std::size_t>(world_size);
        // bertfit checks who joined itself (with the world size each rank claims), so a rank with a
        // wrong WORLD_SIZE is named instead of the server waiting for a count that never comes.
        opts.waitWorkers = false;
        opts.timeout = std::chrono::milliseconds(store_timeout_ms);
        auto g = std::make_unique<Group>();
        {
            QuietConnect quiet;
            g->store = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), opts);
        }
        g->rank = rank;
        g->world_size = world_size;
        *out = g.release();
    });
}

char *bf_c10d_store_set(bf_group g, const char *key, const char *value, size_t len) {
    return guarded([&] {
        std::vector<uint8_t> v(value, value + len);
        group(g).store->set(key, v);
    });
}

char *bf_c10d_store_get(bf_group g, const char *key, char *buf, size_t cap, size_t *len) {
    return guarded([&] {
        auto v = group(g).store->get(key);
        *len = v.size();
        std::memcpy(buf, v.data(), std::min(cap, v.size()));
    });
}

char *bf_c10d_store_add(bf_group g, const char *key, int64_t delta, int64_t *out) {
    return guarded([&] { *out = group(g).store->add(key, delta); });
}

char *bf_c10d_store_set_timeout(bf_group g, int64_t timeout_ms) {
    return guarded([&] { group(g).store->setTimeout(std::chrono::milliseconds(timeout_ms)); });
}

char *bf_c10d_backend_init(bf_group g, bf_backend backend_kind, int64_t timeout_ms, const char *gloo_ifnames,
                           const char *gloo_host) {
    return guarded([&] {
        auto &grp = group(g);
        auto timeout = std::chrono::milliseconds(timeout_ms);
        if (backend_kind == BF_BACKEND_GLOO) {
            auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
            opts->devices = gloo_devices(gloo_ifnames ? gloo_ifnames : "", gloo_host ? gloo_host : "");
            // One thread: collectives are issued one at a time and waited for.
            opts->threads = 1;
            grp.backend = c10::make_intrusive<c10d::ProcessGroupGloo>(grp.store, grp.rank, grp.world_size, opts);
        } else if (backend_kind == BF_BACKEND_NCCL) {
#ifdef BERTFIT_HAVE_NCCL
            auto opts = c10d::ProcessGroupNCCL::Options::create();
            opts->timeout = timeout;
            grp.backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(grp.store, grp.rank, grp.world_size, opts);
#else
            TORCH_CHECK(false,
                        "this build has no NCCL; rebuild bertfit with the CUDA headers installed "
                        "(pip packages nvidia-cuda-crt and nvidia-cuda-cccl) or use the gloo backend");
#endif
        } else {
            TORCH_CHECK(false, "unknown backend ", static_cast<int>(backend_kind));
        }
    });
}

void bf_c10d_group_free(bf_group g) {
    if (g == nullptr) return;
    try {
        delete static_cast<Group *>(g);
    } catch (...) {
        // A destructor that throws while tearing down sockets: nothing left to report to.
    }
}

char *bf_c10d_allreduce(bf_group g, bf_tensor *tensors, size_t n, bf_reduce_op op, int64_t timeout_ms) {
    return guarded([&] {
        TORCH_CHECK(op >= BF_REDUCE_SUM && op <= BF_REDUCE_MAX, "unknown reduce op ", static_cast<int>(op));
        auto ts = list(tensors, n);
        c10d::AllreduceOptions opts;
        opts.reduceOp = c10d::ReduceOp(static_cast<c10d::ReduceOp::RedOpType>(op));
        opts.timeout = std::chrono::milliseconds(timeout_ms);
        wait(backend(g).allreduce(ts, opts), timeout_ms);
    });
}

char *bf_c10d_broadcast(bf_group g, bf_tensor *tensors, size_t n, int root, int64_t timeout_ms) {
    return guarded([&] {
        auto ts = list(tensors, n);
        c10d::BroadcastOptions opts;
        opts.rootRank = root;
        opts.timeout = std::chrono::milliseconds(timeout_ms);
        wait(backend(g).broadcast(ts, opts), timeout_ms);
    });
}

char *bf_c10d_barrier(bf_group g, int64_t timeout_ms) {
    return guarded([&] {
        c10d::BarrierOptions opts;
        opts.timeout = std::chrono::milliseconds(timeout_ms);
        wait(backend(g).barrier(opts), timeout_ms);
    });
}

}  // extern "C"

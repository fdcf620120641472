// bertfit's C shim over c10d, PyTorch's own distributed engine (TCPStore, ProcessGroupGloo,
// ProcessGroupNCCL), as exported by the libtorch_cpu.so / libtorch_cuda.so of the torch wheel.
//
// Same rules as torch_ext.h, with the same error path (guard.h): every function returns NULL on
// success or a malloc'd message (free it with bf_free_error), no C++ exception crosses into Rust,
// tensors are `at::Tensor*`. Timeouts are in milliseconds.
#pragma once

#include "guard.h"

#ifdef __cplusplus
extern "C" {
#endif

// A joined process group: the TCPStore client (the server too on rank 0) and the backend.
typedef void *bf_group;

// The backends bf_c10d_backend_init can create.
typedef enum { BF_BACKEND_GLOO = 0, BF_BACKEND_NCCL = 1 } bf_backend;

// The reductions of bf_c10d_allreduce: c10d::ReduceOp::RedOpType's numbers (c10d.cpp checks them).
// AVG is NCCL only.
typedef enum {
    BF_REDUCE_SUM = 0,
    BF_REDUCE_AVG = 1,
    BF_REDUCE_PRODUCT = 2,
    BF_REDUCE_MIN = 3,
    BF_REDUCE_MAX = 4,
} bf_reduce_op;

// 1 when this build compiled ProcessGroupNCCL in (its CUDA/NCCL headers were found), else 0.
int bf_c10d_has_nccl(void);

// Connects to (rank 0: serves) the TCPStore at master_addr:port, waiting up to store_timeout_ms
// for it. Store only: nothing of a backend yet, so the caller can check the world size first.
char *bf_c10d_store_new(const char *master_addr, int port, int rank, int world_size,
                        int64_t store_timeout_ms, bf_group *out);

// store.set(key, value) / value = store.get(key) (waits up to the store's timeout) /
// *out = store.add(key, delta). get writes at most cap bytes into buf, the full length into *len.
char *bf_c10d_store_set(bf_group g, const char *key, const char *value, size_t len);
char *bf_c10d_store_get(bf_group g, const char *key, char *buf, size_t cap, size_t *len);
char *bf_c10d_store_add(bf_group g, const char *key, int64_t delta, int64_t *out);
// Sets the timeout of the store's get/wait.
char *bf_c10d_store_set_timeout(bf_group g, int64_t timeout_ms);

// Creates the backend over the group's store. Blocks until every rank
// has connected (or timeout_ms passed). The timeout is also the default of every collective.
// Gloo binds one device per interface of the comma-separated gloo_ifnames (GLOO_SOCKET_IFNAME)
// when it is not empty, else one device at gloo_host (an address or name of this host). NCCL
// ignores both.
//
// Every function may be called from any thread, one call per group at a time: bertfit runs the
// store calls and the backend's creation on a helper thread it can abandon (a partitioned TCPStore
// read blocks until the kernel gives the connection up); an abandoned group is never used again.
char *bf_c10d_backend_init(bf_group g, bf_backend backend, int64_t timeout_ms, const char *gloo_ifnames,
                           const char *gloo_host);

// Destroys the group (backend, then store).
void bf_c10d_group_free(bf_group g);

// In-place collectives over the backend, each waited for up to timeout_ms.
// allreduce needs every tensor of the same shape, dtype and device.
char *bf_c10d_allreduce(bf_group g, bf_tensor *tensors, size_t n, bf_reduce_op op, int64_t timeout_ms);
char *bf_c10d_broadcast(bf_group g, bf_tensor *tensors, size_t n, int root, int64_t timeout_ms);
char *bf_c10d_barrier(bf_group g, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif

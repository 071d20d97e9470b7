// NCCL process groups live in libtorch_cuda, which r1 does not link (util/device.h): they are made
// by a plugin, libr1_nccl.so (dist/nccl_backend.cpp), built beside r1 when torch brings NCCL, and
// loaded once CUDA support is.
#pragma once
#include <chrono>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace r1 {

// The plugin's one entry point (C linkage, so dlsym finds it by this name).
using ConnectNcclFn = void (*)(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                               int device_index, std::chrono::milliseconds timeout,
                               c10::intrusive_ptr<c10d::Backend>* backend);
constexpr const char* kConnectNcclSymbol = "r1_connect_nccl";
constexpr const char* kNcclPluginName = "libr1_nccl.so";

}  // namespace r1

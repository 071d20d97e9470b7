// libr1_nccl.so: the NCCL backend for process_group.cpp, in a plugin of its own so that r1 itself
// links no CUDA library (dist/nccl_backend.h).
#include "dist/nccl_backend.h"

#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

extern "C" __attribute__((visibility("default"))) void r1_connect_nccl(const c10::intrusive_ptr<c10d::Store>& store,
                                                                        int rank, int world_size, int device_index,
                                                                        std::chrono::milliseconds timeout,
                                                                        c10::intrusive_ptr<c10d::Backend>* backend) {
  if (device_index >= 0) c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index));
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  *backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, options);
}

// The function pointer type process_group.cpp casts the symbol to must match this definition.
static_assert(std::is_same_v<decltype(&r1_connect_nccl), r1::ConnectNcclFn>);

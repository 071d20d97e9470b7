// CUDA's libraries load only when a CUDA device is named (util/device.h). Each test runs in a
// process of its own (gtest_discover_tests), so "not loaded yet" holds at its start.
#include <gtest/gtest.h>

#include <ATen/detail/CUDAHooksInterface.h>

#include <fstream>
#include <iterator>

#include "util/device.h"
#include "util/error.h"

namespace r1 {
namespace {

bool maps_torch_cuda() {
  std::ifstream maps("/proc/self/maps");
  const std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  return text.find("libtorch_cuda.so") != std::string::npos;
}

TEST(Device, CudaLibrariesLoadOnlyWhenACudaDeviceIsNamed) {
  EXPECT_FALSE(maps_torch_cuda()) << "a process that never names CUDA maps libtorch_cuda";
  EXPECT_EQ(open_device("cpu"), torch::Device(torch::kCPU));
  EXPECT_FALSE(maps_torch_cuda());
  EXPECT_FALSE(cuda_support_loaded());
  try {
    EXPECT_TRUE(open_device("cuda").is_cuda());  // a machine with a GPU
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA GPU is available"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(maps_torch_cuda());
  EXPECT_TRUE(cuda_support_loaded());
  // torch's real CUDA hooks registered as the library loaded (the stub has no runtime version).
  EXPECT_GT(at::detail::getCUDAHooks().versionCUDART(), 0);
}

TEST(Device, NamesThatAreNoDeviceAreRefused) {
  for (const char* name : {"gpu", "cuda:x", ""}) {
    try {
      open_device(name, "--device");
      ADD_FAILURE() << name << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("is not a device"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace r1

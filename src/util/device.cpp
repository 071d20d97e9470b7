#include "util/device.h"

#include <dlfcn.h>

#include <ATen/detail/CUDAHooksInterface.h>

#include <mutex>

#include "util/error.h"

namespace r1 {
namespace {

std::once_flag g_cuda_once;
bool g_cuda_loaded = false;
std::string g_cuda_error;

void load_once() {
  // RTLD_GLOBAL: the NCCL plugin (dist/nccl_backend.cpp) and torch's own lookups resolve against it.
  if (dlopen("libtorch_cuda.so", RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    const char* why = dlerror();
    g_cuda_error = std::string("cannot load libtorch_cuda.so (torch's CUDA support): ") + (why ? why : "unknown error");
    return;
  }
  // The stub hooks (torch asked before the load) cannot report a CUDA runtime version.
  try {
    (void)at::detail::getCUDAHooks().versionCUDART();
  } catch (const std::exception&) {
    g_cuda_error = "libtorch_cuda.so loaded after torch had already settled on no CUDA (a CUDA query ran first)";
    return;
  }
  g_cuda_loaded = true;
}

}  // namespace

void load_cuda_support() {
  std::call_once(g_cuda_once, load_once);
  if (!g_cuda_loaded) throw Error(g_cuda_error);
}

bool cuda_support_loaded() { return g_cuda_loaded; }

torch::Device open_device(const std::string& name, const std::string& what) {
  torch::Device dev(torch::kCPU);
  try {
    dev = torch::Device(name);
  } catch (const c10::Error&) {
    throw Error(what + " '" + name + "' is not a device (cpu, cuda, cuda:N)");
  }
  if (dev.is_cuda()) {
    try {
      load_cuda_support();
    } catch (const Error& e) {
      throw Error(what + " " + name + ": " + e.what());
    }
    if (!torch::cuda::is_available()) {
      const int version = static_cast<int>(at::detail::getCUDAHooks().versionCUDART());
      throw Error(what + " " + name + ": no CUDA GPU is available on this machine (CUDA runtime " +
                  std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10) + " loaded, no device visible)");
    }
    if (dev.has_index() && dev.index() >= static_cast<int>(torch::cuda::device_count()))
      throw Error(what + " " + name + ": this machine has " + std::to_string(torch::cuda::device_count()) + " CUDA GPU(s)");
  }
  return dev;
}

}  // namespace r1

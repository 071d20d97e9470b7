// Devices, and CUDA's libraries loaded only when a CUDA device is asked for.
//
// Why: PyPI's torch ships CUDA support as libtorch_cuda.so with cuBLAS, cuDNN, NCCL and the CUDA
// runtime behind it. Linked into r1, they loaded into every process: ~370 MB more resident memory
// than libtorch_cpu alone (490 vs 118 MB for `r1 --version`) and 0.15 s more start-up, on
// machines without a GPU too. r1 links libtorch_cpu only and loads libtorch_cuda with dlopen the
// first time a CUDA device is named (its kernels and CUDA hooks register as it loads).
#pragma once
#include <string>

#include <torch/torch.h>

namespace r1 {

// The device `name` names (cpu, cuda, cuda:N), ready for tensors: for CUDA, libtorch_cuda is
// loaded and a GPU must be visible. Throws r1::Error with `what` (the flag or field) otherwise.
torch::Device open_device(const std::string& name, const std::string& what = "--device");

// Loads libtorch_cuda.so (found like r1's own torch libraries, through r1's RUNPATH) once; throws
// r1::Error if it cannot be loaded or if torch looked for CUDA before it was loaded (torch caches
// its first answer for the life of the process, so the load must come before any CUDA question).
void load_cuda_support();
bool cuda_support_loaded();

}  // namespace r1

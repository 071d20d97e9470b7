// Mixed precision on the CPU: matrix products in bfloat16 (AMX / AVX512-BF16 units), everything
// else in float32.
//
// Why not libtorch's CPU autocast: it returns bf16 activations, so RMSNorm, SwiGLU and rotary
// leave the fused float32 kernels for bf16 composites and every elementwise op converts; on the
// demo model a pretraining step under autocast was 1.2x slower than fp32 although this CPU's AMX
// multiplies bf16 matrices 4x faster. Here a linear layer takes float32 in and gives float32 out:
// its inputs are rounded to bf16 for the product (fp32 accumulation), its gradients likewise, and
// the weights, the optimizer and every other op stay float32.
#pragma once
#include <torch/torch.h>

#include "model/packed_matmul.h"

namespace r1 {

// While alive on this thread, model linear layers on CPU float32 tensors multiply in bf16.
class CpuBf16MatmulScope {
 public:
  explicit CpuBf16MatmulScope(bool enabled);
  ~CpuBf16MatmulScope();
  CpuBf16MatmulScope(const CpuBf16MatmulScope&) = delete;
  CpuBf16MatmulScope& operator=(const CpuBf16MatmulScope&) = delete;

 private:
  bool previous_;
};

// Whether a CpuBf16MatmulScope is enabled on this thread (activation checkpointing recomputes
// under the forward's precision).
bool cpu_bf16_matmul_enabled();

// x [..., K] @ weight [N, K]^T + bias: in bf16 inside a CpuBf16MatmulScope for CPU float32
// tensors; else through `packed` (packed_matmul.h: r1's decode kernels for few rows, int8 copies,
// MKL-packed copies); else libtorch's linear.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {},
                     PackedWeight* packed = nullptr);

}  // namespace r1

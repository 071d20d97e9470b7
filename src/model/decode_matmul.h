// Decoding's weight products on the CPU: a few rows times a weight matrix stored as float32,
// bfloat16 or int8, at the memory bandwidth on any x86-64 CPU.
//
// Why r1's own kernels: a decode step multiplies one row per sequence by every weight matrix, so
// it is a stream over the weights and its speed is the memory bandwidth. libtorch hands these
// products to MKL, whose matrix-vector path is fast on Intel but generic ("def") on AMD CPUs
// (2.5x behind llama.cpp there), and to oneDNN for bfloat16, which reached 45% of the bandwidth
// on Intel. These kernels are written once against a small SIMD interface and compiled for
// AVX-512 (with VNNI and without) and AVX2; the widest the CPU has is picked at run time
// (R1_DECODE_ISA=avx512 or avx2 forces a narrower one; R1_NO_DECODE_KERNELS=1 switches them off
// and keeps libtorch's products, for A/B runs). bench/run_gemv.py measures them against MKL,
// oneDNN and the bandwidth.
//
// int8 weights: one float32 scale per output row (absmax / 127). The activations are rounded to
// int8 too, per block of 64 values (scale = the block's absmax / 127, llama.cpp's Q8_0 way), so
// the products are integer dot products (AVX-512 VNNI's vpdpbusd, or vpmaddubsw + vpmaddwd),
// summed per block in int32 and across blocks in float32: converting each int8 weight to float32
// instead left the kernel compute-bound at ~7.5 G weights/s per core, below the bandwidth.
// R1_NO_INT8_ACTIVATIONS=1 keeps float32 activations (weight-only rounding, the slower path).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace r1 {

enum class WeightType { kFloat32, kBFloat16, kInt8 };

// A weight matrix W [rows, cols] in row-major order (rows = outputs, cols = inputs).
struct WeightRows {
  WeightType type = WeightType::kFloat32;
  const void* data = nullptr;
  const float* scales = nullptr;  // int8: one per row
  int64_t rows = 0, cols = 0;
};

// Products with at most this many rows of activations go to the kernels (measured per type by
// bench/run_gemv.py: past it the GEMM libraries' blocking wins).
int64_t decode_kernel_max_rows(WeightType type);

// "avx512vnni", "avx512", "avx2", or "" where no kernel runs (not x86-64, a CPU without AVX2, or
// R1_NO_DECODE_KERNELS set).
const char* decode_kernel_isa();

// How activations meet int8 weights: rounded to int8 per block of kInt8ActivationBlock values
// (the default), or kept float32 (R1_NO_INT8_ACTIVATIONS=1).
enum class Int8Activations { kInt8, kFloat32 };
constexpr int64_t kInt8ActivationBlock = 64;
Int8Activations int8_activations();

// y [M, N] = x [M, K] W^T (+ bias [N]); x and y float32, row-major. Threads split N.
void decode_matmul(const float* x, int64_t M, const WeightRows& w, const float* bias, float* y);
// The same with a chosen instruction set, one of decode_kernel_isas(): every set this CPU runs
// (tests check each one, whichever the process picked), and a chosen int8 activation path.
void decode_matmul(const float* x, int64_t M, const WeightRows& w, const float* bias, float* y, const std::string& isa,
                   Int8Activations int8 = int8_activations());
std::vector<std::string> decode_kernel_isas();

// The same for tensors: x [..., K] float32 or bfloat16 (returned in x's dtype). Undefined when the
// kernels do not apply: not CPU, autograd recording, more rows than decode_kernel_max_rows, or no
// kernel for this CPU.
torch::Tensor decode_linear(const torch::Tensor& x, const WeightRows& w, const torch::Tensor& bias);

// `weight` [N, K] (float32 or bfloat16, contiguous) as WeightRows, or nullopt for other dtypes.
std::optional<WeightRows> weight_rows(const torch::Tensor& weight);

// Per-output-row symmetric int8: values = round(W / scale), scale = max|W_row| / 127.
struct Int8Weight {
  torch::Tensor values;  // int8 [N, K]
  torch::Tensor scales;  // float32 [N]
  WeightRows rows() const;
  torch::Tensor dequantized() const;  // float32 [N, K]
  int64_t bytes() const { return values.numel() + scales.numel() * 4; }
};
Int8Weight quantize_int8(const torch::Tensor& weight);

// How many times MKL has asked r1's mkl_serv_intel_cpu_true (decode_matmul.cpp) whether the CPU
// is Intel's: > 0 once MKL has chosen its kernels, when r1's answer reached it.
int mkl_vendor_asks();

}  // namespace r1

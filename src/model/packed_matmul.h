// Decoding's matrix products from weights packed once in MKL's internal layout.
//
// Why: a decode step multiplies a few rows (one per sequence) by every weight matrix, and
// libtorch's sgemm re-packs the whole weight matrix into MKL's blocked layout on every call: at
// 8-64 rows that re-packing costs about as much as the product (`mkl_blas_avx512_sgemm_scopy_*`
// in `perf`). MKL's packed GEMM (cblas_sgemm_pack once, cblas_sgemm_compute per call) skips it:
// 1.3-2.7x faster products for 8-64 rows on the presets' shapes (docs/benchmarks.md).
//
// The packed copy costs the weight's size again in memory, so it is used only inside a
// CpuPackedMatmulScope (the generation engine's steps, unless EngineOptions::packed_weights is
// off: `--no-packed-weights`), only for CPU float32 products of 2-256 rows with no autograd, and
// only when the linked libtorch carries MKL's packing functions (PyPI's does; looked up at run
// time, so a libtorch without MKL simply keeps the ordinary product). R1_NO_PACKED_GEMM=1
// switches it off process-wide, for A/B measurements.
#pragma once
#include <mutex>

#include <torch/torch.h>

namespace r1 {

// While alive on this thread (and enabled), linear layers that own a PackedWeight multiply through it.
class CpuPackedMatmulScope {
 public:
  explicit CpuPackedMatmulScope(bool enabled = true);
  ~CpuPackedMatmulScope();
  CpuPackedMatmulScope(const CpuPackedMatmulScope&) = delete;
  CpuPackedMatmulScope& operator=(const CpuPackedMatmulScope&) = delete;

 private:
  bool previous_;
};

// MKL's packed GEMM was found in the linked libtorch and R1_NO_PACKED_GEMM is not set.
bool packed_matmul_available();

// One weight matrix's packed copy. Packed on first use inside a scope and again whenever the
// weight changed since (its storage, shape or version counter: an optimizer step or a checkpoint
// load bumps it), so GRPO's engine always samples from the current policy.
class PackedWeight {
 public:
  PackedWeight() = default;
  // Copies start empty (a copied module packs its own weight when it first needs it).
  PackedWeight(const PackedWeight&) {}
  PackedWeight& operator=(const PackedWeight&);

  // x [..., K] @ weight [N, K]^T + bias [N] from the packed copy, or an undefined tensor when this
  // path does not apply here (outside a scope, not CPU float32, autograd recording, no MKL).
  torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);
  // Frees the packed copy (it is packed again on next use).
  void clear();

 private:
  std::mutex mutex_;
  torch::Tensor packed_;  // MKL's opaque packed bytes (64-byte aligned by libtorch's allocator)
  const void* source_ = nullptr;
  int64_t rows_ = 0, cols_ = 0;
  int64_t version_ = -1;  // -1: an inference tensor (no version counter; never changed in place by r1)
};

}  // namespace r1

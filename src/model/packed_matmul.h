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
// off: `--no-packed-weights`), only for CPU float32 products of 2-256 rows with no autograd (of
// which r1's decode kernels, decode_matmul.h, take the first few), and
// only when the linked libtorch carries MKL's packing functions (PyPI's does; looked up at run
// time, so a libtorch without MKL simply keeps the ordinary product). R1_NO_PACKED_GEMM=1
// switches it off process-wide, for A/B measurements.
//
// The same object holds a Linear's other decoding copy, int8 (decode_matmul.h): made inside a
// CpuInt8MatmulScope (GRPO's rollouts with --rollout-dtype int8; remade whenever the weight
// changes, like the packed copy), or for good by freeze (generate, chat, serve and eval with
// --dtype int8, which then release the float32 weight); freeze also keeps bfloat16 copies
// (--dtype bfloat16-weights). Outside those, products of few rows from float32 or bfloat16
// weights go to decode_matmul's kernels before MKL's packed copy.
#pragma once
#include <mutex>

#include <torch/torch.h>

#include "model/decode_matmul.h"

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

// While alive on this thread (and enabled), linear layers that own a PackedWeight multiply by an
// int8 copy of their float32 weight (per-row scales; quantised on first use and when the weight changes).
class CpuInt8MatmulScope {
 public:
  explicit CpuInt8MatmulScope(bool enabled);
  ~CpuInt8MatmulScope();
  CpuInt8MatmulScope(const CpuInt8MatmulScope&) = delete;
  CpuInt8MatmulScope& operator=(const CpuInt8MatmulScope&) = delete;

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
  // From now on every product uses a copy of `weight` of `type` (kInt8 or kBFloat16) made here, in
  // and out of scopes; the caller may then release the float weight (freeze_linears in
  // model/transformer.h does).
  void freeze(const torch::Tensor& weight, WeightType type);
  bool frozen() const { return frozen_; }
  // Bytes of the int8 copy (0 when there is none).
  int64_t int8_bytes() const { return int8_.values.defined() ? int8_.bytes() : 0; }
  // The frozen copy's bytes and values (0 when not frozen).
  int64_t frozen_bytes() const { return frozen_bf16_.defined() ? frozen_bf16_.numel() * 2 : frozen_ ? int8_bytes() : 0; }
  int64_t frozen_values() const { return frozen_bf16_.defined() ? frozen_bf16_.numel() : frozen_ ? int8_.values.numel() : 0; }
  // MKL's packed product alone (what linear() does past the decode kernels' row counts), for benchmarks.
  torch::Tensor mkl_packed_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

 private:
  torch::Tensor int8_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

  Int8Weight int8_;
  torch::Tensor frozen_bf16_;  // freeze(kBFloat16)
  const void* int8_source_ = nullptr;
  int64_t int8_version_ = -1;
  bool frozen_ = false;

  std::mutex mutex_;
  torch::Tensor packed_;  // MKL's opaque packed bytes (64-byte aligned by libtorch's allocator)
  const void* source_ = nullptr;
  int64_t rows_ = 0, cols_ = 0;
  int64_t version_ = -1;  // -1: an inference tensor (no version counter; never changed in place by r1)
};

}  // namespace r1

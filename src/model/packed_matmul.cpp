#include "model/packed_matmul.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <limits>

namespace r1 {
namespace {

thread_local bool t_packed_matmul = false;
thread_local bool t_int8_matmul = false;

// CBLAS's enumerations (mkl_cblas.h; libtorch ships no MKL headers).
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;
// Rows the weight is packed for. MKL's packed layout of B (size, contents) measured the same for
// any row count, and one copy serves every batch size (continuous batching changes it nearly every
// step); PackedMatmul.OneCopyServesEveryRowCount checks products of 2..256 rows from one copy
// against float64 products.
constexpr int kPackRows = 64;
// Products this many rows or fewer go through the packed copy. One row is a matrix-vector product
// that libtorch does not re-pack anyway (the packed path measured 5-15% slower on tiny at batch 1);
// past a few hundred rows the re-packing is amortised (no gain, and prefill of 16k rows on tiny was
// ~10% slower).
constexpr int64_t kMinRows = 2, kMaxRows = 256;

using GetSizeFn = size_t (*)(int identifier, int m, int n, int k);
using PackFn = void (*)(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src,
                        int ld, float* dest);
using ComputeFn = void (*)(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                           const float* b, int ldb, float beta, float* c, int ldc);

struct Mkl {
  GetSizeFn get_size = nullptr;
  PackFn pack = nullptr;
  ComputeFn compute = nullptr;
  bool usable() const { return get_size && pack && compute; }
};

// Resolved once from the process's loaded libraries (libtorch_cpu exports MKL's CBLAS).
const Mkl& mkl() {
  static const Mkl functions = [] {
    Mkl f;
    if (std::getenv("R1_NO_PACKED_GEMM") != nullptr) return f;  // set: off (as R1_NO_FUSED_OPS), for A/B runs
    f.get_size = reinterpret_cast<GetSizeFn>(dlsym(RTLD_DEFAULT, "cblas_sgemm_pack_get_size"));
    f.pack = reinterpret_cast<PackFn>(dlsym(RTLD_DEFAULT, "cblas_sgemm_pack"));
    f.compute = reinterpret_cast<ComputeFn>(dlsym(RTLD_DEFAULT, "cblas_sgemm_compute"));
    return f;
  }();
  return functions;
}

}  // namespace

CpuPackedMatmulScope::CpuPackedMatmulScope(bool enabled) : previous_(t_packed_matmul) { t_packed_matmul = enabled; }
CpuPackedMatmulScope::~CpuPackedMatmulScope() { t_packed_matmul = previous_; }

CpuInt8MatmulScope::CpuInt8MatmulScope(bool enabled) : previous_(t_int8_matmul) { t_int8_matmul = enabled; }
CpuInt8MatmulScope::~CpuInt8MatmulScope() { t_int8_matmul = previous_; }

bool packed_matmul_available() { return mkl().usable(); }

PackedWeight& PackedWeight::operator=(const PackedWeight&) {
  clear();
  return *this;
}

void PackedWeight::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  packed_ = torch::Tensor();
  source_ = nullptr;
  if (!frozen_) {
    int8_ = {};
    int8_source_ = nullptr;
  }
}

void PackedWeight::freeze(const torch::Tensor& weight, WeightType type) {
  TORCH_CHECK(type != WeightType::kFloat32, "PackedWeight::freeze: int8 or bfloat16");
  std::lock_guard<std::mutex> lock(mutex_);
  if (type == WeightType::kInt8) int8_ = quantize_int8(weight);
  else frozen_bf16_ = weight.to(torch::kBFloat16).contiguous();
  frozen_ = true;
}

namespace {

bool records_gradient(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  return torch::GradMode::is_enabled() &&
         (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
}

int64_t version_of(const torch::Tensor& weight) {
  return weight.is_inference() ? -1 : static_cast<int64_t>(weight._version());
}

// A product by a bfloat16 or int8 copy: r1's kernel where it applies (decoding's row counts, CPU,
// no autograd), else libtorch's on the copy widened to x's dtype (prefill), one matrix at a time.
torch::Tensor kernel_or_widened(const torch::Tensor& x, const WeightRows& rows, const torch::Tensor& bias,
                                const std::function<torch::Tensor()>& widened) {
  auto y = decode_linear(x, rows, bias);
  if (y.defined()) return y;
  return torch::nn::functional::linear(x, widened().to(x.device(), x.scalar_type()), bias);
}

}  // namespace

torch::Tensor PackedWeight::linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (frozen_bf16_.defined())  // float32 activations by bfloat16 weights
    return kernel_or_widened(x, *weight_rows(frozen_bf16_), bias, [&] { return frozen_bf16_; });
  if (frozen_) return int8_linear(x, weight, bias);
  if (!x.device().is_cpu() || !weight.device().is_cpu() || records_gradient(x, weight, bias)) return {};
  if (t_int8_matmul && weight.scalar_type() == torch::kFloat32 && weight.dim() == 2) return int8_linear(x, weight, bias);
  if (const auto rows = weight_rows(weight)) {
    auto y = decode_linear(x, *rows, bias);
    if (y.defined()) return y;
  }
  return mkl_packed_linear(x, weight, bias);
}

// Products by the int8 copy (made or remade here inside a CpuInt8MatmulScope).
torch::Tensor PackedWeight::int8_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  Int8Weight q;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!frozen_ && (!int8_.values.defined() || int8_source_ != weight.data_ptr() ||
                          int8_version_ != version_of(weight) || int8_.values.sizes() != weight.sizes())) {
      int8_ = Int8Weight();
      int8_ = quantize_int8(weight);
      int8_source_ = weight.data_ptr();
      int8_version_ = version_of(weight);
    }
    q = int8_;
  }
  return kernel_or_widened(x, q.rows(), bias, [&] { return q.dequantized(); });
}

torch::Tensor PackedWeight::mkl_packed_linear(const torch::Tensor& x, const torch::Tensor& weight,
                                              const torch::Tensor& bias) {
  if (!t_packed_matmul || !mkl().usable() || records_gradient(x, weight, bias)) return {};
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat32 || weight.scalar_type() != torch::kFloat32 ||
      !weight.device().is_cpu() || weight.dim() != 2 || !weight.is_contiguous() ||
      (bias.defined() && (bias.scalar_type() != torch::kFloat32 || !bias.device().is_cpu())))
    return {};
  const int64_t N = weight.size(0), K = weight.size(1);
  if (K == 0 || x.size(-1) != K || N * K > std::numeric_limits<int>::max()) return {};
  const int64_t M = x.numel() / K;
  if (M < kMinRows || M > kMaxRows) return {};
  const auto a = x.reshape({M, K}).contiguous();

  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t version = version_of(weight);
  if (!packed_.defined() || source_ != weight.data_ptr() || rows_ != N || cols_ != K || version_ != version) {
    const size_t bytes = mkl().get_size(kBMatrix, kPackRows, static_cast<int>(N), static_cast<int>(K));
    packed_ = torch::Tensor();  // free the stale copy before allocating the new one
    packed_ = torch::empty({static_cast<int64_t>(bytes)}, torch::kUInt8);
    // W [N, K] row-major is B^T: packed as op(B) = W^T, as ATen's _mkl_reorder_linear_weight does.
    mkl().pack(kRowMajor, kBMatrix, kTrans, kPackRows, static_cast<int>(N), static_cast<int>(K), 1.0f,
               weight.data_ptr<float>(), static_cast<int>(K), reinterpret_cast<float*>(packed_.data_ptr()));
    source_ = weight.data_ptr();
    rows_ = N;
    cols_ = K;
    version_ = version;
  }

  auto sizes = x.sizes().vec();
  sizes.back() = N;
  auto out = torch::empty({M, N}, x.options());
  if (bias.defined()) out.copy_(bias.view({1, N}).expand({M, N}));
  mkl().compute(kRowMajor, kNoTrans, kPacked, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
                a.data_ptr<float>(), static_cast<int>(K), reinterpret_cast<const float*>(packed_.data_ptr()),
                static_cast<int>(K), bias.defined() ? 1.0f : 0.0f, out.data_ptr<float>(), static_cast<int>(N));
  return out.view(sizes);
}

}  // namespace r1

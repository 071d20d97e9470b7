// Decoding's packed-weight products (model/packed_matmul.h; MKL's product alone, whatever rows r1's
// decode kernels would take first) against float64 products: one packed
// copy for every row count, packed again whenever the weight changes (an optimizer step, a new
// tensor, a copy into it), and used only where it applies.
#include <gtest/gtest.h>

#include "model/bf16_matmul.h"
#include "model/packed_matmul.h"

namespace r1 {
namespace {

// max |y - x w^T - b| relative to max |x w^T + b|, the reference in float64.
double error(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  auto want = torch::matmul(x.to(torch::kFloat64), w.to(torch::kFloat64).t());
  if (b.defined()) want = want + b.to(torch::kFloat64);
  return ((y.to(torch::kFloat64) - want).abs().max() / want.abs().max()).item<double>();
}

TEST(PackedMatmul, OneCopyServesEveryRowCount) {
  ASSERT_TRUE(packed_matmul_available()) << "libtorch's MKL packing functions not found (or R1_NO_PACKED_GEMM set)";
  torch::manual_seed(3);
  struct Shape {
    int64_t n, k;
    bool bias;
  };
  // The tiny preset's projections and MLP, a Qwen2-style projection with bias, a vocabulary head.
  for (const auto& s : {Shape{384, 128, false}, Shape{128, 128, true}, Shape{1536, 512, true}, Shape{4096, 128, false}}) {
    const auto w = torch::randn({s.n, s.k});
    const auto b = s.bias ? torch::randn({s.n}) : torch::Tensor();
    PackedWeight packed;
    CpuPackedMatmulScope scope;
    for (int64_t m : {2, 3, 7, 8, 17, 63, 64, 65, 100, 255, 256}) {
      const auto x = torch::randn({m, s.k});
      const auto y = packed.mkl_packed_linear(x, w, b);
      ASSERT_TRUE(y.defined()) << m << " rows";
      EXPECT_EQ(y.sizes(), (std::vector<int64_t>{m, s.n}));
      EXPECT_LT(error(y, x, w, b), 1e-5) << s.n << "x" << s.k << ", " << m << " rows";
    }
    // Batched decode's [B, 1, K] and a non-contiguous input.
    const auto x3 = torch::randn({5, 1, s.k});
    const auto y3 = packed.mkl_packed_linear(x3, w, b);
    ASSERT_TRUE(y3.defined());
    EXPECT_EQ(y3.sizes(), (std::vector<int64_t>{5, 1, s.n}));
    EXPECT_LT(error(y3.squeeze(1), x3.squeeze(1), w, b), 1e-5);
    const auto strided = torch::randn({s.k, 6}).t();
    EXPECT_LT(error(packed.mkl_packed_linear(strided, w, b), strided, w, b), 1e-5);
    // One row (a matrix-vector product, never re-packed by libtorch) and many rows (re-packing
    // amortised) keep the ordinary product.
    EXPECT_FALSE(packed.mkl_packed_linear(torch::randn({1, s.k}), w, b).defined());
    EXPECT_FALSE(packed.linear(torch::randn({257, s.k}), w, b).defined());
  }
}

TEST(PackedMatmul, PacksAgainWhenTheWeightChanges) {
  torch::manual_seed(4);
  auto w = torch::randn({96, 64});
  const auto x = torch::randn({8, 64});
  PackedWeight packed;
  CpuPackedMatmulScope scope;
  const auto before = packed.mkl_packed_linear(x, w, {});
  EXPECT_LT(error(before, x, w, {}), 1e-5);
  {
    torch::NoGradGuard no_grad;  // as an optimizer step changes a parameter
    w.add_(torch::randn_like(w));
  }
  const auto after_step = packed.mkl_packed_linear(x, w, {});
  EXPECT_GT((after_step - before).abs().max().item<double>(), 0.1);
  EXPECT_LT(error(after_step, x, w, {}), 1e-5) << "in-place update not seen";
  w.copy_(torch::randn_like(w));  // as a checkpoint load does
  EXPECT_LT(error(packed.mkl_packed_linear(x, w, {}), x, w, {}), 1e-5) << "copy into the weight not seen";
  w = torch::randn({96, 64});  // a new tensor (new storage)
  EXPECT_LT(error(packed.mkl_packed_linear(x, w, {}), x, w, {}), 1e-5) << "new weight tensor not seen";
  w = torch::randn({48, 64});  // another shape
  EXPECT_LT(error(packed.mkl_packed_linear(x, w, {}), x, w, {}), 1e-5) << "new shape not seen";
  // A copied owner (a copied module) packs its own weight.
  PackedWeight copy = packed;
  const auto other = torch::randn({48, 64});
  EXPECT_LT(error(copy.mkl_packed_linear(x, other, {}), x, other, {}), 1e-5);
}

TEST(PackedMatmul, OnlyInsideAScopeForCpuFloat32WithoutAutograd) {
  torch::manual_seed(5);
  const auto w = torch::randn({32, 16});
  const auto x = torch::randn({4, 16});
  PackedWeight packed;
  EXPECT_FALSE(packed.mkl_packed_linear(x, w, {}).defined()) << "outside a scope";
  EXPECT_FALSE(linear(x, w, {}, &packed).requires_grad());
  CpuPackedMatmulScope scope;
  EXPECT_TRUE(packed.mkl_packed_linear(x, w, {}).defined());
  EXPECT_FALSE(packed.mkl_packed_linear(x.to(torch::kBFloat16), w.to(torch::kBFloat16), {}).defined()) << "bf16";
  // Autograd recording: the ordinary product, so gradients flow.
  const auto xg = x.clone().requires_grad_(true);
  EXPECT_FALSE(packed.mkl_packed_linear(xg, w, {}).defined());
  auto y = linear(xg, w, {}, &packed);
  y.sum().backward();
  ASSERT_TRUE(xg.grad().defined());
  // (Summation order varies with the threads MKL uses: a tolerance, not allclose's 1e-8 near zero.)
  EXPECT_LT((xg.grad() - w.sum(0).expand({4, 16})).abs().max().item<double>(), 1e-5);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(packed.mkl_packed_linear(xg, w, {}).defined()) << "no autograd recording under NoGradGuard";
}

}  // namespace
}  // namespace r1

// The fused CPU kernels (model/fused_ops.h) against libtorch's composite ops, which are the
// reference: the same outputs and the same gradients for every input, on shapes that are not
// multiples of the vector width, non-contiguous inputs and broadcast cos/sin.
#include <gtest/gtest.h>

#include "model/bf16_matmul.h"
#include "model/fused_ops.h"
#include "model/rope.h"
#include "util/parallel_rows.h"

namespace r1 {
namespace {

double max_rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

// Runs f on leaf copies of `inputs`, backpropagates `grad_out` and returns {output, grads...}.
std::vector<torch::Tensor> run(const std::function<torch::Tensor(std::vector<torch::Tensor>&)>& f,
                               const std::vector<torch::Tensor>& inputs, const torch::Tensor& grad_out) {
  std::vector<torch::Tensor> leaves;
  for (const auto& x : inputs) leaves.push_back(x.detach().clone().requires_grad_(true));
  auto y = f(leaves);
  y.backward(grad_out);
  std::vector<torch::Tensor> out = {y.detach()};
  for (const auto& l : leaves) out.push_back(l.grad());
  return out;
}

void expect_same(const std::vector<torch::Tensor>& fused, const std::vector<torch::Tensor>& reference, double tol,
                 const std::string& what) {
  ASSERT_EQ(fused.size(), reference.size());
  for (size_t i = 0; i < fused.size(); ++i) {
    ASSERT_TRUE(fused[i].defined()) << what << " output/grad " << i;
    EXPECT_EQ(fused[i].sizes(), reference[i].sizes()) << what << " " << i;
    EXPECT_LT(max_rel(fused[i], reference[i]), tol) << what << " output/grad " << i << " (0 = forward)";
  }
}

TEST(FusedOps, RmsNormEqualsTheCompositeOpAndItsGradients) {
  torch::manual_seed(1);
  for (int64_t C : {7, 128, 131}) {
    auto x = torch::randn({3, 5, C}) * 3, w = torch::randn({C}), g = torch::randn({3, 5, C});
    auto fused = run([](auto& in) { return fused::rms_norm(in[0], in[1], 1e-6); }, {x, w}, g);
    auto ref = run([](auto& in) { return at::rms_norm(in[0], {in[0].size(-1)}, in[1], 1e-6); }, {x, w}, g);
    expect_same(fused, ref, 2e-6, "rms_norm C=" + std::to_string(C));
  }
  // A non-contiguous input (a transposed view) gives the same result as its contiguous copy.
  auto x = torch::randn({6, 4, 32}).transpose(0, 1), w = torch::randn({32});
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_rel(fused::rms_norm(x, w, 1e-5), at::rms_norm(x.contiguous(), {32}, w, 1e-5)), 2e-6);
}

TEST(FusedOps, SwigluEqualsSiluTimesUpAndItsGradients) {
  torch::manual_seed(2);
  // Wide range: saturated sigmoid on both sides, and the exp clamp at +-87.
  auto gate = torch::cat({torch::randn({1000}) * 4, torch::linspace(-120, 120, 241)}), up = torch::randn({1241});
  auto g = torch::randn({1241});
  auto fused = run([](auto& in) { return fused::swiglu(in[0], in[1]); }, {gate, up}, g);
  auto ref = run([](auto& in) { return torch::silu(in[0]) * in[1]; }, {gate, up}, g);
  expect_same(fused, ref, 1e-6, "swiglu");
  // Element by element too (max_rel is relative to the largest entry): small values stay accurate.
  EXPECT_TRUE(torch::allclose(fused[0], ref[0], 1e-5, 1e-30));
  EXPECT_TRUE(torch::allclose(fused[1], ref[1], 1e-5, 1e-30));
  // NaN stays NaN.
  torch::NoGradGuard no_grad;
  auto nan = fused::swiglu(torch::tensor({NAN, 1.0f}), torch::tensor({1.0f, 1.0f}));
  EXPECT_TRUE(std::isnan(nan[0].item<float>()));
  EXPECT_FALSE(std::isnan(nan[1].item<float>()));
}

TEST(FusedOps, SwigluHalvesEqualsSiluOfTheFirstHalfTimesTheSecond) {
  torch::manual_seed(4);
  for (int64_t I : {1, 7, 96, 131}) {
    auto x = torch::randn({5, 2 * I}) * 4, g = torch::randn({5, I});
    auto fused = run([](auto& in) { return fused::swiglu_halves(in[0]); }, {x}, g);
    auto ref = run([I](auto& in) { return torch::silu(in[0].narrow(1, 0, I)) * in[0].narrow(1, I, I); }, {x}, g);
    expect_same(fused, ref, 1e-6, "swiglu_halves I=" + std::to_string(I));
  }
}

TEST(FusedOps, RotaryEqualsApplyRotaryAndItsGradients) {
  torch::manual_seed(3);
  const int64_t B = 2, T = 9, H = 3, D = 10;
  // cos/sin of real positions (different per sequence), as the model passes them: [B, T, D].
  ModelConfig c;
  c.hidden_size = H * D;
  c.num_attention_heads = H;
  c.num_key_value_heads = H;
  c.head_dim = D;
  RotaryEmbedding rope(c);
  auto positions = torch::stack({torch::arange(T), torch::arange(T) + 5});
  auto [cos, sin] = rope.cos_sin(positions);  // [B, 1, T, D]
  auto x = torch::randn({B, T, H, D}), g = torch::randn({B, T, H, D});
  auto fused = run([&](auto& in) { return fused::rotary(in[0], cos.squeeze(1), sin.squeeze(1)); }, {x}, g);
  auto ref = run([&](auto& in) { return apply_rotary(in[0].transpose(1, 2), cos, sin).transpose(1, 2); }, {x}, g);
  expect_same(fused, ref, 1e-6, "rotary");
  // One position's cos/sin broadcast over the batch (expanded, not copied).
  torch::NoGradGuard no_grad;
  auto one = rope.cos_sin(torch::arange(T).unsqueeze(0));
  auto expanded = fused::rotary(x, one.first.squeeze(1).expand({B, T, D}), one.second.squeeze(1).expand({B, T, D}));
  auto reference = apply_rotary(x.transpose(1, 2), one.first, one.second).transpose(1, 2);
  EXPECT_LT(max_rel(expanded, reference), 1e-6);
}

TEST(FusedOps, AddRmsNormIsTheResidualAddThenTheNormBitForBit) {
  torch::manual_seed(11);
  const auto w = torch::randn({37}) + 1;
  for (const auto& shape : {std::vector<int64_t>{64, 1, 37}, std::vector<int64_t>{3, 5, 37}}) {
    const auto h = torch::randn(shape), delta = torch::randn(shape).transpose(0, 1).contiguous().transpose(0, 1);
    const auto want_sum = h + delta;
    const auto want_norm = torch::rms_norm(want_sum, {37}, w, 1e-6);
    torch::NoGradGuard no_grad;  // the one-pass kernel: decoding and evaluation
    const auto [sum, normed] = fused::add_rms_norm(h, delta, w, 1e-6);
    EXPECT_TRUE(torch::equal(sum, want_sum));
    EXPECT_TRUE(torch::equal(normed, fused::rms_norm(want_sum, w, 1e-6)));  // the same rows kernel
    EXPECT_LT(max_rel(normed, want_norm), 1e-6);
  }
  // With gradients recorded: the two ops under autograd, gradients through both outputs.
  auto h = torch::randn({4, 37}, torch::requires_grad()), delta = torch::randn({4, 37}, torch::requires_grad());
  const auto [sum, normed] = fused::add_rms_norm(h, delta, w, 1e-6);
  (sum.sum() + normed.pow(2).sum()).backward();
  auto h2 = h.detach().clone().requires_grad_(true), d2 = delta.detach().clone().requires_grad_(true);
  const auto sum2 = h2 + d2;
  (sum2.sum() + torch::rms_norm(sum2, {37}, w, 1e-6).pow(2).sum()).backward();
  EXPECT_LT(max_rel(h.grad(), h2.grad()), 1e-5);
  EXPECT_LT(max_rel(delta.grad(), d2.grad()), 1e-5);
}

TEST(FusedOps, KernelsSplitRowsAcrossThreads) {
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  EXPECT_EQ(r1::fused::parallel_threads_used(64), 2) << "fused_ops.cpp must be compiled with -fopenmp";
  at::set_num_threads(before);
}

TEST(ParallelRows, SplitsRowsAcrossThreadsFromAFileBuiltWithoutOpenMP) {
  // This test file is built without -fopenmp, like the engine: at::parallel_for here would run
  // every row on this thread; r1::parallel_rows must not.
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  std::vector<int> visits(64, 0);
  std::vector<char> seen(2, 0);
  r1::parallel_rows(0, 64, 1, [&](int64_t begin, int64_t end) {
    seen[static_cast<size_t>(at::get_thread_num())] = 1;
    for (int64_t i = begin; i < end; ++i) ++visits[static_cast<size_t>(i)];
  });
  EXPECT_EQ(seen, std::vector<char>({1, 1}));
  EXPECT_EQ(visits, std::vector<int>(64, 1));
  int chunks = 0;  // fewer rows than the grain: one chunk
  r1::parallel_rows(0, 10, 16, [&](int64_t begin, int64_t end) {
    chunks += 1;
    EXPECT_EQ(end - begin, 10);
  });
  EXPECT_EQ(chunks, 1);
  EXPECT_THROW(r1::parallel_rows(0, 8, 1, [](int64_t, int64_t) { throw std::runtime_error("row failed"); }),
               std::runtime_error);
  at::set_num_threads(before);
}

TEST(Bf16Matmul, LinearMultipliesBf16RoundedOperandsAndStaysFp32Outside) {
  torch::manual_seed(5);
  auto x = torch::randn({3, 7, 40}), w = torch::randn({24, 40}), b = torch::randn({24}), g = torch::randn({3, 7, 24});
  auto rounded = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat32); };
  // Outside the scope: libtorch's fp32 linear, bit for bit.
  EXPECT_TRUE(torch::equal(r1::linear(x, w, b), torch::nn::functional::linear(x, w, b)));
  std::vector<torch::Tensor> mixed;
  {
    CpuBf16MatmulScope scope(true);
    mixed = run([](std::vector<torch::Tensor>& in) { return r1::linear(in[0], in[1], in[2]); }, {x, w, b}, g);
  }
  EXPECT_EQ(mixed[0].scalar_type(), torch::kFloat32);
  // Reference: fp32 products of the bf16-rounded operands (the forward's x and w; the backward's
  // dy with w or x), so only the accumulation order and the bf16 rounding of the result differ.
  auto ref_y = torch::nn::functional::linear(rounded(x), rounded(w), b);
  auto ref_dx = torch::matmul(rounded(g), rounded(w));
  auto ref_dw = torch::mm(rounded(g).reshape({-1, 24}).t(), rounded(x).reshape({-1, 40}));
  expect_same(mixed, {ref_y, ref_dx, ref_dw, g.reshape({-1, 24}).sum(0)}, 1e-2, "bf16 linear");
  // ... and it is not the fp32 product (the operands really were rounded).
  EXPECT_GT(max_rel(mixed[0], torch::nn::functional::linear(x, w, b)), 1e-4);
  // The scope ends with its block.
  EXPECT_TRUE(torch::equal(r1::linear(x, w, b), torch::nn::functional::linear(x, w, b)));
}

TEST(FusedOps, OtherDtypesTakeTheCompositePath) {
  auto x = torch::randn({4, 16}, torch::kFloat64), w = torch::randn({16}, torch::kFloat64);
  EXPECT_FALSE(fused::applies(x));
  EXPECT_TRUE(fused::applies(x.to(torch::kFloat32)));
  EXPECT_TRUE(torch::allclose(fused::rms_norm(x, w, 1e-6), at::rms_norm(x, {16}, w, 1e-6)));
  EXPECT_EQ(fused::swiglu(x, x).scalar_type(), torch::kFloat64);
}

}  // namespace
}  // namespace r1

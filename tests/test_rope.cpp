// RoPE against its formulas, computed here independently in double precision.
#include <gtest/gtest.h>

#include <cmath>

#include "model/rope.h"
#include "test_helpers.h"

namespace r1 {
namespace {

constexpr double kPi = 3.14159265358979323846;

ModelConfig rope_config(int64_t head_dim, double base, int64_t max_pos, const std::string& type, double factor) {
  ModelConfig c = testing::tiny_config(1, 1);
  c.hidden_size = head_dim;
  c.head_dim = head_dim;
  c.rope_theta = base;
  c.max_position_embeddings = max_pos;
  c.rope_scaling.type = type;
  c.rope_scaling.factor = factor;
  return c;
}

std::vector<double> theta(double base, int64_t d) {
  std::vector<double> t;
  for (int64_t i = 0; i < d / 2; ++i) t.push_back(std::pow(base, -2.0 * i / d));
  return t;
}

void expect_close(const torch::Tensor& got, const std::vector<double>& want, double rel = 2e-6) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  auto g = got.to(torch::kFloat64).contiguous();
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(g[i].item<double>(), want[i], rel * std::abs(want[i])) << "index " << i;
}

TEST(Rope, DefaultAndLinear) {
  RotaryEmbedding plain(rope_config(128, 10000, 4096, "", 1.0));
  expect_close(plain.inv_freq(1), theta(10000, 128));
  // DeepSeek-Coder: base 1e5, factor 4: inv_freq_i = 1/(1e5^(2i/128)) / 4.
  RotaryEmbedding coder(rope_config(128, 100000, 16384, "linear", 4.0));
  auto want = theta(100000, 128);
  for (auto& w : want) w /= 4;
  expect_close(coder.inv_freq(1), want);
}

TEST(Rope, DynamicNtkGrowsTheBaseOnlyPastTheTrainedLength) {
  RotaryEmbedding dyn(rope_config(64, 10000, 256, "dynamic", 2.0));
  expect_close(dyn.inv_freq(256), theta(10000, 64));
  const double seq = 1000, f = 2.0, d = 64;
  const double base = 10000 * std::pow(f * seq / 256 - (f - 1), d / (d - 2));
  expect_close(dyn.inv_freq(1000), theta(base, 64));
}

TEST(Rope, YarnMatchesThePaperAndDeepSeekConstants) {
  // reference/deepseek-architecture.md 4.6: dim 64, base 1e4, L 4096, s 40 -> ramp over [10, 23].
  ModelConfig c = rope_config(64, 10000, 163840, "yarn", 40.0);
  c.rope_scaling.original_max_position_embeddings = 4096;
  RotaryEmbedding yarn(c);
  const auto t = theta(10000, 64);
  std::vector<double> want;
  for (int i = 0; i < 32; ++i) {
    const double ramp = std::clamp((i - 10.0) / (23.0 - 10.0), 0.0, 1.0);  // 0: keep, 1: interpolate
    want.push_back(t[i] / 40.0 * ramp + t[i] * (1 - ramp));
  }
  expect_close(yarn.inv_freq(1), want);
  EXPECT_NEAR(yarn.attention_factor(), 0.1 * std::log(40.0) + 1, 1e-12);
  // DeepSeek V3 sets mscale == mscale_all_dim: the cos/sin factor cancels to 1.
  c.rope_scaling.mscale = 1.0;
  c.rope_scaling.mscale_all_dim = 1.0;
  EXPECT_DOUBLE_EQ(RotaryEmbedding(c).attention_factor(), 1.0);
}

TEST(Rope, Llama3BlendsBetweenWavelengthBands) {
  ModelConfig c = rope_config(128, 500000, 131072, "llama3", 8.0);
  c.rope_scaling.original_max_position_embeddings = 8192;
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  RotaryEmbedding rope(c);
  std::vector<double> want;
  for (double f : theta(500000, 128)) {
    const double wavelen = 2 * kPi / f;
    if (wavelen < 8192.0 / 4) want.push_back(f);
    else if (wavelen > 8192.0 / 1) want.push_back(f / 8);
    else {
      const double smooth = (8192.0 / wavelen - 1) / (4 - 1);
      want.push_back((1 - smooth) * f / 8 + smooth * f);
    }
  }
  expect_close(rope.inv_freq(1), want, 1e-5);
}

TEST(Rope, RotationPreservesNormsAndDependsOnlyOnRelativePosition) {
  RotaryEmbedding rope(rope_config(16, 10000, 512, "", 1.0));
  auto q = torch::randn({1, 1, 1, 16});
  auto k = torch::randn({1, 1, 1, 16});
  auto rotate = [&](const torch::Tensor& x, int64_t pos) {
    auto [cos, sin] = rope.cos_sin(torch::tensor({{pos}}, torch::kInt64));
    return apply_rotary(x, cos, sin);
  };
  for (int64_t pos : {0, 1, 7, 300}) EXPECT_NEAR(rotate(q, pos).norm().item<double>(), q.norm().item<double>(), 1e-5);
  auto score = [&](int64_t m, int64_t n) { return (rotate(q, m) * rotate(k, n)).sum().item<double>(); };
  for (int64_t shift : {1, 5, 100}) {
    EXPECT_NEAR(score(3, 1), score(3 + shift, 1 + shift), 1e-4);
    EXPECT_NEAR(score(10, 10), score(10 + shift, 10 + shift), 1e-4);
  }
  EXPECT_GT(std::abs(score(3, 1) - score(3, 2)), 1e-3);  // ...but does depend on the distance
}

}  // namespace
}  // namespace r1

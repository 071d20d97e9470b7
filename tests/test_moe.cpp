// DeepSeekMoE routing and expert computation against the formulas of
// reference/deepseek-v3-architecture.md §4, written out here token by token with plain loops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "model/moe.h"
#include "test_helpers.h"

namespace r1 {
namespace {

MoeConfig v3_routing() { return {8, 1, 2, 16, 0, 4, 2, "noaux_tc", true, 2.5}; }

// The k best entries of `score` among `allowed`, by value.
std::vector<int64_t> best(const std::vector<double>& score, const std::vector<bool>& allowed, int64_t k) {
  std::vector<int64_t> idx;
  for (size_t e = 0; e < score.size(); ++e)
    if (allowed[e]) idx.push_back(static_cast<int64_t>(e));
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  idx.resize(k);
  return idx;
}

struct Expected {
  std::set<int64_t> experts;
  std::map<int64_t, double> weight;
};

// One token's routing, loop by loop: V3 (sigmoid, bias for choice, groups by their two best) or V2
// (softmax, groups by their best, or no groups).
Expected route_one(const std::vector<double>& logits, const std::vector<double>& bias, const MoeConfig& moe) {
  const int64_t E = static_cast<int64_t>(logits.size()), per = E / moe.n_group;
  const bool v3 = moe.topk_method == "noaux_tc";
  std::vector<double> score(E), choice(E);
  double z = 0;
  for (double l : logits) z += std::exp(l);
  for (int64_t e = 0; e < E; ++e) {
    score[e] = v3 ? 1 / (1 + std::exp(-logits[e])) : std::exp(logits[e]) / z;
    choice[e] = score[e] + (v3 ? bias[e] : 0.0);
  }
  std::vector<bool> allowed(E, true);
  if (moe.topk_method != "greedy") {
    std::vector<double> group_score(moe.n_group);
    for (int64_t g = 0; g < moe.n_group; ++g) {
      std::vector<double> in(choice.begin() + g * per, choice.begin() + (g + 1) * per);
      std::sort(in.rbegin(), in.rend());
      group_score[g] = v3 ? in[0] + in[1] : in[0];
    }
    const auto groups = best(group_score, std::vector<bool>(moe.n_group, true), moe.topk_group);
    for (int64_t e = 0; e < E; ++e)
      allowed[e] = std::find(groups.begin(), groups.end(), e / per) != groups.end();
  }
  Expected out;
  double sum = 0;
  for (int64_t e : best(choice, allowed, moe.num_experts_per_tok)) {
    out.experts.insert(e);
    out.weight[e] = score[e];
    sum += score[e];
  }
  for (auto& [e, w] : out.weight) w = (moe.norm_topk_prob ? w / sum : w) * moe.routed_scaling_factor;
  return out;
}

void expect_routing_matches_loops(const MoeConfig& moe, uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t N = 64, E = moe.n_routed_experts;
  const auto logits = torch::randn({N, E}) * 2, bias = torch::randn({E}) * 0.3;
  const Routing r = route_tokens(logits, moe.topk_method == "noaux_tc" ? bias : torch::Tensor(), moe);
  ASSERT_EQ(r.experts.sizes(), (torch::IntArrayRef{N, moe.num_experts_per_tok}));
  const std::vector<double> b(bias.data_ptr<float>(), bias.data_ptr<float>() + E);
  for (int64_t t = 0; t < N; ++t) {
    const auto row = logits[t].to(torch::kFloat64).contiguous();
    const Expected want = route_one(std::vector<double>(row.data_ptr<double>(), row.data_ptr<double>() + E), b, moe);
    std::set<int64_t> got;
    for (int64_t j = 0; j < moe.num_experts_per_tok; ++j) {
      const int64_t e = r.experts[t][j].item<int64_t>();
      got.insert(e);
      ASSERT_TRUE(want.weight.count(e)) << "token " << t << " went to expert " << e;
      EXPECT_NEAR(r.weights[t][j].item<double>(), want.weight.at(e), 1e-5) << "token " << t << " expert " << e;
    }
    EXPECT_EQ(got, want.experts) << "token " << t;
  }
}

TEST(MoeRouting, V3MatchesTheFormulaTokenByToken) { expect_routing_matches_loops(v3_routing(), 1); }

TEST(MoeRouting, V2GroupLimitedAndGreedyMatchTheFormula) {
  MoeConfig grouped{8, 2, 3, 16, 0, 4, 2, "group_limited_greedy", false, 16.0};
  expect_routing_matches_loops(grouped, 2);
  MoeConfig greedy{8, 2, 3, 16, 0, 1, 1, "greedy", false, 1.0};
  expect_routing_matches_loops(greedy, 3);
}

TEST(MoeRouting, TheBiasChoosesButDoesNotWeigh) {
  // A large bias on expert 5 puts it in every token's choice; its weight stays the unbiased score.
  const MoeConfig moe = v3_routing();
  torch::manual_seed(4);
  const auto logits = torch::randn({32, 8});
  auto bias = torch::zeros({8});
  bias[5] = 10.0;
  const Routing with = route_tokens(logits, bias, moe);
  EXPECT_TRUE((with.experts == 5).any(1).all().item<bool>());
  const auto scores = logits.sigmoid();
  const auto chosen = scores.gather(1, with.experts);
  EXPECT_TRUE(torch::allclose(with.weights, chosen / chosen.sum(1, true) * 2.5, 1e-5, 1e-6));
  // Negative biased scores still beat excluded groups (masked with -inf, not 0).
  const Routing negative = route_tokens(logits, torch::full({8}, -5.0), moe);
  EXPECT_TRUE(torch::equal(std::get<0>(negative.experts.sort(1)), std::get<0>(route_tokens(logits, {}, moe).experts.sort(1))));
}

TEST(Moe, OutputIsTheWeightedSumOfChosenExpertsPlusShared) {
  ModelConfig c = testing::tiny_deepseek_config();
  c.moe.first_k_dense_replace = 0;
  torch::manual_seed(6);
  Moe moe(c, torch::kFloat32);
  {
    torch::NoGradGuard g;
    for (auto& p : moe->parameters())
      if (p.requires_grad()) p.normal_(0, 0.3);
    moe->gate->e_score_correction_bias.normal_(0, 0.1);
  }
  const auto x = torch::randn({2, 5, c.hidden_size}, torch::requires_grad());
  const auto y = moe(x);
  const auto flat = x.reshape({-1, c.hidden_size});
  const Routing r = moe->gate(flat);
  for (int64_t t = 0; t < flat.size(0); ++t) {
    auto want = moe->shared_experts(flat[t].unsqueeze(0))[0];
    for (int64_t j = 0; j < c.moe.num_experts_per_tok; ++j) {
      const int64_t e = r.experts[t][j].item<int64_t>();
      want = want + r.weights[t][j] * moe->experts->expert(e, flat[t].unsqueeze(0))[0];
    }
    EXPECT_TRUE(torch::allclose(y.reshape({-1, c.hidden_size})[t], want, 1e-5, 1e-5)) << "token " << t;
  }
  // Every token counted once per chosen expert; gradients reach the router and the used experts only.
  const auto load = moe->take_load();
  EXPECT_EQ(std::accumulate(load.begin(), load.end(), int64_t{0}), 10 * c.moe.num_experts_per_tok);
  y.pow(2).sum().backward();
  EXPECT_GT(moe->gate->weight.grad().abs().sum().item<double>(), 0);
  EXPECT_FALSE(moe->gate->e_score_correction_bias.grad().defined());
  for (int64_t e = 0; e < c.moe.n_routed_experts; ++e) {
    const auto g = moe->experts->down_proj.grad()[e];
    EXPECT_EQ(g.abs().sum().item<double>() > 0, load[e] > 0) << "expert " << e;
  }
}

}  // namespace
}  // namespace r1

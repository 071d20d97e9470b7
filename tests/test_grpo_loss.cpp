// The GRPO loss math on small tensors against values computed here by hand (scalar formulas),
// for each aggregation, reward scaling, clip and clip-higher, sequence-level ratio, k3 KL and
// masking; and the on-policy gradient against REINFORCE with the group baseline.
#include <gtest/gtest.h>

#include <cmath>

#include "expect_error.h"
#include "rl/grpo_loss.h"

namespace r1 {
namespace {

using testing::expect_error;

torch::Tensor t2(std::vector<std::vector<double>> rows) {
  std::vector<torch::Tensor> r;
  for (auto& row : rows) r.push_back(torch::tensor(row, torch::kFloat64));
  return torch::stack(r);
}

TEST(GrpoLoss, AdvantagesByGroupBatchOrNone) {
  const auto rewards = t2({{1, 0, 0, 1}, {1, 1, 1, 1}});
  const double group_std = std::sqrt(4 * 0.25 / 3);  // unbiased std of {1, 0, 0, 1}
  auto a = group_advantages(rewards, "group");
  EXPECT_NEAR(a[0][0].item<double>(), 0.5 / (group_std + 1e-4), 1e-12);
  EXPECT_NEAR(a[0][1].item<double>(), -0.5 / (group_std + 1e-4), 1e-12);
  // Equal rewards: advantages exactly 0, no NaN.
  EXPECT_TRUE(torch::equal(a[1], torch::zeros({4}, torch::kFloat64)));
  auto none = group_advantages(rewards, "none");
  EXPECT_DOUBLE_EQ(none[0][0].item<double>(), 0.5);
  EXPECT_DOUBLE_EQ(none[1][2].item<double>(), 0.0);
  // Batch: the std over all 8 rewards (six 1s and two 0s: mean 0.75).
  const double batch_std = std::sqrt((6 * 0.0625 + 2 * 0.5625) / 7);
  auto b = group_advantages(rewards, "batch");
  EXPECT_NEAR(b[0][1].item<double>(), -0.5 / (batch_std + 1e-4), 1e-12);
  expect_error([&] { group_advantages(rewards, "z"); }, "--scale-rewards");
  expect_error([&] { group_advantages(t2({{1}}), "group"); }, "at least 2");
}

struct Example {
  torch::Tensor logp = t2({{-1, -2, -3}, {-1, -1, 0}});
  torch::Tensor old = t2({{-1.1, -2, -2.5}, {-1, -1.5, 0}});
  torch::Tensor mask = t2({{1, 1, 1}, {1, 1, 0}});
  torch::Tensor adv = torch::tensor({1.0, -1.0}, torch::kFloat64);
};

// -min(r A, clip(r) A) for one token, by hand.
double token_loss(double logp, double old, double a, double lo, double hi) {
  const double r = std::exp(logp - old);
  return -std::min(r * a, std::min(std::max(r, 1 - lo), 1 + hi) * a);
}

TEST(GrpoLoss, AggregationsMatchHandComputedValues) {
  Example e;
  const double l00 = token_loss(-1, -1.1, 1, 0.2, 0.2), l01 = token_loss(-2, -2, 1, 0.2, 0.2),
               l02 = token_loss(-3, -2.5, 1, 0.2, 0.2), l10 = token_loss(-1, -1, -1, 0.2, 0.2),
               l11 = token_loss(-1, -1.5, -1, 0.2, 0.2);
  GrpoLossOptions o;
  EXPECT_NEAR(grpo_loss(e.logp, e.old, {}, e.adv, e.mask, o).loss.item<double>(),
              ((l00 + l01 + l02) / 3 + (l10 + l11) / 2) / 2, 1e-12);
  o.loss_agg = "token-mean";
  EXPECT_NEAR(grpo_loss(e.logp, e.old, {}, e.adv, e.mask, o).loss.item<double>(), (l00 + l01 + l02 + l10 + l11) / 5, 1e-12);
  o.loss_agg = "seq-mean-token-sum-norm";
  o.max_completion_length = 4;
  EXPECT_NEAR(grpo_loss(e.logp, e.old, {}, e.adv, e.mask, o).loss.item<double>(), (l00 + l01 + l02 + l10 + l11) / 8, 1e-12);
  // The clipped token: ratio exp(-0.5) = 0.61 < 0.8 with A > 0 keeps the unclipped (smaller) term.
  EXPECT_NEAR(l02, -std::exp(-0.5), 1e-12);
  EXPECT_NEAR(l11, std::exp(0.5), 1e-12);  // A < 0, ratio 1.65: the pessimistic min keeps 1.65
  o.loss_agg = "mean";
  expect_error([&] { grpo_loss(e.logp, e.old, {}, e.adv, e.mask, o); }, "--loss-agg");
}

TEST(GrpoLoss, ClipFractionsAndClipHigher) {
  // One sequence, A > 0, ratios 1.25 (above 1.2) and 0.7 (below 0.8); another with A < 0.
  const auto logp = t2({{std::log(1.25), std::log(0.7)}, {std::log(0.7), std::log(1.25)}});
  const auto old = torch::zeros({2, 2}, torch::kFloat64);
  const auto mask = torch::ones({2, 2}, torch::kFloat64);
  const auto adv = torch::tensor({1.0, -1.0}, torch::kFloat64);
  GrpoLossOptions o;
  auto t = grpo_loss(logp, old, {}, adv, mask, o);
  EXPECT_DOUBLE_EQ(t.clip_high.item<double>(), 0.25);  // 1.25 with A > 0
  EXPECT_DOUBLE_EQ(t.clip_low.item<double>(), 0.25);   // 0.7 with A < 0
  EXPECT_NEAR(t.loss.item<double>(), ((-1.2 - 0.7) / 2 + (0.8 + 1.25) / 2) / 2, 1e-12);
  o.epsilon_high = 0.28;  // DAPO clip-higher: 1.25 is no longer clipped
  t = grpo_loss(logp, old, {}, adv, mask, o);
  EXPECT_DOUBLE_EQ(t.clip_high.item<double>(), 0.0);
  EXPECT_NEAR(t.loss.item<double>(), ((-1.25 - 0.7) / 2 + (0.8 + 1.25) / 2) / 2, 1e-12);
}

TEST(GrpoLoss, SequenceLevelRatio) {
  Example e;
  GrpoLossOptions o;
  o.importance_level = "sequence";
  // GSPO: one ratio per sequence, exp of the mean log-ratio over its real tokens.
  const double r0 = std::exp((0.1 + 0 - 0.5) / 3), r1 = std::exp((0 + 0.5) / 2);
  const double l0 = -std::min(r0, std::min(std::max(r0, 0.8), 1.2)), l1 = std::max(r1, std::min(std::max(r1, 0.8), 1.2));
  EXPECT_NEAR(grpo_loss(e.logp, e.old, {}, e.adv, e.mask, o).loss.item<double>(), (l0 + l1) / 2, 1e-12);
}

TEST(GrpoLoss, K3KlIsZeroAtTheReferenceAndAddsBetaTimesIt) {
  Example e;
  GrpoLossOptions o;
  o.beta = 0.1;
  auto same = grpo_loss(e.logp, e.logp, e.logp, e.adv, e.mask, o);
  EXPECT_DOUBLE_EQ(same.kl.item<double>(), 0.0);
  const auto ref = e.logp + 0.5;  // ref - logp = 0.5 everywhere
  const double k3 = std::exp(0.5) - 0.5 - 1;
  auto with = grpo_loss(e.logp, e.logp, ref, e.adv, e.mask, o);
  EXPECT_NEAR(with.kl.item<double>(), k3, 1e-12);
  // On-policy ratio 1: per-token loss -A + beta k3; the sequence mean of each, averaged.
  EXPECT_NEAR(with.loss.item<double>(), ((-1 + 0.1 * k3) + (1 + 0.1 * k3)) / 2, 1e-12);
  expect_error([&] { grpo_loss(e.logp, e.logp, {}, e.adv, e.mask, o); }, "reference log-probs");
}

TEST(GrpoLoss, RolloutCorrectionWeightsByHand) {
  // Trained minus sampled log-probs per token: ln 3, ln 0.5, 0 (row 0); ln 1.5, ln 4, padding (row 1).
  const auto old = t2({{std::log(3.0), std::log(0.5), 0}, {std::log(1.5), std::log(4.0), 7}});
  const auto sampled = torch::zeros({2, 3}, torch::kFloat64);
  const auto mask = t2({{1, 1, 1}, {1, 1, 0}});
  GrpoLossOptions o;
  EXPECT_FALSE(rollout_correction(old, sampled, mask, o).defined());  // "none"
  o.rollout_correction_max = 2;
  const auto w = [&](const char* mode, double min = 0) {
    o.rollout_correction = mode;
    o.rollout_correction_min = min;
    return rollout_correction(old, sampled, mask, o);
  };
  // Padding counts as a log-ratio of 0: weight 1 (and the loss masks it anyway).
  EXPECT_TRUE(torch::allclose(w("token-truncate"), t2({{2, 0.5, 1}, {1.5, 2, 1}})));
  EXPECT_TRUE(torch::allclose(w("token-truncate", 0.6), t2({{2, 0.6, 1}, {1.5, 2, 1}})));
  EXPECT_TRUE(torch::allclose(w("token-mask"), t2({{0, 0.5, 1}, {1.5, 0, 1}})));
  EXPECT_TRUE(torch::allclose(w("token-mask", 0.6), t2({{0, 0, 1}, {1.5, 0, 1}})));
  // Per sequence: exp of the summed log-ratios, 3 x 0.5 x 1 = 1.5 and 1.5 x 4 = 6.
  EXPECT_TRUE(torch::allclose(w("sequence-truncate"), t2({{1.5, 1.5, 1.5}, {2, 2, 2}})));
  EXPECT_TRUE(torch::allclose(w("sequence-mask"), t2({{1.5, 1.5, 1.5}, {0, 0, 0}})));
  o.rollout_correction = "tokens";
  expect_error([&] { rollout_correction(old, sampled, mask, o); }, "--rollout-correction");
  o.rollout_correction = "token-mask";
  o.rollout_correction_min = 3;
  expect_error([&] { rollout_correction(old, sampled, mask, o); }, "min < max");
}

TEST(GrpoLoss, RolloutWeightScalesTheSurrogateNotTheKl) {
  Example e;
  const auto ref = t2({{-1.2, -2.1, -2.8}, {-0.9, -1.2, 0}});
  const auto weight = t2({{2, 0.5, 1}, {0, 3, 1}});
  GrpoLossOptions o;
  o.loss_agg = "token-mean";
  o.beta = 0.1;
  const double k3[2][3] = {{std::exp(-0.2) + 0.2 - 1, std::exp(-0.1) + 0.1 - 1, std::exp(0.2) - 0.2 - 1},
                           {std::exp(0.1) - 0.1 - 1, std::exp(-0.2) + 0.2 - 1, 0}};
  double expected = 0;
  const double lp[2][3] = {{-1, -2, -3}, {-1, -1, 0}}, od[2][3] = {{-1.1, -2, -2.5}, {-1, -1.5, 0}};
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < (b == 0 ? 3 : 2); ++t)
      expected += weight[b][t].item<double>() * token_loss(lp[b][t], od[b][t], b == 0 ? 1 : -1, 0.2, 0.2) +
                  0.1 * k3[b][t];
  EXPECT_NEAR(grpo_loss(e.logp, e.old, ref, e.adv, e.mask, o, weight).loss.item<double>(), expected / 5, 1e-12);
  expect_error([&] { grpo_loss(e.logp, e.old, ref, e.adv, e.mask, o, weight.narrow(1, 0, 2)); }, "rollout_weight");
  o.off_policy_mask = 0.1;  // needs the sampler's log-probs
  expect_error([&] { grpo_loss(e.logp, e.old, ref, e.adv, e.mask, o); }, "sampler's log-probs");
  o.off_policy_mask = -1;
  expect_error([&] { grpo_loss(e.logp, e.old, ref, e.adv, e.mask, o); }, "--off-policy-mask");
}

TEST(GrpoLoss, TwoSidedClipAndCispoByHand) {
  Example e;  // token (0, 2): ratio exp(-0.5) with A = 1; token (1, 1): ratio exp(0.5) = 1.65 with A = -1
  GrpoLossOptions o;
  o.loss_agg = "token-mean";
  o.delta = 1.5;  // caps the unclipped 1.65 of the negative-advantage token: -min(1.5 x -1, 1.2 x -1) = 1.5
  const double base = token_loss(-1, -1.1, 1, 0.2, 0.2) + token_loss(-2, -2, 1, 0.2, 0.2) +
                      token_loss(-3, -2.5, 1, 0.2, 0.2) + token_loss(-1, -1, -1, 0.2, 0.2);
  EXPECT_NEAR(grpo_loss(e.logp, e.old, {}, e.adv, e.mask, o).loss.item<double>(), (base + 1.5) / 5, 1e-12);
  // CISPO: -min(ratio, eps_high) x A x logp, the weight without gradient: d/d logp = -min(ratio, eps_high) x A.
  o.delta = 0;
  o.surrogate = "cispo";
  // The clip surrogate's epsilon-high (0.2 by default) would cap every weight at 0.2: refused.
  o.epsilon_high = 0.2;
  expect_error([&] { grpo_loss(e.logp, e.old, {}, e.adv, e.mask, o); }, "must be > 1");
  o.epsilon_high = 1.0;
  expect_error([&] { grpo_loss(e.logp, e.old, {}, e.adv, e.mask, o); }, "must be > 1");
  o.epsilon_high = 1.5;
  const auto logp = e.logp.clone().requires_grad_(true);
  const auto loss = grpo_loss(logp, e.old, {}, e.adv, e.mask, o).loss;
  loss.backward();
  const double r[2][3] = {{std::exp(0.1), 1, std::exp(-0.5)}, {1, std::min(std::exp(0.5), 1.5), 0}};
  const double lp[2][3] = {{-1, -2, -3}, {-1, -1, 0}};
  double expected = 0;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < (b == 0 ? 3 : 2); ++t) {
      const double a = b == 0 ? 1 : -1;
      expected += -r[b][t] * a * lp[b][t];
      EXPECT_NEAR(logp.grad()[b][t].item<double>(), -r[b][t] * a / 5, 1e-12) << b << "," << t;
    }
  EXPECT_NEAR(loss.item<double>(), expected / 5, 1e-12);
  o.surrogate = "clip";
  o.delta = 1.1;  // not above 1 + eps_high
  expect_error([&] { grpo_loss(e.logp, e.old, {}, e.adv, e.mask, o); }, "--delta must exceed");
  o.delta = 0;
  o.surrogate = "ppo";
  expect_error([&] { grpo_loss(e.logp, e.old, {}, e.adv, e.mask, o); }, "--surrogate");
}

TEST(GrpoLoss, OnPolicyGradientIsReinforceWithTheGroupBaseline) {
  // mu = 1: old = logp (detached), ratio exactly 1, and d loss / d logp_t = -A_i / n_i / B.
  Example e;
  auto logp = e.logp.clone().requires_grad_(true);
  auto t = grpo_loss(logp, logp.detach(), {}, e.adv, e.mask, GrpoLossOptions{});
  EXPECT_DOUBLE_EQ(t.ratio_mean.item<double>(), 1.0);
  t.loss.backward();
  const auto want = t2({{-1.0 / 3 / 2, -1.0 / 3 / 2, -1.0 / 3 / 2}, {1.0 / 2 / 2, 1.0 / 2 / 2, 0}});
  EXPECT_TRUE(torch::allclose(logp.grad(), want, 1e-12, 1e-14)) << logp.grad();
  // The REINFORCE loss -sum A_i mean_t logp gives the same gradient.
  auto p2 = e.logp.clone().requires_grad_(true);
  auto reinforce = -((p2 * e.mask).sum(1) / e.mask.sum(1) * e.adv).mean();
  reinforce.backward();
  EXPECT_TRUE(torch::allclose(logp.grad(), p2.grad(), 1e-12, 1e-14));
}

TEST(GrpoLoss, MaskedTokensDoNotCount) {
  Example e;
  auto changed = e.logp.clone();
  changed[1][2] = -50;  // a padding position
  auto a = grpo_loss(e.logp, e.old, {}, e.adv, e.mask, GrpoLossOptions{});
  auto b = grpo_loss(changed, e.old, {}, e.adv, e.mask, GrpoLossOptions{});
  EXPECT_DOUBLE_EQ(a.loss.item<double>(), b.loss.item<double>());
  // A fully masked sequence (a truncated completion with --mask-truncated) adds nothing and no NaN.
  auto mask = e.mask.clone();
  mask[1].zero_();
  auto c = grpo_loss(e.logp, e.old, {}, e.adv, mask, GrpoLossOptions{});
  EXPECT_FALSE(std::isnan(c.loss.item<double>()));
}

}  // namespace
}  // namespace r1

// The fused shared-prompt attention (model/prefix_attention.h) against a plain reference computed
// here in float64 with a dense mask built from the layout's definition: prompt tokens see their own
// segment causally; completion tokens see the first `visible` tokens of their group's prompt, then
// their own segment causally. Outputs and the gradients of q, k and v are compared, with grouped
// queries, prompts whose tail is hidden from completions, empty completions and 1 or 2 threads.
#include <gtest/gtest.h>

#include "model/prefix_attention.h"

namespace r1 {
namespace {

using fused::PrefixLayout;

PrefixLayout make_layout(const std::vector<int64_t>& prompt_len, const std::vector<int64_t>& visible,
                         const std::vector<int64_t>& completion_len, const std::vector<int64_t>& group) {
  return PrefixLayout::of(prompt_len, visible, completion_len, group);
}

// mask [T, T]: may query i see key j.
torch::Tensor dense_mask(const PrefixLayout& l) {
  auto mask = torch::zeros({l.tokens, l.tokens}, torch::kBool);
  for (size_t p = 0; p < l.prompt_start.size(); ++p)
    for (int64_t t = 0; t < l.prompt_len[p]; ++t)
      mask[l.prompt_start[p] + t].narrow(0, l.prompt_start[p], t + 1).fill_(true);
  for (size_t r = 0; r < l.group.size(); ++r) {
    const int64_t p = l.group[r], cs = l.completion_start[r];
    for (int64_t t = 0; t < l.completion_len[r]; ++t) {
      if (l.prompt_visible[p] > 0) mask[cs + t].narrow(0, l.prompt_start[p], l.prompt_visible[p]).fill_(true);
      mask[cs + t].narrow(0, cs, t + 1).fill_(true);
    }
  }
  return mask;
}

torch::Tensor reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const PrefixLayout& l) {
  const int64_t H = q.size(1), KV = k.size(1), D = q.size(2);
  const auto kk = k.repeat_interleave(H / KV, 1), vv = v.repeat_interleave(H / KV, 1);  // [T, H, D]
  auto scores = torch::einsum("ihd,jhd->hij", {q, kk}) / std::sqrt(static_cast<double>(D));
  scores = scores.masked_fill(dense_mask(l).logical_not().unsqueeze(0), -std::numeric_limits<double>::infinity());
  return torch::einsum("hij,jhd->ihd", {torch::softmax(scores, -1), vv});
}

struct Case {
  std::vector<int64_t> prompt_len, visible, completion_len, group;
  int64_t H, KV, D;
  int threads;
};

void check(const Case& c) {
  SCOPED_TRACE("H=" + std::to_string(c.H) + " KV=" + std::to_string(c.KV) + " D=" + std::to_string(c.D) +
               " threads=" + std::to_string(c.threads));
  const int before = at::get_num_threads();
  at::set_num_threads(c.threads);
  torch::manual_seed(3);
  const PrefixLayout l = make_layout(c.prompt_len, c.visible, c.completion_len, c.group);
  auto q = torch::randn({l.tokens, c.H, c.D}).requires_grad_(), k = torch::randn({l.tokens, c.KV, c.D}).requires_grad_(),
       v = torch::randn({l.tokens, c.KV, c.D}).requires_grad_();
  const auto weights = torch::randn({l.tokens, c.H, c.D});  // a loss that weighs every output differently
  const auto out = fused::prefix_attention(q, k, v, l);
  const auto grads = torch::autograd::grad({(out * weights).sum()}, {q, k, v});
  auto q64 = q.detach().to(torch::kFloat64).requires_grad_(), k64 = k.detach().to(torch::kFloat64).requires_grad_(),
       v64 = v.detach().to(torch::kFloat64).requires_grad_();
  const auto expected = reference(q64, k64, v64, l);
  const auto expected_grads = torch::autograd::grad({(expected * weights.to(torch::kFloat64)).sum()}, {q64, k64, v64});
  EXPECT_LT((out.to(torch::kFloat64) - expected).abs().max().item<double>(), 1e-5) << "forward";
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i)
    EXPECT_LT((grads[i].to(torch::kFloat64) - expected_grads[i]).abs().max().item<double>(),
              1e-5 * (1 + expected_grads[i].abs().max().item<double>()))
        << names[i];
  at::set_num_threads(before);
}

TEST(PrefixAttention, EqualsMaskedAttentionAndItsGradients) {
  // Two prompts of 3 and 5 tokens (all visible: padding skipped), completions of 4, 1, 0 and 6 tokens.
  for (int threads : {1, 2}) {
    check({{3, 5}, {3, 5}, {4, 1, 0, 6}, {0, 0, 1, 1}, 4, 2, 16, threads});  // GQA, D one 16-lane vector
    check({{3, 5}, {3, 5}, {4, 1, 0, 6}, {0, 0, 1, 1}, 4, 4, 32, threads});
  }
  // Padded prompts (every position computed): a prompt's tail past `visible` is hidden from its
  // completions; a head size that is no multiple of 16 takes the kernels' scalar tail; three groups
  // with completions out of group order.
  check({{5, 5, 5}, {2, 5, 4}, {3, 3, 7, 2, 5}, {2, 0, 1, 0, 2}, 6, 3, 20, 2});
}

TEST(PrefixAttention, PaysForFewKeysPerQueryOnly) {
  // The demo: 12-token prompts, 8 answers of ~20 tokens (~22 keys a query on average).
  EXPECT_TRUE(fused::prefix_attention_pays(make_layout({12}, {12}, std::vector<int64_t>(8, 20), std::vector<int64_t>(8, 0))));
  // The R1-Zero template: a 300-token prompt seen by every answer token.
  EXPECT_FALSE(fused::prefix_attention_pays(make_layout({300}, {300}, std::vector<int64_t>(8, 77), std::vector<int64_t>(8, 0))));
  // Long answers alone (~40 keys a query) do not pay either; empty layouts do not divide by zero.
  EXPECT_FALSE(fused::prefix_attention_pays(make_layout({8}, {8}, std::vector<int64_t>(8, 72), std::vector<int64_t>(8, 0))));
  EXPECT_TRUE(fused::prefix_attention_pays(PrefixLayout{}));
}

TEST(PrefixAttention, ALayoutThatDoesNotTileTheTokensIsAnError) {
  const auto q = torch::randn({7, 2, 8}), kv = torch::randn({7, 1, 8});
  EXPECT_NO_THROW(fused::prefix_attention(q, kv, kv, make_layout({3}, {3}, {4}, {0})));
  EXPECT_THROW(fused::prefix_attention(q, kv, kv, make_layout({3}, {3}, {3}, {0})), std::exception);  // 6 of 7
  EXPECT_THROW(fused::prefix_attention(q, kv, kv, make_layout({3}, {4}, {4}, {0})), std::exception);  // visible > len
  EXPECT_THROW(fused::prefix_attention(q, kv, kv, make_layout({3}, {3}, {4}, {1})), std::exception);  // no group 1
  EXPECT_THROW(fused::prefix_attention(q, torch::randn({7, 3, 8}), torch::randn({7, 3, 8}), make_layout({3}, {3}, {4}, {0})),
               std::exception);  // 2 query heads over 3 kv heads
  EXPECT_THROW(fused::prefix_attention(q.to(torch::kFloat64), kv.to(torch::kFloat64), kv.to(torch::kFloat64),
                                       make_layout({3}, {3}, {4}, {0})),
               std::exception);
}

}  // namespace
}  // namespace r1

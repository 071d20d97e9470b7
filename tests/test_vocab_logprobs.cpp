// vocab_logprobs (model/vocab_logprobs.h) against libtorch's own log_softmax over the whole
// [tokens, vocabulary] logits: values, entropy and the gradients of hidden states and head weight,
// with a support smaller than the head (a padded vocabulary), a temperature, chunks that do not
// divide the rows, and bf16 products.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "model/vocab_logprobs.h"

namespace r1 {
namespace {

struct Reference {
  torch::Tensor logp, entropy, grad_hidden, grad_weight;
};

// The direct computation, and the gradients of sum(logp * g), in float64 so that the reference does not
// depend on how this CPU's BLAS rounds float32 products (MKL's kernels differ between vendors).
Reference reference(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                    int64_t vocab, double temperature, const torch::Tensor& g) {
  auto h = hidden.detach().to(torch::kFloat64).requires_grad_(true);
  auto w = weight.detach().to(torch::kFloat64).requires_grad_(true);
  const auto all = torch::log_softmax(torch::matmul(h, w.narrow(0, 0, vocab).t()) / temperature, -1);
  Reference r;
  r.logp = all.gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  r.entropy = -(all.exp() * all).sum(-1).detach();
  (r.logp * g.to(torch::kFloat64)).sum().backward();
  r.logp = r.logp.detach();
  r.grad_hidden = h.grad();
  r.grad_weight = w.grad();
  return r;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b).abs().max().item<double>();
}

TEST(VocabLogprobs, EqualsTheFullLogSoftmaxAndItsGradients) {
  torch::manual_seed(0);
  const int64_t N = 37, H = 24, V = 101, vocab = 90;  // rows 90..100 of the head: padding, never sampled
  const auto hidden = torch::randn({N, H}), weight = torch::randn({V, H}) * 0.3;
  const auto targets = torch::randint(vocab, {N});
  const auto g = torch::randn({N});
  for (const int64_t chunk : {1, 8, 37, 1024})
    for (const double temperature : {1.0, 0.7}) {
      SCOPED_TRACE("chunk " + std::to_string(chunk) + ", temperature " + std::to_string(temperature));
      const Reference want = reference(hidden, weight, targets, vocab, temperature, g);
      auto h = hidden.clone().requires_grad_(true), w = weight.clone().requires_grad_(true);
      auto [logp, entropy] = vocab_logprobs(h, w, targets, vocab, temperature, false, chunk);
      // float32 rounding: about 1e-6 with MKL on Intel, 1.7e-4 seen for an entropy on another CI machine; a
      // wrong temperature, the padded rows inside the support or a row shifted by a chunk boundary move
      // these by more than 0.3.
      EXPECT_LT(max_diff(logp, want.logp), 1e-3);
      EXPECT_LT(max_diff(entropy, want.entropy), 1e-3);
      EXPECT_FALSE(entropy.requires_grad());
      (logp * g).sum().backward();
      EXPECT_LT(max_diff(h.grad(), want.grad_hidden), 1e-4);
      EXPECT_LT(max_diff(w.grad(), want.grad_weight), 1e-4);
      EXPECT_EQ(w.grad().narrow(0, vocab, V - vocab).abs().max().item<float>(), 0.0f);  // outside the support
      auto [same_logp, no_entropy] = vocab_logprobs(hidden, weight, targets, vocab, temperature, false, chunk, false);
      EXPECT_TRUE(torch::equal(same_logp, logp.detach()));
      EXPECT_EQ(no_entropy.abs().max().item<float>(), 0.0f);  // not computed
    }
}

TEST(VocabLogprobs, Bfloat16ProductsStayClose) {
  torch::manual_seed(1);
  const int64_t N = 20, H = 32, V = 64;
  const auto hidden = torch::randn({N, H}), weight = torch::randn({V, H}) * 0.2;
  const auto targets = torch::randint(V, {N});
  const auto g = torch::ones({N});
  const Reference want = reference(hidden, weight, targets, V, 1.0, g);
  auto h = hidden.clone().requires_grad_(true), w = weight.clone().requires_grad_(true);
  auto [logp, entropy] = vocab_logprobs(h, w, targets, V, 1.0, true, 7);
  EXPECT_EQ(logp.scalar_type(), torch::kFloat32);
  EXPECT_LT(max_diff(logp, want.logp), 0.05);
  EXPECT_GT(max_diff(logp, want.logp), 0.0);  // the products really ran in bf16
  logp.sum().backward();
  EXPECT_LT(max_diff(h.grad(), want.grad_hidden), 0.05 * want.grad_hidden.abs().max().item<double>());
}

}  // namespace
}  // namespace r1

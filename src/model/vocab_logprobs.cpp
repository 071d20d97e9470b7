#include "model/vocab_logprobs.h"

#include <algorithm>
#include <cstdlib>

namespace r1 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One chunk's logits [n, vocab] in float32, divided by the temperature.
torch::Tensor chunk_logits(const torch::Tensor& h, const torch::Tensor& w, double temperature, bool bf16) {
  const auto product = bf16 ? torch::matmul(h.to(torch::kBFloat16), w.to(torch::kBFloat16).t())
                            : torch::matmul(h, w.to(h.scalar_type()).t());
  return product.to(torch::kFloat32) / temperature;
}

struct VocabLogprobs : public torch::autograd::Function<VocabLogprobs> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& hidden, const torch::Tensor& weight,
                               const torch::Tensor& targets, int64_t vocab, double temperature, bool bf16,
                               int64_t chunk, bool with_entropy) {
    const int64_t N = hidden.size(0);
    const auto w = weight.narrow(0, 0, vocab);
    auto opts = hidden.options().dtype(torch::kFloat32);
    auto picked = torch::empty({N}, opts), lse = torch::empty({N}, opts);
    auto entropy = with_entropy ? torch::empty({N}, opts) : torch::zeros({N}, opts);
    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
      const int64_t n = std::min(chunk, N - r0);
      const auto logits = chunk_logits(hidden.narrow(0, r0, n), w, temperature, bf16);
      const auto norm = logits.logsumexp(-1);
      const auto logp = logits - norm.unsqueeze(-1);
      lse.narrow(0, r0, n).copy_(norm);
      picked.narrow(0, r0, n).copy_(logp.gather(-1, targets.narrow(0, r0, n).unsqueeze(-1)).squeeze(-1));
      if (with_entropy) entropy.narrow(0, r0, n).copy_(-(logp.exp() * logp).sum(-1));
    }
    ctx->save_for_backward({hidden, weight, targets, lse});
    ctx->saved_data["vocab"] = vocab;
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["bf16"] = bf16;
    ctx->saved_data["chunk"] = chunk;
    ctx->mark_non_differentiable({entropy});
    return {picked, entropy};
  }

  // d log p(t) / d logits = onehot(t) - softmax, over the temperature; then through the product.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &hidden = saved[0], &weight = saved[1], &targets = saved[2], &lse = saved[3];
    const int64_t vocab = ctx->saved_data["vocab"].toInt(), chunk = ctx->saved_data["chunk"].toInt();
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const bool bf16 = ctx->saved_data["bf16"].toBool();
    const auto g = grads[0].to(torch::kFloat32);
    const int64_t N = hidden.size(0);
    const auto w = weight.narrow(0, 0, vocab);
    auto grad_hidden = torch::zeros_like(hidden);
    auto grad_w = torch::zeros(w.sizes(), w.options().dtype(torch::kFloat32));
    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
      const int64_t n = std::min(chunk, N - r0);
      const auto h = hidden.narrow(0, r0, n);
      const auto gc = g.narrow(0, r0, n).unsqueeze(-1);
      auto d = -(chunk_logits(h, w, temperature, bf16) - lse.narrow(0, r0, n).unsqueeze(-1)).exp() * gc;
      d.scatter_add_(-1, targets.narrow(0, r0, n).unsqueeze(-1), gc);
      d.div_(temperature);
      grad_hidden.narrow(0, r0, n).copy_(torch::matmul(d, w.to(torch::kFloat32)).to(hidden.scalar_type()));
      grad_w.add_(torch::matmul(d.t(), h.to(torch::kFloat32)));
    }
    auto grad_weight = torch::zeros_like(weight);
    grad_weight.narrow(0, 0, vocab).copy_(grad_w);
    return {grad_hidden, grad_weight, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

std::pair<torch::Tensor, torch::Tensor> vocab_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight,
                                                      const torch::Tensor& targets, int64_t vocab, double temperature,
                                                      bool bf16_products, int64_t chunk, bool with_entropy) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1), "vocab_logprobs: shapes");
  TORCH_CHECK(vocab > 0 && vocab <= weight.size(0) && chunk > 0, "vocab_logprobs: vocab or chunk out of range");
  auto out = VocabLogprobs::apply(hidden, weight, targets, vocab, temperature, bf16_products, chunk, with_entropy);
  return {out[0], out[1]};
}

bool chunked_logprobs_enabled() {
  static const bool enabled = std::getenv("R1_NO_CHUNKED_LOGPROBS") == nullptr;
  return enabled;
}

}  // namespace r1

#include "model/moe.h"


#include <limits>

#include "model/checkpoint.h"
#include "model/fused_ops.h"

namespace r1 {
namespace {

// Keeps the topk_group best groups of `choice` [N, E], ranked by the sum of each group's two best
// entries (V3) or by its best (V2), and fills the other groups' entries with `fill`.
torch::Tensor keep_best_groups(const torch::Tensor& choice, const MoeConfig& moe, bool sum_of_two_best, double fill) {
  const int64_t N = choice.size(0), E = choice.size(1), per_group = E / moe.n_group;
  const auto grouped = choice.view({N, moe.n_group, per_group});
  const auto group_score = sum_of_two_best ? std::get<0>(grouped.topk(2, -1)).sum(-1) : std::get<0>(grouped.max(-1));
  const auto best = std::get<1>(group_score.topk(moe.topk_group, -1, /*largest=*/true, /*sorted=*/false));
  const auto kept = torch::zeros({N, moe.n_group}, choice.options().dtype(torch::kBool)).scatter_(1, best, true);
  return choice.masked_fill(kept.unsqueeze(-1).expand({N, moe.n_group, per_group}).reshape({N, E}).logical_not(), fill);
}

}  // namespace

Routing route_tokens(const torch::Tensor& logits, const torch::Tensor& bias, const MoeConfig& moe) {
  const int64_t k = moe.num_experts_per_tok;
  Routing r;
  const auto l = logits.to(torch::kFloat32);
  torch::Tensor choice;  // what the experts are chosen by (no gradient flows through the choice)
  if (moe.sigmoid_scores()) {
    r.scores = l.sigmoid();
    choice = r.scores.detach();
    if (bias.defined()) choice = choice + bias.to(torch::kFloat32);
    // -inf, not 0: a negative biased score must not lose to an excluded group's entry.
    if (moe.grouped()) choice = keep_best_groups(choice, moe, true, -std::numeric_limits<double>::infinity());
  } else {
    r.scores = l.softmax(-1);
    choice = r.scores.detach();
    if (moe.grouped()) choice = keep_best_groups(choice, moe, false, 0.0);  // transformers' V2 fills with 0
  }
  r.experts = std::get<1>(choice.topk(k, -1, /*largest=*/true, /*sorted=*/false));
  r.weights = r.scores.gather(1, r.experts);
  if (moe.norm_topk_prob) r.weights = r.weights / (r.weights.sum(-1, true) + 1e-20);
  r.weights = r.weights * moe.routed_scaling_factor;
  return r;
}

torch::Tensor sequence_balance_loss(const Routing& r, int64_t sequences) {
  const int64_t N = r.scores.size(0), E = r.scores.size(1), k = r.experts.size(1), T = N / sequences;
  const auto normalised = r.scores / r.scores.sum(-1, true);
  const auto P = normalised.view({sequences, T, E}).mean(1);
  const auto sent = torch::zeros({sequences, E}, r.scores.options())
                        .scatter_add_(1, r.experts.reshape({sequences, T * k}),
                                      torch::ones({sequences, T * k}, r.scores.options()));
  const auto f = sent * (static_cast<double>(E) / static_cast<double>(k * T));
  return (f * P).sum(1).mean();
}

MoeGateImpl::MoeGateImpl(const ModelConfig& c, const torch::TensorOptions& o) : moe_(c.moe) {
  weight = register_parameter("weight", torch::empty({c.moe.n_routed_experts, c.hidden_size}, o));
  if (moe_.sigmoid_scores())
    e_score_correction_bias = register_parameter(
        "e_score_correction_bias", torch::zeros({c.moe.n_routed_experts}, o.dtype(torch::kFloat32)), false);
}

Routing MoeGateImpl::forward(const torch::Tensor& x) const {
  // In float32 whatever the model's dtype, as transformers computes the router.
  return route_tokens(torch::linear(x.to(torch::kFloat32), weight.to(torch::kFloat32)), e_score_correction_bias, moe_);
}

MoeExpertsImpl::MoeExpertsImpl(int64_t experts, int64_t hidden, int64_t intermediate, const torch::TensorOptions& o) {
  gate_up_proj = register_parameter("gate_up_proj", torch::empty({experts, 2 * intermediate, hidden}, o));
  down_proj = register_parameter("down_proj", torch::empty({experts, hidden, intermediate}, o));
}

torch::Tensor MoeExpertsImpl::expert(int64_t e, const torch::Tensor& x) {
  return torch::linear(fused::swiglu_halves(torch::linear(x, gate_up_proj[e])), down_proj[e]);
}

torch::Tensor MoeExpertsImpl::forward(const torch::Tensor& rows, const std::vector<int64_t>& count) {
  const int64_t E = size(), N = rows.size(0);
  // Few rows (decoding): a product per expert that has any, reading only those experts' weights.
  // Many, or any in training: one grouped product per weight over all experts (each expert's run
  // of rows times its matrix), one autograd node for all of them instead of a handful per expert
  // (1.25x the pretraining tokens/s of a per-expert loop with 64 experts, 6 per token, width 128).
  const bool training = torch::GradMode::is_enabled() && gate_up_proj.requires_grad();
  // _grouped_mm takes fp32, bf16 and fp16, with every row stride a multiple of 16 bytes.
  const int64_t row_bytes = static_cast<int64_t>(rows.element_size());
  const bool groupable = rows.scalar_type() != torch::kFloat64 && rows.size(1) * row_bytes % 16 == 0 &&
                         down_proj.size(2) * row_bytes % 16 == 0;
  if (!groupable || (N < E && !training)) {
    std::vector<torch::Tensor> outputs;
    int64_t start = 0;
    for (int64_t e = 0; e < E; start += count[e++])
      if (count[e] > 0) outputs.push_back(expert(e, rows.narrow(0, start, count[e])));
    return torch::cat(outputs);
  }
  std::vector<int32_t> ends(E);
  int64_t end = 0;
  for (int64_t e = 0; e < E; ++e) ends[e] = static_cast<int32_t>(end += count[e]);
  const auto offsets = torch::tensor(ends, torch::kInt32).to(rows.device());
  const auto hidden = fused::swiglu_halves(at::_grouped_mm(rows, gate_up_proj.transpose(1, 2), offsets));
  return at::_grouped_mm(hidden, down_proj.transpose(1, 2), offsets);
}

MoeImpl::MoeImpl(const ModelConfig& c, const torch::TensorOptions& o) : moe_(c.moe) {
  gate = register_module("gate", MoeGate(c, o));
  experts = register_module("experts",
                             MoeExperts(moe_.n_routed_experts, c.hidden_size, moe_.moe_intermediate_size, o));
  if (moe_.n_shared_experts > 0)
    shared_experts = register_module(
        "shared_experts", Mlp(c.hidden_size, moe_.n_shared_experts * moe_.moe_intermediate_size, false, o));
  load_.assign(moe_.n_routed_experts, 0);
}

torch::Tensor MoeImpl::expert_outputs(const torch::Tensor& x, const Routing& r) {
  const int64_t k = r.experts.size(1);
  // The (token, expert) pairs sorted by expert: each expert's tokens are one contiguous run of the
  // gathered rows, so the backward pass is one gather and one scatter too, not one full-size
  // scatter per expert.
  const auto pairs = r.experts.reshape({-1});
  const auto order = std::get<1>(pairs.sort(/*stable=*/std::optional<bool>(true), 0, /*descending=*/false));
  const auto token = order.div(k, "floor");
  const auto counts = torch::bincount(pairs, {}, moe_.n_routed_experts).to(torch::kCPU);
  const std::vector<int64_t> count(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + moe_.n_routed_experts);
  if (!recomputing_activations())  // a checkpointed layer's second forward routes the same tokens again
    for (int64_t e = 0; e < moe_.n_routed_experts; ++e) load_[e] += count[e];
  const auto outputs = experts(x.index_select(0, token), count);
  const auto weighted = outputs * r.weights.reshape({-1}).index_select(0, order).unsqueeze(1);
  return torch::zeros_like(x).index_add_(0, token, weighted.to(x.scalar_type()));
}

torch::Tensor MoeImpl::forward(const torch::Tensor& x) {
  const auto flat = x.reshape({-1, x.size(-1)});
  const Routing routing = gate(flat);
  last_experts_ = routing.experts.detach();
  if (balance_weight_ > 0 && torch::GradMode::is_enabled()) {
    // Each row of x [..., T, H] is a sequence; a 2-D x is one.
    const int64_t sequences = x.dim() > 2 ? flat.size(0) / x.size(-2) : 1;
    const auto loss = balance_weight_ * sequence_balance_loss(routing, sequences);
    balance_loss_ = balance_loss_.defined() ? balance_loss_ + loss : loss;
  }
  auto out = expert_outputs(flat, routing);
  if (shared_experts) out = out + shared_experts(flat);
  return out.view(x.sizes());
}

torch::Tensor MoeImpl::take_balance_loss() {
  auto loss = balance_loss_;
  balance_loss_ = torch::Tensor();
  return loss;
}

std::vector<int64_t> MoeImpl::take_load() {
  std::vector<int64_t> load(load_.size(), 0);
  load.swap(load_);
  return load;
}

}  // namespace r1

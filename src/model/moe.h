// DeepSeekMoE (reference/deepseek-v3-architecture.md §4): mlp.gate.weight [E, H] (+
// mlp.gate.e_score_correction_bias [E] for V3), the routed experts fused as transformers 5 holds
// them (mlp.experts.gate_up_proj, mlp.experts.down_proj: MoeExperts), and
// mlp.shared_experts.{gate,up,down}_proj.weight. Checkpoints hold a tensor per routed expert, as
// the released ones do (mlp.experts.{j}.{gate,up,down}_proj.weight): io/model_dir.cpp converts.
//
// y = shared_experts(x) + sum over the k chosen experts e of w_e * expert_e(x). The experts run
// grouped: the (token, expert) pairs are sorted by expert and each expert multiplies all of its
// tokens at once, never a loop over tokens.
#pragma once
#include <vector>

#include <torch/torch.h>

#include "model/config.h"
#include "model/modules.h"

namespace r1 {

// The router's decision for N tokens.
struct Routing {
  torch::Tensor weights;  // [N, k] float32: each chosen expert's weight in the sum
  torch::Tensor experts;  // [N, k] int64: the chosen experts (as a set: the order is unspecified)
  torch::Tensor scores;   // [N, E] float32: sigmoid (V3) or softmax (V2) scores, for balance losses
};

// The sequence-wise balance loss of DeepSeek-V3 (report eq. 17-20; V2's expert-level loss per
// sequence, as its released configs set seq_aux): for each of `sequences` equal runs of tokens,
// sum over experts of f_e * P_e, f_e = E / (k T) x tokens sent to e, P_e = the mean over tokens of
// e's score normalised over experts; averaged over the sequences, unweighted. f is a count: the
// gradient reaches the router through P only.
torch::Tensor sequence_balance_loss(const Routing& r, int64_t sequences);

// Routes tokens from the router logits [N, E] (in float32) as transformers does: V3 (noaux_tc)
// sigmoid scores, `bias` [E] added for the choice only, groups ranked by the sum of their two best
// biased scores, the topk_group best groups kept, k experts chosen among them, their unbiased
// scores normalised (norm_topk_prob) and scaled; V2 softmax scores, groups ranked by their best
// (group_limited_greedy) or none (greedy), chosen scores scaled.
Routing route_tokens(const torch::Tensor& logits, const torch::Tensor& bias, const MoeConfig& moe);

// The router: mlp.gate.
class MoeGateImpl : public torch::nn::Module {
 public:
  MoeGateImpl(const ModelConfig& c, const torch::TensorOptions& options);
  Routing forward(const torch::Tensor& x) const;  // x [N, H]
  torch::Tensor weight;                           // [E, H]
  // V3's per-expert selection bias, float32 whatever the model's dtype (it is moved in steps of
  // 1e-3 by auxiliary-loss-free balancing). A parameter so that it is saved, loaded and
  // broadcast with the weights, but with requires_grad false: no loss trains it.
  torch::Tensor e_score_correction_bias;

 private:
  MoeConfig moe_;
};
TORCH_MODULE(MoeGate);

// The routed experts of one layer, each a SwiGLU MLP without biases, in two tensors:
// gate_up_proj [E, 2I, H] (expert j's gate rows, then its up rows) and down_proj [E, H, I].
class MoeExpertsImpl : public torch::nn::Module {
 public:
  MoeExpertsImpl(int64_t experts, int64_t hidden, int64_t intermediate, const torch::TensorOptions& options);
  // rows [N, H], sorted by expert: the first count[0] go to expert 0, the next count[1] to expert
  // 1, ...; returns each row through its expert [N, H].
  torch::Tensor forward(const torch::Tensor& rows, const std::vector<int64_t>& count);
  torch::Tensor expert(int64_t e, const torch::Tensor& x);  // one expert's MLP on x [n, H]
  int64_t size() const { return down_proj.size(0); }
  torch::Tensor gate_up_proj, down_proj;
};
TORCH_MODULE(MoeExperts);

class MoeImpl : public torch::nn::Module {
 public:
  MoeImpl(const ModelConfig& c, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // x [..., H]
  // Tokens routed to each expert since the last take_load(), for the load metrics and the bias
  // update of auxiliary-loss-free balancing. Plain integers: counted in inference mode and out.
  std::vector<int64_t> take_load();
  // Weight of the balance loss computed by forward() while gradients are recorded (0: none).
  void set_balance_loss_weight(double alpha) { balance_weight_ = alpha; }
  double balance_loss_weight() const { return balance_weight_; }
  // The weighted balance losses of the forwards since the last call (undefined if none).
  torch::Tensor take_balance_loss();
  // The experts chosen for each token of the last forward ([N, k], for cross-checks).
  const torch::Tensor& last_experts() const { return last_experts_; }

  MoeGate gate{nullptr};
  MoeExperts experts{nullptr};
  Mlp shared_experts{nullptr};  // null when n_shared_experts is 0

 private:
  torch::Tensor expert_outputs(const torch::Tensor& x, const Routing& r);
  MoeConfig moe_;
  std::vector<int64_t> load_;
  torch::Tensor last_experts_;
  double balance_weight_ = 0;
  torch::Tensor balance_loss_;
};
TORCH_MODULE(Moe);

}  // namespace r1

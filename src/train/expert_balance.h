// Load balancing of a model's mixture-of-experts layers while it trains (DeepSeek-V3 report §2.1.2,
// V2 §2.2.3; reference/deepseek-v3-architecture.md §4):
//   - auxiliary-loss-free balancing (V3): after each optimizer step every expert's routing bias
//     moves by `bias_update_speed` towards equal load: down if the expert took more than the mean
//     number of tokens in that step, up if fewer. The loads are summed over data-parallel ranks
//     first, so every rank moves its biases identically.
//   - a balance loss (V3's sequence-wise one, V2's expert-level one per sequence) weighted by
//     `balance_loss_weight`, added to the training loss.
// and the per-layer load figures for metrics.jsonl. Inert for a model without MoE layers.
#pragma once
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/transformer.h"
#include "train/expert_balance_options.h"

namespace r1 {

class ProcessGroup;

class ExpertBalance {
 public:
  ExpertBalance(Transformer& model, const ExpertBalanceOptions& options, ProcessGroup* group);
  bool active() const { return !layers_.empty(); }
  // Forgets the loads of forwards outside training (generation, validation): call before a step's
  // training forwards.
  void begin_step();
  // The balance losses of the training forwards since the last call (0 without MoE layers).
  torch::Tensor take_loss();
  // After optimizer.step(): sums the step's loads over ranks, moves the biases, and returns the
  // metrics of the step (empty without MoE layers): per MoE layer the max/mean expert load and the
  // share of experts that took no token, and their worst values over layers.
  nlohmann::json after_step();

 private:
  std::vector<int64_t> layer_index_;
  std::vector<MoeImpl*> layers_;
  ProcessGroup* group_;
  double bias_speed_ = 0;
};

}  // namespace r1

#include "train/expert_balance.h"

#include "dist/process_group.h"

namespace r1 {

ExpertBalance::ExpertBalance(Transformer& model, const ExpertBalanceOptions& options, ProcessGroup* group)
    : group_(group) {
  const ModelConfig& c = model->config();
  const bool v3 = c.architecture == Architecture::kDeepseekV3;
  double loss_weight = options.balance_loss_weight;
  if (loss_weight < 0) loss_weight = v3 ? 1e-4 : c.extra.value("aux_loss_alpha", 0.001);
  bias_speed_ = options.bias_update_speed < 0 ? (c.moe.sigmoid_scores() ? 0.001 : 0.0) : options.bias_update_speed;
  // The stack's MoE layers, and those of the multi-token prediction modules when this stage trains
  // them (pretraining with --mtp-weight; frozen, they route nothing and keep their biases).
  for (int64_t i = 0; i < static_cast<int64_t>(model->model->layers->size()); ++i) {
    auto* layer = model->model->layers[i]->as<DecoderLayerImpl>();
    if (!layer->moe || (i >= c.num_hidden_layers && !layer->moe->gate->weight.requires_grad())) continue;
    layer->moe->set_balance_loss_weight(loss_weight);
    layers_.push_back(layer->moe.get());
    layer_index_.push_back(i);
  }
}

void ExpertBalance::begin_step() {
  for (auto* moe : layers_) {
    moe->take_load();
    moe->take_balance_loss();
  }
}

torch::Tensor ExpertBalance::take_loss() {
  torch::Tensor total = torch::zeros({});
  for (auto* moe : layers_) {
    auto loss = moe->take_balance_loss();
    if (loss.defined()) total = total.to(loss.device()) + loss;
  }
  return total;
}

nlohmann::json ExpertBalance::after_step() {
  if (layers_.empty()) return nlohmann::json::object();
  const int64_t E = layers_.front()->experts->size();
  std::vector<double> flat;
  for (auto* moe : layers_)
    for (int64_t n : moe->take_load()) flat.push_back(static_cast<double>(n));
  auto loads = torch::tensor(flat, torch::kFloat64);
  if (group_) {
    const auto device = layers_.front()->gate->weight.device();
    auto shared = loads.to(device);
    group_->all_reduce_sum({shared});
    loads = shared.cpu();
  }
  loads = loads.view({static_cast<int64_t>(layers_.size()), E});
  // A step that routed no token (GRPO when every group's rewards tie: nothing to train) has no
  // load to balance or report.
  if (loads.sum().item<double>() == 0) return nlohmann::json::object();
  const auto mean = loads.mean(1, true);
  if (bias_speed_ > 0) {
    torch::NoGradGuard no_grad;
    // sign(mean - load): an overloaded expert's bias goes down, an underloaded one's up.
    const auto step = (mean - loads).sign() * bias_speed_;
    for (size_t l = 0; l < layers_.size(); ++l) {
      auto& bias = layers_[l]->gate->e_score_correction_bias;
      if (bias.defined()) bias.add_(step[static_cast<int64_t>(l)].to(bias.device(), bias.scalar_type()));
    }
  }
  const auto max_over_mean = (std::get<0>(loads.max(1)) / mean.squeeze(1).clamp_min(1e-9));
  const auto idle = (loads == 0).to(torch::kFloat64).mean(1);
  nlohmann::json per_layer_max = nlohmann::json::array(), per_layer_idle = nlohmann::json::array();
  for (int64_t l = 0; l < loads.size(0); ++l) {
    per_layer_max.push_back(max_over_mean[l].item<double>());
    per_layer_idle.push_back(idle[l].item<double>());
  }
  return {{"moe_load_max_over_mean", max_over_mean.max().item<double>()},
          {"moe_idle_expert_share", idle.max().item<double>()},
          {"moe_layers", layer_index_},
          {"moe_layer_load_max_over_mean", per_layer_max},
          {"moe_layer_idle_expert_share", per_layer_idle}};
}

}  // namespace r1

// AdamW as DeepSeek and most LLM recipes use it: weight decay on matrices and embeddings, none on
// norms and biases (the 1-D parameters). Shared by pretraining/SFT and GRPO. Parameters no loss
// trains (requires_grad false: DeepSeek-V3's routing bias, moved by load balancing) are left out.
#pragma once
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "model/transformer.h"

namespace r1 {

inline torch::optim::AdamW make_adamw(const std::vector<torch::Tensor>& params, double lr, double beta1, double beta2,
                                      double eps, double weight_decay) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : params) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr).betas({beta1, beta2}).eps(eps).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  return torch::optim::AdamW(groups, torch::optim::AdamWOptions(lr));
}

inline torch::optim::AdamW make_adamw(Transformer& model, double lr, double beta1, double beta2, double eps,
                                      double weight_decay) {
  return make_adamw(model->trainable_parameters(), lr, beta1, beta2, eps, weight_decay);
}

}  // namespace r1

// Test helper for tests/python/test_trl_agreement.py: runs r1's GRPO advantages and loss on tensors
// from a safetensors file so the same tensors can go through TRL's GRPOTrainer.
//   grpo_loss_probe IN.safetensors OUT.safetensors loss-agg scale-rewards importance beta eps eps-high max-len
//                   kl-bias-correction(0|1) [KEY=VALUE ...]
// KEYs: rollout-correction, rollout-min, rollout-max, off-policy-mask, delta, surrogate (GrpoLossOptions).
// IN: rewards [P, G], logp / old_logp / ref_logp / mask [P*G, T] (float64); with a rollout correction
// other than none or an off-policy mask, sampled_logp [P*G, T] too.
// OUT: advantages [P*G], loss [1], grad_logp [P*G, T] (d loss / d logp), rollout_weight [P*G, T] (all 1
// without a correction), all float64.
#include <cstdio>
#include <string>

#include "io/model_dir.h"
#include "io/safetensors.h"
#include "rl/grpo_loss.h"

int main(int argc, char** argv) {
  if (argc < 11) {
    std::fprintf(stderr, "usage: %s IN OUT loss-agg scale importance beta eps eps-high max-len kl-bias-correction "
                 "[KEY=VALUE ...]\n", argv[0]);
    return 2;
  }
  try {
    const r1::SafetensorsFile in(argv[1]);
    auto get = [&](const char* name) { return r1::read_tensor(in, *in.find(name)); };
    r1::GrpoLossOptions o;
    o.loss_agg = argv[3];
    o.importance_level = argv[5];
    o.beta = std::stod(argv[6]);
    o.epsilon = std::stod(argv[7]);
    o.epsilon_high = std::stod(argv[8]);
    o.max_completion_length = std::stoll(argv[9]);
    o.kl_bias_correction = std::string(argv[10]) == "1";
    for (int i = 11; i < argc; ++i) {
      const std::string arg = argv[i], key = arg.substr(0, arg.find('=')), value = arg.substr(arg.find('=') + 1);
      if (key == "rollout-correction") o.rollout_correction = value;
      else if (key == "rollout-min") o.rollout_correction_min = std::stod(value);
      else if (key == "rollout-max") o.rollout_correction_max = std::stod(value);
      else if (key == "off-policy-mask") o.off_policy_mask = std::stod(value);
      else if (key == "delta") o.delta = std::stod(value);
      else if (key == "surrogate") o.surrogate = value;
      else throw std::runtime_error("unknown option " + arg);
    }
    const bool sampled = o.rollout_correction != "none" || o.off_policy_mask > 0;
    const auto advantages = r1::group_advantages(get("rewards"), argv[4]).flatten().contiguous();
    const auto logp = get("logp").requires_grad_(true);
    const auto weight = o.rollout_correction == "none"
                            ? torch::Tensor()
                            : r1::rollout_correction(get("old_logp"), get("sampled_logp"), get("mask"), o);
    const auto terms = r1::grpo_loss(logp, get("old_logp"), get("ref_logp"), advantages, get("mask"), o, weight,
                                     sampled ? get("sampled_logp") : torch::Tensor());
    terms.loss.backward();
    const auto loss = terms.loss.detach().reshape({1}).contiguous();
    const auto grad = logp.grad().contiguous();
    const auto w = weight.defined() ? weight.contiguous() : torch::ones_like(grad);
    r1::write_safetensors(argv[2], {{"advantages", r1::DType::kF64, {advantages.size(0)}, advantages.data_ptr()},
                                    {"loss", r1::DType::kF64, {1}, loss.data_ptr()},
                                    {"grad_logp", r1::DType::kF64, grad.sizes().vec(), grad.data_ptr()},
                                    {"rollout_weight", r1::DType::kF64, w.sizes().vec(), w.data_ptr()}});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

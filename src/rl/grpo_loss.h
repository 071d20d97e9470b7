// The GRPO objective (DeepSeekMath, DeepSeek-R1) and its published variants, on per-token
// log-probabilities. Formulas as in TRL's GRPOTrainer (reference/grpo-and-r1.md):
//
//   advantage   A_i = (r_i - mean(r_group)) / (std(r_group) + 1e-4)     scale "group" (GRPO)
//                     std over the whole batch                           scale "batch"
//                     r_i - mean(r_group)                                scale "none" (Dr. GRPO)
//   ratio       rho_t = exp(logp_t - logp_old_t)                         importance "token"
//               rho   = exp(mean_t(logp_t - logp_old_t)) per sequence    importance "sequence" (GSPO)
//   surrogate   l_t = -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)   (eps_high > eps_low: DAPO clip-higher)
//               with delta > 0: -min(min(rho, delta) A, ...)                  (INTELLECT-2 two-sided clip)
//               "cispo": l_t = -sg(min(rho, eps_high)) A logp_t              (MiniMax-M1: clip the IS weight)
//   KL (k3)     kl_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1, added as beta * kl_t
//               (x rho_t with kl_bias_correction, DeepSeek-V3.2's unbiased KL gradient)
//   rollout     w_t = exp(old_t - sampled_t), or per sequence exp(sum_t(old_t - sampled_t)), truncated to
//   correction  [min, max] or zeroed outside it; multiplies l_t (TRL's vllm_importance_sampling_correction)
//   off-policy  a sequence with A < 0 whose mean_t(sampled_t - logp_t) > delta gets no surrogate
//   mask        (DeepSeek-V3.2's off-policy sequence masking; TRL's off_policy_mask_threshold)
//   aggregation "seq-mean-token-mean" (GRPO): mean over sequences of the token mean
//               "token-mean" (DAPO): sum over all tokens / number of tokens
//               "seq-mean-token-sum-norm" (Dr. GRPO): sum over all tokens / (sequences x max length)
#pragma once
#include <string>

#include <torch/torch.h>

namespace r1 {

struct GrpoLossOptions {
  std::string loss_agg = "seq-mean-token-mean";
  std::string importance_level = "token";
  double epsilon = 0.2;       // eps_low
  double epsilon_high = 0.2;  // eps_high (DAPO: 0.28)
  double beta = 0.0;          // k3 KL coefficient; 0 = no reference model
  double delta = 0.0;         // INTELLECT-2 two-sided clipping: the unclipped ratio capped at delta (0: off)
  std::string surrogate = "clip";  // clip (PPO/GRPO) | cispo (MiniMax-M1: eps_high caps the IS weight, e.g. 5)
  // DeepSeek-V3.2 (arXiv 2512.02556): multiply the k3 term by the (differentiable) importance ratio so its
  // gradient is the unbiased reverse-KL gradient off-policy. TRL's default since 1.x; off in DeepSeekMath/R1.
  bool kl_bias_correction = false;
  int64_t max_completion_length = 0;  // Dr. GRPO's normaliser (0: the mask's width)
  // Rollout correction: none | token-truncate | token-mask | sequence-truncate | sequence-mask, with
  // bounds on the importance weight between the trained policy and the sampler (min 0: none).
  std::string rollout_correction = "none";
  double rollout_correction_min = 0.0, rollout_correction_max = 3.0;
  // DeepSeek-V3.2 (arXiv 2512.02556) off-policy sequence masking: delta > 0 drops the surrogate of
  // sequences with a negative advantage that the current policy has drifted from by more than delta
  // (mean per-token log-ratio of sampler over policy); 0: off.
  double off_policy_mask = 0.0;

  void validate() const;  // throws r1::Error naming the bad option
};

// rewards [P, G] (P prompts, G completions each) -> advantages [P, G]. A group whose rewards are
// all equal gets advantages 0 (never NaN).
torch::Tensor group_advantages(const torch::Tensor& rewards, const std::string& scale);

// The statistics are 0-dim tensors on logp's device, without gradient: reading one is the
// caller's choice (on a GPU each read waits for the device).
struct GrpoLossTerms {
  torch::Tensor loss;               // scalar, differentiable in logp
  torch::Tensor kl;                 // mean k3 KL over tokens (0 when beta = 0 and no reference is given)
  torch::Tensor clip_low;           // share of tokens clipped at 1 - eps_low with A < 0
  torch::Tensor clip_high;          // share clipped at 1 + eps_high with A > 0
  torch::Tensor ratio_mean;
  torch::Tensor off_policy_masked;  // share of sequences the off-policy mask dropped
};

// logp, old_logp, ref_logp: [B, T] per-token log-probs of the completion tokens (ref_logp may be
// undefined when beta = 0); advantages [B]; mask [B, T] (1 for real completion tokens; 0 for
// padding and for tokens of truncated completions when those are masked); rollout_weight [B, T]
// (rollout_correction(); undefined: none) multiplies each token's surrogate, not its KL term;
// sampled_logp [B, T], the sampler's log-probs, is needed with options.off_policy_mask > 0.
GrpoLossTerms grpo_loss(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                        const torch::Tensor& advantages, const torch::Tensor& mask, const GrpoLossOptions& options,
                        const torch::Tensor& rollout_weight = {}, const torch::Tensor& sampled_logp = {});

// The rollout correction's weights [B, T] (no gradient) from the trained policy's log-probs at the
// start of the step (old_logp) and those the engine sampled with (sampled_logp), as TRL computes its
// importance_sampling_ratio: when the sampler differs from the trained policy (top-p truncation,
// bf16 training, a different kernel), the rollouts are off-policy and this reweights them.
// Undefined when options.rollout_correction is "none".
torch::Tensor rollout_correction(const torch::Tensor& old_logp, const torch::Tensor& sampled_logp,
                                 const torch::Tensor& mask, const GrpoLossOptions& options);

}  // namespace r1

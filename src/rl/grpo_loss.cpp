#include "rl/grpo_loss.h"

#include "util/error.h"

namespace r1 {

void GrpoLossOptions::validate() const {
  if (loss_agg != "seq-mean-token-mean" && loss_agg != "token-mean" && loss_agg != "seq-mean-token-sum-norm")
    throw Error("--loss-agg '" + loss_agg + "': expected seq-mean-token-mean (GRPO), token-mean (DAPO) or "
                "seq-mean-token-sum-norm (Dr. GRPO)");
  if (importance_level != "token" && importance_level != "sequence")
    throw Error("--importance-level '" + importance_level + "': expected token or sequence (GSPO)");
  // No upper bound: DeepSeek-R1-Zero used a clip ratio of 10, i.e. clipping all but switched off
  // (a lower bound 1 - eps below 0 never binds, since ratios are positive).
  if (!(epsilon > 0)) throw Error("--epsilon must be > 0");
  if (!(epsilon_high > 0)) throw Error("--epsilon-high must be > 0");
  if (!(beta >= 0)) throw Error("--beta must be >= 0");
  if (!(delta >= 0)) throw Error("--delta must be >= 0 (0: off)");
  if (delta > 0 && delta <= 1 + epsilon_high)
    throw Error("--delta must exceed 1 + --epsilon-high (it caps the ratios the clip lets through)");
  if (surrogate != "clip" && surrogate != "cispo")
    throw Error("--surrogate '" + surrogate + "': expected clip or cispo (MiniMax-M1)");
  if (surrogate == "cispo" && delta > 0) throw Error("--delta applies to the clip surrogate, not cispo");
  // CISPO's --epsilon-high caps the importance weight itself: at or below 1 it caps the on-policy
  // weight (about 1), and the clip surrogate's default of 0.2 would silently scale every gradient by 0.2.
  if (surrogate == "cispo" && epsilon_high <= 1)
    throw Error("--surrogate cispo caps the importance weight at --epsilon-high, which must be > 1 (MiniMax-M1 "
                "caps it at values like 5); got " + std::to_string(epsilon_high) + " (the clip surrogate's range)");
  if (rollout_correction != "none" && rollout_correction != "token-truncate" && rollout_correction != "token-mask" &&
      rollout_correction != "sequence-truncate" && rollout_correction != "sequence-mask")
    throw Error("--rollout-correction '" + rollout_correction +
                "': expected none, token-truncate, token-mask, sequence-truncate or sequence-mask");
  if (!(rollout_correction_min >= 0) || !(rollout_correction_max > rollout_correction_min))
    throw Error("--rollout-correction-min/max: need 0 <= min < max");
  if (!(off_policy_mask >= 0)) throw Error("--off-policy-mask must be >= 0 (0: off)");
}

torch::Tensor rollout_correction(const torch::Tensor& old_logp, const torch::Tensor& sampled_logp,
                                 const torch::Tensor& mask, const GrpoLossOptions& o) {
  o.validate();
  if (o.rollout_correction == "none") return {};
  if (old_logp.dim() != 2 || sampled_logp.sizes() != old_logp.sizes() || mask.sizes() != old_logp.sizes())
    throw Error("rollout_correction: old_logp, sampled_logp and mask must be [B, T]");
  torch::NoGradGuard no_grad;
  auto diff = (old_logp.detach() - sampled_logp) * mask.to(old_logp.scalar_type());
  const bool sequence = o.rollout_correction.rfind("sequence", 0) == 0;
  auto w = (sequence ? diff.sum(1, /*keepdim=*/true) : diff).exp();
  if (o.rollout_correction.find("truncate") != std::string::npos)
    w = w.clamp(o.rollout_correction_min, o.rollout_correction_max);
  else
    w = w.masked_fill((w < o.rollout_correction_min).logical_or(w > o.rollout_correction_max), 0.0);
  return w.expand_as(old_logp).contiguous();
}

torch::Tensor group_advantages(const torch::Tensor& rewards, const std::string& scale) {
  if (rewards.dim() != 2 || rewards.size(1) < 2)
    throw Error("group_advantages: rewards must be [prompts, group] with a group of at least 2");
  auto r = rewards.to(torch::kFloat64);
  auto centred = r - r.mean(1, /*keepdim=*/true);
  if (scale == "none") return centred.to(rewards.scalar_type());
  torch::Tensor std;
  if (scale == "group") std = r.std(1, /*unbiased=*/true, /*keepdim=*/true);
  else if (scale == "batch") std = r.std().expand_as(r);
  else throw Error("--scale-rewards '" + scale + "': expected group, batch or none");
  return (centred / (std + 1e-4)).to(rewards.scalar_type());
}

GrpoLossTerms grpo_loss(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                        const torch::Tensor& advantages, const torch::Tensor& mask, const GrpoLossOptions& o,
                        const torch::Tensor& rollout_weight, const torch::Tensor& sampled_logp) {
  o.validate();
  if (rollout_weight.defined() && rollout_weight.sizes() != logp.sizes())
    throw Error("grpo_loss: rollout_weight must be [B, T] like logp");
  if (o.off_policy_mask > 0 && (!sampled_logp.defined() || sampled_logp.sizes() != logp.sizes()))
    throw Error("grpo_loss: --off-policy-mask needs the sampler's log-probs [B, T]");
  if (logp.dim() != 2 || old_logp.sizes() != logp.sizes() || mask.sizes() != logp.sizes() ||
      advantages.dim() != 1 || advantages.size(0) != logp.size(0))
    throw Error("grpo_loss: logp, old_logp and mask must be [B, T] and advantages [B]");
  if (o.beta > 0 && (!ref_logp.defined() || ref_logp.sizes() != logp.sizes()))
    throw Error("grpo_loss: beta > 0 needs the reference log-probs [B, T]");
  const auto m = mask.to(logp.scalar_type());
  const auto tokens = m.sum().clamp_min(1.0);
  const auto log_ratio = (logp - old_logp) * m;
  torch::Tensor ratio;
  if (o.importance_level == "sequence") {
    const auto seq = log_ratio.sum(1) / m.sum(1).clamp_min(1.0);  // GSPO: the geometric mean per sequence
    ratio = seq.exp().unsqueeze(1).expand_as(logp);
  } else {
    ratio = log_ratio.exp();
  }
  const auto a = advantages.to(logp.scalar_type()).unsqueeze(1);
  torch::Tensor per_token;
  if (o.surrogate == "cispo") {  // the IS weight, capped and without gradient, times A times the log-prob
    per_token = -ratio.clamp_max(o.epsilon_high).detach() * a * logp;
  } else {
    const auto clipped = ratio.clamp(1.0 - o.epsilon, 1.0 + o.epsilon_high);
    const auto unclipped = o.delta > 0 ? ratio.clamp_max(o.delta) : ratio;
    per_token = -torch::min(unclipped * a, clipped * a);
  }
  torch::Tensor keep;  // [B, 1]: the off-policy mask
  if (o.off_policy_mask > 0) {
    const auto drift = ((sampled_logp.to(logp.scalar_type()) - logp.detach()) * m).sum(1, true) /
                       m.sum(1, true).clamp_min(1.0);
    keep = (a >= 0).logical_or(drift <= o.off_policy_mask).to(logp.scalar_type());
    per_token = per_token * keep;
  }
  if (rollout_weight.defined()) per_token = per_token * rollout_weight.to(per_token.scalar_type());
  GrpoLossTerms out;
  const auto zero = torch::zeros({}, m.options());
  out.kl = out.clip_low = out.off_policy_masked = zero;
  if (ref_logp.defined()) {
    const auto d = (ref_logp - logp);
    const auto kl = d.exp() - d - 1;
    if (o.beta > 0) per_token = per_token + o.beta * (o.kl_bias_correction ? kl * ratio : kl);
    out.kl = ((kl * m).sum() / tokens).detach();
  }
  per_token = per_token * m;
  if (o.loss_agg == "seq-mean-token-mean") {
    out.loss = (per_token.sum(1) / m.sum(1).clamp_min(1.0)).mean();
  } else if (o.loss_agg == "token-mean") {
    out.loss = per_token.sum() / tokens;
  } else {
    const int64_t L = o.max_completion_length > 0 ? o.max_completion_length : logp.size(1);
    out.loss = per_token.sum() / static_cast<double>(logp.size(0) * L);
  }
  torch::NoGradGuard no_grad;
  // cispo clips nothing from below, and above counts the tokens whose IS weight was capped (TRL's
  // cispo_clip_ratio).
  const bool cispo = o.surrogate == "cispo";
  const auto high = (ratio > (cispo ? o.epsilon_high : 1.0 + o.epsilon_high)).logical_and(a > 0).to(m.scalar_type()) * m;
  if (!cispo) {
    const auto low = (ratio < 1.0 - o.epsilon).logical_and(a < 0).to(m.scalar_type()) * m;
    out.clip_low = low.sum() / tokens;
  }
  out.clip_high = high.sum() / tokens;
  out.ratio_mean = (ratio * m).sum() / tokens;
  if (keep.defined()) out.off_policy_masked = 1.0 - keep.mean();
  return out;
}

}  // namespace r1

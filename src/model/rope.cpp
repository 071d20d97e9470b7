#include "model/rope.h"

#include <cmath>

namespace r1 {
namespace {

constexpr double kPi = 3.14159265358979323846;

// 1 / base^(2i/d), i = 0..d/2-1, computed like HF (float32 powers) so logits match it bit-closely.
torch::Tensor default_inv_freq(double base, int64_t dim) {
  auto exponents = torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(dim);
  return 1.0 / torch::pow(torch::tensor(base, torch::kFloat32), exponents);
}

double yarn_get_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// YaRN (Peng et al. 2023, "NTK-by-parts" + attention temperature), as in HF _compute_yarn_parameters.
std::pair<torch::Tensor, double> yarn(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const int64_t dim = c.head_dim;
  const double base = c.rope_theta;
  const double factor = s.factor;
  const int64_t original = s.original_max_position_embeddings.value_or(c.max_position_embeddings);
  double attention_factor;
  if (s.attention_factor) {
    attention_factor = *s.attention_factor;
  } else if (s.mscale && s.mscale_all_dim && *s.mscale != 0 && *s.mscale_all_dim != 0) {
    attention_factor = yarn_get_mscale(factor, *s.mscale) / yarn_get_mscale(factor, *s.mscale_all_dim);
  } else {
    attention_factor = yarn_get_mscale(factor, 1.0);
  }
  const double beta_fast = s.beta_fast.value_or(32.0), beta_slow = s.beta_slow.value_or(1.0);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(static_cast<double>(original) / (rotations * 2 * kPi)) / (2 * std::log(base));
  };
  double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // avoid a division by zero in the ramp
  auto ramp = ((torch::arange(dim / 2, torch::kFloat32) - low) / (high - low)).clamp(0, 1);
  auto extrapolation_weight = 1 - ramp;  // 1: keep the original (high-frequency) dims
  auto pos_freqs = torch::pow(torch::tensor(base, torch::kFloat32),
                              torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(dim));
  auto extrapolated = 1.0 / pos_freqs;
  auto interpolated = 1.0 / (factor * pos_freqs);
  auto inv = interpolated * (1 - extrapolation_weight) + extrapolated * extrapolation_weight;
  return {inv, attention_factor};
}

// Llama 3.1: long wavelengths divided by factor, short kept, smooth blend between.
torch::Tensor llama3(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  auto inv = default_inv_freq(c.rope_theta, c.head_dim);
  const double old_len = static_cast<double>(*s.original_max_position_embeddings);
  const double low_wavelen = old_len / s.low_freq_factor, high_wavelen = old_len / s.high_freq_factor;
  auto wavelen = 2 * kPi / inv;
  auto scaled = torch::where(wavelen > low_wavelen, inv / s.factor, inv);
  auto smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
  auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
  return torch::where(medium, smoothed, scaled);
}

}  // namespace

RotaryEmbedding::RotaryEmbedding(const ModelConfig& config) : config_(config) {
  const std::string& type = config.rope_scaling.type;
  if (type.empty() || type == "dynamic") {
    inv_freq_ = default_inv_freq(config.rope_theta, config.head_dim);
  } else if (type == "linear") {
    inv_freq_ = default_inv_freq(config.rope_theta, config.head_dim) / config.rope_scaling.factor;
  } else if (type == "yarn") {
    std::tie(inv_freq_, attention_factor_) = yarn(config);
  } else if (type == "llama3") {
    inv_freq_ = llama3(config);
  }
}

torch::Tensor RotaryEmbedding::inv_freq(int64_t seq_len) const {
  if (config_.rope_scaling.type != "dynamic") return inv_freq_;
  // Dynamic NTK: grow the base once the sequence outruns max_position_embeddings (HF semantics:
  // seq_len = largest position + 1).
  if (seq_len <= config_.max_position_embeddings) return inv_freq_;
  const double f = config_.rope_scaling.factor, d = static_cast<double>(config_.head_dim);
  const double base = config_.rope_theta *
                      std::pow(f * seq_len / config_.max_position_embeddings - (f - 1), d / (d - 2));
  return default_inv_freq(base, config_.head_dim);
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::cos_sin(const torch::Tensor& positions) const {
  int64_t seq_len = 0;
  if (config_.rope_scaling.type == "dynamic") seq_len = positions.max().item<int64_t>() + 1;
  auto inv = inv_freq(seq_len).to(positions.device());
  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inv;  // [B, T, D/2]
  auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);          // [B, 1, T, D]
  auto cos = emb.cos(), sin = emb.sin();
  if (attention_factor_ != 1.0) {
    cos = cos * attention_factor_;
    sin = sin * attention_factor_;
  }
  return {cos, sin};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto xf = x.to(torch::kFloat32);
  const int64_t half = x.size(-1) / 2;
  auto rotated = torch::cat({-xf.narrow(-1, half, half), xf.narrow(-1, 0, half)}, -1);
  return (xf * cos + rotated * sin).to(x.scalar_type());
}

}  // namespace r1

// Rotary position embedding with the HF "rotate_half" pairing (i, i + d/2), computed in fp32,
// and every rope_scaling type HF transformers implements for Llama/Qwen2 checkpoints:
// linear (position interpolation), dynamic NTK, YaRN and llama3.
#pragma once
#include <torch/torch.h>

#include "model/config.h"

namespace r1 {

class RotaryEmbedding {
 public:
  explicit RotaryEmbedding(const ModelConfig& config);

  // cos and sin for `positions` [B, T] (int64), shaped [B, 1, T, head_dim] in fp32 and already
  // multiplied by the scaling's attention factor (YaRN), ready to broadcast over heads.
  std::pair<torch::Tensor, torch::Tensor> cos_sin(const torch::Tensor& positions) const;

  // Inverse frequencies [head_dim / 2] for a sequence of `seq_len` positions (only dynamic NTK
  // depends on it) and the cos/sin multiplier.
  torch::Tensor inv_freq(int64_t seq_len) const;
  double attention_factor() const { return attention_factor_; }

 private:
  ModelConfig config_;
  torch::Tensor inv_freq_;  // fp32, CPU; for every type but dynamic
  double attention_factor_ = 1.0;
};

// x * cos + rotate_half(x) * sin, in fp32, returned in x's dtype. x: [B, H, T, D].
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace r1

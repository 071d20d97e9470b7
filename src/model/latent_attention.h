// Multi-head latent attention (DeepSeek-V2/V3; reference/deepseek-v3-architecture.md §2), with
// transformers' parameter names.
//
// Each token is compressed to a latent c (kv_lora_rank values, RMS-normalised) and one rotary key
// k_rope (qk_rope_head_dim values) shared by all heads. Head h's key is [W_UK,h c ; k_rope] and its
// value W_UV,h c, where kv_b_proj stacks W_UK and W_UV per head. Queries are [q_nope ; q_rope] per
// head, from q_proj or through the low-rank q_a_proj -> q_a_layernorm -> q_b_proj.
//
// Two ways to compute the same attention:
//   full      (training, scoring) keys and values expanded per head, as transformers computes them.
//   absorbed  (decoding from a cache) W_UK is folded into the query and W_UV applied after the
//             weighted sum, so the cache keeps only [c ; k_rope] per token: 576 values a layer for
//             DeepSeek-V3, where per-head keys and values would be 40,960.
#pragma once
#include <vector>

#include <torch/torch.h>

#include "model/config.h"
#include "model/modules.h"

namespace r1 {

struct KvCache;  // model/transformer.h

class LatentAttentionImpl : public torch::nn::Module {
 public:
  LatentAttentionImpl(const ModelConfig& c, const torch::TensorOptions& options);
  // x [B, T, H]; cos/sin [B, 1, T, qk_rope_head_dim]. Without a cache: causal attention over x
  // itself (or as `mask` [B, 1, T, T] allows). With one: [c ; k_rope] of x is written to layer
  // `layer` at `cache_slots` = {batch rows [B, 1], positions [B, T]} and queries attend, absorbed,
  // to cache entries as mask [B, 1, T, used] allows.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        KvCache* cache = nullptr, int64_t layer = 0,
                        const std::vector<at::indexing::TensorIndex>& cache_slots = {},
                        const torch::Tensor& mask = {}, int64_t used = 0);
  // TransformerImpl::forward_shared_prefix's attention (see AttentionImpl::forward_shared_prefix).
  torch::Tensor forward_shared_prefix(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                      int64_t P, int64_t n, const torch::Tensor& group, int64_t m,
                                      const torch::Tensor& mask, const torch::Tensor& keep);
  // The softmax scale: qk_head_dim^-1/2, times YaRN's mscale(factor, mscale_all_dim)^2 when the
  // rope is scaled (transformers' yarn_apply_mscale).
  double scale() const { return scale_; }

  Linear q_proj{nullptr};  // without q LoRA
  Linear q_a_proj{nullptr}, q_b_proj{nullptr};
  RMSNorm q_a_layernorm{nullptr};
  Linear kv_a_proj_with_mqa{nullptr}, kv_b_proj{nullptr}, o_proj{nullptr};
  RMSNorm kv_a_layernorm{nullptr};

 private:
  struct Projected {
    torch::Tensor q_nope, q_rope;  // [B, T, heads, nope], [B, T, heads, rope] (rotated)
    torch::Tensor latent, k_rope;  // [B, T, kv_lora_rank] (normalised), [B, T, rope] (rotated)
  };
  Projected project(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
  // Per-head keys [B, T, heads, nope + rope] and values [B, T, heads, v] of the full computation.
  std::pair<torch::Tensor, torch::Tensor> expand(const Projected& p);
  // The full form's attention and output projection: keys [B, heads, S, nope + rope] and values
  // [B, heads, S, v] per head; returns [B, T, H].
  torch::Tensor attend_per_head(const Projected& p, const torch::Tensor& keys, const torch::Tensor& values,
                                const torch::Tensor& mask);
  torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos_t, const torch::Tensor& sin_t) const;

  LatentAttentionConfig mla_;
  int64_t heads_;
  double scale_;
};
TORCH_MODULE(LatentAttention);

}  // namespace r1

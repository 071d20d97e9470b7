// The building blocks of every decoder r1 runs, with Hugging Face's parameter names: linear
// layers, embeddings, RMSNorm, the SwiGLU MLP (also each expert of a mixture of experts), and the
// attention product shared by grouped-query and latent attention.
#pragma once
#include <optional>

#include <torch/torch.h>

#include "model/bf16_matmul.h"

namespace r1 {

// y = x W^T + b with HF's parameter names. Created uninitialised: weights come from a
// checkpoint or from TransformerImpl::init_weights(), so loading a 7B model does not first
// draw 7B random numbers.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // plus the LoRA term when there is one
  torch::Tensor weight, bias;  // [out, in], [out] or undefined
  PackedWeight packed;         // decoding's packed copy of weight (packed_matmul.h)
  // LoRA (model/lora.h): submodules lora_A [r, in] and lora_B [out, r] when added; the output
  // gains lora_scaling * B(A(x)) while lora_enabled.
  std::shared_ptr<LinearImpl> lora_A, lora_B;
  double lora_scaling = 0;
  bool lora_enabled = true;
};
TORCH_MODULE(Linear);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t vocab, int64_t dim, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }
  torch::Tensor weight;  // [vocab, dim]
};
TORCH_MODULE(Embedding);

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  // (h + delta, forward(h + delta)): the residual add before this norm, fused when it can be.
  std::pair<torch::Tensor, torch::Tensor> add_then_forward(const torch::Tensor& h, const torch::Tensor& delta);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t hidden, int64_t intermediate, bool bias, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

// softmax(q k^T * scale + mask) v for q [B, H, T, Dk], k [B, KV, L, Dk], v [B, KV, L, Dv]: each
// of the KV key heads serves H / KV query heads. mask [B, 1, T, L] (true: may attend) or undefined
// for causal attention; scale defaults to 1/sqrt(Dk).
torch::Tensor scaled_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask, std::optional<double> scale = std::nullopt);

// Attention over GRPO's shared-prefix layout (TransformerImpl::forward_shared_prefix): q/k/v
// [1, K, heads, D] for the K positions of P prompt rows of n tokens then R completion rows of m
// (or, with `keep`, only those positions). Prompts attend causally to themselves; completion r to
// the prompt keys of row group[r] that mask [R, 1, m, n + m] lets it see, then causally to its own.
// Returns [1, K, heads * Dv], ready for the output projection.
torch::Tensor shared_prefix_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t P,
                                      int64_t n, const torch::Tensor& group, int64_t m, const torch::Tensor& mask,
                                      const torch::Tensor& keep, std::optional<double> scale = std::nullopt);

}  // namespace r1

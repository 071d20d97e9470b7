// Log-probabilities of chosen tokens under a language-model head without the [tokens, vocabulary]
// tensors: GRPO's training pass needs log p(completion token) and the entropy at every completion
// token, and on a real vocabulary (49K-152K ids) the logits, their log-softmax, its gradient and
// the entropy's product are each [tokens, vocabulary] (0.4 GB each for SmolLM2 at 16 x 128 tokens
// in float32). Here the head runs `chunk` rows at a time, forward and backward (which recomputes
// each chunk's logits from the saved hidden states and log-normalisers, as Liger's fused linear
// cross-entropy does), so memory holds one chunk's logits at a time. Any device and dtype; the products run in bf16 when asked
// (--precision bf16), everything after them in float32.
#pragma once
#include <utility>

#include <torch/torch.h>

namespace r1 {

// hidden [N, H], head weight [V', H] (its first `vocab` rows are the distribution's support),
// targets [N] int64 < vocab. Returns (log p(target) [N], differentiable with respect to hidden and
// weight; entropy [N], without gradient; zeros unless with_entropy) of
// softmax(hidden weight[:vocab]^T / temperature).
std::pair<torch::Tensor, torch::Tensor> vocab_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight,
                                                      const torch::Tensor& targets, int64_t vocab, double temperature,
                                                      bool bf16_products = false, int64_t chunk = 256,
                                                      bool with_entropy = true);

// R1_NO_CHUNKED_LOGPROBS=1 makes the training loops (pretrain/SFT, GRPO) take the whole
// [tokens, vocabulary] logits and their log-softmax instead, for A/B measurements of memory.
bool chunked_logprobs_enabled();

}  // namespace r1

// Small random models for tests: a few thousand parameters, fast on one CPU thread.
#pragma once
#include "model/config.h"
#include "model/transformer.h"

namespace r1::testing {

inline ModelConfig tiny_config(int64_t heads = 4, int64_t kv_heads = 2, bool tied = false) {
  ModelConfig c;
  c.vocab_size = 97;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = 32 / heads;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  c.initializer_range = 0.2;  // large enough that logits differ visibly between inputs
  c.eos_token_ids = {1};
  return c;
}

// Qwen3 at tiny_config's size: heads of 16 dims (wider than hidden / heads = 8) with per-head q/k
// norms.
inline ModelConfig tiny_qwen3_config() {
  ModelConfig c = tiny_config(4, 2);
  c.architecture = Architecture::kQwen3;
  c.head_dim = 16;
  return c;
}

// DeepSeek-V3's architecture at tiny_config's size: latent attention (q LoRA 16, latent 12, heads of
// 8 + 4 rope dims, values 6), a dense first layer, then 8 routed experts in 4 groups (2 per token,
// from the 2 best groups) and a shared expert.
inline ModelConfig tiny_deepseek_config() {
  ModelConfig c = tiny_config(4, 4);
  c.architecture = Architecture::kDeepseekV3;
  c.num_hidden_layers = 3;
  c.mla = {16, 12, 8, 4, 6, true};
  c.head_dim = 4;
  c.moe = {8, 1, 2, 16, 1, 4, 2, "noaux_tc", true, 2.5};
  return c;
}

inline Transformer random_model(const ModelConfig& c, uint64_t seed = 1) {
  Transformer m(c);
  m->init_weights(seed);
  // Non-trivial norm weights and biases, so tests exercise them too.
  torch::NoGradGuard g;
  for (auto& p : m->named_parameters())
    if (p.key().find("norm") != std::string::npos || p.key().find("bias") != std::string::npos)
      p.value().add_(torch::randn(p.value().sizes()) * 0.1);
  return m;
}

inline torch::Tensor random_tokens(int64_t b, int64_t t, int64_t vocab, uint64_t seed = 3) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(vocab, {b, t}, gen, torch::kInt64);
}

}  // namespace r1::testing

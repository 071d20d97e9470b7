// Minimal batched sampling over the KV cache: prefill every prompt in one forward, then decode
// one token per step for the whole batch. Greedy at temperature 0. (The full engine with
// continuous batching, top-p/top-k and stop strings builds on this.)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace r1 {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  double temperature = 0.0;  // 0 = greedy
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // default: the config's eos ids
};

struct Generation {
  std::vector<int64_t> ids;      // generated tokens (a stop token included)
  std::vector<float> logprobs;   // log p of each generated token under the sampled distribution
  std::string finish_reason;     // "stop" or "length"
};

std::vector<Generation> generate(Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
                                 const GenerateOptions& options);

}  // namespace r1

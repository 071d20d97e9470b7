// Sampling parameters of one request and the logits processing that turns a row of model logits
// into the distribution a token is drawn from. Order (as vLLM and transformers): logit bias,
// repetition penalty, presence/frequency penalties, temperature, top-k, top-p, min-p.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/torch.h>

namespace r1 {

struct SamplingParams {
  double temperature = 1.0;         // 0 = greedy (argmax of the processed logits)
  int64_t top_k = 0;                // keep the k most likely tokens; 0 = off
  double top_p = 1.0;               // keep the smallest set with this much probability mass
  double min_p = 0.0;               // keep tokens with p >= min_p x p(most likely)
  double repetition_penalty = 1.0;  // CTRL/transformers: logits of tokens in prompt or output / (or x) this
  double presence_penalty = 0.0;    // OpenAI: minus this for every token already generated
  double frequency_penalty = 0.0;   // OpenAI: minus this x how often the token was generated
  std::unordered_map<int64_t, double> logit_bias;  // added to the logits
  int64_t max_new_tokens = 256;
  std::vector<int64_t> stop_ids;    // besides the model's EOS tokens (unless ignore_eos)
  std::vector<std::string> stop;    // stop strings, matched on the decoded text
  bool ignore_eos = false;
  std::optional<uint64_t> seed;     // same seed + same batch composition = same output
  bool raw_logprobs = false;        // also report log p under the unprocessed model distribution

  // Throws r1::Error naming the first invalid field (vocab_size bounds token ids).
  void validate(int64_t vocab_size) const;
};

// Token counts a sequence's penalties depend on.
struct PenaltyContext {
  const std::vector<int64_t>* prompt = nullptr;
  const std::vector<int64_t>* generated = nullptr;
};

// logits: one row [V] (any dtype/device). Returns the log-probabilities [V] (fp32, CPU) of the
// distribution to sample from: -inf for tokens the filters removed. For temperature 0 the row is
// the log-softmax of the processed logits at temperature 1 (what greedy decoding reports).
torch::Tensor sampling_logprobs(const torch::Tensor& logits, const SamplingParams& params, const PenaltyContext& context);

// Whether sampling_logprobs reduces to log_softmax(logits / temperature) for these parameters
// (no bias, penalties or filters): such rows are processed together, as one batched operation.
bool is_plain(const SamplingParams& params);

// Draws a token from log-probabilities [V] (contiguous fp32 CPU): argmax at temperature 0, else
// inverse-CDF sampling with one uniform number from `generator` (the same draw whether the row
// was processed alone or in a batch, so a seed gives the same tokens either way).
int64_t sample_token(const float* logprobs, int64_t V, const SamplingParams& params, at::Generator& generator);

// Greedy decoding straight from raw logits [V] (contiguous fp32 CPU): the first largest logit's id,
// and in *logprob its log-softmax (-log sum exp(logits - max)), without writing the log-softmax
// of the whole row: what sample_token at temperature 0 picks from sampling_logprobs, in two
// vectorised reads of the row.
int64_t greedy_token(const float* logits, int64_t V, float* logprob);

}  // namespace r1

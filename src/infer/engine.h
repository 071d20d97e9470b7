// The generation engine shared by r1 generate, r1 chat, r1 serve and GRPO rollouts.
//
// Continuous batching over one KV cache of `max_batch` rows: a request waits until it has rows
// for its n samples, its prompt is prefilled (with the other newly admitted prompts, in one
// forward), the prompt's cache row is copied to its other samples, and from then on every
// active sequence advances one token per decode step. A sequence that finishes (stop token, stop
// string, length, cancel) frees its row at once: the last active row moves into it, so active
// sequences always fill rows 0..A-1 and the next waiting request can start without waiting for
// the longest one. Memory is fixed by max_batch x max_context; a request that cannot fit in
// max_context is refused with an error naming the numbers.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "infer/sampling.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace r1 {

struct EngineOptions {
  int64_t max_batch = 32;    // sequences decoded together (KV cache rows)
  int64_t max_context = 0;   // prompt + generated tokens per sequence; 0 = the model's max_position_embeddings
  // CPU float32 decoding multiplies by copies of the weights packed once for MKL (faster products
  // for 5-256 rows; the weights' size again in memory). model/packed_matmul.h.
  bool packed_weights = true;
  // Decode by int8 copies of float32 models' linear weights (one scale per output row), quantised
  // when a weight first serves and again after it changes: GRPO's --rollout-dtype int8 (a quarter
  // of the weight bytes per step; the training passes keep float32). model/packed_matmul.h.
  bool int8_weights = false;
  // Self-speculative decoding (DeepSeek-V3 models with a multi-token prediction module): each step
  // the MTP module drafts the token after next, the model checks it in the same forward as the
  // next token, and a right draft yields two tokens for one step. What is sampled is exactly what
  // plain decoding samples: a draft is kept only when it equals the token drawn at its position.
  bool speculative = false;
};

struct Completion {
  std::vector<int64_t> ids;       // generated tokens, a stop token included
  std::vector<float> logprobs;    // log p of each id under the distribution it was drawn from
  std::vector<float> raw_logprobs;  // under the unprocessed model (SamplingParams::raw_logprobs)
  std::string text;               // decoded ids without special tokens, cut before a stop string
  std::string finish_reason;      // "stop", "length" or "cancelled"
  std::string stop_matched;       // the stop string that ended it, if any
  int64_t prompt_tokens = 0;
  double queue_s = 0, prefill_s = 0, decode_s = 0;
};

// What a streaming caller sees, from the engine's thread: text as it becomes final (held back
// while it could still turn into a stop string), then one event with `done` and the completion.
struct StreamEvent {
  int sample = 0;
  int64_t id = -1;        // the new token (-1 on the final event)
  float logprob = 0;
  std::string text_delta;
  bool done = false;
  const Completion* completion = nullptr;  // set when done
};

struct Request {
  std::vector<int64_t> prompt;
  SamplingParams params;
  int n = 1;  // samples sharing the prompt's prefill
  std::function<void(const StreamEvent&)> on_event;  // optional
};

class Engine {
 public:
  // `tokenizer` (may be null) decodes text and stop strings; the model's EOS ids stop sequences.
  Engine(Transformer model, const Tokenizer* tokenizer, EngineOptions options = {});
  ~Engine();

  // Runs the requests to completion in the calling thread: result[r][i] is sample i of request r.
  std::vector<std::vector<Completion>> generate(const std::vector<Request>& requests);

  // Server use: a background thread steps the engine while work is queued. submit() validates
  // (throws r1::Error) and returns an id; events arrive on request.on_event; cancel() finishes
  // the request's samples with "cancelled" at the next step.
  void start();
  uint64_t submit(Request request);
  void cancel(uint64_t id);
  void stop();

  const Transformer& model() const { return model_; }
  const Tokenizer* tokenizer() const { return tokenizer_; }
  int64_t max_context() const { return max_context_; }
  int64_t max_batch() const { return options_.max_batch; }
  int64_t kv_cache_bytes() const;
  // Frees the KV cache between batch calls (GRPO's training pass runs without it); the next call
  // allocates it again. An error while the background thread runs.
  void release_cache();
  // Counters for benchmarks and /health: decode steps run, tokens generated, sequences waiting/active.
  int64_t steps() const { return steps_; }
  int64_t generated_tokens() const { return generated_tokens_; }
  size_t waiting() const;
  size_t active() const { return active_count_; }
  // Speculative decoding: drafts checked and drafts that were the token drawn.
  int64_t drafted_tokens() const { return drafted_tokens_; }
  int64_t accepted_tokens() const { return accepted_tokens_; }

 private:
  struct Sequence;
  struct Pending;
  void validate(const Request& r) const;
  uint64_t enqueue(Request request);
  bool step();  // one admission + decode round; false when there was nothing to do
  void admit();
  void decode();
  // The MTP module's guess at each row's token after next: hidden [R, S, H] are the model's states at
  // positions start[r].. of rows first.., next [R, S] the tokens after them, pick[r] the position
  // whose guess the row keeps.
  void draft(const torch::Tensor& hidden, const torch::Tensor& next, const std::vector<int64_t>& start,
             int64_t first, const std::vector<int64_t>& pick);
  // Samples one token for each row of logits [R, V] (plain rows batched), then consume()s it.
  void sample_rows(const torch::Tensor& logits, const std::vector<Sequence*>& rows);
  void consume(Sequence& s, int64_t id, float logprob, float raw_logprob);  // records it, checks stops
  void finish(Sequence& s, const std::string& reason);
  void retire_finished();
  void ensure_cache();  // allocated on first use: max_batch x max_context
  // Batch calls with max_context unset: the context sized to what the requests can reach.
  void fit_context_to(const std::vector<Request>& requests);

  Transformer model_;
  const Tokenizer* tokenizer_;
  EngineOptions options_;
  int64_t max_context_;
  std::vector<int64_t> eos_ids_;
  std::unique_ptr<KvCache> cache_;
  std::vector<std::unique_ptr<Sequence>> active_;  // active_[i] lives in cache row i (engine thread only)
  std::deque<std::unique_ptr<Pending>> waiting_;
  std::vector<uint64_t> cancelled_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::thread worker_;
  std::atomic<bool> stopping_{false};
  uint64_t next_id_ = 1;
  uint64_t seed_counter_ = 0;
  std::atomic<int64_t> steps_{0}, generated_tokens_{0}, drafted_tokens_{0}, accepted_tokens_{0};
  std::atomic<size_t> active_count_{0};
};

}  // namespace r1

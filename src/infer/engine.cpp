#include "infer/engine.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <limits>
#include <random>

#include "model/packed_matmul.h"
#include "util/error.h"
#include "util/parallel_rows.h"

namespace r1 {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Bytes of `text` that may be shown while a stop string could still be completing: all but the
// last (longest stop - 1) bytes, moved back to a UTF-8 character boundary.
size_t safe_prefix(const std::string& text, size_t holdback) {
  if (text.size() <= holdback) return 0;
  size_t n = text.size() - holdback;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return n;
}

}  // namespace

struct Engine::Pending {
  uint64_t id;
  std::shared_ptr<const Request> request;
  Clock::time_point submitted;
};

struct Engine::Sequence {
  uint64_t request_id;
  int sample;
  std::shared_ptr<const Request> request;
  at::Generator generator;
  int64_t length = 0;  // tokens in this sequence's cache row
  int64_t draft = 0;   // speculative decoding: the MTP module's guess at the token after the last one
  Completion out;
  std::unique_ptr<StreamDecoder> decoder;
  size_t emitted = 0;
  bool finished = false;
  Clock::time_point submitted, admitted;
};

Engine::Engine(Transformer model, const Tokenizer* tokenizer, EngineOptions options)
    : model_(std::move(model)), tokenizer_(tokenizer), options_(options) {
  const ModelConfig& c = model_->config();
  max_context_ = options_.max_context > 0 ? options_.max_context : c.max_position_embeddings;
  if (options_.max_batch < 1) throw Error("engine: max_batch must be at least 1");
  if (options_.speculative && model_->mtp_modules() < 1)
    throw Error("speculative decoding drafts with a multi-token prediction module, and this model has none "
                "(a DeepSeek-V3 model with num_nextn_predict_layers >= 1 and the module's weights)");
  eos_ids_ = c.eos_token_ids;
  if (tokenizer_ && tokenizer_->eos_id() &&
      std::find(eos_ids_.begin(), eos_ids_.end(), *tokenizer_->eos_id()) == eos_ids_.end())
    eos_ids_.push_back(*tokenizer_->eos_id());
  model_->eval();
}

Engine::~Engine() { stop(); }

int64_t Engine::kv_cache_bytes() const {
  if (cache_) return cache_->bytes();
  const ModelConfig& c = model_->config();
  const int64_t element = model_->model->embed_tokens->weight.element_size();
  const int64_t layers = c.num_hidden_layers + (options_.speculative ? 1 : 0);
  return c.kv_cache_values_per_token() / c.num_hidden_layers * layers * options_.max_batch * max_context_ * element;
}

size_t Engine::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_.size();
}


void Engine::validate(const Request& r) const {
  const int64_t vocab = model_->config().vocab_size;
  if (r.prompt.empty()) throw Error("the prompt is empty (give at least one token, e.g. BOS)");
  for (int64_t id : r.prompt)
    if (id < 0 || id >= vocab)
      throw Error("prompt token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(vocab) + ")");
  if (r.n < 1) throw Error("n must be at least 1");
  if (r.n > options_.max_batch)
    throw Error("n = " + std::to_string(r.n) + " samples do not fit in the engine's batch of " +
                std::to_string(options_.max_batch) + " (raise --max-batch)");
  r.params.validate(vocab);
  if (!r.params.stop.empty() && !tokenizer_) throw Error("stop strings need a tokenizer");
  const int64_t need = static_cast<int64_t>(r.prompt.size()) + 1;
  if (need > max_context_)
    throw Error("the prompt has " + std::to_string(r.prompt.size()) + " tokens; the context limit is " +
                std::to_string(max_context_) + " tokens (prompt + generated; raise --max-context)");
}

uint64_t Engine::enqueue(Request request) {
  validate(request);
  auto pending = std::make_unique<Pending>();
  pending->request = std::make_shared<const Request>(std::move(request));
  pending->submitted = Clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  pending->id = next_id_++;
  const uint64_t id = pending->id;
  waiting_.push_back(std::move(pending));
  wake_.notify_all();
  return id;
}

uint64_t Engine::submit(Request request) { return enqueue(std::move(request)); }

void Engine::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_.push_back(id);
  wake_.notify_all();
}

void Engine::start() {
  if (worker_.joinable()) return;
  stopping_ = false;
  worker_ = std::thread([this] {
    while (!stopping_) {
      bool worked = false;
      try {
        worked = step();
      } catch (const std::exception& e) {
        // A failed forward (out of memory, ...): end what is running, keep serving.
        std::cerr << "engine: " << e.what() << "\n";
        for (auto& s : active_)
          if (!s->finished) finish(*s, "error");
        retire_finished();
      }
      if (!worked) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait_for(lock, std::chrono::milliseconds(100),
                       [&] { return stopping_ || !waiting_.empty() || !cancelled_.empty(); });
      }
    }
  });
}

void Engine::stop() {
  stopping_ = true;
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

// With --max-context unset (the model's limit), a batch call that runs the engine itself sizes the
// cache's context to what its requests can reach (prompt + max_new_tokens, and a position for a
// speculative draft), growing it for a later call that needs more: one prompt to a model with an
// 8K context would otherwise hold max_batch x 8K positions (12 GB for SmolLM2-135M at 32 rows).
void Engine::fit_context_to(const std::vector<Request>& requests) {
  if (options_.max_context > 0 || worker_.joinable()) return;
  int64_t need = 1;
  for (const auto& r : requests)
    need = std::max(need, static_cast<int64_t>(r.prompt.size()) + r.params.max_new_tokens + 2);
  const int64_t limit = model_->config().max_position_embeddings;
  need = std::min(need, limit);
  if (cache_ && need <= max_context_) return;
  max_context_ = cache_ ? std::max(max_context_, need) : need;
  cache_.reset();
}

std::vector<std::vector<Completion>> Engine::generate(const std::vector<Request>& requests) {
  fit_context_to(requests);
  for (const auto& r : requests) validate(r);
  std::vector<std::vector<Completion>> results(requests.size());
  std::mutex done_mutex;
  std::condition_variable done_cv;
  size_t remaining = 0;
  for (const auto& r : requests) remaining += r.n;
  for (size_t i = 0; i < requests.size(); ++i) {
    results[i].resize(requests[i].n);
    Request copy = requests[i];
    auto user = copy.on_event;
    copy.on_event = [&, i, user](const StreamEvent& e) {
      if (user) user(e);
      if (!e.done) return;
      std::lock_guard<std::mutex> lock(done_mutex);
      results[i][e.sample] = *e.completion;
      --remaining;
      done_cv.notify_all();
    };
    enqueue(std::move(copy));
  }
  if (worker_.joinable()) {
    std::unique_lock<std::mutex> lock(done_mutex);
    done_cv.wait(lock, [&] { return remaining == 0; });
  } else {
    while (true) {
      {
        std::lock_guard<std::mutex> lock(done_mutex);
        if (remaining == 0) break;
      }
      step();
    }
  }
  return results;
}

namespace {

// Copies cache positions [0, length) of rows from[i] into rows to[i], every layer at once (all
// sources are read before any row is written). One gather and one scatter per layer tensor
// instead of a copy per row and layer: GRPO's rollouts start 7 samples per prompt and retire
// 128 rows per step (~1,900 small copies a step on the demo model; generation 2-3% faster without
// them). Positions past a row's own length may receive stale entries: they are overwritten before
// they are read.
void copy_cache_rows(KvCache& cache, const std::vector<int64_t>& from, const std::vector<int64_t>& to, int64_t length) {
  if (from.empty() || length <= 0) return;
  const auto device = cache.k[0].device();
  const auto src = torch::tensor(from, torch::kInt64).to(device), dst = torch::tensor(to, torch::kInt64).to(device);
  for (auto* layers : {&cache.k, &cache.v})
    for (auto& t : *layers) {
      auto prefix = t.narrow(2, 0, length);
      prefix.index_copy_(0, dst, prefix.index_select(0, src));
    }
}

}  // namespace

void Engine::release_cache() {
  if (worker_.joinable()) throw Error("engine: the KV cache cannot be released while the engine serves");
  cache_.reset();
}

void Engine::ensure_cache() {
  if (!cache_) cache_ = std::make_unique<KvCache>(model_->make_cache(options_.max_batch, max_context_, options_.speculative));
}

bool Engine::step() {
  torch::InferenceMode inference;
  // Decode steps multiply a few rows by every weight: from copies packed once (packed_matmul.h).
  CpuPackedMatmulScope packed_weights(options_.packed_weights);
  CpuInt8MatmulScope int8_weights(options_.int8_weights);
  std::vector<uint64_t> cancelled;
  std::vector<std::unique_ptr<Pending>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled.swap(cancelled_);
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (std::find(cancelled.begin(), cancelled.end(), (*it)->id) != cancelled.end()) {
        dropped.push_back(std::move(*it));
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& p : dropped) {  // cancelled before they started
    for (int i = 0; i < p->request->n; ++i) {
      Completion c;
      c.finish_reason = "cancelled";
      c.prompt_tokens = static_cast<int64_t>(p->request->prompt.size());
      if (p->request->on_event) p->request->on_event(StreamEvent{i, -1, 0, "", true, &c});
    }
  }
  for (auto& s : active_)
    if (std::find(cancelled.begin(), cancelled.end(), s->request_id) != cancelled.end()) finish(*s, "cancelled");
  retire_finished();
  const size_t before = active_.size();
  admit();
  retire_finished();
  const bool admitted = active_.size() != before || !dropped.empty();
  if (active_.empty()) return admitted || !cancelled.empty();
  decode();
  retire_finished();
  return true;
}

void Engine::admit() {
  std::vector<std::unique_ptr<Pending>> admitted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    int64_t rows = static_cast<int64_t>(active_.size());
    while (!waiting_.empty() && rows + waiting_.front()->request->n <= options_.max_batch) {
      rows += waiting_.front()->request->n;
      admitted.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
  }
  if (admitted.empty()) return;
  ensure_cache();
  const auto t0 = Clock::now();
  // Prefill every admitted prompt once, right-padded, in rows first..first+k-1.
  const int64_t first = static_cast<int64_t>(active_.size()), k = static_cast<int64_t>(admitted.size());
  int64_t longest = 0;
  for (const auto& p : admitted) longest = std::max<int64_t>(longest, p->request->prompt.size());
  auto tokens = torch::zeros({k, longest}, torch::kInt64);
  for (int64_t j = 0; j < k; ++j)
    std::copy(admitted[j]->request->prompt.begin(), admitted[j]->request->prompt.end(), tokens[j].data_ptr<int64_t>());
  const auto device = model_->model->embed_tokens->weight.device();
  // Prefill multiplies every prompt position at once, enough rows to amortise MKL's own re-packing;
  // packing here would also hold the packed copies (the weights' size again) for decoding at batch
  // 1-4, which r1's decode kernels serve without them.
  CpuPackedMatmulScope prefill_unpacked(false);
  auto hidden = model_->forward_cached(tokens.to(device), std::vector<int64_t>(k, 0), *cache_, first);
  // Speculative decoding: the MTP module's cache over every prompt position but the last (whose
  // next token each sample draws for itself), before the prompts' rows are copied.
  if (options_.speculative && longest > 1)
    model_->mtp_cached(hidden.narrow(1, 0, longest - 1), tokens.narrow(1, 1, longest - 1).to(device),
                       std::vector<int64_t>(k, 0), *cache_, first);
  std::vector<int64_t> last(k);
  for (int64_t j = 0; j < k; ++j) last[j] = static_cast<int64_t>(admitted[j]->request->prompt.size()) - 1;
  auto index = torch::tensor(last, torch::kInt64).to(device).view({k, 1, 1}).expand({k, 1, hidden.size(2)});
  const auto last_hidden = hidden.gather(1, index).squeeze(1);
  auto logits = model_->logits(last_hidden).to(torch::kFloat32).cpu();
  const auto t1 = Clock::now();

  auto make = [&](const Pending& p, int sample) {
    auto s = std::make_unique<Sequence>();
    s->request_id = p.id;
    s->sample = sample;
    s->request = p.request;
    const auto& params = p.request->params;
    uint64_t seed = params.seed ? *params.seed + static_cast<uint64_t>(sample)
                                : std::random_device{}() ^ (++seed_counter_ * 0x9e3779b97f4a7c15ull);
    s->generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    s->length = static_cast<int64_t>(p.request->prompt.size());
    s->out.prompt_tokens = s->length;
    if (tokenizer_) s->decoder = std::make_unique<StreamDecoder>(*tokenizer_, true);
    s->submitted = p.submitted;
    s->admitted = t0;
    s->out.queue_s = seconds_between(p.submitted, t0);
    s->out.prefill_s = seconds_between(t0, t1);
    return s;
  };
  // Rows: the k prefilled samples 0 first (they are where the prefill wrote), then the other
  // samples, whose rows receive a copy of their prompt's cache.
  std::vector<int64_t> logits_row, copy_from, copy_to;
  for (int64_t j = 0; j < k; ++j) {
    active_.push_back(make(*admitted[j], 0));
    logits_row.push_back(j);
  }
  for (int64_t j = 0; j < k; ++j) {
    for (int i = 1; i < admitted[j]->request->n; ++i) {
      copy_from.push_back(first + j);
      copy_to.push_back(static_cast<int64_t>(active_.size()));
      active_.push_back(make(*admitted[j], i));
      logits_row.push_back(j);
    }
  }
  copy_cache_rows(*cache_, copy_from, copy_to, longest);
  active_count_ = active_.size();
  std::vector<Sequence*> rows;
  for (size_t r = first; r < active_.size(); ++r) rows.push_back(active_[r].get());
  const auto prompt_of_row = torch::tensor(logits_row, torch::kInt64);
  sample_rows(logits.index_select(0, prompt_of_row), rows);
  if (!options_.speculative) return;
  // Each new row's first draft: the MTP module at its prompt's last position, after the token it drew.
  std::vector<int64_t> start, next;
  for (auto* s : rows) {
    start.push_back(s->length - 1);
    next.push_back(s->out.ids.back());
  }
  const auto R = static_cast<int64_t>(rows.size());
  draft(last_hidden.index_select(0, prompt_of_row.to(device)).unsqueeze(1),
        torch::tensor(next, torch::kInt64).view({R, 1}).to(device), start, first, std::vector<int64_t>(R, 0));
}

void Engine::decode() {
  const int64_t A = static_cast<int64_t>(active_.size());
  // Each row's last token, and with speculative decoding its draft of the token after it.
  const int64_t S = options_.speculative ? 2 : 1;
  std::vector<int64_t> input(A * S), start(A);
  for (int64_t i = 0; i < A; ++i) {
    input[i * S] = active_[i]->out.ids.back();
    if (S == 2) input[i * S + 1] = active_[i]->draft;
    start[i] = active_[i]->length;
  }
  const auto device = model_->model->embed_tokens->weight.device();
  auto hidden = model_->forward_cached(torch::tensor(input, torch::kInt64).view({A, S}).to(device), start, *cache_, 0);
  auto logits = S == 1 ? model_->logits(hidden.squeeze(1)) : model_->logits(hidden);
  ++steps_;
  std::vector<Sequence*> rows;
  for (int64_t i = 0; i < A; ++i) {
    ++active_[i]->length;
    rows.push_back(active_[i].get());
  }
  sample_rows(S == 1 ? logits : logits.select(1, 0), rows);
  if (S == 1) return;

  // A draft equal to the token just drawn was the right input at its position: that position's
  // logits give the next token as well. Elsewhere the draft's cache entry is overwritten next step.
  std::vector<Sequence*> kept;
  std::vector<int64_t> kept_rows, pick(A, 0), next(A * 2);
  for (int64_t i = 0; i < A; ++i) {
    Sequence& s = *active_[i];
    if (!s.finished && s.out.ids.back() == s.draft) {
      ++s.length;
      kept.push_back(&s);
      kept_rows.push_back(i);
      pick[i] = 1;
    }
  }
  drafted_tokens_ += A;
  accepted_tokens_ += static_cast<int64_t>(kept.size());
  if (!kept.empty())
    sample_rows(logits.select(1, 1).index_select(0, torch::tensor(kept_rows, torch::kInt64).to(device)), kept);
  // The MTP module at both positions: after the drawn token, and after the second one where there is one.
  for (int64_t i = 0; i < A; ++i) {
    const auto& ids = active_[i]->out.ids;
    next[i * 2] = ids[ids.size() - 1 - pick[i]];
    next[i * 2 + 1] = ids.back();
  }
  draft(hidden, torch::tensor(next, torch::kInt64).view({A, 2}).to(device), start, 0, pick);
}

void Engine::draft(const torch::Tensor& hidden, const torch::Tensor& next, const std::vector<int64_t>& start,
                   int64_t first, const std::vector<int64_t>& pick) {
  const auto R = static_cast<int64_t>(pick.size());
  const auto state = model_->mtp_cached(hidden, next, start, *cache_, first);
  const auto index = torch::tensor(pick, torch::kInt64).to(state.device()).view({R, 1, 1}).expand({R, 1, state.size(2)});
  const auto guesses = model_->logits(state.gather(1, index).squeeze(1)).argmax(-1).to(torch::kCPU).contiguous();
  const int64_t* guess = guesses.data_ptr<int64_t>();
  for (int64_t r = 0; r < R; ++r) active_[first + r]->draft = guess[r];
}

void Engine::sample_rows(const torch::Tensor& raw_logits, const std::vector<Sequence*>& rows) {
  const int64_t R = raw_logits.size(0), V = raw_logits.size(1);
  torch::Tensor logits = raw_logits.to(torch::kCPU, torch::kFloat32).contiguous();
  bool any_raw = false;
  for (auto* s : rows) any_raw = any_raw || s->request->params.raw_logprobs;
  const torch::Tensor raw = any_raw ? torch::log_softmax(logits, 1).contiguous() : torch::Tensor();
  // Embedding rows past the tokenizer's vocabulary (padding to a multiple) are no tokens: never
  // sample them.
  if (tokenizer_ && tokenizer_->vocab_size() < V) {
    logits = logits.clone();
    logits.narrow(1, tokenizer_->vocab_size(), V - tokenizer_->vocab_size()).fill_(-std::numeric_limits<float>::infinity());
  }
  // A batch of plain greedy rows (evaluation, greedy generation): argmax and its log-prob straight
  // from the logits, rows in parallel, without writing the batch's log-softmax.
  const bool all_greedy = !any_raw && std::all_of(rows.begin(), rows.end(), [](const Sequence* s) {
    return s->request->params.temperature == 0 && is_plain(s->request->params);
  });
  if (all_greedy) {
    std::vector<int64_t> ids(static_cast<size_t>(R));
    std::vector<float> logprobs(static_cast<size_t>(R));
    const float* row0 = logits.data_ptr<float>();
    parallel_rows(0, R, std::max<int64_t>(1, 65536 / V), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) ids[i] = greedy_token(row0 + i * V, V, &logprobs[i]);
    });
    for (int64_t i = 0; i < R; ++i) consume(*rows[i], ids[i], logprobs[i], 0.0f);
    return;
  }
  // Rows with plain parameters: one batched log-softmax at their temperatures (1 for greedy).
  std::vector<float> inverse_t(R, 1.0f);
  for (int64_t i = 0; i < R; ++i) {
    const auto& p = rows[i]->request->params;
    if (is_plain(p) && p.temperature > 0) inverse_t[i] = static_cast<float>(1.0 / p.temperature);
  }
  // (At temperature 1 or greedy, the common cases, no scaling pass over the logits.)
  const bool unscaled = std::all_of(inverse_t.begin(), inverse_t.end(), [](float t) { return t == 1.0f; });
  const torch::Tensor plain =
      torch::log_softmax(unscaled ? logits : logits * torch::tensor(inverse_t).unsqueeze(1), 1).contiguous();
  // Plain rows read their log-probs in place (a tensor per row costs more than sampling it);
  // the others get theirs from the filters, here, on this thread (torch ops).
  const float* plain_rows = plain.data_ptr<float>();
  const float* raw_rows = any_raw ? raw.data_ptr<float>() : nullptr;
  std::vector<torch::Tensor> filtered(static_cast<size_t>(R));
  std::vector<const float*> row_logprobs(static_cast<size_t>(R));
  for (int64_t i = 0; i < R; ++i) {
    Sequence& s = *rows[i];
    const SamplingParams& p = s.request->params;
    if (!is_plain(p)) filtered[i] = sampling_logprobs(logits[i], p, {&s.request->prompt, &s.out.ids});
    row_logprobs[i] = is_plain(p) ? plain_rows + i * V : filtered[i].data_ptr<float>();
  }
  // The draws, rows in parallel (each row has its own generator): a draw walks the whole
  // vocabulary, 150k tokens for Qwen2. Rows of small vocabularies stay on one thread.
  std::vector<int64_t> ids(static_cast<size_t>(R));
  parallel_rows(0, R, std::max<int64_t>(1, 65536 / V), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) ids[i] = sample_token(row_logprobs[i], V, rows[i]->request->params, rows[i]->generator);
  });
  for (int64_t i = 0; i < R; ++i)
    consume(*rows[i], ids[i], row_logprobs[i][ids[i]], raw_rows ? raw_rows[i * V + ids[i]] : 0.0f);
}

void Engine::consume(Sequence& s, int64_t id, float logprob, float raw_logprob) {
  const SamplingParams& p = s.request->params;
  s.out.ids.push_back(id);
  s.out.logprobs.push_back(logprob);
  if (p.raw_logprobs) s.out.raw_logprobs.push_back(raw_logprob);
  ++generated_tokens_;
  const size_t old_size = s.out.text.size();
  if (s.decoder) s.out.text += s.decoder->push(static_cast<int32_t>(id));

  size_t longest_stop = 0;
  for (const auto& stop : p.stop) longest_stop = std::max(longest_stop, stop.size());
  const bool stop_token = (!p.ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end()) ||
                          std::find(p.stop_ids.begin(), p.stop_ids.end(), id) != p.stop_ids.end();
  std::string reason;
  if (stop_token) reason = "stop";
  if (reason.empty() && longest_stop > 0) {
    // Only text that this token added (plus the stop length before it) can hold a new match.
    const size_t from = old_size >= longest_stop ? old_size - longest_stop + 1 : 0;
    size_t best = std::string::npos;
    for (const auto& stop : p.stop) {
      const size_t at = s.out.text.find(stop, from);
      if (at != std::string::npos && at < best) {
        best = at;
        s.out.stop_matched = stop;
      }
    }
    if (best != std::string::npos) {
      s.out.text.resize(best);
      reason = "stop";
    }
  }
  if (reason.empty() && (static_cast<int64_t>(s.out.ids.size()) >= p.max_new_tokens || s.length + 1 >= max_context_))
    reason = "length";
  if (!reason.empty() && s.decoder && s.out.stop_matched.empty()) s.out.text += s.decoder->finish();

  if (s.request->on_event) {
    const size_t safe = reason.empty() ? safe_prefix(s.out.text, longest_stop > 0 ? longest_stop - 1 : 0)
                                       : s.out.text.size();
    StreamEvent e{s.sample, id, s.out.logprobs.back(), "", false, nullptr};
    if (safe > s.emitted) {
      e.text_delta = s.out.text.substr(s.emitted, safe - s.emitted);
      s.emitted = safe;
    }
    s.request->on_event(e);
  }
  if (!reason.empty()) finish(s, reason);
}

void Engine::finish(Sequence& s, const std::string& reason) {
  if (s.finished) return;
  s.finished = true;
  s.out.finish_reason = reason;
  s.out.decode_s = std::max(0.0, seconds_between(s.admitted, Clock::now()) - s.out.prefill_s);
  if (s.request->on_event) {
    StreamEvent e{s.sample, -1, 0, "", true, &s.out};
    if (s.out.text.size() > s.emitted) e.text_delta = s.out.text.substr(s.emitted);
    s.emitted = s.out.text.size();
    s.request->on_event(e);
  }
}

void Engine::retire_finished() {
  // The last row moves into each finished one's place, so active rows stay 0..A-1; origin[i] is
  // the cache row whose entries row i must then hold, and the cache moves once, at the end.
  std::vector<int64_t> origin(active_.size());
  for (size_t i = 0; i < origin.size(); ++i) origin[i] = static_cast<int64_t>(i);
  for (size_t i = 0; i < active_.size();) {
    if (!active_[i]->finished) {
      ++i;
      continue;
    }
    const size_t last = active_.size() - 1;
    if (i != last) {
      std::swap(active_[i], active_[last]);
      std::swap(origin[i], origin[last]);
    }
    active_.pop_back();
    origin.pop_back();
  }
  std::vector<int64_t> from, to;
  int64_t length = 0;
  for (size_t i = 0; i < active_.size(); ++i)
    if (origin[i] != static_cast<int64_t>(i)) {
      from.push_back(origin[i]);
      to.push_back(static_cast<int64_t>(i));
      length = std::max(length, active_[i]->length);
    }
  if (cache_) copy_cache_rows(*cache_, from, to, length);
  active_count_ = active_.size();
}

}  // namespace r1

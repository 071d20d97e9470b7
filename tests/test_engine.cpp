// The generation engine and the sampling filters: cache vs recompute, batch vs one at a time,
// filters on hand-built distributions, penalties, reported log-probs, stop strings, streaming,
// cancellation and limits.
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/DistributionsHelper.h>

#include "expect_error.h"
#include "infer/engine.h"
#include "test_helpers.h"
#include "tokenizer/trainer.h"

namespace r1 {
namespace {

using testing::expect_error;

std::vector<int64_t> prompt_of(int64_t length, int64_t vocab, uint64_t seed) {
  auto t = testing::random_tokens(1, length, vocab, seed);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + length};
}

Request greedy(std::vector<int64_t> prompt, int64_t new_tokens) {
  Request r;
  r.prompt = std::move(prompt);
  r.params.temperature = 0;
  r.params.max_new_tokens = new_tokens;
  r.params.ignore_eos = true;
  return r;
}

TEST(Engine, GreedyWithTheCacheEqualsRecomputingEveryStep) {
  auto c = testing::tiny_config();
  Transformer model = testing::random_model(c);
  EngineOptions options;
  options.max_batch = 2;  // 3 requests: the third waits for a free row
  Engine engine(model, nullptr, options);
  std::vector<Request> requests = {greedy(prompt_of(5, c.vocab_size, 1), 12), greedy(prompt_of(9, c.vocab_size, 2), 7),
                                   greedy(prompt_of(3, c.vocab_size, 3), 10)};
  const auto results = engine.generate(requests);
  torch::NoGradGuard no_grad;
  for (size_t r = 0; r < requests.size(); ++r) {
    std::vector<int64_t> seq = requests[r].prompt;
    std::vector<int64_t> want;
    std::vector<float> want_lp;
    for (int64_t step = 0; step < requests[r].params.max_new_tokens; ++step) {
      auto tokens = torch::tensor(seq, torch::kInt64).unsqueeze(0);
      auto logits = model->logits(model->forward(tokens))[0][-1];
      const int64_t next = logits.argmax().item<int64_t>();
      want_lp.push_back(torch::log_softmax(logits, 0)[next].item<float>());
      want.push_back(next);
      seq.push_back(next);
    }
    EXPECT_EQ(results[r][0].ids, want) << "request " << r;
    for (size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(results[r][0].logprobs[t], want_lp[t], 1e-4);
    EXPECT_EQ(results[r][0].finish_reason, "length");
  }
}

TEST(Engine, BatchedEqualsOneAtATimeForTheSameSeeds) {
  // One thread: with several, the matrix products of one row alone and of the same row in a batch
  // of 3 are split across threads differently and can round differently in the last bits; a draw
  // that lands that close to a boundary of the sampling distribution then picks another token
  // (about 1 random model in 400 with 2 threads, more on a loaded machine; none in 600 with one).
  struct OneThread {
    int before = at::get_num_threads();
    OneThread() { at::set_num_threads(1); }
    ~OneThread() { at::set_num_threads(before); }
  } one_thread;
  auto c = testing::tiny_config();
  Transformer model = testing::random_model(c);
  std::vector<Request> requests;
  for (int i = 0; i < 5; ++i) {
    Request r;
    r.prompt = prompt_of(2 + 3 * i, c.vocab_size, 10 + i);
    r.params.temperature = 0.9;
    r.params.top_p = 0.95;
    r.params.max_new_tokens = 6 + 4 * i;  // different lengths: rows free up and get reused
    r.params.seed = 100 + i;
    r.params.ignore_eos = true;
    requests.push_back(r);
  }
  EngineOptions batched;
  batched.max_batch = 3;
  const auto together = Engine(model, nullptr, batched).generate(requests);
  EngineOptions single;
  single.max_batch = 1;
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto alone = Engine(model, nullptr, single).generate({requests[i]});
    EXPECT_EQ(together[i][0].ids, alone[0][0].ids) << "request " << i;
    ASSERT_EQ(together[i][0].logprobs.size(), alone[0][0].logprobs.size());
    for (size_t t = 0; t < alone[0][0].logprobs.size(); ++t)
      EXPECT_NEAR(together[i][0].logprobs[t], alone[0][0].logprobs[t], 1e-4);
  }
}

TEST(Engine, SamplesOfOnePromptShareItsPrefillAndUseSeedPlusIndex) {
  auto c = testing::tiny_config();
  Transformer model = testing::random_model(c);
  Request r;
  r.prompt = prompt_of(6, c.vocab_size, 4);
  r.params.temperature = 1.0;
  r.params.max_new_tokens = 10;
  r.params.ignore_eos = true;
  r.params.seed = 7;
  r.n = 3;
  EngineOptions options;
  options.max_batch = 4;
  const auto shared = Engine(model, nullptr, options).generate({r});
  ASSERT_EQ(shared[0].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    Request one = r;
    one.n = 1;
    one.params.seed = 7 + i;
    EXPECT_EQ(Engine(model, nullptr, options).generate({one})[0][0].ids, shared[0][i].ids) << "sample " << i;
  }
  EXPECT_NE(shared[0][0].ids, shared[0][1].ids);
}

TEST(Engine, ReportedLogprobsAreThoseOfTheTemperatureScaledDistribution) {
  auto c = testing::tiny_config();
  Transformer model = testing::random_model(c);
  Request r;
  r.prompt = prompt_of(4, c.vocab_size, 5);
  r.params.temperature = 0.7;
  r.params.max_new_tokens = 8;
  r.params.seed = 3;
  r.params.ignore_eos = true;
  r.params.raw_logprobs = true;
  const Completion out = Engine(model, nullptr).generate({r})[0][0];
  torch::NoGradGuard no_grad;
  std::vector<int64_t> seq = r.prompt;
  for (size_t t = 0; t < out.ids.size(); ++t) {
    auto logits = model->logits(model->forward(torch::tensor(seq, torch::kInt64).unsqueeze(0)))[0][-1];
    EXPECT_NEAR(out.logprobs[t], torch::log_softmax(logits / 0.7, 0)[out.ids[t]].item<float>(), 1e-4);
    EXPECT_NEAR(out.raw_logprobs[t], torch::log_softmax(logits, 0)[out.ids[t]].item<float>(), 1e-4);
    seq.push_back(out.ids[t]);
  }
}

// p = [0.5, 0.2, 0.15, 0.1, 0.05]: which tokens each filter keeps, renormalised.
std::vector<double> kept(const SamplingParams& p) {
  auto logits = torch::log(torch::tensor({0.5, 0.2, 0.15, 0.1, 0.05}, torch::kFloat32));
  auto probs = sampling_logprobs(logits, p, {}).exp();
  return std::vector<double>(probs.data_ptr<float>(), probs.data_ptr<float>() + 5);
}

void expect_probs(const std::vector<double>& got, const std::vector<double>& want) {
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "token " << i;
}

TEST(Sampling, FiltersKeepExactlyTheRightTokens) {
  SamplingParams p;
  expect_probs(kept(p), {0.5, 0.2, 0.15, 0.1, 0.05});
  p.top_k = 2;
  expect_probs(kept(p), {0.5 / 0.7, 0.2 / 0.7, 0, 0, 0});
  p = SamplingParams{};
  p.top_p = 0.6;  // 0.5 is not enough, 0.5 + 0.2 is
  expect_probs(kept(p), {0.5 / 0.7, 0.2 / 0.7, 0, 0, 0});
  p.top_p = 0.8;
  expect_probs(kept(p), {0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0, 0});
  p.top_p = 0.3;  // the most likely token always stays
  expect_probs(kept(p), {1, 0, 0, 0, 0});
  p = SamplingParams{};
  p.min_p = 0.25;  // keep p >= 0.125
  expect_probs(kept(p), {0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0, 0});
  p = SamplingParams{};
  p.temperature = 0.5;  // p^2 renormalised
  const double z = 0.25 + 0.04 + 0.0225 + 0.01 + 0.0025;
  expect_probs(kept(p), {0.25 / z, 0.04 / z, 0.0225 / z, 0.01 / z, 0.0025 / z});
}

TEST(Sampling, DrawsFollowTheDistributionAndNeverPickRemovedTokens) {
  SamplingParams p;
  p.top_k = 4;  // token 4 removed
  auto logprobs = sampling_logprobs(torch::log(torch::tensor({0.5, 0.2, 0.15, 0.1, 0.05}, torch::kFloat32)), p, {});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  std::vector<int> counts(5, 0);
  const int draws = 40000;
  for (int i = 0; i < draws; ++i) ++counts[sample_token(logprobs.data_ptr<float>(), 5, p, gen)];
  const double z = 0.95;
  const std::vector<double> want = {0.5 / z, 0.2 / z, 0.15 / z, 0.1 / z, 0};
  for (int t = 0; t < 5; ++t) EXPECT_NEAR(counts[t] / double(draws), want[t], 0.01) << "token " << t;
  EXPECT_EQ(counts[4], 0);
  p.temperature = 0;
  EXPECT_EQ(sample_token(logprobs.data_ptr<float>(), 5, p, gen), 0);
}

TEST(Sampling, DrawsOverALargeVocabularyAreTheInverseCdfOfTheUniformNumber) {
  // A 5,000-token vocabulary (several of the vectorised pass's chunks and a tail), every 7th token
  // removed: each draw must be the token a plain double-precision inverse-CDF walk picks for the
  // same uniform number (drawn from a twin generator).
  const int64_t V = 5000;
  torch::manual_seed(7);
  auto logits = torch::randn({V}) * 3;
  logits.index_put_({torch::arange(0, V, 7)}, -std::numeric_limits<float>::infinity());
  const auto logprobs = torch::log_softmax(logits, 0).contiguous();
  const float* lp = logprobs.data_ptr<float>();
  SamplingParams p;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11), twin = at::make_generator<at::CPUGeneratorImpl>(11);
  double total = 0;
  for (int64_t i = 0; i < V; ++i) total += std::exp(static_cast<double>(lp[i]));
  for (int draw = 0; draw < 2000; ++draw) {
    const double u = at::uniform_real_distribution<double>(0.0, 1.0)(twin.get<at::CPUGeneratorImpl>());
    int64_t want = -1;
    double cumulative = 0;
    for (int64_t i = 0; i < V && want < 0; ++i) {
      cumulative += std::exp(static_cast<double>(lp[i]));
      if (cumulative > u * total) want = i;
    }
    const int64_t got = sample_token(lp, V, p, gen);
    ASSERT_EQ(got, want) << "draw " << draw << ", u " << u;
    ASSERT_NE(got % 7, 0) << "a removed token";
  }
}

TEST(Sampling, GreedyTokenIsTheFirstArgmaxWithItsLogSoftmax) {
  // Vocabularies below one 16-lane vector, with a tail, and over several 256-token chunks; the
  // largest logit placed twice (the first wins, as std::max_element), and every 7th token removed.
  for (const int64_t V : {5, 17, 300, 5000}) {
    SCOPED_TRACE("V=" + std::to_string(V));
    torch::manual_seed(V);
    auto logits = torch::randn({V}) * 4;
    logits.index_put_({torch::arange(0, V, 7)}, -std::numeric_limits<float>::infinity());
    const int64_t first = V / 2 + (V / 2 % 7 == 0), second = V - 1 - ((V - 1) % 7 == 0);
    logits[first] = 20.0f;
    if (second != first) logits[second] = 20.0f;
    float logprob = 0;
    EXPECT_EQ(greedy_token(logits.data_ptr<float>(), V, &logprob), first);
    EXPECT_NEAR(logprob, torch::log_softmax(logits.to(torch::kFloat64), 0)[first].item<double>(), 1e-6);
  }
}

TEST(Sampling, PenaltiesAndBiasChangeTheRightLogits) {
  auto logits = torch::tensor({2.0f, -2.0f, 1.0f, 0.5f}, torch::kFloat32);
  SamplingParams p;
  p.temperature = 0;  // greedy: the log-softmax of the processed logits
  p.repetition_penalty = 2.0;
  p.presence_penalty = 0.5;
  p.frequency_penalty = 0.25;
  p.logit_bias = {{3, 1.5}};
  const std::vector<int64_t> prompt = {0, 1}, generated = {2, 2};
  auto got = sampling_logprobs(logits, p, {&prompt, &generated});
  // 0: 2 / 2; 1: -2 x 2; 2: 1 / 2 - 0.5 - 2 x 0.25; 3: 0.5 + 1.5.
  auto want = torch::log_softmax(torch::tensor({1.0f, -4.0f, -0.5f, 2.0f}), 0);
  EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6)) << got << want;
}

TEST(Sampling, InvalidParametersAreNamed) {
  SamplingParams p;
  p.top_p = 0;
  expect_error([&] { p.validate(10); }, "top_p");
  p = SamplingParams{};
  p.max_new_tokens = 0;
  expect_error([&] { p.validate(10); }, "max_tokens");
  p = SamplingParams{};
  p.logit_bias = {{12, 1.0}};
  expect_error([&] { p.validate(10); }, "logit_bias");
  p = SamplingParams{};
  p.temperature = -1;
  expect_error([&] { p.validate(10); }, "temperature");
}

// A byte-level tokenizer (one token per byte) for text tests, and the ids of 'a'..'z'.
Tokenizer byte_tokenizer() {
  TrainOptions o;
  o.special_tokens = {"<eos>"};
  return Tokenizer::from_json(build_tokenizer_json({}, o), "test");
}

TEST(Engine, StopStringsMatchAcrossTokenBoundariesAndStreamingHoldsThemBack) {
  const Tokenizer tok = byte_tokenizer();
  auto c = testing::tiny_config();
  c.vocab_size = tok.vocab_size();
  c.max_position_embeddings = 128;
  c.eos_token_ids = {};
  Transformer model = testing::random_model(c, 9);
  Request r;
  r.prompt = {65, 66};
  r.params.temperature = 1.0;
  r.params.seed = 11;
  r.params.max_new_tokens = 40;
  for (int64_t id = 0; id < tok.vocab_size(); ++id) {  // letters only, so every token is one character
    const std::string s = tok.decode({static_cast<int32_t>(id)});
    if (!(s.size() == 1 && s[0] >= 'a' && s[0] <= 'z')) r.params.logit_bias[id] = -100;
  }
  Engine engine(model, &tok);
  const Completion free_run = engine.generate({r})[0][0];
  ASSERT_EQ(free_run.text.size(), 40u);
  // A stop string made of characters 10..12, i.e. spanning three tokens.
  const std::string stop = free_run.text.substr(10, 3);
  const size_t first = free_run.text.find(stop);
  r.params.stop = {stop};
  std::string streamed;
  int events = 0;
  r.on_event = [&](const StreamEvent& e) {
    streamed += e.text_delta;
    ++events;
    // Never shows text that could still become the stop string.
    EXPECT_EQ(streamed.find(stop.substr(0, 1), first), std::string::npos) << streamed;
  };
  const Completion stopped = engine.generate({r})[0][0];
  EXPECT_EQ(stopped.finish_reason, "stop");
  EXPECT_EQ(stopped.stop_matched, stop);
  EXPECT_EQ(stopped.text, free_run.text.substr(0, first));
  EXPECT_EQ(stopped.ids.size(), first + stop.size());  // up to the token that completed it
  EXPECT_EQ(streamed, stopped.text);
  EXPECT_GT(events, 1);
}

TEST(Engine, LimitsAreClearErrorsAndCancelFreesTheRow) {
  auto c = testing::tiny_config();
  Transformer model = testing::random_model(c);
  EngineOptions options;
  options.max_batch = 1;
  options.max_context = 16;
  Engine engine(model, nullptr, options);
  expect_error([&] { engine.generate({greedy(prompt_of(16, c.vocab_size, 1), 4)}); }, "context limit is 16");
  expect_error([&] { engine.generate({greedy({}, 4)}); }, "prompt is empty");
  expect_error([&] { engine.generate({greedy({500}, 4)}); }, "outside the vocabulary");
  Request two = greedy(prompt_of(3, c.vocab_size, 1), 4);
  two.n = 2;
  expect_error([&] { engine.generate({two}); }, "n = 2 samples do not fit");
  // Length is capped by the context: 10 prompt tokens + at most 6 new ones.
  EXPECT_EQ(engine.generate({greedy(prompt_of(10, c.vocab_size, 1), 50)})[0][0].ids.size(), 6u);

  // Asynchronous: a request cancelled while running ends "cancelled", and the request waiting
  // for its row then runs.
  auto long_config = testing::tiny_config();
  long_config.max_position_embeddings = 100000;
  Transformer long_model = testing::random_model(long_config);
  EngineOptions one_row;
  one_row.max_batch = 1;
  Engine server(long_model, nullptr, one_row);
  server.start();
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::string> reasons;
  auto track = [&](const StreamEvent& e) {
    if (!e.done) return;
    std::lock_guard<std::mutex> lock(m);
    reasons.push_back(e.completion->finish_reason);
    cv.notify_all();
  };
  Request endless = greedy(prompt_of(3, c.vocab_size, 1), 90000);
  endless.on_event = track;
  const uint64_t id = server.submit(endless);
  Request next = greedy(prompt_of(3, c.vocab_size, 2), 3);
  next.on_event = track;
  server.submit(next);  // waits: the only row is busy
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(server.waiting(), 1u);
  server.cancel(id);
  std::unique_lock<std::mutex> lock(m);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return reasons.size() == 2; }));
  EXPECT_EQ(reasons, (std::vector<std::string>{"cancelled", "length"}));
  lock.unlock();
  server.stop();
}

}  // namespace
}  // namespace r1

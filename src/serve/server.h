// r1 serve: an OpenAI-compatible HTTP server (cpp-httplib) over the generation engine.
//
//   POST /v1/chat/completions, POST /v1/completions  (stream via server-sent events, n, seed, stop,
//        logprobs, temperature/top_p/... and the extensions top_k, min_p, repetition_penalty)
//   GET  /v1/models, GET /health, GET / (the web UI), GET /v1/run/metrics (with --run DIR)
//
// Concurrent requests are batched together by the engine's background thread. Limits: body size
// (413), max_tokens (400), concurrent requests (429); optional bearer API key (401). A streaming
// client that disconnects has its request cancelled, which frees its KV-cache rows.
#pragma once
#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "infer/engine.h"
#include "serve/openai_api.h"

namespace r1 {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;             // empty: no authentication
  std::string model_name = "r1";  // r1 serve: the model directory's name unless --served-model-name
  size_t max_body_bytes = 1 << 20;
  int64_t max_tokens = 1024;       // per request
  int max_concurrent = 16;         // requests in flight (queued or running); more get 429
  std::string run_dir;             // GET /v1/run/metrics serves RUN/metrics.jsonl and samples
};

class Server {
 public:
  Server(Engine& engine, const Tokenizer& tokenizer, std::optional<ChatFormat> format, ServerOptions options);
  ~Server();
  // Binds (throws r1::Error when the port is taken) and serves until stop(); returns the bound port.
  int bind();
  void listen();  // blocks
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace r1

// r1 serve: the OpenAI-compatible server and web UI (serve/server.h) over a model directory.
#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "serve/server.h"
#include "util/error.h"

namespace r1::cli {
namespace {

Server* g_server = nullptr;
extern "C" void stop_server(int) {
  if (g_server) g_server->stop();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (/v1/chat/completions, ...) with a web UI at /");
  struct Args {
    EngineFlags flags;
    ServerOptions server;
  };
  auto a = std::make_shared<Args>();
  a->flags.add_to(cmd, /*with_sampling=*/false);
  cmd->add_option("--host", a->server.host, "address to bind (0.0.0.0 exposes it to the network)")->capture_default_str();
  cmd->add_option("--port", a->server.port, "TCP port (0 = any free one)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", a->server.api_key, "require Authorization: Bearer KEY");
  cmd->add_option("--served-model-name,--model-name", a->server.model_name,
                  "the model id /v1/models lists and responses carry (default: the model directory's name); "
                  "requests may name any model");
  cmd->add_option("--max-body-bytes", a->server.max_body_bytes, "largest request body")->capture_default_str();
  cmd->add_option("--max-tokens", a->server.max_tokens, "largest max_tokens a request may ask for")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max-concurrent", a->server.max_concurrent, "requests in flight before 429")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--run", a->server.run_dir, "training run directory whose metrics.jsonl the web UI plots")
      ->check(CLI::ExistingDirectory);
  a->server.model_name.clear();
  cmd->callback([a] {
    if (a->server.model_name.empty())
      a->server.model_name = std::filesystem::path(a->flags.model).lexically_normal().filename().string();
    if (a->server.model_name.empty()) a->server.model_name = "r1";  // a model path ending in "/."
    LoadedModel m = load_for_generation(a->flags);
    if (!m.tokenizer) throw Error(a->flags.model + ": no tokenizer.json (the server takes text)");
    Server server(*m.engine, *m.tokenizer, m.chat_format, a->server);
    const int port = server.bind();
    g_server = &server;
    std::signal(SIGINT, stop_server);
    std::signal(SIGTERM, stop_server);
    std::cout << "r1 serve: http://" << a->server.host << ":" << port << "/ (model '" << a->server.model_name
              << "', batch " << m.engine->max_batch() << ", context " << m.engine->max_context() << ", KV cache "
              << m.engine->kv_cache_bytes() / (1 << 20) << " MiB" << (m.chat_format ? "" : ", no chat template")
              << ")" << std::endl;
    server.listen();
    g_server = nullptr;
    m.engine->stop();
  });
}

}  // namespace r1::cli

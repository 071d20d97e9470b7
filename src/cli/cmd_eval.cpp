// r1 eval: evaluations of a model directory. passkey: retrieval accuracy by context length and
// depth (the long-context check).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/runtime.h"
#include "eval/passkey.h"
#include "io/model_dir.h"
#include "util/error.h"
#include "util/json_file.h"

namespace r1::cli {
namespace {

void add_passkey(CLI::App* eval) {
  auto* cmd = eval->add_subcommand("passkey", "hidden-number retrieval accuracy by context length and depth");
  struct Args {
    std::string model, out;
    PasskeyOptions o;
    RuntimeOptions rt;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "model directory (with tokenizer.json)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--context", a->o.contexts, "prompt lengths in tokens, e.g. 1024,4096,16384")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--depths", a->o.depths, "where the key is hidden, fractions of the text")->delimiter(',')->capture_default_str();
  cmd->add_option("--trials", a->o.trials, "random keys per context and depth")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->o.seed, "seed of the keys")->capture_default_str();
  cmd->add_option("--out", a->out, "also write the results as JSON here");
  a->rt.add_to(cmd);
  cmd->callback([a] {
    const torch::Device device = a->rt.setup();
    const std::string tok = (std::filesystem::path(a->model) / "tokenizer.json").string();
    if (!std::filesystem::exists(tok)) throw Error(a->model + ": no tokenizer.json (the prompts are text)");
    const Tokenizer tokenizer = Tokenizer::load(tok);
    Transformer model = load_model_dir(a->model, {device, a->rt.scalar_type()});
    const int64_t trained = model->config().max_position_embeddings;
    std::printf("passkey retrieval, %s (max_position_embeddings %lld), %lld trials per cell\n\n", a->model.c_str(),
                static_cast<long long>(trained), static_cast<long long>(a->o.trials));
    std::printf("| context | tokens | depth | accuracy |\n|---|---|---|---|\n");
    nlohmann::json results = nlohmann::json::array();
    const auto cells = eval_passkey(model, tokenizer, a->o, [&](const PasskeyCell& c) {
      const double acc = static_cast<double>(c.passed) / c.trials;
      std::printf("| %lld%s | %lld | %.2f | %.2f |\n", static_cast<long long>(c.context), c.tokens > trained ? " (beyond)" : "",
                  static_cast<long long>(c.tokens), c.depth, acc);
      std::fflush(stdout);
      results.push_back({{"context", c.context}, {"tokens", c.tokens}, {"depth", c.depth}, {"passed", c.passed},
                         {"trials", c.trials}, {"accuracy", acc}});
    });
    if (!a->out.empty())
      write_text_file(a->out, nlohmann::json{{"eval", "passkey"}, {"model", a->model}, {"results", results}}.dump(2) + "\n");
  });
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto* eval = app.add_subcommand("eval", "evaluate a model");
  eval->require_subcommand(1);
  add_passkey(eval);
}

}  // namespace r1::cli

// r1 generate: sample continuations of token-id prompts from a model directory, one JSON line
// per sample on stdout (ids, logprobs, finish_reason).
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/runtime.h"
#include "infer/generate.h"
#include "io/model_dir.h"
#include "util/error.h"

namespace r1::cli {
namespace {

std::vector<int64_t> parse_id_list(const std::string& text) {
  std::vector<int64_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error("--prompt-ids: '" + item + "' is not an integer (expected e.g. 1,2,3)");
    }
  }
  return ids;
}

// JSONL with {"prompt_ids": [...]} per line; errors name file and line.
std::vector<std::vector<int64_t>> read_prompt_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  std::vector<std::vector<int64_t>> prompts;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": invalid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) throw Error(where + ": expected a JSON object");
    if (j.contains("prompt")) throw Error(where + ": text prompts need a tokenizer; this build takes \"prompt_ids\"");
    if (!j.contains("prompt_ids") || !j["prompt_ids"].is_array())
      throw Error(where + ": field 'prompt_ids' (a list of token ids) is missing");
    std::vector<int64_t> ids;
    for (const auto& x : j["prompt_ids"]) {
      if (!x.is_number_integer()) throw Error(where + ": 'prompt_ids' holds a non-integer " + x.dump());
      ids.push_back(x.get<int64_t>());
    }
    prompts.push_back(std::move(ids));
  }
  return prompts;
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "sample continuations of prompts (JSON lines on stdout)");
  struct Args {
    std::string model, prompts_file;
    std::vector<std::string> prompt_ids;
    GenerateOptions gen;
    RuntimeOptions rt;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "model directory")->required();
  cmd->add_option("--prompt-ids", a->prompt_ids, "a prompt as comma-separated token ids (repeatable)");
  cmd->add_option("--prompts", a->prompts_file, "JSONL file of {\"prompt_ids\": [...]}");
  cmd->add_option("--max-new-tokens", a->gen.max_new_tokens, "tokens to generate per prompt")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", a->gen.temperature, "0 = greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", a->gen.seed, "sampling seed")->capture_default_str();
  a->rt.add_to(cmd);
  cmd->callback([a] {
    std::vector<std::vector<int64_t>> prompts;
    for (const auto& p : a->prompt_ids) prompts.push_back(parse_id_list(p));
    if (!a->prompts_file.empty())
      for (auto& p : read_prompt_file(a->prompts_file)) prompts.push_back(std::move(p));
    if (prompts.empty()) throw Error("give --prompt-ids or --prompts");
    torch::Device dev = a->rt.setup();
    LoadOptions load;
    load.device = dev;
    load.dtype = a->rt.scalar_type();
    Transformer m = load_model_dir(a->model, load);
    auto results = generate(m, prompts, a->gen);
    int64_t tokens = 0;
    for (const auto& r : results) {
      nlohmann::json j = {{"ids", r.ids}, {"logprobs", r.logprobs}, {"finish_reason", r.finish_reason}};
      std::cout << j.dump() << "\n";
      tokens += static_cast<int64_t>(r.ids.size());
    }
    std::cerr << "generated " << tokens << " tokens for " << results.size() << " prompts\n";
  });
}

}  // namespace r1::cli

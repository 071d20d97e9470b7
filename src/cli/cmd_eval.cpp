// r1 eval: evaluations of a model directory.
//   r1 eval --task math500 --model DIR [--n 4]      generate, grade, report pass@k, maj@k, ...
//   r1 eval --responses FILE.jsonl --reward NAME   grade responses generated elsewhere
//   r1 eval passkey --model DIR --context N,...    long-context retrieval by length and depth
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "cli/runtime.h"
#include "eval/passkey.h"
#include "eval/problems.h"
#include "eval/tasks.h"
#include "rewards/answer_extraction.h"
#include "rewards/math_verifier.h"
#include "rewards/rewards.h"
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
    Transformer model = load_model_dir(a->model, a->rt.inference_load(device));
    a->rt.report_frozen_weights(model);
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



struct EvalArgs {
  EngineFlags flags;
  std::string task, data_dir, responses, reward, out, out_dir, prompt_format = "auto";
  std::vector<std::string> reward_command;
  bool unsafe_no_sandbox = false;
  int n = 1;
  int64_t limit = 0;
  int threads = 0;
};


void run_task_eval(EvalArgs& a) {
  if (a.flags.model.empty()) throw Error("r1 eval: give --model DIR (or --responses FILE to grade existing responses)");
  if (a.task.empty()) throw Error("r1 eval: give --task (gsm8k, math500, aime24, amc23, minerva_math, humaneval or a JSONL file)");
  a.flags.finish_sampling();
  EvalTask task = load_eval_task(a.task, a.data_dir);
  if (a.limit > 0 && static_cast<int64_t>(task.items.size()) > a.limit) task.items.resize(a.limit);
  RewardOptions ro;
  ro.external_command = a.reward_command;
  ro.unsafe_no_sandbox = a.unsafe_no_sandbox;
  ro.overlong_max_tokens = a.flags.sampling.max_new_tokens;
  const CombinedReward reward(a.reward.empty() ? task.reward : a.reward, ro);
  LoadedModel m = load_for_generation(a.flags);
  if (!m.tokenizer) throw Error(a.flags.model + ": no tokenizer.json");
  const std::string format = resolve_prompt_format(a.prompt_format, m.chat_format);

  std::vector<Request> requests;
  std::vector<std::string> prompt_texts;
  for (const auto& item : task.items) {
    std::string text;
    Request r;
    r.prompt = task_prompt(item, task.kind, format, *m.tokenizer, m.chat_format, &text);
    r.params = a.flags.sampling;
    r.n = a.n;
    requests.push_back(std::move(r));
    prompt_texts.push_back(text);
  }
  std::fprintf(stderr, "r1 eval: %s, %zu problems x %d samples, %s prompts\n", task.name.c_str(), task.items.size(), a.n,
               format.c_str());
  const auto generations = m.engine->generate(requests);

  std::vector<RewardInput> inputs;
  for (size_t i = 0; i < task.items.size(); ++i)
    for (const auto& c : generations[i]) {
      nlohmann::json meta = task.items[i].metadata;
      meta["completion_tokens"] = c.ids.size();
      inputs.push_back({prompt_texts[i], c.text, meta});
    }
  const auto scored = reward.score_batch(inputs, a.threads);

  // Metrics over problems.
  std::ofstream samples;
  std::string samples_path = a.out;
  if (!a.out_dir.empty()) {
    std::filesystem::create_directories(a.out_dir);
    samples_path = a.out_dir + "/samples.jsonl";
  }
  if (!samples_path.empty()) {
    samples.open(samples_path);
    if (!samples) throw Error(samples_path + ": cannot write");
  }
  std::vector<int64_t> ks;
  for (int64_t k = 1; k <= a.n; k *= 2) ks.push_back(k);
  if (ks.back() != a.n) ks.push_back(a.n);
  std::map<int64_t, double> pass_k;
  double pass1 = 0, maj = 0, formatted = 0, thinking = 0, length = 0, truncated = 0, total_score = 0;
  size_t s = 0;
  for (size_t i = 0; i < task.items.size(); ++i) {
    std::vector<Graded> graded;
    for (const auto& c : generations[i]) {
      graded.push_back(grade(reward, scored[s++], task.kind, c.text));
      const Graded& g = graded.back();
      formatted += g.formatted;
      thinking += has_think_block(inputs[s - 1]);
      length += static_cast<double>(c.ids.size());
      truncated += c.finish_reason == "length";
      total_score += g.scored.total;
      if (samples.is_open()) {
        nlohmann::json components = nlohmann::json::object();
        for (const auto& [name, r] : g.scored.components)
          components[name] = {{"score", r.score}, {"reason", r.reason}, {"details", r.details}};
        samples << nlohmann::json{{"id", task.items[i].id}, {"sample", graded.size() - 1}, {"response", c.text},
                                  {"score", g.scored.total}, {"correct", g.correct}, {"answer", g.answer},
                                  {"finish_reason", c.finish_reason}, {"completion_tokens", c.ids.size()},
                                  {"components", components}}
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
      }
    }
    int64_t correct = 0;
    for (const auto& g : graded) correct += g.correct;
    pass1 += static_cast<double>(correct) / a.n;
    for (int64_t k : ks) pass_k[k] += pass_at_k(a.n, correct, k);
    if (task.kind == "math") {
      // maj@n: the most common answer (by equivalence) and whether it is right.
      size_t best = 0, best_count = 0;
      for (size_t x = 0; x < graded.size(); ++x) {
        if (!graded[x].formatted) continue;
        size_t count = 0;
        for (size_t y = 0; y < graded.size(); ++y)
          count += graded[y].formatted && math_equal(graded[x].answer, graded[y].answer).equal;
        if (count > best_count) best = x, best_count = count;
      }
      maj += best_count > 0 && graded[best].correct;
    }
  }
  const double problems = static_cast<double>(task.items.size()), all = problems * a.n;
  nlohmann::json summary = {{"task", task.name}, {"model", a.flags.model}, {"problems", task.items.size()},
                            {"samples_per_problem", a.n}, {"prompt_format", format},
                            {"temperature", a.flags.sampling.temperature}, {"top_p", a.flags.sampling.top_p},
                            {"max_new_tokens", a.flags.sampling.max_new_tokens},
                            {"reward", a.reward.empty() ? task.reward : a.reward},
                            {"pass@1", pass1 / problems}, {"format_rate", formatted / all},
                            {"think_rate", thinking / all},
                            {"mean_response_tokens", length / all}, {"truncation_rate", truncated / all},
                            {"mean_score", total_score / all}};
  for (const auto& [k, v] : pass_k) summary["pass@" + std::to_string(k)] = v / problems;
  // The mean of each reward (e.g. reward_format_think: the share of samples that think, R1-Zero's format).
  std::map<std::string, double> component_sums;
  for (const auto& sc : scored)
    for (const auto& [name, r] : sc.components) component_sums[name] += r.score;
  for (const auto& [name, sum] : component_sums) summary["reward_" + name] = sum / all;
  if (task.kind == "math") summary["maj@" + std::to_string(a.n)] = maj / problems;
  summary["decode_steps"] = m.engine->steps();
  if (m.engine->drafted_tokens() > 0)  // --speculative
    summary["speculative_acceptance"] = double(m.engine->accepted_tokens()) / double(m.engine->drafted_tokens());
  const std::string text = summary.dump(2);
  std::printf("%s\n", text.c_str());
  if (!a.out_dir.empty()) write_text_file(a.out_dir + "/summary.json", text + "\n");
}

// Grades responses generated elsewhere: one JSON line each with "response" and "answer" (or
// "tests", "test" + "entry_point", ...); --out gets {"index", "score", "reason", "components"}.
void run_responses_eval(EvalArgs& a) {
  if (a.reward.empty()) a.reward = "accuracy_math";
  RewardOptions ro;
  ro.external_command = a.reward_command;
  ro.unsafe_no_sandbox = a.unsafe_no_sandbox;
  const CombinedReward reward(a.reward, ro);
  std::ifstream in(a.responses);
  if (!in) throw Error(a.responses + ": cannot open");
  std::vector<RewardInput> inputs;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = a.responses + ":" + std::to_string(lineno);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": invalid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("response") || !j["response"].is_string())
      throw Error(where + ": each line needs a string 'response'");
    RewardInput r;
    r.completion = j["response"].get<std::string>();
    for (const char* key : {"prompt", "problem", "question"})
      if (j.contains(key) && j[key].is_string()) {
        r.prompt = j[key].get<std::string>();
        break;
      }
    r.metadata = j;
    inputs.push_back(std::move(r));
  }
  const auto scored = reward.score_batch(inputs, a.threads);
  std::ofstream out;
  if (!a.out.empty()) {
    out.open(a.out);
    if (!out) throw Error(a.out + ": cannot write");
  }
  double total = 0, correct = 0, thinking = 0;
  for (size_t i = 0; i < scored.size(); ++i) {
    const auto& first = scored[i].components.at(reward.parts()[0].name);
    total += scored[i].total;
    thinking += has_think_block(inputs[i]);
    correct += first.score >= 1 - 1e-9;
    if (out.is_open()) {
      nlohmann::json components = nlohmann::json::object();
      for (const auto& [name, r] : scored[i].components)
        components[name] = {{"score", r.score}, {"reason", r.reason}, {"details", r.details}};
      out << nlohmann::json{{"index", i}, {"score", scored[i].total}, {"reason", first.reason}, {"components", components}}
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
          << "\n";
    }
  }
  const double n = std::max<double>(1, static_cast<double>(scored.size()));
  std::printf("%s\n", nlohmann::json{{"responses", scored.size()}, {"reward", a.reward}, {"mean_score", total / n},
                                      {"accuracy", correct / n}, {"think_rate", thinking / n}}.dump(2).c_str());
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto* eval = app.add_subcommand("eval", "evaluate a model on a task, grade responses, or test long context (passkey)");
  eval->require_subcommand(0, 1);
  auto a = std::make_shared<EvalArgs>();
  a->flags.sampling.temperature = 0.6;  // DeepSeek-R1's evaluation protocol
  a->flags.sampling.top_p = 0.95;
  a->flags.sampling.max_new_tokens = 32768;
  a->flags.add_to(eval, true, /*model_required=*/false);
  eval->add_option("--task", a->task, "gsm8k, math500, aime24, amc23, minerva_math, humaneval, or a JSONL file");
  eval->add_option("--data-dir", a->data_dir,
                   "where the built-in tasks' data lives (default: R1_DATA_DIR, else the data installed or built beside r1)");
  eval->add_option("--n", a->n, "samples per problem (pass@k, maj@k)")->capture_default_str()->check(CLI::PositiveNumber);
  eval->add_option("--limit", a->limit, "only the first N problems")->check(CLI::NonNegativeNumber);
  eval->add_option("--prompt-format", a->prompt_format, "auto, chat (with the R1 instruction), r1-zero, plain")->capture_default_str();
  eval->add_option("--reward", a->reward, "reward spec (default: the task's accuracy reward)");
  eval->add_option("--reward-command", a->reward_command, "command of the 'external' reward")->expected(1, -1)->delimiter(' ');
  eval->add_flag("--unsafe-no-sandbox", a->unsafe_no_sandbox, kUnsafeNoSandboxHelp);
  eval->add_option("--responses", a->responses, "grade this JSONL of {response, answer, ...} instead of generating")
      ->check(CLI::ExistingFile);
  eval->add_option("--out", a->out, "per-sample (or per-response) JSONL");
  eval->add_option("--out-dir", a->out_dir, "summary.json + samples.jsonl");
  eval->add_option("--reward-threads", a->threads, "parallel reward checks (0 = cores)")->capture_default_str();
  add_passkey(eval);
  eval->callback([a, eval] {
    if (!eval->get_subcommands().empty()) return;  // passkey ran
    if (!a->responses.empty()) run_responses_eval(*a);
    else run_task_eval(*a);
  });
}

}  // namespace r1::cli

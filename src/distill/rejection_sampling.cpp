#include "distill/rejection_sampling.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "infer/engine.h"
#include "io/model_dir.h"
#include "rl/prompts.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/json_file.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace r1 {
namespace {

// Adds a weight-0 reward when a filter needs it and the spec lacks it (it then only measures).
std::string with_reward(std::string spec, const std::string& name) {
  for (const auto& p : parse_reward_spec(spec))
    if (p.name == name) return spec;
  return spec + "," + name + ":0";
}

json summary_json(const SampleSummary& s, const SampleOptions& o) {
  return {{"model", o.model}, {"prompts_file", o.prompts}, {"n", o.n}, {"keep", o.keep},
          {"prompts", s.prompts}, {"samples", s.samples}, {"correct", s.correct}, {"kept", s.kept},
          {"kept_fraction", s.samples ? static_cast<double>(s.kept) / s.samples : 0.0},
          {"pass_at_n", s.prompts ? static_cast<double>(s.prompts_with_correct) / s.prompts : 0.0},
          {"correct_rate", s.samples ? static_cast<double>(s.correct) / s.samples : 0.0},
          {"prompts_with_kept", s.prompts_with_kept}, {"kept_per_prompt", s.kept_per_prompt},
          {"correct_per_prompt", s.correct_per_prompt}, {"seconds", s.seconds}};
}

}  // namespace

SampleSummary rejection_sample(const SampleOptions& o, const std::atomic<bool>* stop,
                               const std::function<void(int64_t, int64_t)>& on_progress) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.n < 1 || o.batch_prompts < 1) throw Error("--n and --batch-prompts must be positive");
  if (o.keep != "correct" && o.keep != "best" && o.keep != "all")
    throw Error("--keep '" + o.keep + "': expected correct, best or all");
  std::string spec = o.reward;
  if (o.require_format) spec = with_reward(spec, "format_think");
  if (o.no_language_mixing) spec = with_reward(spec, "language_consistency");
  const CombinedReward reward(spec, o.reward_options);
  const std::string judge = reward.first_rule_reward();  // "correct" means it scored 1
  if (judge.empty() && o.keep == "correct") throw Error("--keep correct needs a rule-based reward (e.g. accuracy_math)");

  const std::string tokenizer_path = (fs::path(o.model) / "tokenizer.json").string();
  if (!fs::exists(tokenizer_path)) throw Error(o.model + ": no tokenizer.json");
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_path);
  const auto prompts = read_prompts(o.prompts, o.prompt_template, o.chat_template, tokenizer);
  const std::string format = o.format != "auto" ? o.format : o.prompt_template == "chat" ? "messages" : "prompt-completion";
  if (format != "messages" && format != "prompt-completion")
    throw Error("--format '" + o.format + "': expected prompt-completion, messages or auto");
  const std::string summary_path = o.summary.empty() ? o.out + ".summary.json" : o.summary;
  const std::string progress_path = o.out + ".progress.json";

  // Resume: the output is complete up to progress.bytes (one batch of prompts at a time).
  SampleSummary s;
  s.prompts = static_cast<int64_t>(prompts.size());
  int64_t done = 0;
  if (o.resume && fs::exists(progress_path)) {
    const json p = read_json_file(progress_path);
    if (p.at("prompts_file") != o.prompts || p.at("n") != o.n || p.at("seed") != o.seed)
      throw Error(progress_path + ": written by a run with other --prompts/--n/--seed; remove it to start over");
    done = p.at("prompts_done").get<int64_t>();
    fs::resize_file(o.out, p.at("bytes").get<uint64_t>());
    s.samples = p.at("samples");
    s.correct = p.at("correct");
    s.kept = p.at("kept");
    s.prompts_with_correct = p.at("prompts_with_correct");
    s.prompts_with_kept = p.at("prompts_with_kept");
    s.kept_per_prompt = p.at("kept_per_prompt").get<std::vector<int64_t>>();
    s.correct_per_prompt = p.at("correct_per_prompt").get<std::vector<int64_t>>();
  } else if (fs::exists(o.out) && fs::file_size(o.out) > 0) {
    throw Error(o.out + " exists: pass --resume to continue that run, or remove it");
  } else if (!fs::path(o.out).parent_path().empty()) {
    fs::create_directories(fs::path(o.out).parent_path());
  }

  Transformer model = load_model_dir(o.model, {torch::Device(o.device), torch::kFloat32});
  model->eval();
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.ids.size());
  EngineOptions engine_options;
  engine_options.max_batch = o.batch_prompts * o.n;
  engine_options.max_context = static_cast<int64_t>(longest) + o.max_new_tokens;
  Engine engine(model, &tokenizer, engine_options);

  std::ofstream out(o.out, std::ios::app | std::ios::binary);
  if (!out) throw Error(o.out + ": cannot write");
  while (done < s.prompts && !(stop && *stop)) {
    const int64_t end = std::min(s.prompts, done + o.batch_prompts);
    std::vector<Request> requests;
    for (int64_t i = done; i < end; ++i) {
      Request r;
      r.prompt = prompts[i].ids;
      r.n = static_cast<int>(o.n);
      r.params.temperature = o.temperature;
      r.params.top_p = o.top_p;
      r.params.max_new_tokens = o.max_new_tokens;
      r.params.seed = splitmix64(splitmix64(o.seed) ^ static_cast<uint64_t>(i));  // independent of batching
      requests.push_back(std::move(r));
    }
    const auto generations = engine.generate(requests);
    std::vector<RewardInput> inputs;
    for (int64_t i = done; i < end; ++i)
      for (const auto& c : generations[i - done]) {
        json meta = prompts[i].metadata;
        meta["completion_tokens"] = c.ids.size();
        inputs.push_back({prompts[i].text, c.text, meta});
      }
    const auto scored = reward.score_batch(inputs, o.reward_threads);
    std::string chunk;
    for (int64_t i = done; i < end; ++i) {
      const auto& group = generations[i - done];
      std::vector<size_t> passing;
      std::set<std::string> seen;
      int64_t correct = 0;
      for (size_t k = 0; k < group.size(); ++k) {
        const Completion& c = group[k];
        const ScoredCompletion& sc = scored[(i - done) * o.n + k];
        const bool right = !judge.empty() && sc.components.at(judge).score >= 1 - 1e-9;
        correct += right;
        if (o.keep == "correct" && !right) continue;
        if (sc.total < o.min_reward) continue;
        if (o.require_format && sc.components.at("format_think").score < 1) continue;
        if (o.no_language_mixing && sc.components.at("language_consistency").score < 1) continue;
        if (o.max_tokens > 0 && static_cast<int64_t>(c.ids.size()) > o.max_tokens) continue;
        if (!o.keep_truncated && c.finish_reason == "length") continue;
        if (!seen.insert(c.text).second) continue;  // the same answer twice teaches nothing new
        passing.push_back(k);
      }
      if (o.keep == "best" && passing.size() > 1) {
        size_t best = passing[0];
        for (size_t k : passing)
          if (scored[(i - done) * o.n + k].total > scored[(i - done) * o.n + best].total) best = k;
        passing = {best};
      }
      for (size_t k : passing) {
        const Completion& c = group[k];
        const ScoredCompletion& sc = scored[(i - done) * o.n + k];
        json row;
        if (format == "messages") {
          std::string question = prompts[i].metadata.contains("messages") ? "" : prompts[i].text;
          for (const char* key : {"prompt", "problem", "question"})
            if (prompts[i].metadata.contains(key) && prompts[i].metadata[key].is_string()) {
              question = prompts[i].metadata[key];
              break;
            }
          json messages = prompts[i].metadata.contains("messages") ? prompts[i].metadata["messages"]
                                                                   : json::array({{{"role", "user"}, {"content", question}}});
          messages.push_back({{"role", "assistant"}, {"content", c.text}});
          row["messages"] = messages;
        } else {
          row["prompt"] = prompts[i].text;
          row["completion"] = c.text;
        }
        json rewards = json::object();
        for (const auto& [name, r] : sc.components) rewards[name] = r.score;
        row["reward"] = sc.total;
        row["rewards"] = rewards;
        row["completion_tokens"] = c.ids.size();
        row["finish_reason"] = c.finish_reason;
        row["source"] = {{"model", o.model}, {"prompts", o.prompts}, {"prompt_index", i}, {"sample", k},
                         {"temperature", o.temperature}, {"top_p", o.top_p}, {"seed", o.seed}};
        if (prompts[i].metadata.contains("answer")) row["answer"] = prompts[i].metadata["answer"];
        chunk += row.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      }
      s.samples += static_cast<int64_t>(group.size());
      s.correct += correct;
      s.kept += static_cast<int64_t>(passing.size());
      s.prompts_with_correct += correct > 0;
      s.prompts_with_kept += !passing.empty();
      s.kept_per_prompt.push_back(static_cast<int64_t>(passing.size()));
      s.correct_per_prompt.push_back(correct);
    }
    out << chunk;
    out.flush();
    if (!out) throw Error(o.out + ": write failed");
    done = end;
    // The file is complete up to here; only then does the progress say so.
    json progress = {{"prompts_file", o.prompts}, {"n", o.n}, {"seed", o.seed}, {"prompts_done", done},
                     {"bytes", static_cast<uint64_t>(out.tellp())}};
    const json counters = summary_json(s, o);
    for (const char* key : {"samples", "correct", "kept", "kept_per_prompt", "correct_per_prompt"})
      progress[key] = counters[key];
    progress["prompts_with_correct"] = s.prompts_with_correct;
    progress["prompts_with_kept"] = s.prompts_with_kept;
    write_text_file(progress_path + ".tmp", progress.dump() + "\n");
    fs::rename(progress_path + ".tmp", progress_path);
    if (on_progress) on_progress(done, s.prompts);
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (done == s.prompts) {
    write_text_file(summary_path, summary_json(s, o).dump(2) + "\n");
    if (s.kept == 0)
      throw Error("no sample passed the filters (" + std::to_string(s.samples) + " sampled, " +
                  std::to_string(s.correct) + " correct, --keep " + o.keep + "): nothing to train on; see " + summary_path);
  }
  return s;
}

}  // namespace r1

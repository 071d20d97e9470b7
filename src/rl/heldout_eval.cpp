#include "rl/heldout_eval.h"

#include <chrono>

#include "dist/process_group.h"
#include "eval/problems.h"
#include "infer/engine.h"

namespace r1 {
namespace {

EvalTask load_heldout_task(const HeldoutOptions& o) {
  if (o.task.empty()) return {};
  EvalTask task = load_eval_task(o.task, o.data_dir);
  if (o.limit > 0 && static_cast<int64_t>(task.items.size()) > o.limit) task.items.resize(o.limit);
  return task;
}

}  // namespace

nlohmann::json HeldoutResult::to_json(int64_t step) const {
  return {{"stage", "grpo_eval"}, {"step", step}, {"heldout_accuracy", accuracy}, {"heldout_answer_rate", answer_rate},
          {"heldout_boxed_rate", boxed_rate}, {"heldout_response_tokens", response_tokens},
          {"heldout_truncation_rate", truncation_rate}, {"heldout_problems", problems}, {"heldout_s", seconds}};
}

HeldoutEval::HeldoutEval(const HeldoutOptions& options, const std::string& prompt_format, const Tokenizer& tokenizer,
                         const std::optional<ChatFormat>& chat_format, const RewardOptions& reward_options)
    : options_(options),
      task_(load_heldout_task(options)),
      tokenizer_(tokenizer),
      reward_(task_.reward.empty() ? "accuracy_math" : task_.reward, reward_options) {
  for (const auto& item : task_.items) {
    std::string text;
    prompts_.push_back(task_prompt(item, task_.kind, prompt_format, tokenizer, chat_format, &text));
    prompt_texts_.push_back(std::move(text));
  }
}

bool HeldoutEval::due(int64_t step, int64_t steps) const {
  return enabled() && (step == 0 || step == steps || (options_.every > 0 && step % options_.every == 0));
}

HeldoutResult HeldoutEval::run(const Transformer& policy, ProcessGroup* group) const {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t rank = group ? group->rank() : 0, world = group ? group->size() : 1;
  std::vector<size_t> mine;  // this rank's problems
  std::vector<Request> requests;
  size_t longest = 0;
  for (size_t i = rank; i < prompts_.size(); i += world) {
    mine.push_back(i);
    Request r;
    r.prompt = prompts_[i];
    r.params.temperature = 0;  // greedy
    r.params.max_new_tokens = options_.max_new_tokens;
    requests.push_back(std::move(r));
    longest = std::max(longest, prompts_[i].size());
  }
  // [correct, answered, boxed, tokens, truncated] summed over this rank's problems.
  auto sums = torch::zeros({5}, torch::kFloat64);
  if (!requests.empty()) {
    EngineOptions eo;
    eo.max_batch = std::min<int64_t>(options_.max_batch, static_cast<int64_t>(requests.size()));
    eo.max_context = static_cast<int64_t>(longest) + options_.max_new_tokens;
    Engine engine(policy, &tokenizer_, eo);  // its KV cache lives for this evaluation only
    const auto generations = engine.generate(requests);
    std::vector<RewardInput> inputs;
    for (size_t j = 0; j < mine.size(); ++j) {
      nlohmann::json meta = task_.items[mine[j]].metadata;
      meta["completion_tokens"] = generations[j][0].ids.size();
      inputs.push_back({prompt_texts_[mine[j]], generations[j][0].text, meta});
    }
    const auto scored = reward_.score_batch(inputs);
    auto s = sums.accessor<double, 1>();
    for (size_t j = 0; j < mine.size(); ++j) {
      const Completion& c = generations[j][0];
      const Graded g = grade(reward_, scored[j], task_.kind, c.text);
      s[0] += g.correct;
      s[1] += g.formatted;
      s[2] += g.answer_source == "boxed";
      s[3] += static_cast<double>(c.ids.size());
      s[4] += c.finish_reason == "length";
    }
  }
  if (group) {
    auto shared = sums.to(policy->parameters().front().device());
    group->all_reduce_sum({shared});
    sums = shared.cpu();
  }
  HeldoutResult r;
  r.problems = static_cast<int64_t>(prompts_.size());
  const double n = std::max<double>(1.0, static_cast<double>(r.problems));
  r.accuracy = sums[0].item<double>() / n;
  r.answer_rate = sums[1].item<double>() / n;
  r.boxed_rate = sums[2].item<double>() / n;
  r.response_tokens = sums[3].item<double>() / n;
  r.truncation_rate = sums[4].item<double>() / n;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace r1

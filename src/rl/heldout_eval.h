// GRPO's held-out evaluation (r1 grpo --eval-task F --eval-every N): the problems of an evaluation
// task (a built-in name or a JSONL file, as r1 eval takes them), posed as r1 eval poses them in the
// run's prompt format, answered greedily by the current policy and graded by the task's accuracy
// reward. Run before the first step, every N steps and after the last; the numbers go to
// metrics.jsonl ("stage": "grpo_eval") and the report. Data parallel: each rank answers every
// world-th problem and the counts are summed.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "eval/tasks.h"
#include "model/transformer.h"
#include "rewards/rewards.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace r1 {

class ProcessGroup;

struct HeldoutOptions {
  std::string task;             // empty: no held-out evaluation
  std::string data_dir;         // where built-in tasks live (default: r1's own data)
  int64_t every = 0;            // steps between evaluations (0: only before and after)
  int64_t limit = 0;            // only the first N problems (0: all)
  int64_t max_new_tokens = 256;
  int64_t max_batch = 64;       // sequences decoded together
};

struct HeldoutResult {
  int64_t problems = 0;
  double accuracy = 0;          // greedy pass@1
  double answer_rate = 0;       // an answer was found (\boxed{}, <answer>, "the answer is", ...)
  double boxed_rate = 0;        // ... and it was in \boxed{}
  double response_tokens = 0, truncation_rate = 0, seconds = 0;
  nlohmann::json to_json(int64_t step) const;  // the metrics.jsonl line
};

class HeldoutEval {
 public:
  // `prompt_format`: chat, plain or r1-zero (the run's --prompt-template); `chat_format` for chat.
  HeldoutEval(const HeldoutOptions& options, const std::string& prompt_format, const Tokenizer& tokenizer,
              const std::optional<ChatFormat>& chat_format, const RewardOptions& reward_options);
  bool enabled() const { return !task_.items.empty(); }
  // Whether the evaluation runs after `step` of `steps` (0: before training).
  bool due(int64_t step, int64_t steps) const;
  HeldoutResult run(const Transformer& policy, ProcessGroup* group) const;

 private:
  HeldoutOptions options_;
  EvalTask task_;
  const Tokenizer& tokenizer_;
  std::vector<std::vector<int64_t>> prompts_;
  std::vector<std::string> prompt_texts_;
  CombinedReward reward_;
};

}  // namespace r1

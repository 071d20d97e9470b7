// r1 sample: rejection sampling, the data step of DeepSeek-R1's third stage and of its distilled
// students. For each prompt, N answers from a model (batched in the engine), scored by the reward
// functions, filtered (right answers, the best one, or all; a minimum reward; the think format;
// a length limit; no language mixing; no truncated answers; no duplicates), written as SFT data
// with their scores and provenance. Resumable: rows are appended one batch of prompts at a time
// and OUT.progress.json records how far the file is complete.
#pragma once
#include <atomic>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "rewards/rewards.h"

namespace r1 {

struct SampleOptions {
  std::string model, prompts, out;
  std::string summary;  // default: OUT with .summary.json
  std::string prompt_template = "r1-zero", chat_template;
  std::string format = "auto";  // prompt-completion | messages | auto (messages for the chat template)
  int64_t n = 4;
  double temperature = 0.6, top_p = 0.95;  // DeepSeek-R1's sampling settings
  int64_t max_new_tokens = 1024;
  std::string reward = "accuracy_math:1";  // the first rule-based reward decides "correct"
  RewardOptions reward_options;
  std::string keep = "correct";            // correct | best | all
  double min_reward = -INFINITY;
  bool require_format = false;             // format_think must score 1
  int64_t max_tokens = 0;                  // completion tokens (0: no limit)
  bool no_language_mixing = false;         // language_consistency must score 1
  bool keep_truncated = false;             // answers cut by max_new_tokens are dropped unless set
  int64_t batch_prompts = 16;              // prompts per engine batch (and per resumable chunk)
  uint64_t seed = 0;
  bool resume = false;
  std::string device = "cpu";
  int reward_threads = 0;
};

struct SampleSummary {
  int64_t prompts = 0, samples = 0, correct = 0, kept = 0;
  int64_t prompts_with_correct = 0, prompts_with_kept = 0;
  std::vector<int64_t> kept_per_prompt, correct_per_prompt;
  double seconds = 0;
};

// Writes OUT (JSONL) and the summary; throws r1::Error when nothing passes the filters.
SampleSummary rejection_sample(const SampleOptions& options, const std::atomic<bool>* stop,
                               const std::function<void(int64_t done, int64_t total)>& on_progress);

}  // namespace r1

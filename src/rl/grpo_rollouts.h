// Part 1 of a GRPO step: sample G completions for each of the step's prompts, score them with the
// rewards, turn the rewards into group advantages, and keep what will be trained on. With
// --drop-zero-variance-groups (DAPO's dynamic sampling) more rounds replace the groups whose
// rewards were all equal.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rl/grpo_run.h"

namespace r1 {

// Statistics over every completion sampled this step (kept or not). Ranks share their rewards
// before computing advantages, so every rank holds the same numbers.
struct RolloutStats {
  double samples = 0, reward_sum = 0, reward_sq = 0, correct = 0, length_sum = 0, truncated = 0;
  double min_length = 1e18, max_length = 0;
  int64_t groups = 0, zero_variance_groups = 0;
  std::map<std::string, double> component_sums;  // per reward component
  double generation_s = 0, reward_s = 0;
};

struct StepRollouts {
  std::vector<Rollout> rollouts;       // this rank's, to train on
  RolloutStats stats;
  std::vector<nlohmann::json> samples;  // a few completions for samples.jsonl
};

StepRollouts collect_rollouts(GrpoRun& run);

// Data parallel (--rank-balance tokens): every rank's rollouts go to every rank (a byte
// all-gather), and each keeps those balance_ranks deals it by trained tokens (rank_balance.h).
std::vector<Rollout> deal_rollouts(const std::vector<Rollout>& mine, ProcessGroup& group, const GrpoOptions& o);

}  // namespace r1

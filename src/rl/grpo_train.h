// Part 2 of a GRPO step: --mu optimisation passes over the step's rollouts, each one AdamW step
// over micro-batches; then the step's training statistics, summed over ranks in one all-reduce.
#pragma once
#include <vector>

#include <nlohmann/json.hpp>

#include "rl/grpo_run.h"

namespace r1 {

// The training statistics of a step, summed over ranks (the per-token ones over the trained
// tokens of the first pass, where the policy is the one that generated the rollouts).
struct TrainStats {
  double rollouts = 0;          // N: rollouts of the step, trained or skipped
  double tokens = 0;            // their completion tokens with a gradient
  double trained_rollouts = 0;  // those that got a forward and backward (trains())
  double scored_tokens = 0;     // the trained tokens the per-token sums below are over
  double loss = 0;              // the objective, summed over passes
  double kl = 0, clip_low = 0, clip_high = 0, entropy = 0;  // sums over scored tokens
  double logprob_diff = 0;      // |training log-prob - engine log-prob|, summed over scored tokens
  double rollout_weight = 0;    // --rollout-correction's weights, summed over scored tokens
  double off_policy_masked = 0;  // rollouts the off-policy mask dropped
  double grad_norm = 0;          // before clipping, last pass
  double rank_imbalance = 1;     // the busiest rank's trained tokens over the ranks' mean
  bool stop = false;             // some rank was asked to stop: every rank stops after this step
  nlohmann::json balance;        // mixture-of-experts load metrics (null without MoE)
};

// `stop_requested`: this rank's wish to stop, shared with the statistics.
TrainStats train_on_rollouts(GrpoRun& run, std::vector<Rollout> rollouts, bool stop_requested);

}  // namespace r1

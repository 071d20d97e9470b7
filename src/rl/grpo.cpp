// The GRPO loop: each step samples rollouts and scores them (grpo_rollouts.cpp), trains on them
// (grpo_train.cpp), then logs, evaluates and saves. The run's state lives in GrpoRun (grpo_run.h).
#include "rl/grpo.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>

#include "rl/grpo_rollouts.h"
#include "rl/grpo_run.h"
#include "rl/grpo_train.h"

namespace r1 {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// --rm-update-every: the reward model trains on the step's fresh samples; every rank takes the
// same pairs and draws, and rank 0's weights keep the replicas identical whatever the rounding.
std::optional<RmUpdateStats> update_reward_model(GrpoRun& run) {
  if (!run.iterative || run.step % run.o.rm_updates.every != 0) return std::nullopt;
  const RmUpdateStats stats = run.iterative->update(run.step);
  if (run.group) {
    std::vector<torch::Tensor> params;
    for (auto& p : run.rm_scorer->model()->parameters()) params.push_back(p.detach());
    run.group->broadcast(params);
  }
  return stats;
}

// Iterative GRPO (--ref-reset-every, or a reward model that just moved): the reference becomes
// the current policy.
void reset_reference(GrpoRun& run) {
  torch::NoGradGuard no_grad;
  auto policy = run.policy->named_parameters();
  for (auto& p : run.reference->named_parameters()) p.value().copy_(policy[p.key()]);
}

struct StepTimes {
  double lr = 0, train_s = 0, step_s = 0;
};

// The step's line of metrics.jsonl.
json step_line(const GrpoRun& run, const RolloutStats& r, const TrainStats& t, const std::optional<RmUpdateStats>& rm,
               const StepTimes& times) {
  const GrpoOptions& o = run.o;
  const double samples = std::max(1.0, r.samples), tokens = std::max(t.tokens, 1.0);
  const double reward = r.reward_sum / samples;
  const bool scored = t.scored_tokens > 0;  // null per-token statistics when every rollout was skipped
  json line = {{"stage", "grpo"}, {"step", run.step}, {"loss", t.loss / o.mu}, {"reward", reward},
               {"reward_std", std::sqrt(std::max(0.0, r.reward_sq / samples - reward * reward))},
               {"accuracy", r.correct / samples},
               {"zero_variance_groups", static_cast<double>(r.zero_variance_groups) / r.groups},
               {"completion_length", r.length_sum / samples}, {"completion_length_min", r.min_length},
               {"completion_length_max", r.max_length}, {"truncation_rate", r.truncated / samples},
               {"kl", t.kl / tokens},
               {"entropy", scored ? json(t.entropy / t.scored_tokens) : json(nullptr)},
               {"rollouts_trained", t.trained_rollouts / std::max(t.rollouts, 1.0)},
               {"rank_imbalance", t.rank_imbalance},
               {"rollout_logprob_diff", scored ? json(t.logprob_diff / t.scored_tokens) : json(nullptr)},
               {"rollout_weight", o.loss.rollout_correction != "none" && scored
                                      ? json(t.rollout_weight / t.scored_tokens) : json(nullptr)},
               {"off_policy_masked", o.loss.off_policy_mask > 0 && t.trained_rollouts > 0
                                         ? json(t.off_policy_masked / t.trained_rollouts) : json(nullptr)},
               {"clip_low", t.clip_low / tokens}, {"clip_high", t.clip_high / tokens},
               {"grad_norm", t.grad_norm}, {"lr", times.lr}, {"generation_s", r.generation_s},
               {"reward_s", r.reward_s}, {"train_s", times.train_s}, {"step_s", times.step_s},
               {"tokens_per_s", r.length_sum / times.step_s}};
  for (const auto& [name, sum] : r.component_sums) line["reward_" + name] = sum / samples;
  if (r.component_sums.count("format_think")) line["format_rate"] = r.component_sums.at("format_think") / samples;
  if (rm) {
    line["rm_update_pairs"] = rm->fresh_pairs;
    line["rm_update_replay"] = rm->replay_pairs;
    line["rm_update_loss"] = rm->loss;
    line["rm_update_accuracy"] = rm->accuracy;
  }
  if (t.balance.is_object()) line.update(t.balance);
  return line;
}

// Rank 0: metrics.jsonl every --log-every steps, samples.jsonl every --sample-every.
void log_step(const GrpoRun& run, const StepRollouts& batch, const TrainStats& trained,
              const std::optional<RmUpdateStats>& rm, const StepTimes& times) {
  const GrpoOptions& o = run.o;
  const int64_t step = run.step;
  if (step % o.log_every == 0 || step == o.steps)
    std::ofstream(run.dir / "metrics.jsonl", std::ios::app) << step_line(run, batch.stats, trained, rm, times).dump() << "\n";
  if (o.sample_every > 0 && (step % o.sample_every == 0 || step == o.steps || step == 1)) {
    std::ofstream out(run.dir / "samples.jsonl", std::ios::app);
    for (auto& s : batch.samples) out << s.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
}

}  // namespace

int64_t grpo(const GrpoOptions& o, const std::atomic<bool>* stop, const std::function<void(const GrpoStepMetrics&)>& on_step) {
  GrpoRun run(o);
  if (run.step == 0) run.evaluate_heldout(0);
  while (run.step < o.steps) {
    const auto t0 = Clock::now();
    StepTimes times;
    times.lr = run.set_learning_rate();

    // 1. Rollouts: P prompts x G completions, scored, with group advantages.
    StepRollouts batch;
    {
      const auto whole = run.optimizer->whole_weights();  // --zero 3: the engine decodes with every weight
      batch = collect_rollouts(run);
    }
    if (run.iterative && run.group) run.iterative->share_fresh(*run.group);
    run.engine->release_cache();  // the training pass runs without the rollouts' KV cache

    // 2. Optimisation: mu passes over micro-batches, one AdamW step each.
    const auto t1 = Clock::now();
    const TrainStats trained = train_on_rollouts(run, std::move(batch.rollouts), stop && stop->load());
    ++run.step;

    // 3. Iterative RL: the reward model trains on fresh samples, the reference follows the policy.
    const auto rm_update = update_reward_model(run);
    const bool reset_due = (o.ref_reset_every > 0 && run.step % o.ref_reset_every == 0) || rm_update;
    if (run.reference && reset_due) {
      const auto whole = run.optimizer->whole_weights();
      reset_reference(run);
    }
    times.train_s = since(t1);
    times.step_s = since(t0);

    // 4. Log, evaluate held-out, save.
    if (run.main_rank()) log_step(run, batch, trained, rm_update, times);
    run.evaluate_heldout(run.step);
    const bool saving = run.step == o.steps || trained.stop || (o.save_every > 0 && run.step % o.save_every == 0);
    if (saving) run.optimizer->stage(run.dir.string());  // --zero 1-3: every rank writes its optimizer shard
    std::optional<TrainingOptimizer::WholeWeights> whole;    // --zero 3: rank 0 saves every weight
    if (saving) whole.emplace(run.optimizer->whole_weights());
    if (run.main_rank()) {
      if (on_step) {
        const double samples = std::max(1.0, batch.stats.samples);
        on_step({run.step, batch.stats.reward_sum / samples, batch.stats.correct / samples,
                 batch.stats.length_sum / samples, trained.kl / std::max(trained.tokens, 1.0), times.lr, times.step_s});
      }
      if (saving) run.save(run.step);
    }
    if (trained.stop) break;
  }
  return run.step;
}

}  // namespace r1

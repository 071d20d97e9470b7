#include "rl/grpo_rollouts.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "rl/rank_balance.h"
#include "util/error.h"
#include "util/hash.h"

namespace r1 {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One generation round: its prompts (the same on every rank) and the indices into them that this
// rank generates, scores and trains on.
struct Round {
  int64_t index = 0;
  std::vector<size_t> chosen;
  std::vector<int64_t> mine;
};

Round next_round(GrpoRun& run, int64_t index, int64_t need) {
  Round round;
  round.index = index;
  for (int64_t i = 0; i < need; ++i) round.chosen.push_back(run.next_prompt());
  for (int64_t i = run.rank(); i < need; i += run.world()) round.mine.push_back(i);
  return round;
}

// G completions per prompt of this rank, each prompt with its own seed from (step, round, prompt)
// so that any number of ranks samples what one process would.
std::vector<std::vector<Completion>> generate(GrpoRun& run, const Round& round) {
  const GrpoOptions& o = run.o;
  std::vector<Request> requests;
  for (const int64_t i : round.mine) {
    Request r;
    r.prompt = run.prompts[round.chosen[i]].ids;
    r.n = static_cast<int>(o.group_size);
    r.params.temperature = o.temperature;
    r.params.top_p = o.top_p;
    r.params.top_k = o.top_k;
    r.params.min_p = o.min_p;
    r.params.repetition_penalty = o.repetition_penalty;
    r.params.max_new_tokens = o.max_completion_tokens;
    r.params.seed = splitmix64(splitmix64(o.seed) ^
                               splitmix64(static_cast<uint64_t>(run.step) * 1000003 + round.index * 10007 + i));
    requests.push_back(std::move(r));
  }
  return run.engine->generate(requests);
}

// Table rows: the weighted total, whether the accuracy reward scored 1, the length, whether the
// completion was truncated, then one row per reward component.
enum ScoreRow : int64_t { kTotal = 0, kCorrect, kLength, kTruncated, kFirstComponent };

// --rm-normalize: the reward model's scores become z-scores over the round's completions (after
// the ranks shared their rows, so data-parallel runs normalise over the same batch as one
// process), and the total follows.
void normalize_component(torch::Tensor& table, const std::vector<WeightedReward>& parts) {
  for (size_t k = 0; k < parts.size(); ++k) {
    if (parts[k].name != "rm") continue;
    const auto raw = table[kFirstComponent + static_cast<int64_t>(k)].clone();
    const auto mean = raw.mean();
    const auto sd = (raw - mean).pow(2).mean().sqrt();  // population std, as the batch is all there is
    const auto z = (raw - mean) / (sd + 1e-6);
    table[kTotal] += parts[k].weight * (z - raw);
    table[kFirstComponent + static_cast<int64_t>(k)].copy_(z);
  }
}

// What every completion of the round scored, on every rank: [rows, prompts, G] in float64. Ranks
// fill their own prompts; a sum shares them.
torch::Tensor score_table(GrpoRun& run, const Round& round, const std::vector<std::vector<Completion>>& generations,
                          const std::vector<ScoredCompletion>& scored) {
  const auto& parts = run.reward->parts();
  const int64_t G = run.o.group_size, need = static_cast<int64_t>(round.chosen.size());
  auto table = torch::zeros({kFirstComponent + static_cast<int64_t>(parts.size()), need, G}, torch::kFloat64);
  auto t = table.accessor<double, 3>();
  for (size_t j = 0; j < round.mine.size(); ++j)
    for (int64_t g = 0; g < G; ++g) {
      const Completion& c = generations[j][g];
      const ScoredCompletion& s = scored[j * G + g];
      const int64_t i = round.mine[j];
      t[kTotal][i][g] = s.total;
      t[kCorrect][i][g] = s.components.at(run.accuracy_reward).score >= 1 - 1e-9;
      t[kLength][i][g] = static_cast<double>(c.ids.size());
      t[kTruncated][i][g] = c.finish_reason == "length";
      for (size_t k = 0; k < parts.size(); ++k) t[kFirstComponent + k][i][g] = s.components.at(parts[k].name).score;
    }
  if (run.group) {
    auto shared = table.to(run.device);
    run.group->all_reduce_sum({shared});
    table = shared.cpu();
  }
  if (run.o.rm_normalize) normalize_component(table, parts);
  return table;
}

// Adds the round's completions to `stats` and says which groups are kept: all of them, or with
// dynamic sampling those whose rewards differ, up to the step's number of prompts.
std::vector<bool> tally(const GrpoRun& run, const torch::Tensor& table, int64_t& kept_groups, RolloutStats& stats) {
  const auto& parts = run.reward->parts();
  const auto t = table.accessor<double, 3>();
  const int64_t need = table.size(1), G = table.size(2);
  std::vector<bool> keep(need);
  for (int64_t i = 0; i < need; ++i) {
    ++stats.groups;
    double lo = t[kTotal][i][0], hi = lo;
    for (int64_t g = 0; g < G; ++g) {
      const double reward = t[kTotal][i][g], length = t[kLength][i][g];
      lo = std::min(lo, reward);
      hi = std::max(hi, reward);
      stats.samples += 1;
      stats.reward_sum += reward;
      stats.reward_sq += reward * reward;
      stats.correct += t[kCorrect][i][g];
      stats.length_sum += length;
      stats.min_length = std::min(stats.min_length, length);
      stats.max_length = std::max(stats.max_length, length);
      stats.truncated += t[kTruncated][i][g];
      for (size_t k = 0; k < parts.size(); ++k) stats.component_sums[parts[k].name] += t[kFirstComponent + k][i][g];
    }
    const bool flat = lo == hi;
    stats.zero_variance_groups += flat;
    keep[i] = !(run.o.drop_zero_variance_groups && flat) && kept_groups < run.o.prompts_per_step;
    kept_groups += keep[i];
  }
  return keep;
}

// --rm-update-every: the round's completions, labelled by the rule-based reward, as fresh
// preference pairs for the reward model.
void collect_for_reward_model(GrpoRun& run, const Round& round, const std::vector<std::vector<Completion>>& generations,
                              const std::vector<ScoredCompletion>& scored) {
  for (size_t j = 0; j < round.mine.size(); ++j) {
    std::vector<std::string> texts;
    std::vector<bool> right;
    for (int64_t g = 0; g < run.o.group_size; ++g) {
      texts.push_back(generations[j][g].text);
      right.push_back(scored[j * run.o.group_size + g].components.at(run.label_reward).score >= 1 - 1e-9);
    }
    run.iterative->collect(round.index * run.o.prompts_per_step + round.mine[j], run.prompts[round.chosen[round.mine[j]]].text,
                           texts, right);
  }
}

}  // namespace

StepRollouts collect_rollouts(GrpoRun& run) {
  const GrpoOptions& o = run.o;
  StepRollouts out;
  int64_t kept_groups = 0;
  for (int64_t index = 0; index <= (o.drop_zero_variance_groups ? o.max_resample_rounds : 0); ++index) {
    const int64_t need = o.prompts_per_step - kept_groups;
    if (need <= 0) break;
    const Round round = next_round(run, index, need);
    auto t0 = Clock::now();
    const auto generations = generate(run, round);
    out.stats.generation_s += since(t0);
    t0 = Clock::now();
    std::vector<RewardInput> inputs;
    for (size_t j = 0; j < round.mine.size(); ++j)
      for (const auto& c : generations[j]) {
        const PromptRow& prompt = run.prompts[round.chosen[round.mine[j]]];
        json meta = prompt.metadata;
        meta["completion_tokens"] = c.ids.size();
        inputs.push_back({prompt.text, c.text, meta});
      }
    const auto scored = run.reward->score_batch(inputs, o.reward_threads);
    out.stats.reward_s += since(t0);
    const torch::Tensor table = score_table(run, round, generations, scored);
    const auto advantage_table = group_advantages(table[kTotal], o.scale_rewards);
    const auto advantages = advantage_table.accessor<double, 2>();
    const auto rewards = table.accessor<double, 3>();
    const std::vector<bool> keep = tally(run, table, kept_groups, out.stats);
    if (run.iterative) collect_for_reward_model(run, round, generations, scored);
    for (size_t j = 0; j < round.mine.size(); ++j) {
      const int64_t i = round.mine[j];
      const PromptRow& prompt = run.prompts[round.chosen[i]];
      for (int64_t g = 0; g < o.group_size; ++g) {
        const Completion& c = generations[j][g];
        if (out.samples.size() < static_cast<size_t>(o.samples_per_log))
          out.samples.push_back({{"step", run.step + 1}, {"prompt", prompt.text}, {"completion", c.text},
                                 {"reward", rewards[kTotal][i][g]}, {"advantage", advantages[i][g]}});
        if (!keep[i]) continue;
        Rollout r;
        r.tokens = prompt.ids;
        r.prompt_len = static_cast<int64_t>(r.tokens.size());
        r.tokens.insert(r.tokens.end(), c.ids.begin(), c.ids.end());
        r.completion_len = static_cast<int64_t>(c.ids.size());
        r.sampled_logprobs = c.logprobs;
        r.advantage = advantages[i][g];
        r.group = index * o.prompts_per_step + i;
        r.masked = o.mask_truncated && c.finish_reason == "length";
        out.rollouts.push_back(std::move(r));
      }
    }
  }
  return out;
}

std::vector<Rollout> deal_rollouts(const std::vector<Rollout>& mine, ProcessGroup& group, const GrpoOptions& o) {
  std::string bytes;
  const auto put = [&](const void* p, size_t n) { bytes.append(static_cast<const char*>(p), n); };
  for (const Rollout& r : mine) {
    const int64_t head[6] = {static_cast<int64_t>(r.tokens.size()), static_cast<int64_t>(r.sampled_logprobs.size()),
                             r.prompt_len, r.completion_len, r.group, r.masked};
    put(head, sizeof head);
    put(&r.advantage, sizeof r.advantage);
    put(r.tokens.data(), r.tokens.size() * sizeof(int64_t));
    put(r.sampled_logprobs.data(), r.sampled_logprobs.size() * sizeof(float));
  }
  std::vector<Rollout> all;
  for (const std::string& from : group.all_gather_strings(bytes)) {
    for (size_t at = 0; at < from.size();) {
      const auto take = [&](void* p, size_t n) {
        if (at + n > from.size()) throw Error("GRPO: a rank sent a truncated rollout list");
        std::memcpy(p, from.data() + at, n);
        at += n;
      };
      int64_t head[6];
      take(head, sizeof head);
      Rollout r;
      take(&r.advantage, sizeof r.advantage);
      r.tokens.resize(static_cast<size_t>(head[0]));
      r.sampled_logprobs.resize(static_cast<size_t>(head[1]));
      take(r.tokens.data(), r.tokens.size() * sizeof(int64_t));
      take(r.sampled_logprobs.data(), r.sampled_logprobs.size() * sizeof(float));
      r.prompt_len = head[2], r.completion_len = head[3], r.group = head[4], r.masked = head[5] != 0;
      all.push_back(std::move(r));
    }
  }
  std::vector<int64_t> costs;
  for (const Rollout& r : all) costs.push_back(trains(r, o) ? static_cast<int64_t>(r.tokens.size()) : 0);
  const auto owner = balance_ranks(costs, group.size());
  std::vector<Rollout> kept;
  for (size_t i = 0; i < all.size(); ++i)
    if (owner[i] == group.rank()) kept.push_back(std::move(all[i]));
  return kept;
}

}  // namespace r1

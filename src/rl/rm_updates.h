// Iterative RL with a learned reward model (DeepSeekMath, Algorithm 1): every K GRPO steps the
// reward model is trained further on fresh policy samples labelled by a rule-based reward, with a
// replay buffer so 10% of each update is historical data, and the reference model is reset to the
// policy. Pairs come from groups with both right and wrong completions (right = chosen).
#pragma once
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dist/process_group.h"
#include "rm/reward_model.h"

namespace r1 {

struct RmUpdateOptions {
  int64_t every = 0;                // K steps (0: off)
  double lr = 1e-5;
  int64_t batch_size = 16;
  int64_t epochs = 1;
  double replay_fraction = 0.1;     // share of each update drawn from the history
  int64_t replay_capacity = 20000;  // pairs kept for replay (oldest dropped)
  uint64_t seed = 0;
};

struct RmUpdateStats {
  int64_t fresh_pairs = 0, replay_pairs = 0;
  double loss = 0, accuracy = 0;
};

class IterativeRewardModel {
 public:
  // Trains the reward model `scorer` scores with (they share the weights).
  // `tokenizer_file` is copied beside the saved weights so the checkpoint is a complete directory.
  IterativeRewardModel(std::shared_ptr<RewardModelScorer> scorer, const Tokenizer* tokenizer,
                       std::string tokenizer_file, const RmUpdateOptions& options);
  // One group's completions and whether the rule reward called each right. `order` places the
  // group among the step's groups (the same on every rank) for share_fresh.
  void collect(int64_t order, const std::string& prompt, const std::vector<std::string>& completions,
               const std::vector<bool>& right);
  // Data parallelism: every rank's pairs collected since the last call, in `order` (as one
  // process would have collected them), on every rank; so each rank trains the same reward model
  // on the same data, and a checkpoint written by rank 0 holds every pending pair.
  void share_fresh(ProcessGroup& group);
  // Trains on the collected pairs plus replay; `step` seeds the draw so a resumed run repeats it.
  RmUpdateStats update(int64_t step);
  // Weights, optimizer and buffers under `dir` (a checkpoint's trainer_state), and back.
  void save(const std::string& dir);
  void load(const std::string& dir);

 private:
  std::shared_ptr<RewardModelScorer> scorer_;
  RewardModelTrainer trainer_;
  std::string tokenizer_file_;
  RmUpdateOptions options_;
  std::vector<RmExample> fresh_, replay_;
  std::vector<int64_t> fresh_order_;  // collect's `order` of each fresh pair
  size_t shared_ = 0;                 // fresh_[0, shared_) is already the same on every rank
};

}  // namespace r1

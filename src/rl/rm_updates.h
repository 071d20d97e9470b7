// Iterative RL with a learned reward model (DeepSeekMath, Algorithm 1): every K GRPO steps the
// reward model is trained further on fresh policy samples labelled by a rule-based reward, with a
// replay buffer so 10% of each update is historical data, and the reference model is reset to the
// policy. Pairs come from groups with both right and wrong completions (right = chosen).
#pragma once
#include <memory>
#include <random>
#include <string>
#include <vector>

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
  // One group's completions and whether the rule reward called each right.
  void collect(const std::string& prompt, const std::vector<std::string>& completions, const std::vector<bool>& right);
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
};

}  // namespace r1

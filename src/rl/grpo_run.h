// The state one GRPO run carries from step to step, shared by the parts of a step
// (rl/grpo.cpp's loop, grpo_rollouts.cpp, grpo_train.cpp): the options, the process group of data
// parallelism, the rewards, the policy and its reference, the optimizer, the rollout engine, the
// prompts and where the run is in them. Building one checks the options, loads the models (or
// the checkpoint of a run being resumed) and joins the other ranks.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dist/launch_env.h"
#include "dist/process_group.h"
#include "infer/engine.h"
#include "io/lora_adapter.h"
#include "rewards/rewards.h"
#include "rl/grpo.h"
#include "rl/heldout_eval.h"
#include "rl/prompts.h"
#include "rl/rm_updates.h"
#include "rm/reward_model.h"
#include "tokenizer/tokenizer.h"
#include "train/expert_balance.h"
#include "train/training_optimizer.h"

namespace r1 {

// One completion ready for training.
struct Rollout {
  std::vector<int64_t> tokens;  // prompt + completion
  std::vector<float> sampled_logprobs;  // the engine's log-prob of each completion token (at the rollout temperature)
  int64_t prompt_len = 0, completion_len = 0;
  int64_t group = 0;  // which prompt of the step it answers (its group's rollouts share the prompt's forward)
  double advantage = 0;
  bool masked = false;  // truncated with --mask-truncated
};

// Whether a rollout gets a forward and backward. Without the KL term (beta = 0) a rollout whose
// advantage is exactly 0 (every completion of a group whose rewards are all equal: all right or
// all wrong, most groups late in a run) adds exactly 0 to the gradient, as does a masked one:
// skipping them leaves the update unchanged, since the normalisers (N, total_tokens) still count
// them. --train-zero-advantage trains every rollout, as TRL does.
bool trains(const Rollout& r, const GrpoOptions& o);

struct GrpoRun {
  explicit GrpoRun(const GrpoOptions& options);
  GrpoRun(const GrpoRun&) = delete;
  GrpoRun& operator=(const GrpoRun&) = delete;

  const GrpoOptions& o;
  const torch::Device device;
  const bool bf16;  // the training forwards under bf16 autocast
  // Data parallelism: every rank walks the same prompt order and sees every prompt's rewards, but
  // generates, scores and trains on its own share of the prompts (prompt i goes to rank i mod W,
  // and keeps its global sampling seed, so W ranks sample what one process would). Gradients are
  // summed; the loss weights are global fractions. Rank 0 alone writes logs and checkpoints.
  const LaunchEnv env;
  std::unique_ptr<ProcessGroup> group;  // null in a single process
  const std::filesystem::path dir, state_dir;  // --out, and its trainer_state/
  const bool resuming;

  // Rewards. A learned one (rm:DIR) is loaded by the reward's parser, from the checkpoint when
  // resuming an iterative run whose reward model has been trained further.
  RewardOptions reward_options;
  std::shared_ptr<RewardModelScorer> rm_scorer;
  std::shared_ptr<Tokenizer> rm_tokenizer;
  std::string rm_tokenizer_file;
  std::unique_ptr<CombinedReward> reward;
  std::unique_ptr<IterativeRewardModel> iterative;  // --rm-update-every
  // "Correct" (the accuracy metric, and the labels of fresh samples for the reward model) means the
  // first rule-based reward scored 1; a reward model's score is no accuracy.
  std::string label_reward;
  std::string accuracy_reward;  // label_reward, else the first reward

  std::filesystem::path tokenizer_path;
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<PromptRow> prompts;
  Transformer policy{nullptr};
  Transformer reference{nullptr};  // only with the KL term (beta > 0), without LoRA
  RunLora lora;                    // --lora-rank: the adapters trained, and the base they belong to
  int64_t sampled_vocab = 0;  // the ids the engine samples: the tokenizer's, never a padded embedding's
  std::unique_ptr<TrainingOptimizer> optimizer;
  std::unique_ptr<ExpertBalance> balance;  // mixture-of-experts policies
  std::unique_ptr<Engine> engine;          // generates the rollouts with the policy's weights
  std::unique_ptr<HeldoutEval> heldout;

  // Where the run is: steps done, and the cursor into a seeded shuffle of the prompts per epoch.
  int64_t step = 0;
  uint64_t cursor = 0, epoch = 0;

  bool main_rank() const { return env.is_main(); }
  int64_t world() const { return env.world_size; }
  int64_t rank() const { return env.rank; }
  size_t next_prompt();
  // The learning rate of the coming step, set on the optimizer.
  double set_learning_rate();
  // --eval-every: held-out accuracy after `done` steps (0: before training), to metrics.jsonl.
  void evaluate_heldout(int64_t done);
  // The policy and everything a resume needs (optimizer, cursor, reference, reward model).
  void save(int64_t done);

 private:
  void load_reward();
  void load_models();
  void restore_position();
  void shuffle();
  std::vector<size_t> order_;
};

}  // namespace r1

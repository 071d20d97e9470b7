// r1 grpo: Group Relative Policy Optimization (DeepSeekMath; DeepSeek-R1-Zero's RL).
//
// Each step: P prompts, G completions each from the engine (the old policy, with per-token
// log-probs); rule-based (or external) rewards; group advantages; then mu passes over the
// rollouts in micro-batches: new log-probs from a full forward at the sampling temperature,
// ratio, clipped surrogate, k3 KL to a frozen reference (not even loaded when beta = 0),
// entropy (logged), gradient accumulation, clipping, one AdamW step per pass.
// metrics.jsonl, samples.jsonl and checkpoints (weights + trainer_state with the optimizer,
// step, prompt cursor and, with beta > 0, the reference) like the pretraining loop. With
// --eval-task, greedy accuracy on held-out problems before the first step, every --eval-every
// steps and after the last (heldout_eval.h).
#pragma once
#include <atomic>
#include <functional>
#include <string>

#include "rewards/rewards.h"
#include "rl/grpo_loss.h"
#include "rl/heldout_eval.h"
#include "rl/rm_updates.h"
#include "model/lora_config.h"
#include "train/expert_balance_options.h"
#include "train/lr_schedule.h"

namespace r1 {

struct GrpoOptions {
  std::string args_toml;         // the command line as TOML, saved to RUN/args.toml (rerun with --config)
  std::string init;              // the policy to start from (a model directory with tokenizer.json)
  std::string prompts;           // JSONL: "prompt" | "problem" | "question" | "messages", plus reward metadata
  std::string out;               // the run directory
  std::string prompt_template = "r1-zero";  // r1-zero | chat | plain
  std::string chat_template;     // for "chat": a template name (default: the tokenizer's)
  int64_t steps = 100;
  int64_t prompts_per_step = 16;  // P
  int64_t group_size = 8;         // G
  int64_t mu = 1;                 // optimisation passes per batch of rollouts
  int64_t micro_batch = 16;       // sequences per forward/backward
  int64_t rollout_batch = 0;      // sequences the engine decodes at once per rank (its KV cache rows; 0: all)
  GrpoLossOptions loss;
  std::string scale_rewards = "group";
  bool drop_zero_variance_groups = false;  // DAPO dynamic sampling
  int64_t max_resample_rounds = 3;         // ... with at most this many extra generation rounds per step
  bool mask_truncated = false;             // completions that hit the length limit get no gradient
  std::string prompt_sharing = "auto";     // auto | on | off: a group's prompt through the training forward once
  bool train_zero_advantage = false;       // also forward/backward rollouts with no gradient (beta = 0, A = 0)
  std::string rank_balance = "tokens";     // data parallel: tokens (rollouts dealt out by length) | none (own prompts')
  int64_t ref_reset_every = 0;             // iterative GRPO: the reference becomes the policy every K steps
  double temperature = 1.0, top_p = 1.0;
  int64_t top_k = 0;                       // rollout sampling, as the engine takes them (0 / 0 / 1: off)
  double min_p = 0.0, repetition_penalty = 1.0;
  int64_t max_completion_tokens = 256;
  std::string reward = "accuracy_math:1,format_think:0.5";
  RewardOptions reward_options;
  bool rm_normalize = false;      // rm:DIR scores as z-scores within each step's batch
  RmUpdateOptions rm_updates;     // iterative RL: keep training the reward model (every > 0)
  HeldoutOptions heldout;         // greedy accuracy on held-out problems before, during and after
  LrSchedule schedule;
  double beta1 = 0.9, beta2 = 0.99, adam_eps = 1e-8, weight_decay = 0.0, clip = 1.0;
  ExpertBalanceOptions balance;  // mixture-of-experts policies only
  uint64_t seed = 0;
  int64_t save_every = 0, log_every = 1, sample_every = 10, samples_per_log = 4;
  bool resume = false;
  std::string device = "cpu";
  std::string precision = "auto";  // auto (bf16 on CUDA) | fp32 | bf16: autocast for the training forward passes
  std::string rollout_dtype = "fp32";  // fp32 | int8: the weights rollouts decode with (held-out evaluations keep fp32)
  std::string reference_dtype = "auto";  // auto (bf16 when the passes run in bf16) | fp32 | bf16: the KL reference's weights
  int zero = 0;  // 1: AdamW's state sharded across data-parallel ranks (train/training_optimizer.h)
  bool checkpoint_activations = false;  // recompute each layer in the backward pass (model/checkpoint.h)
  LoraConfig lora;  // rank > 0: train LoRA adapters, the reference being the base without them
  int reward_threads = 0;
  int64_t dist_timeout_s = 300;  // data parallel: how long a rank waits for the others
};

struct GrpoStepMetrics {
  int64_t step = 0;
  double reward = 0, accuracy = 0, completion_length = 0, kl = 0, lr = 0, seconds = 0;
};

int64_t grpo(const GrpoOptions& options, const std::atomic<bool>* stop,
             const std::function<void(const GrpoStepMetrics&)>& on_step);

}  // namespace r1

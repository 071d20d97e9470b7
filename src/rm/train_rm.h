// r1 rm train: fits a reward model on preference pairs (Bradley-Terry) or labelled responses
// (pointwise), logging training and held-out pairwise accuracy to RUN/metrics.jsonl, and saves
// RUN as a ...ForSequenceClassification model directory with the tokenizer beside it.
// RUN/trainer_state (optimizer, step, seed) makes a stopped or killed run resumable: the data
// order is replayed from the seed, so a resumed run ends with the weights of an uninterrupted one.
#pragma once
#include <atomic>
#include <functional>
#include <string>

#include "model/lora_config.h"
#include "train/lr_schedule.h"

namespace r1 {

struct RmTrainOptions {
  std::string init;        // a causal LM (new head) or a reward model directory, with tokenizer.json
  std::string data;        // JSONL pairs or labelled responses (rm/reward_model.h)
  std::string val_data;    // held-out examples; default: --val-fraction of data
  double val_fraction = 0.1;
  std::string out;
  int64_t epochs = 1;
  int64_t batch_size = 16;
  int64_t max_length = 1024;
  LrSchedule schedule;
  double weight_decay = 0.0, clip = 1.0;
  uint64_t seed = 0;
  int64_t log_every = 10, eval_every = 0;  // eval_every 0: before and after training only
  int64_t save_every = 0;                  // checkpoint every N steps (0: at the end and when stopped)
  bool resume = false;                     // continue the run in `out` from its trainer_state
  std::string device = "cpu";
  std::string precision = "auto";  // train/autocast.h: bf16 matrix products on CUDA (auto) or when asked
  bool checkpoint_activations = false;  // recompute each layer in the backward pass (model/checkpoint.h)
  LoraConfig lora;                      // rank > 0: LoRA adapters and the score head train, the rest is frozen
  int zero = 0;                         // data parallel: ZeRO stage (train/training_optimizer.h)
  int64_t dist_timeout_s = 300;         // data parallel: seconds a rank waits for the others
  std::string args_toml;  // saved as RUN/args.toml
};

struct RmTrainResult {
  int64_t steps = 0, total_steps = 0;
  bool stopped = false;  // stopped early: `out` holds a checkpoint that --resume continues
  double val_accuracy_before = 0, val_accuracy = 0, val_loss = 0;
  int64_t val_examples = 0;
};

RmTrainResult train_reward_model(const RmTrainOptions& options, const std::atomic<bool>* stop,
                                 const std::function<void(int64_t step, int64_t total, double loss)>& on_step);

}  // namespace r1

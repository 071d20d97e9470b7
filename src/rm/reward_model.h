// Learned reward models (DeepSeekMath section 4; InstructGPT's Bradley-Terry pairs): a scalar head
// `score` [1, H] on the final hidden state of the last token of prompt + response, stored as a
// Hugging Face ...ForSequenceClassification directory (num_labels 1) that transformers loads as is.
//
//   pairs     {"prompt", "chosen", "rejected"}     loss -log sigmoid(r_chosen - r_rejected)
//   labelled  {"prompt", "response", "label"}     loss BCE(sigmoid(r), label), label in [0, 1]
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "model/transformer.h"
#include "rewards/rewards.h"
#include "tokenizer/tokenizer.h"
#include "train/training_optimizer.h"

namespace r1 {

struct RmExample {
  std::string prompt;
  std::string chosen, rejected;  // a preference pair ...
  std::string response;          // ... or one labelled response
  double label = 0;
  bool pair = true;
};

// Reads pairs or labelled rows (one kind per file); errors name the file, line and field.
std::vector<RmExample> read_rm_examples(const std::string& path);

// A reward model from `dir`: a reward-model directory as saved, or a causal LM directory whose
// backbone is kept, its LM head dropped and a new score head drawn from N(0, initializer_range).
Transformer load_reward_model(const std::string& dir, torch::Device device, uint64_t head_seed = 0);

// Token rows for texts, right-padded, and each row's last real position. Texts longer than
// max_length keep their last max_length tokens (the score reads the end).
struct RmBatch {
  torch::Tensor tokens, last;
};
RmBatch pack_rm_texts(const Tokenizer& tokenizer, const std::vector<std::string>& texts, int64_t max_length,
                      torch::Device device);

// Batched scoring of (prompt, response) pairs; deterministic.
class RewardModelScorer {
 public:
  RewardModelScorer(Transformer model, const Tokenizer* tokenizer, int64_t max_length = 1024, int64_t batch = 32);
  std::vector<double> score(const std::vector<std::pair<std::string, std::string>>& prompt_response);
  Transformer& model() { return model_; }

 private:
  Transformer model_;
  const Tokenizer* tokenizer_;
  int64_t max_length_, batch_;
};

// The `rm:DIR` item of --reward: one batched pass per call, the raw scores (also kept in each
// result's details). r1 grpo --rm-normalize z-scores them over the whole step (rl/grpo_rollouts.cpp).
BatchRewardFn reward_model_reward(std::shared_ptr<RewardModelScorer> scorer);

struct RmStats {
  double loss = 0, accuracy = 0;  // accuracy: chosen scored above rejected / sign agrees with the label
  int64_t examples = 0;
};

// One optimiser over a reward model: used by `r1 rm train` and by iterative GRPO.
class RewardModelTrainer {
 public:
  // In a process group every rank trains on its share of each batch (data parallelism, `zero`:
  // the ZeRO stage of train/training_optimizer.h); `group` null in one process.
  RewardModelTrainer(Transformer model, const Tokenizer* tokenizer, double lr, double weight_decay, double clip,
                     int64_t max_length, int zero = 0, ProcessGroup* group = nullptr);
  // One AdamW step on `batch` (the global batch: every rank passes the same rows and trains on its
  // share); the statistics are the whole batch's.
  RmStats train_step(const std::vector<const RmExample*>& batch);
  RmStats evaluate(const std::vector<RmExample>& examples, int64_t batch = 32);
  void set_lr(double lr);
  void set_bf16(bool on) { bf16_ = on; }  // bf16 matrix products in the forward (--precision)
  TrainingOptimizer& optimizer() { return *optimizer_; }
  Transformer& model() { return model_; }

 private:
  torch::Tensor forward_scores(const std::vector<std::string>& texts);
  std::pair<torch::Tensor, torch::Tensor> loss_and_correct(const std::vector<const RmExample*>& batch);
  Transformer model_;
  const Tokenizer* tokenizer_;
  double clip_;
  int64_t max_length_;
  std::unique_ptr<TrainingOptimizer> optimizer_;
  ProcessGroup* group_ = nullptr;
  bool bf16_ = false;
};

}  // namespace r1

// The optimizer of the training loops (pretraining/SFT, GRPO): AdamW (train/optimizer.h), whole on
// every rank (--zero 0, plain data parallelism), or with its state sharded across the
// data-parallel ranks (--zero 1, ZeRO stage 1: reference/scaling-and-lora.md §2).
//
// ZeRO-1 here: every rank keeps the whole model and the whole summed gradient; each parameter
// tensor belongs to one rank (assigned greedily by size, the same on every rank), which alone
// keeps its two AdamW moments and updates it; the owners then broadcast the updated tensors. AdamW
// is element-wise, so the weights equal those of unsharded AdamW, bit for bit; the moments take
// 8 bytes x parameters / ranks per rank instead of 8 bytes x parameters.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/transformer.h"

namespace r1 {

class ProcessGroup;

struct AdamWSettings {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
};

class TrainingOptimizer {
 public:
  // `zero`: 0 or 1 (2 and 3 are refused); `group` null in a single process.
  TrainingOptimizer(Transformer& model, const AdamWSettings& settings, int zero, ProcessGroup* group);
  void set_lr(double lr);
  // Drops every trainable parameter's gradient (those other ranks update too).
  void zero_grad();
  // One AdamW step from the gradients (already summed over ranks and clipped).
  void step();
  // Checkpoints. ZeRO-1 state is one file per rank: every rank calls stage() (it writes its shard
  // beside the run directory and waits for the others), then rank 0's save_into() moves the shards
  // into the checkpoint it is publishing. Without sharding stage() does nothing.
  void stage(const std::string& run_dir);
  void save_into(const std::string& trainer_state_dir, const std::string& run_dir);
  // Restores the state saved by save_into(); a checkpoint sharded over another number of ranks,
  // or saved with another --zero, is a clear error.
  void load(const std::string& trainer_state_dir);

 private:
  std::string shard_name(int rank) const;
  std::unique_ptr<torch::optim::AdamW> adamw_;
  std::vector<torch::Tensor> params_;               // every trainable parameter
  std::vector<std::vector<torch::Tensor>> owned_;   // ZeRO-1: rank -> the tensors it updates
  int zero_ = 0;
  ProcessGroup* group_ = nullptr;
};

}  // namespace r1

// The optimizer of the training loops (pretraining/SFT, GRPO): AdamW (train/optimizer.h) with
// data parallelism over a ProcessGroup, unsharded (--zero 0) or ZeRO-sharded (--zero 1|2|3,
// reference/scaling-and-lora.md §2).
//
// Each trainable tensor belongs to one rank (assigned greedily by size, the same on every rank),
// which alone keeps its two AdamW moments and updates it:
//   ZeRO-1  every rank keeps the whole model and the whole summed gradient (all-reduce); owners
//           broadcast the tensors they updated. AdamW is element-wise, so the weights equal those
//           of unsharded AdamW, bit for bit.
//   ZeRO-2  gradients go to their owner only, bucket by bucket during the backward pass
//           (train/gradient_reducer.h); the rest as ZeRO-1.
//   ZeRO-3  the decoder layers' matrices too lie on their owner only, gathered layer by layer
//           (train/sharded_weights.h); the small tensors as ZeRO-2.
// A training step:  zero_grad(); for each micro-batch { loss.backward(); after_backward(); }
// step(clip). With --zero 2|3 every rank must run the same number of micro-batches: a rank
// with fewer calls skip_micro_batch() for each it lacks.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/transformer.h"

namespace r1 {

class ProcessGroup;
class GradientReducer;
class ShardedWeights;

struct AdamWSettings {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
};

class TrainingOptimizer {
 public:
  // `zero`: 0-3; `group` null in a single process. With --zero 3 the model's layer matrices not
  // owned here are released at once: see WholeWeights for when they are needed whole.
  TrainingOptimizer(Transformer& model, const AdamWSettings& settings, int zero, ProcessGroup* group);
  ~TrainingOptimizer();
  int zero() const { return zero_; }
  void set_lr(double lr);
  // Drops every trainable parameter's gradient (those other ranks update too).
  void zero_grad();
  // After each micro-batch's backward pass (ZeRO-2/3: its gradient reductions are finished).
  void after_backward();
  // ZeRO-2/3, a rank with fewer micro-batches than another: the collectives of one, without it.
  void skip_micro_batch();
  // Whether every rank must run the same number of micro-batches (skip_micro_batch()).
  bool needs_equal_micro_batches() const;
  // The gradients summed over ranks, clipped to a global norm of `clip`, one AdamW step, and the
  // weights shared as the stage keeps them. Returns the norm before clipping.
  double step(double clip);

  // While one lives, every weight is whole on every rank (ZeRO-3; nothing otherwise): for
  // generation, evaluation and saving. Every rank creates and destroys it at the same point.
  class WholeWeights {
   public:
    explicit WholeWeights(ShardedWeights* w);
    ~WholeWeights();
    WholeWeights(WholeWeights&& o) noexcept : weights_(o.weights_) { o.weights_ = nullptr; }
    WholeWeights(const WholeWeights&) = delete;
    WholeWeights& operator=(const WholeWeights&) = delete;
    WholeWeights& operator=(WholeWeights&&) = delete;
   private:
    ShardedWeights* weights_;
  };
  WholeWeights whole_weights() { return WholeWeights(sharded_weights_.get()); }

  // Checkpoints. Sharded state is one file per rank: every rank calls stage() (it writes its shard
  // beside the run directory and waits for the others), then rank 0's save_into() moves the shards
  // into the checkpoint it is publishing. Without sharding stage() does nothing.
  void stage(const std::string& run_dir);
  void save_into(const std::string& trainer_state_dir, const std::string& run_dir);
  // Restores the state saved by save_into(); a checkpoint sharded over another number of ranks,
  // or saved with another --zero, is a clear error.
  void load(const std::string& trainer_state_dir);
  // The whole state in one named file (an unsharded optimizer of one process: GRPO's reward model).
  void save_file(const std::string& path);
  void load_file(const std::string& path);

 private:
  std::string shard_name(int rank) const;
  int rank() const;
  double clip_gradients(double clip);
  void share_updated();
  std::unique_ptr<torch::optim::AdamW> adamw_;
  std::vector<torch::Tensor> params_;  // every trainable parameter
  std::vector<int> owner_;             // ZeRO: the rank updating each
  int zero_ = 0;
  ProcessGroup* group_ = nullptr;
  std::unique_ptr<GradientReducer> reducer_;          // ZeRO-2/3 in a process group
  std::unique_ptr<ShardedWeights> sharded_weights_;   // ZeRO-3 in a process group
};

}  // namespace r1

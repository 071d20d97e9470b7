// ZeRO-3's weights (--zero 3, reference/scaling-and-lora.md §2): each weight matrix of the decoder
// layers lies whole only on the rank that owns it (training_optimizer.h); on the others its
// storage is released (0 bytes). A layer's matrices are gathered (broadcast by their owners) just
// before the layer's forward and again before its backward, and released after; while layer i
// runs, layer i + 1's (forward) or i - 1's (backward) gather is already under way. The tensors
// keep their identity, so autograd's saved references read the regathered bytes.
//
// Embeddings, norms, biases and the multi-token prediction modules stay whole everywhere (a few
// percent of a model); their gradients and optimizer state are sharded as in ZeRO-2.
//
// Every rank must run the same forward and backward passes: a rank with fewer micro-batches runs
// idle_pass() for each one it lacks, and the weights are made whole on every rank at once
// (WholeWeights, training_optimizer.h) for generation, evaluation and saving.
#pragma once
#include <vector>

#include <torch/torch.h>

#include "dist/process_group.h"
#include "model/transformer.h"

namespace r1 {

class ShardedWeights : public LayerWeights {
 public:
  // `owner[i]`: the rank holding params[i]; only decoder-layer matrices among them are sharded.
  ShardedWeights(Transformer& model, const std::vector<torch::Tensor>& params, const std::vector<int>& owner,
                 ProcessGroup& group);
  ~ShardedWeights() override;

  // Whether params[i] is sharded (its update stays on its owner: no broadcast after the step).
  bool sharded(size_t i) const { return sharded_[i]; }

  void before_forward(size_t layer) override;
  void after_forward(size_t layer) override;
  void before_backward(size_t layer) override;
  // After a backward pass: releases what it left gathered.
  void after_backward();
  // The gathers of one forward and backward pass, for a rank without a micro-batch to run.
  void idle_pass();
  // Every layer gathered until unpin() (every rank calls both at the same point; nests).
  void pin();
  void unpin();

 private:
  struct Shard {
    torch::Tensor param;
    int owner = 0;
    torch::Tensor incoming;  // a gather's receiving buffer (not the owner)
    ProcessGroup::Pending pending;
  };
  enum class State { kReleased, kGathering, kWhole };
  struct Layer {
    std::vector<Shard> shards;
    State state = State::kReleased;
  };
  void start_gather(size_t layer);
  void finish_gather(size_t layer, bool new_values);
  void make_whole(size_t layer, bool new_values);
  void release(size_t layer);

  Transformer model_;
  std::vector<bool> sharded_;
  std::vector<Layer> layers_;
  int pinned_ = 0;  // pin() depth
  ProcessGroup& group_;
};

}  // namespace r1

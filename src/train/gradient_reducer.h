// ZeRO-2 and -3's gradients (--zero 2|3, reference/scaling-and-lora.md §2): each trainable tensor
// belongs to one rank (training_optimizer.h); its gradient is summed onto that rank alone, bucket
// by bucket while the backward pass still runs, and freed everywhere else as soon as its bucket
// has left. A rank then holds whole gradients only for the tensors it updates.
//
// As in PyTorch's DDP reducer, buckets are launched in one fixed order (every rank issues the same
// collectives in the same sequence whatever order its backward pass produced the gradients in): a
// bucket goes when all of its gradients are in and every bucket before it has gone; after the
// backward pass the rest go, with zeros for parameters no gradient reached (an expert no token
// was routed to here).
#pragma once
#include <vector>

#include <torch/torch.h>

#include "dist/process_group.h"

namespace r1 {

class GradientReducer {
 public:
  // `owner[i]`: the rank that updates params[i].
  GradientReducer(const std::vector<torch::Tensor>& params, const std::vector<int>& owner, ProcessGroup& group,
                  int64_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // After each micro-batch's backward pass (or in place of one: the same collectives, zeros):
  // launches what is left, waits for every bucket, adds this rank's sums.
  void after_backward();
  // Before the optimizer step: each owned parameter's .grad is the sum over ranks and
  // micro-batches (zeros where none came); the others' .grad is undefined.
  void collect();
  // Forgets the sums (a new step).
  void reset();

 private:
  struct Bucket {
    int owner = 0;
    std::vector<size_t> members;  // indices into params_
    int64_t numel = 0;
    int ready = 0;
    bool launched = false;
    torch::Tensor flat;
    ProcessGroup::Pending pending;
  };
  void on_gradient(size_t param);
  void launch_in_order();
  void launch(Bucket& b);
  void finish(Bucket& b);

  std::vector<torch::Tensor> params_;
  std::vector<int> owner_;
  std::vector<size_t> bucket_of_;      // param -> bucket
  std::vector<bool> arrived_;          // param's gradient in, this micro-batch
  std::vector<Bucket> buckets_;        // in launch order (the backward pass's order: last layers first)
  size_t next_launch_ = 0;
  size_t next_finish_ = 0;
  std::vector<torch::Tensor> sums_;    // owned params: summed gradient of the step so far
  ProcessGroup& group_;
};

}  // namespace r1

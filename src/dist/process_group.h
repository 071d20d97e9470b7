// Data-parallel collectives over c10d: a TCPStore rendezvous at MASTER_ADDR:MASTER_PORT, then
// Gloo for CPU tensors or NCCL for CUDA tensors. The training loops use it to average gradients
// (bucketed all-reduce), to start every rank from rank 0's weights, and to agree on when to stop.
// Every failure (a rank that died, a collective past the timeout) becomes an r1::Error that
// names this rank and says what to look at, so no rank hangs forever on a dead peer.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dist/launch_env.h"

namespace r1 {

class ProcessGroup {
 public:
  // Joins the job described by `env`; `timeout` bounds the rendezvous and every collective.
  ProcessGroup(const LaunchEnv& env, torch::Device device, std::chrono::milliseconds timeout);
  ~ProcessGroup();
  int rank() const { return env_.rank; }
  int size() const { return env_.world_size; }

  // Sums each tensor across ranks in place. Tensors are packed into flat buckets of about
  // `bucket_bytes`, all buckets are started before the first is awaited (so transfers of one
  // overlap the packing of the next), then unpacked.
  void all_reduce_sum(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes = 25 << 20);
  // Copies rank `root`'s tensors into every rank's.
  void broadcast(const std::vector<torch::Tensor>& tensors, int root = 0);
  void barrier();
  // Every rank's `mine`, in rank order, on every rank (small payloads: texts, not tensors).
  std::vector<std::string> all_gather_strings(const std::string& mine);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  LaunchEnv env_;
};

}  // namespace r1

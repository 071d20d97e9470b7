// Data-parallel collectives over c10d: a TCPStore rendezvous at MASTER_ADDR:MASTER_PORT, then
// Gloo for CPU tensors or NCCL for CUDA tensors. The training loops use it to average gradients
// (bucketed all-reduce), to start every rank from rank 0's weights, and to agree on when to stop.
// Every failure (a rank that died, a collective past the timeout) becomes an r1::Error that
// names this rank and says what to look at, so no rank hangs forever on a dead peer.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dist/launch_env.h"

namespace c10d {
class Backend;
class Store;
}  // namespace c10d

namespace r1 {

class ProcessGroup {
 public:
  // Joins the job described by `env`; `timeout` bounds the rendezvous and every collective.
  ProcessGroup(const LaunchEnv& env, torch::Device device, std::chrono::milliseconds timeout);
  ~ProcessGroup();
  int rank() const { return env_.rank; }
  int size() const { return env_.world_size; }

  // Sums each tensor across ranks in place. Tensors are packed into flat buckets of about
  // `bucket_bytes`; each bucket starts while earlier ones travel (at most three at once), and is
  // unpacked when done.
  void all_reduce_sum(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes = 25 << 20);
  // Copies rank `root`'s tensors into every rank's.
  void broadcast(const std::vector<torch::Tensor>& tensors, int root = 0);
  void barrier();
  // Collectives that run while the caller goes on (ZeRO-2/3 during the forward and backward
  // passes); the returned function waits for it (an r1::Error if a peer failed). The tensor must
  // be contiguous and stay untouched until then. Every rank issues them in the same order.
  using Pending = std::function<void()>;
  Pending reduce_sum_async(const torch::Tensor& flat, int root);  // the sum lands in root's `flat`
  // ZeRO-3's weight gathers travel on a channel of their own (opened by every rank at once), so
  // that their order relative to the gradient reductions of the same backward pass, which
  // depends on when each gradient is ready, need not be the same on every rank.
  void open_gather_channel();
  Pending broadcast_async(const torch::Tensor& flat, int root);  // on the gather channel
  // Every rank's `mine`, in rank order, on every rank (small payloads: texts, not tensors).
  std::vector<std::string> all_gather_strings(const std::string& mine);

 private:
  struct Impl;
  c10::intrusive_ptr<c10d::Backend> connect(const c10::intrusive_ptr<c10d::Store>& store);
  std::unique_ptr<Impl> impl_;
  LaunchEnv env_;
};

}  // namespace r1

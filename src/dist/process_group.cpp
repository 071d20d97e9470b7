#include "dist/process_group.h"

#include <dlfcn.h>

#include <cstring>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "dist/nccl_backend.h"
#include "util/device.h"
#include "util/error.h"
#include "util/helper_programs.h"

namespace r1 {

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  c10::intrusive_ptr<c10d::Backend> gather_backend;  // open_gather_channel()
  std::chrono::milliseconds timeout;
  torch::Device device = torch::kCPU;  // where collectives' tensors must live (NCCL: the GPU)
};

namespace {

std::string seconds(std::chrono::milliseconds t) { return std::to_string(t.count() / 1000) + " s"; }

// The NCCL plugin's entry point (loaded once, with CUDA support first).
ConnectNcclFn connect_nccl() {
  static const ConnectNcclFn fn = [] {
    load_cuda_support();
    const std::string path = helper_program(kNcclPluginName, "R1_NCCL_PLUGIN");
    void* plugin = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (plugin == nullptr) throw Error("cannot load " + path + ": " + dlerror());
    auto* symbol = dlsym(plugin, kConnectNcclSymbol);
    if (symbol == nullptr) throw Error(path + " has no " + kConnectNcclSymbol);
    return reinterpret_cast<ConnectNcclFn>(symbol);
  }();
  return fn;
}

}  // namespace

ProcessGroup::ProcessGroup(const LaunchEnv& env, torch::Device device, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()), env_(env) {
  impl_->timeout = timeout;
  impl_->device = device;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(env.master_port);
    store_options.isServer = env.rank == 0;
    store_options.numWorkers = env.world_size;
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + ": rendezvous at " + where + " failed within " + seconds(timeout) +
                " (are all " + std::to_string(env.world_size) + " ranks started, and MASTER_ADDR/MASTER_PORT the same " +
                "everywhere?): " + e.what());
  }
  impl_->backend = connect(impl_->store);
}

// A backend (NCCL for CUDA, Gloo otherwise) over `store`, all ranks at once.
c10::intrusive_ptr<c10d::Backend> ProcessGroup::connect(const c10::intrusive_ptr<c10d::Store>& store) {
  const std::string where = env_.master_addr + ":" + std::to_string(env_.master_port);
  try {
    if (impl_->device.is_cuda()) {
      c10::intrusive_ptr<c10d::Backend> backend;
      connect_nccl()(store, env_.rank, env_.world_size, impl_->device.has_index() ? impl_->device.index() : -1,
                     impl_->timeout, &backend);
      return backend;
    }
    // Options::create_default picks the network interface like torch does (GLOO_SOCKET_IFNAME,
    // else this host's address, else loopback).
    auto options = c10d::ProcessGroupGloo::Options::create_default(impl_->timeout);
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, env_.rank, env_.world_size, options);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env_.rank) + ": cannot connect the process group via " + where + ": " + e.what());
  }
}

void ProcessGroup::open_gather_channel() {
  if (!impl_->gather_backend)
    impl_->gather_backend = connect(c10::make_intrusive<c10d::PrefixStore>("weight-gathers/", impl_->store));
}

ProcessGroup::~ProcessGroup() = default;

namespace {

// Waits for a collective; a peer that died or stalled becomes a clear r1::Error.
void wait_for(const c10::intrusive_ptr<c10d::Work>& work, int rank, std::chrono::milliseconds timeout,
              const char* what) {
  try {
    work->wait(timeout);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (const auto* ce = dynamic_cast<const c10::Error*>(&e)) msg = ce->what_without_backtrace();
    throw Error("rank " + std::to_string(rank) + ": " + what + " failed: another rank exited or did not answer within " +
                seconds(timeout) + " (see its output): " + msg.substr(0, 400));
  }
}

}  // namespace

void ProcessGroup::all_reduce_sum(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes) {
  // Buckets of tensors with the same dtype and device, in order.
  std::vector<std::vector<torch::Tensor>> buckets;
  int64_t filled = bucket_bytes;
  for (const auto& t : tensors) {
    const int64_t bytes = t.numel() * t.element_size();
    if (buckets.empty() || filled + bytes > bucket_bytes || buckets.back()[0].scalar_type() != t.scalar_type()) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(t);
    filled += bytes;
  }
  // Each bucket is packed and started while the previous ones travel; at most kInFlight wait at
  // once, so the packed copies take a few buckets of memory, not a second copy of every gradient.
  constexpr size_t kInFlight = 3;
  std::vector<std::vector<at::Tensor>> flats(buckets.size());
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  torch::NoGradGuard no_grad;
  size_t done = 0;
  const auto finish = [&](size_t b) {
    wait_for(works[b], rank(), impl_->timeout, "gradient all-reduce");
    int64_t offset = 0;
    for (auto& t : buckets[b]) {
      t.copy_(flats[b][0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
    flats[b].clear();
  };
  for (size_t b = 0; b < buckets.size(); ++b) {
    std::vector<torch::Tensor> views;
    for (const auto& t : buckets[b]) views.push_back(t.reshape({-1}));
    flats[b] = {torch::cat(views)};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    options.timeout = impl_->timeout;
    works.push_back(impl_->backend->allreduce(flats[b], options));
    while (works.size() - done > kInFlight) finish(done++);
  }
  while (done < works.size()) finish(done++);
}

void ProcessGroup::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.timeout = impl_->timeout;
    wait_for(impl_->backend->broadcast(one, options), rank(), impl_->timeout, "broadcast");
    if (!t.is_contiguous()) t.copy_(one[0]);
  }
}

ProcessGroup::Pending ProcessGroup::reduce_sum_async(const torch::Tensor& flat, int root) {
  std::vector<at::Tensor> one{flat};
  c10d::ReduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  options.rootRank = root;
  options.timeout = impl_->timeout;
  auto work = impl_->backend->reduce(one, options);
  return [work, rank = rank(), timeout = impl_->timeout] { wait_for(work, rank, timeout, "gradient reduce"); };
}

ProcessGroup::Pending ProcessGroup::broadcast_async(const torch::Tensor& flat, int root) {
  std::vector<at::Tensor> one{flat};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  options.timeout = impl_->timeout;
  if (!impl_->gather_backend) throw Error("internal: broadcast_async before open_gather_channel()");
  auto work = impl_->gather_backend->broadcast(one, options);
  return [work, rank = rank(), timeout = impl_->timeout] { wait_for(work, rank, timeout, "weight gather"); };
}

void ProcessGroup::barrier() {
  c10d::BarrierOptions options;
  options.timeout = impl_->timeout;
  wait_for(impl_->backend->barrier(options), rank(), impl_->timeout, "barrier");
}

std::vector<std::string> ProcessGroup::all_gather_strings(const std::string& mine) {
  // Two sums: every rank's length (its own slot set, the others zero), then the bytes, each rank
  // writing its own span of a zeroed buffer, so the sum is the concatenation.
  auto lengths = torch::zeros({size()}, torch::kInt64);
  lengths[rank()] = static_cast<int64_t>(mine.size());
  lengths = lengths.to(impl_->device);
  all_reduce_sum({lengths});
  lengths = lengths.cpu();
  std::vector<int64_t> offsets(size() + 1, 0);
  for (int r = 0; r < size(); ++r) offsets[r + 1] = offsets[r] + lengths[r].item<int64_t>();
  auto bytes = torch::zeros({std::max<int64_t>(offsets.back(), 1)}, torch::kUInt8);
  if (!mine.empty()) std::memcpy(bytes.data_ptr<uint8_t>() + offsets[rank()], mine.data(), mine.size());
  bytes = bytes.to(impl_->device);
  all_reduce_sum({bytes});
  bytes = bytes.cpu();
  std::vector<std::string> all;
  const auto* data = reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>());
  for (int r = 0; r < size(); ++r) all.emplace_back(data + offsets[r], data + offsets[r + 1]);
  return all;
}

}  // namespace r1

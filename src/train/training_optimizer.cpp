#include "train/training_optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "dist/process_group.h"
#include "model/lora.h"
#include "train/gradient_reducer.h"
#include "train/optimizer.h"
#include "train/sharded_weights.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

constexpr const char* kWholeFile = "optimizer.pt";
constexpr const char* kStagingDir = ".optimizer-shards";  // inside the run directory, until published

// Each tensor to the rank holding the fewest elements so far, largest tensors first: the same
// assignment on every rank, shards within one tensor of equal.
std::vector<int> assign_owners(const std::vector<torch::Tensor>& params, int ranks) {
  std::vector<size_t> order(params.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return params[a].numel() > params[b].numel(); });
  std::vector<int64_t> load(ranks, 0);
  std::vector<int> owner(params.size());
  for (size_t i : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = r;
    load[r] += params[i].numel();
  }
  return owner;
}

// Buckets of about 25 MB as DDP's, smaller for small models so that each rank's tensors spread
// over several buckets and the first ones leave while the backward pass still runs.
int64_t bucket_bytes(const std::vector<torch::Tensor>& params, int ranks) {
  int64_t total = 0;
  for (const auto& p : params) total += p.numel() * p.element_size();
  return std::clamp<int64_t>(total / (4 * ranks), 1, 25 << 20);
}

}  // namespace

TrainingOptimizer::TrainingOptimizer(Transformer& model, const AdamWSettings& s, int zero, ProcessGroup* group)
    : params_(model->trainable_parameters()), zero_(zero), group_(group) {
  if (zero < 0 || zero > 3)
    throw Error("--zero " + std::to_string(zero) + ": ZeRO stages are 0 (plain data parallelism), 1 (optimizer "
                "state sharded), 2 (and gradients), 3 (and weights)");
  if (zero_ == 3 && !lora_layers(model).empty())
    throw Error("--zero 3 with LoRA: the frozen base is not sharded; use --zero 2 (the adapters' gradients and "
                "optimizer state sharded) or merge the adapters first");
  owner_ = assign_owners(params_, group_ && zero_ > 0 ? group_->size() : 1);
  std::vector<torch::Tensor> mine;
  for (size_t i = 0; i < params_.size(); ++i)
    if (zero_ == 0 || owner_[i] == rank()) mine.push_back(params_[i]);
  if (group_ && zero_ >= 2) reducer_ = std::make_unique<GradientReducer>(params_, owner_, *group_, bucket_bytes(params_, group_->size()));
  if (group_ && zero_ == 3) sharded_weights_ = std::make_unique<ShardedWeights>(model, params_, owner_, *group_);
  adamw_ = std::make_unique<torch::optim::AdamW>(make_adamw(mine, s.lr, s.beta1, s.beta2, s.eps, s.weight_decay));
}

TrainingOptimizer::~TrainingOptimizer() = default;

int TrainingOptimizer::rank() const { return group_ ? group_->rank() : 0; }

void TrainingOptimizer::set_lr(double lr) {
  for (auto& g : adamw_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

void TrainingOptimizer::zero_grad() {
  for (auto& p : params_) p.mutable_grad().reset();
  if (reducer_) reducer_->reset();
}

bool TrainingOptimizer::needs_equal_micro_batches() const { return reducer_ != nullptr; }

void TrainingOptimizer::after_backward() {
  if (reducer_) reducer_->after_backward();
  if (sharded_weights_) sharded_weights_->after_backward();
}

void TrainingOptimizer::skip_micro_batch() {
  if (sharded_weights_) sharded_weights_->idle_pass();
  if (reducer_) reducer_->after_backward();
}

double TrainingOptimizer::step(double clip) {
  if (reducer_) {
    reducer_->collect();  // owners hold the summed gradients; the others none
  } else {
    // A parameter no micro-batch reached (an expert that got no token this step) has gradient 0,
    // and AdamW still steps it (momentum, decay), whichever rank's tokens went where.
    for (auto& p : params_)
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    if (group_) {
      std::vector<torch::Tensor> grads;
      for (auto& p : params_) grads.push_back(p.grad());
      group_->all_reduce_sum(grads);
    }
  }
  const double norm = clip_gradients(clip);
  adamw_->step();
  if (zero_ > 0 && group_) share_updated();
  return norm;
}

// clip_grad_norm_ over gradients that may be spread across ranks (ZeRO-2/3: each rank sums the
// squares of its own), with the same scale, max_norm / (norm + 1e-6) when below 1. The norms
// are taken in float64: libtorch's float32 clip_grad_norm_ was measured 5e-5 (relative) off the
// exact norm on the tiny model, which alone moved sharded and unsharded runs apart.
double TrainingOptimizer::clip_gradients(double clip) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].grad().defined() && (!reducer_ || owner_[i] == rank())) grads.push_back(params_[i].grad());
  const auto device = params_.empty() ? torch::Device(torch::kCPU) : params_[0].device();
  auto squares = torch::zeros({1}, torch::TensorOptions(torch::kFloat64).device(device));
  for (const auto& g : grads) squares += torch::linalg_vector_norm(g, 2, c10::nullopt, false, torch::kFloat64).square();
  if (reducer_) group_->all_reduce_sum({squares});
  const double norm = std::sqrt(squares.item<double>());
  const double scale = clip / (norm + 1e-6);
  if (scale < 1)
    for (auto& g : grads) g.mul_(scale);
  return norm;
}

// Each owner sends its updated tensors as one flat buffer (ZeRO-3's sharded matrices stay put:
// the next gather fetches them).
void TrainingOptimizer::share_updated() {
  torch::NoGradGuard no_grad;
  for (int r = 0; r < group_->size(); ++r) {
    std::vector<torch::Tensor> tensors;
    for (size_t i = 0; i < params_.size(); ++i)
      if (owner_[i] == r && !(sharded_weights_ && sharded_weights_->sharded(i))) tensors.push_back(params_[i]);
    if (tensors.empty()) continue;
    int64_t total = 0;
    for (const auto& t : tensors) total += t.numel();
    torch::Tensor flat;
    if (r == group_->rank()) {
      std::vector<torch::Tensor> parts;
      for (const auto& t : tensors) parts.push_back(t.detach().reshape({-1}));
      flat = torch::cat(parts);
    } else {
      flat = torch::empty({total}, tensors[0].options());
    }
    group_->broadcast({flat}, r);
    if (r == group_->rank()) continue;
    int64_t at = 0;
    for (const auto& t : tensors) {
      t.detach().copy_(flat.narrow(0, at, t.numel()).view(t.sizes()));
      at += t.numel();
    }
  }
}

TrainingOptimizer::WholeWeights::WholeWeights(ShardedWeights* w) : weights_(w) {
  if (weights_) weights_->pin();
}

TrainingOptimizer::WholeWeights::~WholeWeights() {
  if (weights_) weights_->unpin();
}

std::string TrainingOptimizer::shard_name(int rank) const {
  char name[64];
  std::snprintf(name, sizeof name, "optimizer-rank-%d-of-%d.pt", rank, group_ ? group_->size() : 1);
  return name;
}

void TrainingOptimizer::stage(const std::string& run_dir) {
  if (zero_ == 0) return;
  const fs::path staging = fs::path(run_dir) / kStagingDir;
  fs::create_directories(staging);
  torch::save(*adamw_, (staging / shard_name(rank())).string());
  if (group_) group_->barrier();  // every shard is on disk before rank 0 publishes the checkpoint
}

void TrainingOptimizer::save_into(const std::string& trainer_state_dir, const std::string& run_dir) {
  if (zero_ == 0) {
    torch::save(*adamw_, (fs::path(trainer_state_dir) / kWholeFile).string());
    return;
  }
  const fs::path staging = fs::path(run_dir) / kStagingDir;
  for (int r = 0; r < (group_ ? group_->size() : 1); ++r)
    fs::rename(staging / shard_name(r), fs::path(trainer_state_dir) / shard_name(r));
  fs::remove_all(staging);
}

void TrainingOptimizer::save_file(const std::string& path) {
  if (zero_ != 0 && group_) throw Error("internal: save_file() of a sharded optimizer");
  torch::save(*adamw_, path);
}

void TrainingOptimizer::load_file(const std::string& path) {
  if (zero_ != 0 && group_) throw Error("internal: load_file() of a sharded optimizer");
  torch::load(*adamw_, path);
}

void TrainingOptimizer::load(const std::string& trainer_state_dir) {
  const fs::path dir(trainer_state_dir);
  const fs::path file = dir / (zero_ > 0 ? shard_name(rank()) : std::string(kWholeFile));
  if (!fs::exists(file)) {
    std::string found;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind("optimizer", 0) == 0) found += " " + e.path().filename().string();
    throw Error(dir.string() + ": no " + file.filename().string() + " (the checkpoint holds" +
                (found.empty() ? std::string(" no optimizer state") : found) +
                "): resume with the --zero and the number of processes it was saved with");
  }
  torch::load(*adamw_, file.string());
}

}  // namespace r1

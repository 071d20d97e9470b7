#include "train/training_optimizer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "dist/process_group.h"
#include "train/optimizer.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

constexpr const char* kWholeFile = "optimizer.pt";
constexpr const char* kStagingDir = ".optimizer-shards";  // inside the run directory, until published

// Each tensor to the rank holding the fewest elements so far, largest tensors first: the same
// assignment on every rank, shards within one tensor of equal.
std::vector<std::vector<torch::Tensor>> assign_owners(const std::vector<torch::Tensor>& params, int ranks) {
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
  std::vector<std::vector<torch::Tensor>> owned(ranks);
  for (size_t i = 0; i < params.size(); ++i) owned[owner[i]].push_back(params[i]);  // in parameter order
  return owned;
}

}  // namespace

TrainingOptimizer::TrainingOptimizer(Transformer& model, const AdamWSettings& s, int zero, ProcessGroup* group)
    : params_(model->trainable_parameters()), zero_(zero), group_(group) {
  if (zero != 0 && zero != 1)
    throw Error("--zero " + std::to_string(zero) + ": ZeRO stages 2 and 3 are not built yet (0: plain data "
                "parallelism, 1: optimizer state sharded)");
  std::vector<torch::Tensor> mine = params_;
  if (zero_ == 1) {
    owned_ = assign_owners(params_, group_ ? group_->size() : 1);
    mine = owned_[group_ ? group_->rank() : 0];
  }
  adamw_ = std::make_unique<torch::optim::AdamW>(make_adamw(mine, s.lr, s.beta1, s.beta2, s.eps, s.weight_decay));
}

void TrainingOptimizer::set_lr(double lr) {
  for (auto& g : adamw_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

void TrainingOptimizer::zero_grad() {
  for (auto& p : params_) p.mutable_grad().reset();
}

void TrainingOptimizer::step() {
  adamw_->step();
  if (zero_ != 1 || !group_) return;
  // Each owner sends its updated tensors as one flat buffer.
  torch::NoGradGuard no_grad;
  for (int r = 0; r < group_->size(); ++r) {
    const auto& tensors = owned_[r];
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

std::string TrainingOptimizer::shard_name(int rank) const {
  char name[64];
  std::snprintf(name, sizeof name, "optimizer-rank-%d-of-%d.pt", rank, group_ ? group_->size() : 1);
  return name;
}

void TrainingOptimizer::stage(const std::string& run_dir) {
  if (zero_ != 1) return;
  const fs::path staging = fs::path(run_dir) / kStagingDir;
  fs::create_directories(staging);
  torch::save(*adamw_, (staging / shard_name(group_ ? group_->rank() : 0)).string());
  if (group_) group_->barrier();  // every shard is on disk before rank 0 publishes the checkpoint
}

void TrainingOptimizer::save_into(const std::string& trainer_state_dir, const std::string& run_dir) {
  if (zero_ != 1) {
    torch::save(*adamw_, (fs::path(trainer_state_dir) / kWholeFile).string());
    return;
  }
  const fs::path staging = fs::path(run_dir) / kStagingDir;
  for (int r = 0; r < (group_ ? group_->size() : 1); ++r)
    fs::rename(staging / shard_name(r), fs::path(trainer_state_dir) / shard_name(r));
  fs::remove_all(staging);
}

void TrainingOptimizer::load(const std::string& trainer_state_dir) {
  const fs::path dir(trainer_state_dir);
  const fs::path file = dir / (zero_ == 1 ? shard_name(group_ ? group_->rank() : 0) : std::string(kWholeFile));
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

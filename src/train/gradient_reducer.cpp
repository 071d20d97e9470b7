#include "train/gradient_reducer.h"

#include <map>

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "util/error.h"

namespace r1 {
namespace {

// Runs after the autograd engine has added a backward pass's gradient into the parameter's .grad.
struct OnGradient : torch::autograd::PostAccumulateGradHook {
  explicit OnGradient(std::function<void()> f) : fn(std::move(f)) {}
  void operator()(const torch::autograd::Variable&) override { fn(); }
  std::function<void()> fn;
};

constexpr size_t kInFlight = 2;  // buckets whose transfer may still run: bounds the extra memory

}  // namespace

GradientReducer::GradientReducer(const std::vector<torch::Tensor>& params, const std::vector<int>& owner,
                                 ProcessGroup& group, int64_t bucket_bytes)
    : params_(params), owner_(owner), bucket_of_(params.size()), arrived_(params.size(), false),
      sums_(params.size()), group_(group) {
  for (const auto& p : params)
    if (p.scalar_type() != params[0].scalar_type())
      throw Error("--zero 2/3: every trainable parameter must have one dtype (found " +
                  std::string(c10::toString(p.scalar_type())) + " and " + c10::toString(params[0].scalar_type()) + ")");
  // Walk the parameters last to first (the order the backward pass produces them in), filling one
  // open bucket per owner; a bucket takes its place in the launch order when it closes.
  std::map<int, Bucket> open;
  const auto close = [&](int r) {
    for (size_t m : open[r].members) bucket_of_[m] = buckets_.size();
    buckets_.push_back(std::move(open[r]));
    open.erase(r);
  };
  for (size_t k = params.size(); k-- > 0;) {
    Bucket& b = open[owner[k]];
    b.owner = owner[k];
    b.members.push_back(k);
    b.numel += params[k].numel();
    if (b.numel * params[k].element_size() >= bucket_bytes) close(owner[k]);
  }
  while (!open.empty()) close(open.begin()->first);
  for (size_t k = 0; k < params_.size(); ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k], std::make_unique<OnGradient>([this, k] { on_gradient(k); }));
}

GradientReducer::~GradientReducer() {
  for (auto& p : params_) torch::autograd::impl::post_acc_grad_hooks(p).reset();
}

void GradientReducer::on_gradient(size_t k) {
  if (arrived_[k]) return;  // already counted in this micro-batch
  Bucket& b = buckets_[bucket_of_[k]];
  if (b.launched)
    throw Error("--zero 2/3: a gradient arrived after its bucket was reduced (a parameter used twice in one "
                "backward pass?)");
  arrived_[k] = true;
  ++b.ready;
  launch_in_order();
}

void GradientReducer::launch_in_order() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].ready == static_cast<int>(buckets_[next_launch_].members.size()))
    launch(buckets_[next_launch_++]);
}

void GradientReducer::launch(Bucket& b) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (size_t m : b.members) {
    auto& p = params_[m];
    parts.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
    p.mutable_grad().reset();  // this micro-batch's gradient now travels in the bucket
  }
  b.flat = torch::cat(parts);
  b.pending = group_.reduce_sum_async(b.flat, b.owner);
  b.launched = true;
  while (next_launch_ - next_finish_ > kInFlight) finish(buckets_[next_finish_++]);
}

void GradientReducer::finish(Bucket& b) {
  b.pending();
  if (b.owner == group_.rank()) {
    torch::NoGradGuard no_grad;
    int64_t at = 0;
    for (size_t m : b.members) {
      const auto& p = params_[m];
      auto part = b.flat.narrow(0, at, p.numel()).view(p.sizes());
      sums_[m] = sums_[m].defined() ? sums_[m].add_(part) : part.clone();
      at += p.numel();
    }
  }
  b.flat = torch::Tensor();
  b.pending = nullptr;
}

void GradientReducer::after_backward() {
  for (auto& b : buckets_) b.ready = static_cast<int>(b.members.size());  // the rest go now, zeros if need be
  launch_in_order();
  while (next_finish_ < next_launch_) finish(buckets_[next_finish_++]);
  for (auto& b : buckets_) {
    b.ready = 0;
    b.launched = false;
  }
  next_launch_ = next_finish_ = 0;
  arrived_.assign(arrived_.size(), false);
}

void GradientReducer::collect() {
  for (size_t k = 0; k < params_.size(); ++k) {
    auto& p = params_[k];
    if (owner_[k] != group_.rank()) {
      p.mutable_grad().reset();
      continue;
    }
    p.mutable_grad() = sums_[k].defined() ? sums_[k] : torch::zeros_like(p);
    sums_[k] = torch::Tensor();
  }
}

void GradientReducer::reset() {
  for (auto& s : sums_) s = torch::Tensor();
}

}  // namespace r1

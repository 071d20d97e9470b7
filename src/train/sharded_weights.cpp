#include "train/sharded_weights.h"

#include <unordered_map>

namespace r1 {
namespace {

// The tensor keeps its shape, dtype and identity; its bytes go (0-byte storage).
void drop_storage(const torch::Tensor& t) {
  auto* storage = t.storage().unsafeGetStorageImpl();
  storage->set_data_ptr_noswap(at::DataPtr(nullptr, t.device()));
  storage->set_nbytes(0);
}

// `t` takes over the bytes of `incoming` (same shape and dtype), without a copy and without
// bumping its version unless asked: a backward pass's saved references to `t` stay valid.
void adopt_storage(const torch::Tensor& t, torch::Tensor& incoming, bool new_values) {
  auto* from = incoming.storage().unsafeGetStorageImpl();
  auto* to = t.storage().unsafeGetStorageImpl();
  const size_t bytes = from->nbytes();
  to->set_data_ptr_noswap(from->set_data_ptr(at::DataPtr(nullptr, t.device())));
  to->set_nbytes(bytes);
  incoming = torch::Tensor();
  // Caches keyed on the version counter (decoding's packed weights) must see the new values.
  if (new_values) t.unsafeGetTensorImpl()->bump_version();
}

bool whole_storage(const torch::Tensor& t) {
  return t.storage_offset() == 0 && t.is_contiguous() &&
         t.storage().nbytes() == static_cast<size_t>(t.numel()) * t.element_size();
}

}  // namespace

ShardedWeights::ShardedWeights(Transformer& model, const std::vector<torch::Tensor>& params,
                               const std::vector<int>& owner, ProcessGroup& group)
    : model_(model), sharded_(params.size(), false), group_(group) {
  group_.open_gather_channel();
  std::unordered_map<const void*, size_t> index;
  for (size_t i = 0; i < params.size(); ++i) index[params[i].unsafeGetTensorImpl()] = i;
  const int64_t n = model->config().num_hidden_layers;
  layers_.resize(static_cast<size_t>(n));
  for (int64_t l = 0; l < n; ++l)
    for (const auto& p : model->model->layers[l]->parameters()) {
      const auto it = index.find(p.unsafeGetTensorImpl());
      if (it == index.end() || p.dim() < 2 || !whole_storage(p)) continue;  // frozen, a vector, or a view
      sharded_[it->second] = true;
      layers_[l].shards.push_back({p, owner[it->second], {}, nullptr});
    }
  for (size_t l = 0; l < layers_.size(); ++l) release(l);
  model_->set_layer_weights(this);
}

ShardedWeights::~ShardedWeights() { model_->set_layer_weights(nullptr); }

void ShardedWeights::start_gather(size_t l) {
  Layer& layer = layers_[l];
  torch::NoGradGuard no_grad;
  for (auto& s : layer.shards) {
    const bool mine = s.owner == group_.rank();
    if (!mine) s.incoming = torch::empty(s.param.sizes(), s.param.options());
    s.pending = group_.broadcast_async(mine ? s.param.detach() : s.incoming, s.owner);
  }
  layer.state = State::kGathering;
}

void ShardedWeights::finish_gather(size_t l, bool new_values) {
  Layer& layer = layers_[l];
  for (auto& s : layer.shards) {
    s.pending();
    s.pending = nullptr;
    if (s.owner != group_.rank()) adopt_storage(s.param, s.incoming, new_values);
  }
  layer.state = State::kWhole;
}

void ShardedWeights::make_whole(size_t l, bool new_values) {
  if (layers_[l].state == State::kReleased) start_gather(l);
  if (layers_[l].state == State::kGathering) finish_gather(l, new_values);
}

void ShardedWeights::release(size_t l) {
  Layer& layer = layers_[l];
  if (layer.state == State::kGathering) finish_gather(l, false);
  for (auto& s : layer.shards)
    if (s.owner != group_.rank()) drop_storage(s.param);
  layer.state = State::kReleased;
}

void ShardedWeights::before_forward(size_t l) {
  if (pinned_) return;
  make_whole(l, true);
  if (l + 1 < layers_.size() && layers_[l + 1].state == State::kReleased) start_gather(l + 1);  // prefetch
}

void ShardedWeights::after_forward(size_t l) {
  if (!pinned_) release(l);
}

void ShardedWeights::before_backward(size_t l) {
  // Called once per output of the layer: the first call does the work.
  if (pinned_ || layers_[l].state == State::kWhole) return;
  if (l + 1 < layers_.size()) release(l + 1);  // its backward pass is over
  make_whole(l, false);
  if (l > 0 && layers_[l - 1].state == State::kReleased) start_gather(l - 1);  // prefetch
}

void ShardedWeights::after_backward() {
  if (pinned_) return;
  for (size_t l = 0; l < layers_.size(); ++l)
    if (layers_[l].state != State::kReleased) release(l);
}

void ShardedWeights::idle_pass() {
  for (size_t l = 0; l < layers_.size(); ++l) {
    before_forward(l);
    after_forward(l);
  }
  for (size_t l = layers_.size(); l-- > 0;) before_backward(l);
  after_backward();
}

void ShardedWeights::pin() {
  if (pinned_++ > 0) return;
  for (size_t l = 0; l < layers_.size(); ++l) make_whole(l, true);
}

void ShardedWeights::unpin() {
  if (--pinned_ > 0) return;
  for (size_t l = 0; l < layers_.size(); ++l) release(l);
}

}  // namespace r1

#include "model/transformer.h"


#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>

#include "model/checkpoint.h"
#include "model/decode_attention.h"
#include "model/fused_ops.h"
#include "model/prefix_attention.h"
#include "util/error.h"
#include "util/strings.h"

namespace r1 {

namespace {

// R1_NO_LATENT_CACHE=1: latent attention caches per-head keys and values as transformers does, not
// the latent (the benchmark's reference for what the latent cache saves).
bool full_latent_cache() {
  static const bool full = std::getenv("R1_NO_LATENT_CACHE") != nullptr;
  return full;
}

}  // namespace

KvCache::KvCache(const ModelConfig& c, int64_t batch, int64_t capacity, torch::Device device,
                 torch::ScalarType dtype, bool with_mtp) {
  auto opts = torch::TensorOptions().device(device).dtype(dtype);
  const int64_t layers = c.num_hidden_layers + (with_mtp ? 1 : 0);
  for (int64_t i = 0; i < layers; ++i) {
    if (c.is_deepseek() && !full_latent_cache()) {
      k.push_back(torch::zeros({batch, 1, capacity, c.mla.kv_lora_rank + c.mla.qk_rope_head_dim}, opts));
      continue;
    }
    const int64_t heads = c.num_key_value_heads;
    const int64_t dk = c.is_deepseek() ? c.mla.qk_head_dim() : c.head_dim, dv = c.is_deepseek() ? c.mla.v_head_dim : c.head_dim;
    k.push_back(torch::zeros({batch, heads, capacity, dk}, opts));
    v.push_back(torch::zeros({batch, heads, capacity, dv}, opts));
  }
}

int64_t KvCache::bytes() const {
  int64_t n = 0;
  for (const auto* layers : {&k, &v})
    for (const auto& t : *layers) n += t.nbytes();
  return n;
}

AttentionImpl::AttentionImpl(const ModelConfig& c, const torch::TensorOptions& o)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
  q_proj = register_module("q_proj", Linear(c.hidden_size, c.q_dim(), c.has_qkv_bias(), o));
  k_proj = register_module("k_proj", Linear(c.hidden_size, c.kv_dim(), c.has_qkv_bias(), o));
  v_proj = register_module("v_proj", Linear(c.hidden_size, c.kv_dim(), c.has_qkv_bias(), o));
  o_proj = register_module("o_proj", Linear(c.q_dim(), c.hidden_size, c.has_o_bias(), o));
  if (c.has_qk_norm()) {
    q_norm = register_module("q_norm", RMSNorm(c.head_dim, c.rms_norm_eps, o));
    k_norm = register_module("k_norm", RMSNorm(c.head_dim, c.rms_norm_eps, o));
  }
}

std::pair<torch::Tensor, torch::Tensor> AttentionImpl::rotated_qk(const torch::Tensor& x, const torch::Tensor& cos,
                                                                  const torch::Tensor& sin) {
  // Rotated in the projections' own [B, T, heads, D] layout (one fused pass on the CPU).
  const int64_t B = x.size(0), T = x.size(1);
  auto q = q_proj(x).view({B, T, heads_, head_dim_});
  auto k = k_proj(x).view({B, T, kv_heads_, head_dim_});
  if (q_norm) {
    q = q_norm(q);
    k = k_norm(k);
  }
  const auto cos_t = cos.squeeze(1), sin_t = sin.squeeze(1);
  return {fused::rotary(q, cos_t, sin_t), fused::rotary(k, cos_t, sin_t)};
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     KvCache* cache, int64_t layer,
                                     const std::vector<at::indexing::TensorIndex>& cache_slots,
                                     const torch::Tensor& mask, int64_t used) {
  const int64_t B = x.size(0), T = x.size(1);
  auto [q_rows, k_rows] = rotated_qk(x, cos, sin);
  auto q = q_rows.transpose(1, 2), k = k_rows.transpose(1, 2);  // [B, heads, T, D] for attention
  auto v = v_proj(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
  torch::Tensor out;
  if (cache == nullptr) {
    out = scaled_attention(q, k, v, mask);  // undefined: causal; packed rows: causal within each document
  } else if (!mask.defined()) {  // decoding on the CPU: forward_cached chose the fused kernel
    out = fused::decode_attention(q, k, v, cache->k[layer], cache->v[layer], cache_slots[1].tensor());
  } else {
    // Write this step's keys/values at each sequence's own positions, then attend to the prefix.
    // index_put_ on the [B, capacity, kv_heads, D] view, not scatter_: the CPU scatter kernel
    // converts the whole bf16 cache to fp32 and back on every call (bf16 decoding of bench-m at
    // batch 64 went from 530 to 848 tokens/s), index_put_ copies only the new rows.
    cache->k[layer].permute({0, 2, 1, 3}).index_put_(cache_slots, k.transpose(1, 2).to(cache->k[layer].scalar_type()));
    cache->v[layer].permute({0, 2, 1, 3}).index_put_(cache_slots, v.transpose(1, 2).to(cache->v[layer].scalar_type()));
    auto keys = cache->k[layer].narrow(2, 0, used).to(q.scalar_type());
    auto values = cache->v[layer].narrow(2, 0, used).to(q.scalar_type());
    out = scaled_attention(q, keys, values, mask);
  }
  return o_proj(out.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
}

torch::Tensor AttentionImpl::forward_shared_prefix(const torch::Tensor& x, const torch::Tensor& cos,
                                                   const torch::Tensor& sin, int64_t P, int64_t n,
                                                   const torch::Tensor& group, int64_t m, const torch::Tensor& mask,
                                                   const torch::Tensor& keep, const fused::PrefixLayout* layout) {
  const int64_t K = x.size(1);
  // Projections and rotary over every token at once (one product per weight).
  const auto [q, k] = rotated_qk(x, cos, sin);
  const auto v = v_proj(x).view({1, K, kv_heads_, head_dim_});
  if (layout != nullptr)
    return o_proj(fused::prefix_attention(q.squeeze(0), k.squeeze(0), v.squeeze(0), *layout).view({1, K, heads_ * head_dim_}));
  return o_proj(shared_prefix_attention(q, k, v, P, n, group, m, mask, keep));
}

MtpHeadImpl::MtpHeadImpl(const ModelConfig& c, const torch::TensorOptions& o) {
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, o));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, int64_t index, const torch::TensorOptions& o) {
  if (c.is_deepseek()) latent_attn = register_module("self_attn", LatentAttention(c, o));
  else self_attn = register_module("self_attn", Attention(c, o));
  if (c.is_moe_layer(index)) moe = register_module("mlp", Moe(c, o));
  else mlp = register_module("mlp", Mlp(c.hidden_size, c.intermediate_size, c.mlp_bias, o));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, o));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, o));
  if (index >= c.num_hidden_layers) {  // a multi-token prediction module
    enorm = register_module("enorm", RMSNorm(c.hidden_size, c.rms_norm_eps, o));
    hnorm = register_module("hnorm", RMSNorm(c.hidden_size, c.rms_norm_eps, o));
    eh_proj = register_module("eh_proj", Linear(2 * c.hidden_size, c.hidden_size, false, o));
    shared_head = register_module("shared_head", MtpHead(c, o));
  }
}

torch::Tensor DecoderLayerImpl::attend(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                       KvCache* cache, int64_t layer,
                                       const std::vector<at::indexing::TensorIndex>& cache_slots,
                                       const torch::Tensor& mask, int64_t used) {
  if (latent_attn) return latent_attn(x, cos, sin, cache, layer, cache_slots, mask, used);
  return self_attn(x, cos, sin, cache, layer, cache_slots, mask, used);
}

DecoderStackImpl::DecoderStackImpl(const ModelConfig& c, const torch::TensorOptions& o) {
  embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size, o));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers + (c.is_deepseek() ? c.mtp_layers : 0); ++i)
    layers->push_back(DecoderLayer(c, i, o));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, o));
}

TransformerImpl::TransformerImpl(const ModelConfig& config, const torch::TensorOptions& options)
    : config_(config), rope_(config) {
  config_.validate();
  model = register_module("model", DecoderStack(config_, options));
  if (config_.sequence_classification)
    score = register_module("score", Linear(config_.hidden_size, 1, false, options));
  else if (!config_.tie_word_embeddings)
    lm_head = register_module("lm_head", Linear(config_.hidden_size, config_.vocab_size, false, options));
}

torch::Tensor TransformerImpl::run_layers(torch::Tensor h, const torch::Tensor& positions, KvCache* cache,
                                          const torch::Tensor& mask, int64_t used) {
  auto [cos, sin] = rope_.cos_sin(positions);
  std::vector<at::indexing::TensorIndex> cache_slots;  // where each layer writes its keys/values
  if (cache != nullptr) cache_slots = {torch::arange(h.size(0), positions.options()).view({-1, 1}), positions};
  return through_layers(std::move(h), [=](DecoderLayerImpl& layer, int64_t i, const torch::Tensor& x) {
    return layer.attend(x, cos, sin, cache, i, cache_slots, mask, used);
  });
}

torch::Tensor TransformerImpl::through_layers(torch::Tensor h, const AttendFn& attend) {
  const size_t n = static_cast<size_t>(config_.num_hidden_layers);  // the MTP modules come after
  auto layer_at = [this](size_t i) { return model->layers[i]->as<DecoderLayerImpl>(); };
  // Layer i: (residual stream, its normed copy) -> the same after attention and feed-forward.
  auto layer_step = [this, n, layer_at](const AttendFn& attend_fn, size_t i, torch::Tensor h, torch::Tensor normed) {
    auto* layer = layer_at(i);
    std::tie(h, normed) =
        layer->post_attention_layernorm->add_then_forward(h, attend_fn(*layer, static_cast<int64_t>(i), normed));
    auto& next_norm = i + 1 < n ? layer_at(i + 1)->input_layernorm : model->norm;
    std::tie(h, normed) = next_norm->add_then_forward(h, layer->feed_forward(normed));
    return std::make_pair(h, normed);
  };
  torch::Tensor normed = n > 0 ? layer_at(0)->input_layernorm(h) : model->norm(h);
  const bool recompute = checkpoint_activations_ && is_training() && torch::GradMode::is_enabled();
  if (recompute) check_checkpointable();
  const auto kept = recompute ? std::make_shared<const AttendFn>(attend) : nullptr;
  for (size_t i = 0; i < n; ++i) {
    if (layer_weights_) layer_weights_->before_forward(i);
    if (!recompute) {
      std::tie(h, normed) = layer_step(attend, i, h, normed);
    } else {
      auto block = std::make_shared<const Block>([layer_step, kept, i](const std::vector<torch::Tensor>& in) {
        auto [h_out, normed_out] = layer_step(*kept, i, in[0], in[1]);
        return std::vector<torch::Tensor>{h_out, normed_out};
      });
      const auto out = checkpoint(block, {h, normed});
      h = out[0], normed = out[1];
    }
    if (!layer_weights_) continue;
    layer_weights_->after_forward(i);
    // The backward pass reaches layer i through either output (the last layer's residual has none).
    for (auto& out : {h, normed})
      if (out.requires_grad()) out.register_hook([w = layer_weights_, i](const torch::Tensor&) { w->before_backward(i); });
  }
  return normed;
}

// The sequence-wise balance loss of MoE layers is taken from the forward, which a checkpointed
// layer runs without gradients: refuse rather than drop it silently.
void TransformerImpl::check_checkpointable() {
  for (size_t i = 0; i < static_cast<size_t>(config_.num_hidden_layers); ++i) {
    auto* layer = model->layers[i]->as<DecoderLayerImpl>();
    if (layer->moe && layer->moe->balance_loss_weight() > 0)
      throw Error("--checkpoint-activations does not carry the sequence-wise expert balance loss: pass "
                  "--moe-balance-loss 0 (bias balancing still runs)");
  }
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens, const torch::Tensor& positions) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be [batch, time], got ", tokens.sizes());
  auto pos = positions.defined()
                 ? positions
                 : torch::arange(tokens.size(1), tokens.options().dtype(torch::kInt64)).unsqueeze(0).expand_as(tokens);
  return run_layers(model->embed_tokens(tokens), pos, nullptr, {}, 0);
}

torch::Tensor TransformerImpl::forward_packed(const torch::Tensor& tokens, const torch::Tensor& segments) {
  TORCH_CHECK(tokens.dim() == 2 && segments.sizes() == tokens.sizes(), "tokens and segments must both be [batch, time]");
  const int64_t T = tokens.size(1);
  const auto idx = torch::arange(T, segments.options()).unsqueeze(0).expand_as(segments);
  // Each position's distance from the start of its document.
  auto first = torch::ones_like(segments, torch::kBool);
  if (T > 1) first.narrow(1, 1, T - 1).copy_(segments.narrow(1, 1, T - 1) != segments.narrow(1, 0, T - 1));
  const auto start_of = std::get<0>(torch::cummax(torch::where(first, idx, torch::zeros_like(idx)), 1));
  const auto positions = idx - start_of;
  const auto causal = torch::ones({T, T}, segments.options().dtype(torch::kBool)).tril();
  const auto mask = ((segments.unsqueeze(2) == segments.unsqueeze(1)) & causal).unsqueeze(1);  // [B, 1, T, T]
  return run_layers(model->embed_tokens(tokens), positions, nullptr, mask, 0);
}

std::pair<torch::Tensor, torch::Tensor> TransformerImpl::forward_shared_prefix(const torch::Tensor& prompts,
                                                                               const torch::Tensor& prompt_lengths,
                                                                               const torch::Tensor& completions,
                                                                               const torch::Tensor& group,
                                                                               const torch::Tensor& completion_lengths) {
  const int64_t P = prompts.size(0), n = prompts.size(1), R = completions.size(0), m = completions.size(1);
  if (prompts.dim() != 2 || completions.dim() != 2 || prompt_lengths.sizes() != torch::IntArrayRef{P} ||
      group.sizes() != torch::IntArrayRef{R} || n < 1 || m < 1 ||
      (completion_lengths.defined() && completion_lengths.sizes() != torch::IntArrayRef{R}))
    throw Error("forward_shared_prefix: prompts [P, n], prompt_lengths [P], completions [R, m], group [R] "
                "(and completion_lengths [R]) required");
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(prompts.device());
  // Lengths given on the host are copied without waiting for the device (non_blocking), and the
  // padding to skip is found on the host: no device synchronisation for the layout.
  const auto g = group.to(i64, true), lengths = prompt_lengths.to(i64, true);
  const auto start = lengths.index_select(0, g);  // each completion's first position
  auto positions = torch::cat({torch::arange(n, i64).repeat({P}),
                               (start.unsqueeze(1) + torch::arange(m, i64)).reshape({-1})}).unsqueeze(0);
  auto tokens = torch::cat({prompts.reshape({-1}), completions.reshape({-1})}).to(i64);
  // Completion queries see their prompt's real tokens (not its padding), then their own tokens up to themselves.
  const auto sees_prompt = (torch::arange(n, i64).view({1, 1, n}) < start.view({R, 1, 1})).expand({R, m, n});
  const auto sees_own = torch::ones({m, m}, i64.dtype(torch::kBool)).tril().unsqueeze(0).expand({R, m, m});
  const auto mask = torch::cat({sees_prompt, sees_own}, 2).unsqueeze(1);  // [R, 1, m, n + m]
  // The real positions, when padding is to be skipped (and there is some).
  torch::Tensor keep;
  if (completion_lengths.defined()) {
    const auto host = torch::TensorOptions().dtype(torch::kInt64);
    const auto real = torch::cat({(torch::arange(n, host).unsqueeze(0) < prompt_lengths.to(host).unsqueeze(1)).reshape({-1}),
                                  (torch::arange(m, host).unsqueeze(0) < completion_lengths.to(host).unsqueeze(1))
                                      .reshape({-1})});
    keep = real.nonzero().squeeze(1);
    if (keep.size(0) < real.size(0)) {
      keep = keep.to(i64, true);
      tokens = tokens.index_select(0, keep);
      positions = positions.index_select(1, keep);
    } else {
      keep = torch::Tensor();  // no padding: nothing to skip
    }
  }
  auto [cos, sin] = rope_.cos_sin(positions);
  auto h = model->embed_tokens(tokens.unsqueeze(0));
  // On the CPU in float32 the fused kernel attends over the tokens as they lie: each prompt's
  // tokens (its real ones when padding is skipped), then each completion's; where its queries see
  // few keys (prefix_attention_pays), else SDPA over the padded layout.
  std::optional<fused::PrefixLayout> layout;
  if (!config_.is_deepseek() && fused::prefix_attention_applies(h)) {
    const auto values = [](const torch::Tensor& t) {
      const auto c = t.to(torch::kCPU, torch::kInt64).contiguous();
      return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
    };
    const auto visible = values(lengths);
    if (keep.defined())  // x holds the real tokens only (completion_lengths is then defined)
      layout = fused::PrefixLayout::of(visible, visible, values(completion_lengths), values(g));
    else
      layout = fused::PrefixLayout::of(std::vector<int64_t>(P, n), visible, std::vector<int64_t>(R, m), values(g));
    if (!fused::prefix_attention_pays(*layout)) layout.reset();
  }
  // Held by value: with activation checkpointing the backward pass attends again.
  const auto shared_layout = layout ? std::make_shared<const fused::PrefixLayout>(std::move(*layout)) : nullptr;
  h = through_layers(std::move(h), [=](DecoderLayerImpl& layer, int64_t, const torch::Tensor& x) {
    if (layer.latent_attn) return layer.latent_attn->forward_shared_prefix(x, cos, sin, P, n, g, m, mask, keep);
    return layer.self_attn->forward_shared_prefix(x, cos, sin, P, n, g, m, mask, keep, shared_layout.get());
  });
  if (keep.defined()) h = torch::zeros({1, P * n + R * m, h.size(2)}, h.options()).index_copy(1, keep, h);
  return {h.narrow(1, 0, P * n).view({P, n, -1}), h.narrow(1, P * n, R * m).view({R, m, -1})};
}

TransformerImpl::CachedStep TransformerImpl::cached_step(const torch::Tensor& tokens, const std::vector<int64_t>& start,
                                                        KvCache& cache, int64_t first_row) {
  const int64_t B = tokens.size(0), S = tokens.size(1);
  if (tokens.dim() != 2 || static_cast<int64_t>(start.size()) != B || first_row < 0 || first_row + B > cache.batch())
    throw Error("forward_cached: tokens [B, S], one start per sequence and rows within the cache are required");
  const int64_t used = *std::max_element(start.begin(), start.end()) + S;
  if (used > cache.capacity())
    throw Error("KV cache overflow: need " + std::to_string(used) + " positions, cache holds " +
                std::to_string(cache.capacity()));
  auto dev = tokens.device();
  auto start_t = torch::tensor(start, torch::kInt64).to(dev);
  CachedStep step{cache, start_t.unsqueeze(1) + torch::arange(S, torch::TensorOptions().dtype(torch::kInt64).device(dev)),
                  {}, used};
  // Query at position p sees cache entries 0..p of its own sequence (the fused CPU decoding
  // kernel reads each row's own prefix and needs no mask).
  if (S > 1 || config_.is_deepseek() || !fused::decode_attention_applies(model->embed_tokens->weight, cache.k[0])) {
    auto key_pos = torch::arange(used, torch::TensorOptions().dtype(torch::kInt64).device(dev));
    step.mask = key_pos.view({1, 1, 1, used}) <= step.positions.view({B, 1, S, 1});
  }
  if (B < cache.batch()) {  // a smaller batch uses cache rows first_row..first_row+B-1
    for (auto& t : step.view.k) t = t.narrow(0, first_row, B);
    for (auto& t : step.view.v) t = t.narrow(0, first_row, B);
  }
  return step;
}

torch::Tensor TransformerImpl::forward_cached(const torch::Tensor& tokens, const std::vector<int64_t>& start,
                                              KvCache& cache, int64_t first_row) {
  CachedStep step = cached_step(tokens, start, cache, first_row);
  return run_layers(model->embed_tokens(tokens), step.positions, &step.view, step.mask, step.used);
}

torch::Tensor TransformerImpl::mtp_module(DecoderLayerImpl& layer, const torch::Tensor& h, const torch::Tensor& next,
                                          const torch::Tensor& positions, KvCache* cache, int64_t cache_layer,
                                          const torch::Tensor& mask, int64_t used) {
  const auto embedded = layer.enorm(model->embed_tokens(next));
  auto x = layer.eh_proj(torch::cat({embedded, layer.hnorm(h)}, -1));
  const auto [cos, sin] = rope_.cos_sin(positions);
  std::vector<at::indexing::TensorIndex> cache_slots;
  if (cache != nullptr) cache_slots = {torch::arange(x.size(0), positions.options()).view({-1, 1}), positions};
  x = x + layer.attend(layer.input_layernorm(x), cos, sin, cache, cache_layer, cache_slots, mask, used);
  return x + layer.feed_forward(layer.post_attention_layernorm(x));
}

torch::Tensor TransformerImpl::mtp_cached(const torch::Tensor& hidden, const torch::Tensor& next,
                                          const std::vector<int64_t>& start, KvCache& cache, int64_t first_row) {
  const int64_t L = config_.num_hidden_layers;
  if (mtp_modules() < 1 || static_cast<int64_t>(cache.k.size()) <= L)
    throw Error("mtp_cached: the model has no multi-token prediction module, or the cache no layer for it");
  CachedStep step = cached_step(next, start, cache, first_row);
  auto* layer = model->layers[L]->as<DecoderLayerImpl>();
  return layer->shared_head->norm(mtp_module(*layer, hidden, next, step.positions, &step.view, L, step.mask, step.used));
}

std::vector<torch::Tensor> TransformerImpl::mtp_logits(const torch::Tensor& hidden, const torch::Tensor& tokens) {
  std::vector<torch::Tensor> out;
  const int64_t B = tokens.size(0), T = tokens.size(1), L = config_.num_hidden_layers;
  torch::Tensor h = hidden;
  for (int64_t k = 1; k <= mtp_modules() && k < T; ++k) {
    auto* layer = model->layers[L + k - 1]->as<DecoderLayerImpl>();
    const int64_t n = T - k;
    const auto positions = torch::arange(n, tokens.options().dtype(torch::kInt64)).unsqueeze(0).expand({B, n});
    h = mtp_module(*layer, h.narrow(1, 0, n), tokens.narrow(1, k, n), positions, nullptr, 0, {}, 0);
    out.push_back(logits(layer->shared_head->norm(h)));
  }
  return out;
}

int64_t TransformerImpl::mtp_modules() const {
  return static_cast<int64_t>(model->layers->size()) - config_.num_hidden_layers;
}

void TransformerImpl::freeze_mtp_modules() {
  for (int64_t k = 0; k < mtp_modules(); ++k)
    for (auto& p : model->layers[config_.num_hidden_layers + k]->parameters()) p.set_requires_grad(false);
}

torch::Tensor TransformerImpl::scores(const torch::Tensor& hidden, const torch::Tensor& last) {
  if (!score) throw Error("this model has no reward head (a " + config_.architecture_name() + ", not ...ForSequenceClassification)");
  const auto rows = torch::arange(hidden.size(0), last.options().dtype(torch::kInt64));
  return score(hidden.index({rows, last.to(torch::kInt64)})).squeeze(-1).to(torch::kFloat32);
}

std::map<std::string, LinearImpl*> TransformerImpl::freezable_linears() {
  std::map<std::string, LinearImpl*> out;
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    auto* linear = dynamic_cast<LinearImpl*>(item.value().get());
    const auto& name = item.key();
    const bool absorbed_by_attention = name.size() >= 9 && name.compare(name.size() - 9, 9, "kv_b_proj") == 0;
    const bool lora = name.find("lora_") != std::string::npos;  // small, and trained in float32
    if (linear != nullptr && !absorbed_by_attention && !lora) out[name + ".weight"] = linear;
  }
  return out;
}

void freeze_linear(LinearImpl& linear, WeightType type) {
  if (linear.packed.frozen() || linear.weight.dim() != 2 || linear.weight.scalar_type() != torch::kFloat32) return;
  torch::NoGradGuard no_grad;
  linear.packed.freeze(linear.weight, type);
  linear.weight.set_data(torch::empty({0}, linear.weight.options()));  // the memory goes back now
}

std::pair<int64_t, int64_t> TransformerImpl::freeze_linears(WeightType type) {
  int64_t replaced = 0, copies = 0;
  for (const auto& [name, linear] : freezable_linears()) {
    freeze_linear(*linear, type);
    if (!linear->packed.frozen()) continue;
    replaced += linear->packed.frozen_values() * 4;
    copies += linear->packed.frozen_bytes();
  }
  if (!lm_head && !score && !tied_head_packed_.frozen()) {
    torch::NoGradGuard no_grad;
    tied_head_packed_.freeze(model->embed_tokens->weight, type);  // the lookup keeps the float32 table
  }
  copies += tied_head_packed_.frozen_bytes();
  return {replaced, copies};
}

torch::Tensor TransformerImpl::logits(const torch::Tensor& hidden) {
  if (config_.sequence_classification)
    throw Error("a reward model (" + config_.architecture_name() + ") has no language-model head: it scores, it does not generate");
  return lm_head ? lm_head(hidden) : r1::linear(hidden, model->embed_tokens->weight, {}, &tied_head_packed_);
}

torch::Tensor TransformerImpl::token_logprobs(const torch::Tensor& hidden, const torch::Tensor& targets, int64_t chunk) {
  std::vector<torch::Tensor> parts;
  const int64_t T = hidden.size(1);
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const int64_t n = std::min(chunk, T - t0);
    auto l = logits(hidden.narrow(1, t0, n)).to(torch::kFloat32);
    auto picked = l.gather(-1, targets.narrow(1, t0, n).unsqueeze(-1)).squeeze(-1);
    parts.push_back(picked - l.logsumexp(-1));
  }
  return torch::cat(parts, 1);
}

std::vector<torch::Tensor> TransformerImpl::trainable_parameters() {
  std::vector<torch::Tensor> out;
  for (auto& p : parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

void TransformerImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std = config_.initializer_range;
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    torch::Tensor& t = p.value();
    if (ends_with(name, "norm.weight")) {
      t.fill_(1.0);
    } else if (ends_with(name, ".bias") || ends_with(name, ".e_score_correction_bias")) {
      t.zero_();
    } else {
      // Draw on the CPU with a seeded generator so a seed gives the same weights on any device.
      auto w = torch::empty(t.sizes(), torch::kFloat32);
      w.normal_(0.0, std, gen);
      t.copy_(w);
    }
  }
}

KvCache TransformerImpl::make_cache(int64_t batch, int64_t capacity, bool with_mtp) {
  auto w = model->embed_tokens->weight;
  return KvCache(config_, batch, capacity, w.device(), w.scalar_type(), with_mtp);
}

}  // namespace r1

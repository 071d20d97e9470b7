#include "model/latent_attention.h"

#include <cmath>
#include <limits>

#include "model/fused_ops.h"
#include "model/transformer.h"

namespace r1 {
namespace {

// transformers' yarn_get_mscale.
double yarn_mscale(double factor, double mscale) { return factor <= 1 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0; }

double softmax_scale(const ModelConfig& c) {
  double scale = 1.0 / std::sqrt(static_cast<double>(c.mla.qk_head_dim()));
  const RopeScaling& r = c.rope_scaling;
  if (!r.type.empty() && r.mscale_all_dim && *r.mscale_all_dim != 0) {
    const double m = yarn_mscale(r.factor, *r.mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

// Queries per sequence up to which a cached forward attends absorbed (decoding, speculative
// checks); longer ones (prefills) expand the cached latents.
constexpr int64_t kLongestAbsorbedQuery = 8;

// The low-rank norms take the RMSNorm constructor's eps, not the config's (as in transformers).
constexpr double kLatentNormEps = 1e-6;

}  // namespace

LatentAttentionImpl::LatentAttentionImpl(const ModelConfig& c, const torch::TensorOptions& o)
    : mla_(c.mla), heads_(c.num_attention_heads), scale_(softmax_scale(c)) {
  const int64_t h = c.hidden_size, q_out = heads_ * mla_.qk_head_dim();
  const bool bias = c.attention_bias;
  if (mla_.q_lora_rank > 0) {
    q_a_proj = register_module("q_a_proj", Linear(h, mla_.q_lora_rank, bias, o));
    q_a_layernorm = register_module("q_a_layernorm", RMSNorm(mla_.q_lora_rank, kLatentNormEps, o));
    q_b_proj = register_module("q_b_proj", Linear(mla_.q_lora_rank, q_out, false, o));
  } else {
    q_proj = register_module("q_proj", Linear(h, q_out, false, o));
  }
  kv_a_proj_with_mqa =
      register_module("kv_a_proj_with_mqa", Linear(h, mla_.kv_lora_rank + mla_.qk_rope_head_dim, bias, o));
  kv_a_layernorm = register_module("kv_a_layernorm", RMSNorm(mla_.kv_lora_rank, kLatentNormEps, o));
  kv_b_proj = register_module("kv_b_proj",
                              Linear(mla_.kv_lora_rank, heads_ * (mla_.qk_nope_head_dim + mla_.v_head_dim), false, o));
  o_proj = register_module("o_proj", Linear(heads_ * mla_.v_head_dim, h, bias, o));
}

torch::Tensor LatentAttentionImpl::rotate(const torch::Tensor& x, const torch::Tensor& cos_t,
                                          const torch::Tensor& sin_t) const {
  if (!mla_.rope_interleave) return fused::rotary(x, cos_t, sin_t);
  // Pairs (2i, 2i+1): laid out as [evens ; odds] they are rotate_half's pairs (i, i + d/2). The
  // result stays in that layout (transformers' apply_rotary_pos_emb_interleave); queries and keys
  // share it, so their products are those of the interleaved rotation.
  const int64_t d = x.size(-1);
  auto sizes = x.sizes().vec();
  sizes.back() = d / 2;
  sizes.push_back(2);
  const auto halves = x.reshape(sizes).transpose(-1, -2).reshape(x.sizes());
  return fused::rotary(halves, cos_t, sin_t);
}

LatentAttentionImpl::Projected LatentAttentionImpl::project(const torch::Tensor& x, const torch::Tensor& cos,
                                                            const torch::Tensor& sin) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t nope = mla_.qk_nope_head_dim, rope = mla_.qk_rope_head_dim, rank = mla_.kv_lora_rank;
  const auto cos_t = cos.squeeze(1), sin_t = sin.squeeze(1);
  const auto q = (q_proj ? q_proj(x) : q_b_proj(q_a_layernorm(q_a_proj(x)))).view({B, T, heads_, nope + rope});
  const auto compressed = kv_a_proj_with_mqa(x);  // [B, T, rank + rope]
  Projected p;
  p.q_nope = q.narrow(3, 0, nope);
  p.q_rope = rotate(q.narrow(3, nope, rope), cos_t, sin_t);
  p.latent = kv_a_layernorm(compressed.narrow(2, 0, rank));
  p.k_rope = rotate(compressed.narrow(2, rank, rope).view({B, T, 1, rope}), cos_t, sin_t).view({B, T, rope});
  return p;
}

std::pair<torch::Tensor, torch::Tensor> LatentAttentionImpl::expand(const Projected& p) {
  const int64_t B = p.latent.size(0), T = p.latent.size(1);
  const int64_t nope = mla_.qk_nope_head_dim, rope = mla_.qk_rope_head_dim;
  const auto kv = kv_b_proj(p.latent).view({B, T, heads_, nope + mla_.v_head_dim});
  const auto keys = torch::cat({kv.narrow(3, 0, nope), p.k_rope.view({B, T, 1, rope}).expand({B, T, heads_, rope})}, 3);
  return {keys, kv.narrow(3, nope, mla_.v_head_dim)};
}

torch::Tensor LatentAttentionImpl::attend_per_head(const Projected& p, const torch::Tensor& keys,
                                                   const torch::Tensor& values, const torch::Tensor& mask) {
  const int64_t B = p.q_nope.size(0), T = p.q_nope.size(1);
  const auto queries = torch::cat({p.q_nope, p.q_rope}, 3).transpose(1, 2);
  const auto out = scaled_attention(queries, keys, values, mask, scale_);
  return o_proj(out.transpose(1, 2).reshape({B, T, heads_ * mla_.v_head_dim}));
}

torch::Tensor LatentAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                           KvCache* cache, int64_t layer,
                                           const std::vector<at::indexing::TensorIndex>& cache_slots,
                                           const torch::Tensor& mask, int64_t used) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t nope = mla_.qk_nope_head_dim, rank = mla_.kv_lora_rank, dv = mla_.v_head_dim;
  const Projected p = project(x, cos, sin);
  if (cache == nullptr) {
    const auto [keys, values] = expand(p);
    return attend_per_head(p, keys.transpose(1, 2), values.transpose(1, 2), mask);
  }
  if (layer < static_cast<int64_t>(cache->v.size())) {  // a per-head cache (R1_NO_LATENT_CACHE)
    const auto [keys, values] = expand(p);
    auto& k_cache = cache->k[layer];
    auto& v_cache = cache->v[layer];
    k_cache.permute({0, 2, 1, 3}).index_put_(cache_slots, keys.to(k_cache.scalar_type()));
    v_cache.permute({0, 2, 1, 3}).index_put_(cache_slots, values.to(v_cache.scalar_type()));
    return attend_per_head(p, k_cache.narrow(2, 0, used).to(p.q_nope.scalar_type()),
                           v_cache.narrow(2, 0, used).to(p.q_nope.scalar_type()), mask);
  }
  // Absorbed: the cache row of a token is [c ; k_rope]; the values are its first `rank` columns.
  auto& stored = cache->k[layer];  // [B, 1, capacity, rank + rope]
  stored.permute({0, 2, 1, 3}).index_put_(cache_slots,
                                          torch::cat({p.latent, p.k_rope}, 2).unsqueeze(2).to(stored.scalar_type()));
  if (T > kLongestAbsorbedQuery) {
    // A prefill: many queries per sequence make attention compute-bound, where the expanded form
    // costs less than the absorbed one (nope + v per head against rank + rope twice) and SDPA never
    // holds the [heads x T, used] scores. The cached latents are expanded as in training.
    Projected cached;
    const auto rows = stored.narrow(2, 0, used).squeeze(1).to(p.latent.scalar_type());
    cached.latent = rows.narrow(2, 0, rank);
    cached.k_rope = rows.narrow(2, rank, mla_.qk_rope_head_dim);
    const auto [keys, values] = expand(cached);
    return attend_per_head(p, keys.transpose(1, 2), values.transpose(1, 2), mask);
  }
  const auto w = kv_b_proj->weight.view({heads_, nope + dv, rank});
  const auto w_uk = w.narrow(1, 0, nope), w_uv = w.narrow(1, nope, dv);
  const auto q_latent = torch::einsum("bthd,hdr->bhtr", {p.q_nope, w_uk.to(p.q_nope.scalar_type())});
  const auto queries = torch::cat({q_latent, p.q_rope.transpose(1, 2)}, 3);  // [B, heads, T, rank + rope]
  // Every head reads the same keys (one latent per token): its T query rows and the other heads' go
  // in one product per sequence, so the cache is read once per step, never expanded per head. In
  // fp32 whatever the storage (as scaled_attention's decoding path).
  const int64_t used_width = rank + mla_.qk_rope_head_dim;
  const auto keys = stored.narrow(2, 0, used).squeeze(1).to(torch::kFloat32);  // [B, used, rank + rope]
  auto scores = torch::matmul(queries.reshape({B, heads_ * T, used_width}).to(torch::kFloat32), keys.transpose(1, 2)) * scale_;
  scores = scores.view({B, heads_, T, used}).masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
  const auto out_latent = torch::matmul(torch::softmax(scores.view({B, heads_ * T, used}), -1), keys.narrow(2, 0, rank))
                              .view({B, heads_, T, rank})
                              .to(queries.scalar_type());
  const auto out = torch::einsum("bhtr,hvr->bthv", {out_latent, w_uv.to(out_latent.scalar_type())});
  return o_proj(out.reshape({B, T, heads_ * dv}));
}

torch::Tensor LatentAttentionImpl::forward_shared_prefix(const torch::Tensor& x, const torch::Tensor& cos,
                                                         const torch::Tensor& sin, int64_t P, int64_t n,
                                                         const torch::Tensor& group, int64_t m,
                                                         const torch::Tensor& mask, const torch::Tensor& keep) {
  const Projected p = project(x, cos, sin);
  const auto [keys, values] = expand(p);
  const auto queries = torch::cat({p.q_nope, p.q_rope}, 3);
  return o_proj(shared_prefix_attention(queries, keys, values, P, n, group, m, mask, keep, scale_));
}

}  // namespace r1

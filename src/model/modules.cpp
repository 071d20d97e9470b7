#include "model/modules.h"

#include <cmath>
#include <limits>

#include "model/fused_ops.h"

namespace r1 {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, const torch::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty({out, in}, options));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}, options));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  auto y = r1::linear(x, weight, bias, &packed);
  if (!lora_A || !lora_enabled) return y;
  return y + lora_B->forward(lora_A->forward(x)) * lora_scaling;
}

EmbeddingImpl::EmbeddingImpl(int64_t vocab, int64_t dim, const torch::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty({vocab, dim}, options));
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps, const torch::TensorOptions& options) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}, options));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // Normalise in fp32 whatever the storage dtype (SPEC 1), like HF: cast back, then scale.
  if (x.scalar_type() == torch::kFloat32 && weight.scalar_type() == torch::kFloat32)
    return fused::rms_norm(x, weight, eps_);
  auto normed = at::rms_norm(x.to(torch::kFloat32), {x.size(-1)}, c10::nullopt, eps_);
  return weight * normed.to(x.scalar_type());
}

std::pair<torch::Tensor, torch::Tensor> RMSNormImpl::add_then_forward(const torch::Tensor& h, const torch::Tensor& delta) {
  if (h.scalar_type() == torch::kFloat32 && weight.scalar_type() == torch::kFloat32)
    return fused::add_rms_norm(h, delta, weight, eps_);
  auto sum = h + delta;
  return {sum, forward(sum)};
}

MlpImpl::MlpImpl(int64_t hidden, int64_t intermediate, bool bias, const torch::TensorOptions& o) {
  gate_proj = register_module("gate_proj", Linear(hidden, intermediate, bias, o));
  up_proj = register_module("up_proj", Linear(hidden, intermediate, bias, o));
  down_proj = register_module("down_proj", Linear(intermediate, hidden, bias, o));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return down_proj(fused::swiglu(gate_proj(x), up_proj(x)));
}

// Grouped-query attention: each kv head serves heads/kv_heads query heads. SDPA's enable_gqa
// indexes the shared heads instead of copying K/V per query head (2.7x faster decoding at
// batch 32 on bench-m than repeating them).
torch::Tensor scaled_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask, std::optional<double> scale) {
  const bool gqa = q.size(1) != k.size(1);
  if (mask.defined() && q.size(2) == 1 && q.device().is_cpu()) {
    // Decoding one token per sequence on the CPU: two batched matmuls over the query heads of
    // each kv head. SDPA's CPU kernel would run one matrix-vector product per (sequence, head),
    // which dominates a batch-64 decode step of a small model.
    const int64_t B = q.size(0), H = q.size(1), KV = k.size(1), D = q.size(3), L = k.size(2), Dv = v.size(3);
    // In fp32 whatever the storage dtype: bf16 products of these shapes go to oneDNN, which
    // generates a kernel per new shape, and the prefix length L changes every step.
    auto grouped = q.reshape({B, KV, H / KV, D}).to(torch::kFloat32);
    auto scores = torch::matmul(grouped, k.to(torch::kFloat32).transpose(2, 3)) *
                  scale.value_or(1.0 / std::sqrt(static_cast<double>(D)));
    scores = scores.masked_fill(mask.view({B, 1, 1, L}).logical_not(), -std::numeric_limits<float>::infinity());
    return torch::matmul(torch::softmax(scores, -1), v.to(torch::kFloat32)).reshape({B, H, 1, Dv}).to(q.scalar_type());
  }
  const auto sdpa_scale = scale ? c10::optional<double>(*scale) : c10::nullopt;
  // SDPA's flash kernel wants values as wide as queries and keys; latent attention's are narrower
  // (V3: 128 against 192) and would take the math path, which holds the [T, T] scores and was 2x
  // slower (forward + backward, 8 x 256 tokens, heads of 48 and 32). Zero columns change nothing.
  const int64_t dv = v.size(-1), pad = q.size(-1) - dv;
  const auto values = pad > 0 ? torch::constant_pad_nd(v, {0, pad}) : v;
  const auto out = mask.defined() ? at::scaled_dot_product_attention(q, k, values, mask, 0.0, false, sdpa_scale, gqa)
                                  : at::scaled_dot_product_attention(q, k, values, {}, 0.0, /*is_causal=*/true, sdpa_scale, gqa);
  return pad > 0 ? out.narrow(-1, 0, dv) : out;
}

torch::Tensor shared_prefix_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t P,
                                      int64_t n, const torch::Tensor& group, int64_t m, const torch::Tensor& mask,
                                      const torch::Tensor& keep, std::optional<double> scale) {
  const int64_t R = group.size(0), N = P * n + R * m, heads = q.size(2), dv = v.size(3);
  // With `keep`, the real tokens are spread into the padded layout (zeros between) that attention works on.
  const auto padded = [&](const torch::Tensor& t) {
    return keep.defined() ? torch::zeros({1, N, t.size(2), t.size(3)}, t.options()).index_copy(1, keep, t) : t;
  };
  const auto qa = padded(q), ka = padded(k), va = padded(v);
  const auto prompt_rows = [&](const torch::Tensor& t) {
    return t.narrow(1, 0, P * n).view({P, n, t.size(2), t.size(3)}).transpose(1, 2);
  };
  const auto completion_rows = [&](const torch::Tensor& t) {
    return t.narrow(1, P * n, R * m).view({R, m, t.size(2), t.size(3)}).transpose(1, 2);
  };
  const auto kp = prompt_rows(ka), vp = prompt_rows(va);
  const auto out_p = scaled_attention(prompt_rows(qa), kp, vp, {}, scale);  // causal
  // Each completion's keys: its prompt's (gathered per row, so autograd sums their gradients over
  // the group), then its own.
  const auto keys = torch::cat({kp.index_select(0, group), completion_rows(ka)}, 2);
  const auto values = torch::cat({vp.index_select(0, group), completion_rows(va)}, 2);
  const auto out_c = scaled_attention(completion_rows(qa), keys, values, mask, scale);
  auto out = torch::cat({out_p.transpose(1, 2).reshape({1, P * n, heads * dv}),
                         out_c.transpose(1, 2).reshape({1, R * m, heads * dv})}, 1);
  return keep.defined() ? out.index_select(1, keep) : out;
}

}  // namespace r1

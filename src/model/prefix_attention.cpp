#include "model/prefix_attention.h"

#include "model/simd_math.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "util/error.h"

namespace r1::fused {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// H query heads over KV kv heads of D, and the softmax scale 1/sqrt(D).
struct Shape {
  int64_t H, KV, D;
  float scale;
};

// One query token `i` and the keys it sees, as up to two runs [start, start + count).
struct Query {
  int64_t i;
  int64_t start[2], count[2];
  int runs;
};

// The queries of each prompt group (its prompt segment, then its completions), in order.
std::vector<std::vector<Query>> queries_by_group(const PrefixLayout& l) {
  std::vector<std::vector<Query>> groups(l.prompt_start.size());
  for (size_t p = 0; p < groups.size(); ++p) {
    const int64_t ps = l.prompt_start[p];
    for (int64_t t = 0; t < l.prompt_len[p]; ++t) groups[p].push_back({ps + t, {ps, 0}, {t + 1, 0}, 1});
  }
  for (size_t r = 0; r < l.group.size(); ++r) {
    const int64_t p = l.group[r], cs = l.completion_start[r];
    for (int64_t t = 0; t < l.completion_len[r]; ++t)
      groups[p].push_back({cs + t, {l.prompt_start[p], cs}, {l.prompt_visible[p], t + 1}, 2});
  }
  return groups;
}

// Inlined into each R1_CLONES kernel below, so they vectorise for its target. The dot product
// sums 16 lanes by shuffles (simd_math.h): a reduction loop spills to a chain of scalar adds.
inline __attribute__((always_inline)) float dot(const float* a, const float* b, int64_t D) {
  const int64_t D16 = D - D % 16;
  Lanes acc = {};
  for (int64_t d = 0; d < D16; d += 16) acc += load_lanes(a + d) * load_lanes(b + d);
  float s = sum_lanes(acc);
  for (int64_t d = D16; d < D; ++d) s += a[d] * b[d];
  return s;
}

inline __attribute__((always_inline)) void axpy(float alpha, const float* x, float* y, int64_t D) {
#pragma omp simd
  for (int64_t d = 0; d < D; ++d) y[d] += alpha * x[d];
}

// out[i, h] and lse[i, h] for one group's queries at the query heads of kv head hk. score: scratch
// for one query's keys.
R1_CLONES void forward_item(const Shape& s, const std::vector<Query>& queries, int64_t hk, const float* q,
                            const float* k, const float* v, float* out, float* lse, float* score) {
  const int64_t rep = s.H / s.KV, D = s.D;
  for (const Query& x : queries)
    for (int64_t h = hk * rep; h < (hk + 1) * rep; ++h) {
      const float* qi = q + (x.i * s.H + h) * D;
      int64_t n = 0;
      for (int run = 0; run < x.runs; ++run)
        for (int64_t j = x.start[run]; j < x.start[run] + x.count[run]; ++j)
          score[n++] = s.scale * dot(qi, k + (j * s.KV + hk) * D, D);
      float best;
      const float total = exp_shifted(score, n, &best);
      float* o = out + (x.i * s.H + h) * D;
      std::fill(o, o + D, 0.0f);
      const float inverse = 1.0f / total;
      n = 0;
      for (int run = 0; run < x.runs; ++run)
        for (int64_t j = x.start[run]; j < x.start[run] + x.count[run]; ++j)
          axpy(score[n++] * inverse, v + (j * s.KV + hk) * D, o, D);
      lse[x.i * s.H + h] = best + std::log(total);
    }
}

// dq, dk, dv of one group's queries and keys at kv head hk: the standard attention backward with
// the probabilities recomputed from the saved log-sum-exp, ds = p (dO.v - dO.o). prob, ds: scratch
// for one query's keys.
R1_CLONES void backward_item(const Shape& s, const std::vector<Query>& queries, int64_t hk, const float* q,
                             const float* k, const float* v, const float* out, const float* lse, const float* dout,
                             float* dq, float* dk, float* dv, float* prob, float* ds) {
  const int64_t rep = s.H / s.KV, D = s.D;
  for (const Query& x : queries)
    for (int64_t h = hk * rep; h < (hk + 1) * rep; ++h) {
      const int64_t row = x.i * s.H + h;
      const float *qi = q + row * D, *doi = dout + row * D;
      const float delta = dot(doi, out + row * D, D), m = lse[row];
      int64_t n = 0;
      for (int run = 0; run < x.runs; ++run)
        for (int64_t j = x.start[run]; j < x.start[run] + x.count[run]; ++j, ++n) {
          const int64_t kv = (j * s.KV + hk) * D;
          prob[n] = s.scale * dot(qi, k + kv, D) - m;
          ds[n] = dot(doi, v + kv, D) - delta;
        }
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        prob[j] = exp_vec(prob[j]);
        ds[j] *= prob[j] * s.scale;  // the scale of dq and dk folded in
      }
      float* dqi = dq + row * D;
      n = 0;
      for (int run = 0; run < x.runs; ++run)
        for (int64_t j = x.start[run]; j < x.start[run] + x.count[run]; ++j, ++n) {
          const int64_t kv = (j * s.KV + hk) * D;
          axpy(ds[n], k + kv, dqi, D);
          axpy(ds[n], qi, dk + kv, D);
          axpy(prob[n], doi, dv + kv, D);
        }
    }
}

// The layout travels to the backward as one int64 tensor: P, R, then the six arrays.
torch::Tensor encode(const PrefixLayout& l) {
  std::vector<int64_t> flat = {static_cast<int64_t>(l.prompt_start.size()), static_cast<int64_t>(l.group.size()),
                               l.tokens};
  for (const auto* a : {&l.prompt_start, &l.prompt_len, &l.prompt_visible, &l.completion_start, &l.completion_len,
                        &l.group})
    flat.insert(flat.end(), a->begin(), a->end());
  return torch::tensor(flat, torch::kInt64);
}

PrefixLayout decode(const torch::Tensor& t) {
  const int64_t* f = t.data_ptr<int64_t>();
  const int64_t P = f[0], R = f[1];
  PrefixLayout l;
  l.tokens = f[2];
  const int64_t* at = f + 3;
  for (auto* a : {&l.prompt_start, &l.prompt_len, &l.prompt_visible}) a->assign(at, at + P), at += P;
  for (auto* a : {&l.completion_start, &l.completion_len, &l.group}) a->assign(at, at + R), at += R;
  return l;
}

int64_t most_keys(const PrefixLayout& l) {
  int64_t n = 1;
  for (size_t p = 0; p < l.prompt_len.size(); ++p) n = std::max(n, l.prompt_len[p]);
  for (size_t r = 0; r < l.group.size(); ++r) n = std::max(n, l.prompt_visible[l.group[r]] + l.completion_len[r]);
  return n;
}

Shape shape_of(const torch::Tensor& q, const torch::Tensor& k) {
  return {q.size(1), k.size(1), q.size(2), static_cast<float>(1.0 / std::sqrt(static_cast<double>(q.size(2))))};
}

struct PrefixAttentionFn : torch::autograd::Function<PrefixAttentionFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q_in, const torch::Tensor& k_in,
                               const torch::Tensor& v_in, const torch::Tensor& encoded) {
    const auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    const PrefixLayout l = decode(encoded);
    const Shape s = shape_of(q, k);
    const auto groups = queries_by_group(l);
    const int64_t P = static_cast<int64_t>(groups.size()), keys = most_keys(l);
    auto out = torch::empty_like(q);
    auto lse = torch::empty({q.size(0), s.H}, q.options());
    const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
    float *op = out.data_ptr<float>(), *lp = lse.data_ptr<float>();
    at::parallel_for(0, s.KV * P, 1, [&](int64_t a, int64_t b) {
      std::vector<float> score(static_cast<size_t>(keys));
      for (int64_t w = a; w < b; ++w) forward_item(s, groups[w % P], w / P, qp, kp, vp, op, lp, score.data());
    });
    ctx->save_for_backward({q, k, v, out, lse, encoded});
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const PrefixLayout l = decode(saved[5]);
    const auto dout = grads[0].contiguous();
    const Shape s = shape_of(q, k);
    const auto groups = queries_by_group(l);
    const int64_t P = static_cast<int64_t>(groups.size());
    auto dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
    const float *op = out.data_ptr<float>(), *lp = lse.data_ptr<float>(), *gp = dout.data_ptr<float>();
    float *dqp = dq.data_ptr<float>(), *dkp = dk.data_ptr<float>(), *dvp = dv.data_ptr<float>();
    const int64_t keys = most_keys(l);
    at::parallel_for(0, s.KV * P, 1, [&](int64_t a, int64_t b) {
      std::vector<float> prob(static_cast<size_t>(keys)), ds(static_cast<size_t>(keys));
      for (int64_t w = a; w < b; ++w)
        backward_item(s, groups[w % P], w / P, qp, kp, vp, op, lp, gp, dqp, dkp, dvp, prob.data(), ds.data());
    });
    return {dq, dk, dv, torch::Tensor()};
  }
};

void check(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const PrefixLayout& l) {
  const auto fail = [](const std::string& what) { throw Error("prefix_attention: " + what); };
  if (q.dim() != 3 || k.dim() != 3 || v.sizes() != k.sizes() || q.size(0) != k.size(0) || q.size(2) != k.size(2) ||
      k.size(1) < 1 || q.size(1) % k.size(1) != 0)
    fail("q [T, H, D], k and v [T, KV, D] with H a multiple of KV required");
  if (q.size(0) != l.tokens) fail("the layout covers " + std::to_string(l.tokens) + " tokens, q has " + std::to_string(q.size(0)));
  const size_t P = l.prompt_start.size(), R = l.group.size();
  if (l.prompt_len.size() != P || l.prompt_visible.size() != P || l.completion_start.size() != R ||
      l.completion_len.size() != R)
    fail("layout arrays of unequal lengths");
  // The segments must tile [0, tokens) in order: no token computed twice or left out.
  int64_t next = 0;
  for (size_t p = 0; p < P; ++p) {
    if (l.prompt_start[p] != next || l.prompt_len[p] < 0 || l.prompt_visible[p] < 0 || l.prompt_visible[p] > l.prompt_len[p])
      fail("prompt segment " + std::to_string(p) + " out of place");
    next += l.prompt_len[p];
  }
  for (size_t r = 0; r < R; ++r) {
    if (l.completion_start[r] != next || l.completion_len[r] < 0 || l.group[r] < 0 || l.group[r] >= static_cast<int64_t>(P))
      fail("completion segment " + std::to_string(r) + " out of place");
    next += l.completion_len[r];
  }
  if (next != l.tokens) fail("segments do not cover the tokens");
}

}  // namespace

PrefixLayout PrefixLayout::of(const std::vector<int64_t>& prompt_len, const std::vector<int64_t>& prompt_visible,
                              const std::vector<int64_t>& completion_len, const std::vector<int64_t>& group) {
  PrefixLayout l;
  l.prompt_len = prompt_len;
  l.prompt_visible = prompt_visible;
  l.completion_len = completion_len;
  l.group = group;
  for (int64_t n : prompt_len) l.prompt_start.push_back(l.tokens), l.tokens += n;
  for (int64_t n : completion_len) l.completion_start.push_back(l.tokens), l.tokens += n;
  return l;
}

bool prefix_attention_applies(const torch::Tensor& q) {
  static const bool disabled = std::getenv("R1_NO_FUSED_OPS") != nullptr;  // as fused_ops.h
  return !disabled && q.device().is_cpu() && q.scalar_type() == torch::kFloat32;
}

bool prefix_attention_pays(const PrefixLayout& l) {
  constexpr double kMaxMeanKeys = 32;
  double visits = 0;  // query-key pairs: t + 1 within a segment, plus the prompt a completion sees
  for (int64_t n : l.prompt_len) visits += 0.5 * static_cast<double>(n) * static_cast<double>(n + 1);
  for (size_t r = 0; r < l.group.size(); ++r) {
    const double n = static_cast<double>(l.completion_len[r]);
    visits += 0.5 * n * (n + 1) + n * static_cast<double>(l.prompt_visible[l.group[r]]);
  }
  return visits <= kMaxMeanKeys * static_cast<double>(std::max<int64_t>(l.tokens, 1));
}

torch::Tensor prefix_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const PrefixLayout& layout) {
  check(q, k, v, layout);
  if (!prefix_attention_applies(q) || k.scalar_type() != torch::kFloat32 || v.scalar_type() != torch::kFloat32)
    throw Error("prefix_attention: float32 CPU tensors required");
  return PrefixAttentionFn::apply(q, k, v, encode(layout));
}

}  // namespace r1::fused

#include "model/decode_attention.h"

#include "model/simd_math.h"
#include "util/error.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace r1::fused {
namespace {

// Sums of four vectors' lanes in one shuffle tree: a's in lane 0, b's in 4, c's in 8, d's in 12.
// Four dot products of D = 32-64 reduced one at a time (sum_lanes) cost more than their products.
__attribute__((always_inline)) inline Lanes sum_lanes4(Lanes a, Lanes b, Lanes c, Lanes d) {
  const LaneIndex low8{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  const LaneIndex high8{8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
  const Lanes ab = __builtin_shuffle(a, b, low8) + __builtin_shuffle(a, b, high8);  // a folded to 8 | b to 8
  const Lanes cd = __builtin_shuffle(c, d, low8) + __builtin_shuffle(c, d, high8);
  const LaneIndex low4{0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};
  const LaneIndex high4{4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31};
  Lanes x = __builtin_shuffle(ab, cd, low4) + __builtin_shuffle(ab, cd, high4);  // a, b, c, d folded to 4
  x += __builtin_shuffle(x, LaneIndex{2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
  x += __builtin_shuffle(x, LaneIndex{1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14});
  return x;
}

// Fetch ahead: the key rows 8 rows on, and these rows' values (read after the softmax). The
// hardware prefetcher alone left the kernel at ~11 GB/s of the machine's ~18.7 (15 with this).
__attribute__((always_inline)) inline void prefetch_rows(const float* k, int64_t k_stride, const float* v,
                                                         int64_t v_stride, int64_t l, int64_t rows, int64_t L,
                                                         int64_t D) {
  for (int64_t r = l; r < l + rows; ++r) {
    for (int64_t d = 0; d < D; d += 16) {
      if (r + 8 < L) __builtin_prefetch(k + (r + 8) * k_stride + d);
      __builtin_prefetch(v + r * v_stride + d);
    }
  }
}

// scores [G, L] = q k^T * scale for D = 16 NV: four keys at a time, each read once for all G heads.
template <int NV>
__attribute__((always_inline)) inline void scores_of(const float* q, const float* k, int64_t k_stride,
                                                     const float* v, int64_t v_stride, int64_t L, int64_t G,
                                                     float scale, float* scores) {
  constexpr int64_t D = 16 * NV;
  int64_t l = 0;
  for (; l + 4 <= L; l += 4) {
    prefetch_rows(k, k_stride, v, v_stride, l, 4, L, D);
    const float* k0 = k + l * k_stride;
    for (int64_t g = 0; g < G; ++g) {
      const float* qg = q + g * D;
      Lanes a = {}, b = {}, c = {}, d = {};
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i) {
        const Lanes qi = load_lanes(qg + 16 * i);
        a += qi * load_lanes(k0 + 16 * i);
        b += qi * load_lanes(k0 + k_stride + 16 * i);
        c += qi * load_lanes(k0 + 2 * k_stride + 16 * i);
        d += qi * load_lanes(k0 + 3 * k_stride + 16 * i);
      }
      const Lanes s = sum_lanes4(a, b, c, d) * scale;
      float* sg = scores + g * L + l;
      sg[0] = s[0], sg[1] = s[4], sg[2] = s[8], sg[3] = s[12];
    }
  }
  for (; l < L; ++l) {
    prefetch_rows(k, k_stride, v, v_stride, l, 1, L, D);
    const float* kr = k + l * k_stride;
    for (int64_t g = 0; g < G; ++g) {
      Lanes acc = {};
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i) acc += load_lanes(q + g * D + 16 * i) * load_lanes(kr + 16 * i);
      scores[g * L + l] = sum_lanes(acc) * scale;
    }
  }
}

// out [GC, D] = sum_l p[g, l] v_l for GC heads at once (p rows L apart), the GC x NV accumulators in
// registers: each value row is loaded once per GC heads instead of read and written per head.
template <int NV, int GC>
__attribute__((always_inline)) inline void weigh_values(const float* v, int64_t v_stride, int64_t L,
                                                        const float* p, float* out) {
  Lanes acc[GC][NV] = {};
  for (int64_t l = 0; l < L; ++l) {
    const float* vr = v + l * v_stride;
    Lanes row[NV];
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) row[i] = load_lanes(vr + 16 * i);
#pragma GCC unroll 4
    for (int g = 0; g < GC; ++g) {
      const float w = p[g * L + l];
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i) acc[g][i] += w * row[i];
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < GC; ++g)
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) std::memcpy(out + (g * NV + i) * 16, &acc[g][i], sizeof(Lanes));
}

// attend() for D = 16 NV: heads in chunks of up to 4 (2 for D > 64), so accumulators fit the registers.
template <int NV>
__attribute__((always_inline)) inline void attend_lanes(const float* q, const float* k, int64_t k_stride,
                                                        const float* v, int64_t v_stride, int64_t L, int64_t G,
                                                        float scale, float* scores, float* out, float* m_out,
                                                        float* sum_out) {
  scores_of<NV>(q, k, k_stride, v, v_stride, L, G, scale, scores);
  for (int64_t g = 0; g < G; ++g) sum_out[g] = exp_shifted(scores + g * L, L, m_out + g);
  constexpr int64_t most = NV > 4 ? 2 : 4;
  for (int64_t g = 0; g < G;) {
    const int64_t chunk = std::min(most, G - g);
    const float* p = scores + g * L;
    float* o = out + g * 16 * NV;
    if (chunk == 1)
      weigh_values<NV, 1>(v, v_stride, L, p, o);
    else if (chunk == 2)
      weigh_values<NV, 2>(v, v_stride, L, p, o);
    else if constexpr (most == 4)
      chunk == 3 ? weigh_values<NV, 3>(v, v_stride, L, p, o) : weigh_values<NV, 4>(v, v_stride, L, p, o);
    g += chunk;
  }
}

// Attention of G query heads q [G, D] over L keys/values (rows k_stride / v_stride floats apart), unnormalised
// as in flash decoding: per head the largest score m, sum = sum_l exp(s_l - m) and
// out = sum_l exp(s_l - m) v_l, so pieces of one prefix combine exactly. scores [G, L] is scratch.
R1_CLONES void attend(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t L,
                      int64_t G, int64_t D, float scale, float* scores, float* out, float* m_out, float* sum_out) {
  switch (D % 16 == 0 ? D / 16 : 0) {  // head sizes in 16-float vectors: 2 tiny, 4 small/bench-m, 8 7B models
    case 1: return attend_lanes<1>(q, k, k_stride, v, v_stride, L, G, scale, scores, out, m_out, sum_out);
    case 2: return attend_lanes<2>(q, k, k_stride, v, v_stride, L, G, scale, scores, out, m_out, sum_out);
    case 3: return attend_lanes<3>(q, k, k_stride, v, v_stride, L, G, scale, scores, out, m_out, sum_out);
    case 4: return attend_lanes<4>(q, k, k_stride, v, v_stride, L, G, scale, scores, out, m_out, sum_out);
    case 5: return attend_lanes<5>(q, k, k_stride, v, v_stride, L, G, scale, scores, out, m_out, sum_out);
    case 6: return attend_lanes<6>(q, k, k_stride, v, v_stride, L, G, scale, scores, out, m_out, sum_out);
    case 7: return attend_lanes<7>(q, k, k_stride, v, v_stride, L, G, scale, scores, out, m_out, sum_out);
    case 8: return attend_lanes<8>(q, k, k_stride, v, v_stride, L, G, scale, scores, out, m_out, sum_out);
    default: break;
  }
  // Any other head size: one key, one head at a time.
  const int64_t D16 = D - D % 16;
  for (int64_t l = 0; l < L; ++l) {
    prefetch_rows(k, k_stride, v, v_stride, l, 1, L, D);
    const float* kr = k + l * k_stride;
    for (int64_t g = 0; g < G; ++g) {
      const float* qg = q + g * D;
      Lanes acc = {};
      for (int64_t d = 0; d < D16; d += 16) acc += load_lanes(qg + d) * load_lanes(kr + d);
      float dot = sum_lanes(acc);
      for (int64_t d = D16; d < D; ++d) dot += qg[d] * kr[d];
      scores[g * L + l] = dot * scale;
    }
  }
  for (int64_t g = 0; g < G; ++g) sum_out[g] = exp_shifted(scores + g * L, L, m_out + g);
  for (int64_t i = 0; i < G * D; ++i) out[i] = 0;
  for (int64_t l = 0; l < L; ++l) {
    const float* vr = v + l * v_stride;
    for (int64_t g = 0; g < G; ++g) {
      const float p = scores[g * L + l];
      float* og = out + g * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) og[d] += p * vr[d];
    }
  }
}

R1_CLONES void widen_bf16(const uint16_t* src, int64_t src_stride, int64_t rows, int64_t D, float* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* s = src + r * src_stride;
    float* t = dst + r * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) {
      const uint32_t bits = static_cast<uint32_t>(s[d]) << 16;
      std::memcpy(t + d, &bits, sizeof(float));
    }
  }
}

// Prefix positions per piece when one row's prefix is split across threads (batch 1, long context).
constexpr int64_t kMinPiece = 256;

template <typename T>
void run(const at::Tensor& q, const at::Tensor& k_new, const at::Tensor& v_new, at::Tensor& cache_k,
         at::Tensor& cache_v, const std::vector<int64_t>& pos, at::Tensor& out) {
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3), KV = cache_k.size(1), G = H / KV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float *qp = q.data_ptr<float>(), *knp = k_new.data_ptr<float>(), *vnp = v_new.data_ptr<float>();
  T *kc = cache_k.data_ptr<T>(), *vc = cache_v.data_ptr<T>();
  const int64_t kb = cache_k.stride(0), kh = cache_k.stride(1), kt = cache_k.stride(2);
  const int64_t vb = cache_v.stride(0), vh = cache_v.stride(1), vt = cache_v.stride(2);
  int64_t longest = 0;
  for (int64_t p : pos) longest = std::max(longest, p + 1);
  // Too few (row, kv head) tasks to keep every thread busy: split each prefix into pieces.
  const int64_t threads = at::get_num_threads();
  int64_t pieces = 1;
  if (B * KV < threads) pieces = std::max<int64_t>(1, std::min(threads, longest / kMinPiece));
  const int64_t piece_len = (longest + pieces - 1) / pieces;
  // Per (task, piece): unnormalised out [G, D], max and sum per head. Whole prefixes (one piece)
  // are normalised straight into `out` by the thread that attended them.
  float* op = out.data_ptr<float>();
  std::vector<float> part_out(static_cast<size_t>(pieces > 1 ? B * KV * pieces * G * D : 0)),
      part_m(B * KV * pieces * G), part_sum(B * KV * pieces * G);
  at::parallel_for(0, B * KV * pieces, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(G * piece_len)), own(pieces > 1 ? 0 : G * D);
    std::vector<float> wide;  // bf16 caches: a piece's keys then values as contiguous fp32 rows
    if constexpr (!std::is_same_v<T, float>) wide.resize(static_cast<size_t>(2 * piece_len * D));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t task = item / pieces, piece = item % pieces, b = task / KV, j = task % KV;
      const int64_t from = piece * piece_len, to = std::min(pos[b] + 1, from + piece_len), L = to - from;
      float *o = pieces > 1 ? part_out.data() + item * G * D : own.data(), *m = part_m.data() + item * G,
            *sum = part_sum.data() + item * G;
      if (L <= 0) {  // a row shorter than this piece's start
        for (int64_t g = 0; g < G; ++g) m[g] = -std::numeric_limits<float>::infinity(), sum[g] = 0;
        continue;
      }
      T* krow = kc + b * kb + j * kh;
      T* vrow = vc + b * vb + j * vh;
      if (to == pos[b] + 1) {  // the piece holding the new position writes it first
        const float *kn = knp + (b * KV + j) * D, *vn = vnp + (b * KV + j) * D;
        for (int64_t d = 0; d < D; ++d) {
          krow[pos[b] * kt + d] = static_cast<T>(kn[d]);
          vrow[pos[b] * vt + d] = static_cast<T>(vn[d]);
        }
      }
      const float* qg = qp + (b * H + j * G) * D;
      if constexpr (std::is_same_v<T, float>) {
        attend(qg, krow + from * kt, kt, vrow + from * vt, vt, L, G, D, scale, scores.data(), o, m, sum);
      } else {  // bf16: widen this piece into contiguous fp32 rows first
        float *wk = wide.data(), *wv = wide.data() + piece_len * D;
        widen_bf16(reinterpret_cast<const uint16_t*>(krow + from * kt), kt, L, D, wk);
        widen_bf16(reinterpret_cast<const uint16_t*>(vrow + from * vt), vt, L, D, wv);
        attend(qg, wk, D, wv, D, L, G, D, scale, scores.data(), o, m, sum);
      }
      if (pieces == 1) {
        float* og = op + (b * H + j * G) * D;
        for (int64_t g = 0; g < G; ++g)
          for (int64_t d = 0; d < D; ++d) og[g * D + d] = o[g * D + d] / sum[g];
      }
    }
  });
  if (pieces == 1) return;
  // Combine the pieces of each head: rescale each by exp(m_piece - m_all), then normalise.
  for (int64_t task = 0; task < B * KV; ++task) {
    const int64_t b = task / KV, j = task % KV;
    for (int64_t g = 0; g < G; ++g) {
      float m_all = -std::numeric_limits<float>::infinity();
      for (int64_t piece = 0; piece < pieces; ++piece) m_all = std::max(m_all, part_m[(task * pieces + piece) * G + g]);
      float* og = op + (b * H + j * G + g) * D;
      for (int64_t d = 0; d < D; ++d) og[d] = 0;
      float total = 0;
      for (int64_t piece = 0; piece < pieces; ++piece) {
        const int64_t item = task * pieces + piece;
        if (part_sum[item * G + g] == 0) continue;
        const float w = std::exp(part_m[item * G + g] - m_all);
        total += w * part_sum[item * G + g];
        const float* po = part_out.data() + (item * G + g) * D;
        for (int64_t d = 0; d < D; ++d) og[d] += w * po[d];
      }
      for (int64_t d = 0; d < D; ++d) og[d] /= total;
    }
  }
}

}  // namespace

bool decode_attention_applies(const at::Tensor& q, const at::Tensor& cache_k) {
  static const bool disabled = std::getenv("R1_NO_FUSED_OPS") != nullptr;
  auto ok = [](const at::Tensor& t) {
    return t.device().is_cpu() && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16);
  };
  return !disabled && ok(q) && ok(cache_k) && cache_k.stride(3) == 1;
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_new, const at::Tensor& v_new,
                               at::Tensor& cache_k, at::Tensor& cache_v, const at::Tensor& positions) {
  if (q.dim() != 4 || cache_k.dim() != 4)
    throw Error("decode_attention: q [B, H, 1, D] and caches [B, KV, capacity, D] are required");
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3), KV = cache_k.size(1);
  if (q.size(2) != 1 || k_new.sizes() != at::IntArrayRef({B, KV, 1, D}) ||
      v_new.sizes() != k_new.sizes() || cache_k.size(0) != B || cache_k.size(3) != D ||
      cache_v.sizes() != cache_k.sizes() || cache_v.scalar_type() != cache_k.scalar_type() || H % KV != 0 ||
      cache_k.stride(3) != 1 || cache_v.stride(3) != 1 || positions.numel() != B)
    throw Error("decode_attention: q [B, H, 1, D], new keys/values [B, KV, 1, D] and caches [B, KV, capacity, D] "
                "with the same dtype are required");
  std::vector<int64_t> pos(static_cast<size_t>(B));
  const auto p = positions.to(at::kCPU, at::kLong).contiguous();
  for (int64_t b = 0; b < B; ++b) {
    pos[b] = p.data_ptr<int64_t>()[b];
    if (pos[b] < 0 || pos[b] >= cache_k.size(2)) throw Error("decode_attention: position outside the cache");
  }
  const auto qf = q.to(at::kFloat).contiguous();
  const auto kf = k_new.to(at::kFloat).contiguous(), vf = v_new.to(at::kFloat).contiguous();
  auto out = at::empty({B, H, 1, D}, qf.options());
  if (cache_k.scalar_type() == at::kFloat)
    run<float>(qf, kf, vf, cache_k, cache_v, pos, out);
  else
    run<c10::BFloat16>(qf, kf, vf, cache_k, cache_v, pos, out);
  return out.to(q.scalar_type());
}

}  // namespace r1::fused

// Helpers shared by the fused CPU kernels (fused_ops.cpp, decode_attention.cpp) and sampling.
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>

// Row loops are compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time, so the
// binary stays portable and still vectorises like libtorch's own kernels.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define R1_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define R1_CLONES
#endif

namespace r1::fused {

// exp(x) to ~1 ulp (Cephes' expf: x = n ln2 + r, e^r by a degree-6 polynomial, 2^n by the exponent
// bits). Written out because std::exp does not vectorise without -ffast-math; NaN stays NaN.
inline float exp_vec(float x) {
  x = x < -87.0f ? -87.0f : x;  // comparisons, not std::min/max: branch-free, and NaN passes through
  x = x > 88.0f ? 88.0f : x;
  // n = round(x / ln2) by the 1.5 x 2^23 trick (plain adds, unlike std::floor without SSE4.1).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// The softmax's numerator in place: s[0..n) <- exp(s - max(s)). Returns the sum and writes the
// max to *max_out (the attention kernels keep both to combine or invert the softmax later).
__attribute__((always_inline)) inline float exp_shifted(float* s, int64_t n, float* max_out) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) m = s[j] > m ? s[j] : m;
  float sum = 0;
#ifdef _OPENMP  // the kernels' files build with -fopenmp; others include this header without it
#pragma omp simd reduction(+ : sum)
#endif
  for (int64_t j = 0; j < n; ++j) {
    s[j] = exp_vec(s[j] - m);
    sum += s[j];
  }
  *max_out = m;
  return sum;
}

// Helpers taking or returning Lanes are always inlined into their (cloned) callers, so no call
// passes a vector across the ABI boundary GCC's -Wpsabi warns about. The note is emitted where
// they are used, so this silences it for the including file.
#pragma GCC diagnostic ignored "-Wpsabi"
// 16 floats as one value: GCC's vector extension, compiled to one AVX-512 register in the avx512f
// clone and to two AVX2 / four SSE registers in the others.
typedef float Lanes __attribute__((vector_size(64)));
typedef int32_t LaneIndex __attribute__((vector_size(64)));

__attribute__((always_inline)) inline Lanes load_lanes(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The sum of the 16 lanes by a tree of shuffles. (A reduction loop left GCC spilling the vector to
// the stack and adding 16 scalars in a chain: in decode attention's dot products that chain cost
// more than the loads.)
__attribute__((always_inline)) inline float sum_lanes(Lanes v) {
  v += __builtin_shuffle(v, LaneIndex{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
  v += __builtin_shuffle(v, LaneIndex{4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11});
  v += __builtin_shuffle(v, LaneIndex{2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
  v += __builtin_shuffle(v, LaneIndex{1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14});
  return v[0];
}

}  // namespace r1::fused

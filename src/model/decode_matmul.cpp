#include "model/decode_matmul.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define R1_X86_KERNELS 1
#endif

namespace r1 {
namespace {

// Scalar forms of the three weight types, for the columns past the last full vector.
inline float weight_value(const float* w, int64_t i) { return w[i]; }
inline float weight_value(const uint16_t* w, int64_t i) {
  const uint32_t bits = static_cast<uint32_t>(w[i]) << 16;  // bfloat16 is float32's top half
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline float weight_value(const int8_t* w, int64_t i) { return static_cast<float>(w[i]); }

// x rounded to int8 per block of kInt8ActivationBlock values: values [rows, K], scales [rows, blocks]
// (the last block may be partial).
struct Int8Rows {
  const int8_t* values = nullptr;
  const float* scales = nullptr;
  int64_t rows = 0, blocks = 0;
};

// x as the kernels read it: float32 rows, and for int8 weights (unless R1_NO_INT8_ACTIVATIONS) the
// same rows in int8.
struct Activations {
  const float* values = nullptr;
  int64_t rows = 0;
  const Int8Rows* int8 = nullptr;
};

using KernelFn = void (*)(const Activations& x, const WeightRows& w, const float* bias, float* y, int64_t n0, int64_t n1);

}  // namespace

#ifdef R1_X86_KERNELS
// The kernel body (decode_matmul_tiles.inc) is compiled twice, once per instruction set, each
// time against a `Simd` struct of that set's vector operations.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps() (`__m512 __Y = __Y;`), which
// -Wuninitialized reports at every use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512 {
struct Simd {
  using V = __m512;
  static constexpr int kWidth = 16;
  static constexpr int kTileRows = 4;  // x rows per tile: 4 x 4 accumulators of the 32 registers
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const uint16_t* p) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  static V load(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static V fma(V a, V b, V acc) { return _mm512_fmadd_ps(a, b, acc); }
  static float sum(V v) { return _mm512_reduce_add_ps(v); }
  static V broadcast(float f) { return _mm512_set1_ps(f); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V abs(V v) { return _mm512_abs_ps(v); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static float max_of(V v) { return _mm512_reduce_max_ps(v); }
  // round(v) (ties to even), saturated to int8: |v| <= 127 here, so it never saturates.
  static void store_int8(int8_t* p, V v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
  }
  // int8 products: B holds 64 bytes, I 16 int32 sums. Without VNNI, vpmaddubsw (unsigned x signed
  // bytes, pairs summed to int16) + vpmaddwd: the signs go onto the activations, |w| * (sign(w) x),
  // and |values| <= 127 keeps the int16 pairs from saturating.
  using B = __m512i;
  using I = __m512i;
  struct WeightOperand {
    __mmask64 negative;  // the weights' signs, found once per weight vector for every x row
    B magnitudes;
  };
  static constexpr int kBytes = 64;
  static constexpr int kInt8TileRows = 2;  // 2 x 4 float sums + 2 x 4 int32 sums + 8 weight vectors
  static B load_bytes(const int8_t* p) { return _mm512_loadu_si512(p); }
  static WeightOperand weight_operand(B w) { return {_mm512_movepi8_mask(w), _mm512_abs_epi8(w)}; }
  static B x_operand(B x) { return x; }
  static I dot_start(const WeightOperand&) { return _mm512_setzero_si512(); }
  static I dot_add(I acc, B x, const WeightOperand& w) {
    const B signed_x = _mm512_mask_sub_epi8(x, w.negative, _mm512_setzero_si512(), x);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(w.magnitudes, signed_x), _mm512_set1_epi16(1)));
  }
  static V to_float(I v) { return _mm512_cvtepi32_ps(v); }
};
#include "model/decode_matmul_tiles.inc"
}  // namespace avx512
#pragma GCC pop_options

// AVX-512 VNNI (Intel since Cascade Lake, AMD since Zen 4): the int8 products in one instruction.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")
namespace avx512vnni {
// vpdpbusd takes x + 128 as the unsigned operand (x_operand: the top bit flipped) and w as it is;
// each block's sum then starts from -128 * sum(w) (dot_start), so it comes out as sum(x * w). One
// instruction per (x row, w row) where the sign trick takes three.
struct Simd : avx512::Simd {
  struct WeightOperand {
    B values;
    I start;  // -128 * (the sums of 4 adjacent weights)
  };
  static_assert(kBytes == kInt8ActivationBlock, "dot_start corrects one vector of bytes per block");
  static constexpr int kInt8TileRows = 4;  // the int32 sums live one block only: 4 x 4 float sums fit
  static WeightOperand weight_operand(B w) {
    const I sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(static_cast<char>(0x80)), w);
    return {w, _mm512_sub_epi32(_mm512_setzero_si512(), sums)};
  }
  static B x_operand(B x) { return _mm512_xor_si512(x, _mm512_set1_epi8(static_cast<char>(0x80))); }
  static I dot_start(const WeightOperand& w) { return w.start; }
  static I dot_add(I acc, B x, const WeightOperand& w) { return _mm512_dpbusd_epi32(acc, x, w.values); }
};
#include "model/decode_matmul_tiles.inc"
}  // namespace avx512vnni
#pragma GCC diagnostic pop
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
struct Simd {
  using V = __m256;
  static constexpr int kWidth = 8;
  static constexpr int kTileRows = 2;  // 2 x 4 accumulators of the 16 registers
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const uint16_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static V load(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static V fma(V a, V b, V acc) { return _mm256_fmadd_ps(a, b, acc); }
  static float sum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static V broadcast(float f) { return _mm256_set1_ps(f); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V abs(V v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static float max_of(V v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
  }
  static void store_int8(int8_t* p, V v) {
    const __m256i i = _mm256_cvtps_epi32(v);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(i16, i16));
  }
  using B = __m256i;
  using I = __m256i;
  struct WeightOperand {
    B signs, magnitudes;
  };
  static constexpr int kBytes = 32;
  static constexpr int kInt8TileRows = 1;
  static B load_bytes(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static WeightOperand weight_operand(B w) { return {w, _mm256_abs_epi8(w)}; }
  static B x_operand(B x) { return x; }
  static I dot_start(const WeightOperand&) { return _mm256_setzero_si256(); }
  static I dot_add(I acc, B x, const WeightOperand& w) {
    return _mm256_add_epi32(
        acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w.magnitudes, _mm256_sign_epi8(x, w.signs)), _mm256_set1_epi16(1)));
  }
  static V to_float(I v) { return _mm256_cvtepi32_ps(v); }
};
#include "model/decode_matmul_tiles.inc"
}  // namespace avx2
#pragma GCC pop_options
#endif

namespace {

using QuantizeFn = void (*)(const float* x, int64_t M, int64_t K, int8_t* values, float* scales);

struct Kernel {
  KernelFn fn = nullptr;
  QuantizeFn quantize = nullptr;
  const char* isa = "";
};

// The kernels this CPU can run, widest first.
std::vector<Kernel> runnable_kernels() {
  std::vector<Kernel> kernels;
#ifdef R1_X86_KERNELS
  __builtin_cpu_init();
  const bool avx512 =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  if (avx512 && __builtin_cpu_supports("avx512vnni"))
    kernels.push_back({avx512vnni::rows_range, avx512vnni::quantize_rows, "avx512vnni"});
  if (avx512) kernels.push_back({avx512::rows_range, avx512::quantize_rows, "avx512"});
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    kernels.push_back({avx2::rows_range, avx2::quantize_rows, "avx2"});
#endif
  return kernels;
}

// Picked once: the widest instruction set this CPU runs, unless the environment says otherwise.
const Kernel& kernel() {
  static const Kernel picked = [] {
    if (std::getenv("R1_NO_DECODE_KERNELS") != nullptr) return Kernel();
    const char* forced = std::getenv("R1_DECODE_ISA");
    for (const auto& k : runnable_kernels())
      if (forced == nullptr || std::string(forced) == k.isa) return k;
    return Kernel();
  }();
  return picked;
}

// x rounded to int8 by the kernel's quantize_rows, into `values` and `scales` (kept by the caller
// for the next call: decoding multiplies by every matrix of every step).
Int8Rows quantize_activations(QuantizeFn quantize, const float* x, int64_t M, int64_t K, std::vector<int8_t>& values,
                              std::vector<float>& scales) {
  const int64_t blocks = (K + kInt8ActivationBlock - 1) / kInt8ActivationBlock;
  values.resize(M * K);
  scales.resize(M * blocks);
  quantize(x, M, K, values.data(), scales.data());
  return {values.data(), scales.data(), M, blocks};
}

void run(const Kernel& kernel, const float* x, int64_t M, const WeightRows& w, const float* bias, float* y,
         Int8Activations int8) {
  TORCH_CHECK(kernel.fn != nullptr, "decode_matmul: no kernel for this CPU");
  Activations a{x, M, nullptr};
  thread_local std::vector<int8_t> int8_values;
  thread_local std::vector<float> int8_scales;
  Int8Rows int8_x;
  if (w.type == WeightType::kInt8 && int8 == Int8Activations::kInt8) {
    int8_x = quantize_activations(kernel.quantize, x, M, w.cols, int8_values, int8_scales);
    a.int8 = &int8_x;
  }
  // Each thread takes whole blocks of 16 output rows, and at least ~64 KB of weights (splitting a
  // small matrix costs more in wake-ups than it saves).
  constexpr int64_t kBlock = 16;
  const int64_t blocks = (w.rows + kBlock - 1) / kBlock;
  const int64_t type_bytes = w.type == WeightType::kFloat32 ? 4 : w.type == WeightType::kBFloat16 ? 2 : 1;
  const int64_t grain = std::max<int64_t>(1, (64 << 10) / (kBlock * w.cols * type_bytes));
  at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
    kernel.fn(a, w, bias, y, b0 * kBlock, std::min(w.rows, b1 * kBlock));
  });
}

}  // namespace

int64_t decode_kernel_max_rows(WeightType type) {
  // bench/run_gemv.py on SmolLM2's shapes, 2 threads, Intel Xeon: MKL's packed float32 GEMM passes
  // the kernel from 8 rows (69 vs 59 GFLOP/s); oneDNN's bfloat16 product and int8 with float32
  // activations (dequantised for MKL) only past 64 (at 128: 147 vs 118, 189 vs 140); int8 with int8
  // activations past 128 (at 128: 245-285 vs 195-207 GFLOP/s; at 256 even, 244-284 vs 237-242).
  if (type == WeightType::kFloat32) return 4;
  if (type == WeightType::kInt8 && int8_activations() == Int8Activations::kInt8) return 128;
  return 64;
}

const char* decode_kernel_isa() { return kernel().isa; }

Int8Activations int8_activations() {
  static const bool float32 = std::getenv("R1_NO_INT8_ACTIVATIONS") != nullptr;
  return float32 ? Int8Activations::kFloat32 : Int8Activations::kInt8;
}

void decode_matmul(const float* x, int64_t M, const WeightRows& w, const float* bias, float* y) {
  run(kernel(), x, M, w, bias, y, int8_activations());
}

void decode_matmul(const float* x, int64_t M, const WeightRows& w, const float* bias, float* y, const std::string& isa,
                   Int8Activations int8) {
  for (const auto& k : runnable_kernels())
    if (isa == k.isa) return run(k, x, M, w, bias, y, int8);
  TORCH_CHECK(false, "decode_matmul: this CPU does not run '", isa, "'");
}

std::vector<std::string> decode_kernel_isas() {
  std::vector<std::string> names;
  for (const auto& k : runnable_kernels()) names.push_back(k.isa);
  return names;
}

std::optional<WeightRows> weight_rows(const torch::Tensor& weight) {
  if (weight.dim() != 2 || !weight.device().is_cpu() || !weight.is_contiguous()) return std::nullopt;
  WeightRows w;
  w.rows = weight.size(0);
  w.cols = weight.size(1);
  if (weight.scalar_type() == torch::kFloat32) {
    w.type = WeightType::kFloat32;
  } else if (weight.scalar_type() == torch::kBFloat16) {
    w.type = WeightType::kBFloat16;
  } else {
    return std::nullopt;
  }
  w.data = weight.data_ptr();
  return w;
}

torch::Tensor decode_linear(const torch::Tensor& x, const WeightRows& w, const torch::Tensor& bias) {
  if (kernel().fn == nullptr || !x.device().is_cpu() || x.size(-1) != w.cols || w.cols == 0) return {};
  if (x.scalar_type() != torch::kFloat32 && x.scalar_type() != torch::kBFloat16) return {};
  if (torch::GradMode::is_enabled() && (x.requires_grad() || (bias.defined() && bias.requires_grad()))) return {};
  const int64_t M = x.numel() / w.cols;
  if (M < 1 || M > decode_kernel_max_rows(w.type)) return {};
  const auto a = x.reshape({M, w.cols}).to(torch::kFloat32).contiguous();
  const auto b = bias.defined() ? bias.to(torch::kFloat32).contiguous() : torch::Tensor();
  auto out = torch::empty({M, w.rows}, a.options());
  decode_matmul(a.data_ptr<float>(), M, w, b.defined() ? b.data_ptr<float>() : nullptr, out.data_ptr<float>());
  auto sizes = x.sizes().vec();
  sizes.back() = w.rows;
  return out.view(sizes).to(x.scalar_type());
}

WeightRows Int8Weight::rows() const {
  WeightRows w;
  w.type = WeightType::kInt8;
  w.data = values.data_ptr();
  w.scales = scales.data_ptr<float>();
  w.rows = values.size(0);
  w.cols = values.size(1);
  return w;
}

torch::Tensor Int8Weight::dequantized() const { return values.to(torch::kFloat32) * scales.unsqueeze(1); }

Int8Weight quantize_int8(const torch::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "quantize_int8: a matrix, got ", weight.dim(), " dimensions");
  torch::NoGradGuard no_grad;
  const int64_t N = weight.size(0), K = weight.size(1);
  Int8Weight q{torch::empty({N, K}, weight.options().dtype(torch::kInt8)), torch::empty({N}, weight.options().dtype(torch::kFloat32))};
  // A block of rows at a time: the float temporaries stay small beside a vocabulary-sized head.
  const int64_t block = std::max<int64_t>(1, (4 << 20) / std::max<int64_t>(1, K));
  for (int64_t r = 0; r < N; r += block) {
    const int64_t n = std::min(block, N - r);
    const auto w = weight.narrow(0, r, n).to(torch::kFloat32);
    auto scales = w.abs().amax(1) / 127.0f;
    scales = torch::where(scales > 0, scales, torch::ones_like(scales));  // an all-zero row stays zero
    q.values.narrow(0, r, n).copy_(torch::round(w / scales.unsqueeze(1)).clamp_(-127, 127));
    q.scales.narrow(0, r, n).copy_(scales);
  }
  return q;
}

namespace {
std::atomic<int> g_mkl_vendor_asks{0};
}  // namespace

int mkl_vendor_asks() { return g_mkl_vendor_asks.load(); }

}  // namespace r1

// (Here, not in a file of its own: r1 links r1core as a static library, which brings in only the
// objects something references, and every binary references this file's kernels.)
// MKL (statically inside libtorch_cpu, its symbols exported and called through the PLT) asks this
// function whether the CPU is an Intel one, and on any other vendor's CPU takes its generic "def"
// code paths: SSE-era kernels at a fraction of an AVX2 or AVX-512 CPU's speed (the products of
// training and prefill at ~45% of the peak on AMD EPYC, issue 26). Defined here, in the executable,
// it comes ahead of MKL's own in symbol lookup, so MKL picks its kernels by the instruction sets
// the CPU reports, whoever made it. R1_MKL_VENDOR_CHECK=1 keeps MKL's own answer (the old paths).
extern "C" __attribute__((visibility("default"))) int mkl_serv_intel_cpu_true() {
  ++r1::g_mkl_vendor_asks;
  static const auto mkl_own = [] {
    using Fn = int (*)();
    return std::getenv("R1_MKL_VENDOR_CHECK") ? reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "mkl_serv_intel_cpu_true"))
                                              : nullptr;
  }();
  return mkl_own ? mkl_own() : 1;
}

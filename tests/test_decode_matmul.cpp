// Decoding's weight kernels (model/decode_matmul.h) against float64 products, on every instruction
// set this CPU runs; the int8 quantisation against its definition; and int8 models: the float32
// weights released, logits close to float32's, the copy remade when the weight changes.
#include <gtest/gtest.h>

#include "infer/engine.h"
#include "model/decode_matmul.h"
#include "model/packed_matmul.h"
#include "model/presets.h"
#include "model/transformer.h"

namespace r1 {
namespace {

// The weights as the kernel sees them, in float64: bfloat16 widened, int8 times its row scale.
torch::Tensor reference_weight(const torch::Tensor& w, WeightType type, const Int8Weight& q) {
  if (type == WeightType::kInt8) return q.values.to(torch::kFloat64) * q.scales.to(torch::kFloat64).unsqueeze(1);
  return w.to(torch::kFloat64);
}

// x as the int8 kernels see it, in float64: per block of kInt8ActivationBlock values,
// round(x * (1 / s)) * s with s = the block's absmax / 127 (float32 arithmetic, ties to even).
torch::Tensor reference_int8_activations(const torch::Tensor& x) {
  const int64_t M = x.size(0), K = x.size(1), block = kInt8ActivationBlock;
  const int64_t padded = (K + block - 1) / block * block;
  const auto blocks = torch::constant_pad_nd(x, {0, padded - K}).view({M, padded / block, block});
  auto scale = blocks.abs().amax(-1, true) / 127.0f;
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));
  const auto q = torch::round(blocks * scale.reciprocal()).clamp(-127, 127);
  return (q.to(torch::kFloat64) * scale.to(torch::kFloat64)).view({M, padded}).narrow(1, 0, K);
}

TEST(DecodeMatmul, EveryInstructionSetMatchesFloat64) {
  const auto isas = decode_kernel_isas();
  if (isas.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  torch::manual_seed(5);
  // Row counts around the tiles (4 and 2 rows), widths around the vectors (16 and 8 floats) and
  // the 4-row weight tiles; a vocabulary-sized head.
  struct Shape {
    int64_t m, n, k;
  };
  std::vector<Shape> shapes;
  for (int64_t m : {1, 2, 3, 4, 5, 7, 16, 33})
    for (int64_t n : {1, 3, 4, 17, 64})
      for (int64_t k : {1, 7, 8, 15, 16, 17, 64, 100, 130, 576}) shapes.push_back({m, n, k});
  shapes.push_back({1, 4099, 64});
  for (const auto& isa : isas) {
    struct Path {
      WeightType type;
      Int8Activations int8 = Int8Activations::kInt8;
    };
    for (const auto [type, int8] : {Path{WeightType::kFloat32}, Path{WeightType::kBFloat16}, Path{WeightType::kInt8},
                                    Path{WeightType::kInt8, Int8Activations::kFloat32}}) {
      for (const auto& s : shapes) {
        const auto x = torch::randn({s.m, s.k});
        const auto b = torch::randn({s.n});
        torch::Tensor w = torch::randn({s.n, s.k});
        Int8Weight q;
        WeightRows rows;
        if (type == WeightType::kInt8) {
          q = quantize_int8(w);
          rows = q.rows();
        } else {
          if (type == WeightType::kBFloat16) w = w.to(torch::kBFloat16);
          rows = *weight_rows(w);
        }
        auto y = torch::empty({s.m, s.n});
        const bool with_bias = s.n % 2 == 1;
        decode_matmul(x.data_ptr<float>(), s.m, rows, with_bias ? b.data_ptr<float>() : nullptr, y.data_ptr<float>(), isa,
                      int8);
        const bool int8_x = type == WeightType::kInt8 && int8 == Int8Activations::kInt8;
        const auto x64 = int8_x ? reference_int8_activations(x) : x.to(torch::kFloat64);
        auto want = torch::matmul(x64, reference_weight(w, type, q).t());
        if (with_bias) want = want + b.to(torch::kFloat64);
        // float32 accumulation over k terms: error within ~k ulp of the terms' magnitudes.
        const auto scale = torch::matmul(x64.abs(), reference_weight(w, type, q).abs().t()) + 1;
        const double err = ((y.to(torch::kFloat64) - want).abs() / scale).max().item<double>();
        EXPECT_LT(err, 1e-6) << isa << " type " << static_cast<int>(type) << (int8_x ? " int8 x " : " ") << s.m << "x"
                             << s.n << "x" << s.k;
      }
    }
  }
}

TEST(DecodeMatmul, TensorsOfEveryLayoutAndWhereItApplies) {
  if (decode_kernel_isas().empty() || std::string(decode_kernel_isa()).empty()) GTEST_SKIP() << "kernels off";
  torch::manual_seed(6);
  const auto w = torch::randn({96, 64});
  const auto rows = *weight_rows(w);
  const auto want = [&](const torch::Tensor& x) { return torch::matmul(x.to(torch::kFloat64), w.to(torch::kFloat64).t()); };
  // Batched decode's [B, 1, K], a strided input, bfloat16 activations of a bfloat16 model.
  const auto x3 = torch::randn({4, 1, 64});
  const auto y3 = decode_linear(x3, rows, {});
  ASSERT_TRUE(y3.defined());
  EXPECT_EQ(y3.sizes(), (std::vector<int64_t>{4, 1, 96}));
  EXPECT_LT((y3.to(torch::kFloat64) - want(x3)).abs().max().item<double>(), 1e-4);
  const auto strided = torch::randn({64, 3}).t();
  EXPECT_LT((decode_linear(strided, rows, {}).to(torch::kFloat64) - want(strided)).abs().max().item<double>(), 1e-4);
  const auto wb = w.to(torch::kBFloat16);
  const auto xb = torch::randn({2, 64}).to(torch::kBFloat16);
  const auto yb = decode_linear(xb, *weight_rows(wb), {});
  ASSERT_EQ(yb.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::allclose(yb.to(torch::kFloat32), torch::nn::functional::linear(xb, wb).to(torch::kFloat32), 0.02, 0.05));
  // Not taken: more rows than decoding has, and a product autograd must see.
  EXPECT_FALSE(decode_linear(torch::randn({decode_kernel_max_rows(WeightType::kFloat32) + 1, 64}), rows, {}).defined());
  EXPECT_FALSE(decode_linear(torch::randn({1, 64}, torch::requires_grad()), rows, {}).defined());
  EXPECT_FALSE(weight_rows(w.t()).has_value()) << "a transposed view is not row-major";
  EXPECT_FALSE(weight_rows(w.to(torch::kFloat64)).has_value());
}

TEST(DecodeMatmul, Int8IsPerRowSymmetricRounding) {
  torch::manual_seed(7);
  auto w = torch::randn({8, 300}) * torch::linspace(0.01, 3, 8).unsqueeze(1);
  w[3].zero_();  // an all-zero row stays zero (no division by a zero scale)
  const auto q = quantize_int8(w);
  ASSERT_EQ(q.values.scalar_type(), torch::kInt8);
  EXPECT_EQ(q.values.sizes(), w.sizes());
  EXPECT_EQ(q.bytes(), 8 * 300 + 8 * 4);
  const auto scales = q.scales;
  for (int64_t r = 0; r < 8; ++r) {
    if (r == 3) {
      EXPECT_EQ(q.values[r].abs().max().item<int>(), 0);
      continue;
    }
    EXPECT_FLOAT_EQ(scales[r].item<float>(), w[r].abs().max().item<float>() / 127);
    EXPECT_EQ(q.values[r].abs().max().item<int>(), 127) << "the largest weight of a row maps to +-127";
  }
  // Rounding to nearest: every weight within half a step of its int8 value.
  const auto err = (q.dequantized() - w).abs() / scales.unsqueeze(1);
  EXPECT_LE(err.max().item<float>(), 0.5001);
}

TEST(DecodeMatmul, Int8ModelReleasesItsWeightsAndStaysClose) {
  torch::manual_seed(8);
  torch::NoGradGuard no_grad;
  auto config = preset_config("tiny");
  Transformer model(config);
  model->init_weights(1);
  // More rows than the int8 kernels take, so the forward below is the dequantised product's.
  const auto tokens = torch::randint(config.vocab_size, {2, decode_kernel_max_rows(WeightType::kInt8) / 2 + 8});
  const auto want = torch::log_softmax(model->logits(model->forward(tokens)), -1);
  const auto [before, after] = model->freeze_linears(WeightType::kInt8);
  EXPECT_GT(before, 3 * after) << "int8 takes about a quarter of float32's bytes";
  int64_t released = 0;
  for (const auto& p : model->named_parameters())
    if (p.value().numel() == 0) ++released;
  EXPECT_EQ(released, config.num_hidden_layers * 7 + (config.tie_word_embeddings ? 0 : 1))
      << "q, k, v, o, gate, up and down of every layer, and an untied head";
  // Prefill (many rows: the dequantised product) and decode-sized products (the kernel) agree with float32.
  const auto got = torch::log_softmax(model->logits(model->forward(tokens)), -1);
  EXPECT_LT((got - want).abs().max().item<float>(), 0.05);
  const auto one = tokens.narrow(0, 0, 1).narrow(1, 0, 1);
  const auto got_one = torch::log_softmax(model->logits(model->forward(one)), -1);
  EXPECT_LT((got_one[0][0] - want[0][0]).abs().max().item<float>(), 0.05);
}

// --dtype bfloat16-weights: the float32 model with each linear weight rounded to bfloat16, no more.
TEST(DecodeMatmul, BFloat16WeightsAreTheRoundedModel) {
  torch::manual_seed(11);
  torch::NoGradGuard no_grad;
  auto config = preset_config("tiny");
  ASSERT_FALSE(config.tie_word_embeddings) << "the reference below rounds an untied head only";
  Transformer model(config), rounded(config);
  model->init_weights(3);
  rounded->init_weights(3);
  for (auto& [name, linear] : rounded->freezable_linears()) linear->weight.copy_(linear->weight.to(torch::kBFloat16));
  const auto [before, after] = model->freeze_linears(WeightType::kBFloat16);
  EXPECT_EQ(before, 2 * after) << "bfloat16 copies take half float32's bytes";
  // More rows than the bfloat16 kernels take, so the first forward below is libtorch's product.
  const auto tokens = torch::randint(config.vocab_size, {2, decode_kernel_max_rows(WeightType::kBFloat16) / 2 + 8});
  const auto want = rounded->logits(rounded->forward(tokens));
  // Prefill (libtorch's product of the widened weights) and a decode-sized product (the kernel).
  EXPECT_LT((model->logits(model->forward(tokens)) - want).abs().max().item<float>(), 1e-4);
  const auto one = tokens.narrow(0, 0, 1).narrow(1, 0, 1);
  EXPECT_LT((model->logits(model->forward(one))[0][0] - want[0][0]).abs().max().item<float>(), 1e-4);
}

TEST(DecodeMatmul, Int8ScopeQuantisesAgainWhenTheWeightChanges) {
  torch::manual_seed(9);
  auto w = torch::randn({40, 32});
  const auto x = torch::randn({3, 32});
  PackedWeight copy;
  const auto product = [&] {
    CpuInt8MatmulScope scope(true);
    return copy.linear(x, w, {});
  };
  // The int8 product of the weight as it is now: quantised from it, not from an older value.
  const auto close_to_float = [&](const torch::Tensor& y) {
    const auto q = quantize_int8(w);
    const auto xk = int8_activations() == Int8Activations::kInt8 ? reference_int8_activations(x) : x.to(torch::kFloat64);
    const auto want = torch::matmul(xk, q.dequantized().to(torch::kFloat64).t());
    return (y - want).abs().max().item<double>() < 1e-4;
  };
  EXPECT_TRUE(close_to_float(product()));
  EXPECT_GT(copy.int8_bytes(), 0);
  {
    torch::NoGradGuard no_grad;  // as an optimizer step changes a parameter
    w.add_(torch::randn_like(w));
  }
  EXPECT_TRUE(close_to_float(product())) << "in-place update not seen";
  w = torch::randn({40, 32});
  EXPECT_TRUE(close_to_float(product())) << "new weight tensor not seen";
}

// GRPO's --rollout-dtype int8: an engine decoding a float32 model through int8 copies samples
// exactly what the model quantised for good (--dtype int8) samples, greedy and at temperature 1.
TEST(DecodeMatmul, Int8RolloutsDecodeTheQuantisedModel) {
  torch::manual_seed(10);
  auto config = preset_config("tiny");
  Transformer policy(config);
  policy->init_weights(2);
  std::vector<Request> requests(3);
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].prompt = {5, 17, 3 + static_cast<int64_t>(i), 40, 2};
    requests[i].params.max_new_tokens = 12;
    requests[i].params.ignore_eos = true;
    requests[i].params.temperature = i == 0 ? 0.0 : 1.0;
    requests[i].params.seed = i;
  }
  EngineOptions int8_rollouts;
  int8_rollouts.int8_weights = true;
  const auto sampled = Engine(policy, nullptr, int8_rollouts).generate(requests);
  const auto plain = Engine(policy, nullptr).generate(requests);
  Transformer quantised(config);
  quantised->init_weights(2);  // the policy's weights
  quantised->freeze_linears();
  const auto want = Engine(quantised, nullptr).generate(requests);
  bool differs_from_float = false;
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(sampled[i][0].ids, want[i][0].ids) << "request " << i;
    for (size_t t = 0; t < want[i][0].logprobs.size(); ++t)
      EXPECT_NEAR(sampled[i][0].logprobs[t], want[i][0].logprobs[t], 1e-4) << "request " << i << " token " << t;
    differs_from_float = differs_from_float || sampled[i][0].logprobs != plain[i][0].logprobs;
  }
  EXPECT_TRUE(differs_from_float) << "the int8 engine decoded the float32 weights";
  for (const auto& p : policy->named_parameters()) EXPECT_GT(p.value().numel(), 0) << p.key() << ": the policy keeps its float32 weights";
}

// MKL picks its kernels by asking whether the CPU is Intel's; r1 answers (decode_matmul.cpp), so
// AMD CPUs get the AVX2 / AVX-512 kernels too. The question must reach r1's answer, not MKL's own.
TEST(MklVendorCheck, MklAsksR1) {
  if (std::getenv("R1_MKL_VENDOR_CHECK") != nullptr) GTEST_SKIP() << "R1_MKL_VENDOR_CHECK keeps MKL's own answer";
  const auto a = torch::randn({256, 256});
  const auto want = torch::matmul(a.to(torch::kFloat64), a.to(torch::kFloat64));
  const auto got = torch::mm(a, a);  // MKL's sgemm: the first BLAS call settles its code path
  EXPECT_LT((got.to(torch::kFloat64) - want).abs().max().item<double>(), 1e-3);
  EXPECT_GT(mkl_vendor_asks(), 0) << "MKL never reached r1's mkl_serv_intel_cpu_true";
}

}  // namespace
}  // namespace r1

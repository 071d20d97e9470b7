// Properties of the model that hold for any weights: causality, KV-cache equivalence, GQA as
// repeated heads, gradient flow, log-prob chunking. Those of the cached, packed and shared-prefix
// paths hold for DeepSeek-V3's layers (latent attention, experts) too.
#include <gtest/gtest.h>

#include "model/transformer.h"
#include "test_helpers.h"

namespace r1 {
namespace {

using testing::random_model;
using testing::random_tokens;
using testing::tiny_config;
using testing::tiny_deepseek_config;
using testing::tiny_qwen3_config;

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(Transformer, ParameterNamesAndCountMatchTheConfig) {
  for (bool tied : {false, true}) {
    ModelConfig c = tiny_config(4, 2, tied);
    Transformer m(c);
    int64_t n = 0;
    for (const auto& p : m->parameters()) n += p.numel();
    EXPECT_EQ(n, c.parameter_count());
    auto names = m->named_parameters();
    EXPECT_TRUE(names.contains("model.embed_tokens.weight"));
    EXPECT_TRUE(names.contains("model.layers.1.self_attn.k_proj.weight"));
    EXPECT_TRUE(names.contains("model.layers.0.post_attention_layernorm.weight"));
    EXPECT_TRUE(names.contains("model.norm.weight"));
    EXPECT_EQ(names.contains("lm_head.weight"), !tied);
  }
}

TEST(Transformer, DeepseekParameterNamesAndCountMatchTheConfig) {
  ModelConfig c = tiny_deepseek_config();
  Transformer m(c);
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  EXPECT_EQ(n, c.parameter_count());
  auto names = m->named_parameters();
  for (const char* name : {"model.layers.0.mlp.gate_proj.weight", "model.layers.0.self_attn.q_a_proj.weight",
                           "model.layers.1.self_attn.kv_a_proj_with_mqa.weight", "model.layers.1.self_attn.kv_b_proj.weight",
                           "model.layers.1.mlp.gate.weight", "model.layers.1.mlp.gate.e_score_correction_bias",
                           "model.layers.2.mlp.experts.down_proj", "model.layers.2.mlp.experts.gate_up_proj", "model.layers.2.mlp.shared_experts.up_proj.weight"})
    EXPECT_TRUE(names.contains(name)) << name;
  EXPECT_FALSE(names.contains("model.layers.1.mlp.gate_proj.weight"));
  EXPECT_FALSE(names["model.layers.1.mlp.gate.e_score_correction_bias"].requires_grad());
  // The latent cache keeps kv_lora_rank + qk_rope_head_dim values per token and layer.
  EXPECT_EQ(m->make_cache(2, 10).bytes(), 2 * 10 * 3 * (12 + 4) * 4);
  EXPECT_EQ(c.kv_cache_values_per_token(), 3 * (12 + 4));
}

TEST(Transformer, IsCausal) {
  torch::NoGradGuard g;
  Transformer m = random_model(tiny_config());
  auto tokens = random_tokens(2, 12, 97);
  auto base = m->logits(m->forward(tokens));
  auto changed = tokens.clone();
  changed.index_put_({torch::indexing::Slice(), 7}, (tokens.index({torch::indexing::Slice(), 7}) + 1) % 97);
  auto after = m->logits(m->forward(changed));
  EXPECT_LT(max_diff(base.narrow(1, 0, 7), after.narrow(1, 0, 7)), 1e-6);
  EXPECT_GT(max_diff(base.narrow(1, 7, 5), after.narrow(1, 7, 5)), 1e-3);
}

TEST(Transformer, KvCacheDecodingOfUnequalPromptsMatchesFullForward) {
  torch::NoGradGuard g;
  // fp32 and bf16 decode through the fused CPU kernel (decode_attention.h); fp16 through the
  // composite path (index_put_ and masked attention) that CUDA and other dtypes take.
  // Variant 4: DeepSeek-V3's latent attention, decoding absorbed from the latent cache, in float32
  // only: in half precision a token near a routing tie may go to other experts on the two paths.
  // Variant 5: Qwen3 (q/k norms, heads wider than hidden / heads).
  for (int variant = 0; variant < 6; ++variant) {
    const bool qwen = variant == 1, bf16 = variant == 2 || variant == 3;
    ModelConfig c = variant == 4 ? tiny_deepseek_config() : variant == 5 ? tiny_qwen3_config() : tiny_config();
    if (qwen) c.architecture = Architecture::kQwen2;
    Transformer m = random_model(c);
    if (variant == 2) m->to(torch::kBFloat16);
    if (variant == 3) m->to(torch::kFloat16);
    const std::vector<int64_t> prompt_len = {5, 9, 3};
    const int64_t extra = 6, B = 3, T = 9 + extra;
    auto seqs = random_tokens(B, T, 97, 11);
    auto full = m->logits(m->forward(seqs));  // each row on its own is a plain causal forward
    // bf16/fp16: both sides round differently (different matmul shapes), so compare relative to the scale.
    const double tol = bf16 ? 0.03 * full.abs().max().item<double>() : 1e-5;
    // Prefill right-padded prompts in one call, then decode each sequence at its own position.
    KvCache cache = m->make_cache(B, T);
    auto prompts = seqs.narrow(1, 0, 9).clone();
    auto prefill = m->logits(m->forward_cached(prompts, {0, 0, 0}, cache));
    for (int64_t b = 0; b < B; ++b)
      EXPECT_LT(max_diff(prefill[b].narrow(0, 0, prompt_len[b]), full[b].narrow(0, 0, prompt_len[b])), tol);
    for (int64_t step = 0; step < extra; ++step) {
      std::vector<int64_t> start;
      std::vector<int64_t> next;
      for (int64_t b = 0; b < B; ++b) {
        start.push_back(prompt_len[b] + step);
        next.push_back(seqs[b][prompt_len[b] + step].item<int64_t>());
      }
      auto out = m->logits(m->forward_cached(torch::tensor(next, torch::kInt64).view({B, 1}), start, cache));
      for (int64_t b = 0; b < B; ++b)
        EXPECT_LT(max_diff(out[b][0], full[b][start[b]]), tol) << "seq " << b << " step " << step << " variant " << variant;
    }
  }
}

TEST(Transformer, PackedDocumentsEqualSeparateForwards) {
  // Two rows: [A(5) B(7) pad(2)] and [C(14)]; each document alone through forward() must give
  // the same hidden states as inside the packed row (no attention across documents, positions
  // restarting at each).
  for (const bool deepseek : {false, true}) {
  SCOPED_TRACE(deepseek ? "DeepSeek-V3" : "Llama");
  torch::manual_seed(3);
  Transformer m = random_model(deepseek ? tiny_deepseek_config() : tiny_config(4, 2));
  const int64_t V = m->config().vocab_size;
  auto a = torch::randint(V, {1, 5}), b = torch::randint(V, {1, 7}), c = torch::randint(V, {1, 14});
  auto row0 = torch::cat({a, b, torch::zeros({1, 2}, torch::kInt64)}, 1);
  auto tokens = torch::cat({row0, c}, 0);
  auto segments = torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, -1, -1}, torch::kInt64).unsqueeze(0);
  segments = torch::cat({segments, torch::zeros({1, 14}, torch::kInt64)}, 0);
  torch::NoGradGuard no_grad;
  const auto packed = m->forward_packed(tokens, segments);
  EXPECT_TRUE(torch::allclose(packed[0].narrow(0, 0, 5), m->forward(a)[0], 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(packed[0].narrow(0, 5, 7), m->forward(b)[0], 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(packed[1], m->forward(c)[0], 1e-5, 1e-5));
  // Without the segments, B would see A: the test can tell the difference.
  EXPECT_FALSE(torch::allclose(m->forward(row0)[0].narrow(0, 5, 7), m->forward(b)[0], 1e-3, 1e-3));
  }
}

TEST(Transformer, SharedPrefixEqualsEachPromptPlusCompletionAlone) {
  // Prompts of 3 and 5 tokens (padded to 5), four completions of 1-6 tokens (padded to 6), two per
  // prompt: hidden states and parameter gradients must equal those of forward() on each prompt +
  // completion row, with the prompt's gradient summed over the completions that share it. Computing
  // every position, and with completion_lengths, where only attention sees the padding; in float32
  // (the CPU's fused attention, model/prefix_attention.h) and float64 (SDPA over a padded layout,
  // the path of other devices and dtypes).
  // DeepSeek-V3's layers take the SDPA path in float32 too.
  for (const auto arch : {Architecture::kLlama, Architecture::kQwen3, Architecture::kDeepseekV3})
  for (const auto dtype : {torch::kFloat32, torch::kFloat64})
  for (const bool skip_padding : {false, true}) {
  SCOPED_TRACE(std::string(skip_padding ? "padding skipped" : "every position") + (dtype == torch::kFloat64 ? ", float64" : "") +
               (arch == Architecture::kQwen3 ? ", Qwen3" : arch == Architecture::kDeepseekV3 ? ", DeepSeek-V3" : ""));
  torch::manual_seed(5);
  Transformer m = random_model(arch == Architecture::kDeepseekV3 ? tiny_deepseek_config()
                               : arch == Architecture::kQwen3    ? tiny_qwen3_config()
                                                                 : tiny_config(4, 2));
  m->to(dtype);
  const int64_t V = m->config().vocab_size;
  const std::vector<int64_t> prompt_len = {3, 5}, completion_len = {4, 1, 6, 2}, group = {0, 0, 1, 1};
  const int64_t n = 5, mlen = 6, R = 4;
  auto prompts = torch::randint(V, {2, n}), completions = torch::randint(V, {R, mlen});
  auto [hp, hc] = m->forward_shared_prefix(prompts, torch::tensor(prompt_len), completions, torch::tensor(group),
                                           skip_padding ? torch::tensor(completion_len) : torch::Tensor());
  if (skip_padding) {  // padding's hidden states are documented to be 0
    EXPECT_EQ(hp[0].narrow(0, 3, 2).abs().max().item<float>(), 0.0f);
    EXPECT_EQ(hc[1].narrow(0, 1, 5).abs().max().item<float>(), 0.0f);
  }
  // A loss that touches every real position, through both paths.
  auto weights = torch::randn({m->config().vocab_size});
  const auto f = [&](const torch::Tensor& h) { return (m->logits(h) * weights).sum(); };
  auto shared_loss = torch::zeros({});
  std::vector<torch::Tensor> rows;
  for (int64_t p = 0; p < 2; ++p) shared_loss = shared_loss + f(hp[p].narrow(0, 0, prompt_len[p]));
  auto alone_loss = torch::zeros({});
  for (int64_t r = 0; r < R; ++r) {
    const int64_t np = prompt_len[group[r]], nc = completion_len[r];
    auto row = torch::cat({prompts[group[r]].narrow(0, 0, np), completions[r].narrow(0, 0, nc)}).unsqueeze(0);
    auto h = m->forward(row)[0];
    EXPECT_TRUE(torch::allclose(hc[r].narrow(0, 0, nc), h.narrow(0, np, nc), 1e-5, 1e-5)) << "completion " << r;
    EXPECT_TRUE(torch::allclose(hp[group[r]].narrow(0, 0, np), h.narrow(0, 0, np), 1e-5, 1e-5)) << "prompt of " << r;
    shared_loss = shared_loss + f(hc[r].narrow(0, 0, nc));
    alone_loss = alone_loss + f(h.narrow(0, np, nc));
    if (r % 2 == 0) alone_loss = alone_loss + f(h.narrow(0, 0, np));  // each prompt once
  }
  std::vector<torch::Tensor> params;
  for (const auto& p : m->parameters())
    if (p.requires_grad()) params.push_back(p);
  auto g_shared = torch::autograd::grad({shared_loss}, params);
  auto g_alone = torch::autograd::grad({alone_loss}, params);
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_LT(max_diff(g_shared[i], g_alone[i]), 1e-5 * g_alone[i].abs().max().item<double>()) << i;
  // A completion that could see its prompt's padding, or another completion, would differ.
  auto [hp2, hc2] = m->forward_shared_prefix(prompts, torch::tensor(std::vector<int64_t>{5, 5}), completions,
                                             torch::tensor(group));
  EXPECT_FALSE(torch::allclose(hc2[0].narrow(0, 0, 4), hc[0].narrow(0, 0, 4), 1e-3, 1e-3));
  }
}

TEST(Transformer, CacheOverflowIsAnError) {
  torch::NoGradGuard g;
  Transformer m = random_model(tiny_config());
  KvCache cache = m->make_cache(1, 4);
  EXPECT_THROW(m->forward_cached(random_tokens(1, 5, 97), {0}, cache), std::exception);
}

TEST(Transformer, GqaEqualsMhaWithRepeatedKvHeads) {
  torch::NoGradGuard g;
  ModelConfig gqa_cfg = tiny_config(4, 2);
  ModelConfig mha_cfg = tiny_config(4, 4);
  Transformer gqa = random_model(gqa_cfg);
  Transformer mha(mha_cfg);
  auto gqa_params = gqa->named_parameters();
  const int64_t D = gqa_cfg.head_dim, rep = 2;
  for (auto& p : mha->named_parameters()) {
    const std::string& name = p.key();
    torch::Tensor src = gqa_params[name];
    if (name.find("k_proj") != std::string::npos || name.find("v_proj") != std::string::npos) {
      // kv head j serves query heads j*rep .. j*rep+rep-1: repeat its rows in place.
      auto w = src.view({2, D, -1}).repeat_interleave(rep, 0).reshape(p.value().sizes());
      p.value().copy_(w);
    } else {
      p.value().copy_(src);
    }
  }
  auto tokens = random_tokens(2, 10, 97);
  EXPECT_LT(max_diff(gqa->logits(gqa->forward(tokens)), mha->logits(mha->forward(tokens))), 1e-5);
}

TEST(Transformer, GradientsReachEveryParameter) {
  for (bool tied : {false, true}) {
    ModelConfig c = tied ? tiny_qwen3_config() : tiny_config(4, 2);  // Qwen3: its q/k norms too
    c.tie_word_embeddings = tied;
    c.attention_bias = true;
    c.mlp_bias = true;
    Transformer m = random_model(c);
    auto tokens = random_tokens(2, 8, 97);
    auto lp = m->token_logprobs(m->forward(tokens.narrow(1, 0, 7)), tokens.narrow(1, 1, 7));
    (-lp.mean()).backward();
    for (const auto& p : m->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
    }
  }
}

TEST(Transformer, ChunkedTokenLogprobsEqualLogSoftmax) {
  torch::NoGradGuard g;
  Transformer m = random_model(tiny_config());
  auto tokens = random_tokens(3, 11, 97);
  auto hidden = m->forward(tokens);
  auto want = torch::log_softmax(m->logits(hidden), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1);
  for (int64_t chunk : {1, 4, 11, 100}) EXPECT_LT(max_diff(m->token_logprobs(hidden, tokens, chunk), want), 1e-5);
}

TEST(Transformer, SeededInitIsReproducibleAndUsesTheConfiguredStd) {
  ModelConfig c = tiny_config();
  c.hidden_size = 256;
  c.head_dim = 64;
  c.intermediate_size = 512;
  c.initializer_range = 0.006;
  Transformer a(c), b(c);
  a->init_weights(5);
  b->init_weights(5);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  EXPECT_NEAR(pa["model.layers.0.mlp.up_proj.weight"].std().item<double>(), 0.006, 0.0003);
  EXPECT_TRUE(torch::equal(pa["model.norm.weight"], torch::ones({256})));
}

TEST(Transformer, Bfloat16ForwardStaysCloseToFloat32) {
  torch::NoGradGuard g;
  Transformer m = random_model(tiny_config());
  auto tokens = random_tokens(2, 8, 97);
  auto ref = m->logits(m->forward(tokens));
  m->to(torch::kBFloat16);
  auto low = m->logits(m->forward(tokens)).to(torch::kFloat32);
  EXPECT_LT(max_diff(ref, low), 0.1 * ref.abs().max().item<double>());
}

}  // namespace
}  // namespace r1

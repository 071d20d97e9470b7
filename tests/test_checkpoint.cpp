// Activation checkpointing (model/checkpoint.h, --checkpoint-activations): the gradients of every
// parameter equal those of the plain backward pass on each training forward (plain rows, packed
// rows, the shared-prefix forward of GRPO) and architecture (Llama, Qwen3, DeepSeek-V3 with MLA and
// experts); expert loads are counted once; what cannot be carried is refused.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "model/bf16_matmul.h"
#include "model/checkpoint.h"
#include "test_helpers.h"
#include "util/error.h"

namespace r1 {
namespace {

using testing::random_model;
using testing::random_tokens;

// The loss of one training forward: a fixed random projection of the logits of every position.
using Loss = std::function<torch::Tensor(Transformer&)>;

std::vector<torch::Tensor> gradients(Transformer& m, const Loss& loss, bool checkpointed) {
  m->set_checkpoint_activations(checkpointed);
  m->zero_grad();
  loss(m).backward();
  std::vector<torch::Tensor> grads;
  for (const auto& p : m->parameters())
    if (p.requires_grad()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return grads;
}

void expect_same_gradients(Transformer& m, const Loss& loss) {
  const auto plain = gradients(m, loss, false), recomputed = gradients(m, loss, true);
  ASSERT_EQ(plain.size(), recomputed.size());
  double largest = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    largest = std::max(largest, plain[i].abs().max().item<double>());
    EXPECT_LE((plain[i] - recomputed[i]).abs().max().item<double>(), 1e-6 * plain[i].abs().max().item<double>() + 1e-9)
        << "parameter " << i;
  }
  EXPECT_GT(largest, 0.0);  // the loss reached the parameters
}

ModelConfig config_of(const std::string& arch) {
  if (arch == "qwen3") return testing::tiny_qwen3_config();
  if (arch == "deepseek-v3") return testing::tiny_deepseek_config();
  return testing::tiny_config(4, 2);
}

TEST(ActivationCheckpointing, GradientsEqualThePlainBackwardOnEveryTrainingForward) {
  for (const std::string arch : {"llama", "qwen3", "deepseek-v3"}) {
    SCOPED_TRACE(arch);
    torch::manual_seed(2);
    Transformer m = random_model(config_of(arch));
    m->train();
    const int64_t V = m->config().vocab_size;
    const auto projection = torch::randn({V});
    const auto head = [&](const torch::Tensor& h) { return (m->logits(h) * projection).sum(); };
    const auto tokens = random_tokens(2, 9, V);
    expect_same_gradients(m, [&](Transformer& model) { return head(model->forward(tokens)); });
    const auto segments = torch::tensor({0, 0, 0, 0, 1, 1, 1, 1, 1}).repeat({2, 1});
    expect_same_gradients(m, [&](Transformer& model) { return head(model->forward_packed(tokens, segments)); });
    const auto prompts = random_tokens(2, 5, V, 7), completions = random_tokens(4, 6, V, 8);
    const auto prompt_lengths = torch::tensor({3, 5}), group = torch::tensor({0, 0, 1, 1});
    const auto completion_lengths = torch::tensor({4, 1, 6, 2});
    expect_same_gradients(m, [&](Transformer& model) {
      auto [hp, hc] = model->forward_shared_prefix(prompts, prompt_lengths, completions, group, completion_lengths);
      return head(hp) + head(hc);
    });
  }
}

TEST(ActivationCheckpointing, TheRecomputationRunsInTheForwardsPrecision) {
  // --precision bf16 on a CPU: the forward's products ran in bf16, and backward() is called outside
  // that scope; recomputing in fp32 would give the gradients of another forward (off by ~1e-2).
  Transformer m = random_model(testing::tiny_config());
  m->train();
  const auto tokens = random_tokens(2, 9, 97);
  expect_same_gradients(m, [&](Transformer& model) {
    torch::Tensor h;
    {
      CpuBf16MatmulScope bf16(true);
      h = model->forward(tokens);
    }
    return h.pow(2).sum();
  });
}

TEST(ActivationCheckpointing, LayersTrainUnderAFrozenEmbedding) {
  // No layer input requires a gradient (LoRA freezes the base): the layers' parameters still get theirs.
  Transformer m = random_model(testing::tiny_config());
  m->train();
  m->model->embed_tokens->weight.set_requires_grad(false);
  const auto tokens = random_tokens(2, 7, 97);
  expect_same_gradients(m, [&](Transformer& model) { return model->forward(tokens).pow(2).sum(); });
  for (const auto& p : m->named_parameters())
    if (p.key().find("layers.0.") != std::string::npos) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().max().item<double>(), 0.0) << p.key();
    }
}

TEST(ActivationCheckpointing, OnlyWhileTrainingWithGradients) {
  Transformer m = random_model(testing::tiny_config());
  const auto tokens = random_tokens(2, 7, 97);
  m->eval();
  const auto plain = m->forward(tokens).detach();
  m->set_checkpoint_activations(true);
  const auto evaluated = m->forward(tokens);  // eval mode: the plain forward
  EXPECT_TRUE(!evaluated.grad_fn() || evaluated.grad_fn()->name().find("Checkpoint") == std::string::npos);
  m->train();
  const auto out = m->forward(tokens);
  ASSERT_TRUE(out.grad_fn());
  EXPECT_NE(out.grad_fn()->name().find("Checkpoint"), std::string::npos) << out.grad_fn()->name();
  EXPECT_TRUE(torch::equal(out.detach(), plain));  // the same forward
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(m->forward(tokens).requires_grad());
}

TEST(ActivationCheckpointing, ExpertLoadsAreCountedOnceAndTheBalanceLossIsRefused) {
  Transformer m = random_model(testing::tiny_deepseek_config());
  m->train();
  const auto tokens = random_tokens(2, 9, m->config().vocab_size);
  std::vector<Moe> moes;
  for (auto& layer : *m->model->layers)
    if (auto* l = layer->as<DecoderLayerImpl>(); l->moe) moes.push_back(l->moe);
  ASSERT_FALSE(moes.empty());
  const auto loads_after_step = [&](bool checkpointed) {
    for (auto& moe : moes) moe->take_load();
    m->set_checkpoint_activations(checkpointed);
    m->forward(tokens).sum().backward();
    std::vector<std::vector<int64_t>> loads;
    for (auto& moe : moes) loads.push_back(moe->take_load());
    return loads;
  };
  const auto plain = loads_after_step(false);
  EXPECT_EQ(loads_after_step(true), plain);
  int64_t routed = 0;
  for (const auto& l : plain)
    for (int64_t c : l) routed += c;
  EXPECT_EQ(routed, static_cast<int64_t>(moes.size()) * 2 * 9 * 2);  // tokens x experts per token
  moes[0]->set_balance_loss_weight(1e-3);
  EXPECT_THROW(m->forward(tokens), Error);
}

}  // namespace
}  // namespace r1

// r1 plan's arithmetic (train/memory_plan.h) against numbers worked out by hand from the published
// DeepSeek-R1-Distill-Qwen configs and the ZeRO paper's formulas (reference/scaling-and-lora.md):
// 1.777B and 7.616B parameters, LoRA r=64 on every linear layer 73.9M and 161.5M, r=16 18.5M.
#include <gtest/gtest.h>

#include <string>

#include "model/presets.h"
#include "train/memory_plan.h"
#include "util/error.h"

namespace r1 {
namespace {

double item(const MemoryPlan& p, const std::string& prefix) {
  for (const auto& i : p.items)
    if (i.what.rfind(prefix, 0) == 0) return i.bytes;
  return -1;
}

TEST(MemoryPlan, ModelStatesFollowZeroStages) {
  const ModelConfig c = preset_config("r1-distill-qwen-1.5b");
  const double psi = 1777088000.0;
  PlanOptions o;
  o.rollouts = 0;
  o.gpus = 8;
  MemoryPlan p = plan_memory(c, o);
  EXPECT_EQ(p.parameters, 1777088000);
  EXPECT_DOUBLE_EQ(item(p, "weights"), 4 * psi);
  const double buckets = 3 * 25.0 * 1048576;  // packed for the collectives, three at a time
  EXPECT_DOUBLE_EQ(item(p, "gradients"), 4 * psi + buckets);
  EXPECT_DOUBLE_EQ(item(p, "AdamW"), 8 * psi);
  o.zero = 1;
  EXPECT_DOUBLE_EQ(item(plan_memory(c, o), "AdamW"), psi);  // 8 psi / 8 ranks
  EXPECT_DOUBLE_EQ(item(plan_memory(c, o), "gradients"), 4 * psi + buckets);
  o.zero = 2;
  EXPECT_DOUBLE_EQ(item(plan_memory(c, o), "gradients"), psi / 2 + buckets);
  o.gpus = 1;  // one process: no collectives
  EXPECT_DOUBLE_EQ(item(plan_memory(c, o), "gradients"), 4 * psi);
  o.gpus = 8;
  o.zero = 3;
  // 28 layers of 46.8M parameters each, sharded, two gathered; the two 233M embedding matrices whole.
  const double layer = (psi - 2.0 * 151936 * 1536) / 28;
  EXPECT_DOUBLE_EQ(item(plan_memory(c, o), "weights"), 4 * 28 * layer / 8 + 4 * 2.0 * 151936 * 1536 + 8 * layer);
  EXPECT_NEAR(layer, 46.8e6, 0.1e6);
  EXPECT_EQ(item(plan_memory(c, o), "weights gathered"), -1);  // no rollouts: pretraining/SFT
  o.rollouts = 256;
  EXPECT_DOUBLE_EQ(item(plan_memory(c, o), "weights gathered"), 4 * 28 * layer * 7 / 8);
}

TEST(MemoryPlan, LoraParametersMatchThePublishedCounts) {
  LoraConfig lora;
  lora.rank = 64;
  lora.targets = {"all-linear"};
  // Per layer r x (in + out) over q, k, v, o (1536 -> 1536, 256, 256, 1536) and gate, up, down
  // (1536 <-> 8960): 64 x 41,216 x 28 layers.
  EXPECT_EQ(lora_parameter_count(preset_config("r1-distill-qwen-1.5b"), lora), 64LL * 41216 * 28);
  EXPECT_NEAR(lora_parameter_count(preset_config("r1-distill-qwen-7b"), lora), 161.5e6, 0.05e6);
  lora.rank = 16;
  EXPECT_NEAR(lora_parameter_count(preset_config("r1-distill-qwen-1.5b"), lora), 18.5e6, 0.05e6);
  lora.targets = {"q_proj", "v_proj"};
  EXPECT_EQ(lora_parameter_count(preset_config("r1-distill-qwen-1.5b"), lora), 16LL * (3072 + 1792) * 28);
  lora.targets = {"q_proj", "router"};
  EXPECT_THROW(lora_parameter_count(preset_config("r1-distill-qwen-1.5b"), lora), Error);
}

TEST(MemoryPlan, ReferenceKvCacheAndActivations) {
  const ModelConfig c = preset_config("r1-distill-qwen-1.5b");
  PlanOptions o;
  o.gpus = 8, o.rollouts = 256, o.max_context = 4096, o.beta = 0.04;
  MemoryPlan p = plan_memory(c, o);
  EXPECT_DOUBLE_EQ(item(p, "reference"), 2 * 1777088000.0);  // bf16 weights beside bf16 products
  o.bf16 = false;
  EXPECT_DOUBLE_EQ(item(plan_memory(c, o), "reference"), 4 * 1777088000.0);
  o.bf16 = true;
  // 32 rollouts per rank x 4096 tokens x 28 layers x (keys + values: 2 x 2 heads x 128) x 4 bytes.
  EXPECT_DOUBLE_EQ(item(p, "KV cache"), 32.0 * 4096 * 28 * 512 * 4);
  o.rollout_batch = 8;  // 8 rows decoded at once, the other rollouts waiting
  EXPECT_DOUBLE_EQ(item(plan_memory(c, o), "KV cache"), 8.0 * 4096 * 28 * 512 * 4);
  o.rollout_batch = 64;  // more than the rank's 32 rollouts: all at once
  EXPECT_DOUBLE_EQ(item(plan_memory(c, o), "KV cache"), 32.0 * 4096 * 28 * 512 * 4);
  o.rollout_batch = 0;
  // bf16 activations of one 4096-token sequence: 28 x (7 x 1536 + 2 x 256 + 4 x 8960) x 2 bytes each.
  EXPECT_DOUBLE_EQ(item(p, "activations"), 4096.0 * 28 * (7 * 1536 + 2 * 256 + 4 * 8960) * 2);
  o.checkpoint_activations = true;
  EXPECT_DOUBLE_EQ(item(plan_memory(c, o), "activations"),
                   4096.0 * (28 * 2 * 1536 * 2 + 3.0 * (7 * 1536 + 2 * 256 + 4 * 8960) * 2));
  o.lora.rank = 8;  // the reference is the base without adapters: no copy
  EXPECT_EQ(item(plan_memory(c, o), "reference"), -1);
  o.rollouts = 0;  // pretraining/SFT: no engine
  EXPECT_EQ(item(plan_memory(c, o), "KV cache"), -1);
}

TEST(MemoryPlan, WhatFits) {
  PlanOptions o;  // 1.5B on one 80 GB GPU, 256 rollouts of 4096 tokens: the engine's cache alone is 60 GB
  const ModelConfig c = preset_config("r1-distill-qwen-1.5b");
  const MemoryPlan one = plan_memory(c, o);
  // The cache (rollouts) and the gradients with the activations (training) never coexist: the
  // peak is what is kept throughout plus the larger phase, here the cache.
  const double psi = 1777088000.0, cache = 256.0 * 4096 * 28 * 512 * 4;
  EXPECT_DOUBLE_EQ(one.phase_bytes(Phase::kRollouts), cache);
  EXPECT_DOUBLE_EQ(one.total(), 4 * psi + 8 * psi + 0.5e9 + cache);
  EXPECT_FALSE(one.fits(80));
  o.gpus = 8;
  o.zero = 1;
  EXPECT_TRUE(plan_memory(c, o).fits(80));
  o.gpus = 0;
  EXPECT_THROW(plan_memory(c, o), Error);
}

}  // namespace
}  // namespace r1

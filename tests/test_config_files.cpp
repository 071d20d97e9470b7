// config.json files in the forms real checkpoints ship, read and written back unchanged in
// every key r1 does not interpret.
#include <gtest/gtest.h>

#include "model/config.h"
#include "model/presets.h"

namespace r1 {
namespace {

// The keys and values of DeepSeek-R1-Distill-Qwen-1.5B's config.json (transformers 4.44 era):
// Qwen2 extras (sliding window fields, use_mrope) that r1 must carry along untouched.
const char* kR1DistillQwen15B = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 1536, "initializer_range": 0.02,
  "intermediate_size": 8960, "max_position_embeddings": 131072, "max_window_layers": 21,
  "model_type": "qwen2", "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06, "rope_theta": 10000, "sliding_window": 4096, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.44.0", "use_cache": true, "use_mrope": false,
  "use_sliding_window": false, "vocab_size": 151936})";

// DeepSeek-Coder's Llama config with linear rope scaling in the legacy "type" spelling.
const char* kDeepSeekCoder13B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 32013, "eos_token_id": 32021,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5504,
  "max_position_embeddings": 16384, "model_type": "llama", "num_attention_heads": 16, "num_hidden_layers": 24,
  "num_key_value_heads": 16, "pretraining_tp": 1, "rms_norm_eps": 1e-06,
  "rope_scaling": {"factor": 4.0, "type": "linear"}, "rope_theta": 100000, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": true, "vocab_size": 32256})";

TEST(ConfigFiles, R1DistillQwenConfigLoadsWithThePublishedCount) {
  auto j = nlohmann::json::parse(kR1DistillQwen15B);
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.architecture, Architecture::kQwen2);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.parameter_count(), preset_config("r1-distill-qwen-1.5b").parameter_count());
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  auto out = c.to_json();
  for (const char* key : {"sliding_window", "max_window_layers", "use_mrope", "use_sliding_window", "use_cache",
                          "attention_dropout", "transformers_version"})
    EXPECT_EQ(out.at(key), j.at(key)) << key;
}

TEST(ConfigFiles, DeepSeekCoderConfigKeepsItsRopeScaling) {
  ModelConfig c = ModelConfig::from_json(nlohmann::json::parse(kDeepSeekCoder13B));
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_EQ(c.rope_scaling.factor, 4.0);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{32021});
  EXPECT_EQ(c.parameter_count(), preset_config("deepseek-coder-1.3b").parameter_count());
  EXPECT_EQ(c.to_json().at("pretraining_tp"), 1);
}

}  // namespace
}  // namespace r1

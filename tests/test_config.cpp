#include <gtest/gtest.h>

#include "model/config.h"
#include "model/presets.h"
#include "expect_error.h"
#include "util/error.h"

namespace r1 {
namespace {

using nlohmann::json;

json small_llama() {
  return json::parse(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 100, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 256, "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": false,
    "bos_token_id": 1, "eos_token_id": [2, 3], "torch_dtype": "float32", "hidden_act": "silu"})");
}

using testing::expect_error;

TEST(ModelConfig, PublishedParameterCounts) {
  // Published: DeepSeek LLM 7B = 6.91B (README), R1-Distill-Qwen-7B safetensors total, Qwen 1.5B distill.
  EXPECT_EQ(preset_config("deepseek-llm-7b").parameter_count(), 6910365696LL);
  EXPECT_EQ(preset_config("r1-distill-qwen-7b").parameter_count(), 7615616512LL);
  EXPECT_EQ(preset_config("r1-distill-qwen-1.5b").parameter_count(), 1777088000LL);
  EXPECT_EQ(human_count(preset_config("deepseek-llm-67b").parameter_count()).substr(0, 4), "67.4");
  EXPECT_EQ(human_count(preset_config("deepseek-coder-6.7b").parameter_count()), "6.74B");
  EXPECT_EQ(human_count(preset_config("deepseek-coder-1.3b").parameter_count()), "1.35B");
  EXPECT_EQ(human_count(preset_config("deepseek-coder-33b").parameter_count()).substr(0, 4), "33.3");
  EXPECT_EQ(preset_config("deepseek-math-7b").parameter_count(), 6910365696LL);
}

TEST(ModelConfig, SmallPresetsFitTheirDescriptions) {
  const int64_t tiny = preset_config("tiny").parameter_count();
  const int64_t small = preset_config("small").parameter_count();
  EXPECT_GT(tiny, 1'000'000);
  EXPECT_LT(tiny, 5'000'000);
  EXPECT_GT(small, 20'000'000);
  EXPECT_LT(small, 50'000'000);
  // llama2.c shapes: stories15M has 15.2M parameters.
  EXPECT_EQ(human_count(preset_config("bench-s").parameter_count()).substr(0, 2), "15");
}

TEST(ModelConfig, RoundTripKeepsEveryFieldAndUnknownKeys) {
  json j = small_llama();
  j["some_future_key"] = {{"nested", {1, 2, 3}}};
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}, {"beta_fast", 16.0}};
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(c.rope_scaling.type, "yarn");
  json out = c.to_json();
  EXPECT_EQ(out["some_future_key"], j["some_future_key"]);
  ModelConfig back = ModelConfig::from_json(out);
  EXPECT_EQ(back.to_json(), out);
  EXPECT_EQ(back.rope_scaling.original_max_position_embeddings.value(), 64);
  EXPECT_DOUBLE_EQ(*back.rope_scaling.beta_fast, 16.0);
  EXPECT_EQ(back.rms_norm_eps, 1e-5);
  EXPECT_EQ(back.bos_token_ids, (std::vector<int64_t>{1}));
}

TEST(ModelConfig, PresetsRoundTrip) {
  for (const auto& p : model_presets()) {
    ModelConfig back = ModelConfig::from_json(p.config.to_json(), p.name);
    EXPECT_EQ(back.to_json(), p.config.to_json()) << p.name;
    EXPECT_EQ(back.parameter_count(), p.config.parameter_count()) << p.name;
  }
}

TEST(ModelConfig, ReadsTransformers5RopeParameters) {
  json j = small_llama();
  j["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 4.0}, {"rope_theta", 100000.0}};
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_EQ(c.rope_theta, 100000.0);
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5000.0}};
  EXPECT_EQ(ModelConfig::from_json(j).rope_scaling.type, "");
}

TEST(ModelConfig, QwenHasQkvBias) {
  json j = small_llama();
  j["architectures"] = {"Qwen2ForCausalLM"};
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_TRUE(c.has_qkv_bias());
  EXPECT_FALSE(c.has_o_bias());
  ModelConfig l = ModelConfig::from_json(small_llama());
  EXPECT_EQ(c.parameter_count() - l.parameter_count(), 2 * (64 + 2 * 32));
}

TEST(ModelConfig, InconsistentValuesAreErrorsNamingTheField) {
  auto with = [](const char* key, json value) {
    json j = small_llama();
    j[key] = value;
    return j;
  };
  expect_error([&] { ModelConfig::from_json(with("num_attention_heads", 5)); }, "hidden_size");
  expect_error([&] { ModelConfig::from_json(with("num_key_value_heads", 3)); }, "num_key_value_heads");
  expect_error([&] { ModelConfig::from_json(with("hidden_size", -64)); }, "hidden_size");
  expect_error([&] { ModelConfig::from_json(with("intermediate_size", 0)); }, "intermediate_size");
  expect_error([&] { ModelConfig::from_json(with("vocab_size", "many")); }, "vocab_size");
  expect_error([&] { ModelConfig::from_json(with("hidden_act", "gelu")); }, "hidden_act");
  expect_error([&] { ModelConfig::from_json(with("architectures", json::array({"GPT2LMHeadModel"}))); }, "GPT2LMHeadModel");
  expect_error([&] { ModelConfig::from_json(with("rope_scaling", {{"type", "longrope"}, {"factor", 2.0}})); }, "longrope");
  expect_error([&] { ModelConfig::from_json(with("eos_token_id", 100)); }, "eos_token_id");
  expect_error([&] { ModelConfig::from_json(with("torch_dtype", "int8")); }, "torch_dtype");
  json missing = small_llama();
  missing.erase("num_hidden_layers");
  expect_error([&] { ModelConfig::from_json(missing, "dir/config.json"); }, "dir/config.json: field 'num_hidden_layers'");
  expect_error([] { preset_config("deepseek-llm-9000b"); }, "known: deepseek-llm-7b");
}

}  // namespace
}  // namespace r1

// ModelConfig: the architecture of a Llama-family decoder, read from and written to a
// Hugging Face config.json (LlamaForCausalLM, Qwen2ForCausalLM). Torch-free.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace r1 {

// HF `rope_scaling` (transformers <= 4.x) / `rope_parameters` (5.x). type "" = plain RoPE.
struct RopeScaling {
  std::string type;                     // "", "linear", "dynamic", "yarn", "llama3"
  double factor = 1.0;
  std::optional<int64_t> original_max_position_embeddings;
  // yarn
  std::optional<double> attention_factor, beta_fast, beta_slow, mscale, mscale_all_dim;
  bool truncate = true;
  // llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
};

enum class Architecture { kLlama, kQwen2 };

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // 0 in JSON means hidden_size / num_attention_heads
  int64_t max_position_embeddings = 4096;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // Llama: bias on q/k/v/o. Qwen2 always has q/k/v bias.
  bool mlp_bias = false;
  double initializer_range = 0.006;  // DeepSeek LLM init std
  std::vector<int64_t> bos_token_ids, eos_token_ids;  // HF allows an int or a list
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype = "float32";
  // A reward model: ...ForSequenceClassification, a scalar `score` head on the last token's hidden
  // state instead of the language-model head (num_labels 1).
  bool sequence_classification = false;
  // Keys r1 does not interpret, written back unchanged (architecture-specific extras).
  nlohmann::json extra = nlohmann::json::object();

  bool has_qkv_bias() const { return architecture == Architecture::kQwen2 || attention_bias; }
  bool has_o_bias() const { return architecture == Architecture::kLlama && attention_bias; }
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  std::string architecture_name() const;  // "LlamaForCausalLM", "Qwen2ForSequenceClassification", ...
  std::string model_type() const;         // "llama" / "qwen2"

  // Throws r1::Error naming the field for impossible values.
  void validate() const;
  // Exact number of parameters of the model this config describes.
  int64_t parameter_count() const;
  // Training FLOPs per token at sequence length `seq`: 6 x matmul parameters (LM head included,
  // embedding lookup not) + 12 x layers x heads x head_dim x seq for attention (PaLM, App. B).
  double training_flops_per_token(int64_t seq) const;

  // `origin` names the file in error messages.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& origin = "config.json");
  static ModelConfig load(const std::string& path);
  nlohmann::json to_json() const;
  void save(const std::string& path) const;
};

// "6.91B", "15.2M": the rounded form printed beside exact counts.
std::string human_count(int64_t n);

}  // namespace r1

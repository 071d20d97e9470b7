// ModelConfig: the architecture of a decoder, read from and written to a Hugging Face config.json:
// the Llama family (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM) and DeepSeek-V2/V3 (multi-head latent
// attention, DeepSeekMoE, multi-token prediction). Torch-free.
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

enum class Architecture { kLlama, kQwen2, kQwen3, kDeepseekV2, kDeepseekV3 };

// Multi-head latent attention (DeepSeek-V2/V3, reference/deepseek-v3-architecture.md §2): keys and
// values of all heads come from one compressed latent per token (kv_lora_rank wide) plus one rotary
// key shared by the heads (qk_rope_head_dim wide), which is all a decoding cache has to keep.
struct LatentAttentionConfig {
  int64_t q_lora_rank = 0;  // 0 (null in config.json): queries from a plain q_proj (V2-Lite)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;
  // V3's rotary pairs are adjacent dims (2i, 2i+1) of the rope part; false: HF's rotate_half pairs
  // (i, i + d/2). V2 always pairs adjacent dims.
  bool rope_interleave = true;
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
};

// DeepSeekMoE (§4): from layer first_k_dense_replace on, the MLP is n_shared_experts always-on
// experts plus num_experts_per_tok of n_routed_experts chosen per token by a router.
struct MoeConfig {
  int64_t n_routed_experts = 0;  // 0: every layer dense
  int64_t n_shared_experts = 0, num_experts_per_tok = 0, moe_intermediate_size = 0;
  int64_t first_k_dense_replace = 0;
  int64_t n_group = 1, topk_group = 1;  // experts in n_group groups, choices from the best topk_group
  // V3: "noaux_tc" (sigmoid scores, a per-expert bias for selection only, groups ranked by the sum of
  // their two best); V2: "greedy" or "group_limited_greedy" (softmax scores, groups by their best).
  std::string topk_method;
  bool norm_topk_prob = false;  // V3: chosen weights renormalised to sum to 1 (then scaled)
  double routed_scaling_factor = 1.0;
  bool sigmoid_scores() const { return topk_method == "noaux_tc"; }
  bool grouped() const { return topk_method != "greedy"; }
};

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
  bool attention_bias = false;  // Llama, Qwen3: bias on q/k/v/o. Qwen2 always has q/k/v bias.
  bool mlp_bias = false;
  double initializer_range = 0.006;  // DeepSeek LLM init std
  std::vector<int64_t> bos_token_ids, eos_token_ids;  // HF allows an int or a list
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype = "float32";
  // A reward model: ...ForSequenceClassification, a scalar `score` head on the last token's hidden
  // state instead of the language-model head (num_labels 1).
  bool sequence_classification = false;
  // DeepSeek-V2/V3 only (is_deepseek()).
  LatentAttentionConfig mla;
  MoeConfig moe;
  // Multi-token prediction modules (V3's num_nextn_predict_layers), stored as layers
  // num_hidden_layers.. num_hidden_layers + mtp_layers - 1 as in the released checkpoint.
  int64_t mtp_layers = 0;
  // Keys r1 does not interpret, written back unchanged (architecture-specific extras).
  nlohmann::json extra = nlohmann::json::object();

  bool is_deepseek() const { return architecture == Architecture::kDeepseekV2 || architecture == Architecture::kDeepseekV3; }
  bool is_moe_layer(int64_t layer) const { return moe.n_routed_experts > 0 && layer >= moe.first_k_dense_replace; }

  bool has_qkv_bias() const { return architecture == Architecture::kQwen2 || attention_bias; }
  bool has_o_bias() const { return architecture != Architecture::kQwen2 && attention_bias; }
  // Qwen3: queries and keys RMS-normalised per head (weights [head_dim]) before RoPE.
  bool has_qk_norm() const { return architecture == Architecture::kQwen3; }
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  std::string architecture_name() const;  // "LlamaForCausalLM", "Qwen2ForSequenceClassification", ...
  std::string model_type() const;         // "llama", "qwen2", "qwen3", "deepseek_v2", "deepseek_v3"

  // Throws r1::Error naming the field for impossible values.
  void validate() const;
  // Exact number of parameters of the model this config describes (without the MTP modules).
  int64_t parameter_count() const;
  // Parameters one token passes through: the embedding row and head included, and of a MoE layer's
  // routed experts only the num_experts_per_tok it is sent to.
  int64_t activated_parameter_count() const;
  // Parameters of the multi-token prediction modules, beyond the embedding and head they share.
  int64_t mtp_parameter_count() const;
  // Values a decoding cache keeps per token over all layers: keys and values (2 x kv heads x
  // head_dim per layer), or with latent attention the latent and the rotary key.
  int64_t kv_cache_values_per_token() const;
  // Training FLOPs per token at sequence length `seq`: 6 x activated matmul parameters (LM head
  // included, embedding lookup not) + 6 x layers x heads x (q.k dim + v dim) x seq for attention
  // (PaLM, App. B).
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

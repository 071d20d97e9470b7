#include "model/config_deepseek.h"

#include "util/error.h"
#include "util/json_file.h"

namespace r1 {
namespace {

using nlohmann::json;

// transformers' DeepseekV3Config / DeepseekV2Config class defaults, used for keys a config.json
// leaves out (so r1 reads such a file as transformers does).
ModelConfig hf_defaults(Architecture a) {
  ModelConfig c;
  LatentAttentionConfig& m = c.mla;
  MoeConfig& e = c.moe;
  m.kv_lora_rank = 512;
  m.qk_nope_head_dim = 128;
  m.qk_rope_head_dim = 64;
  m.v_head_dim = 128;
  m.q_lora_rank = 1536;
  if (a == Architecture::kDeepseekV3) {
    e.n_routed_experts = 256;
    e.n_shared_experts = 1;
    e.num_experts_per_tok = 8;
    e.moe_intermediate_size = 2048;
    e.first_k_dense_replace = 3;
    e.n_group = 8;
    e.topk_group = 4;
    e.topk_method = "noaux_tc";
    e.norm_topk_prob = true;
    e.routed_scaling_factor = 2.5;
  } else {
    e.n_routed_experts = 64;
    e.n_shared_experts = 2;
    e.num_experts_per_tok = 0;  // None in transformers: a MoE layer then needs the key
    e.moe_intermediate_size = 1407;
    e.first_k_dense_replace = 0;
    e.topk_method = "greedy";
    e.routed_scaling_factor = 1.0;
  }
  return c;
}

// A key transformers reads but ignores must not say something r1 (and transformers) would not do.
void require_if_present(const json& j, const std::string& key, const json& wanted, const std::string& origin,
                        const std::string& why) {
  if (!j.contains(key) || j[key].is_null() || j[key] == wanted) return;
  throw Error(origin + ": field '" + key + "' is " + j[key].dump() + ", but " + why + " (expected " + wanted.dump() + ")");
}

}  // namespace

const std::set<std::string>& deepseek_keys() {
  static const std::set<std::string> keys = {
      "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "rope_interleave",
      "n_routed_experts", "n_shared_experts", "num_experts_per_tok", "moe_intermediate_size",
      "first_k_dense_replace", "moe_layer_freq", "n_group", "topk_group", "topk_method", "scoring_func",
      "norm_topk_prob", "routed_scaling_factor", "num_nextn_predict_layers", "num_mtp_layers"};
  return keys;
}

void read_deepseek_fields(const json& j, const std::string& origin, ModelConfig& c) {
  const ModelConfig d = hf_defaults(c.architecture);
  c.mla = d.mla;
  c.moe = d.moe;
  const bool v3 = c.architecture == Architecture::kDeepseekV3;
  LatentAttentionConfig& m = c.mla;
  MoeConfig& e = c.moe;
  if (j.contains("q_lora_rank")) m.q_lora_rank = j["q_lora_rank"].is_null() ? 0 : json_field<int64_t>(j, "q_lora_rank", origin);
  json_optional_field(j, "kv_lora_rank", origin, m.kv_lora_rank);
  json_optional_field(j, "qk_nope_head_dim", origin, m.qk_nope_head_dim);
  json_optional_field(j, "qk_rope_head_dim", origin, m.qk_rope_head_dim);
  json_optional_field(j, "v_head_dim", origin, m.v_head_dim);
  if (v3) json_optional_field(j, "rope_interleave", origin, m.rope_interleave);
  else require_if_present(j, "rope_interleave", true, origin, "DeepSeek-V2 always rotates adjacent pairs");
  json_optional_field(j, "n_routed_experts", origin, e.n_routed_experts);
  json_optional_field(j, "n_shared_experts", origin, e.n_shared_experts);
  json_optional_field(j, "num_experts_per_tok", origin, e.num_experts_per_tok);
  json_optional_field(j, "moe_intermediate_size", origin, e.moe_intermediate_size);
  json_optional_field(j, "first_k_dense_replace", origin, e.first_k_dense_replace);
  json_optional_field(j, "n_group", origin, e.n_group);
  json_optional_field(j, "topk_group", origin, e.topk_group);
  json_optional_field(j, "norm_topk_prob", origin, e.norm_topk_prob);
  json_optional_field(j, "routed_scaling_factor", origin, e.routed_scaling_factor);
  require_if_present(j, "moe_layer_freq", 1, origin, "every layer from first_k_dense_replace on is a MoE layer");
  if (v3) {
    const std::string why = "DeepSeek-V3 routes by sigmoid scores with bias-corrected group-limited selection";
    require_if_present(j, "scoring_func", "sigmoid", origin, why);
    require_if_present(j, "topk_method", "noaux_tc", origin, why);
  } else {
    json_optional_field(j, "topk_method", origin, e.topk_method);
    if (e.topk_method != "greedy" && e.topk_method != "group_limited_greedy")
      throw Error(origin + ": field 'topk_method' is '" + e.topk_method +
                  "'; DeepSeek-V2 routes by 'greedy' or 'group_limited_greedy'");
    require_if_present(j, "scoring_func", "softmax", origin, "DeepSeek-V2 routes by softmax scores");
    if (e.norm_topk_prob)
      throw Error(origin + ": field 'norm_topk_prob' is true, but DeepSeek-V2's weights are scaled, never "
                  "renormalised (transformers ignores the key; no released V2 sets it)");
  }
  json_optional_field(j, "num_nextn_predict_layers", origin, c.mtp_layers);
  if (!j.contains("num_nextn_predict_layers")) json_optional_field(j, "num_mtp_layers", origin, c.mtp_layers);
  // transformers sets head_dim to the rotary width.
  if (j.contains("head_dim") && !j["head_dim"].is_null() && j["head_dim"] != m.qk_rope_head_dim)
    throw Error(origin + ": field 'head_dim' is " + j["head_dim"].dump() + ", but latent attention rotates " +
                std::to_string(m.qk_rope_head_dim) + " dims per head (qk_rope_head_dim)");
  c.head_dim = m.qk_rope_head_dim;
  // num_key_value_heads means nothing to latent attention (every head's key and value come from the
  // shared latent); transformers' class default, 128, is written even into tiny configs.
  c.num_key_value_heads = c.num_attention_heads;
}

void write_deepseek_fields(const ModelConfig& c, json& j) {
  const LatentAttentionConfig& m = c.mla;
  const MoeConfig& e = c.moe;
  j["q_lora_rank"] = m.q_lora_rank > 0 ? json(m.q_lora_rank) : json(nullptr);
  j["kv_lora_rank"] = m.kv_lora_rank;
  j["qk_nope_head_dim"] = m.qk_nope_head_dim;
  j["qk_rope_head_dim"] = m.qk_rope_head_dim;
  j["v_head_dim"] = m.v_head_dim;
  j["n_routed_experts"] = e.n_routed_experts;
  j["n_shared_experts"] = e.n_shared_experts;
  j["num_experts_per_tok"] = e.num_experts_per_tok;
  j["moe_intermediate_size"] = e.moe_intermediate_size;
  j["first_k_dense_replace"] = e.first_k_dense_replace;
  j["moe_layer_freq"] = 1;
  j["n_group"] = e.n_group;
  j["topk_group"] = e.topk_group;
  j["topk_method"] = e.topk_method;
  j["norm_topk_prob"] = e.norm_topk_prob;
  j["routed_scaling_factor"] = e.routed_scaling_factor;
  j["num_nextn_predict_layers"] = c.mtp_layers;
  if (c.architecture == Architecture::kDeepseekV3) {
    j["scoring_func"] = "sigmoid";
    j["rope_interleave"] = m.rope_interleave;
    j["num_mtp_layers"] = c.mtp_layers;  // transformers 5's name for the same count
  } else {
    j["scoring_func"] = "softmax";
  }
}

void validate_deepseek(const ModelConfig& c) {
  const LatentAttentionConfig& m = c.mla;
  const MoeConfig& e = c.moe;
  auto positive = [](int64_t v, const char* name) {
    if (v <= 0) throw Error(std::string("field '") + name + "' must be positive, got " + std::to_string(v));
  };
  auto not_negative = [](int64_t v, const char* name) {
    if (v < 0) throw Error(std::string("field '") + name + "' must be >= 0, got " + std::to_string(v));
  };
  not_negative(m.q_lora_rank, "q_lora_rank");
  positive(m.kv_lora_rank, "kv_lora_rank");
  positive(m.qk_nope_head_dim, "qk_nope_head_dim");
  positive(m.qk_rope_head_dim, "qk_rope_head_dim");
  positive(m.v_head_dim, "v_head_dim");
  if (m.qk_rope_head_dim % 2 != 0) throw Error("field 'qk_rope_head_dim' must be even for RoPE");
  not_negative(c.mtp_layers, "num_nextn_predict_layers");
  not_negative(e.first_k_dense_replace, "first_k_dense_replace");
  not_negative(e.n_routed_experts, "n_routed_experts");
  if (e.n_routed_experts == 0 || e.first_k_dense_replace >= c.num_hidden_layers) return;  // all dense
  not_negative(e.n_shared_experts, "n_shared_experts");
  positive(e.moe_intermediate_size, "moe_intermediate_size");
  positive(e.num_experts_per_tok, "num_experts_per_tok");
  if (e.num_experts_per_tok > e.n_routed_experts)
    throw Error("num_experts_per_tok (" + std::to_string(e.num_experts_per_tok) + ") exceeds n_routed_experts (" +
                std::to_string(e.n_routed_experts) + ")");
  if (!(e.routed_scaling_factor > 0)) throw Error("field 'routed_scaling_factor' must be positive");
  if (!e.grouped()) return;
  positive(e.n_group, "n_group");
  positive(e.topk_group, "topk_group");
  if (e.n_routed_experts % e.n_group != 0)
    throw Error("n_group (" + std::to_string(e.n_group) + ") does not divide n_routed_experts (" +
                std::to_string(e.n_routed_experts) + ")");
  if (e.topk_group > e.n_group)
    throw Error("topk_group (" + std::to_string(e.topk_group) + ") exceeds n_group (" + std::to_string(e.n_group) + ")");
  const int64_t per_group = e.n_routed_experts / e.n_group;
  if (e.sigmoid_scores() && per_group < 2)
    throw Error("noaux_tc routing ranks groups by their two best experts: n_routed_experts / n_group must be >= 2");
  if (e.topk_group * per_group < e.num_experts_per_tok)
    throw Error("the topk_group best groups hold " + std::to_string(e.topk_group * per_group) +
                " experts, fewer than num_experts_per_tok (" + std::to_string(e.num_experts_per_tok) + ")");
}

int64_t attention_parameter_count(const ModelConfig& c) {
  const int64_t h = c.hidden_size;
  if (!c.is_deepseek()) {
    int64_t n = h * c.q_dim() + 2 * h * c.kv_dim() + c.q_dim() * h;
    if (c.has_qkv_bias()) n += c.q_dim() + 2 * c.kv_dim();
    if (c.has_o_bias()) n += h;
    if (c.has_qk_norm()) n += 2 * c.head_dim;
    return n;
  }
  const LatentAttentionConfig& m = c.mla;
  const int64_t heads = c.num_attention_heads, bias = c.attention_bias ? 1 : 0;
  const int64_t q_out = heads * m.qk_head_dim();
  // q_a_proj (+bias), q_a_layernorm, q_b_proj; or a plain q_proj.
  const int64_t q = m.q_lora_rank > 0 ? h * m.q_lora_rank + bias * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * q_out
                                      : h * q_out;
  const int64_t kv_a = (h + bias) * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank;  // + kv_a_layernorm
  const int64_t kv_b = m.kv_lora_rank * heads * (m.qk_nope_head_dim + m.v_head_dim);
  const int64_t o = heads * m.v_head_dim * h + bias * h;
  return q + kv_a + kv_b + o;
}

int64_t mlp_parameter_count(const ModelConfig& c, int64_t layer) {
  const int64_t h = c.hidden_size;
  if (!c.is_moe_layer(layer)) return 3 * h * c.intermediate_size + (c.mlp_bias ? 2 * c.intermediate_size + h : 0);
  const MoeConfig& e = c.moe;
  const int64_t expert = 3 * h * e.moe_intermediate_size;
  const int64_t bias = e.sigmoid_scores() ? e.n_routed_experts : 0;  // e_score_correction_bias
  return e.n_routed_experts * expert + e.n_shared_experts * expert + e.n_routed_experts * h + bias;
}

int64_t activated_mlp_parameter_count(const ModelConfig& c, int64_t layer) {
  if (!c.is_moe_layer(layer)) return mlp_parameter_count(c, layer);
  const MoeConfig& e = c.moe;
  const int64_t expert = 3 * c.hidden_size * e.moe_intermediate_size;
  return mlp_parameter_count(c, layer) - (e.n_routed_experts - e.num_experts_per_tok) * expert;
}

}  // namespace r1

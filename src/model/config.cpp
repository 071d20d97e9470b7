#include "model/config.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "model/config_deepseek.h"
#include "util/error.h"
#include "util/json_file.h"

namespace r1 {
namespace {

using nlohmann::json;

std::vector<int64_t> read_token_ids(const json& j, const std::string& key, const std::string& origin) {
  if (!j.contains(key) || j.at(key).is_null()) return {};
  const json& v = j.at(key);
  if (v.is_number_integer()) return {v.get<int64_t>()};
  if (v.is_array()) {
    std::vector<int64_t> ids;
    for (const json& x : v) {
      if (!x.is_number_integer()) throw Error(origin + ": field '" + key + "' must hold integers, got " + v.dump());
      ids.push_back(x.get<int64_t>());
    }
    return ids;
  }
  throw Error(origin + ": field '" + key + "' must be an integer or a list of integers, got " + v.dump());
}

json token_ids_to_json(const std::vector<int64_t>& ids) {
  if (ids.empty()) return nullptr;
  if (ids.size() == 1) return ids[0];
  return ids;
}

RopeScaling read_rope_scaling(const json& r, const std::string& origin) {
  const std::string where = origin + ": rope_scaling";
  if (!r.is_object()) throw Error(where + " must be an object or null, got " + r.dump());
  RopeScaling s;
  std::string type;
  if (r.contains("rope_type")) type = json_field<std::string>(r, "rope_type", where);
  else if (r.contains("type")) type = json_field<std::string>(r, "type", where);
  if (type == "default") type = "";
  static const std::set<std::string> known = {"", "linear", "dynamic", "yarn", "llama3"};
  if (!known.count(type))
    throw Error(where + ".type '" + type + "' is not supported (supported: linear, dynamic, yarn, llama3)");
  s.type = type;
  json_optional_field(r, "factor", where, s.factor);
  if (!type.empty() && !(s.factor > 0)) throw Error(where + ".factor must be > 0");
  if (r.contains("original_max_position_embeddings") && !r["original_max_position_embeddings"].is_null())
    s.original_max_position_embeddings = json_field<int64_t>(r, "original_max_position_embeddings", where);
  auto opt = [&](const char* key, std::optional<double>& out) {
    if (r.contains(key) && !r[key].is_null()) out = json_field<double>(r, key, where);
  };
  opt("attention_factor", s.attention_factor);
  opt("beta_fast", s.beta_fast);
  opt("beta_slow", s.beta_slow);
  opt("mscale", s.mscale);
  opt("mscale_all_dim", s.mscale_all_dim);
  json_optional_field(r, "truncate", where, s.truncate);
  json_optional_field(r, "low_freq_factor", where, s.low_freq_factor);
  json_optional_field(r, "high_freq_factor", where, s.high_freq_factor);
  if (type == "llama3") {
    if (!s.original_max_position_embeddings)
      throw Error(where + ": llama3 scaling needs original_max_position_embeddings");
    if (!(s.high_freq_factor > s.low_freq_factor))
      throw Error(where + ": high_freq_factor must be greater than low_freq_factor");
  }
  return s;
}

json rope_scaling_to_json(const RopeScaling& s) {
  if (s.type.empty()) return nullptr;
  json r = {{"rope_type", s.type}, {"type", s.type}, {"factor", s.factor}};
  if (s.original_max_position_embeddings) r["original_max_position_embeddings"] = *s.original_max_position_embeddings;
  if (s.type == "yarn") {
    if (s.attention_factor) r["attention_factor"] = *s.attention_factor;
    if (s.beta_fast) r["beta_fast"] = *s.beta_fast;
    if (s.beta_slow) r["beta_slow"] = *s.beta_slow;
    if (s.mscale) r["mscale"] = *s.mscale;
    if (s.mscale_all_dim) r["mscale_all_dim"] = *s.mscale_all_dim;
    if (!s.truncate) r["truncate"] = false;
  }
  if (s.type == "llama3") {
    r["low_freq_factor"] = s.low_freq_factor;
    r["high_freq_factor"] = s.high_freq_factor;
  }
  return r;
}

// Keys this file interprets; everything else lands in `extra`.
const std::set<std::string>& interpreted_keys() {
  static const std::set<std::string> keys = {
      "architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size",
      "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
      "max_position_embeddings", "rope_theta", "rope_scaling", "rope_parameters", "rms_norm_eps",
      "tie_word_embeddings", "attention_bias", "mlp_bias", "initializer_range", "bos_token_id",
      "eos_token_id", "pad_token_id", "torch_dtype", "dtype", "hidden_act", "num_labels", "id2label", "label2id"};
  return keys;
}

}  // namespace

std::string ModelConfig::architecture_name() const {
  const char* base = architecture == Architecture::kQwen2        ? "Qwen2"
                     : architecture == Architecture::kQwen3        ? "Qwen3"
                     : architecture == Architecture::kDeepseekV2 ? "DeepseekV2"
                     : architecture == Architecture::kDeepseekV3 ? "DeepseekV3"
                                                                 : "Llama";
  return std::string(base) + (sequence_classification ? "ForSequenceClassification" : "ForCausalLM");
}

std::string ModelConfig::model_type() const {
  switch (architecture) {
    case Architecture::kQwen2: return "qwen2";
    case Architecture::kQwen3: return "qwen3";
    case Architecture::kDeepseekV2: return "deepseek_v2";
    case Architecture::kDeepseekV3: return "deepseek_v3";
    default: return "llama";
  }
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& origin) {
  if (!j.is_object()) throw Error(origin + ": expected a JSON object");
  ModelConfig c;
  std::string arch;
  if (j.contains("architectures") && !j["architectures"].is_null()) {
    const json& a = j["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string())
      throw Error(origin + ": field 'architectures' must be a non-empty list of strings");
    arch = a[0].get<std::string>();
  } else if (j.contains("model_type")) {
    std::string mt = json_field<std::string>(j, "model_type", origin);
    arch = mt == "qwen2"         ? "Qwen2ForCausalLM"
           : mt == "qwen3"       ? "Qwen3ForCausalLM"
           : mt == "llama"       ? "LlamaForCausalLM"
           : mt == "deepseek_v2" ? "DeepseekV2ForCausalLM"
           : mt == "deepseek_v3" ? "DeepseekV3ForCausalLM"
                                 : mt;
  } else {
    arch = "LlamaForCausalLM";
  }
  const std::string kSeqCls = "ForSequenceClassification";
  if (arch.size() > kSeqCls.size() && arch.compare(arch.size() - kSeqCls.size(), kSeqCls.size(), kSeqCls) == 0) {
    c.sequence_classification = true;
    arch = arch.substr(0, arch.size() - kSeqCls.size()) + "ForCausalLM";
  }
  if (arch == "LlamaForCausalLM") c.architecture = Architecture::kLlama;
  else if (arch == "Qwen2ForCausalLM") c.architecture = Architecture::kQwen2;
  else if (arch == "Qwen3ForCausalLM") c.architecture = Architecture::kQwen3;
  else if (arch == "DeepseekV2ForCausalLM") c.architecture = Architecture::kDeepseekV2;
  else if (arch == "DeepseekV3ForCausalLM") c.architecture = Architecture::kDeepseekV3;
  else throw Error(origin + ": architecture '" + arch + "' is not supported (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
                   "Qwen3ForCausalLM, DeepseekV2ForCausalLM, DeepseekV3ForCausalLM, and their ForSequenceClassification reward models)");
  if (c.sequence_classification) {  // HF derives num_labels from id2label
    int64_t labels = 1;
    if (j.contains("num_labels")) labels = json_field<int64_t>(j, "num_labels", origin);
    else if (j.contains("id2label") && j["id2label"].is_object()) labels = static_cast<int64_t>(j["id2label"].size());
    if (labels != 1)
      throw Error(origin + ": a reward model has num_labels 1 (one scalar score), this config has " + std::to_string(labels));
  }

  c.vocab_size = json_field<int64_t>(j, "vocab_size", origin);
  c.hidden_size = json_field<int64_t>(j, "hidden_size", origin);
  c.intermediate_size = json_field<int64_t>(j, "intermediate_size", origin);
  c.num_hidden_layers = json_field<int64_t>(j, "num_hidden_layers", origin);
  c.num_attention_heads = json_field<int64_t>(j, "num_attention_heads", origin);
  c.num_key_value_heads = c.num_attention_heads;
  json_optional_field(j, "num_key_value_heads", origin, c.num_key_value_heads);
  json_optional_field(j, "head_dim", origin, c.head_dim);
  if (c.head_dim == 0 && c.num_attention_heads > 0) {
    if (c.hidden_size % c.num_attention_heads != 0)
      throw Error(origin + ": num_attention_heads (" + std::to_string(c.num_attention_heads) +
                  ") does not divide hidden_size (" + std::to_string(c.hidden_size) + ") and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  json_optional_field(j, "max_position_embeddings", origin, c.max_position_embeddings);
  json_optional_field(j, "rms_norm_eps", origin, c.rms_norm_eps);
  json_optional_field(j, "tie_word_embeddings", origin, c.tie_word_embeddings);
  json_optional_field(j, "attention_bias", origin, c.attention_bias);
  json_optional_field(j, "mlp_bias", origin, c.mlp_bias);
  json_optional_field(j, "initializer_range", origin, c.initializer_range);
  c.bos_token_ids = read_token_ids(j, "bos_token_id", origin);
  c.eos_token_ids = read_token_ids(j, "eos_token_id", origin);
  if (j.contains("pad_token_id") && !j["pad_token_id"].is_null()) {
    auto pad = read_token_ids(j, "pad_token_id", origin);
    if (pad.size() != 1) throw Error(origin + ": field 'pad_token_id' must be one integer");
    c.pad_token_id = pad[0];
  }
  if (j.contains("torch_dtype") && !j["torch_dtype"].is_null()) c.torch_dtype = json_field<std::string>(j, "torch_dtype", origin);
  else if (j.contains("dtype") && !j["dtype"].is_null()) c.torch_dtype = json_field<std::string>(j, "dtype", origin);
  if (j.contains("hidden_act")) {
    std::string act = json_field<std::string>(j, "hidden_act", origin);
    if (act != "silu") throw Error(origin + ": hidden_act '" + act + "' is not supported (only silu, i.e. SwiGLU)");
  }
  // Rope: transformers 5 nests rope_theta inside rope_parameters; 4.x has rope_theta + rope_scaling.
  json_optional_field(j, "rope_theta", origin, c.rope_theta);
  if (j.contains("rope_parameters") && !j["rope_parameters"].is_null()) {
    const json& rp = j["rope_parameters"];
    if (rp.is_object() && rp.contains("rope_theta")) c.rope_theta = json_field<double>(rp, "rope_theta", origin + ": rope_parameters");
    c.rope_scaling = read_rope_scaling(rp, origin);
  } else if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    c.rope_scaling = read_rope_scaling(j["rope_scaling"], origin);
  }
  if (j.value("use_sliding_window", false))
    throw Error(origin + ": use_sliding_window=true is not supported");
  if (c.is_deepseek()) read_deepseek_fields(j, origin, c);
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!interpreted_keys().count(it.key()) && !(c.is_deepseek() && deepseek_keys().count(it.key())))
      c.extra[it.key()] = it.value();
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(origin + ": " + e.what());
  }
  return c;
}

void ModelConfig::validate() const {
  auto positive = [](int64_t v, const char* name) {
    if (v <= 0) throw Error(std::string("field '") + name + "' must be positive, got " + std::to_string(v));
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  positive(max_position_embeddings, "max_position_embeddings");
  if (num_attention_heads % num_key_value_heads != 0)
    throw Error("num_key_value_heads (" + std::to_string(num_key_value_heads) +
                ") does not divide num_attention_heads (" + std::to_string(num_attention_heads) + ")");
  if (head_dim % 2 != 0) throw Error("head_dim must be even for RoPE, got " + std::to_string(head_dim));
  if (!(rope_theta > 0)) throw Error("field 'rope_theta' must be positive");
  if (!(rms_norm_eps > 0)) throw Error("field 'rms_norm_eps' must be positive");
  if (!(initializer_range >= 0)) throw Error("field 'initializer_range' must be >= 0");
  static const std::set<std::string> dtypes = {"float32", "bfloat16", "float16"};
  if (!dtypes.count(torch_dtype)) throw Error("field 'torch_dtype' must be float32, bfloat16 or float16, got '" + torch_dtype + "'");
  for (int64_t id : bos_token_ids)
    if (id < 0 || id >= vocab_size) throw Error("bos_token_id " + std::to_string(id) + " is outside the vocabulary");
  for (int64_t id : eos_token_ids)
    if (id < 0 || id >= vocab_size) throw Error("eos_token_id " + std::to_string(id) + " is outside the vocabulary");
  if (is_deepseek()) validate_deepseek(*this);
}

int64_t ModelConfig::parameter_count() const {
  const int64_t h = hidden_size;
  int64_t layers = 0;
  for (int64_t i = 0; i < num_hidden_layers; ++i)
    layers += attention_parameter_count(*this) + mlp_parameter_count(*this, i) + 2 * h;  // + two RMSNorm weights
  const int64_t embed = vocab_size * h;
  const int64_t head = sequence_classification ? h : (tie_word_embeddings ? 0 : embed);  // score [1, h] or lm_head
  return embed + layers + h + head;
}

int64_t ModelConfig::activated_parameter_count() const {
  int64_t inactive = 0;
  for (int64_t i = 0; i < num_hidden_layers; ++i)
    inactive += mlp_parameter_count(*this, i) - activated_mlp_parameter_count(*this, i);
  return parameter_count() - inactive;
}

int64_t ModelConfig::mtp_parameter_count() const {
  // Each module: enorm, hnorm, eh_proj [H, 2H], a decoder layer (index num_hidden_layers + k) and
  // the norm of its shared head.
  const int64_t h = hidden_size;
  int64_t n = 0;
  for (int64_t k = 0; k < mtp_layers; ++k)
    n += 2 * h + 2 * h * h + attention_parameter_count(*this) + mlp_parameter_count(*this, num_hidden_layers + k) +
         2 * h + h;
  return n;
}

int64_t ModelConfig::kv_cache_values_per_token() const {
  const int64_t per_layer = is_deepseek() ? mla.kv_lora_rank + mla.qk_rope_head_dim : 2 * kv_dim();
  return num_hidden_layers * per_layer;
}

double ModelConfig::training_flops_per_token(int64_t seq) const {
  const double matmul_params =
      static_cast<double>(activated_parameter_count() - (tie_word_embeddings ? 0 : vocab_size * hidden_size));
  const double qk = is_deepseek() ? mla.qk_head_dim() : head_dim, v = is_deepseek() ? mla.v_head_dim : head_dim;
  return 6 * matmul_params + 6.0 * num_hidden_layers * num_attention_heads * (qk + v) * seq;
}

json ModelConfig::to_json() const {
  json j = extra;
  j["architectures"] = {architecture_name()};
  j["model_type"] = model_type();
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rope_theta"] = rope_theta;
  j["rope_scaling"] = rope_scaling_to_json(rope_scaling);
  j["rms_norm_eps"] = rms_norm_eps;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["attention_bias"] = attention_bias;
  if (architecture == Architecture::kLlama || architecture == Architecture::kDeepseekV2) j["mlp_bias"] = mlp_bias;
  if (is_deepseek()) write_deepseek_fields(*this, j);
  j["initializer_range"] = initializer_range;
  j["hidden_act"] = "silu";
  j["bos_token_id"] = token_ids_to_json(bos_token_ids);
  j["eos_token_id"] = token_ids_to_json(eos_token_ids);
  if (pad_token_id) j["pad_token_id"] = *pad_token_id;
  j["torch_dtype"] = torch_dtype;
  if (sequence_classification) {  // what transformers reads back as num_labels = 1
    j["id2label"] = {{"0", "LABEL_0"}};
    j["label2id"] = {{"LABEL_0", 0}};
    // HF finds each row's last token as the last one that is not pad_token_id, and needs it set.
    if (!pad_token_id && !eos_token_ids.empty()) j["pad_token_id"] = eos_token_ids[0];
  }
  return j;
}

ModelConfig ModelConfig::load(const std::string& path) { return from_json(read_json_file(path), path); }

void ModelConfig::save(const std::string& path) const { write_text_file(path, to_json().dump(2) + "\n"); }

std::string human_count(int64_t n) {
  const double v = static_cast<double>(n);
  char buf[32];
  if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.2fK", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

}  // namespace r1

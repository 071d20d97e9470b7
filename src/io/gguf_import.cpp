#include "io/gguf_import.h"

#include <cstdio>
#include <map>
#include <optional>

#include "io/gguf_tokenizer.h"
#include "io/model_dir.h"
#include "model/transformer.h"
#include "util/error.h"
#include "util/strings.h"

namespace r1 {
namespace {

const gguf::Value& required(const gguf::File& f, const std::string& key) {
  const gguf::Value* v = f.find(key);
  if (!v) throw Error(f.path() + ": metadata '" + key + "' is missing");
  return *v;
}

int64_t int_value(const gguf::File& f, const std::string& key, std::optional<int64_t> fallback = std::nullopt) {
  const gguf::Value* v = f.find(key);
  if (!v && fallback) return *fallback;
  const auto& value = required(f, key).value;
  if (!value.is_number_integer() || value.get<int64_t>() < 0)
    throw Error(f.path() + ": metadata '" + key + "' must be a non-negative integer, got " + value.dump());
  return value.get<int64_t>();
}

double float_value(const gguf::File& f, const std::string& key, std::optional<double> fallback = std::nullopt) {
  const gguf::Value* v = f.find(key);
  if (!v && fallback) return *fallback;
  const auto& value = required(f, key).value;
  if (!value.is_number()) throw Error(f.path() + ": metadata '" + key + "' must be a number, got " + value.dump());
  return value.get<double>();
}

// llama.cpp's tensor names of a llama/qwen2/qwen3 model and their Hugging Face names (reference/gguf.md §3).
const std::vector<std::pair<std::string, std::string>>& top_level_names() {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"}};
  return names;
}

const std::vector<std::pair<std::string, std::string>>& layer_names() {  // after "blk.N." / "model.layers.N."
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"attn_norm.weight", "input_layernorm.weight"},  {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},    {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},    {"attn_output.weight", "self_attn.o_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},        {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},        {"attn_output.bias", "self_attn.o_proj.bias"},
      {"attn_q_norm.weight", "self_attn.q_norm.weight"}, {"attn_k_norm.weight", "self_attn.k_norm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},     {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
      // deepseek2 (reference/gguf.md §7): latent attention, the router and the shared experts.
      {"attn_q_a.weight", "self_attn.q_a_proj.weight"}, {"attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"},
      {"attn_q_b.weight", "self_attn.q_b_proj.weight"}, {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
      {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"}, {"attn_kv_b.weight", "self_attn.kv_b_proj.weight"},
      {"ffn_gate_inp.weight", "mlp.gate.weight"}, {"exp_probs_b.bias", "mlp.gate.e_score_correction_bias"},
      {"ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight"},
      {"ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight"},
      {"ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight"}};
  return names;
}

// deepseek2 tensors that fill part of one model parameter: the key and value halves of each head's
// rows of kv_b_proj (split by llama.cpp's converter), and the routed experts stacked per weight into
// r1's fused experts (model/moe.h).
const std::vector<std::pair<std::string, std::string>>& layer_part_names() {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"attn_k_b.weight", "self_attn.kv_b_proj.weight"}, {"attn_v_b.weight", "self_attn.kv_b_proj.weight"},
      {"ffn_gate_exps.weight", "mlp.experts.gate_up_proj"}, {"ffn_up_exps.weight", "mlp.experts.gate_up_proj"},
      {"ffn_down_exps.weight", "mlp.experts.down_proj"}};
  return names;
}

// `name` with `from_prefix` + "N." + one of the table's `from` names replaced by its other side.
std::string renamed(const std::string& name, bool to_hf) {
  for (const auto& [g, h] : top_level_names())
    if (name == (to_hf ? g : h)) return to_hf ? h : g;
  const std::string from_prefix = to_hf ? "blk." : "model.layers.", to_prefix = to_hf ? "model.layers." : "blk.";
  if (name.rfind(from_prefix, 0) != 0) return "";
  const size_t dot = name.find('.', from_prefix.size());
  if (dot == std::string::npos) return "";
  const std::string layer = name.substr(from_prefix.size(), dot - from_prefix.size()), rest = name.substr(dot + 1);
  if (layer.empty() || layer.find_first_not_of("0123456789") != std::string::npos) return "";
  for (const auto& [g, h] : layer_names())
    if (rest == (to_hf ? g : h)) return to_prefix + layer + "." + (to_hf ? h : g);
  for (const auto& [g, h] : layer_part_names())
    if (to_hf && rest == g) return to_prefix + layer + "." + h;
  return "";
}

// The view of `param` that GGUF tensor `name` fills and that tensor's values (torch order) in the
// view's shape: the whole parameter for most; for deepseek2's attn_k_b [heads, latent, nope] and
// attn_v_b [heads, v, latent] their rows of each head's [nope + v] rows of kv_b_proj; for the
// gate and up experts [E, I, H] their half of gate_up_proj [E, 2I, H].
std::pair<torch::Tensor, torch::Tensor> destination(torch::Tensor& param, const std::string& name, torch::Tensor value,
                                                    const ModelConfig& c) {
  auto ends = [&](const char* suffix) { return ends_with(name, suffix); };
  const LatentAttentionConfig& m = c.mla;
  if (ends(".attn_k_b.weight") || ends(".attn_v_b.weight")) {
    const int64_t heads = c.num_attention_heads, nope = m.qk_nope_head_dim, v = m.v_head_dim;
    auto per_head = param.view({heads, nope + v, m.kv_lora_rank});
    if (ends(".attn_k_b.weight")) return {per_head.narrow(1, 0, nope), value.dim() == 3 ? value.transpose(1, 2) : value};
    return {per_head.narrow(1, nope, v), value};
  }
  if (ends(".ffn_gate_exps.weight") || ends(".ffn_up_exps.weight")) {
    const int64_t half = param.size(1) / 2;
    return {param.narrow(1, ends(".ffn_up_exps.weight") ? half : 0, half), value};
  }
  return {param, value};
}

std::string hf_name(const std::string& gguf_name) { return renamed(gguf_name, true); }

}  // namespace

std::string gguf_tensor_name(const std::string& hf) { return renamed(hf, false); }

// llama.cpp's converter interleaves the rotate-half halves of each q/k head (row h*hd + 2i + t of
// the file is row h*hd + t*hd/2 + i of the model); transformers undoes it for arch llama only.
torch::Tensor llama_cpp_qk_rows(const torch::Tensor& w, int64_t heads, bool to_file) {
  const auto sizes = w.sizes().vec();
  std::vector<int64_t> model_order = {heads, 2, w.size(0) / heads / 2}, file_order = {heads, w.size(0) / heads / 2, 2};
  model_order.insert(model_order.end(), sizes.begin() + 1, sizes.end());
  file_order.insert(file_order.end(), sizes.begin() + 1, sizes.end());
  return w.reshape(to_file ? model_order : file_order).transpose(1, 2).reshape(sizes);
}

namespace {

bool bool_value(const gguf::File& f, const std::string& key, bool fallback) {
  const gguf::Value* v = f.find(key);
  if (!v) return fallback;
  if (!v->value.is_boolean()) throw Error(f.path() + ": metadata '" + key + "' must be a bool, got " + v->value.dump());
  return v->value.get<bool>();
}

// deepseek2's latent attention, experts and YaRN (reference/gguf.md §7). llama.cpp's gating
// function 2 (sigmoid) is DeepSeek-V3's routing, 1 (softmax, or absent) V2's.
void read_deepseek2(const gguf::File& f, const std::string& a, ModelConfig& c) {
  LatentAttentionConfig& m = c.mla;
  MoeConfig& e = c.moe;
  const int64_t gating = int_value(f, a + "expert_gating_func", 1);
  if (gating != 1 && gating != 2)
    throw Error(f.path() + ": metadata '" + a + "expert_gating_func' is " + std::to_string(gating) +
                " (1 softmax: DeepSeek-V2, 2 sigmoid: DeepSeek-V3)");
  c.architecture = gating == 2 ? Architecture::kDeepseekV3 : Architecture::kDeepseekV2;
  m.q_lora_rank = int_value(f, a + "attention.q_lora_rank", 0);
  m.kv_lora_rank = int_value(f, a + "attention.kv_lora_rank");
  m.qk_rope_head_dim = int_value(f, a + "rope.dimension_count");
  // Files written for llama.cpp's MLA kernels give the per-head sizes under *_mla (key_length is
  // then kv_lora_rank + rope); older ones under key_length / value_length.
  const std::string mla = f.find(a + "attention.key_length_mla") ? "_mla" : "";
  const int64_t key = int_value(f, a + "attention.key_length" + mla);
  m.v_head_dim = int_value(f, a + "attention.value_length" + mla);
  if (key <= m.qk_rope_head_dim) throw Error(f.path() + ": the key length does not exceed rope.dimension_count");
  m.qk_nope_head_dim = key - m.qk_rope_head_dim;
  m.rope_interleave = true;  // llama.cpp's NORM rope: adjacent pairs
  c.head_dim = m.qk_rope_head_dim;
  c.num_key_value_heads = c.num_attention_heads;
  e.n_routed_experts = int_value(f, a + "expert_count", 0);
  e.num_experts_per_tok = int_value(f, a + "expert_used_count", 0);
  e.n_shared_experts = int_value(f, a + "expert_shared_count", 0);
  e.moe_intermediate_size = int_value(f, a + "expert_feed_forward_length", 0);
  e.first_k_dense_replace = int_value(f, a + "leading_dense_block_count", 0);
  e.n_group = int_value(f, a + "expert_group_count", 1);
  e.topk_group = int_value(f, a + "expert_group_used_count", 1);
  e.routed_scaling_factor = float_value(f, a + "expert_weights_scale", 1.0);
  e.norm_topk_prob = bool_value(f, a + "expert_weights_norm", false);
  e.topk_method = gating == 2 ? "noaux_tc" : e.n_group > 1 ? "group_limited_greedy" : "greedy";
  if (const gguf::Value* s = f.find(a + "rope.scaling.type"); s && s->value != "none") {
    if (s->value != "yarn") throw Error(f.path() + ": rope scaling " + s->value.dump() + " (deepseek2 uses yarn)");
    RopeScaling& r = c.rope_scaling;
    r.type = "yarn";
    r.factor = float_value(f, a + "rope.scaling.factor");
    r.original_max_position_embeddings = int_value(f, a + "rope.scaling.original_context_length");
    // The converter writes 0.1 x mscale_all_dim; DeepSeek's configs set mscale equal to it.
    const double mscale = float_value(f, a + "rope.scaling.yarn_log_multiplier", 0.0) / 0.1;
    r.mscale = r.mscale_all_dim = mscale;
    r.beta_fast = 32.0;  // llama.cpp's and transformers' defaults: the converter writes neither
    r.beta_slow = 1.0;
  }
}

}  // namespace

ModelConfig config_from_gguf(const gguf::File& f) {
  const auto& arch_value = required(f, "general.architecture").value;
  const std::string arch = arch_value.is_string() ? arch_value.get<std::string>() : "";
  ModelConfig c;
  if (arch == "llama") c.architecture = Architecture::kLlama;
  else if (arch == "qwen2") c.architecture = Architecture::kQwen2;
  else if (arch == "qwen3") c.architecture = Architecture::kQwen3;
  else if (arch != "deepseek2")
    throw Error(f.path() + ": architecture '" + arch + "' (r1 imports llama, qwen2, qwen3 and deepseek2)");
  const std::string a = arch + ".";
  c.max_position_embeddings = int_value(f, a + "context_length");
  c.hidden_size = int_value(f, a + "embedding_length");
  c.num_hidden_layers = int_value(f, a + "block_count");
  if (const gguf::Value* v = f.find(a + "feed_forward_length"); v && v->type == gguf::ValueType::kArray)
    throw Error(f.path() + ": '" + a + "feed_forward_length' differs per layer, which r1 does not support");
  c.intermediate_size = int_value(f, a + "feed_forward_length");
  c.num_attention_heads = int_value(f, a + "attention.head_count");
  c.num_key_value_heads = int_value(f, a + "attention.head_count_kv", c.num_attention_heads);
  c.rms_norm_eps = float_value(f, a + "attention.layer_norm_rms_epsilon");
  c.rope_theta = float_value(f, a + "rope.freq_base", 10000.0);
  if (arch == "deepseek2") {
    read_deepseek2(f, a, c);
  } else {
    c.head_dim = int_value(f, a + "attention.key_length",
                           c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
    if (int_value(f, a + "rope.dimension_count", c.head_dim) != c.head_dim)
      throw Error(f.path() + ": rope.dimension_count differs from the head size (partial rotary is not supported)");
    if (const gguf::Value* s = f.find(a + "rope.scaling.type"); s && s->value != "none")
      throw Error(f.path() + ": rope scaling " + s->value.dump() + " is not imported (transformers ignores it too)");
  }
  const gguf::Value* tokens = f.find("tokenizer.ggml.tokens");
  c.vocab_size = int_value(f, a + "vocab_size", tokens ? static_cast<int64_t>(tokens->value.size()) : -1);
  c.tie_word_embeddings = f.tensor("output.weight") == nullptr;
  // Qwen2's q/k/v biases are part of the architecture; Llama's and Qwen3's are optional.
  c.attention_bias = (c.architecture == Architecture::kLlama || c.architecture == Architecture::kQwen3) &&
                     f.tensor("blk.0.attn_q.bias") != nullptr;
  if (f.find("tokenizer.ggml.bos_token_id")) c.bos_token_ids = {int_value(f, "tokenizer.ggml.bos_token_id")};
  if (f.find("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {int_value(f, "tokenizer.ggml.eos_token_id")};
  if (f.find("tokenizer.ggml.padding_token_id")) c.pad_token_id = int_value(f, "tokenizer.ggml.padding_token_id");
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(f.path() + ": the metadata describes an impossible model: " + e.what());
  }
  return c;
}

ImportResult import_gguf_weights(const gguf::File& f, const std::string& out, torch::ScalarType dtype) {
  ImportResult result;
  result.config = config_from_gguf(f);
  ModelConfig& c = result.config;
  Transformer model(c, torch::TensorOptions().dtype(dtype));
  auto params = model->named_parameters();
  std::map<std::string, int64_t> written;  // elements of each parameter filled so far
  torch::NoGradGuard no_grad;
  for (const auto& t : f.tensors()) {
    if (t.name == "rope_freqs.weight") {
      std::fprintf(stderr, "%s: ignoring rope_freqs.weight (Llama 3 rope factors; transformers ignores them too)\n",
                   f.path().c_str());
      continue;
    }
    const std::string name = hf_name(t.name);
    torch::Tensor* param = name.empty() ? nullptr : params.find(name);
    if (!param) throw Error(f.path() + ": tensor '" + t.name + "' has no place in a " + c.model_type() + " model");
    auto value = torch::empty(t.torch_shape(), torch::kFloat32);
    f.dequantize(t, value.data_ptr<float>());
    const bool q = t.name.find(".attn_q.") != std::string::npos, k = t.name.find(".attn_k.") != std::string::npos;
    if (c.architecture == Architecture::kLlama && (q || k))
      value = llama_cpp_qk_rows(value, k ? c.num_key_value_heads : c.num_attention_heads, /*to_file=*/false);
    auto [view, values] = destination(*param, t.name, value, c);
    if (values.sizes() != view.sizes())
      throw Error(f.path() + ": tensor '" + t.name + "' has shape " + c10::str(c10::IntArrayRef(t.torch_shape())) +
                  ", the metadata's config needs " + c10::str(view.sizes()));
    if ((written[name] += view.numel()) > param->numel())
      throw Error(f.path() + ": tensor '" + t.name + "' fills part of '" + name + "' a second time");
    view.copy_(values);
    ++result.tensors;
  }
  for (const auto& p : params)
    if (written[p.key()] != p.value().numel())
      throw Error(f.path() + ": no tensor for '" + p.key() + "' (the file lacks part of the model)");
  c.torch_dtype = torch_dtype_name(dtype);
  SaveOptions save;
  save.dtype = dtype;
  save.write_extra = [&f](const std::string& dir) { write_gguf_tokenizer(f, dir); };  // published together
  save_model_dir(model, out, save);
  return result;
}

}  // namespace r1

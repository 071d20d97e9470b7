#include "io/gguf_export.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "io/gguf.h"
#include "io/gguf_import.h"
#include "io/model_dir.h"
#include "model/transformer.h"
#include "tokenizer/patterns.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

using nlohmann::json;
using gguf::TensorType;
using gguf::ValueType;

constexpr uint64_t kAlignment = 32;

// GGUF v3 bytes, little-endian, in the format's order: metadata, tensor infos, data.
class GgufWriter {
 public:
  void u32(const std::string& key, uint32_t v) { scalar(key, ValueType::kU32, v); }
  void f32(const std::string& key, float v) { scalar(key, ValueType::kF32, v); }
  void boolean(const std::string& key, bool v) { scalar(key, ValueType::kBool, static_cast<uint8_t>(v)); }
  void string(const std::string& key, const std::string& v) {
    header(key, ValueType::kString);
    str(kv_, v);
  }
  void strings(const std::string& key, const std::vector<std::string>& v) {
    array_header(key, ValueType::kString, v.size());
    for (const auto& s : v) str(kv_, s);
  }
  void i32s(const std::string& key, const std::vector<int32_t>& v) {
    array_header(key, ValueType::kI32, v.size());
    for (int32_t x : v) put(kv_, x);
  }
  // A tensor of torch shape `shape` whose bytes (in `type`) are `data`.
  void tensor(const std::string& name, const std::vector<int64_t>& shape, TensorType type, std::string data) {
    tensors_.push_back({name, {shape.rbegin(), shape.rend()}, type, std::move(data)});
  }
  uint64_t write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    TensorType type;
    std::string data;
  };
  template <typename T>
  static void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  static void str(std::string& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out += s;
  }
  void header(const std::string& key, ValueType type) {
    str(kv_, key);
    put(kv_, static_cast<uint32_t>(type));
    ++kv_count_;
  }
  template <typename T>
  void scalar(const std::string& key, ValueType type, T v) {
    header(key, type);
    put(kv_, v);
  }
  void array_header(const std::string& key, ValueType element, size_t n) {
    header(key, ValueType::kArray);
    put(kv_, static_cast<uint32_t>(element));
    put<uint64_t>(kv_, n);
  }
  std::string kv_;
  uint64_t kv_count_ = 0;
  std::vector<Tensor> tensors_;
};

void pad(std::string& out) { out.append((kAlignment - out.size() % kAlignment) % kAlignment, '\0'); }

uint64_t GgufWriter::write(const std::string& path) const {
  std::string head;
  put<uint32_t>(head, 0x46554747);  // "GGUF"
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kv_count_);
  head += kv_;
  uint64_t offset = 0;  // each tensor at the aligned end of the one before, as llama.cpp requires
  for (const auto& t : tensors_) {
    str(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (int64_t n : t.ne) put<uint64_t>(head, static_cast<uint64_t>(n));
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset += t.data.size() + (kAlignment - t.data.size() % kAlignment) % kAlignment;
  }
  pad(head);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(path + ": cannot write");
    f.write(head.data(), static_cast<std::streamsize>(head.size()));
    for (const auto& t : tensors_) {
      std::string data = t.data;
      pad(data);
      f.write(data.data(), static_cast<std::streamsize>(data.size()));
    }
    if (!f.flush()) throw Error(path + ": writing failed (disk full?)");
  }
  fs::rename(tmp, path);
  return head.size() + offset;
}

std::string bytes_of(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

// gguf-py's Q8_0 (bit-exact to ggml's reference quantiser): per 32 values d = max|x| / 127, the
// values x * (1/d) rounded half away from zero, d stored as binary16 (round to nearest even).
std::string q8_0(const torch::Tensor& t) {
  const auto x = t.to(torch::kFloat32).contiguous();
  const float* p = x.data_ptr<float>();
  const int64_t blocks = x.numel() / 32;
  std::string out(static_cast<size_t>(blocks) * 34, '\0');
  for (int64_t b = 0; b < blocks; ++b) {
    const float* v = p + b * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    char* block = out.data() + b * 34;
    const c10::Half half(d);
    std::memcpy(block, &half.x, 2);
    for (int j = 0; j < 32; ++j) block[2 + j] = static_cast<char>(static_cast<int8_t>(std::round(v[j] * id)));
  }
  return out;
}

// The tensor in the export type: vectors (norms, biases) stay F32, as llama.cpp's converter keeps
// them; Q8_0 needs rows of whole 32-value blocks (F16 otherwise, as the converter falls back).
std::pair<TensorType, std::string> encoded(const torch::Tensor& t, const std::string& type) {
  if (t.dim() < 2 || type == "f32") return {TensorType::kF32, bytes_of(t.to(torch::kFloat32))};
  if (type == "f16" || (type == "q8_0" && t.size(-1) % 32 != 0)) return {TensorType::kF16, bytes_of(t.to(torch::kHalf))};
  if (type == "bf16") return {TensorType::kBF16, bytes_of(t.to(torch::kBFloat16))};
  return {TensorType::kQ8_0, q8_0(t)};
}

uint32_t file_type(const std::string& type) {
  if (type == "f32") return 0;
  if (type == "f16") return 1;
  if (type == "q8_0") return 7;
  if (type == "bf16") return 32;
  throw Error("--type must be f32, f16, bf16 or q8_0, got '" + type + "'");
}

// The Split regexes (and other steps' types) of a pre-tokenizer: what tells the patterns apart.
json split_signature(const json& pre) {
  json out = json::array();
  const json steps = pre.value("type", "") == "Sequence" ? pre.value("pretokenizers", json::array()) : json::array({pre});
  for (const auto& s : steps) {
    const std::string type = s.value("type", "");
    if (type == "Split") out.push_back(s["pattern"].value("Regex", s["pattern"].value("String", "")));
    else if (type == "ByteLevel" && s.value("use_regex", true)) out.push_back("<gpt-2 regex>");
    else if (type != "ByteLevel") out.push_back("<" + type + ">");
  }
  return out;
}

// llama.cpp's tokenizer.ggml.pre name for the tokenizer's split patterns.
std::string llama_cpp_pre(const json& pre, const std::string& origin) {
  const json mine = split_signature(pre);
  if (mine == json::array({"<gpt-2 regex>"})) return "gpt-2";
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"qwen2", "qwen2"}, {"llama3", "llama-bpe"}, {"deepseek-v3", "deepseek-v3"}, {"deepseek-llm", "deepseek-llm"}};
  for (const auto& [r1_name, cpp_name] : names)
    if (split_signature(pattern_pretokenizer(r1_name)) == mine) return cpp_name;
  throw Error(origin + ": its pre-tokenizer is none that llama.cpp knows by name (gpt2, qwen2, llama3, deepseek-v3, "
              "deepseek-llm patterns)");
}

void add_tokenizer(GgufWriter& w, const Tokenizer& tok, const ModelConfig& c, const std::string& origin) {
  const json j = tok.to_json();
  std::vector<std::string> tokens(static_cast<size_t>(c.vocab_size));
  std::vector<int32_t> types(tokens.size(), 5);  // UNUSED until filled
  for (const auto& [text, id] : j["model"]["vocab"].items())
    if (id.get<int64_t>() < c.vocab_size) {
      tokens[id.get<size_t>()] = text;
      types[id.get<size_t>()] = 1;  // NORMAL
    }
  for (const auto& a : tok.added_tokens())
    if (a.id < c.vocab_size) {
      tokens[static_cast<size_t>(a.id)] = a.content;
      types[static_cast<size_t>(a.id)] = a.special ? 3 : 4;  // CONTROL, USER_DEFINED
    }
  for (size_t id = 0; id < tokens.size(); ++id)
    if (types[id] == 5) tokens[id] = "[PAD" + std::to_string(id) + "]";  // ids past the tokenizer's
  std::vector<std::string> merges;
  for (const auto& m : j["model"]["merges"])
    merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  w.string("tokenizer.ggml.model", "gpt2");
  w.string("tokenizer.ggml.pre", llama_cpp_pre(j["pre_tokenizer"], origin));
  w.strings("tokenizer.ggml.tokens", tokens);
  w.i32s("tokenizer.ggml.token_type", types);
  w.strings("tokenizer.ggml.merges", merges);
  if (!c.bos_token_ids.empty()) w.u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(c.bos_token_ids[0]));
  if (!c.eos_token_ids.empty()) w.u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(c.eos_token_ids[0]));
  if (c.pad_token_id) w.u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(*c.pad_token_id));
  w.boolean("tokenizer.ggml.add_bos_token", tok.adds_bos());
  if (!tok.chat_template().empty()) w.string("tokenizer.chat_template", tok.chat_template());
}

}  // namespace

GgufExportResult export_gguf(const std::string& model_dir, const std::string& type, const std::string& out) {
  const uint32_t ftype = file_type(type);
  Transformer model = load_model_dir(model_dir);
  const ModelConfig& c = model->config();
  if (c.is_deepseek() || c.sequence_classification)
    throw Error(model_dir + ": " + c.architecture_name() + " is not exported to GGUF (Llama, Qwen2 and Qwen3 are)");
  if (!c.rope_scaling.type.empty())
    throw Error(model_dir + ": rope scaling '" + c.rope_scaling.type + "' is not exported to GGUF");
  const std::string tokenizer_path = (fs::path(model_dir) / "tokenizer.json").string();
  if (!fs::exists(tokenizer_path)) throw Error(model_dir + ": no tokenizer.json (GGUF files carry their tokenizer)");
  const Tokenizer tok = Tokenizer::load(tokenizer_path);

  GgufWriter w;
  const std::string a = c.model_type();
  w.string("general.architecture", a);
  w.string("general.name", fs::path(model_dir).lexically_normal().filename().string());
  w.u32("general.file_type", ftype);
  w.u32("general.quantization_version", 2);
  const std::pair<const char*, int64_t> sizes[] = {
      {"vocab_size", c.vocab_size}, {"context_length", c.max_position_embeddings},
      {"embedding_length", c.hidden_size}, {"block_count", c.num_hidden_layers},
      {"feed_forward_length", c.intermediate_size}, {"attention.head_count", c.num_attention_heads},
      {"attention.head_count_kv", c.num_key_value_heads}, {"attention.key_length", c.head_dim},
      {"attention.value_length", c.head_dim}, {"rope.dimension_count", c.head_dim}};
  for (const auto& [key, value] : sizes) w.u32(a + "." + key, static_cast<uint32_t>(value));
  w.f32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.f32(a + ".rope.freq_base", static_cast<float>(c.rope_theta));
  add_tokenizer(w, tok, c, tokenizer_path);

  GgufExportResult result;
  torch::NoGradGuard no_grad;
  for (const auto& p : model->named_parameters()) {
    const std::string name = gguf_tensor_name(p.key());
    if (name.empty()) throw Error(model_dir + ": tensor '" + p.key() + "' has no GGUF name");
    torch::Tensor value = p.value().to(torch::kFloat32);
    const bool q = p.key().find(".q_proj.") != std::string::npos, k = p.key().find(".k_proj.") != std::string::npos;
    if (c.architecture == Architecture::kLlama && (q || k))
      value = llama_cpp_qk_rows(value, k ? c.num_key_value_heads : c.num_attention_heads, /*to_file=*/true);
    auto [tensor_type, data] = encoded(value, type);
    w.tensor(name, value.sizes().vec(), tensor_type, std::move(data));
    ++result.tensors;
  }
  result.bytes = w.write(out);
  return result;
}

}  // namespace r1

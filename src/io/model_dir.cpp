#include "io/model_dir.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "io/lora_adapter.h"
#include "util/error.h"
#include "util/memory.h"
#include "util/json_file.h"
#include "util/strings.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

const char* kIndexFile = "model.safetensors.index.json";
const char* kSingleFile = "model.safetensors";

// Tensors HF may store that carry no weights (older checkpoints saved RoPE buffers).
bool ignorable_tensor(const std::string& name) {
  return ends_with(name, ".inv_freq");
}

// Tensors of multi-token prediction modules (layers num_hidden_layers and up, as the released
// DeepSeek-V3 stores them) in a DeepSeek model built without them: skipped on load, as
// transformers does. (Elsewhere a layer too many is an error: the config does not match.)
// The decimal index (at most 6 digits) that starts at name[from] and ends at a '.', and where it ends.
std::optional<std::pair<int64_t, size_t>> index_at(const std::string& name, size_t from) {
  size_t end = from;
  while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
  if (end == from || end - from > 6 || end >= name.size() || name[end] != '.') return std::nullopt;
  return std::make_pair(std::stoll(name.substr(from, end - from)), end);
}

bool beyond_the_layers(const std::string& name, const ModelConfig& c) {
  const std::string prefix = "model.layers.";
  if (!c.is_deepseek() || name.rfind(prefix, 0) != 0) return false;
  const auto layer = index_at(name, prefix.size());
  return layer && layer->first >= c.num_hidden_layers;
}

// The fused routed experts of a MoE layer (model/moe.h: PREFIX.experts.gate_up_proj [E, 2I, H],
// PREFIX.experts.down_proj [E, H, I]) as the released checkpoints store them, one tensor per
// expert: PREFIX.experts.{j}.{gate,up,down}_proj.weight. transformers 5 stores the fused form.
struct ExpertPiece {
  std::string name;  // the per-expert tensor's name
  int64_t expert = 0;
  int64_t first_row = 0, rows = 0;  // its rows in the fused tensor's [expert] slice
};

std::vector<ExpertPiece> expert_pieces(const std::string& name, c10::IntArrayRef fused_shape) {
  const auto at = [&](const std::string& suffix) {
    return ends_with(name, suffix) ? std::optional<std::string>(name.substr(0, name.size() - suffix.size())) : std::nullopt;
  };
  const auto gate_up = at(".experts.gate_up_proj"), down = at(".experts.down_proj");
  if ((!gate_up && !down) || fused_shape.size() != 3) return {};
  std::vector<ExpertPiece> pieces;
  const int64_t rows = fused_shape[1];
  for (int64_t j = 0; j < fused_shape[0]; ++j) {
    const std::string expert = (gate_up ? *gate_up : *down) + ".experts." + std::to_string(j);
    if (gate_up) {
      pieces.push_back({expert + ".gate_proj.weight", j, 0, rows / 2});
      pieces.push_back({expert + ".up_proj.weight", j, rows / 2, rows / 2});
    } else {
      pieces.push_back({expert + ".down_proj.weight", j, 0, rows});
    }
  }
  return pieces;
}

// All safetensors files of a directory, opened: one file, or the shards listed by the index.
std::vector<std::unique_ptr<SafetensorsFile>> open_weight_files(const std::string& dir) {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  const fs::path index = fs::path(dir) / kIndexFile;
  if (fs::exists(index)) {
    auto j = read_json_file(index.string());
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index.string() + ": missing 'weight_map' object");
    std::set<std::string> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw Error(index.string() + ": weight_map entry '" + it.key() + "' is not a file name");
      const std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos || shard == "..")
        throw Error(index.string() + ": shard name '" + shard + "' must be a plain file name");
      shards.insert(shard);
    }
    for (const auto& s : shards) files.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / s).string()));
    return files;
  }
  const fs::path single = fs::path(dir) / kSingleFile;
  if (!fs::exists(single)) throw Error(dir + ": no " + kSingleFile + " or " + kIndexFile);
  files.push_back(std::make_unique<SafetensorsFile>(single.string()));
  return files;
}

std::string shape_str(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// ".NAME.tmp-PID" beside `target`: same file system, so the final rename is atomic.
fs::path sibling(const fs::path& target, const char* tag) {
  std::string name = ".";
  name += target.filename().string();
  name += tag;
  name += std::to_string(::getpid());
  return target.parent_path() / name;
}

void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

torch::ScalarType torch_dtype_from_name(const std::string& name) {
  if (name == "float32" || name == "fp32") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "fp16") return torch::kFloat16;
  throw Error("unknown dtype '" + name + "' (float32, bfloat16, float16)");
}

std::string torch_dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    default: throw Error(std::string("no config.json name for dtype ") + c10::toString(t));
  }
}

torch::ScalarType to_torch_dtype(DType d) {
  switch (d) {
    case DType::kBool: return torch::kBool;
    case DType::kU8: return torch::kUInt8;
    case DType::kI8: return torch::kInt8;
    case DType::kI16: return torch::kInt16;
    case DType::kI32: return torch::kInt32;
    case DType::kI64: return torch::kInt64;
    case DType::kF16: return torch::kFloat16;
    case DType::kBF16: return torch::kBFloat16;
    case DType::kF32: return torch::kFloat32;
    case DType::kF64: return torch::kFloat64;
    case DType::kF8E5M2: return torch::kFloat8_e5m2;
    case DType::kF8E4M3: return torch::kFloat8_e4m3fn;
    case DType::kU16: return torch::kUInt16;
    case DType::kU32: return torch::kUInt32;
    case DType::kU64: return torch::kUInt64;
  }
  throw Error("unsupported safetensors dtype");
}

DType to_safetensors_dtype(torch::ScalarType t) {
  for (int i = 0; i <= static_cast<int>(DType::kU64); ++i) {
    DType d = static_cast<DType>(i);
    if (to_torch_dtype(d) == t) return d;
  }
  throw Error(std::string("dtype ") + c10::toString(t) + " has no safetensors equivalent");
}

void copy_tokenizer_files(const std::string& tokenizer_json, const std::string& dir) {
  fs::copy_file(tokenizer_json, fs::path(dir) / "tokenizer.json", fs::copy_options::overwrite_existing);
  const fs::path from = fs::path(tokenizer_json).parent_path();
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"})
    if (fs::exists(from / name)) fs::copy_file(from / name, fs::path(dir) / name, fs::copy_options::overwrite_existing);
}

std::vector<std::pair<std::string, torch::Tensor>> checkpoint_tensors(const std::string& name, const torch::Tensor& t) {
  const auto pieces = expert_pieces(name, t.sizes());
  if (pieces.empty()) return {{name, t.contiguous()}};
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& piece : pieces) out.emplace_back(piece.name, t[piece.expert].narrow(0, piece.first_row, piece.rows).contiguous());
  return out;
}

torch::Tensor read_tensor(const SafetensorsFile& file, const TensorInfo& info) {
  auto t = torch::empty(std::vector<int64_t>(info.shape.begin(), info.shape.end()), to_torch_dtype(info.dtype));
  if (info.nbytes() == 0) return t;
  std::memcpy(t.data_ptr(), file.data(info), info.nbytes());
  // The file's pages are read once: drop them from this process's resident set now (they stay in
  // the page cache), or a load peaks at the weights' size twice.
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(file.data(info)) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(file.data(info)) + info.nbytes()) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  return t;
}

namespace {

using WeightFiles = std::vector<std::unique_ptr<SafetensorsFile>>;

// The block shape of DeepSeek's fp8 weights: [rows, cols] elements share one scale.
struct Fp8Blocks {
  int64_t rows = 128, cols = 128;
};

// config.json's quantization_config: DeepSeek's block-wise fp8 (the released V3 and R1) is read and
// removed from the config, since the weights are dequantised on load; any other method is an error.
std::optional<Fp8Blocks> take_quantization(ModelConfig& c, const std::string& path) {
  const auto it = c.extra.find("quantization_config");
  if (it == c.extra.end()) return std::nullopt;
  const auto& q = *it;
  const auto method = q.is_object() ? q.value("quant_method", nlohmann::json()) : nlohmann::json();
  if (method != "fp8" || q.value("fmt", "e4m3") != "e4m3")
    throw Error(path + ": quantization_config " + q.dump() +
                " is not supported (r1 reads DeepSeek's block-wise fp8: quant_method fp8, fmt e4m3)");
  Fp8Blocks blocks;
  if (q.contains("weight_block_size")) {
    const auto& b = q["weight_block_size"];
    if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
        b[0].get<int64_t>() < 1 || b[1].get<int64_t>() < 1)
      throw Error(path + ": quantization_config.weight_block_size must be two positive integers, got " + b.dump());
    blocks = {b[0].get<int64_t>(), b[1].get<int64_t>()};
  }
  c.extra.erase("quantization_config");
  return blocks;
}

// The tensors of a model directory by name, read with checks against the shape a parameter
// needs; fp8 weights come dequantised with their block scales, and every tensor read is recorded
// (the rest must be explainable, see copy_weights).
class StoredWeights {
 public:
  StoredWeights(const std::string& dir, const WeightFiles& files, std::optional<Fp8Blocks> fp8) : fp8_(fp8) {
    for (const auto& f : files)
      for (const auto& t : f->tensors()) {
        if (tensors_.count(t.name)) throw Error(dir + ": tensor '" + t.name + "' is stored in two files");
        tensors_[t.name] = {f.get(), &t};
      }
  }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  bool used(const std::string& name) const { return used_.count(name) > 0; }
  const auto& all() const { return tensors_; }

  // Tensor `name`, which must have `shape` (the parameter's), as a float tensor.
  torch::Tensor read(const std::string& name, c10::IntArrayRef shape) {
    const auto& [file, info] = tensors_.at(name);
    if (!std::equal(info->shape.begin(), info->shape.end(), shape.begin(), shape.end()))
      throw Error(file->path() + ": tensor '" + name + "' has shape " + shape_str(info->shape) + ", the config needs " +
                  shape_str(shape));
    const auto dtype = to_torch_dtype(info->dtype);
    if (!c10::isFloatingType(dtype))
      throw Error(file->path() + ": tensor '" + name + "' has non-float dtype " + dtype_name(info->dtype));
    used_.insert(name);
    auto value = read_tensor(*file, *info);
    if (dtype != torch::kFloat8_e4m3fn && dtype != torch::kFloat8_e5m2) return value;
    return dequantize(name, value, file->path());
  }

 private:
  // DeepSeek's block-wise fp8 (the released V3/R1 weights): each [rows x cols] block of weight W
  // has a float32 W_scale_inv entry, and the weight is W * scale_inv; the block grid is rounded up
  // (a 576-row weight has 5 rows of 128-row blocks).
  torch::Tensor dequantize(const std::string& name, const torch::Tensor& w, const std::string& path) {
    const std::string scale_name = name + "_scale_inv";
    if (!fp8_ || !has(scale_name) || w.dim() != 2)
      throw Error(path + ": tensor '" + name + "' is fp8 without " +
                  (!fp8_ ? "an fp8 quantization_config in config.json" : "a 2-D weight and its '" + scale_name + "'"));
    const int64_t rows = w.size(0), cols = w.size(1), br = fp8_->rows, bc = fp8_->cols;
    const auto scale = read(scale_name, {(rows + br - 1) / br, (cols + bc - 1) / bc}).to(torch::kFloat32);
    const auto per_element =
        scale.repeat_interleave(br, 0).narrow(0, 0, rows).repeat_interleave(bc, 1).narrow(1, 0, cols);
    return w.to(torch::kFloat32) * per_element;
  }

  std::map<std::string, std::pair<const SafetensorsFile*, const TensorInfo*>> tensors_;
  std::set<std::string> used_;
  std::optional<Fp8Blocks> fp8_;
};

// load_weights on files already opened (load_model_dir reads their headers before allocating).
void copy_weights(Transformer& model, const std::string& dir, const WeightFiles& files,
                  const std::set<std::string>& may_be_missing, const std::set<std::string>& ignore,
                  std::optional<Fp8Blocks> fp8, const std::function<void(const std::string&)>& copied = {}) {
  StoredWeights stored(dir, files, fp8);
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing;
  for (auto& p : model->named_parameters()) {
    torch::Tensor& param = p.value();
    if (stored.has(p.key())) {
      param.copy_(stored.read(p.key(), param.sizes()));
      if (copied) copied(p.key());
      continue;
    }
    // Fused experts stored one tensor per expert (the released checkpoints, r1's own).
    const auto pieces = expert_pieces(p.key(), param.sizes());
    bool complete = !pieces.empty();
    for (const auto& piece : pieces) complete = complete && stored.has(piece.name);
    if (!complete) {
      if (!may_be_missing.count(p.key())) missing.push_back(pieces.empty() ? p.key() : pieces.front().name);
      continue;
    }
    for (const auto& piece : pieces) {
      auto target = param[piece.expert].narrow(0, piece.first_row, piece.rows);
      target.copy_(stored.read(piece.name, target.sizes()));
    }
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 8) list += ", ... (" + std::to_string(missing.size()) + " in all)";
    throw Error(dir + ": missing tensors: " + list);
  }
  for (const auto& [name, where] : stored.all()) {
    if (stored.used(name) || ignorable_tensor(name) || ignore.count(name) || beyond_the_layers(name, model->config()))
      continue;
    // A tied model may still carry lm_head.weight (some exporters write both): accept it.
    if (name == "lm_head.weight" && model->config().tie_word_embeddings) continue;
    throw Error(where.first->path() + ": unexpected tensor '" + name + "' (not part of this " +
                model->config().architecture_name() + " config)");
  }
}

}  // namespace

void load_weights(Transformer& model, const std::string& dir, const std::set<std::string>& may_be_missing,
                  const std::set<std::string>& ignore) {
  const fs::path config_path = fs::path(dir) / "config.json";
  std::optional<Fp8Blocks> fp8;
  if (fs::exists(config_path)) {
    ModelConfig config = ModelConfig::load(config_path.string());
    fp8 = take_quantization(config, config_path.string());
  }
  copy_weights(model, dir, open_weight_files(dir), may_be_missing, ignore, fp8);
}

Transformer load_model_dir(const std::string& dir, const LoadOptions& options) {
  if (!fs::is_directory(dir)) throw Error(dir + ": not a model directory");
  if (is_lora_adapter_dir(dir)) return load_adapter_model(dir, options);
  const std::string config_path = (fs::path(dir) / "config.json").string();
  ModelConfig config = ModelConfig::load(config_path);
  const auto fp8 = take_quantization(config, config_path);
  const torch::ScalarType dtype = options.dtype.value_or(torch_dtype_from_name(config.torch_dtype));
  // A config far larger than its weights (a mistyped vocab_size or hidden_size) is named here,
  // before allocating it; shapes are checked tensor by tensor in load_weights.
  const WeightFiles files = open_weight_files(dir);
  uint64_t stored = 0;
  for (const auto& f : files)
    for (const auto& t : f->tensors()) stored += t.numel();
  const auto wanted = static_cast<uint64_t>(config.parameter_count());
  if (wanted > 2 * stored + 1000000)
    throw Error((fs::path(dir) / "config.json").string() + " describes " + std::to_string(wanted) +
                " parameters but the weight files hold " + std::to_string(stored) +
                ": the config does not match the weights (check vocab_size, hidden_size, intermediate_size, "
                "num_hidden_layers)");
  // A config that announces multi-token prediction modules the files do not hold (transformers
  // writes num_nextn_predict_layers 1 into every DeepSeek-V3 config it saves, and never the
  // modules): the model is built without them, as transformers builds it.
  if (config.is_deepseek() && config.mtp_layers > 0) {
    const std::string first = "model.layers." + std::to_string(config.num_hidden_layers) + ".eh_proj.weight";
    bool present = false;
    for (const auto& f : files)
      for (const auto& t : f->tensors()) present = present || t.name == first;
    if (!present) config.mtp_layers = 0;
  }
  // Allocated where it will live and in its final dtype: tensors convert once, on copy.
  Transformer model(config, torch::TensorOptions().device(options.device).dtype(dtype));
  if (!options.linear_weights) {
    copy_weights(model, dir, files, {}, {}, fp8);
    return model;
  }
  if (dtype != torch::kFloat32) throw Error("int8 and bfloat16 linear weights are made from float32 ones");
  const auto linears = model->freezable_linears();
  copy_weights(model, dir, files, {}, {}, fp8, [&](const std::string& name) {
    const auto it = linears.find(name);
    if (it == linears.end()) return;
    freeze_linear(*it->second, *options.linear_weights);
    return_freed_memory();  // (the heap keeps freed blocks otherwise: util/memory.h)
  });
  model->freeze_linears(*options.linear_weights);  // the tied head's copy, once the embedding is in
  return model;
}

Transformer load_with_score_head(const std::string& dir, const LoadOptions& options, uint64_t head_seed) {
  if (!fs::is_directory(dir)) throw Error(dir + ": not a model directory");
  if (is_lora_adapter_dir(dir)) {
    Transformer model = load_adapter_model(dir, options);
    if (!model->config().sequence_classification)
      throw Error(dir + ": the adapter of a causal LM, not of a reward model (merge it first: r1 model merge-lora)");
    return model;
  }
  ModelConfig config = ModelConfig::load((fs::path(dir) / "config.json").string());
  if (config.sequence_classification) return load_model_dir(dir, options);
  config.sequence_classification = true;
  config.mtp_layers = 0;  // a reward model predicts no tokens: a base's MTP modules are left behind
  Transformer model(config, torch::TensorOptions().device(options.device).dtype(options.dtype.value_or(torch::kFloat32)));
  model->init_weights(head_seed);
  load_weights(model, dir, /*may_be_missing=*/{"score.weight"}, /*ignore=*/{"lm_head.weight"});
  return model;
}

void publish_directory(const std::string& dir, const std::function<void(const std::string& tmp)>& write,
                       const std::function<bool(const std::string& name)>& replaced) {
  const fs::path target = fs::absolute(dir).lexically_normal();
  const fs::path parent = target.parent_path();
  fs::create_directories(parent);
  const fs::path tmp = sibling(target, ".tmp-");
  fs::remove_all(tmp);
  fs::create_directory(tmp);
  try {
    write(tmp.string());
    // Carry over what the old directory had beside the weights (tokenizer, metrics, state, kept
    // checkpoints), as hard links: the old directory is deleted right after, and nothing
    // rewrites a carried file in place before that.
    if (fs::is_directory(target)) {
      for (const auto& e : fs::directory_iterator(target)) {
        const std::string name = e.path().filename().string();
        if (replaced(name) || fs::exists(tmp / name)) continue;
        link_tree(e.path().string(), (tmp / name).string());
      }
    }
    fsync_path(tmp);
    // Publish: old -> backup, tmp -> target, drop backup. A crash in between leaves either the
    // old directory or the backup + the complete new one on disk, never a half-written target.
    const fs::path backup = sibling(target, ".old-");
    fs::remove_all(backup);
    const bool had_old = fs::exists(target);
    if (had_old) fs::rename(target, backup);
    fs::rename(tmp, target);
    fsync_path(parent);
    if (had_old) fs::remove_all(backup);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp);
    throw Error(dir + ": saving failed: " + e.what());
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
}

void save_model_dir(Transformer& model, const std::string& dir, const SaveOptions& options) {
  for (const auto& p : model->named_parameters())
    if (p.key().find(".lora_") != std::string::npos)
      throw Error("save: the model carries LoRA adapters (" + p.key() + "): save them as an adapter or merge them");
  const auto write = [&](const std::string& out) {
    const fs::path tmp(out);
    // Tensors to CPU contiguous storage in the chosen dtype; they stay alive until written.
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    int64_t total = 0;
    for (auto& p : model->named_parameters()) {
      auto t = p.value().detach();
      // DeepSeek-V3's routing bias stays float32 in any checkpoint (steps of 1e-3 on values near 1
      // would vanish in bf16), as in the released one and transformers' _keep_in_fp32_modules.
      if (options.dtype && !ends_with(p.key(), ".e_score_correction_bias")) t = t.to(*options.dtype);
      for (auto& [name, stored] : checkpoint_tensors(p.key(), t.to(torch::kCPU))) {
        total += stored.nbytes();
        tensors.emplace_back(name, stored);
      }
    }
    // Multi-token prediction modules also carry the embedding and the output head, as the released
    // DeepSeek-V3 checkpoint stores them (copies: r1 shares the model's own).
    const ModelConfig& c = model->config();
    for (int64_t k = 0; c.is_deepseek() && k < c.mtp_layers; ++k) {
      const std::string prefix = "model.layers." + std::to_string(c.num_hidden_layers + k) + ".";
      const auto find = [&](const std::string& name) {
        for (const auto& [n, t] : tensors)
          if (n == name) return t;
        throw Error("save: no tensor '" + name + "'");
      };
      const auto embed = find("model.embed_tokens.weight");
      tensors.emplace_back(prefix + "embed_tokens.weight", embed);
      tensors.emplace_back(prefix + "shared_head.head.weight", c.tie_word_embeddings ? embed : find("lm_head.weight"));
      total += 2 * embed.nbytes();
    }
    ModelConfig config = model->config();
    config.torch_dtype = torch_dtype_name(tensors.front().second.scalar_type());
    config.save((tmp / "config.json").string());
    nlohmann::json gen = {{"_from_model_config", true}};
    if (!config.bos_token_ids.empty()) gen["bos_token_id"] = config.bos_token_ids[0];
    if (config.eos_token_ids.size() == 1) gen["eos_token_id"] = config.eos_token_ids[0];
    else if (!config.eos_token_ids.empty()) gen["eos_token_id"] = config.eos_token_ids;
    write_text_file((tmp / "generation_config.json").string(), gen.dump(2) + "\n");

    // Greedy sharding in parameter order.
    std::vector<std::vector<size_t>> shards(1);
    int64_t shard_bytes = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const int64_t n = tensors[i].second.nbytes();
      if (shard_bytes > 0 && shard_bytes + n > options.max_shard_bytes) {
        shards.emplace_back();
        shard_bytes = 0;
      }
      shards.back().push_back(i);
      shard_bytes += n;
    }
    const std::map<std::string, std::string> meta = {{"format", "pt"}};
    auto write_shard = [&](const std::vector<size_t>& ids, const fs::path& path) {
      std::vector<TensorToWrite> out;
      for (size_t i : ids) {
        const auto& t = tensors[i].second;
        out.push_back({tensors[i].first, to_safetensors_dtype(t.scalar_type()),
                       std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), t.data_ptr()});
      }
      write_safetensors(path.string(), std::move(out), meta);
    };
    if (shards.size() == 1) {
      write_shard(shards[0], tmp / kSingleFile);
    } else {
      nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", nlohmann::json::object()}};
      char name[64];
      for (size_t s = 0; s < shards.size(); ++s) {
        std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
        write_shard(shards[s], tmp / name);
        for (size_t i : shards[s]) index["weight_map"][tensors[i].first] = name;
      }
      write_text_file((tmp / kIndexFile).string(), index.dump(2) + "\n");
    }
    if (options.write_extra) options.write_extra(tmp.string());
  };
  static const std::set<std::string> produced = {"config.json", "generation_config.json", kSingleFile, kIndexFile};
  publish_directory(dir, write, [](const std::string& name) {
    const bool old_shard = name.rfind("model-", 0) == 0 && ends_with(name, ".safetensors");
    return produced.count(name) > 0 || old_shard;
  });
}

}  // namespace r1

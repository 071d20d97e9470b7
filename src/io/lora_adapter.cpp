#include "io/lora_adapter.h"

#include <filesystem>
#include <map>
#include <set>

#include "util/error.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

using nlohmann::json;

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";
constexpr const char* kPrefix = "base_model.model.";  // PeftModel.base_model (LoraModel).model

// Settings of PEFT's LoraConfig that change what the adapter computes and that r1 does not
// implement: a file that uses one is refused rather than run differently.
void refuse_unsupported(const json& j, const std::string& path) {
  const auto is_set = [&](const char* key) {
    if (!j.contains(key) || j[key].is_null()) return false;
    const auto& v = j[key];
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_array() || v.is_object() || v.is_string()) return !v.empty() && v != "none";
    return true;
  };
  for (const char* key : {"use_dora", "fan_in_fan_out", "lora_bias", "layers_to_transform",
                          "exclude_modules", "target_parameters", "layer_replication", "trainable_token_indices",
                          "use_qalora"})
    if (is_set(key)) throw Error(path + ": \"" + key + "\" is set; r1 supports plain LoRA adapters only");
  if (j.contains("bias") && j["bias"] != "none") throw Error(path + ": \"bias\" must be \"none\"");
}

template <typename T>
std::map<std::string, T> read_pattern(const json& j, const char* key, const std::string& path) {
  std::map<std::string, T> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  if (!j[key].is_object()) throw Error(path + ": \"" + key + "\" must be an object");
  for (const auto& [name, value] : j[key].items()) {
    if (!value.is_number()) throw Error(path + ": \"" + key + "\"." + name + " must be a number");
    out[name] = value.template get<T>();
  }
  return out;
}

std::string key_of(const std::string& module, char which) {
  return std::string(kPrefix) + module + ".lora_" + which + ".weight";
}

// A reward model's head trains whole beside the adapters: PEFT's modules_to_save, which for
// task_type SEQ_CLS is ["classifier", "score"] and saves the head as base_model.model.score.weight.
const std::string kScoreKey = std::string(kPrefix) + "score.weight";

// modules_to_save: none, or the score head of a reward model (other modules are refused).
bool reads_score_head(const json& j, const std::string& path) {
  if (!j.contains("modules_to_save") || j["modules_to_save"].is_null()) return false;
  const auto& m = j["modules_to_save"];
  if (!m.is_array()) throw Error(path + ": \"modules_to_save\" must be a list of module names");
  bool score = false;
  for (const auto& name : m) {
    if (name == "score") score = true;
    else if (name != "classifier")
      throw Error(path + ": \"modules_to_save\" holds " + name.dump() +
                  "; r1 trains whole only a reward model's score head (\"score\")");
  }
  return score;
}

}  // namespace

bool is_lora_adapter_dir(const std::string& dir) {
  return fs::exists(fs::path(dir) / kConfigFile) && !fs::exists(fs::path(dir) / "config.json");
}

bool is_reward_model_dir(const std::string& dir) {
  if (is_lora_adapter_dir(dir)) return read_adapter_config(dir).score_head;
  return ModelConfig::load((fs::path(dir) / "config.json").string()).sequence_classification;
}

AdapterConfig read_adapter_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / kConfigFile).string();
  const json j = read_json_file(path);
  if (!j.is_object()) throw Error(path + ": not a JSON object");
  if (j.value("peft_type", "") != "LORA") throw Error(path + ": \"peft_type\" is not \"LORA\"");
  refuse_unsupported(j, path);
  AdapterConfig c;
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() < 1)
    throw Error(path + ": \"r\" must be an integer >= 1");
  c.lora.rank = j["r"].get<int64_t>();
  c.lora.alpha = j.contains("lora_alpha") ? j["lora_alpha"].get<double>() : 8.0;  // PEFT's default
  c.lora.rslora = j.value("use_rslora", false);
  const auto& targets = j.contains("target_modules") ? j["target_modules"] : json();
  if (targets.is_string() && targets == "all-linear") {
    c.lora.targets = {"all-linear"};
  } else if (targets.is_array() && !targets.empty()) {
    c.lora.targets.clear();
    for (const auto& t : targets) {
      if (!t.is_string()) throw Error(path + ": \"target_modules\" must hold module names");
      c.lora.targets.push_back(t.get<std::string>());
    }
  } else {
    throw Error(path + ": \"target_modules\" must be a list of module names or \"all-linear\" (a regular "
                "expression is not supported)");
  }
  c.score_head = reads_score_head(j, path);
  c.lora.rank_pattern = read_pattern<int64_t>(j, "rank_pattern", path);
  c.lora.alpha_pattern = read_pattern<double>(j, "alpha_pattern", path);
  if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    c.base_model = j["base_model_name_or_path"].get<std::string>();
  return c;
}

void save_lora_adapter(Transformer& model, const LoraConfig& config, const std::string& base_model,
                       const std::string& dir, const std::function<void(const std::string&)>& write_extra) {
  const auto layers = lora_layers(model);
  if (layers.empty()) throw Error("save: the model carries no LoRA adapter");
  const auto write = [&](const std::string& tmp) {
    std::vector<torch::Tensor> keep_alive;
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, linear] : layers)
      for (const auto& [which, weight] : {std::make_pair('A', linear->lora_A->weight), std::make_pair('B', linear->lora_B->weight)}) {
        keep_alive.push_back(weight.detach().to(torch::kCPU, torch::kFloat32).contiguous());
        const auto& t = keep_alive.back();
        tensors.push_back({key_of(name, which), DType::kF32, t.sizes().vec(), t.data_ptr()});
      }
    const bool reward_model = model->config().sequence_classification;
    if (reward_model) {
      keep_alive.push_back(model->score->weight.detach().to(torch::kCPU, torch::kFloat32).contiguous());
      const auto& t = keep_alive.back();
      tensors.push_back({kScoreKey, DType::kF32, t.sizes().vec(), t.data_ptr()});
    }
    write_safetensors((fs::path(tmp) / kWeightsFile).string(), std::move(tensors), {{"format", "pt"}});
    const bool all_linear = config.targets.size() == 1 && config.targets[0] == "all-linear";
    json j = {{"alpha_pattern", config.alpha_pattern}, {"base_model_name_or_path", base_model}, {"bias", "none"},
              {"fan_in_fan_out", false}, {"inference_mode", true}, {"init_lora_weights", true},
              {"layers_to_transform", nullptr}, {"lora_alpha", config.alpha}, {"lora_dropout", 0.0},
              {"modules_to_save", reward_model ? json{"classifier", "score"} : json(nullptr)},
              {"peft_type", "LORA"}, {"r", config.rank}, {"rank_pattern", config.rank_pattern},
              {"revision", nullptr}, {"task_type", reward_model ? "SEQ_CLS" : "CAUSAL_LM"},
              {"use_dora", false}, {"use_rslora", config.rslora}};
    j["target_modules"] = all_linear ? json("all-linear") : json(config.targets);
    write_text_file((fs::path(tmp) / kConfigFile).string(), j.dump(2) + "\n");
    if (write_extra) write_extra(tmp);
  };
  publish_directory(dir, write, [](const std::string& name) { return name == kConfigFile || name == kWeightsFile; });
}

void load_lora_adapter(Transformer& model, const std::string& dir) {
  const AdapterConfig config = read_adapter_config(dir);
  const std::string path = (fs::path(dir) / kWeightsFile).string();
  if (!fs::exists(path)) throw Error(dir + ": no " + kWeightsFile);
  SafetensorsFile file(path);
  add_lora(model, config.lora, 0);
  std::set<std::string> expected;
  torch::NoGradGuard no_grad;
  for (const auto& [name, linear] : lora_layers(model))
    for (const auto& [which, weight] : {std::make_pair('A', linear->lora_A->weight), std::make_pair('B', linear->lora_B->weight)}) {
      const std::string key = key_of(name, which);
      expected.insert(key);
      const TensorInfo* info = file.find(key);
      if (!info) throw Error(path + ": no tensor " + key + " (adapter_config.json targets " + name + ")");
      const auto stored = read_tensor(file, *info);
      if (stored.sizes() != weight.sizes())
        throw Error(path + ": " + key + " has shape " + c10::str(stored.sizes()) + ", the model needs " +
                    c10::str(weight.sizes()));
      weight.copy_(stored);
    }
  if (config.score_head != model->config().sequence_classification)
    throw Error(dir + "/" + kConfigFile + (config.score_head ? ": a reward model's adapter (modules_to_save: score) for a "
                                                               "model without a score head"
                                                             : ": the adapter lacks the reward model's score head "
                                                               "(modules_to_save: [\"score\"])"));
  if (config.score_head) {
    const TensorInfo* info = file.find(kScoreKey);
    if (!info) throw Error(path + ": no tensor " + kScoreKey + " (modules_to_save holds score)");
    const auto stored = read_tensor(file, *info);
    if (stored.sizes() != model->score->weight.sizes())
      throw Error(path + ": " + kScoreKey + " has shape " + c10::str(stored.sizes()) + ", the model needs " +
                  c10::str(model->score->weight.sizes()));
    model->score->weight.copy_(stored);
    expected.insert(kScoreKey);
  }
  for (const auto& t : file.tensors())
    if (!expected.count(t.name)) throw Error(path + ": tensor " + t.name + " belongs to no adapted layer of the model");
}

Transformer load_adapter_base(const AdapterConfig& adapter, const std::string& base_dir, const LoadOptions& options) {
  return adapter.score_head ? load_with_score_head(base_dir, options, 0) : load_model_dir(base_dir, options);
}

Transformer load_adapter_model(const std::string& dir, const LoadOptions& options) {
  const AdapterConfig config = read_adapter_config(dir);
  if (config.base_model.empty()) throw Error(dir + "/" + kConfigFile + ": no base_model_name_or_path");
  fs::path base(config.base_model);
  if (base.is_relative()) base = fs::path(dir) / base;
  if (!fs::is_directory(base))
    throw Error(dir + "/" + kConfigFile + ": base model " + config.base_model + " is not a directory here");
  Transformer model = load_adapter_base(config, base.string(), options);
  load_lora_adapter(model, dir);
  return model;
}

RunLora attach_lora(Transformer& model, const LoraConfig& flags, const std::string& loaded_from, uint64_t seed) {
  RunLora run;
  if (is_lora_adapter_dir(loaded_from)) {  // resumed: the adapter decides
    const AdapterConfig saved = read_adapter_config(loaded_from);
    run.config = saved.lora;
    run.base = saved.base_model;
  } else if (flags.rank > 0) {
    add_lora(model, flags, seed);
    run.config = flags;
    run.base = fs::absolute(loaded_from).lexically_normal().string();
  }
  return run;
}

void save_trained(Transformer& model, const RunLora& lora, const std::string& dir, const SaveOptions& options) {
  if (lora.active()) save_lora_adapter(model, lora.config, lora.base, dir, options.write_extra);
  else save_model_dir(model, dir, options);
}

}  // namespace r1

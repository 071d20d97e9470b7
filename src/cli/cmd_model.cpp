// r1 model info | init | logits: inspect architectures, create random checkpoints, and dump
// logits (the hook the Hugging Face cross-check tests use).
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/runtime.h"
#include "io/model_dir.h"
#include "model/presets.h"
#include "util/error.h"
#include "util/json_file.h"

namespace r1::cli {
namespace {

ModelConfig config_from(const std::string& preset, const std::string& model_dir) {
  if (!preset.empty() && !model_dir.empty()) throw Error("give --preset or --model, not both");
  if (!preset.empty()) return preset_config(preset);
  if (!model_dir.empty()) return ModelConfig::load(model_dir + "/config.json");
  throw Error("give --preset NAME or --model DIR");
}

void print_info(const ModelConfig& c, const std::string& name, bool as_json) {
  if (as_json) {
    nlohmann::json j = c.to_json();
    j["parameters"] = c.parameter_count();
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("model:           %s\n", name.c_str());
  std::printf("architecture:    %s\n", c.architecture_name().c_str());
  std::printf("layers:          %lld x hidden %lld, MLP %lld (SwiGLU)\n", (long long)c.num_hidden_layers,
              (long long)c.hidden_size, (long long)c.intermediate_size);
  std::printf("attention:       %lld heads, %lld kv heads (%s), head_dim %lld%s\n", (long long)c.num_attention_heads,
              (long long)c.num_key_value_heads, c.num_key_value_heads == c.num_attention_heads ? "MHA" : "GQA",
              (long long)c.head_dim, c.has_qkv_bias() ? ", q/k/v bias" : "");
  std::printf("vocab:           %lld, embeddings %s\n", (long long)c.vocab_size, c.tie_word_embeddings ? "tied" : "untied");
  std::printf("context:         %lld, rope_theta %g%s\n", (long long)c.max_position_embeddings, c.rope_theta,
              c.rope_scaling.type.empty() ? "" : (", rope_scaling " + c.rope_scaling.type + " x" + std::to_string(c.rope_scaling.factor)).c_str());
  std::printf("parameters:      %lld (%s)\n", (long long)c.parameter_count(), human_count(c.parameter_count()).c_str());
}

void add_info(CLI::App& model) {
  auto* cmd = model.add_subcommand("info", "print an architecture and its exact parameter count");
  auto preset = std::make_shared<std::string>();
  auto dir = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  auto list = std::make_shared<bool>(false);
  cmd->add_option("--preset", *preset, "a named architecture (--list shows them)");
  cmd->add_option("--model", *dir, "a model directory (reads its config.json)");
  cmd->add_flag("--json", *as_json, "print config.json plus the parameter count");
  cmd->add_flag("--list", *list, "list the presets");
  cmd->callback([=] {
    if (*list) {
      for (const auto& p : model_presets())
        std::printf("%-22s %10s  %s\n", p.name.c_str(), human_count(p.config.parameter_count()).c_str(),
                    p.description.c_str());
      return;
    }
    print_info(config_from(*preset, *dir), preset->empty() ? *dir : *preset, *as_json);
  });
}

void add_init(CLI::App& model) {
  auto* cmd = model.add_subcommand("init", "write a randomly initialised model directory");
  struct Args {
    std::string preset, config_json, out;
    uint64_t seed = 0;
    std::string dtype = "float32";
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--preset", a->preset, "a named architecture");
  cmd->add_option("--config-json", a->config_json, "an HF config.json to take the architecture from");
  cmd->add_option("--out", a->out, "output model directory")->required();
  cmd->add_option("--seed", a->seed, "initialisation seed")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "storage dtype: float32, bfloat16, float16")->capture_default_str();
  cmd->callback([a] {
    if (a->preset.empty() == a->config_json.empty()) throw Error("give exactly one of --preset or --config-json");
    ModelConfig c = a->preset.empty() ? ModelConfig::load(a->config_json) : preset_config(a->preset);
    Transformer m(c);
    m->init_weights(a->seed);
    SaveOptions save;
    save.dtype = torch_dtype_from_name(a->dtype);
    save_model_dir(m, a->out, save);
    std::printf("wrote %s: %s, %lld parameters (%s), seed %llu\n", a->out.c_str(), c.architecture_name().c_str(),
                (long long)c.parameter_count(), human_count(c.parameter_count()).c_str(), (unsigned long long)a->seed);
  });
}

// Reads [[ids...], ...] (equal lengths) from a JSON file.
torch::Tensor read_id_batch(const std::string& path) {
  auto j = read_json_file(path);
  if (!j.is_array() || j.empty() || !j[0].is_array()) throw Error(path + ": expected a JSON list of token-id lists");
  const size_t T = j[0].size();
  std::vector<int64_t> flat;
  for (size_t r = 0; r < j.size(); ++r) {
    if (!j[r].is_array() || j[r].size() != T || T == 0)
      throw Error(path + ": row " + std::to_string(r) + " must be a non-empty list of " + std::to_string(T) + " ids");
    for (const auto& x : j[r]) {
      if (!x.is_number_integer()) throw Error(path + ": row " + std::to_string(r) + " holds a non-integer " + x.dump());
      flat.push_back(x.get<int64_t>());
    }
  }
  return torch::tensor(flat, torch::kInt64).view({static_cast<int64_t>(j.size()), static_cast<int64_t>(T)});
}

void add_logits(CLI::App& model) {
  auto* cmd = model.add_subcommand("logits", "run a model on token ids and write its logits as safetensors");
  struct Args {
    std::string model, input, out, mode = "full";
    RuntimeOptions rt;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "model directory")->required();
  cmd->add_option("--input", a->input, "JSON file: [[ids...], ...], rows of equal length")->required();
  cmd->add_option("--out", a->out, "output .safetensors file (tensor 'logits', float32 [B, T, V])")->required();
  cmd->add_option("--mode", a->mode, "full (one causal forward) or cached (one token at a time through the KV cache)")
      ->check(CLI::IsMember({"full", "cached"}))
      ->capture_default_str();
  a->rt.add_to(cmd);
  cmd->callback([a] {
    torch::Device dev = a->rt.setup();
    LoadOptions load;
    load.device = dev;
    load.dtype = a->rt.scalar_type();
    Transformer m = load_model_dir(a->model, load);
    torch::InferenceMode guard;
    auto ids = read_id_batch(a->input);
    if (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= m->config().vocab_size)
      throw Error(a->input + ": token ids must lie in [0, " + std::to_string(m->config().vocab_size) + ")");
    ids = ids.to(dev);
    torch::Tensor logits;
    if (a->mode == "full") {
      logits = m->logits(m->forward(ids));
    } else {
      const int64_t B = ids.size(0), T = ids.size(1);
      KvCache cache = m->make_cache(B, T);
      std::vector<torch::Tensor> steps;
      for (int64_t t = 0; t < T; ++t)
        steps.push_back(m->logits(m->forward_cached(ids.narrow(1, t, 1), std::vector<int64_t>(B, t), cache)));
      logits = torch::cat(steps, 1);
    }
    logits = logits.to(torch::kFloat32).cpu().contiguous();
    write_safetensors(a->out, {{"logits", DType::kF32, logits.sizes().vec(), logits.data_ptr()}});
    std::printf("wrote %s: logits [%lld, %lld, %lld]\n", a->out.c_str(), (long long)logits.size(0),
                (long long)logits.size(1), (long long)logits.size(2));
  });
}

}  // namespace

void add_model_command(CLI::App& app) {
  auto* model = app.add_subcommand("model", "inspect, create and run model directories");
  model->require_subcommand(1);
  add_info(*model);
  add_init(*model);
  add_logits(*model);
}

}  // namespace r1::cli

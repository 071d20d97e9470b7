// r1 model info | init | logits: inspect architectures, create random checkpoints, and dump
// logits (the hook the Hugging Face cross-check tests use).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/runtime.h"
#include "io/lora_adapter.h"
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

// Bytes of one value in the config's storage dtype (what a cache in that dtype spends per value).
int64_t dtype_bytes(const ModelConfig& c) {
  return static_cast<int64_t>(c10::elementSize(torch_dtype_from_name(c.torch_dtype)));
}

void print_attention(const ModelConfig& c) {
  if (c.is_deepseek()) {
    const LatentAttentionConfig& m = c.mla;
    std::printf("attention:       multi-head latent, %lld heads, q %s, kv latent %lld, head q/k %lld + rope %lld, v %lld\n",
                (long long)c.num_attention_heads,
                m.q_lora_rank > 0 ? ("LoRA " + std::to_string(m.q_lora_rank)).c_str() : "full", (long long)m.kv_lora_rank,
                (long long)m.qk_nope_head_dim, (long long)m.qk_rope_head_dim, (long long)m.v_head_dim);
    return;
  }
  std::printf("attention:       %lld heads, %lld kv heads (%s), head_dim %lld%s%s\n", (long long)c.num_attention_heads,
              (long long)c.num_key_value_heads, c.num_key_value_heads == c.num_attention_heads ? "MHA" : "GQA",
              (long long)c.head_dim, c.has_qkv_bias() ? ", q/k/v bias" : "", c.has_qk_norm() ? ", q/k norms" : "");
}

void print_mlp(const ModelConfig& c) {
  const MoeConfig& e = c.moe;
  if (e.n_routed_experts == 0 || e.first_k_dense_replace >= c.num_hidden_layers) {
    std::printf("layers:          %lld x hidden %lld, MLP %lld (SwiGLU)\n", (long long)c.num_hidden_layers,
                (long long)c.hidden_size, (long long)c.intermediate_size);
    return;
  }
  std::printf("layers:          %lld x hidden %lld; %lld dense (MLP %lld), then MoE\n", (long long)c.num_hidden_layers,
              (long long)c.hidden_size, (long long)e.first_k_dense_replace, (long long)c.intermediate_size);
  std::printf("experts:         %lld routed (%lld per token, %s, groups %lld/%lld) + %lld shared, width %lld\n",
              (long long)e.n_routed_experts, (long long)e.num_experts_per_tok, e.topk_method.c_str(),
              (long long)e.topk_group, (long long)e.n_group, (long long)e.n_shared_experts,
              (long long)e.moe_intermediate_size);
}

void print_info(const ModelConfig& c, const std::string& name, bool as_json) {
  const int64_t kv_values = c.kv_cache_values_per_token();
  if (as_json) {
    nlohmann::json j = c.to_json();
    j["parameters"] = c.parameter_count();
    j["activated_parameters"] = c.activated_parameter_count();
    j["mtp_parameters"] = c.mtp_parameter_count();
    j["kv_cache_values_per_token"] = kv_values;
    j["kv_cache_bytes_per_token"] = kv_values * dtype_bytes(c);
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("model:           %s\n", name.c_str());
  std::printf("architecture:    %s\n", c.architecture_name().c_str());
  print_mlp(c);
  print_attention(c);
  std::printf("vocab:           %lld, embeddings %s\n", (long long)c.vocab_size, c.tie_word_embeddings ? "tied" : "untied");
  std::printf("context:         %lld, rope_theta %g%s\n", (long long)c.max_position_embeddings, c.rope_theta,
              c.rope_scaling.type.empty() ? "" : (", rope_scaling " + c.rope_scaling.type + " x" + std::to_string(c.rope_scaling.factor)).c_str());
  std::printf("parameters:      %lld (%s)\n", (long long)c.parameter_count(), human_count(c.parameter_count()).c_str());
  std::printf("activated:       %lld (%s) per token\n", (long long)c.activated_parameter_count(),
              human_count(c.activated_parameter_count()).c_str());
  if (c.mtp_layers > 0)
    std::printf("MTP modules:     %lld, %lld parameters (%s) beside the shared embedding and head\n",
                (long long)c.mtp_layers, (long long)c.mtp_parameter_count(), human_count(c.mtp_parameter_count()).c_str());
  std::printf("KV cache:        %lld values per token (%lld per layer), %lld bytes in %s\n", (long long)kv_values,
              (long long)(kv_values / c.num_hidden_layers), (long long)(kv_values * dtype_bytes(c)), c.torch_dtype.c_str());
  if (c.is_deepseek())
    std::printf("                 (per-head keys and values, as transformers caches them: %lld per layer)\n",
                (long long)(c.num_attention_heads * (c.mla.qk_head_dim() + c.mla.v_head_dim)));
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

// The model of --model on the device of --device, and the token ids of --input, checked against
// its vocabulary and on the same device.
std::pair<Transformer, torch::Tensor> model_and_ids(const std::string& model_dir, const std::string& input,
                                                    const RuntimeOptions& rt, bool inference) {
  const torch::Device device = rt.setup();
  // (scalar_type refuses int8: gradients need float weights)
  const LoadOptions load = inference ? rt.inference_load(device) : LoadOptions{device, rt.scalar_type()};
  Transformer m = load_model_dir(model_dir, load);
  if (inference) rt.report_frozen_weights(m);
  auto ids = read_id_batch(input);
  if (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= m->config().vocab_size)
    throw Error(input + ": token ids must lie in [0, " + std::to_string(m->config().vocab_size) + ")");
  return {m, ids.to(load.device)};
}

void add_grad(CLI::App& model) {
  auto* cmd = model.add_subcommand(
      "grad", "write the gradients of next-token cross-entropy on token ids (the training cross-check's hook)");
  struct Args {
    std::string model, input, out;
    RuntimeOptions rt;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "model directory")->required();
  cmd->add_option("--input", a->input, "JSON file: [[ids...], ...], rows of equal length (at least 2)")->required();
  cmd->add_option("--out", a->out, "output .safetensors file: 'loss' and every parameter's gradient, float32")->required();
  a->rt.add_to(cmd);
  cmd->callback([a] {
    auto [m, ids] = model_and_ids(a->model, a->input, a->rt, /*inference=*/false);
    if (ids.size(1) < 2) throw Error(a->input + ": rows need at least 2 tokens (one prediction)");
    const int64_t T = ids.size(1);
    // The mean over all predictions, as transformers' loss for labels = input ids.
    const auto logits = m->logits(m->forward(ids)).narrow(1, 0, T - 1).to(torch::kFloat32);
    const auto loss = torch::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), ids.narrow(1, 1, T - 1).reshape({-1}));
    loss.backward();
    std::vector<std::pair<std::string, torch::Tensor>> tensors = {{"loss", loss.detach().to(torch::kCPU).reshape({1})}};
    for (const auto& p : m->named_parameters())
      if (p.value().grad().defined())
        for (auto& named : checkpoint_tensors(p.key(), p.value().grad().to(torch::kCPU, torch::kFloat32)))
          tensors.push_back(std::move(named));
    std::vector<TensorToWrite> out;
    for (const auto& [name, t] : tensors) out.push_back({name, DType::kF32, t.sizes().vec(), t.data_ptr()});
    write_safetensors(a->out, out);
    std::printf("wrote %s: loss %.6f and %zu gradients\n", a->out.c_str(), loss.item<double>(), tensors.size() - 1);
  });
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
  cmd->add_option("--out", a->out,
                  "output .safetensors file: 'logits', float32 [B, T, V]; in full mode also each MoE layer's chosen "
                  "experts and each multi-token prediction module's logits ('mtp.K', [B, T - K, V])")
      ->required();
  cmd->add_option("--mode", a->mode, "full (one causal forward) or cached (through the KV cache: a prefill of the first half, then steps of 1 "
                  "and 2 tokens)")
      ->check(CLI::IsMember({"full", "cached"}))
      ->capture_default_str();
  a->rt.add_to(cmd);
  cmd->callback([a] {
    auto [m, ids] = model_and_ids(a->model, a->input, a->rt, /*inference=*/true);
    torch::InferenceMode guard;
    torch::Tensor logits;
    std::vector<torch::Tensor> mtp;  // multi-token prediction modules' logits, when the model has them
    if (a->mode == "full") {
      const auto hidden = m->forward(ids);
      logits = m->logits(hidden);
      mtp = m->mtp_logits(hidden, ids);
      for (auto& t : mtp) t = t.to(torch::kFloat32).cpu().contiguous();
    } else {
      const int64_t B = ids.size(0), T = ids.size(1);
      KvCache cache = m->make_cache(B, T);
      std::vector<torch::Tensor> steps;
      // A prefill of the first half, then decoding steps of one and two tokens (speculative
      // decoding's checks) in turn: each way a cached forward can attend.
      for (int64_t t = 0, n = std::max<int64_t>(T / 2, 1); t < T; t += n, n = n == 1 ? 2 : 1) {
        n = std::min(n, T - t);
        steps.push_back(m->logits(m->forward_cached(ids.narrow(1, t, n), std::vector<int64_t>(B, t), cache)));
      }
      logits = torch::cat(steps, 1);
    }
    logits = logits.to(torch::kFloat32).cpu().contiguous();
    std::vector<TensorToWrite> out = {{"logits", DType::kF32, logits.sizes().vec(), logits.data_ptr()}};
    // With mixture-of-experts layers, the experts each token went to (full mode), sorted per token.
    std::vector<std::pair<std::string, torch::Tensor>> routes;
    for (int64_t i = 0; a->mode == "full" && i < m->config().num_hidden_layers; ++i) {
      auto* layer = m->model->layers[i]->as<DecoderLayerImpl>();
      if (!layer->moe) continue;
      routes.emplace_back("model.layers." + std::to_string(i) + ".mlp.experts",
                          std::get<0>(layer->moe->last_experts().sort(1)).to(torch::kCPU).contiguous());
    }
    for (const auto& [name, t] : routes) out.push_back({name, DType::kI64, t.sizes().vec(), t.data_ptr()});
    for (size_t k = 0; k < mtp.size(); ++k)
      out.push_back({"mtp." + std::to_string(k + 1), DType::kF32, mtp[k].sizes().vec(), mtp[k].data_ptr()});
    write_safetensors(a->out, out);
    std::printf("wrote %s: logits [%lld, %lld, %lld]\n", a->out.c_str(), (long long)logits.size(0),
                (long long)logits.size(1), (long long)logits.size(2));
  });
}

void add_merge_lora(CLI::App& model) {
  auto* cmd = model.add_subcommand("merge-lora", "fold a LoRA adapter into its base model: an ordinary model directory");
  struct Args {
    std::string adapter, base, out, dtype;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--adapter", a->adapter, "adapter directory (adapter_config.json + adapter_model.safetensors)")
      ->required();
  cmd->add_option("--base", a->base, "the base model directory (default: the adapter's base_model_name_or_path)");
  cmd->add_option("--out", a->out, "output model directory")->required();
  cmd->add_option("--dtype", a->dtype, "storage dtype: float32, bfloat16, float16 (default: the base's)");
  cmd->callback([a] {
    const AdapterConfig adapter = read_adapter_config(a->adapter);
    const std::string base = a->base.empty() ? adapter.base_model : a->base;
    if (base.empty()) throw Error(a->adapter + ": the adapter names no base model: pass --base");
    Transformer m = load_adapter_base(adapter, base, {torch::kCPU, torch::kFloat32});
    load_lora_adapter(m, a->adapter);
    const auto layers = lora_layers(m).size();
    merge_lora(m);
    SaveOptions save;
    save.dtype = torch_dtype_from_name(a->dtype.empty() ? ModelConfig::load(base + "/config.json").torch_dtype : a->dtype);
    save.write_extra = [&](const std::string& dir) {
      const std::string tokenizer = std::filesystem::exists(a->adapter + "/tokenizer.json") ? a->adapter : base;
      if (std::filesystem::exists(tokenizer + "/tokenizer.json")) copy_tokenizer_files(tokenizer + "/tokenizer.json", dir);
    };
    save_model_dir(m, a->out, save);
    std::printf("wrote %s: %s with %zu adapted layers merged (rank %lld)\n", a->out.c_str(), base.c_str(), layers,
                (long long)adapter.lora.rank);
  });
}

}  // namespace

void add_model_command(CLI::App& app) {
  auto* model = app.add_subcommand("model", "inspect, create and run model directories");
  model->require_subcommand(1);
  add_info(*model);
  add_init(*model);
  add_logits(*model);
  add_grad(*model);
  add_model_inspect(*model);
  add_model_import(*model);
  add_model_export(*model);
  add_merge_lora(*model);
}

}  // namespace r1::cli

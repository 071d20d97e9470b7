#include "model/lora.h"

#include <cmath>
#include <regex>
#include <set>

#include <ATen/CPUGeneratorImpl.h>

#include "util/error.h"
#include "util/strings.h"

namespace r1 {
namespace {

bool name_matches(const std::string& module, const std::string& target) {
  return module == target || ends_with(module, "." + target);
}

// PEFT's pattern rule: the key is a regex that must match the end of the module's name.
template <typename T>
const T* pattern_value(const std::map<std::string, T>& patterns, const std::string& module) {
  for (const auto& [key, value] : patterns) {
    try {
      if (std::regex_match(module, std::regex("(.*\\.)?(" + key + ")"))) return &value;
    } catch (const std::regex_error&) {
      throw Error("LoRA rank/alpha pattern '" + key + "' is not a regular expression");
    }
  }
  return nullptr;
}

bool is_mlp_target(const std::string& t) {
  return t == "all-linear" || t == "gate_proj" || t == "up_proj" || t == "down_proj";
}

// The linear layers of the model that can carry an adapter (not the output head, not adapters).
std::vector<std::pair<std::string, LinearImpl*>> linear_layers(Transformer& model) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    auto* linear = dynamic_cast<LinearImpl*>(item.value().get());
    if (!linear || item.key().find(".lora_") != std::string::npos) continue;
    if (item.key() == "lm_head" || item.key() == "score") continue;
    out.emplace_back(item.key(), linear);
  }
  return out;
}

}  // namespace

std::vector<std::string> LoraConfig::parse_targets(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = list.find(',', start);
    std::string name = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    if (name.empty()) throw Error("--lora-targets '" + list + "': an empty module name");
    out.push_back(name);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

std::vector<std::string> add_lora(Transformer& model, const LoraConfig& config, uint64_t seed) {
  if (config.rank < 1) throw Error("--lora-rank must be >= 1");
  if (!(config.alpha > 0)) throw Error("--lora-alpha must be > 0");
  if (has_lora(model)) throw Error("the model already carries LoRA adapters");
  const bool all_linear = config.targets.size() == 1 && config.targets[0] == "all-linear";
  for (const auto& t : config.targets) {
    if (t == "all-linear" && !all_linear) throw Error("--lora-targets: all-linear stands alone");
    if (model->config().moe.n_routed_experts > 0 && is_mlp_target(t))
      throw Error("--lora-targets " + t + ": LoRA on the experts of a mixture-of-experts model is not supported; "
                  "target the attention projections");
    if (t == "kv_b_proj")
      throw Error("--lora-targets kv_b_proj: latent attention reads that weight directly when decoding; "
                  "target q_a_proj, q_b_proj, kv_a_proj_with_mqa or o_proj");
  }
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::set<std::string> matched;
  std::vector<std::string> adapted;
  for (auto& [name, linear] : linear_layers(model)) {
    bool wanted = all_linear;
    for (const auto& t : config.targets)
      if (!all_linear && name_matches(name, t)) {
        wanted = true;
        matched.insert(t);
      }
    if (!wanted) continue;
    const int64_t* r_override = pattern_value(config.rank_pattern, name);
    const double* alpha_override = pattern_value(config.alpha_pattern, name);
    const int64_t r = r_override ? *r_override : config.rank;
    const double alpha = alpha_override ? *alpha_override : config.alpha;
    if (r < 1) throw Error("LoRA rank for " + name + " must be >= 1");
    const int64_t in = linear->weight.size(1), out = linear->weight.size(0);
    const auto options = linear->weight.options();
    linear->lora_A = std::make_shared<LinearImpl>(in, r, false, options);
    linear->lora_B = std::make_shared<LinearImpl>(r, out, false, options);
    // PEFT's default: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0.
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    linear->lora_A->weight.copy_(torch::empty({r, in}).uniform_(-bound, bound, generator));
    linear->lora_B->weight.zero_();
    linear->lora_scaling = config.rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
    linear->register_module("lora_A", linear->lora_A);
    linear->register_module("lora_B", linear->lora_B);
    adapted.push_back(name);
  }
  for (const auto& t : config.targets)
    if (!all_linear && !matched.count(t))
      throw Error("--lora-targets " + t + ": no linear layer of this model is called that");
  if (adapted.empty()) throw Error("--lora-targets: no linear layer to adapt");
  return adapted;
}

std::vector<std::pair<std::string, LinearImpl*>> lora_layers(Transformer& model) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (auto& [name, linear] : linear_layers(model))
    if (linear->lora_A) out.emplace_back(name, linear);
  return out;
}

bool has_lora(Transformer& model) { return !lora_layers(model).empty(); }

LoraDisabled::LoraDisabled(Transformer& model) : layers_(lora_layers(model)) {
  for (auto& [name, linear] : layers_) linear->lora_enabled = false;
}

LoraDisabled::~LoraDisabled() {
  for (auto& [name, linear] : layers_) linear->lora_enabled = true;
}

void merge_lora(Transformer& model) {
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : lora_layers(model)) {
    const auto delta = torch::matmul(linear->lora_B->weight.to(torch::kFloat32), linear->lora_A->weight.to(torch::kFloat32));
    linear->weight.copy_((linear->weight.to(torch::kFloat32) + delta * linear->lora_scaling).to(linear->weight.scalar_type()));
    linear->unregister_module("lora_A");
    linear->unregister_module("lora_B");
    linear->lora_A.reset();
    linear->lora_B.reset();
    linear->lora_scaling = 0;
  }
}

}  // namespace r1

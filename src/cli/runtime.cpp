#include "cli/runtime.h"

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "io/model_dir.h"
#include "util/device.h"
#include "util/error.h"

namespace r1::cli {

void RuntimeOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", dtype,
                  "float32, bfloat16 or float16; generate, chat, serve and eval also take int8 and "
                  "bfloat16-weights (float32 activations and KV cache, the linear layers' weights int8 with "
                  "one scale per output row, or bfloat16: the fastest CPU decoding)")
      ->capture_default_str();
  cmd->add_option("--threads", threads, "CPU threads for tensor math (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
}

torch::Device RuntimeOptions::setup() const {
  // Default: OMP_NUM_THREADS when set (how test runners and schedulers share cores), else all cores.
  int n = threads;
  if (n <= 0) {
    const char* env = std::getenv("OMP_NUM_THREADS");
    n = env ? std::atoi(env) : 0;
  }
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const torch::Device dev = open_device(device);  // first: CUDA's libraries load before any CUDA query
  torch::set_num_threads(n);
  return dev;
}

torch::ScalarType RuntimeOptions::scalar_type() const {
  if (frozen_weights())
    throw Error("--dtype " + dtype + " is for inference (generate, chat, serve, eval); training keeps float weights");
  return torch_dtype_from_name(dtype);
}

LoadOptions RuntimeOptions::inference_load(torch::Device device) const {
  LoadOptions load;
  load.device = device;
  load.linear_weights = frozen_weights();
  load.dtype = load.linear_weights ? torch::kFloat32 : scalar_type();
  return load;
}

std::optional<WeightType> RuntimeOptions::frozen_weights() const {
  if (dtype == "int8") return WeightType::kInt8;
  if (dtype == "bfloat16-weights") return WeightType::kBFloat16;
  return std::nullopt;
}

void RuntimeOptions::report_frozen_weights(Transformer& model) const {
  const auto type = frozen_weights();
  if (!type) return;
  const auto [before, after] = model->freeze_linears(*type);  // (all done at load: this counts)
  std::fprintf(stderr, "%s weights: linear layers %.1f MB -> %.1f MB\n", dtype == "int8" ? "int8" : "bfloat16",
               before / 1e6, after / 1e6);
}

std::string RuntimeOptions::device_for_rank(const torch::Device& parsed, const LaunchEnv& env) const {
  return parsed.is_cuda() && !parsed.has_index() && env.distributed() ? "cuda:" + std::to_string(env.local_rank) : device;
}

bool print_if_stopped(bool stop_requested, int64_t done, int64_t steps, const std::string& out) {
  if (!stop_requested || done >= steps) return false;
  std::printf("stopped at step %lld of %lld; checkpoint saved in %s (--resume continues)\n", (long long)done,
              (long long)steps, out.c_str());
  return true;
}

void add_expert_balance_flags(CLI::App* cmd, ExpertBalanceOptions& options) {
  // -1 (what a saved args.toml holds when the flag was not given) means the architecture's default.
  const auto default_or_within = [](double high) {
    return CLI::Validator(
        [high](std::string& text) {
          const double v = std::stod(text);
          return v == -1 || (v >= 0 && v <= high) ? std::string() : "must be -1 (default) or in [0, " + std::to_string(high) + "]";
        },
        "-1 or [0, " + std::to_string(high) + "]");
  };
  cmd->add_option("--moe-bias-speed", options.bias_update_speed,
                  "MoE: auxiliary-loss-free balancing, each expert's routing bias moved by this much per step "
                  "towards equal load (-1: 0.001 for DeepSeek-V3 models, none for V2)")
      ->check(CLI::Number)
      ->check(default_or_within(1.0))
      ->capture_default_str();
  cmd->add_option("--moe-balance-loss", options.balance_loss_weight,
                  "MoE: weight of the sequence-wise balance loss (-1: 1e-4 for V3, config.json's aux_loss_alpha "
                  "or 0.001 for V2)")
      ->check(CLI::Number)
      ->check(default_or_within(10.0))
      ->capture_default_str();
}

void add_zero_flag(CLI::App* cmd, int& zero) {
  cmd->add_option("--zero", zero,
                  "data parallel: 0 = every rank holds everything; 1 = AdamW's state sharded across the ranks "
                  "(ZeRO-1); 2 = and the gradients, reduced during the backward pass (ZeRO-2); 3 = and the "
                  "layers' weights, gathered layer by layer (ZeRO-3)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3));
}

void add_lora_flags(CLI::App* cmd, LoraConfig& lora) {
  cmd->add_option("--lora-rank", lora.rank,
                  "train LoRA adapters of this rank instead of the weights (0: off); saved in PEFT's format")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--lora-alpha", lora.alpha, "LoRA's scale: the adapters' output is multiplied by alpha / rank")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option_function<std::string>(
         "--lora-targets", [&lora](const std::string& list) { lora.targets = LoraConfig::parse_targets(list); },
         "linear layers that get adapters: comma-separated module names (q_proj, k_proj, v_proj, o_proj, gate_proj, "
         "up_proj, down_proj, ...) or all-linear")
      ->default_str("q_proj,k_proj,v_proj,o_proj");
}

}  // namespace r1::cli

// Options every tensor-using subcommand shares: device, dtype, threads.
#pragma once
#include <string>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "dist/launch_env.h"
#include "io/model_dir.h"
#include "model/lora_config.h"
#include "model/transformer.h"
#include "train/expert_balance_options.h"

namespace r1::cli {

struct RuntimeOptions {
  std::string device = "cpu";
  std::string dtype = "float32";
  int threads = 0;  // 0 = all cores

  void add_to(CLI::App* cmd);
  // Applies the thread count and returns the parsed device (errors for cuda without a GPU).
  torch::Device setup() const;
  torch::ScalarType scalar_type() const;
  // --dtype int8 / bfloat16-weights (generate, chat, serve, eval): float32 activations and KV
  // cache, the linear layers' weights converted to int8 or bfloat16 as they load (model/decode_matmul.h).
  std::optional<WeightType> frozen_weights() const;
  // How an inference command loads its model (int8 and bfloat16-weights allowed).
  LoadOptions inference_load(torch::Device device) const;
  // With --dtype int8 or bfloat16-weights, a line on stderr with the weights' bytes.
  void report_frozen_weights(Transformer& model) const;
  // The device of this process of a (possibly data-parallel) training job: one GPU per local
  // rank when several processes share a machine and --device is a plain "cuda".
  std::string device_for_rank(const torch::Device& parsed, const LaunchEnv& env) const;
};

// --moe-bias-speed and --moe-balance-loss, for the training commands (mixture-of-experts models).
void add_expert_balance_flags(CLI::App* cmd, ExpertBalanceOptions& options);
// --zero: ZeRO stage of data-parallel training (train/training_optimizer.h).
void add_zero_flag(CLI::App* cmd, int& zero);
// --lora-rank, --lora-alpha, --lora-targets (model/lora.h).
void add_lora_flags(CLI::App* cmd, LoraConfig& lora);

// The training commands' last line when SIGINT/SIGTERM cut the run short; false when it was not.
bool print_if_stopped(bool stop_requested, int64_t done, int64_t steps, const std::string& out);

}  // namespace r1::cli

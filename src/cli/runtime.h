// Options every tensor-using subcommand shares: device, dtype, threads.
#pragma once
#include <string>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

namespace r1::cli {

struct RuntimeOptions {
  std::string device = "cpu";
  std::string dtype = "float32";
  int threads = 0;  // 0 = all cores

  void add_to(CLI::App* cmd);
  // Applies the thread count and returns the parsed device (errors for cuda without a GPU).
  torch::Device setup() const;
  torch::ScalarType scalar_type() const;
};

}  // namespace r1::cli

// The options of LoRA (model/lora.h), torch-free so that option structs can hold them.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace r1 {

struct LoraConfig {
  int64_t rank = 0;    // r; 0: no LoRA
  double alpha = 16;   // lora_alpha: scaling = alpha / r (alpha / sqrt(r) with rslora)
  bool rslora = false;
  // Module names (a name matches itself and any module whose name ends in "." + it), or
  // "all-linear": every linear layer but the output head.
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  // PEFT's per-module overrides: a key matches modules whose name ends in it (a regex, as in PEFT).
  std::map<std::string, int64_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;

  // The --lora-targets syntax: comma-separated names, or all-linear.
  static std::vector<std::string> parse_targets(const std::string& list);
};

}  // namespace r1

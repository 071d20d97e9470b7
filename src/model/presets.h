// Named architectures: the published DeepSeek / R1-Distill shapes (parameter counts match the
// published numbers) and small shapes for CPU runs and benchmarks.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace r1 {

struct Preset {
  std::string name;
  std::string description;
  ModelConfig config;
};

const std::vector<Preset>& model_presets();
// Throws r1::Error listing the known names when `name` is unknown.
ModelConfig preset_config(const std::string& name);

}  // namespace r1

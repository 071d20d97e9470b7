// LoRA (Hu et al., arXiv 2106.09685) as PEFT lays it out (reference/scaling-and-lora.md §4): a
// targeted linear layer y = x W^T + b becomes y + scaling * B(A(x)), A [r, in] and B [out, r] its
// two new parameters (named <module>.lora_A.weight / .lora_B.weight, as PEFT names them), every
// other parameter of the model frozen. A starts uniform in +-1/sqrt(in) and B at 0, so the model
// is unchanged until the first step. The adapters apply wherever the layer runs (training passes,
// the engine's decoding), unmerged; merge_lora() folds them into the weights.
#pragma once
#include <string>
#include <vector>

#include "model/lora_config.h"
#include "model/transformer.h"

namespace r1 {

// Adds adapters to the targeted linear layers and freezes every other parameter. Throws an
// r1::Error naming the target when it matches no layer, or a layer that cannot carry one.
// Returns the names of the adapted modules.
std::vector<std::string> add_lora(Transformer& model, const LoraConfig& config, uint64_t seed);

// The adapters of `model`: module name -> its linear layer (empty without LoRA).
std::vector<std::pair<std::string, LinearImpl*>> lora_layers(Transformer& model);
bool has_lora(Transformer& model);

// Turns the adapters off (the base model: GRPO's reference under LoRA) for a scope.
class LoraDisabled {
 public:
  explicit LoraDisabled(Transformer& model);
  ~LoraDisabled();
  LoraDisabled(const LoraDisabled&) = delete;
  LoraDisabled& operator=(const LoraDisabled&) = delete;

 private:
  std::vector<std::pair<std::string, LinearImpl*>> layers_;
};

// W += scaling * B A in float32, then the adapters are removed: an ordinary model.
void merge_lora(Transformer& model);

}  // namespace r1

// Activation checkpointing (--checkpoint-activations): a block's forward runs without keeping its
// intermediate activations, only its inputs; the backward pass runs the block again with
// gradients and back-propagates through that recomputation (PyTorch's reentrant
// torch.utils.checkpoint, reference/scaling-and-lora.md). Per decoder layer this trades one more
// forward for the activations of all layers but one.
#pragma once
#include <functional>
#include <memory>

#include <torch/torch.h>

namespace r1 {

using Block = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

// `block(inputs)`, recomputed in the backward pass. The block must be deterministic and must not
// read state that changes between the forward and the backward; whatever it captures must stay
// alive until the backward pass (capture tensors by value). Parameters it uses receive their
// gradients during the backward pass as usual.
std::vector<torch::Tensor> checkpoint(std::shared_ptr<const Block> block, const std::vector<torch::Tensor>& inputs);

// True inside a recomputation: forward side effects that must happen once (counting expert
// loads, say) skip themselves.
bool recomputing_activations();

}  // namespace r1

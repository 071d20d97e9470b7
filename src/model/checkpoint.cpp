#include "model/checkpoint.h"

#include <ATen/autocast_mode.h>

#include "model/bf16_matmul.h"
#include "train/autocast.h"

namespace r1 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

thread_local bool recomputing = false;

struct Recomputing {  // sets the flag for a scope, exceptions included
  Recomputing() : outer(recomputing) { recomputing = true; }
  ~Recomputing() { recomputing = outer; }
  bool outer;
};

// The block travels with the autograd node inside a capsule of the context's saved data, so it
// lives exactly as long as the graph that may call it.
struct BlockHolder : torch::CustomClassHolder {
  explicit BlockHolder(std::shared_ptr<const Block> b) : block(std::move(b)) {}
  std::shared_ptr<const Block> block;
};

struct Checkpoint : public torch::autograd::Function<Checkpoint> {
  // `anchor` requires grad, so the node runs in the backward pass even when no input does (a frozen
  // embedding under LoRA): the block's parameters get their gradients from the recomputation.
  static variable_list forward(AutogradContext* ctx, const std::shared_ptr<const Block>& block,
                               const torch::Tensor& anchor, at::TensorList inputs) {
    ctx->saved_data["block"] = at::IValue::make_capsule(c10::make_intrusive<BlockHolder>(block));
    // The precision the forward ran in (CUDA autocast to bf16, or r1's bf16 CPU products), which
    // the recomputation must run in too: backward() is called outside the training loop's scopes.
    ctx->saved_data["cuda_autocast"] = at::autocast::is_autocast_enabled(c10::DeviceType::CUDA);
    ctx->saved_data["cpu_bf16"] = cpu_bf16_matmul_enabled();
    ctx->save_for_backward(inputs.vec());
    torch::NoGradGuard no_grad;
    return (*block)(inputs.vec());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    variable_list inputs;
    for (const auto& saved : ctx->get_saved_variables())
      inputs.push_back(saved.detach().requires_grad_(saved.is_floating_point()));
    variable_list outputs;
    {
      torch::AutoGradMode enable(true);
      Recomputing scope;
      AutocastScope cuda_autocast(ctx->saved_data["cuda_autocast"].toBool(), c10::DeviceType::CUDA);
      CpuBf16MatmulScope cpu_products(ctx->saved_data["cpu_bf16"].toBool());
      outputs = (*holder->block)(inputs);
    }
    variable_list with_grad, their_grads;  // outputs nothing downstream used get no gradient
    for (size_t i = 0; i < outputs.size(); ++i)
      if (grads[i].defined() && outputs[i].requires_grad()) {
        with_grad.push_back(outputs[i]);
        their_grads.push_back(grads[i]);
      }
    if (!with_grad.empty()) torch::autograd::backward(with_grad, their_grads);
    variable_list result = {torch::Tensor(), torch::Tensor()};  // neither the block nor the anchor has one
    for (const auto& x : inputs) result.push_back(x.requires_grad() ? x.grad() : torch::Tensor());
    return result;
  }
};

}  // namespace

std::vector<torch::Tensor> checkpoint(std::shared_ptr<const Block> block, const std::vector<torch::Tensor>& inputs) {
  const auto anchor = torch::zeros({}, torch::TensorOptions().requires_grad(true));
  return Checkpoint::apply(block, anchor, at::TensorList(inputs));
}

bool recomputing_activations() { return recomputing; }

}  // namespace r1

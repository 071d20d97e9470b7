#include "model/bf16_matmul.h"

namespace r1 {
namespace {

thread_local bool t_bf16_matmul = false;

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// y = x w^T with x, w rounded to bf16; the product accumulates in fp32 inside oneDNN and is
// returned as fp32. Backward: dx = dy w, dw = dy^T x, both from bf16 operands (as autocast does).
struct Bf16LinearFn : torch::autograd::Function<Bf16LinearFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w) {
    const auto xb = x.to(torch::kBFloat16), wb = w.to(torch::kBFloat16);
    ctx->save_for_backward({xb, wb});
    return torch::nn::functional::linear(xb, wb).to(torch::kFloat32);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &xb = saved[0], &wb = saved[1];
    const auto g = grads[0];
    const auto gb = g.to(torch::kBFloat16);
    const int64_t K = xb.size(-1), N = wb.size(0);
    auto dx = torch::matmul(gb, wb).to(torch::kFloat32);
    auto dw = torch::mm(gb.reshape({-1, N}).t(), xb.reshape({-1, K})).to(torch::kFloat32);
    return {dx, dw};
  }
};

}  // namespace

CpuBf16MatmulScope::CpuBf16MatmulScope(bool enabled) : previous_(t_bf16_matmul) { t_bf16_matmul = enabled; }
CpuBf16MatmulScope::~CpuBf16MatmulScope() { t_bf16_matmul = previous_; }

bool cpu_bf16_matmul_enabled() { return t_bf16_matmul; }

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     PackedWeight* packed) {
  if (packed && packed->frozen()) return packed->linear(x, weight, bias);
  if (t_bf16_matmul && x.device().is_cpu() && x.scalar_type() == torch::kFloat32 &&
      weight.scalar_type() == torch::kFloat32)
    return bias.defined() ? Bf16LinearFn::apply(x, weight) + bias : Bf16LinearFn::apply(x, weight);
  if (packed) {
    auto y = packed->linear(x, weight, bias);
    if (y.defined()) return y;
  }
  return torch::nn::functional::linear(x, weight, bias);
}

}  // namespace r1

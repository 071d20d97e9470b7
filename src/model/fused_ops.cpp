#include "model/fused_ops.h"

#include "model/rope.h"
#include "model/simd_math.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace r1::fused {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

constexpr int64_t kGrain = 2048;  // elements per parallel chunk, about libtorch's own grain

// ---- RMSNorm --------------------------------------------------------------------------------

R1_CLONES void rms_norm_rows(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t C,
                             float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < C; ++c) ss += xr[c] * xr[c];
    const float s = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
    rstd[r] = s;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * s * w[c];
  }
}

R1_CLONES void add_rows(const float* a, const float* b, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

// dx = rstd * (g w - n * mean(g w n)), n = x * rstd; dw += sum over rows of g n.
R1_CLONES void rms_norm_backward_rows(const float* g, const float* x, const float* w, const float* rstd, float* dx,
                                      float* dw, int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* gr = g + r * C;
    const float* xr = x + r * C;
    float* dxr = dx + r * C;
    const float s = rstd[r];
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < C; ++c) dot += gr[c] * w[c] * xr[c];
    const float k = dot * s * s / static_cast<float>(C);  // mean(g w n) / rstd
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      dxr[c] = s * (gr[c] * w[c] - xr[c] * k);
      dw[c] += gr[c] * xr[c] * s;
    }
  }
}

struct RmsNormFn : torch::autograd::Function<RmsNormFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& w_in,
                               double eps) {
    const auto x = x_in.contiguous(), w = w_in.contiguous();
    const int64_t C = x.size(-1), rows = x.numel() / C;
    auto y = torch::empty_like(x);
    auto rstd = torch::empty({rows}, x.options());
    const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>();
    float *yp = y.data_ptr<float>(), *sp = rstd.data_ptr<float>();
    at::parallel_for(0, rows, std::max<int64_t>(1, kGrain / C), [&](int64_t r0, int64_t r1) {
      rms_norm_rows(xp + r0 * C, wp, yp + r0 * C, sp + r0, r1 - r0, C, static_cast<float>(eps));
    });
    ctx->save_for_backward({x, w, rstd});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &rstd = saved[2];
    const auto g = grads[0].contiguous();
    const int64_t C = x.size(-1), rows = x.numel() / C;
    auto dx = torch::empty_like(x);
    // Each chunk accumulates dw in its own row; the rows are summed at the end.
    std::vector<int64_t> starts;
    const int64_t grain = std::max<int64_t>(1, kGrain / C);
    for (int64_t r = 0; r < rows; r += grain) starts.push_back(r);
    auto partial = torch::zeros({static_cast<int64_t>(starts.size()), C}, x.options());
    const float *gp = g.data_ptr<float>(), *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(),
                *sp = rstd.data_ptr<float>();
    float *dxp = dx.data_ptr<float>(), *pp = partial.data_ptr<float>();
    at::parallel_for(0, static_cast<int64_t>(starts.size()), 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t r0 = starts[i], n = std::min(grain, rows - r0);
        rms_norm_backward_rows(gp + r0 * C, xp + r0 * C, wp, sp + r0, dxp + r0 * C, pp + i * C, n, C);
      }
    });
    return {dx, partial.sum(0), torch::Tensor()};
  }
};

// ---- SwiGLU ---------------------------------------------------------------------------------

R1_CLONES void swiglu_range(const float* g, const float* u, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = g[i] / (1.0f + exp_vec(-g[i])) * u[i];
}

// d/dg silu(g) = s (1 + g (1 - s)), s = sigmoid(g).
R1_CLONES void swiglu_backward_range(const float* dy, const float* g, const float* u, float* dg, float* du,
                                     int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + exp_vec(-g[i]));
    du[i] = dy[i] * g[i] * s;
    dg[i] = dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
}

struct SwigluFn : torch::autograd::Function<SwigluFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& g_in, const torch::Tensor& u_in) {
    const auto g = g_in.contiguous(), u = u_in.contiguous();
    auto y = torch::empty_like(g);
    const float *gp = g.data_ptr<float>(), *up = u.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    at::parallel_for(0, g.numel(), kGrain, [&](int64_t a, int64_t b) { swiglu_range(gp + a, up + a, yp + a, b - a); });
    ctx->save_for_backward({g, u});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &g = saved[0], &u = saved[1];
    const auto dy = grads[0].contiguous();
    auto dg = torch::empty_like(g), du = torch::empty_like(u);
    const float *dyp = dy.data_ptr<float>(), *gp = g.data_ptr<float>(), *up = u.data_ptr<float>();
    float *dgp = dg.data_ptr<float>(), *dup = du.data_ptr<float>();
    at::parallel_for(0, g.numel(), kGrain, [&](int64_t a, int64_t b) {
      swiglu_backward_range(dyp + a, gp + a, up + a, dgp + a, dup + a, b - a);
    });
    return {dg, du};
  }
};

// silu(x[:, :I]) * x[:, I:] for x [N, 2I] (fused experts' gate_up rows): the halves are read in
// place and the gradient is written as one [N, 2I] tensor, where swiglu on two narrowed views would
// copy both halves forward and build the gradient from two zero-padded halves.
struct SwigluHalvesFn : torch::autograd::Function<SwigluHalvesFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in) {
    const auto x = x_in.contiguous();
    const int64_t N = x.size(0), I = x.size(1) / 2;
    auto y = torch::empty({N, I}, x.options());
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    at::parallel_for(0, N, std::max<int64_t>(1, kGrain / I), [&](int64_t a, int64_t b) {
      for (int64_t r = a; r < b; ++r) swiglu_range(xp + r * 2 * I, xp + r * 2 * I + I, yp + r * I, I);
    });
    ctx->save_for_backward({x});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto x = ctx->get_saved_variables()[0];
    const auto dy = grads[0].contiguous();
    const int64_t N = x.size(0), I = x.size(1) / 2;
    auto dx = torch::empty_like(x);
    const float *dyp = dy.data_ptr<float>(), *xp = x.data_ptr<float>();
    float* dxp = dx.data_ptr<float>();
    at::parallel_for(0, N, std::max<int64_t>(1, kGrain / I), [&](int64_t a, int64_t b) {
      for (int64_t r = a; r < b; ++r) {
        const float* g = xp + r * 2 * I;
        float* dg = dxp + r * 2 * I;
        swiglu_backward_range(dyp + r * I, g, g + I, dg, dg + I, I);
      }
    });
    return {dx};
  }
};

// ---- Rotary embedding -----------------------------------------------------------------------

// One position: x [H, D], cos/sin [D]. sign = +1 forward; -1 backward, which rotates by the
// opposite angle (the transpose of the rotation) using cos/sin of the same position.
R1_CLONES void rotary_position(const float* x, const float* cos, const float* sin, float* y, int64_t H, int64_t D,
                               float sign) {
  const int64_t h = D / 2;
  // forward: y1 = x1 c1 - x2 s1, y2 = x2 c2 + x1 s2; backward: y1 = x1 c1 + x2 s2, y2 = x2 c2 - x1 s1
  const float* s_first = sign > 0 ? sin : sin + h;
  const float* s_second = sign > 0 ? sin + h : sin;
  for (int64_t head = 0; head < H; ++head) {
    const float* xh = x + head * D;
    float* yh = y + head * D;
#pragma omp simd
    for (int64_t i = 0; i < h; ++i) {
      yh[i] = xh[i] * cos[i] - sign * xh[i + h] * s_first[i];
      yh[i + h] = xh[i + h] * cos[i + h] + sign * xh[i] * s_second[i];
    }
  }
}

torch::Tensor rotary_apply(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, float sign) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
  auto y = torch::empty_like(x);
  const float *xp = x.data_ptr<float>(), *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, B * T, std::max<int64_t>(1, kGrain / (H * D)), [&](int64_t a, int64_t b) {
    for (int64_t p = a; p < b; ++p) rotary_position(xp + p * H * D, cp + p * D, sp + p * D, yp + p * H * D, H, D, sign);
  });
  return y;
}

struct RotaryFn : torch::autograd::Function<RotaryFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos_in,
                               const torch::Tensor& sin_in) {
    const int64_t B = x.size(0), T = x.size(1), D = x.size(3);
    const auto cos = cos_in.expand({B, T, D}).contiguous(), sin = sin_in.expand({B, T, D}).contiguous();
    ctx->save_for_backward({cos, sin});
    return rotary_apply(x.contiguous(), cos, sin, 1.0f);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {rotary_apply(grads[0].contiguous(), saved[0], saved[1], -1.0f), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool applies(const torch::Tensor& x) {
  static const bool disabled = std::getenv("R1_NO_FUSED_OPS") != nullptr;  // A/B benchmarks, debugging
  return !disabled && x.device().is_cpu() && x.scalar_type() == torch::kFloat32;
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (applies(x) && weight.scalar_type() == torch::kFloat32 && weight.device().is_cpu())
    return RmsNormFn::apply(x, weight, eps);
  return at::rms_norm(x, {x.size(-1)}, weight, eps);
}

std::pair<torch::Tensor, torch::Tensor> add_rms_norm(const torch::Tensor& h, const torch::Tensor& delta,
                                                     const torch::Tensor& weight, double eps) {
  if (torch::GradMode::is_enabled() || !applies(h) || !applies(delta) || h.sizes() != delta.sizes() ||
      weight.scalar_type() != torch::kFloat32 || !weight.device().is_cpu()) {
    auto sum = h + delta;
    return {sum, rms_norm(sum, weight, eps)};
  }
  const auto hc = h.contiguous(), dc = delta.contiguous(), w = weight.contiguous();
  const int64_t C = hc.size(-1), rows = hc.numel() / C;
  auto sum = torch::empty_like(hc), y = torch::empty_like(hc);
  std::vector<float> rstd(static_cast<size_t>(rows));
  const float *hp = hc.data_ptr<float>(), *dp = dc.data_ptr<float>(), *wp = w.data_ptr<float>();
  float *sp = sum.data_ptr<float>(), *yp = y.data_ptr<float>();
  at::parallel_for(0, rows, std::max<int64_t>(1, kGrain / C), [&](int64_t r0, int64_t r1) {
    add_rows(hp + r0 * C, dp + r0 * C, sp + r0 * C, (r1 - r0) * C);
    rms_norm_rows(sp + r0 * C, wp, yp + r0 * C, rstd.data() + r0, r1 - r0, C, static_cast<float>(eps));
  });
  return {sum, y};
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  if (applies(gate) && applies(up) && gate.sizes() == up.sizes()) return SwigluFn::apply(gate, up);
  return torch::silu(gate) * up;
}

torch::Tensor swiglu_halves(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) % 2 == 0, "swiglu_halves: x [N, 2I]");
  if (applies(x)) return SwigluHalvesFn::apply(x);
  const int64_t I = x.size(1) / 2;
  return torch::silu(x.narrow(1, 0, I)) * x.narrow(1, I, I);
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4 && cos.dim() == 3 && x.size(3) % 2 == 0, "rotary: x [B, T, H, D], cos/sin [B, T, D]");
  if (applies(x) && applies(cos) && applies(sin)) return RotaryFn::apply(x, cos, sin);
  return apply_rotary(x.transpose(1, 2), cos.unsqueeze(1), sin.unsqueeze(1)).transpose(1, 2);
}

int parallel_threads_used(int64_t chunks) {
  std::vector<char> seen(static_cast<size_t>(at::get_num_threads()), 0);
  at::parallel_for(0, chunks, 1, [&](int64_t, int64_t) { seen[static_cast<size_t>(at::get_thread_num())] = 1; });
  int used = 0;
  for (char s : seen) used += s;
  return used;
}

}  // namespace r1::fused

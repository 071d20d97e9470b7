// Fused CPU kernels for the elementwise parts of a decoder layer: RMSNorm, SwiGLU's silu(g) * u and
// the rotary embedding, each one pass over memory forward and one backward (autograd functions),
// and, without autograd, the residual add together with the norm after it.
//
// Why: for the small models r1 trains on a CPU (the demo's 0.9M-parameter policy), libtorch's
// composite versions of these three ops are ~10 kernels forward and ~20 backward per layer, each a
// full pass over the activations. Fused (one pass each way), forward + backward on the demo's
// activations measured 3-4x (RMSNorm), 2-3x (rotary) and 1.6x (SwiGLU) faster, and end to end
// pretraining of the demo model 1.15x, a GRPO step 1.1x and tiny decoding 1.2x (docs/benchmarks.md).
//
// The fused path runs for contiguous-able float32 CPU tensors; anything else (CUDA, bf16 under
// autocast, float64) takes the composite path, which is the reference the tests compare against.
#pragma once
#include <torch/torch.h>

namespace r1::fused {

// True when x would take the fused path (float32 on the CPU, and R1_NO_FUSED_OPS unset: that
// environment variable turns the fused kernels off, for A/B measurements).
bool applies(const torch::Tensor& x);

// x [..., C] * rsqrt(mean(x^2) + eps) * weight [C] (HF's LlamaRMSNorm in float32).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// (h + delta, rms_norm(h + delta, weight)): a decoder layer's residual add and the norm after it,
// one pass over the rows when no gradient is recorded (decoding, evaluation; the same float
// operations as the two apart), else the two ops with autograd.
std::pair<torch::Tensor, torch::Tensor> add_rms_norm(const torch::Tensor& h, const torch::Tensor& delta,
                                                     const torch::Tensor& weight, double eps);

// silu(gate) * up, same shapes.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);

// silu(x[:, :I]) * x[:, I:] for x [N, 2I]: SwiGLU on a fused gate-and-up product.
torch::Tensor swiglu_halves(const torch::Tensor& x);

// HF's rotate-half rotary embedding of x [B, T, H, D] with cos/sin [B, T, D] (the same angle for
// every head): out = x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x[D/2:], x[:D/2]).
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// How many threads an at::parallel_for over `chunks` one-item chunks ran on, from this file: its
// OpenMP body is inline in ATen's headers, so without -fopenmp for this file the kernels above
// silently run on one thread (tests check that they do not).
int parallel_threads_used(int64_t chunks);

}  // namespace r1::fused

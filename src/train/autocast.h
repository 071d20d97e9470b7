// Mixed precision for the training loops (pretrain/SFT, GRPO): matrix products in bfloat16 while
// the weights, the optimizer state and the loss stay fp32 (the fp32 "master" weights are the
// parameters). On CUDA that is libtorch's autocast (matmuls and attention in bf16); on the CPU it
// is model/bf16_matmul.h (linear layers in bf16 with fp32 in and out, so the fused fp32 kernels
// keep running: faster than CPU autocast, docs/training.md).
#pragma once
#include <string>

#include <ATen/autocast_mode.h>

#include "model/bf16_matmul.h"
#include "util/error.h"

namespace r1 {

class AutocastScope {
 public:
  AutocastScope(bool enabled, c10::DeviceType device)
      : enabled_(enabled && device != c10::DeviceType::CPU), device_(device), cpu_(enabled && device == c10::DeviceType::CPU) {
    if (!enabled_) return;
    previous_ = at::autocast::is_autocast_enabled(device_);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, previous_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_, previous_ = false;
  c10::DeviceType device_;
  CpuBf16MatmulScope cpu_;
};

// --precision auto | fp32 | bf16 -> whether to train with bf16 matrix products (auto: on CUDA only).
inline bool use_bf16(const std::string& precision, bool cuda) {
  if (precision != "auto" && precision != "fp32" && precision != "bf16")
    throw Error("--precision '" + precision + "': expected auto, fp32 or bf16");
  return precision == "bf16" || (precision == "auto" && cuda);
}

}  // namespace r1

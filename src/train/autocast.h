// Mixed precision for the training loops (pretrain/SFT, GRPO): matmuls and attention in bfloat16
// under autocast while the weights, the optimizer state and the loss stay fp32 (the fp32 "master"
// weights are the parameters).
#pragma once
#include <string>

#include <ATen/autocast_mode.h>

#include "util/error.h"

namespace r1 {

class AutocastScope {
 public:
  AutocastScope(bool enabled, c10::DeviceType device) : enabled_(enabled), device_(device) {
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
};

// --precision auto | fp32 | bf16 -> whether to autocast to bf16 (auto: on CUDA only).
inline bool use_bf16(const std::string& precision, bool cuda) {
  if (precision != "auto" && precision != "fp32" && precision != "bf16")
    throw Error("--precision '" + precision + "': expected auto, fp32 or bf16");
  return precision == "bf16" || (precision == "auto" && cuda);
}

}  // namespace r1

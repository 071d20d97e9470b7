// Learning-rate schedules: linear warmup, then constant, cosine, warmup-stable-decay (WSD) or
// DeepSeek LLM's multi-step schedule (x0.316 at 80% of the run, x0.1 at 90%; DeepSeek LLM
// paper / README, reference/deepseek-architecture.md 1.2). Torch-free.
#pragma once
#include <cstdint>
#include <string>

namespace r1 {

struct LrSchedule {
  std::string kind = "multistep";  // constant | cosine | wsd | multistep
  double max_lr = 3e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr_ratio = 0.1;   // cosine / wsd end at max_lr * min_lr_ratio
  double decay_fraction = 0.2; // wsd: the last 20% of steps decay linearly
  // multistep: (fraction of the run, factor of max_lr) milestones, DeepSeek LLM's defaults.
  double step1_at = 0.8, step1_factor = 0.316, step2_at = 0.9, step2_factor = 0.1;

  // The learning rate for 0-based `step`. Throws r1::Error for an unknown kind.
  double at(int64_t step) const;
  void validate() const;
};

}  // namespace r1

#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace r1 {

void LrSchedule::validate() const {
  if (kind != "constant" && kind != "cosine" && kind != "wsd" && kind != "multistep")
    throw Error("unknown LR schedule '" + kind + "' (constant, cosine, wsd, multistep)");
  if (!(max_lr > 0)) throw Error("the learning rate must be positive");
  if (warmup_steps < 0 || total_steps <= 0) throw Error("warmup steps must be >= 0 and total steps > 0");
  if (min_lr_ratio < 0 || min_lr_ratio > 1) throw Error("min LR ratio must lie in [0, 1]");
  if (decay_fraction <= 0 || decay_fraction > 1) throw Error("WSD decay fraction must lie in (0, 1]");
}

// Called every training step: the numeric checks live in validate(), run once when training starts.
double LrSchedule::at(int64_t step) const {
  if (kind != "constant" && kind != "cosine" && kind != "wsd" && kind != "multistep")
    throw Error("unknown LR schedule '" + kind + "' (constant, cosine, wsd, multistep)");
  // Warmup: step 0 already trains, at max_lr / warmup (as DeepSeek's lr * step / 2000, shifted by one).
  if (step < warmup_steps) return max_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const double progress = static_cast<double>(step) / static_cast<double>(total_steps);  // fraction of the run
  const double min_lr = max_lr * min_lr_ratio;
  if (kind == "constant") return max_lr;
  if (kind == "multistep") {
    if (progress >= step2_at) return max_lr * step2_factor;
    if (progress >= step1_at) return max_lr * step1_factor;
    return max_lr;
  }
  if (kind == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
    const double t = std::min(1.0, static_cast<double>(step - warmup_steps) / span);
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + std::cos(M_PI * t));
  }
  // wsd: stable at max_lr, then linear decay to min_lr over the last decay_fraction of the run.
  const double decay_start = 1.0 - decay_fraction;
  if (progress < decay_start) return max_lr;
  const double t = std::min(1.0, (progress - decay_start) / decay_fraction);
  return max_lr + (min_lr - max_lr) * t;
}

}  // namespace r1

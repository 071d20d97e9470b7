// The flags of mixture-of-experts load balancing (train/expert_balance.h), torch-free so that
// option structs can hold them.
#pragma once

namespace r1 {

struct ExpertBalanceOptions {
  // Negative: the architecture's default (V3: 0.001 and 1e-4, the report's values; V2: no bias
  // and config.json's aux_loss_alpha, else 0.001).
  double bias_update_speed = -1;
  double balance_loss_weight = -1;
};

}  // namespace r1

// `r1 plan`: the memory one rank of a training job needs, component by component, from the
// architecture and the job's shape (reference/scaling-and-lora.md §2 and §5). The terms are those of
// r1's own implementation: fp32 master weights and gradients (bf16 autocast computes in bf16 but
// keeps fp32 weights), AdamW's two fp32 moments, a reference model in bf16 (fp32 with --fp32), the engine's dense
// fp32 KV cache for this rank's rollouts, the saved activations of the training forward (measured
// per token and layer on r1's layers: bench/run_plan_check.py), the head a chunk of rows at a time.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/lora_config.h"

namespace r1 {

struct PlanOptions {
  int64_t gpus = 1;              // data-parallel ranks
  int zero = 0;                  // ZeRO stage 0-3
  LoraConfig lora;               // rank > 0: adapters only are trained
  bool checkpoint_activations = false;
  int64_t rollouts = 256;        // GRPO rollouts per step over all ranks (0: pretraining/SFT, no engine)
  int64_t rollout_batch = 0;     // sequences decoded at once per rank (r1 grpo --rollout-batch; 0: all)
  int64_t max_context = 4096;    // tokens per sequence: prompt + completion
  int64_t micro_batch = 1;       // sequences per training forward
  double beta = 0;               // KL coefficient: > 0 keeps a reference model (unless LoRA)
  bool bf16 = true;              // autocast (the default on CUDA): activations in bf16
  double memory_gb = 80;         // the device's memory, to say what fits
};

// GRPO alternates two phases: rollouts (the engine's KV cache) and training (gradients,
// activations); the engine frees its cache before the training pass and the gradients are freed
// after the optimizer step, so a rank's peak is what both keep plus the larger phase.
enum class Phase { kAlways, kRollouts, kTraining };

struct PlanItem {
  std::string what;
  double bytes = 0;
  std::string formula;
  Phase phase = Phase::kAlways;
};

struct MemoryPlan {
  std::vector<PlanItem> items;
  int64_t parameters = 0, trained_parameters = 0;
  double phase_bytes(Phase phase) const;
  double total() const;  // always + the larger of the two phases
  bool fits(double memory_gb) const { return total() <= memory_gb * 1e9; }
};

// Parameters LoRA adds (and trains) for `lora` on this architecture.
int64_t lora_parameter_count(const ModelConfig& c, const LoraConfig& lora);

MemoryPlan plan_memory(const ModelConfig& c, const PlanOptions& o);

}  // namespace r1

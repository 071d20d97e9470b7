// r1 plan: what one rank of a training job needs in memory, and whether it fits (train/memory_plan.h).
#include <algorithm>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "model/presets.h"
#include "train/memory_plan.h"
#include "util/error.h"

namespace r1::cli {

void add_plan_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("plan", "memory per rank of a GRPO (or pretraining/SFT) job, and what fits");
  struct Args {
    std::string preset, model;
    PlanOptions o;
    bool fp32 = false, json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--preset", a->preset, "a named architecture (r1 model info lists them)");
  cmd->add_option("--model", a->model, "a model directory (its config.json)");
  cmd->add_option("--gpus", a->o.gpus, "data-parallel ranks")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--zero", a->o.zero, "ZeRO stage (--zero of the training commands)")->capture_default_str()
      ->check(CLI::Range(0, 3));
  cmd->add_option("--lora", a->o.lora.rank, "LoRA rank (0: full fine-tuning)")->capture_default_str();
  cmd->add_option_function<std::string>(
      "--lora-targets", [a](const std::string& s) { a->o.lora.targets = LoraConfig::parse_targets(s); },
      "LoRA's target modules or all-linear")->default_str("q_proj,k_proj,v_proj,o_proj");
  cmd->add_flag("--checkpoint-activations", a->o.checkpoint_activations, "per-layer recomputation");
  cmd->add_option("--rollouts", a->o.rollouts, "GRPO rollouts per step over all ranks (0: pretraining/SFT)")
      ->capture_default_str();
  cmd->add_option("--rollout-batch", a->o.rollout_batch,
                  "sequences decoded at once per rank (r1 grpo --rollout-batch; 0: all of the rank's rollouts)")
      ->capture_default_str();
  cmd->add_option("--max-context", a->o.max_context, "tokens per sequence (prompt + completion)")->capture_default_str();
  cmd->add_option("--micro-batch", a->o.micro_batch, "sequences per training forward")->capture_default_str();
  cmd->add_option("--beta", a->o.beta, "KL coefficient (> 0 keeps a reference model)")->capture_default_str();
  cmd->add_flag("--fp32", a->fp32, "activations in fp32 (the CPU's default) instead of bf16 autocast");
  cmd->add_option("--memory", a->o.memory_gb, "device memory in GB")->capture_default_str();
  cmd->add_flag("--json", a->json, "print the plan as JSON");
  cmd->callback([a] {
    if (a->preset.empty() == a->model.empty()) throw Error("give exactly one of --preset or --model");
    const ModelConfig c = a->preset.empty() ? ModelConfig::load(a->model + "/config.json") : preset_config(a->preset);
    a->o.bf16 = !a->fp32;
    const MemoryPlan p = plan_memory(c, a->o);
    if (a->json) {
      nlohmann::json j = {{"parameters", p.parameters}, {"trained_parameters", p.trained_parameters},
                          {"total_bytes", p.total()}, {"fits", p.fits(a->o.memory_gb)}, {"items", nlohmann::json::array()}};
      const char* phases[] = {"always", "rollouts", "training"};
      for (const auto& i : p.items)
        j["items"].push_back({{"what", i.what}, {"bytes", i.bytes}, {"formula", i.formula},
                              {"phase", phases[static_cast<int>(i.phase)]}});
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::printf("%s: %lld parameters, %lld trained; %lld GPU(s), ZeRO-%d%s\n",
                a->preset.empty() ? a->model.c_str() : a->preset.c_str(), (long long)p.parameters,
                (long long)p.trained_parameters, (long long)a->o.gpus, a->o.zero,
                a->o.checkpoint_activations ? ", activation checkpointing" : "");
    const int64_t per_rank = (a->o.rollouts + a->o.gpus - 1) / a->o.gpus;
    const int64_t at_once = a->o.rollout_batch > 0 ? std::min(per_rank, a->o.rollout_batch) : per_rank;
    std::printf("per rank: %lld rollouts (%lld decoded at once) x %lld tokens in the engine, micro-batches of %lld x "
                "%lld tokens\n\n",
                (long long)per_rank, (long long)at_once, (long long)a->o.max_context, (long long)a->o.micro_batch,
                (long long)a->o.max_context);
    const char* phase_names[] = {"", "  [rollouts]", "  [training]"};
    for (const auto& i : p.items)
      std::printf("  %-32s %9.2f GB   %s%s\n", i.what.c_str(), i.bytes / 1e9, i.formula.c_str(),
                  phase_names[static_cast<int>(i.phase)]);
    const double total = p.total() / 1e9;
    std::printf("  %-32s %9.2f GB   (kept throughout + the larger of rollouts %.2f GB and training %.2f GB)\n\n",
                "peak", total, p.phase_bytes(Phase::kRollouts) / 1e9, p.phase_bytes(Phase::kTraining) / 1e9);
    if (p.fits(a->o.memory_gb))
      std::printf("fits in %.0f GB (%.1f GB to spare)\n", a->o.memory_gb, a->o.memory_gb - total);
    else
      std::printf("does not fit in %.0f GB (%.1f GB over): more GPUs with --zero, --lora, --checkpoint-activations, "
                  "fewer rollouts per step or a shorter context\n", a->o.memory_gb, total - a->o.memory_gb);
  });
}

}  // namespace r1::cli

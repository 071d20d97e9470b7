// r1 grpo: reinforcement learning with GRPO and rule-based rewards (rl/grpo.h).
#include <csignal>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "cli/runtime.h"
#include "dist/launch_env.h"
#include "rl/grpo.h"
#include "util/error.h"
#include "util/progress.h"

namespace r1::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void request_grpo_stop(int) { g_stop = true; }

}  // namespace

void add_grpo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("grpo", "GRPO reinforcement learning with rule-based rewards (R1-Zero)");
  struct Args {
    GrpoOptions o;
    RuntimeOptions rt;
  };
  auto a = std::make_shared<Args>();
  auto& o = a->o;
  o.schedule.kind = "constant";
  o.schedule.max_lr = 1e-6;  // DeepSeekMath's GRPO learning rate
  cmd->add_option("--init", o.init, "the policy to start from (model directory with tokenizer.json)");
  cmd->add_option("--prompts", o.prompts, "JSONL: prompt/problem/question or messages, plus answer/tests/...")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", o.out, "run directory")->required();
  cmd->add_option("--prompt-template", o.prompt_template, "r1-zero (DeepSeek-R1-Zero), chat, plain")->capture_default_str();
  cmd->add_option("--chat-template", o.chat_template, "for --prompt-template chat: a template name");
  cmd->add_option("--steps", o.steps, "GRPO steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--prompts-per-step", o.prompts_per_step, "P")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--group-size", o.group_size, "G completions per prompt")->capture_default_str();
  cmd->add_option("--mu", o.mu, "optimisation passes per batch of rollouts")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--micro-batch", o.micro_batch, "sequences per forward/backward")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--beta", o.loss.beta, "k3 KL coefficient (0: no reference model)")->capture_default_str();
  cmd->add_flag("--kl-bias-correction", o.loss.kl_bias_correction,
                "KL term x importance ratio: the unbiased KL gradient of DeepSeek-V3.2 (TRL's default)");
  cmd->add_option("--epsilon", o.loss.epsilon, "clip range low")->capture_default_str();
  cmd->add_option("--epsilon-high", o.loss.epsilon_high, "clip range high (DAPO clip-higher: 0.28)")->capture_default_str();
  cmd->add_option("--delta", o.loss.delta,
                  "two-sided clipping (INTELLECT-2): cap the unclipped ratio at delta, > 1 + eps-high (0: off)")
      ->capture_default_str();
  cmd->add_option("--surrogate", o.loss.surrogate,
                  "clip (PPO/GRPO) or cispo (MiniMax-M1: the IS weight capped at --epsilon-high, e.g. 5, without "
                  "gradient, times the advantage and the log-prob)")
      ->capture_default_str()->check(CLI::IsMember({"clip", "cispo"}));
  cmd->add_option("--rollout-correction", o.loss.rollout_correction,
                  "reweight the surrogate by exp(trained - sampled log-prob) when the sampler differs from the trained "
                  "policy (top-p, bf16 training): none, token-truncate, token-mask, sequence-truncate, sequence-mask "
                  "(TRL's vllm_importance_sampling_correction)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "token-truncate", "token-mask", "sequence-truncate", "sequence-mask"}));
  cmd->add_option("--rollout-correction-min", o.loss.rollout_correction_min, "weights below: clipped up / zeroed (0: none)")
      ->capture_default_str();
  cmd->add_option("--rollout-correction-max", o.loss.rollout_correction_max, "weights above: clipped / zeroed")
      ->capture_default_str();
  cmd->add_option("--off-policy-mask", o.loss.off_policy_mask,
                  "DeepSeek-V3.2 off-policy sequence masking: drop the surrogate of negative-advantage completions "
                  "whose mean log-ratio sampler/policy exceeds this (0: off)")
      ->capture_default_str();
  cmd->add_option("--loss-agg", o.loss.loss_agg, "seq-mean-token-mean (GRPO), token-mean (DAPO), seq-mean-token-sum-norm (Dr. GRPO)")
      ->capture_default_str();
  cmd->add_option("--scale-rewards", o.scale_rewards, "group, batch, none (Dr. GRPO)")->capture_default_str();
  cmd->add_option("--importance-level", o.loss.importance_level, "token, sequence (GSPO)")->capture_default_str();
  cmd->add_flag("--drop-zero-variance-groups", o.drop_zero_variance_groups, "DAPO dynamic sampling");
  cmd->add_option("--max-resample-rounds", o.max_resample_rounds, "extra generation rounds to refill dropped groups")
      ->capture_default_str();
  cmd->add_flag("--mask-truncated", o.mask_truncated, "no gradient from completions that hit the length limit");
  cmd->add_option("--prompt-sharing", o.prompt_sharing,
                  "training forward: a group's completions share one pass over its prompt (on), or each row runs whole "
                  "(off); auto: sharing where it computes <= 85% of the rows' positions")
      ->capture_default_str()->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_flag("--train-zero-advantage", o.train_zero_advantage,
                "also run the forward/backward of rollouts whose gradient is exactly 0 (advantage 0 with beta 0, or "
                "masked), as TRL does; by default they are skipped, which leaves the update unchanged");
  cmd->add_option("--rollout-batch", o.rollout_batch,
                  "sequences decoded at once per rank: the engine's KV cache holds this many rows of prompt + "
                  "completion, and the rest of the step's rollouts wait for a free row (0: all of them at once)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--rank-balance", o.rank_balance,
                  "data parallel: tokens pools the step's rollouts and deals them out so every rank trains as many "
                  "tokens; none trains each rank on its own prompts' rollouts")
      ->capture_default_str()->check(CLI::IsMember({"tokens", "none"}));
  cmd->add_option("--ref-reset-every", o.ref_reset_every, "iterative GRPO: the reference becomes the policy every K steps")
      ->capture_default_str();
  cmd->add_option("--temperature", o.temperature, "rollout temperature")->capture_default_str();
  cmd->add_option("--top-p", o.top_p, "rollout top-p")->capture_default_str();
  cmd->add_option("--top-k", o.top_k, "rollout top-k (0: off)")->capture_default_str();
  cmd->add_option("--min-p", o.min_p, "rollout min-p (0: off)")->capture_default_str();
  cmd->add_option("--repetition-penalty", o.repetition_penalty, "rollout repetition penalty (1: off)")
      ->capture_default_str();
  cmd->add_option("--max-completion-tokens", o.max_completion_tokens, "rollout length limit")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--reward", o.reward, "weighted rewards, e.g. accuracy_math:1,format_think:0.5")->capture_default_str();
  cmd->add_option("--reward-command", o.reward_options.external_command, "command of the 'external' reward")
      ->expected(1, -1)->delimiter(' ');
  cmd->add_flag("--unsafe-no-sandbox", o.reward_options.unsafe_no_sandbox, kUnsafeNoSandboxHelp);
  cmd->add_option("--overlong-max-tokens", o.reward_options.overlong_max_tokens, "length_overlong: L_max")->capture_default_str();
  cmd->add_option("--overlong-cache-tokens", o.reward_options.overlong_cache_tokens, "length_overlong: L_cache")
      ->capture_default_str();
  cmd->add_flag("--rm-normalize", o.rm_normalize, "rm:DIR scores become z-scores over each step's completions");
  cmd->add_option("--rm-update-every", o.rm_updates.every,
                  "iterative RL (DeepSeekMath): every K steps train the reward model on fresh samples labelled by the "
                  "first rule reward, with replay, and reset the reference")->capture_default_str();
  cmd->add_option("--rm-lr", o.rm_updates.lr, "reward-model learning rate for those updates")->capture_default_str();
  cmd->add_option("--rm-batch-size", o.rm_updates.batch_size)->capture_default_str();
  cmd->add_option("--rm-update-epochs", o.rm_updates.epochs)->capture_default_str();
  cmd->add_option("--rm-replay-fraction", o.rm_updates.replay_fraction, "share of each update drawn from history (10%)")
      ->capture_default_str();
  cmd->add_option("--eval-task", o.heldout.task,
                  "held-out problems answered greedily before the first step, every --eval-every steps and after the "
                  "last (gsm8k, math500, ... or a JSONL file, as r1 eval takes them; posed in --prompt-template's "
                  "format, with r1 eval's instruction in chat): heldout_accuracy in metrics.jsonl and the report");
  cmd->add_option("--eval-every", o.heldout.every, "steps between held-out evaluations (0: before and after only)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-limit", o.heldout.limit, "only the first N held-out problems (0: all)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-max-tokens", o.heldout.max_new_tokens, "held-out answer length limit")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--eval-data-dir", o.heldout.data_dir, "where built-in held-out tasks live (default: r1's data)");
  cmd->add_option("--lr", o.schedule.max_lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--schedule", o.schedule.kind, "constant, cosine, wsd, multistep")->capture_default_str();
  cmd->add_option("--warmup-steps", o.schedule.warmup_steps, "linear warmup")->capture_default_str();
  cmd->add_option("--weight-decay", o.weight_decay)->capture_default_str();
  cmd->add_option("--adam-beta1", o.beta1, "AdamW beta1")->capture_default_str();
  cmd->add_option("--adam-beta2", o.beta2, "AdamW beta2")->capture_default_str();
  cmd->add_option("--adam-eps", o.adam_eps, "AdamW epsilon")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--clip", o.clip, "gradient norm clip")->capture_default_str();
  add_expert_balance_flags(cmd, o.balance);
  add_lora_flags(cmd, o.lora);
  add_zero_flag(cmd, o.zero);
  cmd->add_option("--seed", o.seed, "prompt order and sampling seed")->capture_default_str();
  cmd->add_option("--save-every", o.save_every, "checkpoint every N steps (0: at the end)")->capture_default_str();
  cmd->add_option("--log-every", o.log_every)->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--sample-every", o.sample_every, "sample completions to samples.jsonl every N steps")->capture_default_str();
  cmd->add_option("--samples-per-log", o.samples_per_log, "completions (with prompt, reward, advantage) per sampled step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--reward-threads", o.reward_threads, "parallel reward checks (0 = cores)")->capture_default_str();
  cmd->add_option("--precision", o.precision,
                  "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16: bf16 matrix products in the training passes; weights stay fp32")
      ->capture_default_str();
  cmd->add_option("--rollout-dtype", o.rollout_dtype,
                  "the weights rollouts decode with: fp32 (the policy's own), or int8 (per-row int8 copies "
                  "of its linear layers, remade after each optimizer step; faster decoding on CPUs; the "
                  "training passes and held-out evaluations stay fp32)")
      ->capture_default_str()->check(CLI::IsMember({"fp32", "int8"}));
  cmd->add_option("--reference-dtype", o.reference_dtype,
                  "the KL reference model's weights: auto (bf16 when --precision gives bf16 products, else fp32), "
                  "fp32, bf16 (half the memory)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_flag("--checkpoint-activations", o.checkpoint_activations,
                "recompute each decoder layer in the backward pass instead of keeping its activations (less memory, one more forward)");
  cmd->add_option("--dist-timeout", o.dist_timeout_s,
                  "data parallel (r1 launch / torchrun): seconds a rank waits for the others before failing")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--resume", o.resume, "continue the run in --out up to --steps");
  a->rt.add_to(cmd);
  cmd->callback([a, cmd] {
    const torch::Device device = a->rt.setup();
    const LaunchEnv env = LaunchEnv::from_environment();
    a->o.device = a->rt.device_for_rank(device, env);
    a->o.schedule.total_steps = a->o.steps;
    a->o.args_toml = effective_config_toml(*cmd);
    std::signal(SIGINT, request_grpo_stop);
    std::signal(SIGTERM, request_grpo_stop);
    ProgressBar bar;
    GrpoStepMetrics last;
    const int64_t done = grpo(a->o, &g_stop, [&](const GrpoStepMetrics& m) {
      last = m;
      char unit[128];
      std::snprintf(unit, sizeof unit, " steps, reward %.3f, accuracy %.2f, length %.1f, kl %.4f", m.reward, m.accuracy,
                    m.completion_length, m.kl);
      bar.update("grpo", static_cast<uint64_t>(m.step), static_cast<uint64_t>(a->o.steps), unit);
    });
    bar.finish();
    if (!env.is_main()) return;
    if (!print_if_stopped(g_stop, done, a->o.steps, a->o.out))
      std::printf("grpo: %lld steps, reward %.3f, accuracy %.3f: %s\n", (long long)done, last.reward, last.accuracy,
                  a->o.out.c_str());
  });
}

}  // namespace r1::cli

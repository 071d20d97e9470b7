// r1 pretrain and r1 sft: one training loop (train/pretrain.h), two data sources.
#include <csignal>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "cli/runtime.h"
#include "dist/launch_env.h"
#include "distill/same_tokenizer.h"
#include "model/presets.h"
#include "train/pretrain.h"
#include "util/error.h"
#include "util/progress.h"

namespace r1::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void request_stop(int) { g_stop = true; }


void add_training_command(CLI::App& app, const std::string& stage) {
  const bool sft = stage == "sft";
  auto* cmd = app.add_subcommand(stage, sft ? "supervised fine-tuning on conversations (loss on assistant tokens only)"
                                            : "pretrain (or continue pretraining) a model on token shards");
  struct Args {
    PretrainOptions o;
    std::string preset, model_config;
    std::string teacher;  // sft --teacher: the tokenizer check of distillation
    RuntimeOptions rt;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--preset", a->preset, "architecture preset for a new model");
  cmd->add_option("--model-config", a->model_config, "HF config.json for a new model");
  cmd->add_option("--init", a->o.init_dir, "start from this model directory");
  cmd->add_option("--rope-scaling", a->o.rope_scaling,
                  "long-context extension of --init: linear:4, yarn:4, dynamic:2, llama3:8 (x max_position_embeddings)");
  cmd->add_option("--tokenizer", a->o.tokenizer, "tokenizer.json the data was prepared with")->required();
  a->o.stage = stage;
  if (sft) {
    a->o.schedule.kind = "cosine";
    a->o.schedule.max_lr = 1e-5;  // DeepSeek LLM 7B SFT
    a->o.weight_decay = 0.0;
    cmd->add_option("--data", a->o.data, "conversations JSONL: {\"messages\": [{\"role\", \"content\"}, ...]} per line")
        ->required()->check(CLI::ExistingFile);
    cmd->add_option("--chat-template", a->o.chat_template, "template name; default: recognise the tokenizer_config.json's");
    cmd->add_option("--teacher", a->teacher,
                    "distillation: the model whose samples --data holds; refused unless its tokenizer is --tokenizer");
    cmd->add_flag("--skip-bad-lines", a->o.skip_bad_lines, "skip malformed conversation lines");
    cmd->add_flag("--pack", a->o.pack,
                  "several whole conversations per row of --seq-len + 1 tokens, attention and positions per conversation");
  } else {
    cmd->add_option("--data", a->o.data, "shard directories from r1 data prepare: dir[:weight],...")->required();
  }
  cmd->add_option("--out", a->o.out, "run directory (a model directory + trainer_state + metrics.jsonl)")->required();
  cmd->add_option("--steps", a->o.steps, "optimizer steps in total")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seq-len", a->o.seq_len, "tokens per sequence")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch-tokens", a->o.batch_tokens, "tokens per optimizer step")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--micro-batch", a->o.micro_batch, "sequences per forward/backward")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a->o.schedule.max_lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--schedule", a->o.schedule.kind, "multistep (DeepSeek), cosine, wsd, constant")->capture_default_str();
  cmd->add_option("--warmup-steps", a->o.schedule.warmup_steps, "linear warmup steps")->capture_default_str();
  cmd->add_option("--min-lr-ratio", a->o.schedule.min_lr_ratio, "cosine/wsd final LR / peak")->capture_default_str();
  cmd->add_option("--weight-decay", a->o.weight_decay, "AdamW weight decay (not on norms/biases)")->capture_default_str();
  cmd->add_option("--beta1", a->o.beta1)->capture_default_str();
  cmd->add_option("--beta2", a->o.beta2)->capture_default_str();
  cmd->add_option("--clip", a->o.clip, "gradient norm clip")->capture_default_str();
  add_expert_balance_flags(cmd, a->o.balance);
  add_lora_flags(cmd, a->o.lora);
  add_zero_flag(cmd, a->o.zero);
  cmd->add_option("--mtp-weight", a->o.mtp_weight,
                  "weight of the multi-token prediction loss (DeepSeek-V3 models with num_nextn_predict_layers; "
                  "V3 used 0.3, then 0.1); 0: off")
      ->check(CLI::Range(0.0, 10.0))
      ->capture_default_str();
  cmd->add_option("--seed", a->o.seed, "initialisation and data-order seed")->capture_default_str();
  cmd->add_option("--save-every", a->o.save_every, "checkpoint every N steps (0: at the end only)")->capture_default_str();
  cmd->add_option("--keep-checkpoints", a->o.keep_checkpoints,
                  "also keep the last K checkpoints as model directories in RUN/checkpoints/step-N")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--log-every", a->o.log_every, "metrics.jsonl every N steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--resume", a->o.resume, "continue the run in --out up to --steps");
  cmd->add_option("--val-data", a->o.val_data, "held-out data, same form as --data");
  cmd->add_option("--eval-every", a->o.eval_every, "validation loss and bits/byte every N steps")->capture_default_str();
  cmd->add_option("--eval-batches", a->o.eval_batches, "micro-batches per validation")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--sample-every", a->o.sample_every, "greedy samples of --sample-prompt every N steps (samples.jsonl)")
      ->capture_default_str();
  cmd->add_option("--sample-prompt", a->o.sample_prompt, "prompt for the samples")->capture_default_str();
  cmd->add_option("--peak-tflops", a->o.peak_tflops, "hardware peak for the MFU column")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--dist-timeout", a->o.dist_timeout_s,
                  "data parallel: seconds a rank waits for the others (rendezvous, each all-reduce) before failing")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--precision", a->o.precision, "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 (bf16 matrix products, fp32 master weights)")
      ->capture_default_str();
  cmd->add_flag("--checkpoint-activations", a->o.checkpoint_activations,
                "recompute each decoder layer in the backward pass instead of keeping its activations (less memory, one more forward)");
  a->rt.add_to(cmd);
  cmd->callback([a, cmd] {
    if (!a->teacher.empty()) {  // distillation: the student must read the teacher's tokens
      const std::string difference = tokenizer_difference(Tokenizer::load(a->teacher + "/tokenizer.json"),
                                                          Tokenizer::load(a->o.tokenizer));
      if (!difference.empty())
        throw Error("teacher " + a->teacher + " and student tokenizer " + a->o.tokenizer + " differ: " + difference +
                    ". Distillation needs one vocabulary: build the student with the teacher's tokenizer.json");
    }
    const torch::Device device = a->rt.setup();
    const LaunchEnv env = LaunchEnv::from_environment();
    a->o.device = a->rt.device_for_rank(device, env);
    if (a->o.init_dir.empty() && !a->o.resume) {
      if (a->preset.empty() == a->model_config.empty()) throw Error("give --preset or --model-config (or --init DIR)");
      a->o.config = a->preset.empty() ? ModelConfig::load(a->model_config) : preset_config(a->preset);
    } else if (!a->preset.empty()) {
      a->o.config = preset_config(a->preset);
    }
    a->o.schedule.total_steps = a->o.steps;
    a->o.args_toml = effective_config_toml(*cmd);
    // SIGINT/SIGTERM: finish the step, save a checkpoint, exit cleanly.
    std::signal(SIGINT, request_stop);
    std::signal(SIGTERM, request_stop);
    ProgressBar bar;
    double last_loss = 0;
    const int64_t done = pretrain(a->o, &g_stop, [&](const StepMetrics& m) {
      last_loss = m.loss;
      char unit[96];
      std::snprintf(unit, sizeof unit, " steps, loss %.4f, lr %.2e, %.0f tok/s, MFU %.0f%%", m.loss, m.lr, m.tokens_per_s,
                    100 * m.mfu);
      bar.update(a->o.stage, static_cast<uint64_t>(m.step), static_cast<uint64_t>(a->o.steps), unit);
    });
    bar.finish();
    if (!env.is_main()) return;
    if (!print_if_stopped(g_stop, done, a->o.steps, a->o.out))
      std::printf("%s: %lld steps, final loss %.4f: %s\n", a->o.stage.c_str(), (long long)done, last_loss,
                  a->o.out.c_str());
  });
}

}  // namespace

void add_pretrain_command(CLI::App& app) { add_training_command(app, "pretrain"); }
void add_sft_command(CLI::App& app) { add_training_command(app, "sft"); }

}  // namespace r1::cli

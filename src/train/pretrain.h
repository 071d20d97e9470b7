// The training loop of r1 pretrain and r1 sft: micro-batches from a BatchSource (packed shard
// mixtures, or conversations with an assistant-token mask), next-token cross-entropy over the
// masked targets, AdamW with decay/no-decay parameter groups, gradient accumulation to a global
// batch in tokens, clipping, an LR schedule, metrics.jsonl, and atomic checkpoints (weights +
// trainer_state/) from which --resume continues bit-for-bit.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "model/config.h"
#include "model/lora_config.h"
#include "train/expert_balance_options.h"
#include "train/lr_schedule.h"

namespace r1 {

struct PretrainOptions {
  std::string args_toml;       // the command line as TOML, saved to RUN/args.toml (rerun with --config)
  ModelConfig config;          // used when init_dir is empty
  std::string init_dir;        // start from this model directory instead
  // Long-context extension from --init: "linear:4", "dynamic:2", "yarn:4" or "llama3:8" sets
  // rope_scaling (original length = the init model's max_position_embeddings) and multiplies
  // max_position_embeddings by the factor; written into the run's config.json.
  std::string rope_scaling;
  std::string tokenizer;       // tokenizer.json (copied into the run; its fingerprint must match the data)
  std::string stage = "pretrain";  // or "sft"
  std::string data;            // pretrain: "dir[:weight],dir[:weight]"; sft: conversations JSONL
  std::string chat_template;   // sft: template name; empty = recognise tokenizer_config.json's
  bool skip_bad_lines = false; // sft: skip malformed JSONL lines
  bool pack = false;           // sft: several conversations per row, with document masking
  std::string out;             // the run: a model directory
  int64_t steps = 100;
  int64_t seq_len = 256;
  int64_t batch_tokens = 8192;  // tokens per optimizer step (all micro-batches)
  int64_t micro_batch = 8;      // sequences per forward/backward
  LrSchedule schedule;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, clip = 1.0;
  ExpertBalanceOptions balance;  // mixture-of-experts models only
  double mtp_weight = 0;         // multi-token prediction loss weight (DeepSeek-V3: 0.3, then 0.1); 0: off
  uint64_t seed = 0;
  int64_t save_every = 0;       // 0: only at the end
  int64_t keep_checkpoints = 0;  // also keep the last K saves as RUN/checkpoints/step-N (hard links)
  int64_t log_every = 1;
  double peak_tflops = 0.3;      // MFU denominator (default: fp32 matmul peak of a 2-core dev VM)
  std::string val_data;          // held-out data (same form as data); empty = no validation
  int64_t eval_every = 0;        // validation every N steps (and at the end) when val_data is set
  int64_t eval_batches = 4;      // micro-batches per validation
  int64_t sample_every = 0;      // greedy samples of sample_prompt every N steps -> samples.jsonl
  std::string sample_prompt = "The";
  int64_t sample_tokens = 32;
  bool resume = false;
  // Data parallel (launched by r1 launch, torchrun, srun or mpirun; see dist/launch_env.h):
  // bound on the rendezvous and on every collective, so a dead or stuck rank stops the others.
  int64_t dist_timeout_s = 300;
  std::string device = "cpu";
  // "bf16": bfloat16 autocast for matmuls/attention, fp32 weights and optimizer; "fp32"; "auto":
  // bf16 on CUDA, fp32 on CPU.
  std::string precision = "auto";
  int zero = 0;  // 1: AdamW's state sharded across data-parallel ranks (train/training_optimizer.h)
  bool checkpoint_activations = false;  // recompute each layer in the backward pass (model/checkpoint.h)
  LoraConfig lora;  // rank > 0: train LoRA adapters of --init's model, saved as a PEFT adapter
};

struct StepMetrics {
  int64_t step;
  double loss, lr, grad_norm, tokens_per_s, mfu;
  double val_loss = -1, val_bpb = -1;  // -1: not evaluated at this step
};

// Runs until options.steps (on every rank of a data-parallel job; on_step is called on rank 0) or until *stop becomes true (then saves and returns). `on_step`
// sees every step's metrics (the CLI draws progress from it). Returns the last step done.
int64_t pretrain(const PretrainOptions& options, const std::atomic<bool>* stop,
                 const std::function<void(const StepMetrics&)>& on_step);

}  // namespace r1

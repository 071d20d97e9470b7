// r1 rm train / r1 rm score: learned reward models (rm/reward_model.h, rm/train_rm.h).
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "cli/runtime.h"
#include "dist/launch_env.h"
#include "io/lora_adapter.h"
#include "rm/reward_model.h"
#include "rm/train_rm.h"
#include "util/error.h"
#include "util/progress.h"

namespace r1::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void request_rm_stop(int) { g_stop = true; }

void add_rm_train(CLI::App* rm) {
  auto* cmd = rm->add_subcommand("train", "train a reward model on preference pairs or labelled responses");
  struct Args {
    RmTrainOptions o;
    RuntimeOptions rt;
  };
  auto a = std::make_shared<Args>();
  auto& o = a->o;
  o.schedule.kind = "cosine";
  o.schedule.max_lr = 1e-5;
  cmd->add_option("--init", o.init, "causal LM (gets a new score head) or reward model directory, with tokenizer.json")
      ->required();
  cmd->add_option("--data", o.data, "JSONL: {prompt, chosen, rejected} pairs or {prompt, response, label} rows")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--val-data", o.val_data, "held-out examples (default: --val-fraction of --data)")->check(CLI::ExistingFile);
  cmd->add_option("--val-fraction", o.val_fraction, "share of --data held out when no --val-data")->capture_default_str();
  cmd->add_option("--out", o.out, "the reward model directory to write")->required();
  cmd->add_option("--epochs", o.epochs)->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", o.batch_size, "pairs (or rows) per step")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", o.max_length, "tokens of prompt + response kept (the end)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lr", o.schedule.max_lr, "peak learning rate (DeepSeekMath's RM: 2e-5)")->capture_default_str();
  cmd->add_option("--schedule", o.schedule.kind, "constant, cosine, wsd, multistep")->capture_default_str();
  cmd->add_option("--warmup-steps", o.schedule.warmup_steps)->capture_default_str();
  cmd->add_option("--weight-decay", o.weight_decay)->capture_default_str();
  cmd->add_option("--clip", o.clip, "gradient norm clip")->capture_default_str();
  cmd->add_option("--seed", o.seed, "split, order and head initialisation")->capture_default_str();
  cmd->add_option("--log-every", o.log_every)->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--eval-every", o.eval_every, "held-out accuracy every N steps (0: before and after)")
      ->capture_default_str();
  cmd->add_option("--save-every", o.save_every, "checkpoint every N steps (0: at the end, or when stopped)")
      ->capture_default_str();
  cmd->add_flag("--resume", o.resume, "continue the run in --out (same --data, --seed and --batch-size)");
  cmd->add_option("--precision", o.precision,
                  "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 (bf16 matrix products, fp32 master weights)")
      ->capture_default_str();
  cmd->add_flag("--checkpoint-activations", o.checkpoint_activations,
                "recompute each decoder layer in the backward pass instead of keeping its activations (less memory, one more forward)");
  add_lora_flags(cmd, o.lora);
  add_zero_flag(cmd, o.zero);
  cmd->add_option("--dist-timeout", o.dist_timeout_s,
                  "data parallel (r1 launch / torchrun): seconds a rank waits for the others before failing")
      ->capture_default_str()->check(CLI::PositiveNumber);
  a->rt.add_to(cmd);
  cmd->callback([a, cmd] {
    a->rt.setup();
    a->o.device = a->rt.device;
    a->o.args_toml = effective_config_toml(*cmd);
    std::signal(SIGINT, request_rm_stop);
    std::signal(SIGTERM, request_rm_stop);
    ProgressBar bar;
    const RmTrainResult r = train_reward_model(a->o, &g_stop, [&](int64_t step, int64_t total, double loss) {
      char unit[64];
      std::snprintf(unit, sizeof unit, " steps, loss %.4f", loss);
      bar.update("rm", static_cast<uint64_t>(step), static_cast<uint64_t>(total), unit);
    });
    bar.finish();
    if (!LaunchEnv::from_environment().is_main()) return;  // rank 0 reports
    if (print_if_stopped(r.stopped, r.steps, r.total_steps, a->o.out)) return;
    if (r.val_examples > 0)
      std::printf("rm: %lld steps, held-out accuracy %.3f (%.3f before) on %lld examples: %s\n", (long long)r.steps,
                  r.val_accuracy, r.val_accuracy_before, (long long)r.val_examples, a->o.out.c_str());
    else
      std::printf("rm: %lld steps: %s\n", (long long)r.steps, a->o.out.c_str());
  });
}

void add_rm_score(CLI::App* rm) {
  auto* cmd = rm->add_subcommand("score", "score {prompt, response} (or {prompt, chosen, rejected}) rows with a reward model");
  struct Args {
    std::string model, input, out;
    int64_t batch = 32, max_length = 1024;
    RuntimeOptions rt;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "reward model directory (with tokenizer.json)")->required();
  cmd->add_option("--input", a->input, "JSONL rows; each gets 'score' (or 'chosen_score' and 'rejected_score')")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", a->out, "output JSONL (default: stdout)");
  cmd->add_option("--batch", a->batch)->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", a->max_length)->capture_default_str()->check(CLI::PositiveNumber);
  a->rt.add_to(cmd);
  cmd->callback([a] {
    const torch::Device device = a->rt.setup();
    const Tokenizer tokenizer = Tokenizer::load(a->model + "/tokenizer.json");
    if (!is_reward_model_dir(a->model))
      throw Error(a->model + ": not a reward model (train one with r1 rm train)");
    RewardModelScorer scorer(load_reward_model(a->model, device), &tokenizer, a->max_length, a->batch);
    const std::vector<RmExample> rows = read_rm_examples(a->input);
    std::vector<std::pair<std::string, std::string>> texts;
    for (const auto& e : rows) {
      if (e.pair) {
        texts.emplace_back(e.prompt, e.chosen);
        texts.emplace_back(e.prompt, e.rejected);
      } else {
        texts.emplace_back(e.prompt, e.response);
      }
    }
    const std::vector<double> scores = scorer.score(texts);
    std::ofstream file;
    if (!a->out.empty()) {
      file.open(a->out);
      if (!file) throw Error(a->out + ": cannot write");
    }
    std::ostream& out = a->out.empty() ? std::cout : file;
    size_t k = 0, correct = 0;
    for (const auto& e : rows) {
      nlohmann::json j = {{"prompt", e.prompt}};
      if (e.pair) {
        j["chosen"] = e.chosen;
        j["rejected"] = e.rejected;
        j["chosen_score"] = scores[k];
        j["rejected_score"] = scores[k + 1];
        correct += scores[k] > scores[k + 1];
        k += 2;
      } else {
        j["response"] = e.response;
        j["label"] = e.label;
        j["score"] = scores[k++];
      }
      out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    if (rows.front().pair)
      std::fprintf(stderr, "scored %zu pairs: chosen above rejected in %.3f\n", rows.size(),
                   static_cast<double>(correct) / rows.size());
    else
      std::fprintf(stderr, "scored %zu responses\n", rows.size());
  });
}

}  // namespace

void add_rm_command(CLI::App& app) {
  auto* rm = app.add_subcommand("rm", "reward models: train on preferences, score responses");
  rm->require_subcommand(1);
  add_rm_train(rm);
  add_rm_score(rm);
}

}  // namespace r1::cli

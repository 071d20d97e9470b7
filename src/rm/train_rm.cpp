#include "rm/train_rm.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "dist/launch_env.h"
#include "dist/process_group.h"
#include "io/lora_adapter.h"
#include "io/model_dir.h"
#include "rm/reward_model.h"
#include "train/autocast.h"
#include "util/error.h"
#include "util/json_file.h"
#include "util/jsonl.h"

namespace fs = std::filesystem;

namespace r1 {

RmTrainResult train_reward_model(const RmTrainOptions& o, const std::atomic<bool>* stop,
                                 const std::function<void(int64_t, int64_t, double)>& on_step) {
  if (o.batch_size < 1 || o.epochs < 1) throw Error("--batch-size and --epochs must be positive");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) throw Error("--val-fraction must be in [0, 1)");
  const fs::path tokenizer_path = fs::path(o.init) / "tokenizer.json";
  if (!fs::exists(tokenizer_path)) throw Error(o.init + ": no tokenizer.json");
  const fs::path run(o.out), state_path = run / "trainer_state" / "state.json";
  const bool resuming = o.resume && fs::exists(state_path);
  if (!resuming && (fs::exists(run / "config.json") || fs::exists(run / "adapter_config.json")))
    throw Error(o.out + (o.resume ? " holds a model but no trainer_state to resume from: pick a new --out"
                                  : " already holds a model: pass --resume to continue its run, or pick a new --out "
                                    "(a reward model can continue from it with --init)"));
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_path.string());
  std::vector<RmExample> train = read_rm_examples(o.data), val;
  // Every random choice (held-out split, then one shuffle per epoch) comes from this generator,
  // so a resumed run replays it from the seed to reach the same data order.
  std::mt19937_64 rng(o.seed * 0x9e3779b97f4a7c15ull + 3);
  if (!o.val_data.empty()) {
    val = read_rm_examples(o.val_data);
  } else if (o.val_fraction > 0) {
    std::shuffle(train.begin(), train.end(), rng);
    const auto n = static_cast<size_t>(o.val_fraction * static_cast<double>(train.size()));
    val.assign(train.end() - static_cast<long>(n), train.end());
    train.resize(train.size() - n);
  }
  if (train.empty()) throw Error(o.data + ": nothing left to train on after the held-out split");
  if (!val.empty() && val.front().pair != train.front().pair)
    throw Error("--val-data and --data hold different kinds of examples (pairs vs labelled responses)");

  const torch::Device device(o.device);
  // Data parallelism (r1 launch / torchrun): every rank trains on its share of each batch; rank 0
  // alone writes metrics and checkpoints.
  const LaunchEnv env = LaunchEnv::from_environment();
  std::unique_ptr<ProcessGroup> group;
  if (env.distributed()) group = std::make_unique<ProcessGroup>(env, device, std::chrono::seconds(o.dist_timeout_s));
  const bool main_rank = env.is_main();
  Transformer model = load_reward_model(resuming ? o.out : o.init, device, o.seed);
  const RunLora lora = attach_lora(model, o.lora, resuming ? o.out : o.init, o.seed);
  // With LoRA the score head trains whole beside the adapters (PEFT's modules_to_save).
  if (lora.active()) model->score->weight.set_requires_grad(true);
  if (group) {  // every rank starts from rank 0's weights
    std::vector<torch::Tensor> params;
    for (auto& p : model->parameters()) params.push_back(p.detach());
    group->broadcast(params);
  }
  RewardModelTrainer trainer(model, &tokenizer, o.schedule.max_lr, o.weight_decay, o.clip, o.max_length, o.zero,
                             group.get());
  trainer.set_bf16(use_bf16(o.precision, device.is_cuda()));
  trainer.model()->set_checkpoint_activations(o.checkpoint_activations);
  const int64_t per_epoch = (static_cast<int64_t>(train.size()) + o.batch_size - 1) / o.batch_size;
  const int64_t total = per_epoch * o.epochs;
  LrSchedule schedule = o.schedule;
  schedule.total_steps = total;
  schedule.validate();
  // What a resumed run must share with the run it continues (the data order depends on all three).
  const nlohmann::json run_identity = {{"seed", o.seed}, {"batch_size", o.batch_size}, {"train_examples", train.size()}};
  int64_t step = 0;
  if (resuming) {
    const auto state = read_json_file(state_path.string());
    step = state.at("step").get<int64_t>();
    for (const auto& [key, now] : run_identity.items())
      if (state.value(key, nlohmann::json()) != now)
        throw Error(state_path.string() + ": the run used " + key + " " + state.value(key, nlohmann::json()).dump() +
                    ", this one " + now.dump() +
                    " (resume with the same --data, --val-data/--val-fraction, --seed and --batch-size)");
    trainer.optimizer().load((run / "trainer_state").string());
  }
  fs::create_directories(run);
  if (main_rank && !o.args_toml.empty()) write_text_file((run / "args.toml").string(), o.args_toml);
  const std::string metrics_path = (run / "metrics.jsonl").string();
  if (resuming && main_rank) keep_jsonl_steps_up_to(metrics_path, step);  // a resumed run redoes the later ones
  std::optional<double> accuracy_before;  // a resumed run reads its step-0 validation back
  if (resuming)
    for (const JsonlRow& row : read_jsonl_rows(metrics_path))
      if (row.value.value("step", -1) == 0 && row.value.contains("val_accuracy"))
        accuracy_before = row.value["val_accuracy"].get<double>();
  std::ofstream metrics;
  if (main_rank) metrics.open(metrics_path, resuming ? std::ios::app : std::ios::trunc);
  auto log = [&](const nlohmann::json& line) {
    if (main_rank) metrics << line.dump() << "\n" << std::flush;
  };

  RmTrainResult result;
  result.total_steps = total;
  result.val_examples = static_cast<int64_t>(val.size());
  auto validate = [&](int64_t at) {
    if (val.empty()) return;
    const auto whole = trainer.optimizer().whole_weights();  // --zero 3: rank 0 scores with every weight
    if (!main_rank) return;
    const RmStats s = trainer.evaluate(val);
    result.val_accuracy = s.accuracy;
    result.val_loss = s.loss;
    log({{"stage", "rm"}, {"step", at}, {"val_loss", s.loss}, {"val_accuracy", s.accuracy}});
  };
  // The reward model directory, with the tokenizer files and the state a resumed run needs.
  auto save = [&](int64_t done_steps) {
    SaveOptions save_opts;
    save_opts.write_extra = [&](const std::string& dir) {
      if (fs::exists(fs::path(o.init) / "tokenizer.json"))
        copy_tokenizer_files((fs::path(o.init) / "tokenizer.json").string(), dir);
      const fs::path st = fs::path(dir) / "trainer_state";
      fs::create_directories(st);
      trainer.optimizer().save_into(st.string(), run.string());
      nlohmann::json state = run_identity;
      state["step"] = done_steps;
      state["total_steps"] = total;
      write_text_file((st / "state.json").string(), state.dump(2) + "\n");
    };
    trainer.optimizer().stage(run.string());  // --zero 1-3: every rank writes its optimizer shard
    const auto whole = trainer.optimizer().whole_weights();
    if (main_rank) save_trained(trainer.model(), lora, o.out, save_opts);
  };
  if (!resuming) validate(0);
  result.val_accuracy_before = accuracy_before.value_or(result.val_accuracy);

  std::vector<size_t> order(train.size());
  auto shuffle_epoch = [&] {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
  };
  for (int64_t epoch = 0; epoch < step / per_epoch; ++epoch) shuffle_epoch();  // replay the finished epochs
  double loss_sum = 0, acc_sum = 0;
  int64_t since_log = 0;
  const bool already_done = step >= total;
  // Whether to stop now: asked here or, in data parallelism, on any rank (all stop at one step).
  const auto stopping = [&] {
    double asked = stop && *stop ? 1.0 : 0.0;
    if (group) {
      auto t = torch::tensor({asked}, torch::kFloat64).to(device);
      group->all_reduce_sum({t});
      asked = t.cpu().item<double>();
    }
    return asked > 0;
  };
  bool stopped = false;
  for (int64_t epoch = step / per_epoch; epoch < o.epochs && !stopped; ++epoch) {
    shuffle_epoch();
    for (size_t s = static_cast<size_t>(step - epoch * per_epoch) * o.batch_size; s < order.size() && !(stopped = stopping());
         s += o.batch_size) {
      std::vector<const RmExample*> batch;
      for (size_t i = s; i < std::min(order.size(), s + o.batch_size); ++i) batch.push_back(&train[order[i]]);
      const double lr = schedule.at(step);
      trainer.set_lr(lr);
      const RmStats st = trainer.train_step(batch);
      ++step;
      loss_sum += st.loss;
      acc_sum += st.accuracy;
      ++since_log;
      if (step % o.log_every == 0 || step == total) {
        log({{"stage", "rm"}, {"step", step}, {"loss", loss_sum / since_log}, {"accuracy", acc_sum / since_log},
             {"lr", lr}});
        loss_sum = acc_sum = 0;
        since_log = 0;
      }
      if (o.eval_every > 0 && step % o.eval_every == 0 && step != total) validate(step);
      if (o.save_every > 0 && step % o.save_every == 0 && step != total) save(step);
      if (on_step && main_rank) on_step(step, total, st.loss);
    }
  }
  result.steps = step;
  if (already_done) {
    result.val_examples = 0;  // nothing trained, nothing new to report
    return result;
  }
  result.stopped = step < total;
  if (!result.stopped) validate(step);
  save(step);
  return result;
}

}  // namespace r1

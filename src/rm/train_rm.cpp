#include "rm/train_rm.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "rm/reward_model.h"
#include "util/error.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace r1 {

RmTrainResult train_reward_model(const RmTrainOptions& o, const std::atomic<bool>* stop,
                                 const std::function<void(int64_t, int64_t, double)>& on_step) {
  if (o.batch_size < 1 || o.epochs < 1) throw Error("--batch-size and --epochs must be positive");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) throw Error("--val-fraction must be in [0, 1)");
  const fs::path tokenizer_path = fs::path(o.init) / "tokenizer.json";
  if (!fs::exists(tokenizer_path)) throw Error(o.init + ": no tokenizer.json");
  if (fs::exists(fs::path(o.out) / "config.json"))
    throw Error(o.out + " already holds a model: pick a new --out (a reward model can continue from it with --init)");
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_path.string());
  std::vector<RmExample> train = read_rm_examples(o.data), val;
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
  RewardModelTrainer trainer(load_reward_model(o.init, device, o.seed), &tokenizer, o.schedule.max_lr, o.weight_decay,
                             o.clip, o.max_length);
  const int64_t per_epoch = (static_cast<int64_t>(train.size()) + o.batch_size - 1) / o.batch_size;
  const int64_t total = per_epoch * o.epochs;
  LrSchedule schedule = o.schedule;
  schedule.total_steps = total;
  schedule.validate();
  fs::create_directories(o.out);
  if (!o.args_toml.empty()) write_text_file((fs::path(o.out) / "args.toml").string(), o.args_toml);
  std::ofstream metrics(fs::path(o.out) / "metrics.jsonl", std::ios::trunc);
  auto log = [&](const nlohmann::json& line) { metrics << line.dump() << "\n" << std::flush; };

  RmTrainResult result;
  result.val_examples = static_cast<int64_t>(val.size());
  auto validate = [&](int64_t step) {
    if (val.empty()) return;
    const RmStats s = trainer.evaluate(val);
    result.val_accuracy = s.accuracy;
    result.val_loss = s.loss;
    log({{"stage", "rm"}, {"step", step}, {"val_loss", s.loss}, {"val_accuracy", s.accuracy}});
  };
  validate(0);
  result.val_accuracy_before = result.val_accuracy;

  std::vector<size_t> order(train.size());
  int64_t step = 0;
  double loss_sum = 0, acc_sum = 0;
  int64_t since_log = 0;
  for (int64_t epoch = 0; epoch < o.epochs && !(stop && *stop); ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t s = 0; s < order.size() && !(stop && *stop); s += o.batch_size) {
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
      if (on_step) on_step(step, total, st.loss);
    }
  }
  validate(step);
  result.steps = step;
  SaveOptions save;
  save.write_extra = [&](const std::string& dir) {  // the tokenizer files travel with the model
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
      if (fs::exists(fs::path(o.init) / name))
        fs::copy_file(fs::path(o.init) / name, fs::path(dir) / name, fs::copy_options::overwrite_existing);
  };
  save_model_dir(trainer.model(), o.out, save);
  return result;
}

}  // namespace r1

#include "rl/rm_updates.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "util/error.h"
#include "util/hash.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

void write_pairs(const fs::path& path, const std::vector<RmExample>& pairs) {
  std::ofstream out(path);
  for (const auto& e : pairs)
    out << nlohmann::json{{"prompt", e.prompt}, {"chosen", e.chosen}, {"rejected", e.rejected}}.dump(
               -1, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
}

std::vector<RmExample> read_pairs(const fs::path& path) {
  if (!fs::exists(path) || fs::file_size(path) == 0) return {};
  return read_rm_examples(path.string());
}

}  // namespace

IterativeRewardModel::IterativeRewardModel(std::shared_ptr<RewardModelScorer> scorer, const Tokenizer* tokenizer,
                                           std::string tokenizer_file, const RmUpdateOptions& options)
    : scorer_(std::move(scorer)),
      trainer_(scorer_->model(), tokenizer, options.lr, 0.0, 1.0, 1024),
      tokenizer_file_(std::move(tokenizer_file)),
      options_(options) {
  if (!(options.replay_fraction >= 0 && options.replay_fraction < 1))
    throw Error("--rm-replay-fraction must be in [0, 1)");
  if (options.batch_size < 1 || options.epochs < 1) throw Error("--rm-batch-size and --rm-update-epochs must be positive");
}

void IterativeRewardModel::collect(int64_t order, const std::string& prompt,
                                   const std::vector<std::string>& completions, const std::vector<bool>& right) {
  std::vector<const std::string*> good, bad;
  for (size_t i = 0; i < completions.size(); ++i) (right[i] ? good : bad).push_back(&completions[i]);
  for (size_t i = 0; i < std::min(good.size(), bad.size()); ++i) {
    RmExample e;
    e.prompt = prompt;
    e.chosen = *good[i];
    e.rejected = *bad[i];
    fresh_.push_back(std::move(e));
    fresh_order_.push_back(order);
  }
}

void IterativeRewardModel::share_fresh(ProcessGroup& group) {
  nlohmann::json mine = nlohmann::json::array();
  for (size_t i = shared_; i < fresh_.size(); ++i)
    mine.push_back({fresh_order_[i], fresh_[i].prompt, fresh_[i].chosen, fresh_[i].rejected});
  std::vector<std::pair<int64_t, RmExample>> all;
  for (const std::string& text : group.all_gather_strings(mine.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)))
    for (const auto& row : nlohmann::json::parse(text)) {
      RmExample e;
      e.prompt = row[1].get<std::string>();
      e.chosen = row[2].get<std::string>();
      e.rejected = row[3].get<std::string>();
      all.emplace_back(row[0].get<int64_t>(), std::move(e));
    }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  fresh_.resize(shared_);
  fresh_order_.resize(shared_);
  for (auto& [order, e] : all) {
    fresh_.push_back(std::move(e));
    fresh_order_.push_back(order);
  }
  shared_ = fresh_.size();
}

RmUpdateStats IterativeRewardModel::update(int64_t step) {
  RmUpdateStats s;
  s.fresh_pairs = static_cast<int64_t>(fresh_.size());
  std::mt19937_64 rng(splitmix64(options_.seed * 31 + static_cast<uint64_t>(step)));
  std::vector<RmExample> data = fresh_;
  // replay / (fresh + replay) = replay_fraction
  const double f = options_.replay_fraction;
  const auto want = static_cast<size_t>(std::lround(static_cast<double>(fresh_.size()) * f / (1 - f)));
  std::vector<size_t> idx(replay_.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::shuffle(idx.begin(), idx.end(), rng);
  for (size_t i = 0; i < std::min(want, idx.size()); ++i) data.push_back(replay_[idx[i]]);
  s.replay_pairs = static_cast<int64_t>(data.size()) - s.fresh_pairs;
  double loss = 0, correct = 0;
  int64_t seen = 0;
  for (int64_t epoch = 0; epoch < options_.epochs && s.fresh_pairs > 0; ++epoch) {
    std::shuffle(data.begin(), data.end(), rng);
    for (size_t b = 0; b < data.size(); b += options_.batch_size) {
      std::vector<const RmExample*> batch;
      for (size_t i = b; i < std::min(data.size(), b + options_.batch_size); ++i) batch.push_back(&data[i]);
      const RmStats st = trainer_.train_step(batch);
      loss += st.loss * st.examples;
      correct += st.accuracy * st.examples;
      seen += st.examples;
    }
  }
  s.loss = seen ? loss / seen : 0;
  s.accuracy = seen ? correct / seen : 0;
  replay_.insert(replay_.end(), fresh_.begin(), fresh_.end());
  if (static_cast<int64_t>(replay_.size()) > options_.replay_capacity)
    replay_.erase(replay_.begin(), replay_.end() - options_.replay_capacity);
  fresh_.clear();
  fresh_order_.clear();
  shared_ = 0;
  scorer_->model()->eval();
  return s;
}

void IterativeRewardModel::save(const std::string& dir) {
  const fs::path d(dir);
  SaveOptions with_tokenizer;
  with_tokenizer.write_extra = [&](const std::string& tmp) {
    fs::copy_file(tokenizer_file_, fs::path(tmp) / "tokenizer.json", fs::copy_options::overwrite_existing);
  };
  save_model_dir(scorer_->model(), (d / "reward_model").string(), with_tokenizer);
  trainer_.optimizer().save_file((d / "rm_optimizer.pt").string());
  write_pairs(d / "rm_fresh.jsonl", fresh_);
  write_pairs(d / "rm_replay.jsonl", replay_);
}

void IterativeRewardModel::load(const std::string& dir) {
  const fs::path d(dir);
  if (!fs::exists(d / "rm_optimizer.pt")) throw Error(dir + ": no reward-model state to resume (rm_optimizer.pt)");
  trainer_.optimizer().load_file((d / "rm_optimizer.pt").string());
  fresh_ = read_pairs(d / "rm_fresh.jsonl");
  fresh_order_.assign(fresh_.size(), 0);
  shared_ = fresh_.size();  // checkpoints are written after share_fresh: they hold every rank's pairs
  replay_ = read_pairs(d / "rm_replay.jsonl");
}

}  // namespace r1

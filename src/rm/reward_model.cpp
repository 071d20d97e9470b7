#include "rm/reward_model.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "dist/process_group.h"
#include "io/model_dir.h"
#include "train/autocast.h"
#include "train/optimizer.h"
#include "util/error.h"
#include "util/jsonl.h"

namespace r1 {

std::vector<RmExample> read_rm_examples(const std::string& path) {
  std::vector<RmExample> out;
  for (const auto& [j, n] : read_jsonl_rows(path)) {
    const std::string where = path + ":" + std::to_string(n);
    auto text = [&](const char* field) {
      if (!j.contains(field)) throw Error(where + ": missing field '" + field + "'");
      if (!j[field].is_string()) throw Error(where + ": field '" + field + "' must be a string");
      return j[field].get<std::string>();
    };
    RmExample e;
    e.prompt = j.contains("prompt") ? text("prompt") : "";
    e.pair = j.contains("chosen") || j.contains("rejected");
    if (e.pair) {
      e.chosen = text("chosen");
      e.rejected = text("rejected");
    } else if (j.contains("response")) {
      e.response = text("response");
      if (!j.contains("label")) throw Error(where + ": missing field 'label' (0..1) for a labelled response");
      if (j["label"].is_boolean()) e.label = j["label"].get<bool>();
      else if (j["label"].is_number()) e.label = j["label"].get<double>();
      else throw Error(where + ": field 'label' must be a number in [0, 1] or a boolean");
      if (!(e.label >= 0 && e.label <= 1)) throw Error(where + ": field 'label' must be in [0, 1]");
    } else {
      throw Error(where + ": expected 'chosen' + 'rejected' (a preference pair) or 'response' + 'label'");
    }
    if (!out.empty() && out.front().pair != e.pair)
      throw Error(where + ": mixes preference pairs and labelled responses; use one kind per file");
    out.push_back(std::move(e));
  }
  if (out.empty()) throw Error(path + ": no examples");
  return out;
}

Transformer load_reward_model(const std::string& dir, torch::Device device, uint64_t head_seed) {
  return load_with_score_head(dir, {device, torch::kFloat32}, head_seed);
}

RmBatch pack_rm_texts(const Tokenizer& tokenizer, const std::vector<std::string>& texts, int64_t max_length,
                      torch::Device device) {
  std::vector<std::vector<int32_t>> rows;
  int64_t width = 1;
  for (const auto& t : texts) {
    auto ids = tokenizer.encode(t, /*add_special=*/true);
    if (ids.empty()) throw Error("reward model: an empty text has no last token to score");
    if (static_cast<int64_t>(ids.size()) > max_length) ids.erase(ids.begin(), ids.end() - max_length);
    width = std::max<int64_t>(width, static_cast<int64_t>(ids.size()));
    rows.push_back(std::move(ids));
  }
  auto tokens = torch::zeros({static_cast<int64_t>(rows.size()), width}, torch::kInt64);
  auto last = torch::empty({static_cast<int64_t>(rows.size())}, torch::kInt64);
  auto tk = tokens.accessor<int64_t, 2>();
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t i = 0; i < rows[r].size(); ++i) tk[r][i] = rows[r][i];
    last[r] = static_cast<int64_t>(rows[r].size()) - 1;
  }
  return {tokens.to(device), last.to(device)};
}

RewardModelScorer::RewardModelScorer(Transformer model, const Tokenizer* tokenizer, int64_t max_length, int64_t batch)
    : model_(std::move(model)), tokenizer_(tokenizer), max_length_(max_length), batch_(batch) {
  model_->eval();
}

std::vector<double> RewardModelScorer::score(const std::vector<std::pair<std::string, std::string>>& prompt_response) {
  torch::NoGradGuard no_grad;
  std::vector<double> out;
  const auto device = model_->parameters().front().device();
  for (size_t s = 0; s < prompt_response.size(); s += batch_) {
    std::vector<std::string> texts;
    for (size_t i = s; i < std::min(prompt_response.size(), s + batch_); ++i)
      texts.push_back(prompt_response[i].first + prompt_response[i].second);
    const auto b = pack_rm_texts(*tokenizer_, texts, max_length_, device);
    const auto scores = model_->scores(model_->forward(b.tokens), b.last).to(torch::kFloat64).cpu();
    for (int64_t i = 0; i < scores.size(0); ++i) out.push_back(scores[i].item<double>());
  }
  return out;
}

BatchRewardFn reward_model_reward(std::shared_ptr<RewardModelScorer> scorer) {
  return [scorer](const std::vector<RewardInput>& inputs) {
    std::vector<std::pair<std::string, std::string>> texts;
    for (const auto& in : inputs) texts.emplace_back(in.prompt, in.completion);
    const std::vector<double> raw = scorer->score(texts);
    std::vector<RewardResult> out(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      out[i].score = raw[i];
      out[i].reason = "reward model";
      out[i].details = {{"raw", raw[i]}};
    }
    return out;
  };
}

RewardModelTrainer::RewardModelTrainer(Transformer model, const Tokenizer* tokenizer, double lr, double weight_decay,
                                       double clip, int64_t max_length, int zero, ProcessGroup* group)
    : model_(std::move(model)),
      tokenizer_(tokenizer),
      clip_(clip),
      max_length_(max_length),
      optimizer_(std::make_unique<TrainingOptimizer>(model_, AdamWSettings{lr, 0.9, 0.95, 1e-8, weight_decay}, zero, group)),
      group_(group) {}

void RewardModelTrainer::set_lr(double lr) { optimizer_->set_lr(lr); }

torch::Tensor RewardModelTrainer::forward_scores(const std::vector<std::string>& texts) {
  const auto b = pack_rm_texts(*tokenizer_, texts, max_length_, model_->parameters().front().device());
  torch::Tensor hidden;
  {
    AutocastScope autocast(bf16_, b.tokens.device().type());
    hidden = model_->forward(b.tokens);
  }
  // The score head in fp32: chosen and rejected often differ in a few tokens, and a bf16 product
  // rounds their scores (~0.4%) more coarsely than the margin the loss has to learn.
  return model_->scores(hidden.to(torch::kFloat32), b.last);
}

std::pair<torch::Tensor, torch::Tensor> RewardModelTrainer::loss_and_correct(const std::vector<const RmExample*>& batch) {
  std::vector<std::string> texts;
  if (batch.front()->pair) {
    // Chosen and rejected in one forward: rows [0, B) and [B, 2B).
    for (const auto* e : batch) texts.push_back(e->prompt + e->chosen);
    for (const auto* e : batch) texts.push_back(e->prompt + e->rejected);
    const auto r = forward_scores(texts);
    const int64_t B = static_cast<int64_t>(batch.size());
    const auto margin = r.narrow(0, 0, B) - r.narrow(0, B, B);
    return {-torch::nn::functional::logsigmoid(margin).mean(), (margin > 0).to(torch::kFloat32)};
  }
  std::vector<float> labels;
  for (const auto* e : batch) {
    texts.push_back(e->prompt + e->response);
    labels.push_back(static_cast<float>(e->label));
  }
  const auto r = forward_scores(texts);
  const auto y = torch::tensor(labels).to(r.device());
  return {torch::nn::functional::binary_cross_entropy_with_logits(r, y),
          ((r > 0) == (y >= 0.5)).to(torch::kFloat32)};
}

RmStats RewardModelTrainer::train_step(const std::vector<const RmExample*>& batch) {
  if (batch.empty()) throw Error("reward model: an empty training batch");
  model_->train();
  optimizer_->zero_grad();
  // This rank's share of the batch; its loss weighs by its share of the rows, so the summed
  // gradient is that of the whole batch's mean loss.
  const size_t ranks = group_ ? static_cast<size_t>(group_->size()) : 1, rank = group_ ? group_->rank() : 0;
  const std::vector<const RmExample*> mine(batch.begin() + static_cast<long>(batch.size() * rank / ranks),
                                           batch.begin() + static_cast<long>(batch.size() * (rank + 1) / ranks));
  auto sums = torch::zeros({2}, torch::kFloat64);  // loss x rows, right answers
  if (mine.empty()) {
    optimizer_->skip_micro_batch();
  } else {
    auto [loss, correct] = loss_and_correct(mine);
    const double share = static_cast<double>(mine.size()) / static_cast<double>(batch.size());
    (loss * share).backward();
    optimizer_->after_backward();
    sums[0] = loss.item<double>() * static_cast<double>(mine.size());
    sums[1] = correct.sum().item<double>();
  }
  optimizer_->step(clip_);
  if (group_) {
    sums = sums.to(model_->parameters().front().device());
    group_->all_reduce_sum({sums});
    sums = sums.cpu();
  }
  const double rows = static_cast<double>(batch.size());
  return {sums[0].item<double>() / rows, sums[1].item<double>() / rows, static_cast<int64_t>(batch.size())};
}

RmStats RewardModelTrainer::evaluate(const std::vector<RmExample>& examples, int64_t batch) {
  torch::NoGradGuard no_grad;
  model_->eval();
  RmStats s;
  double loss_sum = 0, correct_sum = 0;
  for (size_t i = 0; i < examples.size(); i += batch) {
    std::vector<const RmExample*> rows;
    for (size_t j = i; j < std::min(examples.size(), i + batch); ++j) rows.push_back(&examples[j]);
    auto [loss, correct] = loss_and_correct(rows);
    loss_sum += loss.item<double>() * rows.size();
    correct_sum += correct.sum().item<double>();
  }
  s.examples = static_cast<int64_t>(examples.size());
  s.loss = loss_sum / std::max<int64_t>(1, s.examples);
  s.accuracy = correct_sum / std::max<int64_t>(1, s.examples);
  return s;
}

}  // namespace r1

#include "train/batch_source.h"

#include <algorithm>
#include <fstream>
#include <random>

#include "util/error.h"

namespace r1 {

PackedSource::PackedSource(const std::string& data, int64_t seq_len, uint64_t seed, uint64_t fingerprint)
    : reader_(parse_mixture(data), seq_len, seed, fingerprint), seq_len_(seq_len) {}

TrainBatch PackedSource::next(int64_t rows) {
  auto tokens = torch::empty({rows, seq_len_ + 1}, torch::kInt64);
  auto acc = tokens.accessor<int64_t, 2>();
  for (int64_t r = 0; r < rows; ++r) {
    const auto seq = reader_.next();
    for (int64_t t = 0; t <= seq_len_; ++t) acc[r][t] = seq[t];
  }
  return {tokens, torch::ones({rows, seq_len_}), {}};
}

RenderedChat render_prompt_completion(const Tokenizer& tokenizer, const nlohmann::json& row, std::optional<int32_t> eos) {
  if (!row.contains("prompt") || !row["prompt"].is_string() || !row["completion"].is_string())
    throw Error("a prompt-completion row needs string fields 'prompt' and 'completion'");
  if (!eos) eos = tokenizer.eos_id();
  if (!eos) throw Error("prompt-completion rows end with EOS, and neither the model (eos_token_id) nor the tokenizer names one");
  RenderedChat r;
  r.text = row["prompt"].get<std::string>() + row["completion"].get<std::string>();
  r.ids = tokenizer.encode(row["prompt"].get<std::string>(), /*add_special=*/true);
  r.assistant_mask.assign(r.ids.size(), 0);
  for (int32_t id : tokenizer.encode(row["completion"].get<std::string>())) {
    r.ids.push_back(id);
    r.assistant_mask.push_back(1);
  }
  r.ids.push_back(*eos);  // the model learns to stop
  r.assistant_mask.push_back(1);
  return r;
}

ConversationSource::ConversationSource(const std::string& jsonl, const Tokenizer& tokenizer,
                                       std::optional<ChatFormat> format, int64_t seq_len, uint64_t seed,
                                       bool skip_bad_lines, const std::string& why_no_format,
                                       std::optional<int32_t> eos, bool pack)
    : seq_len_(seq_len), pack_(pack), seed_(seed) {
  std::ifstream in(jsonl);
  if (!in) throw Error(jsonl + ": cannot open");
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto row = nlohmann::json::parse(line);
      if (row.is_object() && row.contains("completion") && !row.contains("messages")) {
        examples_.push_back(render_prompt_completion(tokenizer, row, eos));
      } else {
        if (!format) throw Error(why_no_format);
        examples_.push_back(render_chat(tokenizer, *format, parse_messages(row), false));
      }
    } catch (const std::exception& e) {
      if (!skip_bad_lines) throw Error(jsonl + ":" + std::to_string(lineno) + ": " + e.what());
    }
  }
  if (examples_.empty()) throw Error(jsonl + ": no conversations");
  shuffle();
}

void ConversationSource::shuffle() {
  order_.resize(examples_.size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
  std::mt19937_64 rng(seed_ * 1000003 + epoch_);
  std::shuffle(order_.begin(), order_.end(), rng);
}

const RenderedChat& ConversationSource::take() {
  if (index_ == order_.size()) {
    ++epoch_;
    index_ = 0;
    shuffle();
  }
  return examples_[order_[index_++]];
}

TrainBatch ConversationSource::next_packed(int64_t rows) {
  const int64_t width = seq_len_ + 1;
  auto tokens = torch::zeros({rows, width}, torch::kInt64);
  auto mask = torch::zeros({rows, seq_len_});
  auto segments = torch::full({rows, seq_len_}, -1, torch::kInt64);  // -1: padding after the last document
  auto ta = tokens.accessor<int64_t, 2>();
  auto ma = mask.accessor<float, 2>();
  auto sa = segments.accessor<int64_t, 2>();
  for (int64_t r = 0; r < rows; ++r) {
    int64_t used = 0, doc = 0;
    while (used < width) {
      // Peek: the next example goes in whole, or (a row's first, too long) truncated alone.
      if (index_ == order_.size()) {
        ++epoch_;
        index_ = 0;
        shuffle();
      }
      const RenderedChat& ex = examples_[order_[index_]];
      const int64_t n = static_cast<int64_t>(ex.ids.size());
      if (used > 0 && used + n > width) break;
      ++index_;
      const int64_t take_n = std::min(n, width - used);
      for (int64_t t = 0; t < take_n; ++t) {
        ta[r][used + t] = ex.ids[t];
        if (used + t < seq_len_) sa[r][used + t] = doc;
        // Target of position p is token p + 1, inside this document only.
        if (t + 1 < take_n) ma[r][used + t] = ex.assistant_mask[t + 1];
      }
      used += take_n;
      ++doc;
    }
  }
  return {tokens, mask, segments};
}

TrainBatch ConversationSource::next(int64_t rows) {
  if (pack_) return next_packed(rows);
  std::vector<const RenderedChat*> batch;
  int64_t longest = 2;
  for (int64_t r = 0; r < rows; ++r) {
    batch.push_back(&take());
    longest = std::max<int64_t>(longest, std::min<int64_t>(batch.back()->ids.size(), seq_len_ + 1));
  }
  auto tokens = torch::zeros({rows, longest}, torch::kInt64);
  auto mask = torch::zeros({rows, longest - 1});
  auto ta = tokens.accessor<int64_t, 2>();
  auto ma = mask.accessor<float, 2>();
  for (int64_t r = 0; r < rows; ++r) {
    const RenderedChat& ex = *batch[r];
    const int64_t n = std::min<int64_t>(ex.ids.size(), longest);
    for (int64_t t = 0; t < n; ++t) ta[r][t] = ex.ids[t];
    // Target t is token t + 1: trained on when that token is assistant output.
    for (int64_t t = 0; t + 1 < n; ++t) ma[r][t] = ex.assistant_mask[t + 1];
  }
  return {tokens, mask, {}};
}

nlohmann::json ConversationSource::state() const {
  return {{"epoch", epoch_}, {"index", index_}, {"seed", seed_}, {"examples", examples_.size()}};
}

void ConversationSource::restore(const nlohmann::json& state) {
  if (state.value("seed", uint64_t(0)) != seed_ || state.value("examples", size_t(0)) != examples_.size())
    throw Error("data position in the checkpoint belongs to a different conversation file or seed");
  epoch_ = state.at("epoch").get<uint64_t>();
  index_ = state.at("index").get<uint64_t>();
  shuffle();
}

}  // namespace r1

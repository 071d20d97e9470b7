// Where the training loop's micro-batches come from: packed pretraining sequences, or rendered
// conversations with a loss mask (SFT). The position is part of the checkpoint.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/mixture.h"
#include "tokenizer/chat_template.h"

namespace r1 {

// `rows` sequences: tokens [rows, T + 1] (int64, CPU), the loss mask of the T targets [rows, T]
// (float: 1 where the target token is trained on) and, for packed SFT rows, which document each
// of the T input positions belongs to [rows, T] (int64; undefined otherwise): attention stays
// within a document and positions restart at each (TransformerImpl::forward_packed).
struct TrainBatch {
  torch::Tensor tokens, mask, segments;
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual TrainBatch next(int64_t rows) = 0;
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& state) = 0;
};

// Pretraining: packed windows from a shard mixture; every target counts.
class PackedSource : public BatchSource {
 public:
  PackedSource(const std::string& data, int64_t seq_len, uint64_t seed, uint64_t fingerprint);
  TrainBatch next(int64_t rows) override;
  nlohmann::json state() const override { return reader_.state(); }
  void restore(const nlohmann::json& state) override { reader_.restore(state); }

 private:
  MixtureReader reader_;
  int64_t seq_len_;
};

// A {"prompt", "completion"} row (TRL's prompt-completion form, what `r1 sample` writes for plain
// templates): prompt tokens (with BOS if the tokenizer adds one), completion tokens and EOS; the
// completion and EOS are the targets. The text is used as is, no chat template.
// `eos` is the model's end of sequence (config.json), else the tokenizer's.
RenderedChat render_prompt_completion(const Tokenizer& tokenizer, const nlohmann::json& row, std::optional<int32_t> eos);

// SFT: {"messages": [...]} lines rendered with a chat template, or prompt-completion rows; only
// assistant tokens are targets. Order: a seeded shuffle per epoch. Unpacked, one conversation per
// row, truncated to seq_len + 1 tokens, padded to the longest row of the micro-batch. Packed, each
// row of seq_len + 1 tokens takes the next conversations while they fit whole (a longer one is
// truncated and alone), with document masking (TrainBatch::segments), so no compute goes to
// padding and no conversation sees another.
class ConversationSource : public BatchSource {
 public:
  // `format` renders messages rows; without one (a tokenizer whose template r1 does not know and no
  // --chat-template) only prompt-completion rows are accepted, and a messages row is an error
  // that says `why_no_format`.
  ConversationSource(const std::string& jsonl, const Tokenizer& tokenizer, std::optional<ChatFormat> format,
                     int64_t seq_len, uint64_t seed, bool skip_bad_lines, const std::string& why_no_format = "",
                     std::optional<int32_t> eos = std::nullopt, bool pack = false);
  TrainBatch next(int64_t rows) override;
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  size_t size() const { return examples_.size(); }

 private:
  void shuffle();
  const RenderedChat& take();  // the next example in the epoch's order
  TrainBatch next_packed(int64_t rows);
  std::vector<RenderedChat> examples_;
  std::vector<size_t> order_;
  int64_t seq_len_;
  bool pack_;
  uint64_t seed_, epoch_ = 0, index_ = 0;
};

}  // namespace r1

// Byte-level BPE training. Input text is pre-tokenized (a named pattern) and reduced to word
// counts, so memory grows with the number of distinct words, not the corpus (a corpus larger
// than RAM trains by streaming). Merging keeps pair counts and, per pair, the words holding
// it: each merge rewrites only those words (incremental statistics), and a max-heap with lazy
// invalidation picks the next pair. Ties break deterministically: highest count, then the
// smallest (left id, right id). Torch-free.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace r1 {

using WordCounts = std::unordered_map<std::string, uint64_t>;

struct TrainOptions {
  int64_t vocab_size = 32000;       // byte tokens + merges + special tokens (before padding)
  std::string pattern = "deepseek-v3";
  std::vector<std::string> special_tokens;
  int64_t pad_to_multiple = 1;      // add reserved special tokens up to a multiple (DeepSeek: 102,400)
  uint64_t min_frequency = 2;       // pairs seen fewer times are never merged
  int threads = 0;                  // pre-tokenization threads, 0 = all cores
  // Progress reports: (stage, done, total, unit); the CLI draws them (util/progress.h).
  using ProgressFn = std::function<void(const std::string&, uint64_t, uint64_t, const std::string&)>;
  ProgressFn progress;
};

// Counts the pre-tokenized words of `texts` with `pretokenizer` (several threads), adding to `counts`.
void count_words(const PreTokenizer& pretokenizer, const std::vector<std::string>& texts, int threads,
                 WordCounts& counts);

// The merges (as pairs of token strings in byte-level characters), in order, for `counts`.
std::vector<std::pair<std::string, std::string>> learn_merges(const WordCounts& counts, int64_t num_merges,
                                                              uint64_t min_frequency,
                                                              const TrainOptions::ProgressFn& progress = nullptr);

// A complete tokenizer.json for the learned merges, the pattern and the special tokens.
nlohmann::json build_tokenizer_json(const std::vector<std::pair<std::string, std::string>>& merges,
                                    const TrainOptions& options);

// Reads files (plain text, or JSONL when `field` is set), streaming in blocks, and trains.
nlohmann::json train_tokenizer(const std::vector<std::string>& files, const std::string& field,
                               const TrainOptions& options);

}  // namespace r1

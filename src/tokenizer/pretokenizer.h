// Pre-tokenization: splitting text into the pieces BPE encodes separately, with the HF
// `tokenizers` pre-tokenizer types real byte-level BPE files use (Split, Digits, ByteLevel,
// Sequence), regexes through PCRE2 with JIT. Pieces stay raw UTF-8 bytes; the byte-to-character
// map of ByteLevel is applied by the BPE model. Torch-free.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace r1 {

// A compiled PCRE2 pattern (UTF + Unicode properties + JIT).
class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Non-overlapping matches left to right, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8
};

// The GPT-2 pattern ByteLevel(use_regex=true) applies.
extern const char* const kGpt2Pattern;

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits, in order. Empty pieces are dropped.
  virtual void split(std::vector<std::string>& pieces) const = 0;
  virtual nlohmann::json to_json() const = 0;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(const std::string& pattern, SplitBehavior behavior, bool invert);
  void split(std::vector<std::string>& pieces) const override;
  nlohmann::json to_json() const override;

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

// ByteLevel: optional prefix space and GPT-2 regex split; the byte map itself is the model's.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, bool trim_offsets);
  void split(std::vector<std::string>& pieces) const override;
  nlohmann::json to_json() const override;

 private:
  bool add_prefix_space_, use_regex_, trim_offsets_;
  std::unique_ptr<SplitPreTokenizer> regex_split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void split(std::vector<std::string>& pieces) const override;
  nlohmann::json to_json() const override;

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// Builds from tokenizer.json's "pre_tokenizer"; an unsupported type is an r1::Error naming it.
// `has_byte_level` is set when a ByteLevel step is present (required for byte-level BPE).
std::unique_ptr<PreTokenizer> pretokenizer_from_json(const nlohmann::json& j, const std::string& origin,
                                                     bool* has_byte_level);

}  // namespace r1

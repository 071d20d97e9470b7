// Fill-in-the-middle for code pretraining (DeepSeek-Coder: PSM mode, FIM rate 0.5). A chosen
// document is cut at two random character positions into prefix, middle and suffix and trained
// as <prefix marker> prefix <suffix marker> suffix <middle marker> middle, so the model learns
// to write the middle given both sides (editor completion). Cuts are a pure function of (seed,
// document index), so a prepared data set is reproducible. Torch-free.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace r1 {

struct FimTokens {
  int32_t prefix, suffix, middle;  // DeepSeek: <｜fim▁begin｜>, <｜fim▁hole｜>, <｜fim▁end｜>
};

// The tokenizer's FIM markers (DeepSeek's, Qwen's <|fim_prefix|>..., StarCoder's <fim_prefix>...);
// nullopt when it has none.
std::optional<FimTokens> find_fim_tokens(const Tokenizer& tokenizer);

struct FimSplit {
  std::string_view prefix, middle, suffix;
};

// With probability `rate` (decided by a hash of seed and index), the document's three parts,
// cut at UTF-8 character boundaries; nullopt when the document stays as it is.
std::optional<FimSplit> fim_split(std::string_view document, double rate, uint64_t seed, uint64_t index);

// PSM order: prefix marker, prefix, suffix marker, suffix, middle marker, middle.
std::vector<int32_t> fim_psm(const FimTokens& t, const std::vector<int32_t>& prefix, const std::vector<int32_t>& middle,
                             const std::vector<int32_t>& suffix);

}  // namespace r1

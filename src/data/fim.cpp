#include "data/fim.h"

#include <algorithm>

#include "util/hash.h"

namespace r1 {
namespace {

double unit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

}  // namespace

std::optional<FimTokens> find_fim_tokens(const Tokenizer& tokenizer) {
  static const char* const kNames[][3] = {
      {"<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"},  // DeepSeek-Coder, DeepSeek-V3
      {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"},   // Qwen2.5-Coder, Qwen3
      {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"},         // StarCoder
  };
  for (const auto& names : kNames) {
    auto p = tokenizer.token_to_id(names[0]), s = tokenizer.token_to_id(names[1]), m = tokenizer.token_to_id(names[2]);
    if (p && s && m) return FimTokens{*p, *s, *m};
  }
  return std::nullopt;
}

std::optional<FimSplit> fim_split(std::string_view doc, double rate, uint64_t seed, uint64_t index) {
  const uint64_t h = splitmix64(seed ^ splitmix64(index));
  if (unit(h) >= rate) return std::nullopt;
  // Character starts (not continuation bytes) plus the end: the possible cut points.
  std::vector<size_t> cuts;
  for (size_t i = 0; i < doc.size(); ++i)
    if ((static_cast<unsigned char>(doc[i]) & 0xC0) != 0x80) cuts.push_back(i);
  cuts.push_back(doc.size());
  size_t a = cuts[splitmix64(h + 1) % cuts.size()], b = cuts[splitmix64(h + 2) % cuts.size()];
  if (a > b) std::swap(a, b);
  return FimSplit{doc.substr(0, a), doc.substr(a, b - a), doc.substr(b)};
}

std::vector<int32_t> fim_psm(const FimTokens& t, const std::vector<int32_t>& prefix, const std::vector<int32_t>& middle,
                             const std::vector<int32_t>& suffix) {
  std::vector<int32_t> out;
  out.reserve(prefix.size() + middle.size() + suffix.size() + 3);
  out.push_back(t.prefix);
  out.insert(out.end(), prefix.begin(), prefix.end());
  out.push_back(t.suffix);
  out.insert(out.end(), suffix.begin(), suffix.end());
  out.push_back(t.middle);
  out.insert(out.end(), middle.begin(), middle.end());
  return out;
}

}  // namespace r1
